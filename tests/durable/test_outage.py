"""A collector outage under a steady load: nothing lost, the backlog drained soon after the collector returns,
memory bounded.

The producer (tests/durable/outage_child.py: BatchProcessor -> DurableExporter, in a process of its own so its
RSS is measured alone) sends 2,000 spans/s to a FakeCollector in this process, which goes down (``stop()``:
connections refused) after the warm-up and comes back (``start()``, same ports) after the outage. The default run
has a 3 s outage; the acceptance criterion's 30 s outage:

    .venv/bin/python -m pytest tests/durable/test_outage.py -m slow -s
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
from tests.durable.helpers import received_ids

from aiotlp.testing import FakeCollector

CHILD = Path(__file__).with_name("outage_child.py")
RATE = 2000


class Missing:
    """The spans not yet received among the first ``count``, updated incrementally as requests arrive."""

    def __init__(self) -> None:
        self.seen: set[int] = set()
        self.upto = 0
        self.first_missing = 0

    def update(self, collector: FakeCollector) -> None:
        for request in collector.received[self.upto :]:
            for resource_spans in request.message.resource_spans:
                for scope_spans in resource_spans.scope_spans:
                    self.seen.update(int(span.name[1:]) for span in scope_spans.spans)
        self.upto = len(collector.received)

    def all_below(self, count: int) -> Callable[[FakeCollector], bool]:
        def predicate(collector: FakeCollector) -> bool:
            self.update(collector)
            while self.first_missing < count and self.first_missing in self.seen:
                self.first_missing += 1
            return self.first_missing >= count

        return predicate


async def outage(tmp_path: Path, outage_seconds: float, after_seconds: float) -> None:
    async with FakeCollector() as collector:
        total = 1.0 + outage_seconds + after_seconds
        child = await asyncio.create_subprocess_exec(
            sys.executable,
            str(CHILD),
            str(tmp_path / "q"),
            collector.http_endpoint,
            str(RATE),
            str(total),
            stdout=asyncio.subprocess.PIPE,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
        assert child.stdout is not None
        produced = 0
        result: dict[str, object] = {}
        ready = asyncio.Event()

        async def read() -> None:
            nonlocal produced
            assert child.stdout is not None
            while line := await child.stdout.readline():
                if line.startswith(b"P "):
                    produced = int(line.split()[1])
                elif line == b"READY\n":
                    ready.set()
                elif line.startswith(b"RESULT "):
                    result.update(json.loads(line[7:]))

        reader = asyncio.create_task(read())
        await asyncio.wait_for(ready.wait(), 60)
        await collector.stop()
        down_at = produced
        await asyncio.sleep(outage_seconds)  # the outage itself
        loop = asyncio.get_running_loop()
        await collector.start()
        back, backlog = loop.time(), produced
        missing = Missing()
        await collector.wait_for(missing.all_below(backlog), timeout=30)
        drained = loop.time() - back
        assert await child.wait() == 0
        await reader
    produced_total = result["produced"]
    assert isinstance(produced_total, int)
    ids = await asyncio.to_thread(received_ids, collector)  # every span checked against its CRC (off the loop)
    durable = result["durable"]
    assert isinstance(durable, dict)
    growth_mb = int(result["growth_kib"]) / 1024  # type: ignore[call-overload]
    print(
        f"\noutage {outage_seconds:.0f}s at {RATE} spans/s: {produced_total} produced ({backlog - down_at} during the "
        f"outage), {len(ids)} received ({len(ids) - len(set(ids))} duplicates), backlog of {backlog} drained "
        f"{drained:.2f}s after the collector returned, delivery retries {durable['delivery_retries']}, peak RSS "
        f"+{growth_mb:.1f} MB over the warm baseline ({int(result['baseline_kib']) // 1024} MB)"
    )
    assert result["dropped_by_processor"] == 0
    assert set(ids) == set(range(produced_total)), "spans lost"
    assert durable["disk_full_items"] == durable["failed_items"] == durable["corrupt_records"] == 0
    assert durable["delivery_retries"] > 0, "the outage was not seen"
    assert drained < 30
    assert growth_mb < 50


async def test_a_short_outage_loses_nothing(tmp_path: Path) -> None:
    await outage(tmp_path, 3.0, 1.0)


@pytest.mark.slow
async def test_a_30_second_outage_at_2000_spans_per_second_loses_nothing(tmp_path: Path) -> None:
    await outage(tmp_path, 30.0, 5.0)
