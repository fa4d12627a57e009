"""BatchProcessor on one event loop, on fast-forwarded loop time (looptime): triggers, policies, caps, limits,
deadlines, failures and the ledger."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence

import pytest
from tests.processing.helpers import (
    ControlledExporter,
    balanced,
    make_logs,
    make_metric,
    make_spans,
    now,
    otlp_exporter,
)

from aiotlp import ConfigurationError, QueueFullError, RejectedError
from aiotlp.config import BatchConfig
from aiotlp.encoding import PartialSuccess
from aiotlp.export import ExportResult
from aiotlp.model import Signal, Span
from aiotlp.processing import SHUTDOWN_GRACE, BatchProcessor, FlushOutcome, FlushStatus, estimate_size
from aiotlp.testing import Outcome, RecordingExporter, ScriptedTransport

pytestmark = pytest.mark.looptime


def processor(exporter: object, signal: Signal = Signal.TRACES, **kwargs: object) -> BatchProcessor[object]:
    return BatchProcessor(exporter, signal, **kwargs)  # type: ignore[arg-type]


# --- triggers --------------------------------------------------------------------------------------------


async def test_a_full_batch_is_exported_at_once_the_rest_at_the_tick() -> None:
    exporter = ControlledExporter()
    p = processor(exporter, max_export_batch_size=4, max_queue_size=16, schedule_delay=100)
    p.start()
    start = now()
    spans = make_spans(7)
    assert all(p.put_nowait(span) for span in spans)
    await exporter.wait_finished(1)
    assert now() - start == pytest.approx(0)
    assert exporter.calls[0].items == spans[:4]
    await exporter.wait_finished(2)
    assert now() - start == pytest.approx(100)  # the partial batch waited for the tick
    assert exporter.calls[1].items == spans[4:]
    await p.shutdown()
    assert balanced(p.statistics()).exported == 7


async def test_the_tick_is_periodic_so_an_item_waits_at_most_schedule_delay() -> None:
    exporter = ControlledExporter()
    p = processor(exporter, schedule_delay=10)
    p.start()
    start = now()
    await asyncio.sleep(3)
    p.put_nowait(make_spans(1)[0])
    await exporter.wait_finished(1)
    assert exporter.calls[0].started - start == pytest.approx(10)  # the tick at 10 s, 7 s after the put
    await asyncio.sleep(15)  # now at 25 s
    p.put_nowait(make_spans(1)[0])
    await exporter.wait_finished(2)
    assert exporter.calls[1].started - start == pytest.approx(30)  # the tick at 30 s
    await p.shutdown()


async def test_force_flush_exports_everything_now_and_reports_it() -> None:
    exporter = ControlledExporter()
    p = processor(exporter, max_export_batch_size=4, schedule_delay=100)
    start = now()
    for span in make_spans(5):
        p.put_nowait(span)  # starts the processor lazily, on this loop
    assert p.loop is asyncio.get_running_loop()
    outcome = await p.force_flush(timeout=1)
    assert outcome == FlushOutcome(FlushStatus.SUCCESS, exported=5)
    assert outcome and outcome.ok
    assert now() - start == pytest.approx(0)
    assert [len(call.items) for call in exporter.calls] == [4, 1]
    await p.shutdown()


async def test_force_flush_waits_only_for_items_put_before_it() -> None:
    exporter = ControlledExporter(hold=True)
    p = processor(exporter, max_export_batch_size=2, schedule_delay=100)
    p.start()
    first, later = make_spans(2), make_spans(2, start=2)
    for span in first:
        p.put_nowait(span)
    flush = asyncio.create_task(p.force_flush())
    await exporter.wait_calls(1)
    for span in later:
        p.put_nowait(span)  # a full batch, queued behind the held export
    exporter.release(0)
    outcome = await flush
    assert outcome == FlushOutcome(FlushStatus.SUCCESS, exported=2)
    stats = balanced(p.statistics())
    assert stats.queued + stats.in_flight == 2  # the later items are not waited for
    exporter.release_all()
    await p.shutdown()


async def test_an_empty_flush_succeeds_at_once() -> None:
    p = processor(RecordingExporter())
    assert await p.force_flush(timeout=0) == FlushOutcome(FlushStatus.SUCCESS)
    await p.shutdown()


# --- policies and caps -----------------------------------------------------------------------------------


async def test_drop_newest_drops_the_new_items_and_counts_them() -> None:
    exporter = ControlledExporter()
    p = processor(exporter, max_queue_size=4, max_export_batch_size=4, schedule_delay=100)
    p.start()
    spans = make_spans(6)
    assert [p.put_nowait(span) for span in spans] == [True] * 4 + [False] * 2
    stats = balanced(p.statistics())
    assert (stats.produced, stats.queued, stats.dropped["queue_full"]) == (6, 4, 2)
    await p.force_flush()
    assert exporter.exported_items == spans[:4]
    await p.shutdown()


async def test_drop_oldest_evicts_the_oldest_to_admit_the_new() -> None:
    exporter = ControlledExporter()
    p = processor(exporter, max_queue_size=4, max_export_batch_size=2, schedule_delay=100, policy="drop_oldest")
    p.start()
    spans = make_spans(7)
    assert all(p.put_nowait(span) for span in spans)
    stats = balanced(p.statistics())
    assert (stats.produced, stats.queued, stats.dropped["queue_full"]) == (7, 4, 3)
    await p.force_flush()
    assert exporter.exported_items == spans[3:]
    await p.shutdown()


async def test_block_waits_for_room_and_put_nowait_still_drops() -> None:
    exporter = ControlledExporter(hold=True)
    p = processor(
        exporter, max_queue_size=4, max_export_batch_size=2, schedule_delay=100, export_timeout=1000, policy="block"
    )
    p.start()
    spans = make_spans(8)
    for span in spans[:4]:
        assert await p.put(span)  # room: no wait
    await exporter.wait_calls(1)  # the first batch is in flight (held), the second waits for the slot
    for span in spans[4:6]:
        assert await p.put(span)
    assert p.statistics().queued == 4  # full
    assert not p.put_nowait(spans[6])  # put_nowait never waits: dropped
    blocked = asyncio.create_task(p.put(spans[7]))
    done, _ = await asyncio.wait({blocked}, timeout=50)
    assert not done  # still waiting for room, 50 s later
    assert balanced(p.statistics()).produced == 7  # a waiting put is not counted yet
    exporter.release(0)  # the worker takes the next batch: room
    assert await blocked
    exporter.release_all()
    await p.force_flush()
    assert exporter.exported_items == spans[:6] + spans[7:]
    stats = balanced(p.statistics())
    assert (stats.produced, stats.exported, stats.dropped["queue_full"]) == (8, 7, 1)
    await p.shutdown()


async def test_block_put_gives_up_when_shutdown_begins() -> None:
    exporter = ControlledExporter(hold=True)
    p = processor(exporter, max_queue_size=2, max_export_batch_size=2, schedule_delay=100, policy="block")
    p.start()
    for span in make_spans(2):
        await p.put(span)
    await exporter.wait_calls(1)
    for span in make_spans(2, start=2):
        await p.put(span)
    blocked = asyncio.create_task(p.put(make_spans(1, start=9)[0]))
    done, _ = await asyncio.wait({blocked}, timeout=5)
    assert not done
    shutdown = asyncio.create_task(p.shutdown(timeout=10))
    assert await blocked is False
    assert p.statistics().dropped["already_shutdown"] == 1
    exporter.release_all()
    assert await shutdown == FlushOutcome(FlushStatus.SUCCESS, exported=4)
    assert balanced(p.statistics()).exported == 4


async def test_stop_accepting_refuses_items_and_exports_nothing_more() -> None:
    exporter = RecordingExporter()
    p = processor(exporter, schedule_delay=100)
    assert p.put_nowait(make_spans(1)[0])
    p.stop_accepting()
    assert p.is_shutdown
    assert not p.put_nowait(make_spans(1, start=1)[0])
    assert not await p.put(make_spans(1, start=2)[0])
    stats = balanced(p.statistics())
    assert (stats.produced, stats.queued, stats.dropped["already_shutdown"]) == (3, 1, 2)
    assert exporter.batches == []  # nothing exported by it: shutdown exports what is queued
    assert (await p.shutdown(timeout=5)).exported == 1


async def test_byte_cap_with_a_custom_size_of() -> None:
    exporter = ControlledExporter()

    def size_of(span: Span) -> int:
        return len(span.name)

    p = processor(exporter, max_queue_bytes=10, max_queue_size=100, max_export_batch_size=10, size_of=size_of)
    p.start()
    assert p.put_nowait(make_spans(1, name="abcd")[0])
    assert p.put_nowait(make_spans(1, name="efgh")[0])
    assert not p.put_nowait(make_spans(1, name="ijk")[0])  # 11 > 10 bytes
    assert p.put_nowait(make_spans(1, name="ij")[0])  # exactly 10
    stats = balanced(p.statistics())
    assert (stats.queued, stats.queued_bytes, stats.byte_capacity) == (3, 10, 10)
    assert stats.dropped["queue_full"] == 1
    await p.force_flush()
    assert p.statistics().queued_bytes == 0
    assert not p.put_nowait(make_spans(1, name="x" * 11)[0])  # larger than the whole cap: never fits
    await p.shutdown()


async def test_byte_cap_drop_oldest_evicts_as_many_as_needed() -> None:
    exporter = ControlledExporter()
    p = processor(
        exporter,
        max_queue_bytes=10,
        max_export_batch_size=10,
        policy="drop_oldest",
        size_of=lambda span: len(span.name),
    )
    p.start()
    small = [make_spans(1, start=i, name="ab")[0] for i in range(5)]  # 5 x 2 bytes: full
    for span in small:
        assert p.put_nowait(span)
    big = make_spans(1, start=9, name="abcdefg")[0]  # 7 bytes: evicts the 4 oldest
    assert p.put_nowait(big)
    stats = balanced(p.statistics())
    assert (stats.queued, stats.queued_bytes, stats.dropped["queue_full"]) == (2, 9, 4)
    await p.force_flush()
    assert exporter.exported_items == [small[4], big]
    await p.shutdown()


async def test_the_default_size_of_is_the_estimate() -> None:
    exporter = ControlledExporter()
    p = processor(exporter, max_queue_bytes=100_000)
    spans = make_spans(3, name="a-name")
    for span in spans:
        p.put_nowait(span)
    assert p.statistics().queued_bytes == sum(estimate_size(span) for span in spans) > 0
    await p.shutdown()


def test_estimate_size_grows_with_content() -> None:
    small = make_spans(1)[0]
    big = Span(
        trace_id=1,
        span_id=1,
        name="work",
        start_time_unix_nano=1,
        end_time_unix_nano=2,
        attributes={"sql": "SELECT * FROM t WHERE x = 1" * 10, "n": 1, "list": [1, 2, 3]},
    )
    assert 80 <= estimate_size(small) < estimate_size(big)
    assert estimate_size(make_logs(1)[0]) > 40
    assert estimate_size(make_metric(10)) > estimate_size(make_metric(1))
    assert estimate_size(object()) == 64  # duck typing finds nothing on a bare object


# --- concurrency, deadlines, failures --------------------------------------------------------------------


@pytest.mark.parametrize("limit", [1, 3])
async def test_never_more_exports_in_flight_than_max_concurrent_exports(limit: int) -> None:
    transport = ScriptedTransport(default=Outcome(delay=1))
    p = processor(otlp_exporter(transport), max_export_batch_size=2, max_concurrent_exports=limit, schedule_delay=100)
    p.start()
    start = now()
    for span in make_spans(20):
        p.put_nowait(span)
    checker_peak = 0

    async def watch() -> None:
        nonlocal checker_peak
        while True:
            checker_peak = max(checker_peak, p.statistics().in_flight)
            await asyncio.sleep(0.25)

    watcher = asyncio.create_task(watch())
    assert await p.force_flush() == FlushOutcome(FlushStatus.SUCCESS, exported=20)
    watcher.cancel()
    assert transport.max_active == limit
    assert checker_peak <= 2 * limit
    assert now() - start == pytest.approx(-(-10 // limit))  # 10 batches of 1 s, `limit` at a time
    await p.shutdown()


async def test_force_flush_honours_its_deadline_with_a_hung_exporter() -> None:
    transport = ScriptedTransport(default=Outcome(delay=3600))
    p = processor(otlp_exporter(transport), max_export_batch_size=4, export_timeout=1000, schedule_delay=100)
    p.start()
    for span in make_spans(10):
        p.put_nowait(span)
    start = now()
    outcome = await p.force_flush(timeout=2)
    assert now() - start == pytest.approx(2)
    assert outcome == FlushOutcome(FlushStatus.TIMEOUT, pending=10)
    assert not outcome
    stats = balanced(p.statistics())
    assert (stats.in_flight, stats.queued) == (4, 6)  # the flush timed out; the export goes on

    start = now()
    outcome = await p.shutdown(timeout=3)
    assert 3 <= now() - start <= 3 + 2 * SHUTDOWN_GRACE
    assert outcome.status is FlushStatus.TIMEOUT
    assert (outcome.failed, outcome.dropped, outcome.pending) == (4, 6, 0)
    stats = balanced(p.statistics())
    assert (stats.failed, stats.dropped["shutdown"], stats.queued, stats.in_flight) == (4, 6, 0, 0)
    assert "shutdown deadline" in (stats.last_error or "")
    assert transport.closed  # the exporter was shut down too

    start = now()
    assert await p.shutdown(timeout=3) is outcome  # a second shutdown returns at once
    assert now() == start


async def test_export_timeout_cancels_a_hung_export() -> None:
    transport = ScriptedTransport([Outcome(delay=3600)])
    p = processor(otlp_exporter(transport), export_timeout=5, schedule_delay=100)
    p.start()
    for span in make_spans(3):
        p.put_nowait(span)
    start = now()
    outcome = await p.force_flush()
    assert now() - start == pytest.approx(5)
    assert outcome.status is FlushStatus.FAILURE
    assert outcome.failed == 3
    stats = balanced(p.statistics())
    assert stats.failed == 3
    assert "export_timeout" in (stats.last_error or "")
    p.put_nowait(make_spans(1)[0])  # the next export works
    assert await p.force_flush() == FlushOutcome(FlushStatus.SUCCESS, exported=1)
    await p.shutdown()


async def test_shutdown_flushes_then_shuts_the_exporter_down_with_the_time_left() -> None:
    exporter = ControlledExporter()
    p = processor(exporter, schedule_delay=100)
    for span in make_spans(5):
        p.put_nowait(span)
    outcome = await p.shutdown(timeout=7)
    assert outcome == FlushOutcome(FlushStatus.SUCCESS, exported=5)
    assert exporter.shutdown_calls == [pytest.approx(7)]
    assert p.is_shutdown


async def test_a_hung_exporter_shutdown_cannot_hold_the_processor_shutdown_past_its_deadline() -> None:
    class HangsOnShutdown(ControlledExporter):
        async def shutdown(self, timeout: float | None = None) -> None:
            self.shutdown_calls.append(timeout)
            await asyncio.sleep(3600)

    exporter = HangsOnShutdown()
    p = processor(exporter)
    p.put_nowait(make_spans(1)[0])
    start = now()
    outcome = await p.shutdown(timeout=4)
    assert now() - start == pytest.approx(4 + 2 * SHUTDOWN_GRACE)
    assert outcome == FlushOutcome(FlushStatus.TIMEOUT, exported=1, error="the exporter did not shut down in time")
    assert exporter.shutdown_calls == [pytest.approx(4)]


async def test_after_shutdown_puts_and_flushes_fail_without_raising() -> None:
    exporter = ControlledExporter()
    p = processor(exporter, policy="block")
    await p.shutdown()
    spans = make_spans(3)
    assert not p.put_nowait(spans[0])
    assert not await p.put(spans[1])
    outcome = await p.force_flush()
    assert outcome.status is FlushStatus.FAILURE
    assert "shut down" in outcome.error
    stats = balanced(p.statistics())
    assert (stats.produced, stats.dropped["already_shutdown"]) == (2, 2)
    assert exporter.calls == []


async def test_failed_exports_are_counted_and_reported() -> None:
    exporter = RecordingExporter()
    exporter.fail_with = RejectedError("collector said no", status=400)
    p = processor(exporter, schedule_delay=100)
    for span in make_spans(4):
        p.put_nowait(span)
    outcome = await p.force_flush()
    assert outcome.status is FlushStatus.FAILURE
    assert outcome.failed == 4
    assert outcome.error == "RejectedError: collector said no"
    stats = balanced(p.statistics())
    assert (stats.failed, stats.batches, stats.last_error) == (4, 1, "RejectedError: collector said no")
    await p.shutdown()


async def test_partial_success_counts_rejected_items() -> None:
    transport = ScriptedTransport([Outcome(response=PartialSuccess(rejected=2, error_message="bad spans"))])
    exporter = otlp_exporter(transport)
    p = processor(exporter, schedule_delay=100)
    for span in make_spans(5):
        p.put_nowait(span)
    outcome = await p.force_flush()
    assert (outcome.status, outcome.exported, outcome.rejected) == (FlushStatus.FAILURE, 3, 2)
    stats = balanced(p.statistics())
    assert (stats.exported, stats.rejected, stats.retries) == (3, 2, 0)
    assert "bad spans" in (stats.last_error or "")
    await p.shutdown()


async def test_items_too_large_for_a_request_are_dropped_as_too_large() -> None:
    transport = ScriptedTransport()
    p = processor(otlp_exporter(transport, max_request_bytes=1024), schedule_delay=100)
    p.put_nowait(make_spans(1, name="x" * 2000)[0])
    for span in make_spans(3, start=1):
        p.put_nowait(span)
    outcome = await p.force_flush()
    assert (outcome.status, outcome.exported, outcome.dropped) == (FlushStatus.FAILURE, 3, 1)
    stats = balanced(p.statistics())
    assert (stats.exported, stats.dropped["too_large"]) == (3, 1)
    await p.shutdown()


async def test_an_exporter_that_raises_or_miscounts_cannot_break_the_ledger(caplog: pytest.LogCaptureFixture) -> None:
    results: list[object] = [RuntimeError("boom"), ExportResult(items=1, accepted=1), "nonsense"]

    class Misbehaving(ControlledExporter):
        async def export_traces(self, spans: object) -> ExportResult:
            result = results.pop(0)
            if isinstance(result, Exception):
                raise result
            return result  # type: ignore[return-value]

    p = processor(Misbehaving(), max_export_batch_size=2, schedule_delay=100)
    for span in make_spans(6):
        p.put_nowait(span)
    with caplog.at_level(logging.WARNING, logger="aiotlp.processing"):
        outcome = await p.force_flush()
    assert (outcome.exported, outcome.failed) == (1, 5)
    stats = balanced(p.statistics())
    assert (stats.exported, stats.failed, stats.batches) == (1, 5, 3)
    assert "did not fully succeed" in caplog.text  # logged, rate-limited: one line for three failures
    assert len(caplog.records) == 1
    await p.shutdown()


async def test_metrics_are_batched_and_counted_by_data_points() -> None:
    exporter = ControlledExporter()
    p = processor(exporter, Signal.METRICS, max_export_batch_size=5, max_queue_size=12, schedule_delay=100)
    metrics = [make_metric(3, name=f"m{i}") for i in range(4)] + [make_metric(20, name="huge")]
    assert [p.put_nowait(m) for m in metrics] == [True] * 4 + [False]  # 20 points > 12: never fits
    stats = balanced(p.statistics())
    assert (stats.produced, stats.queued, stats.dropped["queue_full"]) == (32, 12, 20)
    outcome = await p.force_flush()
    assert outcome == FlushOutcome(FlushStatus.SUCCESS, exported=12)
    assert [len(call.items) for call in exporter.calls] == [1, 1, 1, 1]  # 3 + 3 > 5
    await p.shutdown()


async def test_logs_use_export_logs() -> None:
    exporter = ControlledExporter()
    p = processor(exporter, Signal.LOGS)
    records = make_logs(3)
    for record in records:
        p.put_nowait(record)
    await p.shutdown()
    assert exporter.exported_items == records


# --- construction ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "name"),
    [
        ({"max_queue_size": 0}, "max_queue_size"),
        ({"max_queue_size": True}, "max_queue_size"),
        ({"max_queue_bytes": -1}, "max_queue_bytes"),
        ({"max_export_batch_size": 0}, "max_export_batch_size"),
        ({"max_export_batch_size": 4096}, "max_export_batch_size"),
        ({"schedule_delay": 0}, "schedule_delay"),
        ({"schedule_delay": float("inf")}, "schedule_delay"),
        ({"export_timeout": -1}, "export_timeout"),
        ({"max_concurrent_exports": 0}, "max_concurrent_exports"),
        ({"policy": "drop_everything"}, "policy"),
        ({"size_of": 42}, "size_of"),
        ({"meter_provider": object()}, "meter_provider"),
    ],
)
def test_validation_names_the_parameter(kwargs: dict[str, object], name: str) -> None:
    with pytest.raises(ConfigurationError, match=name):
        BatchProcessor(RecordingExporter(), Signal.TRACES, **kwargs)  # type: ignore[arg-type]


def test_validation_of_the_exporter_and_the_signal() -> None:
    with pytest.raises(ConfigurationError, match="exporter"):
        BatchProcessor(object(), Signal.TRACES)  # type: ignore[arg-type]
    with pytest.raises(ConfigurationError, match="signal"):
        BatchProcessor(RecordingExporter(), "profiles")  # type: ignore[arg-type]
    assert BatchProcessor(RecordingExporter(), "logs").signal is Signal.LOGS  # type: ignore[arg-type]


async def test_timeouts_are_validated() -> None:
    p = processor(RecordingExporter())
    for bad in (-1, float("nan"), "5"):
        with pytest.raises(ConfigurationError, match="timeout"):
            await p.force_flush(bad)  # type: ignore[arg-type]
    await p.shutdown()


def test_from_config_takes_the_batch_settings() -> None:
    config = BatchConfig.from_env("log", {"OTEL_BLRP_MAX_QUEUE_SIZE": "100", "OTEL_BLRP_MAX_EXPORT_BATCH_SIZE": "10"})
    p = BatchProcessor.from_config(RecordingExporter(), Signal.LOGS, config, policy="drop_oldest")
    stats = p.statistics()
    assert (stats.capacity, p.policy, p.signal) == (100, "drop_oldest", Signal.LOGS)
    assert p.schedule_delay == 1.0  # OTEL_BLRP_SCHEDULE_DELAY's default
    with pytest.raises(ConfigurationError, match="config"):
        BatchProcessor.from_config(RecordingExporter(), Signal.LOGS, {"max_queue_size": 1})  # type: ignore[arg-type]


def test_start_needs_a_loop() -> None:
    p = processor(RecordingExporter())
    with pytest.raises(RuntimeError, match="running event loop"):
        p.start()
    assert p.put_nowait(make_spans(1)[0])  # without a loop it queues, it does not fail
    assert p.statistics().queued == 1


async def test_start_on_another_loop_is_refused() -> None:
    p = processor(RecordingExporter())
    p.start()
    p.start()  # the same loop: nothing happens
    other = asyncio.new_event_loop()
    try:
        with pytest.raises(RuntimeError, match="another event loop"):
            p.start(other)
    finally:
        other.close()
    async with p:
        pass
    assert p.is_shutdown


async def test_last_error_of_a_batch_that_was_only_too_large() -> None:
    """An export whose items were all dropped as too large (no error object) says so in last_error."""

    class TooLarge(RecordingExporter):
        async def export_traces(self, spans: Sequence[object]) -> ExportResult:  # type: ignore[override]
            return ExportResult(items=len(spans), dropped=len(spans))

    processor: BatchProcessor[str] = BatchProcessor(TooLarge(), Signal.TRACES, schedule_delay=60)
    processor.put_nowait("x")
    outcome = await processor.force_flush(5)
    assert outcome.dropped == 1
    stats = processor.statistics()
    assert stats.dropped["too_large"] == 1 and stats.last_error == "1 items dropped by the exporter (too_large)"
    await processor.shutdown(1)


async def test_items_the_exporter_cannot_encode_are_counted_as_invalid_not_too_large() -> None:
    """ExportResult.invalid (part of dropped): its own reason, beside a too-large drop and a failure."""

    class Mixed(RecordingExporter):
        async def export_traces(self, spans: Sequence[object]) -> ExportResult:  # type: ignore[override]
            return ExportResult(items=len(spans), accepted=1, dropped=3, invalid=2, failed=len(spans) - 4)

    processor: BatchProcessor[str] = BatchProcessor(Mixed(), Signal.TRACES, schedule_delay=60)
    for i in range(5):
        processor.put_nowait(f"item-{i}")
    outcome = await processor.force_flush(5)
    assert outcome.status is FlushStatus.FAILURE and outcome.dropped == 3 and outcome.exported == 1
    stats = processor.statistics()
    assert stats.dropped["invalid"] == 2 and stats.dropped["too_large"] == 1 and stats.failed == 1
    assert "2 items dropped by the exporter (invalid" in (stats.last_error or "") and balanced(stats)
    await processor.shutdown(1)


async def test_items_a_full_disk_queue_refused_are_counted_as_disk_full() -> None:
    class DiskFull(RecordingExporter):
        async def export_traces(self, spans: Sequence[object]) -> ExportResult:  # type: ignore[override]
            error = QueueFullError("the disk queue is full")
            return ExportResult(items=len(spans), dropped=len(spans), error=error)

    processor: BatchProcessor[str] = BatchProcessor(DiskFull(), Signal.TRACES, schedule_delay=60)
    for i in range(3):
        processor.put_nowait(f"item-{i}")
    outcome = await processor.force_flush(5)
    assert outcome.status is FlushStatus.FAILURE and outcome.dropped == 3
    stats = processor.statistics()
    assert stats.dropped["disk_full"] == 3 and stats.dropped["too_large"] == 0 and balanced(stats)
    await processor.shutdown(1)


async def test_an_exporter_whose_start_fails_still_gets_its_exports_counted() -> None:
    class BrokenStart(RecordingExporter):
        def start(self) -> None:
            raise OSError("cannot open the queue")

    exporter = BrokenStart()
    processor: BatchProcessor[str] = BatchProcessor(exporter, Signal.TRACES, schedule_delay=60)
    processor.put_nowait("a")
    outcome = await processor.force_flush(5)  # the worker runs on: the export itself decides
    assert outcome.status is FlushStatus.SUCCESS and exporter.items(Signal.TRACES) == ["a"]
    await processor.shutdown(1)
