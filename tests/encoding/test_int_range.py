"""Integers outside int64 (a uint64 id from another system, 2**64 - 1; or below -2**63) in every place a model item
can hold one, through the protobuf (pure and compiled) and the JSON encoders, decoded with the official classes.

The rules (aiotlp.encoding's docstring): an attribute whose value is, or holds at any depth, such an int is left
out and counted in its owner's ``dropped_attributes_count`` (data points have none: left out only); a log body
that is or holds one is replaced by ``BODY_INT_OUT_OF_RANGE``; an int metric value outside int64 is sent as
``as_double``. The item and the batch are always delivered. The exact bounds -2**63 and 2**63 - 1 are kept.

Private, on purpose: ``aiotlp.encoding._compat`` switches between the twins, to compare their bytes.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

import pytest
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import ExportMetricsServiceRequest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from tests.encoding.reference import any_value
from tests.strategies import INT64_MAX, INT64_MIN, UINT64_MAX

from aiotlp.encoding import BODY_INT_OUT_OF_RANGE, BODY_TOO_DEEP, _compat, encode
from aiotlp.model import (
    MAX_NESTING_DEPTH,
    Buckets,
    Event,
    Exemplar,
    ExponentialHistogram,
    ExponentialHistogramDataPoint,
    Gauge,
    Histogram,
    HistogramDataPoint,
    InstrumentationScope,
    Link,
    LogRecord,
    Metric,
    NumberDataPoint,
    Resource,
    Signal,
    Span,
    Sum,
)
from aiotlp.testing import otlp_json_to_message

pytestmark = pytest.mark.usefixtures("encoder_implementation")

FORMATS = ["protobuf", "json"]
_CLASSES = {
    Signal.TRACES: ExportTraceServiceRequest,
    Signal.METRICS: ExportMetricsServiceRequest,
    Signal.LOGS: ExportLogsServiceRequest,
}
OUT = [INT64_MAX + 1, INT64_MIN - 1, UINT64_MAX, 2**64, -(2**64), 10**30]
"""Ints that are left out: 2**63, -2**63 - 1, 2**64 - 1 (the uint64 id), and beyond."""
KEPT = [INT64_MAX, INT64_MIN, 0, -1, 1 << 62]
"""Ints at and inside the bounds: sent as int_value."""
TRACE_ID = bytes(range(1, 17))
SPAN_ID = bytes(range(1, 9))


def roundtrip(signal: Signal, items: Sequence[Any], fmt: str) -> Any:
    if fmt == "protobuf":
        return _CLASSES[signal].FromString(encode(signal, items, json=False))
    return otlp_json_to_message(signal, encode(signal, items, json=True))


def make_span(**kwargs: Any) -> Span:
    return Span(trace_id=TRACE_ID, span_id=SPAN_ID, name="op", start_time_unix_nano=1, end_time_unix_nano=2, **kwargs)


def holders(value: int) -> list[Any]:
    """``value`` as an attribute value: alone, in a list, in a mapping, deep in both."""
    return [value, [1, value], {"k": value}, {"a": [{"b": [value]}]}]


def good_attributes() -> dict[str, Any]:
    return {"max": INT64_MAX, "min": INT64_MIN, "s": "x", "list": [INT64_MAX, {"m": INT64_MIN}]}


def with_bad(value: int) -> dict[str, Any]:
    """The good attributes with ``len(holders(value))`` bad ones interleaved."""
    out: dict[str, Any] = {}
    for (key, good), (index, bad) in zip(good_attributes().items(), enumerate(holders(value)), strict=True):
        out[key] = good
        out[f"bad{index}"] = bad
    return out


def keyed(key_values: Any) -> dict[str, Any]:
    return {kv.key: kv.value for kv in key_values}


def expected() -> dict[str, Any]:
    return {key: any_value(value) for key, value in good_attributes().items()}


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("value", OUT)
def test_span_event_link_resource_and_scope_attributes_are_left_out_and_counted(fmt: str, value: int) -> None:
    resource = Resource(with_bad(value), dropped_attributes_count=1)
    scope = InstrumentationScope("lib", attributes=with_bad(value))
    bad = make_span(
        attributes=with_bad(value),
        dropped_attributes_count=2,
        events=[Event("e", 5, attributes=with_bad(value), dropped_attributes_count=3)],
        links=[Link(TRACE_ID, SPAN_ID, attributes=with_bad(value))],
        resource=resource,
        scope=scope,
    )
    good = make_span(attributes={"n": 1}, resource=resource, scope=scope)
    request = roundtrip(Signal.TRACES, [good, bad], fmt)
    n = len(holders(value))
    resource_spans = request.resource_spans[0]
    assert keyed(resource_spans.resource.attributes) == expected()
    assert resource_spans.resource.dropped_attributes_count == n + 1
    scope_spans = resource_spans.scope_spans[0]
    assert keyed(scope_spans.scope.attributes) == expected()
    assert scope_spans.scope.dropped_attributes_count == n
    assert [span.name for span in scope_spans.spans] == ["op", "op"]  # both delivered
    first, span = scope_spans.spans
    assert keyed(first.attributes) == {"n": any_value(1)} and first.dropped_attributes_count == 0
    assert keyed(span.attributes) == expected()
    assert span.dropped_attributes_count == n + 2
    assert keyed(span.events[0].attributes) == expected() and span.events[0].dropped_attributes_count == n + 3
    assert keyed(span.links[0].attributes) == expected() and span.links[0].dropped_attributes_count == n


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("value", KEPT)
def test_ints_at_the_bounds_are_kept(fmt: str, value: int) -> None:
    attributes = {f"v{index}": holder for index, holder in enumerate(holders(value))}
    request = roundtrip(Signal.TRACES, [make_span(attributes=attributes)], fmt)
    span = request.resource_spans[0].scope_spans[0].spans[0]
    assert keyed(span.attributes) == {key: any_value(holder) for key, holder in attributes.items()}
    assert span.dropped_attributes_count == 0
    record = roundtrip(Signal.LOGS, [LogRecord(body=value)], fmt).resource_logs[0].scope_logs[0].log_records[0]
    assert record.body.int_value == value


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("value", OUT)
def test_log_attributes_are_left_out_and_counted_and_the_body_replaced(fmt: str, value: int) -> None:
    records = [
        LogRecord(body=body, attributes=with_bad(value), dropped_attributes_count=4, resource=Resource(with_bad(value)))
        for body in holders(value)
    ]
    records.append(LogRecord(body="fine", attributes={"n": 1}))
    request = roundtrip(Signal.LOGS, records, fmt)
    n = len(holders(value))
    resources = request.resource_logs
    assert keyed(resources[0].resource.attributes) == expected()
    assert resources[0].resource.dropped_attributes_count == n
    delivered = [record for resource in resources for record in resource.scope_logs[0].log_records]
    assert len(delivered) == n + 1
    for record in delivered[:-1]:
        assert record.body.string_value == BODY_INT_OUT_OF_RANGE
        assert keyed(record.attributes) == expected()
        assert record.dropped_attributes_count == n + 4
    assert delivered[-1].body.string_value == "fine" and delivered[-1].dropped_attributes_count == 0


@pytest.mark.parametrize("fmt", FORMATS)
def test_a_body_too_deep_and_holding_a_big_int_is_replaced_by_the_first_reason_found(fmt: str) -> None:
    deep: Any = "leaf"
    for _ in range(MAX_NESTING_DEPTH + 1):
        deep = [deep]
    bodies = [[deep, UINT64_MAX], [UINT64_MAX, deep]]
    # The model refuses too-deep bodies; the encoders' rule is what applies to the SDK's (see tests/sdk).
    records = [LogRecord(body="x") for _ in bodies]
    for record, body in zip(records, bodies, strict=True):
        object.__setattr__(record, "body", tuple(body))
    request = roundtrip(Signal.LOGS, records, fmt)
    texts = [record.body.string_value for record in request.resource_logs[0].scope_logs[0].log_records]
    assert texts == [BODY_TOO_DEEP, BODY_INT_OUT_OF_RANGE]


def number_points(request: Any) -> list[Any]:
    out = []
    for metric in request.resource_metrics[0].scope_metrics[0].metrics:
        data = metric.gauge if metric.HasField("gauge") else metric.sum
        out += data.data_points
    return out


@pytest.mark.parametrize("fmt", FORMATS)
def test_metric_int_values_outside_int64_are_sent_as_doubles(fmt: str) -> None:
    values = [*KEPT, *OUT, 10**400, -(10**400)]
    points = [NumberDataPoint(v, 1, attributes={"i": i}, exemplars=[Exemplar(v, 1)]) for i, v in enumerate(values)]
    metrics = [Metric("g", Gauge(points)), Metric("s", Sum(points, aggregation_temporality=2))]
    decoded = number_points(roundtrip(Signal.METRICS, metrics, fmt))
    assert len(decoded) == 2 * len(values)
    for point, value in zip(decoded, values * 2, strict=True):
        exemplar = point.exemplars[0]
        if INT64_MIN <= value <= INT64_MAX:
            assert point.WhichOneof("value") == "as_int" and point.as_int == value
            assert exemplar.WhichOneof("value") == "as_int" and exemplar.as_int == value
        else:
            as_double = float(value) if abs(value) < 2**1024 else float("inf") * (1 if value > 0 else -1)
            assert point.WhichOneof("value") == "as_double" and point.as_double == as_double
            assert exemplar.WhichOneof("value") == "as_double" and exemplar.as_double == as_double


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("value", OUT)
def test_data_point_attributes_are_left_out_uncounted(fmt: str, value: int) -> None:
    # Data points have no dropped_attributes_count: the attribute is left out, the point delivered.
    point = NumberDataPoint(1, 1, attributes=with_bad(value), exemplars=[Exemplar(2, 1, with_bad(value))])
    histogram = HistogramDataPoint(1, bucket_counts=[1], time_unix_nano=1, attributes=with_bad(value))
    exponential = ExponentialHistogramDataPoint(1, time_unix_nano=1, attributes=with_bad(value))
    metrics = [
        Metric("g", Gauge([point]), metadata=with_bad(value)),
        Metric("h", Histogram([histogram], aggregation_temporality=2)),
        Metric("e", ExponentialHistogram([exponential], aggregation_temporality=2)),
    ]
    gauge, hist, expo = roundtrip(Signal.METRICS, metrics, fmt).resource_metrics[0].scope_metrics[0].metrics
    assert keyed(gauge.metadata) == expected()
    assert keyed(gauge.gauge.data_points[0].attributes) == expected()
    assert keyed(gauge.gauge.data_points[0].exemplars[0].filtered_attributes) == expected()
    assert keyed(hist.histogram.data_points[0].attributes) == expected()
    assert keyed(expo.exponential_histogram.data_points[0].attributes) == expected()


@pytest.mark.parametrize("fmt", FORMATS)
def test_histogram_counts_cover_the_whole_uint64_range(fmt: str) -> None:
    point = HistogramDataPoint(UINT64_MAX, [0, UINT64_MAX], [1.0], sum=1.0, time_unix_nano=1)
    buckets = Buckets(offset=-1, bucket_counts=[UINT64_MAX, 0, 2**63])
    exponential = ExponentialHistogramDataPoint(UINT64_MAX, zero_count=UINT64_MAX, positive=buckets, time_unix_nano=1)
    metrics = [
        Metric("h", Histogram([point], aggregation_temporality=2)),
        Metric("e", ExponentialHistogram([exponential], aggregation_temporality=2)),
    ]
    hist, expo = roundtrip(Signal.METRICS, metrics, fmt).resource_metrics[0].scope_metrics[0].metrics
    assert hist.histogram.data_points[0].count == UINT64_MAX
    assert list(hist.histogram.data_points[0].bucket_counts) == [0, UINT64_MAX]
    decoded = expo.exponential_histogram.data_points[0]
    assert (decoded.count, decoded.zero_count) == (UINT64_MAX, UINT64_MAX)
    assert list(decoded.positive.bucket_counts) == [UINT64_MAX, 0, 2**63]


def test_json_never_writes_an_int_value_outside_int64() -> None:
    span = make_span(attributes={"id": UINT64_MAX, "max": INT64_MAX}, resource=Resource({"id": UINT64_MAX}))
    text = encode(Signal.TRACES, [span], json=True).decode()
    assert str(UINT64_MAX) not in text and f'"intValue":"{INT64_MAX}"' in text
    document = json.loads(text)
    assert document["resourceSpans"][0]["resource"] == {"droppedAttributesCount": 1}


def test_the_compiled_and_pure_encoders_write_the_same_bytes() -> None:
    if _compat.speedups is None:
        pytest.skip("the compiled accelerator is not available")
    items: dict[Signal, list[Any]] = {
        Signal.TRACES: [
            make_span(
                attributes=with_bad(value),
                events=[Event("e", attributes=with_bad(value))],
                links=[Link(TRACE_ID, SPAN_ID, attributes=with_bad(value))],
                resource=Resource(with_bad(value)),
            )
            for value in OUT + KEPT
        ],
        Signal.LOGS: [LogRecord(body=holders(value), attributes=with_bad(value)) for value in OUT + KEPT],
        Signal.METRICS: [Metric("g", Gauge([NumberDataPoint(v, attributes=with_bad(v)) for v in OUT + KEPT]))],
    }
    previous = _compat.implementation()
    try:
        for signal, batch in items.items():
            results = []
            for choice in _compat.IMPLEMENTATIONS:
                _compat.use(choice)
                results.append(encode(signal, batch, json=False))
            assert results[0] == results[1], signal
    finally:
        _compat.use(previous)
