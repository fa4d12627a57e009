"""on_end / on_emit micro-benchmark: the cost of aiotlp.sdk.BatchSpanProcessor.on_end and
BatchLogRecordProcessor.on_emit per call, in nanoseconds.

Calls ``on_end`` with pre-made sampled ``ReadableSpan`` objects from three places: the processor's own loop
thread (the aiotlp bridge), another thread running an application event loop, and a plain thread. The exporter
does nothing (the generic path with a no-op SDK exporter). Two settings: the default batch of 512 (a worker
wake-up per 512 spans, exports running alongside) and ``max_export_batch_size == max_queue_size`` (only the
put itself). Then ``on_emit`` of aiotlp's ``BatchLogRecordProcessor`` and of the official one, each call timed
alone inside ``logger.emit`` (a body, two attributes): the median call, and the mean (which also holds the rare
long calls: a garbage collection, the GIL held by the export thread). The median of 5 runs, with min and max;
wall clock, or with ``--cpu`` the calling
thread's CPU time (a call made from a plain thread may wait for the GIL while the export thread runs: the
export's cost, not the call's). Prints; asserts nothing. (A program, not a test.)

    .venv/bin/python tests/sdk/bench_on_end.py [--calls 200000] [--runs 5] [--cpu]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import threading
import time
from collections.abc import Callable, Sequence

from opentelemetry.sdk._logs import LoggerProvider, LogRecordProcessor, ReadWriteLogRecord
from opentelemetry.sdk._logs.export import BatchLogRecordProcessor as OfficialLogProcessor
from opentelemetry.sdk._logs.export import LogRecordExporter, LogRecordExportResult
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult
from opentelemetry.trace import SpanContext, TraceFlags

from aiotlp.sdk import BatchLogRecordProcessor, BatchSpanProcessor
from aiotlp.sdk._bridge import get_bridge


class _NoopExporter(SpanExporter):
    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        return SpanExportResult.SUCCESS


_DEFAULT_QUEUE = 2048
_clock = time.perf_counter_ns  # --cpu: time.thread_time_ns


class _NoopLogExporter(LogRecordExporter):
    def export(self, batch: Sequence[object]) -> LogRecordExportResult:  # type: ignore[override]
        return LogRecordExportResult.SUCCESS

    def shutdown(self) -> None:
        pass

    def force_flush(self, timeout_millis: int = 30_000) -> bool:
        return True


class _NoopLogProcessor(LogRecordProcessor):
    def on_emit(self, log_record: ReadWriteLogRecord) -> None:
        pass

    def shutdown(self) -> None:
        pass

    def force_flush(self, timeout_millis: int = 30_000) -> bool:
        return True


def _measure_emit(kind: str, calls: int) -> tuple[float, float]:
    """(median, mean) ns of one ``on_emit`` call, each timed alone inside ``logger.emit`` (fresh records, as in an
    application), from a plain thread, in chunks of the default queue size (2048) each exported by a
    ``force_flush`` (not timed). The mean also holds the rare long calls: a full garbage collection (the queue
    keeps records alive, so collections find more) or the GIL held by the export thread. ``kind`` is "aiotlp",
    "official", or "empty": a processor whose ``on_emit`` does nothing, timed the same way (the cost of the
    timing itself: two clock reads, the ``super()`` call and the append, subtracted from the other two)."""
    base = {"aiotlp": BatchLogRecordProcessor, "official": OfficialLogProcessor, "empty": _NoopLogProcessor}[kind]
    durations: list[int] = []

    class Timed(base):  # type: ignore[valid-type,misc]
        def on_emit(self, log_record: ReadWriteLogRecord) -> None:
            start = _clock()
            super().on_emit(log_record)
            durations.append(_clock() - start)

    processor = (
        Timed()
        if kind == "empty"
        else Timed(
            _NoopLogExporter(),
            max_queue_size=_DEFAULT_QUEUE,
            max_export_batch_size=_DEFAULT_QUEUE,
            schedule_delay_millis=60_000,
        )
    )
    provider = LoggerProvider(resource=Resource({"service.name": "bench"}), shutdown_on_exit=False)
    provider.add_log_record_processor(processor)
    emit = provider.get_logger("bench").emit
    attributes = {"http.route": "/v1/users/{id}", "i": 1}

    def run() -> None:
        for first in range(0, calls, _DEFAULT_QUEUE):
            for _ in range(first, min(calls, first + _DEFAULT_QUEUE)):
                emit(body="request handled", attributes=attributes)
            processor.force_flush()

    try:
        _in_thread(lambda: (run(), 0.0)[1])
    finally:
        provider.shutdown()
    return statistics.median(durations), statistics.fmean(durations)


def _spans(count: int) -> list[ReadableSpan]:
    resource = Resource({"service.name": "bench"})
    return [
        ReadableSpan(
            name="span",
            context=SpanContext(i + 1, i + 1, is_remote=False, trace_flags=TraceFlags(TraceFlags.SAMPLED)),
            resource=resource,
            start_time=1,
            end_time=2,
        )
        for i in range(count)
    ]


def _time_calls(processor: BatchSpanProcessor, spans: list[ReadableSpan]) -> float:
    on_end = processor.on_end
    start = _clock()
    for span in spans:
        on_end(span)
    return (_clock() - start) / len(spans)


def _in_thread(func: Callable[[], float]) -> float:
    result: list[float] = []
    thread = threading.Thread(target=lambda: result.append(func()))
    thread.start()
    thread.join()
    return result[0]


def _measure(where: str, calls: int, batch: int | None) -> float:
    queue = calls + 1
    processor = BatchSpanProcessor(
        _NoopExporter(), max_queue_size=queue, max_export_batch_size=batch or queue, schedule_delay_millis=60_000
    )
    processor.on_end(_spans(1)[0])  # bind it to the bridge first
    spans = _spans(calls)
    try:
        if where == "bridge loop thread":

            async def on_bridge() -> float:
                return _time_calls(processor, spans)

            return get_bridge().submit(on_bridge()).result()
        if where == "application loop thread":

            async def on_app_loop() -> float:
                return _time_calls(processor, spans)

            return _in_thread(lambda: asyncio.run(on_app_loop()))
        return _in_thread(lambda: _time_calls(processor, spans))
    finally:
        processor.shutdown()
        assert processor.statistics().dropped_total == 0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=200_000)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument(
        "--cpu",
        action="store_true",
        help="time the calling thread's CPU (time.thread_time_ns) instead of the wall clock: without the time it "
        "waits for the GIL while another thread (an export) runs",
    )
    args = parser.parse_args()
    global _clock
    if args.cpu:
        _clock = time.thread_time_ns
    for batch in (512, None):
        label = "batch 512" if batch else "batch == queue (no wake-ups)"
        for where in ("bridge loop thread", "application loop thread", "plain thread"):
            runs = [_measure(where, args.calls, batch) for _ in range(args.runs)]
            print(
                f"on_end, {label:28} from the {where:24}: median {statistics.median(runs):6.0f} ns/call "
                f"(min {min(runs):.0f}, max {max(runs):.0f})"
            )
    timer = [_measure_emit("empty", args.calls) for _ in range(args.runs)]
    base_median, base_mean = statistics.median(r[0] for r in timer), statistics.median(r[1] for r in timer)
    print(f"timing overhead (an on_emit that does nothing): median call {base_median:4.0f} ns, mean {base_mean:.0f} ns")
    for kind in ("aiotlp", "official"):
        runs = [_measure_emit(kind, args.calls) for _ in range(args.runs)]
        medians, means = [r[0] - base_median for r in runs], [r[1] - base_mean for r in runs]
        print(
            f"on_emit, {kind:8} inside logger.emit, from a plain thread, less the timing overhead: median call "
            f"{statistics.median(medians):6.0f} ns (runs {min(medians):.0f}-{max(medians):.0f}), "
            f"mean call {statistics.median(means):6.0f} ns"
        )


if __name__ == "__main__":
    main()
