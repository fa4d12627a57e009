"""Targeted cases for both encoders: every AnyValue kind, extremes, special doubles, empty batches, grouping,
lone surrogates, caches, big messages, and the ``encode``/``count_items`` dispatch.

Each case is decoded with the official classes (protobuf: ``FromString``; JSON: the strict test receiver) and
checked field by field; most run for both formats.

White-box, on purpose: the two cache tests read the pure-Python encoder's private caches (``_protobuf._LP``,
``_KEY``, ``_KV_STR``, ``_KV_INT``) and their limits (``_CACHE_MAX*``), to show that they stay bounded and that
long values are not cached: nothing public reports a cache.
"""

from __future__ import annotations

import enum
import json
import math
from collections.abc import Sequence
from typing import Any

import pytest
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import ExportMetricsServiceRequest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from tests.encoding.reference import reference_request
from tests.strategies import INT64_MAX, INT64_MIN, UINT32_MAX, UINT64_MAX

from aiotlp.encoding import (
    _protobuf,
    count_items,
    encode,
    encode_logs,
    encode_logs_json,
    encode_metrics,
    encode_metrics_json,
    encode_traces,
    encode_traces_json,
)
from aiotlp.model import (
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
    SpanKind,
    Status,
    StatusCode,
    Sum,
    Summary,
    SummaryDataPoint,
    ValueAtQuantile,
)
from aiotlp.testing import otlp_json_to_message

# Every case runs with the pure-Python encoder and with the compiled accelerator (tests/conftest.py).
pytestmark = pytest.mark.usefixtures("encoder_implementation")

FORMATS = ["protobuf", "json"]
_CLASSES = {
    Signal.TRACES: ExportTraceServiceRequest,
    Signal.METRICS: ExportMetricsServiceRequest,
    Signal.LOGS: ExportLogsServiceRequest,
}
TRACE_ID = bytes(range(1, 17))
SPAN_ID = bytes(range(1, 9))
INF = float("inf")


def roundtrip(signal: Signal, items: Sequence[Any], fmt: str) -> Any:
    """Encode with aiotlp, decode with the official classes."""
    if fmt == "protobuf":
        return _CLASSES[signal].FromString(encode(signal, items, json=False))
    return otlp_json_to_message(signal, encode(signal, items, json=True))


def make_span(**kwargs: Any) -> Span:
    fields: dict[str, Any] = {
        "trace_id": TRACE_ID,
        "span_id": SPAN_ID,
        "name": "op",
        "start_time_unix_nano": 1,
        "end_time_unix_nano": 2,
    }
    fields.update(kwargs)
    return Span(**fields)


def span_attributes(attributes: dict[str, Any], fmt: str) -> Any:
    request = roundtrip(Signal.TRACES, [make_span(attributes=attributes)], fmt)
    return request.resource_spans[0].scope_spans[0].spans[0].attributes


def number_point(value: int | float, fmt: str) -> Any:
    metric = Metric("m", Gauge([NumberDataPoint(value)]))
    return roundtrip(Signal.METRICS, [metric], fmt).resource_metrics[0].scope_metrics[0].metrics[0].gauge.data_points[0]


