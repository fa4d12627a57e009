"""Quick encode benchmark: the official OTLP encoder vs aiotlp's, pure Python and with the compiled accelerator.

Builds 512 typical spans once (8 attributes, 1 event, a parent, a shared resource and scope) in both data
models from the same raw values, checks that every encoding decodes to the same message (and that aiotlp's
two implementations write the same bytes), then times each encoder on one core (CPU time of this process):
the median of 5 runs, with min and max to show the noise. Prints; asserts nothing about timings.

    .venv/bin/python benchmarks/encode_quick.py [--spans 512] [--runs 5] [--min-time 0.2]

Rows: ``aiotlp.sdk`` encodes OpenTelemetry SDK ReadableSpans (what the SDK exporter does); ``aiotlp model``
encodes spans already in aiotlp's own model. ``python`` is the pure-Python encoder, ``c`` the compiled
accelerator (aiotlp.encoding._compat; a row is left out when the accelerator is not built or
AIOTLP_NO_EXTENSIONS is set).
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

from aiotlp.encoding import _compat, encode_traces
from aiotlp.model import Event, InstrumentationScope, Resource, Span
from aiotlp.model import SpanKind as OtlpSpanKind
from aiotlp.sdk import encode_spans as aiotlp_encode_spans

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


def measure(fn: Callable[[], bytes], runs: int, min_time: float) -> list[float]:
    """Seconds of CPU per call, one figure per run; each run repeats the call for at least ``min_time``."""
    fn()  # warm up (caches, struct formats, the buffer size hint)
    times = []
    for _ in range(runs):
        calls = 0
        start = time.process_time()
        while True:
            fn()
            calls += 1
            elapsed = time.process_time() - start
            if elapsed >= min_time:
                break
        times.append(elapsed / calls)
    return times


def with_implementation(choice: str, fn: Callable[[], bytes]) -> Callable[[], bytes]:
    def call() -> bytes:
        _compat.use(choice)  # type: ignore[arg-type]
        return fn()

    return call


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--spans", type=int, default=512)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--min-time", type=float, default=0.2, help="seconds of CPU per run (default 0.2)")
    args = parser.parse_args()

    raw = raw_spans(args.spans)
    official_input = sdk_spans(raw)
    aiotlp_input = aiotlp_spans(raw)

    def official() -> bytes:
        return encode_spans(official_input).SerializeToString()  # type: ignore[no-any-return]

    encoders: dict[str, Callable[[], bytes]] = {"official (protobuf upb)": official}
    choices = [c for c in _compat.IMPLEMENTATIONS if c == "python" or _compat.speedups is not None]
    for choice in choices:
        encoders[f"aiotlp.sdk ({choice})"] = with_implementation(choice, lambda: aiotlp_encode_spans(official_input))
    for choice in choices:
        encoders[f"aiotlp model ({choice})"] = with_implementation(choice, lambda: encode_traces(aiotlp_input))

    reference = ExportTraceServiceRequest.FromString(official())
    same = all(ExportTraceServiceRequest.FromString(fn()) == reference for fn in encoders.values())
    same_bytes = len({fn() for label, fn in encoders.items() if label.startswith("aiotlp.sdk")}) == 1
    print(
        f"{args.spans} spans, 8 attributes + 1 event each; {args.runs} runs of >= {args.min_time}s CPU; "
        f"decoded messages equal: {same}; aiotlp python/c bytes equal: {same_bytes}; "
        f"accelerator: {'built' if _compat.speedups is not None else 'not available'}"
    )
    print(f"{'encoder':<26}{'median spans/s':>16}{'min':>12}{'max':>12}{'us/span':>9}{'vs official':>13}{'bytes':>10}")
    official_rate = 0.0
    for label, fn in encoders.items():
        times = measure(fn, args.runs, args.min_time)
        rate = args.spans / statistics.median(times)
        official_rate = official_rate or rate
        print(
            f"{label:<26}{rate:>16,.0f}{args.spans / max(times):>12,.0f}{args.spans / min(times):>12,.0f}"
            f"{1e6 / rate:>9.2f}{rate / official_rate:>12.1f}x{len(fn()):>10,}"
        )
    _compat.use(choices[-1])


if __name__ == "__main__":
    main()
