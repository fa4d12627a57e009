"""export_timeout with one timer for all the exports in flight: each export is cancelled at its own start +
export_timeout, whatever ran before it or beside it, and the timer does not outlive the processor.
Fast-forwarded loop time (looptime)."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass, field

import pytest
from tests.processing.helpers import ControlledExporter, balanced, make_spans, now

from aiotlp.model import Signal
from aiotlp.processing import BatchProcessor

pytestmark = pytest.mark.looptime


@dataclass
class Recording(ControlledExporter):
    """Records when each export was cancelled (a hung export never finishes)."""

    cancelled_at: list[float] = field(default_factory=list)

    async def _export(self, signal: Signal, items: Sequence[object]) -> object:  # type: ignore[override]
        try:
            return await super()._export(signal, items)
        except asyncio.CancelledError:
            self.cancelled_at.append(now())
            raise


def processor(exporter: ControlledExporter, **kwargs: object) -> BatchProcessor[object]:
    return BatchProcessor(exporter, Signal.TRACES, max_export_batch_size=2, schedule_delay=3600, **kwargs)  # type: ignore[arg-type]


async def test_exports_in_flight_together_are_each_cancelled_at_their_own_deadline() -> None:
    exporter = Recording(hold=True)
    p = processor(exporter, export_timeout=10, max_concurrent_exports=3)
    p.start()
    start = now()
    for n, second in enumerate((0, 2, 7), 1):  # three hung exports, started at 0, 2 and 7 s
        await asyncio.sleep(start + second - now())
        for span in make_spans(2):
            p.put_nowait(span)
        await exporter.wait_calls(n)
    await p.force_flush()  # settles when the last one is cancelled
    assert [t - start for t in exporter.cancelled_at] == pytest.approx([10, 12, 17])
    stats = balanced(p.statistics())
    assert stats.failed == 6 and "export_timeout" in (stats.last_error or "")
    await p.shutdown(timeout=1)


async def test_a_hung_export_after_quick_ones_is_cancelled_at_its_own_deadline() -> None:
    exporter = Recording()
    p = processor(exporter, export_timeout=10)
    p.start()
    start = now()
    for n in range(1, 4):  # quick exports at 0, 3 and 6 s: the timer armed for the first one's deadline (10 s)
        await asyncio.sleep(start + 3 * (n - 1) - now())
        for span in make_spans(2):
            p.put_nowait(span)
        await exporter.wait_finished(n)
    await asyncio.sleep(start + 8 - now())
    exporter.hold = True
    for span in make_spans(2):  # hung, from 8 s: cancelled at 18 s, not at 10 s
        p.put_nowait(span)
    await p.force_flush()
    assert [t - start for t in exporter.cancelled_at] == pytest.approx([18])
    assert balanced(p.statistics()).failed == 2
    exporter.hold = False
    for span in make_spans(2):  # and the next one works
        p.put_nowait(span)
    await exporter.wait_finished(4)
    await p.shutdown(timeout=1)
    assert balanced(p.statistics()).exported == 8


async def test_no_timer_of_the_processor_outlives_its_shutdown() -> None:
    exporter = ControlledExporter()
    loop = asyncio.get_running_loop()
    before = {id(handle) for handle in loop._scheduled if not handle.cancelled()}  # type: ignore[attr-defined]
    p = processor(exporter, export_timeout=30)
    p.start()
    for span in make_spans(6):
        p.put_nowait(span)
    await exporter.wait_finished(3)
    await p.shutdown(timeout=1)
    live = [h for h in loop._scheduled if not h.cancelled() and id(h) not in before]  # type: ignore[attr-defined]
    assert live == []
