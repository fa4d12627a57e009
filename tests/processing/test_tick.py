"""The batch processor's periodic tick under wake-ups: full batches that wake the worker between ticks neither
move the tick nor hold back what waits for it (the worker keeps one timer for the tick across wake-ups).
Fast-forwarded loop time (looptime)."""

from __future__ import annotations

import asyncio

import pytest
from tests.processing.helpers import ControlledExporter, balanced, make_spans, now

from aiotlp.model import Signal
from aiotlp.processing import BatchProcessor

pytestmark = pytest.mark.looptime


async def test_wake_ups_between_ticks_keep_the_periodic_tick() -> None:
    exporter = ControlledExporter()
    p: BatchProcessor[object] = BatchProcessor(
        exporter,  # type: ignore[arg-type]
        Signal.TRACES,
        max_export_batch_size=2,
        max_queue_size=64,
        schedule_delay=10,
    )
    p.start()
    start = now()
    exported = 0
    for second in (1, 2, 3, 12, 13, 14):  # full batches: each wakes the worker, exported at once
        await asyncio.sleep(start + second - now())
        for span in make_spans(2):
            p.put_nowait(span)
        exported += 1
        await exporter.wait_finished(exported)
        assert exporter.calls[-1].started - start == pytest.approx(second)
        if second in (3, 14):  # then one span alone: it waits for the next tick, at 10 s and at 20 s
            p.put_nowait(make_spans(1)[0])
            exported += 1
            await exporter.wait_finished(exported)
            assert exporter.calls[-1].started - start == pytest.approx(10 if second == 3 else 20)
            assert len(exporter.calls[-1].items) == 1
    await asyncio.sleep(start + 35 - now())
    p.put_nowait(make_spans(1)[0])  # an idle stretch of ticks, then one span: the tick at 40 s
    await exporter.wait_finished(exported + 1)
    assert exporter.calls[-1].started - start == pytest.approx(40)
    await p.shutdown()
    assert balanced(p.statistics()).exported == 15


async def test_the_worker_leaves_no_timer_behind_when_it_stops() -> None:
    exporter = ControlledExporter()
    p: BatchProcessor[object] = BatchProcessor(exporter, Signal.TRACES, schedule_delay=1000)  # type: ignore[arg-type]
    loop = asyncio.get_running_loop()
    before = {id(handle) for handle in loop._scheduled if not handle.cancelled()}  # type: ignore[attr-defined]
    p.start()
    for span in make_spans(3):
        p.put_nowait(span)
    await p.force_flush(timeout=1)
    await p.shutdown()
    live = [h for h in loop._scheduled if not h.cancelled() and id(h) not in before]  # type: ignore[attr-defined]
    assert live == []
