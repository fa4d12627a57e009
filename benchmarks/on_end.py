"""on_end / on_emit micro-benchmark: the cost of aiotlp.sdk.BatchSpanProcessor.on_end and
BatchLogRecordProcessor.on_emit per call, in nanoseconds.

Calls ``on_end`` with pre-made sampled ``ReadableSpan`` objects from three places: the processor's own loop
thread (the aiotlp bridge), another thread running an application event loop, and a plain thread. The exporter
does nothing (the generic path with a no-op SDK exporter). Two settings: the default batch of 512 (a worker
wake-up per 512 spans, exports running alongside) and ``max_export_batch_size == max_queue_size`` (only the
put itself). Then ``on_emit`` of aiotlp's ``BatchLogRecordProcessor`` and of the official one, each call timed
alone inside ``logger.emit`` (a body, two attributes): the median call, and the mean (which also holds the rare
long calls: a garbage collection, the GIL held by the export thread). Last, ``on_end`` / ``on_emit`` with aiotlp's
own exporters (the fast path) and the issue's items (8 attributes and 1 event per span; a body and 8 attributes
per record), encoded at the source (``encode_at_source=True``: the compiled encoder's cost lands here) and not;
nothing is exported while they are timed; first, the timing overhead of those rows (the same timed call of an
``on_end`` that does nothing; not subtracted). ``AIOTLP_NO_EXTENSIONS=1`` times the pure-Python encoder. The median
of 5 runs, with min and max;
wall clock, or with ``--cpu`` the calling
thread's CPU time (a call made from a plain thread may wait for the GIL while the export thread runs: the
export's cost, not the call's). Prints; asserts nothing. (A program, not a test.)

    .venv/bin/python benchmarks/on_end.py [--calls 200000] [--runs 5] [--cpu]
"""

from __future__ import annotations

import argparse
import asyncio
import logging
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

from aiotlp.sdk import BatchLogRecordProcessor, BatchSpanProcessor, LogExporter
from aiotlp.sdk import SpanExporter as AiotlpSpanExporter
from aiotlp.sdk._bridge import get_bridge
from aiotlp.testing import free_port


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


_ATTRIBUTES = {
    "http.method": "GET",
    "http.route": "/v1/users/{id}",
    "http.status_code": 200,
    "net.peer.name": "example.com",
    "net.peer.port": 443,
    "user.id": 12345,
    "cache.hit": True,
    "db.rows": 7,
}


def _measure_source(encode: bool | None, calls: int) -> tuple[float, float]:
    """(median, mean) ns of one ``on_end`` of the issue's span (8 attributes, 1 event, made by the SDK's tracer
    just before: hot in cache, as in an application), each call timed alone, aiotlp's SpanExporter (never
    reached), from a plain thread; the timing overhead is not subtracted (``encode=None`` measures it: the same
    timed call of an ``on_end`` that does nothing)."""
    from opentelemetry.sdk.trace import TracerProvider

    durations: list[int] = []

    class Timed(BatchSpanProcessor):
        def on_end(self, span: ReadableSpan) -> None:
            start = _clock()
            super().on_end(span)
            durations.append(_clock() - start)

    class Nothing(BatchSpanProcessor):
        def on_end(self, span: ReadableSpan) -> None:
            pass

    class TimedNothing(Nothing):
        def on_end(self, span: ReadableSpan) -> None:
            start = _clock()
            super().on_end(span)
            durations.append(_clock() - start)

    endpoint = f"http://127.0.0.1:{free_port()}/v1/traces"
    processor = (Timed if encode is not None else TimedNothing)(
        AiotlpSpanExporter(endpoint=endpoint, timeout=1),
        max_queue_size=calls + 1,
        max_export_batch_size=calls + 1,
        schedule_delay_millis=60_000,
        export_timeout_millis=100,
        encode_at_source=bool(encode),
    )
    provider = TracerProvider(resource=Resource({"service.name": "bench"}), shutdown_on_exit=False)
    provider.add_span_processor(processor)
    tracer = provider.get_tracer("bench")

    def run() -> float:
        for _ in range(calls):
            with tracer.start_as_current_span("GET /v1/users/{id}", attributes=_ATTRIBUTES) as span:
                span.add_event("cache lookup", {"key": "users:12345"})
        return 0.0

    try:
        _in_thread(run)
    finally:
        provider.shutdown()
    return statistics.median(durations), statistics.fmean(durations)


