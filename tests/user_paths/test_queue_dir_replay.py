"""The disk queue's backlog after a kill -9 is sent as soon as the next process sets its pipeline up (issue 12,
item 2).

Child 1 (the collector is down: a closed port) ends 500 spans, flushes so they are on disk, and is killed with
SIGKILL. Child 2, on the same directory with the collector up, makes the same pipeline and ends NO spans: the
collector must receive all 500 (distinct span ids; at-least-once allows duplicates, not losses), the first
within 2 s of the pipeline's creation and all of them within 10 s, while child 2 is still running.
Reported with the exporter-level ``queue_dir=`` under the official BatchSpanProcessor: 0 of 500 until that
process exports something new.

Every way of turning the queue on: the processor's ``queue_dir=``, the exporter's (under the official processor
and under aiotlp's), and ``AIOTLP_QUEUE_DIR`` (under either processor). tests/user_paths/replay_child.py is the
child.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sys
from pathlib import Path

import pytest
from tests.faults.summary import Figure
from tests.user_paths.helpers import HERE, child_env, fail_if, has, names, run_child, stderr_problems

from aiotlp.testing import FakeCollector, free_port

CHILD = HERE / "replay_child.py"
COUNT = 500
FIRST_WITHIN = 2.0
ALL_WITHIN = 10.0

VARIANTS = (
    "processor-queue_dir",
    "exporter-queue_dir-official",
    "exporter-queue_dir-aiotlp",
    "AIOTLP_QUEUE_DIR-official",
    "AIOTLP_QUEUE_DIR-aiotlp",
)


def _cases() -> list[object]:
    return [
        pytest.param(variant, sig, id=f"{variant}-{sig}", marks=[pytest.mark.slow] if sig == "logs" else [])
        for variant in VARIANTS
        for sig in ("traces", "logs")
    ]


async def write_then_kill(variant: str, sig: str, directory: Path, env: dict[str, str]) -> str:
    """Child 1: returns its FLUSHED line once it is dead."""
    dead = f"http://127.0.0.1:{free_port()}"
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        str(CHILD),
        "write",
        variant,
        sig,
        dead,
        str(directory),
        str(COUNT),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=env,
    )
    assert process.stdout is not None and process.stderr is not None
    try:
        line = (await asyncio.wait_for(process.stdout.readline(), 30)).decode(errors="replace")
    finally:
        if process.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                process.send_signal(signal.SIGKILL)
        await process.wait()
    if not line.startswith("FLUSHED"):
        error = (await process.stderr.read()).decode(errors="replace").strip().splitlines()
        pytest.fail(f"the writing process failed: {error[-1] if error else line!r}", pytrace=False)
    return line.strip()


@pytest.mark.parametrize(("variant", "sig"), _cases())
async def test_the_backlog_left_by_kill_9_is_replayed_without_new_exports(
    collector: FakeCollector, figure: Figure, tmp_path: Path, variant: str, sig: str
) -> None:
    directory = tmp_path / "queue"
    env = child_env({"AIOTLP_QUEUE_DIR": str(directory)} if variant.startswith("AIOTLP_QUEUE_DIR") else {})
    flushed = await write_then_kill(variant, sig, directory, env)
    fail_if([] if flushed == "FLUSHED True" else [f"the writing process's force_flush: {flushed}"])
    fail_if([] if (directory / sig).is_dir() and os.listdir(directory / sig) else [f"nothing on disk in {directory}"])

    loop = asyncio.get_running_loop()
    timing: dict[str, float | None] = {}

    async def on_hold() -> int:  # the pipeline exists, nothing was ended: watch the collector
        start = loop.time()
        try:
            await collector.wait_for(1, timeout=FIRST_WITHIN)
            timing["first"] = loop.time() - start
        except TimeoutError:
            timing["first"] = None
        with contextlib.suppress(TimeoutError):
            await collector.wait_for(has(COUNT, sig), timeout=max(0.0, ALL_WITHIN - (loop.time() - start)))
        return len(set(names(collector, sig)))

    run = await run_child(
        CHILD, ["replay", variant, sig, collector.http_endpoint, str(directory), str(COUNT)], env, on_hold=on_hold
    )
    after_exit = len(set(names(collector, sig)))
    problems = stderr_problems(run)
    if run.held != COUNT:
        problems.append(
            f"{run.held} of {COUNT} replayed within {ALL_WITHIN:g} s of the pipeline's creation "
            f"({after_exit} once the process had exited)"
        )
    if timing.get("first") is None:
        problems.append(f"nothing arrived within {FIRST_WITHIN:g} s")
    figure.criterion = f"kill -9 after a flush; the next process, ending nothing, replays all within {ALL_WITHIN:g} s"
    figure.load, figure.faults, figure.lost = COUNT, 1, COUNT - after_exit
    first = timing.get("first")
    figure.measured = f"replayed {run.held} of {COUNT}" + ("" if first is None else f", first after {first:.2f} s")
    if sig == "traces":
        ids = {span.span_id for span in collector.spans()}
        if len(ids) != after_exit:
            problems.append(f"{len(ids)} distinct span ids for {after_exit} distinct spans")
    fail_if(problems)