# --- AnyValue -----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("fmt", FORMATS)
def test_every_any_value_kind(fmt: str) -> None:
    attributes = {
        "str": "text",
        "empty_str": "",
        "bool_true": True,
        "bool_false": False,
        "int": 42,
        "int_zero": 0,
        "int_min": INT64_MIN,
        "int_max": INT64_MAX,
        "double": 1.5,
        "double_zero": 0.0,
        "bytes": b"\x00\xff",
        "empty_bytes": b"",
        "array": [1, "two", 3.0, None, [True], {"k": b"v"}],
        "empty_array": [],
        "kvlist": {"a": 1, "b": {"c": [None]}},
        "empty_kvlist": {},
        "none": None,
    }
    decoded = {kv.key: kv.value for kv in span_attributes(attributes, fmt)}
    assert list(decoded) == list(attributes)
    kinds = {key: value.WhichOneof("value") for key, value in decoded.items()}
    assert kinds == {
        "str": "string_value",
        "empty_str": "string_value",
        "bool_true": "bool_value",
        "bool_false": "bool_value",
        "int": "int_value",
        "int_zero": "int_value",
        "int_min": "int_value",
        "int_max": "int_value",
        "double": "double_value",
        "double_zero": "double_value",
        "bytes": "bytes_value",
        "empty_bytes": "bytes_value",
        "array": "array_value",
        "empty_array": "array_value",
        "kvlist": "kvlist_value",
        "empty_kvlist": "kvlist_value",
        "none": None,
    }
    assert decoded["int_min"].int_value == INT64_MIN
    assert decoded["int_max"].int_value == INT64_MAX
    assert decoded["bool_false"].bool_value is False
    assert decoded["bytes"].bytes_value == b"\x00\xff"
    array = decoded["array"].array_value.values
    assert [v.WhichOneof("value") for v in array] == [
        "int_value",
        "string_value",
        "double_value",
        None,
        "array_value",
        "kvlist_value",
    ]
    assert array[5].kvlist_value.values[0].value.bytes_value == b"v"
    inner = decoded["kvlist"].kvlist_value.values[1].value.kvlist_value.values[0]
    assert inner.key == "c"
    assert inner.value.array_value.values[0].WhichOneof("value") is None
    assert decoded["none"].ByteSize() == 0
    # the KeyValue.value field is there (an empty AnyValue), not missing
    none_kv = next(iter(span_attributes({"none": None}, fmt)))
    assert none_kv.HasField("value")


@pytest.mark.parametrize("fmt", FORMATS)
def test_empty_key_and_value(fmt: str) -> None:
    (kv,) = span_attributes({"": ""}, fmt)
    assert kv.key == ""
    assert kv.value.WhichOneof("value") == "string_value"
    assert kv.value.string_value == ""


def test_json_any_value_text() -> None:
    span = make_span(attributes={"i": INT64_MIN, "b": b"\x00\xff", "a": [], "m": {}, "n": None, "d": -INF, "s": "é😀"})
    text = encode_traces_json([span]).decode()
    assert '{"key":"i","value":{"intValue":"-9223372036854775808"}}' in text
    assert '{"key":"b","value":{"bytesValue":"AP8="}}' in text
    assert '{"key":"a","value":{"arrayValue":{"values":[]}}}' in text
    assert '{"key":"m","value":{"kvlistValue":{"values":[]}}}' in text
    assert '{"key":"n","value":{}}' in text
    assert '{"key":"d","value":{"doubleValue":"-Infinity"}}' in text
    assert '{"key":"s","value":{"stringValue":"é😀"}}' in text  # UTF-8, not \\u escapes


def test_json_span_text() -> None:
    span = make_span(
        parent_span_id=b"\xab" * 8,
        kind=SpanKind.SERVER,
        start_time_unix_nano=UINT64_MAX,
        status=Status(StatusCode.ERROR, "bad"),
        flags=0x301,
    )
    document = json.loads(encode_traces_json([span]))
    out = document["resourceSpans"][0]["scopeSpans"][0]["spans"][0]
    assert out["traceId"] == TRACE_ID.hex()
    assert out["spanId"] == SPAN_ID.hex()
    assert out["parentSpanId"] == "abababababababab"
    assert out["kind"] == 2
    assert out["startTimeUnixNano"] == "18446744073709551615"
    assert out["endTimeUnixNano"] == "2"
    assert out["status"] == {"message": "bad", "code": 2}
    assert out["flags"] == 0x301


