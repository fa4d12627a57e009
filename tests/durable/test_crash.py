"""kill -9 at a random moment while the collector is down, then a restart against a live collector.

Each run starts tests/durable/crash_child.py, which writes numbered spans into a disk queue (the collector is
down) and reports the spans every successful ``force_flush`` covered; the test kills it with SIGKILL at a random
moment, then opens the same directory in this process with a live FakeCollector and checks:

* every span acknowledged before the kill is delivered (duplicates allowed: delivery is at-least-once);
* nothing corrupt is delivered: every span checks out against its CRC attribute, the collector refused nothing;
* the restart begins sending within 2 s.

The fsync policy cycles over "interval", "always" and "never": a process crash loses nothing that was written,
whatever the policy. 5 runs in the default run (about 1 s each); the 20 runs of the acceptance criterion:

    .venv/bin/python -m pytest tests/durable/test_crash.py -m slow
"""

from __future__ import annotations

import asyncio
import os
import random
import signal
import sys
from pathlib import Path

import pytest
from tests.durable.helpers import inner, received_ids

from aiotlp import DurableExporter
from aiotlp.testing import FakeCollector, free_port

CHILD = Path(__file__).with_name("crash_child.py")
POLICIES = ("interval", "always", "never")


async def one_run(directory: Path, collector: FakeCollector, policy: str, rng: random.Random) -> dict[str, float]:
    dead = f"http://127.0.0.1:{free_port()}"
    child = await asyncio.create_subprocess_exec(
        sys.executable,
        str(CHILD),
        str(directory),
        dead,
        policy,
        stdout=asyncio.subprocess.PIPE,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    assert child.stdout is not None
    ready = await asyncio.wait_for(child.stdout.readline(), 30)
    assert ready == b"READY\n", ready
    acked: set[int] = set()

    async def collect() -> None:
        assert child.stdout is not None
        while line := await child.stdout.readline():
            if line.endswith(b"\n"):
                _, first, end = line.split()
                acked.update(range(int(first), int(end)))

    reader = asyncio.create_task(collect())
    delay = rng.uniform(0.05, 0.6)
    await asyncio.sleep(delay)  # the random moment of the kill (not a wait for something)
    child.send_signal(signal.SIGKILL)
    assert await child.wait() == -signal.SIGKILL
    await reader

    collector.clear()
    loop = asyncio.get_running_loop()
    started = loop.time()
    async with DurableExporter(inner(collector.http_endpoint), directory, retry_initial=0.05, retry_max=0.2) as again:
        first_send = None
        if acked:
            await collector.wait_for(1, timeout=2.0)
            first_send = loop.time() - started
        await again.shutdown(timeout=30)  # returns once the queue is drained
    replay = loop.time() - started
    delivered = received_ids(collector)  # checks every span against its CRC
    assert acked <= set(delivered)
    assert collector.bad_requests == []
    stats = again.statistics()
    return {
        "kill_after": delay,
        "acked": len(acked),
        "delivered": len(delivered),
        "first_send": -1.0 if first_send is None else first_send,
        "corrupt": stats.corrupt_records,
        "replay": replay,
        "records": stats.delivered_items / 20,
    }


async def kill_runs(tmp_path: Path, runs: int, seed: int) -> None:
    rng = random.Random(seed)
    print(f"\nkill -9 runs: {runs}, seed {seed}")
    async with FakeCollector() as collector:
        results = []
        for n in range(runs):
            policy = POLICIES[n % len(POLICIES)]
            result = await one_run(tmp_path / f"run{n}", collector, policy, rng)
            results.append(result)
            print(
                f"  run {n:2d} fsync={policy:8s} killed after {result['kill_after'] * 1000:4.0f} ms: "
                f"{result['acked']:5.0f} acknowledged, {result['delivered']:5.0f} delivered, first send "
                f"{result['first_send'] * 1000:5.1f} ms, replay of {result['records']:.0f} requests "
                f"{result['replay'] * 1000:5.0f} ms, torn records skipped {result['corrupt']:.0f}"
            )
    assert sum(r["acked"] for r in results) > 0, "no run acknowledged anything: the test tested nothing"
    assert max(r["first_send"] for r in results) < 2.0


async def test_kill_9_loses_nothing_acknowledged(tmp_path: Path) -> None:
    await kill_runs(tmp_path, 5, seed=random.randrange(1 << 30))


@pytest.mark.slow
async def test_kill_9_loses_nothing_acknowledged_20_runs(tmp_path: Path) -> None:
    await kill_runs(tmp_path, 20, seed=random.randrange(1 << 30))
