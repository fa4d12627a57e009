"""Ints outside int64 in OpenTelemetry SDK objects (the SDK takes any int): the direct SDK encoders, protobuf (pure
and compiled, the same bytes) and OTLP/JSON, decoded with the official classes.

An attribute that is or holds such an int is left out and counted in its owner's ``dropped_attributes_count``;
a log body is replaced by ``BODY_INT_OUT_OF_RANGE``; a Sum or Gauge int value is sent as ``as_double``; a
histogram count outside uint64 raises EncodeError. The bounds -2**63 and 2**63 - 1 are kept.

Private, on purpose: ``aiotlp.encoding._compat`` switches between the twins, to compare their bytes.
"""

from __future__ import annotations

import copy
import dataclasses
from typing import Any

import pytest
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import ExportMetricsServiceRequest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.sdk._logs import LoggerProvider
from opentelemetry.sdk._logs.export import InMemoryLogRecordExporter, SimpleLogRecordProcessor
from opentelemetry.sdk.metrics import Exemplar
from opentelemetry.sdk.metrics.export import (
    AggregationTemporality,
    Gauge,
    HistogramDataPoint,
    Metric,
    MetricsData,
    NumberDataPoint,
    ResourceMetrics,
    ScopeMetrics,
    Sum,
)
from opentelemetry.sdk.metrics.export import Histogram as SdkHistogram
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import Event, ReadableSpan
from opentelemetry.sdk.util.instrumentation import InstrumentationScope
from opentelemetry.trace import Link, SpanContext, TraceFlags

from aiotlp import EncodeError
from aiotlp.encoding import BODY_INT_OUT_OF_RANGE, _compat
from aiotlp.model import Signal
from aiotlp.sdk import (
    encode_log_records,
    encode_log_records_json,
    encode_metrics_data,
    encode_metrics_data_json,
    encode_spans,
    encode_spans_json,
)
from aiotlp.testing import otlp_json_to_message

pytestmark = pytest.mark.usefixtures("encoder_implementation")

INT64_MIN, INT64_MAX, UINT64_MAX = -(2**63), 2**63 - 1, 2**64 - 1
OUT = [INT64_MAX + 1, INT64_MIN - 1, UINT64_MAX, 10**30]
GOOD = {"max": INT64_MAX, "min": INT64_MIN, "s": "x", "list": (INT64_MAX, INT64_MIN)}


def with_bad(value: int) -> dict[str, Any]:
    return {"max": INT64_MAX, "bad": value, "min": INT64_MIN, "bad_list": (1, value), "s": "x", "list": GOOD["list"]}


def keyed(key_values: Any) -> dict[str, Any]:
    out = {}
    for kv in key_values:
        kind = kv.value.WhichOneof("value")
        value = getattr(kv.value, kind)
        out[kv.key] = tuple(v.int_value for v in value.values) if kind == "array_value" else value
    return out


def make_span(name: str, resource: Resource, scope: InstrumentationScope, value: int) -> ReadableSpan:
    return ReadableSpan(
        name=name,
        context=SpanContext(0xA1, 0xB2, is_remote=False, trace_flags=TraceFlags(1)),
        resource=resource,
        instrumentation_scope=scope,
        attributes=with_bad(value),
        events=[Event("e", attributes=with_bad(value), timestamp=3)],
        links=[Link(SpanContext(0xC3, 0xD4, is_remote=True), attributes=with_bad(value))],
        start_time=1,
        end_time=2,
    )


def decode_both(signal: Signal, protobuf: bytes, json: bytes) -> list[Any]:
    classes = {Signal.TRACES: ExportTraceServiceRequest, Signal.LOGS: ExportLogsServiceRequest}
    classes[Signal.METRICS] = ExportMetricsServiceRequest
    return [classes[signal].FromString(protobuf), otlp_json_to_message(signal, json)]


@pytest.mark.parametrize("value", OUT)
def test_span_event_link_resource_and_scope_attributes_are_left_out_and_counted(value: int) -> None:
    resource = Resource(with_bad(value))
    scope = InstrumentationScope("lib", "1", attributes=with_bad(value))
    spans = [make_span(f"s{i}", resource, scope, value) for i in range(3)]
    spans.insert(1, make_span("fine", resource, scope, 7))
    for request in decode_both(Signal.TRACES, encode_spans(spans), encode_spans_json(spans)):
        resource_spans = request.resource_spans[0]
        assert keyed(resource_spans.resource.attributes) == GOOD
        assert resource_spans.resource.dropped_attributes_count == 2
        scope_spans = resource_spans.scope_spans[0]
        assert keyed(scope_spans.scope.attributes) == GOOD
        assert scope_spans.scope.dropped_attributes_count == 2
        assert [span.name for span in scope_spans.spans] == ["s0", "fine", "s1", "s2"]  # every span delivered
        for span in scope_spans.spans:
            bad = 0 if span.name == "fine" else 2
            for item in (span, span.events[0], span.links[0]):
                assert item.dropped_attributes_count == bad
                assert keyed(item.attributes) == (GOOD if bad else {**GOOD, "bad": 7, "bad_list": (1, 7)})


def log_records(value: int) -> list[Any]:
    memory = InMemoryLogRecordExporter()
    provider = LoggerProvider(resource=Resource(with_bad(value)))
    provider.add_log_record_processor(SimpleLogRecordProcessor(memory))
    logger = provider.get_logger("ints")
    for body in (value, [1, value], {"k": {"n": value}}, INT64_MAX, INT64_MIN):
        logger.emit(body=body, attributes=with_bad(value))
    provider.shutdown()
    return [*memory.get_finished_logs()]


