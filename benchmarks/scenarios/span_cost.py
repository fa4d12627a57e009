"""span_cost: CPU per span of creating spans (issue 16 "Cost"), the OpenTelemetry SDK's against aiotlp's.

One span = start + 8 attributes + 1 event (2 attributes) + end, the shape of a traced request handler, on two
paths: ``tracer.start_span(...)`` ... ``span.end()``, and ``with tracer.start_as_current_span(...)`` (the span
set in the context and taken out again). Each path runs under:

- ``official``: the SDK's ``TracerProvider`` (the reference of every ratio);
- ``aiotlp (c)``: ``aiotlp.sdk.TracerProvider`` with the compiled SpanCore;
- ``aiotlp (python)``: the same provider with the pure-Python twin (what ``AIOTLP_NO_EXTENSIONS=1`` gives);

each with no span processor, and with aiotlp's ``BatchSpanProcessor`` over an exporter whose transport accepts
every request and sends nothing (the processor's and the encoder's CPU counted, no network). The ``core`` rows
are the span state alone: the SDK span (no processor) against ``SpanCore(...)`` + 8 ``set_attribute`` +
``add_event`` + ``end`` + ``encode()``.

CPU is ``time.process_time`` (every thread: the batch processor's export thread included, the queue flushed
inside the timed window), divided by the spans made; the processor's queue is large enough to drop nothing.
Run alone: ``python -m benchmarks.harness --scenarios span_cost``; or ``python -m benchmarks.scenarios.span_cost``
for a quick table without rotel.
"""

from __future__ import annotations

import gc
import statistics
import sys
import time
from collections.abc import Callable
from typing import Any, Final

from opentelemetry import trace as trace_api
from opentelemetry.sdk.trace import TracerProvider as SdkTracerProvider

from aiotlp.encoding import _compat
from aiotlp.transport import Reply

from ._common import OFFICIAL, Context, Sample

ATTRIBUTES = (
    ("http.request.method", "GET"),
    ("url.path", "/api/v1/items/42"),
    ("url.scheme", "https"),
    ("server.address", "api.example.com"),
    ("server.port", 443),
    ("http.response.status_code", 200),
    ("user_agent.original", "Mozilla/5.0 (X11; Linux x86_64) bench"),
    ("app.cache_hit", False),
)
EVENT_ATTRIBUTES = {"cache.key": "items:42", "cache.ttl_ms": 1500}
QUEUE = 1 << 17


_OK: Final = Reply(200)


class _Blackhole:
    """A transport that accepts every request and sends nothing (aiotlp.transport.Transport's interface)."""

    content_type = "application/x-protobuf"
    compression = "none"

    async def send(self, body: bytes, *, content_encoding: str, timeout: float) -> Reply:
        return _OK

    async def close(self) -> None:
        pass


def _batch_processor() -> Any:
    import aiotlp.sdk

    exporter = aiotlp.sdk.SpanExporter(
        "http://127.0.0.1:4318/v1/traces", protocol="http/protobuf", transport_factory=lambda config: _Blackhole()
    )
    return aiotlp.sdk.BatchSpanProcessor(exporter, max_queue_size=QUEUE, max_export_batch_size=512)


def _provider(side: str) -> Any:
    if side == OFFICIAL:
        return SdkTracerProvider(shutdown_on_exit=False)
    from aiotlp.sdk import TracerProvider

    return TracerProvider(shutdown_on_exit=False, _implementation=side.split("(")[1].rstrip(")"))


def _start_end(tracer: Any) -> Callable[[int], None]:
    server = trace_api.SpanKind.SERVER

    def run(n: int) -> None:
        for _ in range(n):
            span = tracer.start_span("GET /api/v1/items/{id}", kind=server)
            for key, value in ATTRIBUTES:
                span.set_attribute(key, value)
            span.add_event("cache.lookup", EVENT_ATTRIBUTES)
            span.end()

    return run


