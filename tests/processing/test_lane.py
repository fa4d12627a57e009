"""A processor with a native lane attached (aiotlp.processing._shipping; aiotlp's SDK processors attach aiotlp's
own over OTLP/HTTP): a batch made ready on another thread is sent on the lane from that thread, the lane's outcomes
are settled once each, what it hands back goes through the exporter, and a flush and the shutdown wait for it.
The lane here is ScriptedLane: the test ends each batch it holds."""

from __future__ import annotations

import asyncio
import threading

from tests.processing.helpers import balanced, make_spans

from aiotlp._exceptions import PermanentError
from aiotlp.export import LANE_CLOSED, SEND_AGAIN, ExportResult
from aiotlp.model import Signal
from aiotlp.processing import BatchProcessor, FlushStatus
from aiotlp.testing import RecordingExporter, ScriptedLane

BATCH = 4


async def with_lane(lane: ScriptedLane, exporter: RecordingExporter, *, slots: int = 2) -> BatchProcessor[object]:
    """A started processor of 4-item batches (no timed export) with ``lane`` attached, its worker waiting."""
    p: BatchProcessor[object] = BatchProcessor(
        exporter,
        Signal.TRACES,
        max_queue_size=64,
        max_export_batch_size=BATCH,
        schedule_delay=3600,
        max_concurrent_exports=slots,
    )
    lane.notify = p.lane_notified
    p.attach_lane(lane)
    p.start()
    for _ in range(3):  # the worker starts and waits: from then on a full batch goes out from the putting thread
        await asyncio.sleep(0)
    return p


def put_from_a_thread(p: BatchProcessor[object], items: list[object]) -> None:
    """As an application thread: put each item (no event loop in that thread)."""
    loop_thread = threading.get_ident()
    seen: list[int] = []

    def put() -> None:
        seen.append(threading.get_ident())
        for item in items:
            p.put_nowait(item)

    thread = threading.Thread(target=put)
    thread.start()
    thread.join(10)
    assert seen and seen[0] != loop_thread


async def turns(n: int = 5) -> None:
    for _ in range(n):
        await asyncio.sleep(0)


async def test_full_batches_from_a_thread_go_on_the_lane_and_are_settled_once() -> None:
    lane, exporter = ScriptedLane(), RecordingExporter()
    p = await with_lane(lane, exporter)
    spans: list[object] = list(make_spans(8))
    put_from_a_thread(p, spans)
    assert lane.sent_items == [spans[:4], spans[4:]]  # sent from the putting thread
    assert exporter.batches == []
    assert balanced(p.statistics()).in_flight == 8
    lane.end()
    lane.end()
    stats = balanced(p.statistics())  # reading the statistics settles what the lane delivered
    assert (stats.exported, stats.in_flight, stats.batches) == (8, 0, 2)
    assert balanced(p.statistics()).exported == 8  # once
    await p.shutdown(timeout=10)
    assert exporter.batches == []


async def test_the_next_full_batch_settles_what_the_lane_delivered() -> None:
    lane, exporter = ScriptedLane(), RecordingExporter()
    p = await with_lane(lane, exporter)
    spans: list[object] = list(make_spans(8))
    put_from_a_thread(p, spans[:4])
    lane.end()  # a full success tells nobody
    put_from_a_thread(p, spans[4:])
    assert p._queue.exported == 4  # settled by the putting thread, as it sent the next batch (no loop turn)
    assert lane.sent_items == [spans[:4], spans[4:]]
    lane.end()
    await p.shutdown(timeout=10)
    assert balanced(p.statistics()).exported == 8


async def test_a_batch_the_lane_hands_back_goes_through_the_exporter() -> None:
    lane, exporter = ScriptedLane(), RecordingExporter()
    p = await with_lane(lane, exporter)
    spans: list[object] = list(make_spans(4))
    put_from_a_thread(p, spans)
    lane.end(SEND_AGAIN)
    await turns()
    assert exporter.items(Signal.TRACES) == spans
    stats = balanced(p.statistics())
    assert (stats.exported, stats.failed, stats.in_flight) == (4, 0, 0)
    await p.shutdown(timeout=10)


async def test_a_result_other_than_full_success_is_settled_on_the_loop() -> None:
    lane, exporter = ScriptedLane(), RecordingExporter()
    p = await with_lane(lane, exporter)
    put_from_a_thread(p, list(make_spans(4)))
    error = PermanentError("the collector refused it (HTTP 400)")
    lane.end(ExportResult(items=4, failed=4, requests=1, error=error))
    await turns()
    stats = balanced(p.statistics())
    assert (stats.exported, stats.failed) == (0, 4)
    assert stats.last_error is not None and "HTTP 400" in stats.last_error
    assert exporter.batches == []  # not sent again
    await p.shutdown(timeout=10)