def _measure_source_emit(encode: bool, calls: int) -> float:
    """ns per ``logger.emit`` (a body and 8 attributes), aiotlp's LogExporter (never reached), plain thread."""
    endpoint = f"http://127.0.0.1:{free_port()}/v1/logs"
    processor = BatchLogRecordProcessor(
        LogExporter(endpoint=endpoint, timeout=1),
        max_queue_size=calls + 1,
        max_export_batch_size=calls + 1,
        schedule_delay_millis=60_000,
        export_timeout_millis=100,
        encode_at_source=encode,
    )
    provider = LoggerProvider(resource=Resource({"service.name": "bench"}), shutdown_on_exit=False)
    provider.add_log_record_processor(processor)
    emit = provider.get_logger("bench").emit

    def run() -> float:
        start = _clock()
        for _ in range(calls):
            emit(body="request handled", attributes=_ATTRIBUTES)
        return (_clock() - start) / calls

    try:
        return _in_thread(run)
    finally:
        provider.shutdown()


def _main_rows(calls: int, runs_count: int) -> None:
    for batch in (512, None):
        label = "batch 512" if batch else "batch == queue (no wake-ups)"
        for where in ("bridge loop thread", "application loop thread", "plain thread"):
            runs = [_measure(where, calls, batch) for _ in range(runs_count)]
            print(
                f"on_end, {label:28} from the {where:24}: median {statistics.median(runs):6.0f} ns/call "
                f"(min {min(runs):.0f}, max {max(runs):.0f})"
            )
    timer = [_measure_emit("empty", calls) for _ in range(runs_count)]
    base_median, base_mean = statistics.median(r[0] for r in timer), statistics.median(r[1] for r in timer)
    print(f"timing overhead (an on_emit that does nothing): median call {base_median:4.0f} ns, mean {base_mean:.0f} ns")
    for kind in ("aiotlp", "official"):
        results = [_measure_emit(kind, calls) for _ in range(runs_count)]
        medians, means = [r[0] - base_median for r in results], [r[1] - base_mean for r in results]
        print(
            f"on_emit, {kind:8} inside logger.emit, from a plain thread, less the timing overhead: median call "
            f"{statistics.median(medians):6.0f} ns (runs {min(medians):.0f}-{max(medians):.0f}), "
            f"mean call {statistics.median(means):6.0f} ns"
        )


def _source_rows(calls: int, runs_count: int) -> None:
    overhead = [_measure_source(None, calls) for _ in range(runs_count)]
    print(
        f"on_end,  the timing overhead (the same timed call of an on_end that does nothing), plain thread: median "
        f"{statistics.median(r[0] for r in overhead):6.0f} ns, mean {statistics.median(r[1] for r in overhead):6.0f} ns"
    )
    for encode in (False, True):
        label = "encoded at the source" if encode else "queued as objects    "
        results = [_measure_source(encode, calls) for _ in range(runs_count)]
        medians = [r[0] for r in results]
        print(
            f"on_end,  aiotlp SpanExporter, 8 attributes + 1 event, {label}, plain thread: median call "
            f"{statistics.median(medians):6.0f} ns (runs {min(medians):.0f}-{max(medians):.0f}), "
            f"mean call {statistics.median(r[1] for r in results):6.0f} ns"
        )
        runs = [_measure_source_emit(encode, calls) for _ in range(runs_count)]
        print(
            f"emit,    aiotlp LogExporter, body + 8 attributes,     {label}, plain thread: "
            f"median {statistics.median(runs):6.0f} ns/call, the whole emit (min {min(runs):.0f}, max {max(runs):.0f})"
        )


def main() -> None:
    logging.getLogger("aiotlp").setLevel(logging.CRITICAL)  # the rows' exporters reach no collector
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=200_000)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument(
        "--cpu",
        action="store_true",
        help="time the calling thread's CPU (time.thread_time_ns) instead of the wall clock: without the time it "
        "waits for the GIL while another thread (an export) runs",
    )
    parser.add_argument("--source-only", action="store_true", help="only the aiotlp exporters' rows (the last ones)")
    args = parser.parse_args()
    global _clock
    if args.cpu:
        _clock = time.thread_time_ns
    if not args.source_only:
        _main_rows(args.calls, args.runs)
    _source_rows(min(args.calls, 50_000), args.runs)  # SDK-made spans are held in memory first


if __name__ == "__main__":
    main()