def test_json_empty_ids_are_left_out() -> None:
    record = LogRecord(body="x")
    out = json.loads(encode_logs_json([record]))["resourceLogs"][0]["scopeLogs"][0]["logRecords"][0]
    assert out == {"body": {"stringValue": "x"}}
    span = json.loads(encode_traces_json([make_span()]))["resourceSpans"][0]["scopeSpans"][0]["spans"][0]
    assert "parentSpanId" not in span


# --- numbers ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("fmt", FORMATS)
def test_extreme_integers_and_times(fmt: str) -> None:
    span = make_span(
        start_time_unix_nano=UINT64_MAX,
        end_time_unix_nano=UINT64_MAX,
        flags=UINT32_MAX,
        dropped_attributes_count=UINT32_MAX,
        events=[Event("e", time_unix_nano=UINT64_MAX, dropped_attributes_count=UINT32_MAX)],
        links=[Link(TRACE_ID, SPAN_ID, flags=UINT32_MAX)],
        dropped_links_count=UINT32_MAX,
        dropped_events_count=UINT32_MAX,
    )
    out = roundtrip(Signal.TRACES, [span], fmt).resource_spans[0].scope_spans[0].spans[0]
    assert out.start_time_unix_nano == out.end_time_unix_nano == UINT64_MAX
    assert out.flags == out.dropped_attributes_count == UINT32_MAX
    assert out.events[0].time_unix_nano == UINT64_MAX
    assert out.links[0].flags == UINT32_MAX
    assert out.dropped_links_count == out.dropped_events_count == UINT32_MAX
    for value in (INT64_MIN, INT64_MAX, 0, -1):
        point = number_point(value, fmt)
        assert point.WhichOneof("value") == "as_int"
        assert point.as_int == value


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("value", [INF, -INF, -0.0, 0.0, 5e-324, 1.7976931348623157e308])
def test_special_doubles(fmt: str, value: float) -> None:
    def same(a: float) -> bool:
        return a == value and math.copysign(1.0, a) == math.copysign(1.0, value)

    (kv,) = span_attributes({"d": value}, fmt)
    assert same(kv.value.double_value)
    point = number_point(value, fmt)
    assert point.WhichOneof("value") == "as_double"
    assert same(point.as_double)
    histogram = HistogramDataPoint(1, [1, 0], [value], sum=value, min=value, max=value)
    exponential = ExponentialHistogramDataPoint(1, sum=value, min=value, max=value, zero_threshold=value)
    summary = SummaryDataPoint(1, sum=value, quantile_values=[ValueAtQuantile(value, value)])
    metrics = [
        Metric("h", Histogram([histogram])),
        Metric("e", ExponentialHistogram([exponential])),
        Metric("s", Summary([summary])),
    ]
    out = roundtrip(Signal.METRICS, metrics, fmt).resource_metrics[0].scope_metrics[0].metrics
    h = out[0].histogram.data_points[0]
    assert h.HasField("sum")
    assert h.HasField("min")
    assert h.HasField("max")
    assert same(h.sum)
    assert same(h.min)
    assert same(h.max)
    assert same(h.explicit_bounds[0])
    e = out[1].exponential_histogram.data_points[0]
    assert same(e.sum)
    assert same(e.min)
    assert same(e.max)
    assert same(e.zero_threshold)
    s = out[2].summary.data_points[0]
    assert same(s.sum)
    assert same(s.quantile_values[0].quantile)
    assert same(s.quantile_values[0].value)


def test_negative_zero_is_written_like_the_official_serializer() -> None:
    # +0.0 in an implicit-presence double is the default and left out; -0.0 is not (bits differ).
    for value in (0.0, -0.0):
        metric = Metric("s", Summary([SummaryDataPoint(0, sum=value)]))
        expected = reference_request(Signal.METRICS, [metric]).SerializeToString(deterministic=True)
        assert encode_metrics([metric]) == expected
    assert b"\x29" + b"\x00" * 7 + b"\x80" in encode_metrics([Metric("s", Summary([SummaryDataPoint(0, sum=-0.0)]))])
    assert '"sum":-0.0' in encode_metrics_json([Metric("s", Summary([SummaryDataPoint(0, sum=-0.0)]))]).decode()
    assert '"sum"' not in encode_metrics_json([Metric("s", Summary([SummaryDataPoint(0, sum=0.0)]))]).decode()


