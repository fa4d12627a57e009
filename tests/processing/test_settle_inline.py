"""An export that returns settles its batch in its own task's last step (``_call_export``), not in a done callback a
loop iteration later; every other end (an exception, a cancellation: by ``export_timeout``, at the shutdown
deadline, or before the export even started) still settles through the callback. Both count the same: each item
once, under its reason, and the next batch starts as the export ends. On fast-forwarded loop time (looptime)."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import pytest
from tests.processing.helpers import balanced, make_spans

from aiotlp import DeadlineExceededError
from aiotlp.export import ExportResult
from aiotlp.model import Signal
from aiotlp.processing import BatchProcessor, FlushStatus

pytestmark = pytest.mark.looptime


class Scripted:
    """An exporter whose n-th export does what ``script[n]`` says (then returns a full success)."""

    def __init__(self, *script: str) -> None:
        self.script = list(script)
        self.calls = 0

    async def export_traces(self, spans: Sequence[object]) -> ExportResult:
        self.calls += 1
        n = len(spans)
        what = self.script.pop(0) if self.script else "success"
        if what == "success":
            return ExportResult(items=n, accepted=n, requests=1)
        if what == "partial":
            return ExportResult(items=n, accepted=n - 1, rejected=1, requests=1, error_message="one too old")
        if what == "failed":
            return ExportResult(items=n, failed=n, error=DeadlineExceededError("the collector did not answer"))
        if what == "raises":
            raise RuntimeError("the exporter broke")
        await asyncio.sleep(3600)  # "hangs"
        raise AssertionError("not reached")

    async def shutdown(self, timeout: float | None = None) -> None:
        pass


# script -> (exported, rejected, failed, the last error's start)
CASES = {
    "success": (["success"], (4, 0, 0, None)),
    "partial success": (["partial"], (3, 1, 0, "partial success, 1 rejected: one too old")),
    "a failed result": (["failed"], (0, 0, 4, "DeadlineExceededError")),
    "an exception": (["raises"], (0, 0, 4, "RuntimeError: the exporter broke")),
    "export_timeout": (["hangs"], (0, 0, 4, "TimeoutError: the export took longer than export_timeout")),
}


@pytest.mark.parametrize("case", list(CASES))
async def test_each_end_is_counted_once_under_its_reason(case: str) -> None:
    script, (exported, rejected, failed, error) = CASES[case]
    exporter = Scripted(*script)
    p = BatchProcessor(exporter, Signal.TRACES, max_export_batch_size=4, export_timeout=5, schedule_delay=100)
    p.start()
    for span in make_spans(4):
        p.put_nowait(span)
    outcome = await p.force_flush(timeout=30)
    stats = balanced(p.statistics())
    assert (stats.exported, stats.rejected, stats.failed, stats.in_flight) == (exported, rejected, failed, 0)
    assert (stats.last_error or None) is None if error is None else (stats.last_error or "").startswith(error)
    assert outcome.status is (FlushStatus.SUCCESS if case == "success" else FlushStatus.FAILURE)
    assert (outcome.exported, outcome.rejected, outcome.failed) == (exported, rejected, failed)
    # the processor goes on: the next batch is exported and counted
    for span in make_spans(4):
        p.put_nowait(span)
    assert await p.force_flush(timeout=30)
    assert balanced(p.statistics()).exported == exported + 4
    await p.shutdown()


async def test_an_export_cancelled_at_the_shutdown_deadline_is_counted_failed() -> None:
    p = BatchProcessor(Scripted("hangs"), Signal.TRACES, max_export_batch_size=4, schedule_delay=100)
    p.start()
    for span in make_spans(6):
        p.put_nowait(span)
    outcome = await p.shutdown(timeout=2)
    stats = balanced(p.statistics())
    assert outcome.status is FlushStatus.TIMEOUT
    assert (stats.failed, stats.dropped["shutdown"], stats.exported) == (4, 2, 0)
    assert stats.last_error == "TimeoutError: the shutdown deadline passed"


async def test_an_export_cancelled_before_it_started_is_counted_failed() -> None:
    """A task cancelled before its first step never runs ``_call_export``: its done callback settles it."""
    exporter = Scripted()
    p = BatchProcessor(exporter, Signal.TRACES, max_export_batch_size=4, schedule_delay=100)
    p.start()
    await asyncio.sleep(0)  # the worker waits
    cancelled: list[asyncio.Task[object]] = []

    def cancel_the_new_export() -> None:  # runs after the worker launched the batch, before the export's first step
        for task in list(p._running):
            task.cancel()
            cancelled.append(task)

    for span in make_spans(4):
        p.put_nowait(span)  # the fourth makes the batch ready: the worker launches it on the next iteration
    asyncio.get_running_loop().call_soon(cancel_the_new_export)  # after the worker's wake-up, in its iteration
    outcome = await p.force_flush(timeout=30)
    assert len(cancelled) == 1 and exporter.calls == 0
    stats = balanced(p.statistics())
    assert (stats.failed, stats.exported, stats.in_flight) == (4, 0, 0)
    assert stats.last_error == "CancelledError: cancelled"
    assert outcome.status is FlushStatus.FAILURE
    await p.shutdown()


async def test_the_next_batch_starts_as_an_export_returns() -> None:
    """One export slot, three batches ready: each starts in the step the previous one returns in (no tick)."""
    exporter = Scripted()
    p = BatchProcessor(exporter, Signal.TRACES, max_export_batch_size=4, schedule_delay=100)
    p.start()
    start = asyncio.get_running_loop().time()
    for span in make_spans(12):
        p.put_nowait(span)
    assert await p.force_flush(timeout=30)
    assert asyncio.get_running_loop().time() == start  # no tick, no timer: all three at once
    assert exporter.calls == 3
    assert balanced(p.statistics()).exported == 12
    await p.shutdown()
