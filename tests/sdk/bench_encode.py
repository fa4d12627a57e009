"""Encode benchmark: aiotlp.sdk's direct SDK span encoder vs the official OTLP encoder, on the same SDK spans.

Makes 512 typical spans with a real ``TracerProvider`` (8 attributes, 1 event with 2 attributes, a parent, one
resource and scope), checks that both encodings decode to the same message, then times each encoder: the
median of 5 runs, with min and max to show the noise. Prints; asserts nothing about timings. (A program, not a
test: pytest does not collect it.)

    .venv/bin/python tests/sdk/bench_encode.py [--spans 512] [--runs 5]
"""

from __future__ import annotations

import argparse
import random
import statistics
import time
from collections.abc import Callable, Sequence

from opentelemetry import trace
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans as official_encode_spans
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind

from aiotlp.sdk import encode_spans


def make_spans(count: int) -> Sequence[ReadableSpan]:
    rng = random.Random(1)
    memory = InMemorySpanExporter()
    provider = TracerProvider(
        resource=Resource.create({"service.name": "checkout", "service.version": "1.4.2", "host.name": "web-7f9c"})
    )
    provider.add_span_processor(SimpleSpanProcessor(memory))
    tracer = provider.get_tracer("bench.instrumentation", "0.1.0")
    with tracer.start_as_current_span("parent") as parent:
        context = trace.set_span_in_context(parent)
        for i in range(count):
            with tracer.start_as_current_span("GET /v1/users/{id}", context=context, kind=SpanKind.SERVER) as span:
                span.set_attributes(
                    {
                        "http.request.method": "GET",
                        "http.route": "/v1/users/{id}",
                        "url.full": f"https://api.example.com/v1/users/{rng.randrange(10**6)}?page=2",
                        "http.response.status_code": 200,
                        "server.address": "api.example.com",
                        "server.port": 443,
                        "user_agent.original": "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Firefox/128.0",
                        "network.protocol.version": "1.1",
                    }
                )
                span.add_event("message", {"message.type": "RECEIVED", "message.id": i})
    provider.shutdown()
    return [span for span in memory.get_finished_spans() if span.name != "parent"]


def measure(fn: Callable[[], bytes], runs: int) -> list[float]:
    fn()  # warm up (caches, struct formats)
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--spans", type=int, default=512)
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    spans = make_spans(args.spans)

    def official() -> bytes:
        return official_encode_spans(spans).SerializeToString()  # type: ignore[no-any-return]

    def ours() -> bytes:
        return encode_spans(spans)

    same = ExportTraceServiceRequest.FromString(official()) == ExportTraceServiceRequest.FromString(ours())
    print(f"{len(spans)} SDK spans, 8 attributes + 1 event each; {args.runs} runs; decoded messages equal: {same}")
    print(f"{'encoder':<30}{'median spans/s':>16}{'min':>12}{'max':>12}{'bytes':>10}")
    rates = {}
    for label, fn in (("official (protobuf upb)", official), ("aiotlp.sdk (direct)", ours)):
        times = measure(fn, args.runs)
        rates[label] = len(spans) / statistics.median(times)
        print(
            f"{label:<30}{rates[label]:>16,.0f}{len(spans) / max(times):>12,.0f}"
            f"{len(spans) / min(times):>12,.0f}{len(fn()):>10,}"
        )
    print(f"aiotlp.sdk / official: {rates['aiotlp.sdk (direct)'] / rates['official (protobuf upb)']:.1f}x")


if __name__ == "__main__":
    main()
