"""on_end micro-benchmark: the cost of aiotlp.sdk.BatchSpanProcessor.on_end per call, in nanoseconds.

Calls ``on_end`` with pre-made sampled ``ReadableSpan`` objects from three places: the processor's own loop
thread (the aiotlp bridge), another thread running an application event loop, and a plain thread. The exporter
does nothing (the generic path with a no-op SDK exporter). Two settings: the default batch of 512 (a worker
wake-up per 512 spans, exports running alongside) and ``max_export_batch_size == max_queue_size`` (only the
put itself). The median of 5 runs, with min and max. Prints; asserts nothing. (A program, not a test.)

    .venv/bin/python tests/sdk/bench_on_end.py [--calls 200000] [--runs 5]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import threading
import time
from collections.abc import Callable, Sequence

from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult
from opentelemetry.trace import SpanContext, TraceFlags

from aiotlp.sdk import BatchSpanProcessor
from aiotlp.sdk._bridge import get_bridge


class _NoopExporter(SpanExporter):
    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        return SpanExportResult.SUCCESS


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
    start = time.perf_counter_ns()
    for span in spans:
        on_end(span)
    return (time.perf_counter_ns() - start) / len(spans)


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
    args = parser.parse_args()
    for batch in (512, None):
        label = "batch 512" if batch else "batch == queue (no wake-ups)"
        for where in ("bridge loop thread", "application loop thread", "plain thread"):
            runs = [_measure(where, args.calls, batch) for _ in range(args.runs)]
            print(
                f"on_end, {label:28} from the {where:24}: median {statistics.median(runs):6.0f} ns/call "
                f"(min {min(runs):.0f}, max {max(runs):.0f})"
            )


if __name__ == "__main__":
    main()