@pytest.mark.parametrize("fmt", FORMATS)
def test_nan(fmt: str) -> None:
    nan = float("nan")
    (kv,) = span_attributes({"d": nan}, fmt)
    assert math.isnan(kv.value.double_value)
    assert math.isnan(number_point(nan, fmt).as_double)
    histogram = HistogramDataPoint(1, [1, 0], [nan], sum=nan, min=nan, max=nan)
    exponential = ExponentialHistogramDataPoint(1, sum=nan, zero_threshold=nan)
    summary = SummaryDataPoint(1, sum=nan, quantile_values=[ValueAtQuantile(nan, nan)])
    exemplar = Exemplar(nan)
    metrics = [
        Metric("h", Histogram([histogram])),
        Metric("e", ExponentialHistogram([exponential])),
        Metric("s", Summary([summary])),
        Metric("g", Gauge([NumberDataPoint(1, exemplars=[exemplar])])),
    ]
    out = roundtrip(Signal.METRICS, metrics, fmt).resource_metrics[0].scope_metrics[0].metrics
    h = out[0].histogram.data_points[0]
    assert all(math.isnan(x) for x in (h.sum, h.min, h.max, h.explicit_bounds[0]))
    e = out[1].exponential_histogram.data_points[0]
    assert math.isnan(e.sum)
    assert math.isnan(e.zero_threshold)
    s = out[2].summary.data_points[0]
    assert all(math.isnan(x) for x in (s.sum, s.quantile_values[0].quantile, s.quantile_values[0].value))
    assert math.isnan(out[3].gauge.data_points[0].exemplars[0].as_double)


def test_json_special_double_strings() -> None:
    nan = float("nan")
    point = HistogramDataPoint(1, [1, 1, 1, 0], [nan, INF, -INF], sum=nan, min=-INF, max=INF)
    text = encode_metrics_json([Metric("h", Histogram([point]))]).decode()
    assert '"explicitBounds":["NaN","Infinity","-Infinity"]' in text
    assert '"sum":"NaN"' in text
    assert '"min":"-Infinity"' in text
    assert '"max":"Infinity"' in text
    json.loads(text, parse_constant=lambda c: pytest.fail(f"bare {c} in JSON"))  # never a bare NaN literal


@pytest.mark.parametrize("fmt", FORMATS)
def test_optional_doubles_presence(fmt: str) -> None:
    metrics = [
        Metric("unset", Histogram([HistogramDataPoint(0)])),
        Metric("zero", Histogram([HistogramDataPoint(0, sum=0.0, min=0.0, max=0.0)])),
    ]
    out = roundtrip(Signal.METRICS, metrics, fmt).resource_metrics[0].scope_metrics[0].metrics
    unset, zero = out[0].histogram.data_points[0], out[1].histogram.data_points[0]
    assert not any(unset.HasField(f) for f in ("sum", "min", "max"))
    assert all(zero.HasField(f) for f in ("sum", "min", "max"))