@pytest.mark.parametrize("value", OUT)
def test_log_attributes_are_left_out_and_counted_and_bodies_replaced(value: int) -> None:
    records = log_records(value)
    for request in decode_both(Signal.LOGS, encode_log_records(records), encode_log_records_json(records)):
        resource_logs = request.resource_logs[0]
        assert keyed(resource_logs.resource.attributes) == GOOD
        assert resource_logs.resource.dropped_attributes_count == 2
        delivered = resource_logs.scope_logs[0].log_records
        assert len(delivered) == 5
        bodies = [record.body.string_value or record.body.int_value for record in delivered]
        assert bodies == [BODY_INT_OUT_OF_RANGE] * 3 + [INT64_MAX, INT64_MIN]
        for record in delivered:
            assert keyed(record.attributes) == GOOD
            assert record.dropped_attributes_count == 2


def metrics_data(points: list[Any], histogram: list[Any] | None = None) -> MetricsData:
    metrics = [
        Metric("g", None, "1", Gauge(points)),
        Metric("s", None, "1", Sum(points, AggregationTemporality.CUMULATIVE, True)),
    ]
    if histogram:
        metrics.append(Metric("h", None, "1", SdkHistogram(histogram, AggregationTemporality.DELTA)))
    scope = ScopeMetrics(InstrumentationScope("m"), metrics, None)
    return MetricsData([ResourceMetrics(Resource({}), [scope], None)])


def test_metric_int_values_outside_int64_are_doubles_and_point_attributes_left_out() -> None:
    values = [INT64_MAX, INT64_MIN, *OUT]
    points = [NumberDataPoint(with_bad(v), 1, 2, v, [Exemplar(with_bad(v), v, 2, None, None)]) for v in values]
    data = metrics_data(points)
    for request in decode_both(Signal.METRICS, encode_metrics_data(data), encode_metrics_data_json(data)):
        gauge, total = request.resource_metrics[0].scope_metrics[0].metrics
        for decoded in (gauge.gauge.data_points, total.sum.data_points):
            assert len(decoded) == len(values)  # every point delivered
            for point, value in zip(decoded, values, strict=True):
                kept = INT64_MIN <= value <= INT64_MAX
                assert point.WhichOneof("value") == ("as_int" if kept else "as_double")
                assert (point.as_int if kept else point.as_double) == (value if kept else float(value))
                exemplar = point.exemplars[0]
                assert (exemplar.as_int if kept else exemplar.as_double) == (value if kept else float(value))
                expected = GOOD if not kept else {**GOOD, "bad": value, "bad_list": (1, value)}
                assert keyed(point.attributes) == expected  # no dropped count on a data point
                assert keyed(exemplar.filtered_attributes) == expected


def histogram_point(count: int, buckets: list[int]) -> HistogramDataPoint:
    return HistogramDataPoint({}, 1, 2, count, 1.0, buckets, [1.0] * (len(buckets) - 1), 0.0, 1.0)


def test_histogram_counts_encode_over_the_whole_uint64_range() -> None:
    data = metrics_data([], [histogram_point(UINT64_MAX, [0, UINT64_MAX, 2**63])])
    for request in decode_both(Signal.METRICS, encode_metrics_data(data), encode_metrics_data_json(data)):
        (point,) = request.resource_metrics[0].scope_metrics[0].metrics[2].histogram.data_points
        assert (point.count, list(point.bucket_counts)) == (UINT64_MAX, [0, UINT64_MAX, 2**63])


@pytest.mark.parametrize(("count", "buckets"), [(-1, [0, 0]), (2**64, [0, 1]), (1, [-1, 2]), (1, [0, 2**64])])
def test_a_histogram_count_outside_uint64_is_an_encode_error_in_both_formats(count: int, buckets: list[int]) -> None:
    data = metrics_data([], [histogram_point(count, buckets)])
    bad = count if not 0 <= count <= UINT64_MAX else next(c for c in buckets if not 0 <= c <= UINT64_MAX)
    for encode in (encode_metrics_data, encode_metrics_data_json):
        with pytest.raises(EncodeError, match=f"the count {bad}: it is outside the uint64 range"):
            encode(data)


def test_the_compiled_and_pure_encoders_write_the_same_bytes() -> None:
    if _compat.speedups is None:
        pytest.skip("the compiled accelerator is not available")
    resource = Resource(with_bad(UINT64_MAX))
    scope = InstrumentationScope("lib", "1", attributes=with_bad(-(2**64)))
    spans = [make_span(str(v), resource, scope, v) for v in [*OUT, INT64_MAX, INT64_MIN]]
    records = log_records(UINT64_MAX)
    # a log record whose body holds a big int and nests too deep: the first reason met replaces it, in both
    deep: Any = UINT64_MAX
    for _ in range(30):
        deep = [deep]
    record = copy.copy(records[0].log_record)
    record.body = deep
    records.append(dataclasses.replace(records[0], log_record=record))
    previous = _compat.implementation()
    try:
        results = []
        for choice in _compat.IMPLEMENTATIONS:
            _compat.use(choice)
            results.append((encode_spans(spans), encode_log_records(records)))
        assert results[0] == results[1]
    finally:
        _compat.use(previous)