def _current(tracer: Any) -> Callable[[int], None]:
    server = trace_api.SpanKind.SERVER

    def run(n: int) -> None:
        for _ in range(n):
            with tracer.start_as_current_span("GET /api/v1/items/{id}", kind=server) as span:
                for key, value in ATTRIBUTES:
                    span.set_attribute(key, value)
                span.add_event("cache.lookup", EVENT_ATTRIBUTES)

    return run


def _core(side: str) -> Callable[[int], None]:
    if side == OFFICIAL:
        return _start_end(SdkTracerProvider(shutdown_on_exit=False).get_tracer("bench"))
    core = _compat.SPAN_CORES[side.split("(")[1].rstrip(")")]  # type: ignore[index]
    limits = (128, 128, 128, 128, 128, -1)

    def run(n: int) -> None:
        now = time.time_ns
        for i in range(n):
            span = core(
                "GET /api/v1/items/{id}", 0x0AF7651916CD43DD8448EB211C80319C, i + 1, 0, 0x100, "", 2, now(), limits
            )
            for key, value in ATTRIBUTES:
                span.set_attribute(key, value)
            span.add_event("cache.lookup", EVENT_ATTRIBUTES, None)
            span.end(None)
            span.encode()

    return run


def _cpu_per_span(run: Callable[[int], None], n: int, flush: Callable[[], object] | None = None) -> float:
    run(max(200, n // 10))  # warm-up
    if flush is not None:
        flush()
    gc.collect()
    start = time.process_time()
    run(n)
    if flush is not None:
        flush()
    return (time.process_time() - start) / n * 1e6


def sides() -> list[str]:
    out = [OFFICIAL]
    cores = _compat.SPAN_CORES
    out += [f"aiotlp ({name})" for name in ("c", "python") if name in cores]
    return out


def measure(n: int) -> list[Sample]:
    samples: dict[str, Sample] = {}

    def sample(metric: str) -> Sample:
        if metric not in samples:
            samples[metric] = Sample(metric, "us/span", higher_is_better=False)
        return samples[metric]

    for side in sides():
        for processor_name in ("no processor", "batch processor"):
            provider = _provider(side)
            processor = None
            if processor_name == "batch processor":
                processor = _batch_processor()
                provider.add_span_processor(processor)
            tracer = provider.get_tracer("bench")
            try:
                flush = processor.force_flush if processor is not None else None
                for path, make in (("start_span + end", _start_end), ("start_as_current_span", _current)):
                    value = _cpu_per_span(make(tracer), n, flush)
                    sample(f"{path}, {processor_name} (CPU)").values[side] = value
                if processor is not None:
                    dropped = _dropped(processor)
                    if dropped:
                        print(f"span_cost: {side} {processor_name}: {dropped} spans dropped", file=sys.stderr)
            finally:
                provider.shutdown()
        sample("span state alone: 8 attributes, 1 event, end, encode (CPU)").values[side] = _cpu_per_span(
            _core(side), n
        )
    return list(samples.values())


def _dropped(processor: Any) -> int:
    """Spans the processor dropped (a full queue would make the batch rows look cheaper than they are)."""
    return sum(processor.statistics().dropped.values())


async def run(ctx: Context) -> list[Sample]:
    return measure(ctx.count(20000, 2000))


def main() -> None:
    """A quick table without the harness: medians of 5 repetitions, ratios to the SDK's provider."""
    reps = [measure(10000) for _ in range(5)]
    for index, first in enumerate(reps[0]):
        print(first.metric)
        reference = statistics.median(rep[index].values[OFFICIAL] for rep in reps)
        for side in first.values:
            values = [rep[index].values[side] for rep in reps]
            median = statistics.median(values)
            print(
                f"  {side:18} {median:8.2f} us/span  (min {min(values):.2f}, max {max(values):.2f})"
                f"  x{median / reference:.3f} of the SDK's"
            )


if __name__ == "__main__":
    main()