@pytest.mark.parametrize("fmt", FORMATS)
def test_metric_kinds_and_exemplars(fmt: str) -> None:
    exemplars = [Exemplar(0, trace_id=TRACE_ID, span_id=SPAN_ID), Exemplar(0.0, time_unix_nano=5)]
    metrics = [
        Metric("g", Gauge()),
        Metric("s", Sum([NumberDataPoint(0, exemplars=exemplars)], is_monotonic=True)),
        Metric(
            "e",
            ExponentialHistogram(
                [ExponentialHistogramDataPoint(3, scale=-3, positive=Buckets(-5, [1, 2]), negative=Buckets(7))]
            ),
        ),
    ]
    out = roundtrip(Signal.METRICS, metrics, fmt).resource_metrics[0].scope_metrics[0].metrics
    assert [m.WhichOneof("data") for m in out] == ["gauge", "sum", "exponential_histogram"]
    assert len(out[0].gauge.data_points) == 0
    s = out[1].sum
    assert s.is_monotonic
    assert s.aggregation_temporality == 2
    ex = s.data_points[0].exemplars
    assert ex[0].WhichOneof("value") == "as_int"
    assert ex[0].trace_id == TRACE_ID
    assert ex[0].span_id == SPAN_ID
    assert ex[1].WhichOneof("value") == "as_double"
    assert ex[1].time_unix_nano == 5
    point = out[2].exponential_histogram.data_points[0]
    assert point.scale == -3
    assert point.positive.offset == -5
    assert list(point.positive.bucket_counts) == [1, 2]
    assert point.HasField("negative")
    assert point.negative.offset == 7


def test_count_items() -> None:
    spans = [make_span(), make_span()]
    metrics = [
        Metric("g", Gauge([NumberDataPoint(1), NumberDataPoint(2)])),
        Metric("h", Histogram([HistogramDataPoint(1)])),
        Metric("empty", Summary()),
    ]
    assert count_items(Signal.TRACES, spans) == 2
    assert count_items(Signal.LOGS, [LogRecord()] * 3) == 3
    assert count_items(Signal.METRICS, metrics) == 3
    assert count_items(Signal.METRICS, []) == 0


def test_encode_dispatch() -> None:
    spans = [make_span()]
    records = [LogRecord(body="x")]
    metrics = [Metric("g", Gauge([NumberDataPoint(1)]))]
    assert encode(Signal.TRACES, spans, json=False) == encode_traces(spans)
    assert encode(Signal.TRACES, spans, json=True) == encode_traces_json(spans)
    assert encode(Signal.LOGS, records, json=False) == encode_logs(records)
    assert encode(Signal.LOGS, records, json=True) == encode_logs_json(records)
    assert encode(Signal.METRICS, metrics, json=False) == encode_metrics(metrics)
    assert encode(Signal.METRICS, metrics, json=True) == encode_metrics_json(metrics)


# --- batches and grouping -----------------------------------------------------------------------------------


@pytest.mark.parametrize("signal", list(Signal))
def test_empty_batch(signal: Signal) -> None:
    assert encode(signal, [], json=False) == b""
    assert encode(signal, [], json=True) == b"{}"
    assert _CLASSES[signal].FromString(b"") == _CLASSES[signal]()
    assert otlp_json_to_message(signal, b"{}") == _CLASSES[signal]()


