"""OpenTelemetry SDK telemetry that uses every field the OTLP encoders map, made by the real SDK.

Spans, log records and metrics come out of real providers (limits set low to produce dropped counts) into the
SDK's in-memory exporters/readers, so the encoders see exactly what the SDK hands an exporter. A few metric
points the SDK's aggregations rarely produce (negative exponential buckets, ``flags``, gauges with a start
time, exemplars without a trace) are added as SDK point objects.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from typing import Any

from opentelemetry import trace
from opentelemetry._logs import SeverityNumber
from opentelemetry.metrics import CallbackOptions, Observation
from opentelemetry.sdk._logs import (
    LoggerProvider,
    LogRecordDroppedAttributesWarning,
    LogRecordLimits,
    LogRecordProcessor,
    ReadableLogRecord,
)
from opentelemetry.sdk._logs.export import InMemoryLogRecordExporter, SimpleLogRecordProcessor
from opentelemetry.sdk.metrics import AlwaysOnExemplarFilter, Counter, MeterProvider
from opentelemetry.sdk.metrics import Exemplar as SdkExemplar
from opentelemetry.sdk.metrics.export import (
    AggregationTemporality,
    Buckets,
    ExponentialHistogram,
    ExponentialHistogramDataPoint,
    Gauge,
    Histogram,
    HistogramDataPoint,
    InMemoryMetricReader,
    Metric,
    MetricsData,
    NumberDataPoint,
    ResourceMetrics,
    ScopeMetrics,
    Sum,
)
from opentelemetry.sdk.metrics.view import ExponentialBucketHistogramAggregation, View
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, SpanLimits, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.sdk.util.instrumentation import InstrumentationScope
from opentelemetry.trace import (
    Link,
    NonRecordingSpan,
    SpanContext,
    SpanKind,
    Status,
    StatusCode,
    TraceFlags,
    TraceState,
)

T0 = 1_700_000_000_000_000_000

#: Every attribute value kind the SDK keeps (1.45 cleans attributes as "extended" ones everywhere).
EVERY_VALUE: dict[str, Any] = {
    "str": "héllo wörld ✓ 𝄞",
    "empty": "",
    "bool": True,
    "false": False,
    "int": -(2**63),
    "int_max": 2**63 - 1,
    "zero": 0,
    "float": 3.25,
    "neg_zero": -0.0,
    "inf": math.inf,
    "bytes": b"\x00\xff\x10",
    "ints": [1, 2, 3],
    "strs": ["a", "", "c"],
    "floats": [1.5, -2.0],
    "bools": [True, False],
    "empty_list": [],
    "mixed": [1, "two", 3.0, True, None, b"\x01", [4, [5]], {"k": "v"}],
    "map": {"nested": {"deeper": [1, {"x": None}]}, "empty_map": {}},
    "none": None,
    "long": "x" * 300,
}

#: A log body of every kind (the SDK does not validate bodies).
BODIES: list[Any] = [
    "a message",
    "",
    42,
    -7,
    3.5,
    True,
    False,
    b"\x00raw",
    [1, "two", 3.0, None, [b"\x01"]],
    ("tuple", 1),
    {"event": "login", "user": {"id": 7, "tags": ["a", "b"]}, "none": None},
    {1: "int key", "k": {2: "nested int key"}},
    {},
    [],
    None,
]

RESOURCE_A = Resource(
    {"service.name": "checkout", "service.version": "1.4.2", **EVERY_VALUE}, schema_url="https://schema/r/1.0"
)
RESOURCE_B = Resource({"service.name": "payments"})

#: The attributes of a typical span or log record (issue 13's items: 8 attributes).
ATTRIBUTES: dict[str, Any] = {
    "http.method": "GET",
    "http.route": "/v1/users/{id}",
    "http.status_code": 200,
    "net.peer.name": "example.com",
    "net.peer.port": 443,
    "user.id": 12345,
    "cache.hit": True,
    "db.rows": 7,
}


def spans() -> list[ReadableSpan]:
    """Spans of two resources and three scopes: every kind, status, attribute value; events and links (remote
    and local, with attributes), a remote parent with a trace state, and dropped attributes/events/links."""
    out: list[ReadableSpan] = []
    limits = SpanLimits(
        max_span_attributes=len(EVERY_VALUE) + 2,
        max_events=3,
        max_links=3,
        max_event_attributes=2,
        max_link_attributes=2,
    )
    for resource in (RESOURCE_A, RESOURCE_B):
        memory = InMemorySpanExporter()
        provider = TracerProvider(resource=resource, span_limits=limits)
        provider.add_span_processor(SimpleSpanProcessor(memory))
        scoped = provider.get_tracer("scope.one", "1.0.0", schema_url="https://schema/s/1", attributes={"sa": 1})
        plain = provider.get_tracer("scope.two")
        remote = SpanContext(
            0x0AF7651916CD43DD8448EB211C80319C,
            0xB7AD6B7169203331,
            is_remote=True,
            trace_flags=TraceFlags(TraceFlags.SAMPLED),
            trace_state=TraceState([("vendor", "value"), ("other", "x")]),
        )
        local_link = SpanContext(0x1, 0x2, is_remote=False)
        parent_context = trace.set_span_in_context(NonRecordingSpan(remote))
        links = [
            Link(SpanContext(0x5, 0x6, is_remote=False)),  # the oldest goes over the limit of 3: dropped
            Link(remote, {"link.kind": "remote", "n": 1, "dropped": "x"}),
            Link(local_link),
            Link(SpanContext(0x3, 0x4, is_remote=True), {"a": [1, 2]}),
        ]
        with scoped.start_as_current_span(
            "server ✓", context=parent_context, kind=SpanKind.SERVER, links=links, start_time=T0
        ) as span:
            span.set_attributes(EVERY_VALUE)
            span.set_attributes({"extra.1": 1, "extra.2": 2, "extra.3": 3})  # over the limit: dropped
            span.add_event("started", {"e": 1, "f": 2.5, "g": "dropped"}, timestamp=T0 + 1)
            span.add_event("no attributes", timestamp=T0 + 2)
            span.add_event("map", {"m": {"k": [1, "x"]}}, timestamp=T0 + 3)
            span.add_event("one too many", timestamp=T0 + 4)
            span.set_status(Status(StatusCode.ERROR, "it broke: ✗"))
            for kind in SpanKind:
                with plain.start_as_current_span(f"child {kind.name}", kind=kind) as child:
                    child.set_attribute("kind", kind.name)
                    if kind is SpanKind.CLIENT:
                        child.set_status(Status(StatusCode.OK))
        with plain.start_as_current_span("root", start_time=T0, end_on_exit=False) as root:
            root.end(end_time=T0 + 10**9)
        provider.get_tracer("scope.three", "2").start_span("unended-then-ended", start_time=T0).end(T0 + 5)
        provider.shutdown()
        out.extend(memory.get_finished_spans())
    return out


def log_records(processor: LogRecordProcessor | None = None) -> list[ReadableLogRecord]:
    """Log records of two resources and two scopes: every body kind, severities, severity texts, event names,
    trace context from an active span, extended attributes, and dropped attributes; what the SDK's exporter gets
    for them (``processor``, when given, is added to each provider first: it sees them at emit)."""
    out: list[ReadableLogRecord] = []
    tracer_provider = TracerProvider(shutdown_on_exit=False)
    tracer = tracer_provider.get_tracer("logs.test")
    for resource in (RESOURCE_A, RESOURCE_B):
        memory = InMemoryLogRecordExporter()
        provider = LoggerProvider(
            resource=resource, log_record_limits=LogRecordLimits(max_attributes=4), shutdown_on_exit=False
        )
        if processor is not None:
            provider.add_log_record_processor(processor)
        provider.add_log_record_processor(SimpleLogRecordProcessor(memory))
        scoped = provider.get_logger("log.scope", "3.1", schema_url="https://schema/l/1", attributes={"la": "x"})
        plain = provider.get_logger("plain.logger")
        for index, body in enumerate(BODIES):
            scoped.emit(
                timestamp=T0 + index,
                observed_timestamp=T0 + 1000 + index,
                severity_number=list(SeverityNumber)[index % len(SeverityNumber)],
                severity_text="WARN" if index % 2 else None,
                body=body,
                attributes={"i": index, "map": {"a": [1, {"b": b"\x02"}]}, "none": None},
            )
        with tracer.start_as_current_span("logging span"):
            plain.emit(body="inside a span", severity_number=SeverityNumber.ERROR, event_name="app.error")
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", LogRecordDroppedAttributesWarning)
            plain.emit(body="too many attributes", attributes={f"k{i}": i for i in range(7)})
        plain.emit(event_name="just.an.event")
        provider.shutdown()
        out.extend(memory.get_finished_logs())
    tracer_provider.shutdown()
    return out


def _observe(options: CallbackOptions) -> Sequence[Observation]:
    return [Observation(7, {"cpu": 0}), Observation(9.5, {"cpu": 1})]


def sdk_metrics_data() -> MetricsData:
    """Every instrument of the SDK, with exemplars (recorded in a span), delta and cumulative temporality, and
    an exponential histogram view."""
    reader = InMemoryMetricReader(preferred_temporality={Counter: AggregationTemporality.DELTA})
    provider = MeterProvider(
        resource=RESOURCE_A,
        metric_readers=[reader],
        views=[View(instrument_name="exp.*", aggregation=ExponentialBucketHistogramAggregation(max_size=20))],
        exemplar_filter=AlwaysOnExemplarFilter(),
    )
    meter = provider.get_meter("meter.one", "0.9", schema_url="https://schema/m/1", attributes={"ma": True})
    other = provider.get_meter("meter.two")
    tracer_provider = TracerProvider()
    with tracer_provider.get_tracer("metrics.test").start_as_current_span("measuring"):
        counter = meter.create_counter("requests", unit="1", description="requests served")
        counter.add(3, {"route": "/a"})
        counter.add(4, {"route": "/b"})
        float_counter = meter.create_counter("bytes.float", unit="By")
        float_counter.add(1.5)
        updown = meter.create_up_down_counter("queue.depth")
        updown.add(5)
        updown.add(-8, {"queue": "q"})
        histogram = meter.create_histogram("latency", unit="ms", description="request latency")
        for value in (0.5, 3, 7.5, 120, 9999):
            histogram.record(value, {"route": "/a"})
        exponential = meter.create_histogram("exp.latency", unit="s")
        for value in (0.001, 0.5, 1, 2, 2, 1000, 0):
            exponential.record(value)
        gauge = other.create_gauge("temperature")
        gauge.set(21.5, {"room": "a"})
        gauge.set(-3, {"room": "b"})
    other.create_observable_gauge("cpu.usage", callbacks=[_observe])
    other.create_observable_counter("cpu.time", callbacks=[_observe])
    other.create_observable_up_down_counter("threads", callbacks=[_observe])
    data = reader.get_metrics_data()
    assert data is not None
    provider.shutdown()
    tracer_provider.shutdown()
    return data


def handmade_metrics_data() -> MetricsData:
    """SDK point objects the aggregations rarely produce: negative buckets, flags, a gauge with a start time
    (the official encoder leaves it out), exemplars without trace ids, histogram min/max absent, NaN and -0.0."""
    scope = InstrumentationScope("handmade", "1", "https://schema/h", {"h": [1, 2]})
    exemplars = [
        SdkExemplar(
            {"filtered": "yes"}, 2.5, T0, span_id=0xB7AD6B7169203331, trace_id=0x0AF7651916CD43DD8448EB211C80319C
        ),
        SdkExemplar({}, 3, T0 + 1),
        SdkExemplar({"only": "span"}, -1.0, T0 + 2, span_id=0x1, trace_id=None),
    ]
    metrics = [
        Metric(
            "gauge.with.start",
            None,
            None,
            Gauge([NumberDataPoint({"a": 1}, T0, T0 + 1, -0.0, exemplars), NumberDataPoint({}, 0, T0, math.nan)]),
        ),
        Metric(
            "sum.float",
            "float sum",
            "s",
            Sum([NumberDataPoint({"x": "y"}, T0, T0 + 1, 2.75)], AggregationTemporality.CUMULATIVE, False),
        ),
        Metric(
            "histogram.sparse",
            "",
            "",
            Histogram(
                [
                    HistogramDataPoint({}, T0, T0 + 1, 0, 0, [0], [], math.inf, -math.inf),
                    HistogramDataPoint({"b": 1}, T0, T0 + 1, 3, 6.0, [1, 0, 2], [1.0, 5.0], 1.0, 4.0, exemplars),
                ],
                AggregationTemporality.DELTA,
            ),
        ),
        Metric(
            "exp.negative",
            "negative buckets",
            "1",
            ExponentialHistogram(
                [
                    ExponentialHistogramDataPoint(
                        attributes={"e": 1},
                        start_time_unix_nano=T0,
                        time_unix_nano=T0 + 1,
                        count=11,
                        sum=-12.5,
                        scale=-2,
                        zero_count=3,
                        positive=Buckets(offset=-3, bucket_counts=[1, 0, 2]),
                        negative=Buckets(offset=5, bucket_counts=[3, 300, 0, 1]),
                        flags=1,
                        min=-20.0,
                        max=8.0,
                        exemplars=exemplars,
                    ),
                    ExponentialHistogramDataPoint(
                        attributes={},
                        start_time_unix_nano=T0,
                        time_unix_nano=T0 + 1,
                        count=0,
                        sum=0,
                        scale=0,
                        zero_count=0,
                        positive=Buckets(offset=4, bucket_counts=[]),
                        negative=Buckets(offset=0, bucket_counts=[]),
                        flags=0,
                        min=0,
                        max=0,
                    ),
                ],
                AggregationTemporality.CUMULATIVE,
            ),
        ),
    ]
    return MetricsData(
        [
            ResourceMetrics(RESOURCE_B, [ScopeMetrics(scope, metrics, "https://schema/h")], ""),
        ]
    )


def metrics_data() -> MetricsData:
    """:func:`sdk_metrics_data` and :func:`handmade_metrics_data` in one ``MetricsData``."""
    return MetricsData([*sdk_metrics_data().resource_metrics, *handmade_metrics_data().resource_metrics])
