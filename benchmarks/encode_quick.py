"""Quick encode benchmark: aiotlp's pure-Python protobuf encoder vs the official OTLP encoder.

Builds 512 typical spans once (8 attributes, 1 event, a parent, a shared resource and scope) in both data
models from the same raw values, checks that both encodings decode to the same message, then times each
encoder: the median of 5 runs, with min and max to show the noise. Prints; asserts nothing about timings.

    .venv/bin/python benchmarks/encode_quick.py [--spans 512] [--runs 5]
"""

from __future__ import annotations

import argparse
import random
import statistics
import time
from collections.abc import Callable

from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.sdk.resources import Resource as SdkResource
from opentelemetry.sdk.trace import Event as SdkEvent
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.util.instrumentation import InstrumentationScope as SdkScope
from opentelemetry.trace import SpanContext, SpanKind, TraceFlags
from opentelemetry.trace.status import Status as SdkStatus
from opentelemetry.trace.status import StatusCode as SdkStatusCode

from aiotlp.encoding import encode_traces
from aiotlp.model import Event, InstrumentationScope, Resource, Span
from aiotlp.model import SpanKind as OtlpSpanKind

RESOURCE_ATTRIBUTES = {
    "service.name": "checkout",
    "service.version": "1.4.2",
    "telemetry.sdk.language": "python",
    "telemetry.sdk.name": "opentelemetry",
    "telemetry.sdk.version": "1.45.2",
    "host.name": "web-7f9c",
}


def raw_spans(count: int) -> list[dict[str, object]]:
    rng = random.Random(1)
    start = 1_700_000_000_000_000_000
    spans = []
    for i in range(count):
        t0 = start + i * 1_000_000
        spans.append(
            {
                "trace_id": rng.getrandbits(128) | 1,
                "span_id": rng.getrandbits(64) | 1,
                "parent_id": rng.getrandbits(64) | 1,
                "name": "GET /v1/users/{id}",
                "start": t0,
                "end": t0 + rng.randrange(100_000, 50_000_000),
                "attributes": {
                    "http.request.method": "GET",
                    "http.route": "/v1/users/{id}",
                    "url.full": f"https://api.example.com/v1/users/{rng.randrange(10**6)}?page=2",
                    "http.response.status_code": 200,
                    "server.address": "api.example.com",
                    "server.port": 443,
                    "user_agent.original": "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Firefox/128.0",
                    "network.protocol.version": "1.1",
                },
                "event": ("message", t0 + 50_000, {"message.type": "RECEIVED", "message.id": i}),
            }
        )
    return spans


def sdk_spans(raw: list[dict[str, object]]) -> list[ReadableSpan]:
    resource = SdkResource(RESOURCE_ATTRIBUTES)
    scope = SdkScope("bench.instrumentation", "0.1.0")
    out = []
    for r in raw:
        name, ts, attrs = r["event"]  # type: ignore[misc]
        out.append(
            ReadableSpan(
                name=r["name"],  # type: ignore[arg-type]
                context=SpanContext(r["trace_id"], r["span_id"], False, TraceFlags(1)),  # type: ignore[arg-type]
                parent=SpanContext(r["trace_id"], r["parent_id"], False, TraceFlags(1)),  # type: ignore[arg-type]
                resource=resource,
                attributes=r["attributes"],  # type: ignore[arg-type]
                events=[SdkEvent(name, attrs, ts)],
                kind=SpanKind.SERVER,
                status=SdkStatus(SdkStatusCode.UNSET),
                start_time=r["start"],  # type: ignore[arg-type]
                end_time=r["end"],  # type: ignore[arg-type]
                instrumentation_scope=scope,
            )
        )
    return out


def aiotlp_spans(raw: list[dict[str, object]]) -> list[Span]:
    resource = Resource(RESOURCE_ATTRIBUTES)
    scope = InstrumentationScope("bench.instrumentation", "0.1.0")
    out = []
    for r in raw:
        name, ts, attrs = r["event"]  # type: ignore[misc]
        out.append(
            Span(
                trace_id=r["trace_id"],  # type: ignore[arg-type]
                span_id=r["span_id"],  # type: ignore[arg-type]
                parent_span_id=r["parent_id"],  # type: ignore[arg-type]
                name=r["name"],  # type: ignore[arg-type]
                start_time_unix_nano=r["start"],  # type: ignore[arg-type]
                end_time_unix_nano=r["end"],  # type: ignore[arg-type]
                kind=OtlpSpanKind.SERVER,
                flags=0x100,  # what the official encoder sends for a local parent: "is_remote is known"
                attributes=r["attributes"],  # type: ignore[arg-type]
                events=[Event(name, ts, attrs)],
                resource=resource,
                scope=scope,
            )
        )
    return out


def measure(fn: Callable[[], bytes], runs: int) -> list[float]:
    fn()  # warm up (caches, struct formats)
    times = []
    for _ in range(runs):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--spans", type=int, default=512)
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()

    raw = raw_spans(args.spans)
    official_input = sdk_spans(raw)
    aiotlp_input = aiotlp_spans(raw)

    def official() -> bytes:
        return encode_spans(official_input).SerializeToString()  # type: ignore[no-any-return]

    def ours() -> bytes:
        return encode_traces(aiotlp_input)

    same = ExportTraceServiceRequest.FromString(official()) == ExportTraceServiceRequest.FromString(ours())
    print(f"{args.spans} spans, 8 attributes + 1 event each; {args.runs} runs; decoded messages equal: {same}")
    print(f"{'encoder':<28}{'median spans/s':>16}{'min':>12}{'max':>12}{'bytes':>10}")
    rates = {}
    for label, fn in (("official (protobuf upb)", official), ("aiotlp (pure Python)", ours)):
        times = measure(fn, args.runs)
        rates[label] = args.spans / statistics.median(times)
        print(
            f"{label:<28}{rates[label]:>16,.0f}{args.spans / max(times):>12,.0f}"
            f"{args.spans / min(times):>12,.0f}{len(fn()):>10,}"
        )
    ratio = rates["aiotlp (pure Python)"] / rates["official (protobuf upb)"]
    print(f"aiotlp / official: {ratio:.1f}x")


if __name__ == "__main__":
    main()