@pytest.mark.parametrize("fmt", FORMATS)
def test_grouping_by_identity_in_first_seen_order(fmt: str) -> None:
    r1 = Resource({"service.name": "a"})
    r2 = Resource({"service.name": "b"}, schema_url="https://r2")
    r1_twin = Resource({"service.name": "a"})  # equal to r1, but another object: another group
    s1 = InstrumentationScope("s1")
    s2 = InstrumentationScope("s2", schema_url="https://s2")
    order = [(r2, s1), (r1, s2), (r2, s2), (r1, s2), (r2, s1), (r1_twin, s1), (r1, s1)]
    spans = [make_span(name=str(i), resource=r, scope=s) for i, (r, s) in enumerate(order)]
    out = roundtrip(Signal.TRACES, spans, fmt)
    layout = [
        (
            rs.resource.attributes[0].value.string_value,
            rs.schema_url,
            [(ss.scope.name, ss.schema_url, [sp.name for sp in ss.spans]) for ss in rs.scope_spans],
        )
        for rs in out.resource_spans
    ]
    assert layout == [
        ("b", "https://r2", [("s1", "", ["0", "4"]), ("s2", "https://s2", ["2"])]),
        ("a", "", [("s2", "https://s2", ["1", "3"]), ("s1", "", ["6"])]),
        ("a", "", [("s1", "", ["5"])]),
    ]


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("twin_at", [None, 0, 1, 255, 511])
def test_one_resource_one_scope_is_one_group_and_a_twin_anywhere_is_another(fmt: str, twin_at: int | None) -> None:
    """The one-group fast path: all 512 spans share one resource and one scope object; an equal but distinct
    resource (or scope) at any position still gets its own group, as in the general path."""
    resource, scope = Resource({"service.name": "a"}), InstrumentationScope("s")
    twins = [(Resource({"service.name": "a"}), scope), (resource, InstrumentationScope("s"))]
    for twin in twins:
        pairs = [(resource, scope)] * 512
        if twin_at is not None:
            pairs[twin_at] = twin
        spans = [make_span(name=str(i), resource=r, scope=s) for i, (r, s) in enumerate(pairs)]
        out = roundtrip(Signal.TRACES, spans, fmt)
        groups = [[sp.name for sp in ss.spans] for rs in out.resource_spans for ss in rs.scope_spans]
        names = [str(i) for i in range(512)]
        if twin_at is None:
            assert groups == [names]
        else:
            assert sorted(groups, key=len) == [[str(twin_at)], [n for n in names if n != str(twin_at)]]


@pytest.mark.parametrize("fmt", FORMATS)
def test_empty_resource_scope_and_status_are_present(fmt: str) -> None:
    out = roundtrip(Signal.TRACES, [make_span()], fmt)
    rs = out.resource_spans[0]
    assert rs.HasField("resource")
    assert rs.scope_spans[0].HasField("scope")
    assert rs.scope_spans[0].spans[0].HasField("status")


@pytest.mark.parametrize("fmt", FORMATS)
def test_log_record_fields(fmt: str) -> None:
    record = LogRecord(
        time_unix_nano=1,
        observed_time_unix_nano=UINT64_MAX,
        severity_number=17,
        severity_text="ERROR",
        body={"msg": ["a", 1]},
        attributes={"k": "v"},
        dropped_attributes_count=2,
        flags=1,
        trace_id=TRACE_ID,
        span_id=SPAN_ID,
        event_name="my.event",
    )
    no_body = LogRecord(body=None)
    empty_string_body = LogRecord(body="")
    out = roundtrip(Signal.LOGS, [record, no_body, empty_string_body], fmt).resource_logs[0].scope_logs[0]
    first, second, third = out.log_records
    assert first.event_name == "my.event"
    assert first.observed_time_unix_nano == UINT64_MAX
    assert first.severity_number == 17
    assert first.trace_id == TRACE_ID
    assert first.span_id == SPAN_ID
    assert first.body.kvlist_value.values[0].value.array_value.values[1].int_value == 1
    assert not second.HasField("body")
    assert third.HasField("body")
    assert third.body.WhichOneof("value") == "string_value"