async def test_a_flush_waits_for_the_lanes_batch() -> None:
    lane, exporter = ScriptedLane(), RecordingExporter()
    p = await with_lane(lane, exporter)
    put_from_a_thread(p, list(make_spans(4)))
    flush = asyncio.ensure_future(p.force_flush(timeout=10))
    await turns()
    assert not flush.done()
    assert lane.wakes_asked >= 1  # so that the lane's full success wakes the loop
    lane.end()
    outcome = await asyncio.wait_for(flush, 10)
    assert (outcome.status, outcome.exported) == (FlushStatus.SUCCESS, 4)
    await p.shutdown(timeout=10)


async def test_a_flush_sends_a_partial_batch_on_the_lane() -> None:
    lane, exporter = ScriptedLane(), RecordingExporter()
    p = await with_lane(lane, exporter)
    put_from_a_thread(p, list(make_spans(3)))
    flush = asyncio.ensure_future(p.force_flush(timeout=10))
    await turns()
    assert [len(items) for items in lane.sent_items] == [3]
    lane.end()
    assert (await asyncio.wait_for(flush, 10)).exported == 3
    assert exporter.batches == []
    await p.shutdown(timeout=10)


async def test_a_full_lane_leaves_batches_queued_until_a_request_ends() -> None:
    lane, exporter = ScriptedLane(workers=1), RecordingExporter()
    p = await with_lane(lane, exporter, slots=1)
    spans: list[object] = list(make_spans(12))
    put_from_a_thread(p, spans)
    assert len(lane.sent) == 1
    assert balanced(p.statistics()).queued == 8
    assert lane.wakes_asked >= 1  # the lane wakes the loop when its request ends
    lane.end()
    await turns()
    assert len(lane.sent) == 2  # the loop sent the next one
    lane.end()
    await turns()
    lane.end()
    await p.shutdown(timeout=10)
    stats = balanced(p.statistics())
    assert (stats.exported, stats.queued) == (12, 0)
    assert lane.sent_items == [spans[:4], spans[4:8], spans[8:]]
    assert exporter.batches == []


async def test_a_lane_that_takes_nothing_leaves_the_batches_to_the_exporter() -> None:
    lane, exporter = ScriptedLane(refuse=True), RecordingExporter()
    p = await with_lane(lane, exporter)
    spans: list[object] = list(make_spans(8))
    put_from_a_thread(p, spans)
    await p.shutdown(timeout=10)
    assert exporter.items(Signal.TRACES) == spans
    assert balanced(p.statistics()).exported == 8


async def test_the_shutdown_deadline_closes_the_lane_and_counts_its_batch() -> None:
    lane, exporter = ScriptedLane(), RecordingExporter()
    p = await with_lane(lane, exporter)
    put_from_a_thread(p, list(make_spans(4)))
    outcome = await p.shutdown(timeout=0.05)  # the lane never ends the batch
    assert outcome.status is FlushStatus.TIMEOUT
    assert lane.closed
    stats = balanced(p.statistics())
    assert (stats.exported, stats.failed, stats.in_flight) == (0, 4, 0)
    assert stats.last_error is not None and "shutdown deadline" in stats.last_error


async def test_a_shutdown_closes_the_lane_after_its_batches_ended() -> None:
    lane, exporter = ScriptedLane(), RecordingExporter()
    p = await with_lane(lane, exporter)
    put_from_a_thread(p, list(make_spans(4)))
    shutdown = asyncio.ensure_future(p.shutdown(timeout=10))
    await turns()
    assert not lane.closed
    lane.end()
    outcome = await asyncio.wait_for(shutdown, 10)
    assert (outcome.status, outcome.exported) == (FlushStatus.SUCCESS, 4)
    assert lane.closed
    assert balanced(p.statistics()).exported == 4


async def test_a_closed_lanes_batch_counts_as_cancelled() -> None:
    lane, exporter = ScriptedLane(), RecordingExporter()
    p = await with_lane(lane, exporter)
    put_from_a_thread(p, list(make_spans(4)))
    lane.close()  # e.g. the bridge's exit closed it
    lane.notify()
    await turns()
    stats = balanced(p.statistics())
    assert (stats.failed, stats.in_flight) == (4, 0)
    assert p._lane_ended == [] and LANE_CLOSED == "closed"
    await p.shutdown(timeout=10)


async def test_a_closed_lane_leaves_ready_batches_to_the_worker() -> None:
    """The lane closed (the bridge's exit closed it) while the processor goes on: a full batch wakes the worker,
    which exports it through the exporter, at once (not at the next tick)."""
    lane, exporter = ScriptedLane(), RecordingExporter()
    p = await with_lane(lane, exporter)
    lane.close()
    spans: list[object] = list(make_spans(4))
    put_from_a_thread(p, spans)
    await turns()
    assert exporter.items(Signal.TRACES) == spans
    await p.shutdown(timeout=10)
    assert balanced(p.statistics()).exported == 4