# --- strings ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("fmt", FORMATS)
def test_lone_surrogates_become_replacement_characters(fmt: str) -> None:
    span = make_span(
        name="n\ud800",
        attributes={"k\udfff": "v\ud800", "pair": "\ud83d\ude00", "long": "x" * 100 + "\udc00"},
        status=Status(StatusCode.ERROR, "\ud800"),
        resource=Resource({"r": "\udc00"}),
        scope=InstrumentationScope("s\ud800", "v\ud800"),
    )
    out = roundtrip(Signal.TRACES, [span], fmt).resource_spans[0]
    sp = out.scope_spans[0].spans[0]
    assert sp.name == "n\ufffd"
    assert [(kv.key, kv.value.string_value) for kv in sp.attributes] == [
        ("k\ufffd", "v\ufffd"),
        ("pair", "😀"),
        ("long", "x" * 100 + "\ufffd"),
    ]
    assert sp.status.message == "\ufffd"
    assert out.resource.attributes[0].value.string_value == "\ufffd"
    assert out.scope_spans[0].scope.name == "s\ufffd"
    assert out.scope_spans[0].scope.version == "v\ufffd"
    record = LogRecord(body=["\ud800", {"\udc00": "ok"}])
    body = roundtrip(Signal.LOGS, [record], fmt).resource_logs[0].scope_logs[0].log_records[0].body
    assert body.array_value.values[0].string_value == "\ufffd"
    assert body.array_value.values[1].kvlist_value.values[0].key == "\ufffd"


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("size", [125, 126, 127, 128, 16383, 16384, 70000])
def test_long_strings_and_big_messages(fmt: str, size: int) -> None:
    text = "é" * (size // 2) + "x" * (size % 2)
    span = make_span(
        name=text,
        attributes={text: text, "b": text.encode(), "l": [text], "m": {text: text}},
        events=[Event(text, attributes={"e": text})],
    )
    out = roundtrip(Signal.TRACES, [span], fmt)
    assert out == reference_request(Signal.TRACES, [span])
    if fmt == "protobuf":
        expected = reference_request(Signal.TRACES, [span]).SerializeToString(deterministic=True)
        assert encode_traces([span]) == expected


@pytest.mark.parametrize("encoder_implementation", ["python"], indirect=True)  # the compiled encoder has no caches
def test_caches_stay_bounded_and_correct() -> None:
    spans = [
        make_span(name=f"n{i}", attributes={f"k{i}": f"v{i}", "shared": f"v{i}", "i": i, f"j{i}": -i})
        for i in range(10_000)
    ]
    assert encode_traces(spans) == reference_request(Signal.TRACES, spans).SerializeToString(deterministic=True)
    for cache in (_protobuf._LP, _protobuf._KEY, _protobuf._KV_STR, _protobuf._KV_INT):
        assert 0 < len(cache) <= _protobuf._CACHE_MAX
    # a second pass hits warm caches and gives the same bytes
    assert encode_traces(spans) == encode_traces(spans)


@pytest.mark.parametrize("encoder_implementation", ["python"], indirect=True)  # the compiled encoder has no caches
def test_long_values_are_not_cached() -> None:
    value = "v" * (_protobuf._CACHE_MAX_VALUE_CHARS + 1)
    key = "k" * (_protobuf._CACHE_MAX_KEY_CHARS + 1)
    encode_traces(
        [make_span(name=key, attributes={key: value, "short": value}, events=[Event("e", attributes={key: 1})])]
    )
    assert key not in _protobuf._LP
    assert key not in _protobuf._KEY
    assert ("short", value) not in _protobuf._KV_STR
    assert (key, 1) not in _protobuf._KV_INT


class Color(enum.IntEnum):
    RED = 1


class Tag(str):
    pass


class Ratio(float):
    pass


@pytest.mark.parametrize("fmt", FORMATS)
def test_subclasses_of_value_types(fmt: str) -> None:
    attributes = {
        "enum": Color.RED,
        "str": Tag("t"),
        "float": Ratio(0.5),
        "nested": [Tag("u"), {"r": Ratio(2.0)}],
    }
    decoded = {kv.key: kv.value for kv in span_attributes(attributes, fmt)}
    assert decoded["enum"].int_value == 1
    assert decoded["str"].string_value == "t"
    assert decoded["float"].double_value == 0.5
    assert decoded["nested"].array_value.values[0].string_value == "u"
    assert number_point(Ratio(2.5), fmt).as_double == 2.5


@pytest.mark.parametrize("fmt", FORMATS)
def test_deep_nesting(fmt: str) -> None:
    value: Any = "leaf"
    for i in range(20):  # Python protobuf decoders refuse a message nesting depth over 100
        value = [value] if i % 2 else {"k": value}
    record = LogRecord(body=value)
    out = roundtrip(Signal.LOGS, [record], fmt)
    assert out == reference_request(Signal.LOGS, [record])
