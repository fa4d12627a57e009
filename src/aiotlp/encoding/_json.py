"""Model objects -> OTLP/JSON request bytes (sans-IO).

OTLP/JSON is the proto3 JSON mapping of the same ``Export*ServiceRequest`` messages, with the OTLP exceptions:

- ``traceId``/``spanId``/``parentSpanId`` are lowercase hex strings, not base64; an empty id is left out;
- enums are integers (``"kind": 2``), never names;
- keys are lowerCamelCase field names;
- 64-bit integers (times, counts, bucket counts, ``intValue``, ``asInt``) are decimal strings; 32-bit ones
  (dropped counts, flags, scale, offset) are numbers;
- ``bytesValue`` is standard base64 with padding;
- doubles are JSON numbers, except NaN and the infinities, which are the strings ``"NaN"``, ``"Infinity"`` and
  ``"-Infinity"``;
- ``arrayValue`` and ``kvlistValue`` always carry ``"values"``, even when empty: proto3 JSON allows it, and
  some collectors (rotel) reject the object without it.

Which fields are written follows the protobuf encoder exactly (defaults left out, oneof and optional members
written when set, ``-0.0`` kept), so both encodings of a batch decode to the same message. A ``KeyValue``
always carries its ``key``, even when empty. Strings: a lone surrogate code point becomes U+FFFD and a
well-formed surrogate pair is joined, as in the protobuf encoder (see :func:`aiotlp.encoding._wire.utf8`). An
empty batch encodes to ``b"{}"``, the JSON form of the empty request.

The request is built as plain dicts and lists and serialized by one ``json.dumps`` call (the C encoder).
"""

from __future__ import annotations

import json
from base64 import b64encode
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Final, TypeVar

from aiotlp._exceptions import EncodeError
from aiotlp.model import (
    MAX_NESTING_DEPTH,
    AnyValue,
    Buckets,
    Exemplar,
    ExponentialHistogram,
    ExponentialHistogramDataPoint,
    Gauge,
    Histogram,
    HistogramDataPoint,
    InstrumentationScope,
    LogRecord,
    Metric,
    NumberDataPoint,
    Resource,
    Span,
    Sum,
    Summary,
    SummaryDataPoint,
)

from ._protobuf import (
    _INT64_MAX,
    _INT64_MIN,
    _int_out_of_range,
    _LeftOut,
    _normalize,
    _too_deep,
    group_by_resource_and_scope,
)
from ._protobuf_metrics import as_double
from ._wire import double

__all__ = ["encode_logs_json", "encode_metrics_json", "encode_traces_json"]

_T = TypeVar("_T", Span, LogRecord, Metric)
JsonObject = dict[str, Any]

_NEG_ZERO: Final = double(-0.0)
_dumps: Final = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False, allow_nan=False).encode


def _finish(document: JsonObject) -> bytes:
    text = _dumps(document)
    try:
        return text.encode()
    except UnicodeEncodeError:
        # Lone surrogates: join the pairs, replace the rest with U+FFFD. JSON syntax (a quote at least) stands
        # between any two strings, so this never joins halves from two different strings.
        return text.encode("utf-16-le", "surrogatepass").decode("utf-16-le", "replace").encode()


def _float(value: float) -> float | str:
    """A double as JSON: a number, or ``"NaN"``/``"Infinity"``/``"-Infinity"``."""
    if value - value == 0.0:  # finite (inf - inf and nan - nan are nan)
        return value
    if value != value:
        return "NaN"
    return "Infinity" if value > 0 else "-Infinity"


def _set_double(out: JsonObject, key: str, value: float) -> None:
    """An implicit-presence double: left out at +0.0 only, as in the protobuf encoder."""
    if value or double(value) == _NEG_ZERO:
        out[key] = _float(value)


# ------------------------------------------------------------------------------------------------------------
# AnyValue and attributes


def _any(value: AnyValue, depth: int = 0) -> JsonObject:
    """``value`` as an AnyValue object; it sits inside ``depth`` lists and mappings. Raises _LeftOut when it
    nests deeper than ``MAX_NESTING_DEPTH`` or holds an int outside int64 (as the protobuf writer does, see
    there)."""
    t = type(value)
    if t is str:
        return {"stringValue": value}
    if t is int:
        if not _INT64_MIN <= value <= _INT64_MAX:  # type: ignore[operator]
            raise _int_out_of_range(value)  # type: ignore[arg-type]
        return {"intValue": str(value)}
    if t is bool:
        return {"boolValue": value}
    if t is float:
        return {"doubleValue": _float(value)}  # type: ignore[arg-type]
    if value is None:
        return {}
    if t is tuple:
        if depth >= MAX_NESTING_DEPTH:
            raise _too_deep()
        return {"arrayValue": {"values": [_any(item, depth + 1) for item in value]}}  # type: ignore[union-attr]
    if t is dict:
        if depth >= MAX_NESTING_DEPTH:
            raise _too_deep()
        return {"kvlistValue": {"values": _attributes(value, depth + 1)}}  # type: ignore[arg-type]
    if t is bytes:
        return {"bytesValue": b64encode(value).decode("ascii")}  # type: ignore[arg-type]
    return _any(_normalize(value), depth)


def _attributes(attributes: Mapping[str, AnyValue], depth: int = 0) -> list[JsonObject]:
    """One KeyValue object per attribute. At ``depth`` 0 (an item's attributes) an attribute whose value nests
    too deep or holds an int outside int64 is left out: ``len(attributes) - len(result)`` is the count to add to
    ``droppedAttributesCount``; deeper (a nested mapping), _LeftOut goes through to the attribute that holds
    it."""
    out: list[JsonObject] = []
    append = out.append
    for key, value in attributes.items():
        t = type(value)
        if t is str:
            append({"key": key, "value": {"stringValue": value}})
        elif t is int and _INT64_MIN <= value <= _INT64_MAX:  # type: ignore[operator]
            append({"key": key, "value": {"intValue": str(value)}})
        elif t is bool:
            append({"key": key, "value": {"boolValue": value}})
        else:
            try:
                append({"key": key, "value": _any(value, depth)})
            except _LeftOut:
                if depth:
                    raise
    return out


def _put_attributes(out: JsonObject, attributes: Mapping[str, AnyValue], dropped: int) -> None:
    """``attributes`` and ``droppedAttributesCount`` of an item: ``dropped`` (its own count) plus the attributes
    left out (see :func:`_attributes`), as the protobuf encoder writes them."""
    if attributes:
        listed = _attributes(attributes)
        if listed:
            out["attributes"] = listed
        dropped += len(attributes) - len(listed)
    if dropped:
        out["droppedAttributesCount"] = dropped


# ------------------------------------------------------------------------------------------------------------
# Resource, scope, request


def _resource(resource: Resource) -> JsonObject:
    out: JsonObject = {}
    _put_attributes(out, resource.attributes, resource.dropped_attributes_count)
    return out


def _scope(scope: InstrumentationScope) -> JsonObject:
    out: JsonObject = {}
    if scope.name:
        out["name"] = scope.name
    if scope.version:
        out["version"] = scope.version
    _put_attributes(out, scope.attributes, scope.dropped_attributes_count)
    return out


def _request(
    items: Sequence[_T],
    resource_key: str,
    scope_key: str,
    items_key: str,
    convert: Callable[[_T], JsonObject],
) -> bytes:
    if not items:
        return b"{}"
    resources: list[JsonObject] = []
    for resource, scopes in group_by_resource_and_scope(items):
        scope_list: list[JsonObject] = []
        for scope, scope_items in scopes:
            scope_out: JsonObject = {
                "scope": _scope(scope),
                items_key: [convert(item) for item in scope_items],
            }
            if scope.schema_url:
                scope_out["schemaUrl"] = scope.schema_url
            scope_list.append(scope_out)
        resource_out: JsonObject = {"resource": _resource(resource), scope_key: scope_list}
        if resource.schema_url:
            resource_out["schemaUrl"] = resource.schema_url
        resources.append(resource_out)
    return _finish({resource_key: resources})


# ------------------------------------------------------------------------------------------------------------
# Traces


def _span(span: Span) -> JsonObject:
    out: JsonObject = {"traceId": span.trace_id.hex(), "spanId": span.span_id.hex()}
    if span.trace_state:
        out["traceState"] = span.trace_state
    if span.parent_span_id:
        out["parentSpanId"] = span.parent_span_id.hex()
    if span.flags:
        out["flags"] = span.flags
    if span.name:
        out["name"] = span.name
    if span.kind:
        out["kind"] = int(span.kind)
    if span.start_time_unix_nano:
        out["startTimeUnixNano"] = str(span.start_time_unix_nano)
    if span.end_time_unix_nano:
        out["endTimeUnixNano"] = str(span.end_time_unix_nano)
    _put_attributes(out, span.attributes, span.dropped_attributes_count)
    if span.events:
        events = out["events"] = []
        for event in span.events:
            e: JsonObject = {}
            if event.time_unix_nano:
                e["timeUnixNano"] = str(event.time_unix_nano)
            if event.name:
                e["name"] = event.name
            _put_attributes(e, event.attributes, event.dropped_attributes_count)
            events.append(e)
    if span.dropped_events_count:
        out["droppedEventsCount"] = span.dropped_events_count
    if span.links:
        links = out["links"] = []
        for link in span.links:
            k: JsonObject = {"traceId": link.trace_id.hex(), "spanId": link.span_id.hex()}
            if link.trace_state:
                k["traceState"] = link.trace_state
            _put_attributes(k, link.attributes, link.dropped_attributes_count)
            if link.flags:
                k["flags"] = link.flags
            links.append(k)
    if span.dropped_links_count:
        out["droppedLinksCount"] = span.dropped_links_count
    status = span.status
    s: JsonObject = {}
    if status.message:
        s["message"] = status.message
    if status.code:
        s["code"] = int(status.code)
    out["status"] = s
    return out


def encode_traces_json(spans: Sequence[Span]) -> bytes:
    """Serialize ``spans`` as an OTLP/JSON ``ExportTraceServiceRequest`` (UTF-8). Empty gives ``b"{}"``."""
    return _request(spans, "resourceSpans", "scopeSpans", "spans", _span)


# ------------------------------------------------------------------------------------------------------------
# Logs


def _body(body: AnyValue) -> JsonObject:
    """A log body as an AnyValue object; one that cannot be sent is replaced (as in the protobuf encoder)."""
    try:
        return _any(body)
    except _LeftOut as exc:
        return {"stringValue": exc.body}


def _log_record(record: LogRecord) -> JsonObject:
    out: JsonObject = {}
    if record.time_unix_nano:
        out["timeUnixNano"] = str(record.time_unix_nano)
    if record.observed_time_unix_nano:
        out["observedTimeUnixNano"] = str(record.observed_time_unix_nano)
    if record.severity_number:
        out["severityNumber"] = int(record.severity_number)
    if record.severity_text:
        out["severityText"] = record.severity_text
    if record.body is not None:
        out["body"] = _body(record.body)
    _put_attributes(out, record.attributes, record.dropped_attributes_count)
    if record.flags:
        out["flags"] = record.flags
    if record.trace_id:
        out["traceId"] = record.trace_id.hex()
    if record.span_id:
        out["spanId"] = record.span_id.hex()
    if record.event_name:
        out["eventName"] = record.event_name
    return out


def encode_logs_json(records: Sequence[LogRecord]) -> bytes:
    """Serialize ``records`` as an OTLP/JSON ``ExportLogsServiceRequest`` (UTF-8). Empty gives ``b"{}"``."""
    return _request(records, "resourceLogs", "scopeLogs", "logRecords", _log_record)


# ------------------------------------------------------------------------------------------------------------
# Metrics


def _point_common(out: JsonObject, point: Any) -> None:
    if point.attributes:
        out["attributes"] = _attributes(point.attributes)
    if point.start_time_unix_nano:
        out["startTimeUnixNano"] = str(point.start_time_unix_nano)
    if point.time_unix_nano:
        out["timeUnixNano"] = str(point.time_unix_nano)
    if point.flags:
        out["flags"] = point.flags


def _put_number(out: JsonObject, value: float) -> None:
    """``asInt`` for an int in int64, else ``asDouble`` (an int outside int64 too, as the protobuf encoder)."""
    if isinstance(value, int):
        if _INT64_MIN <= value <= _INT64_MAX:
            out["asInt"] = str(int(value))
            return
        value = as_double(value)
    out["asDouble"] = _float(value)


def _exemplars(exemplars: Sequence[Exemplar]) -> list[JsonObject]:
    result: list[JsonObject] = []
    for exemplar in exemplars:
        out: JsonObject = {}
        if exemplar.filtered_attributes:
            out["filteredAttributes"] = _attributes(exemplar.filtered_attributes)
        if exemplar.time_unix_nano:
            out["timeUnixNano"] = str(exemplar.time_unix_nano)
        _put_number(out, exemplar.value)
        if exemplar.span_id:
            out["spanId"] = exemplar.span_id.hex()
        if exemplar.trace_id:
            out["traceId"] = exemplar.trace_id.hex()
        result.append(out)
    return result


def _number_point(point: NumberDataPoint) -> JsonObject:
    out: JsonObject = {}
    _point_common(out, point)
    _put_number(out, point.value)
    if point.exemplars:
        out["exemplars"] = _exemplars(point.exemplars)
    return out


def _histogram_point(point: HistogramDataPoint) -> JsonObject:
    out: JsonObject = {}
    _point_common(out, point)
    if point.count:
        out["count"] = str(point.count)
    if point.sum is not None:
        out["sum"] = _float(point.sum)
    if point.bucket_counts:
        out["bucketCounts"] = [str(c) for c in point.bucket_counts]
    if point.explicit_bounds:
        out["explicitBounds"] = [_float(b) for b in point.explicit_bounds]
    if point.exemplars:
        out["exemplars"] = _exemplars(point.exemplars)
    if point.min is not None:
        out["min"] = _float(point.min)
    if point.max is not None:
        out["max"] = _float(point.max)
    return out


def _buckets(buckets: Buckets) -> JsonObject:
    out: JsonObject = {}
    if buckets.offset:
        out["offset"] = buckets.offset
    if buckets.bucket_counts:
        out["bucketCounts"] = [str(c) for c in buckets.bucket_counts]
    return out


def _exponential_point(point: ExponentialHistogramDataPoint) -> JsonObject:
    out: JsonObject = {}
    _point_common(out, point)
    if point.count:
        out["count"] = str(point.count)
    if point.sum is not None:
        out["sum"] = _float(point.sum)
    if point.scale:
        out["scale"] = point.scale
    if point.zero_count:
        out["zeroCount"] = str(point.zero_count)
    out["positive"] = _buckets(point.positive)
    out["negative"] = _buckets(point.negative)
    if point.exemplars:
        out["exemplars"] = _exemplars(point.exemplars)
    if point.min is not None:
        out["min"] = _float(point.min)
    if point.max is not None:
        out["max"] = _float(point.max)
    _set_double(out, "zeroThreshold", point.zero_threshold)
    return out


def _summary_point(point: SummaryDataPoint) -> JsonObject:
    out: JsonObject = {}
    _point_common(out, point)
    if point.count:
        out["count"] = str(point.count)
    _set_double(out, "sum", point.sum)
    if point.quantile_values:
        quantiles = out["quantileValues"] = []
        for q in point.quantile_values:
            entry: JsonObject = {}
            _set_double(entry, "quantile", q.quantile)
            _set_double(entry, "value", q.value)
            quantiles.append(entry)
    return out


def _metric(metric: Metric) -> JsonObject:
    out: JsonObject = {}
    if metric.name:
        out["name"] = metric.name
    if metric.description:
        out["description"] = metric.description
    if metric.unit:
        out["unit"] = metric.unit
    data = metric.data
    body: JsonObject
    if isinstance(data, Sum):
        body = {"dataPoints": [_number_point(p) for p in data.data_points]}
        if data.aggregation_temporality:
            body["aggregationTemporality"] = int(data.aggregation_temporality)
        if data.is_monotonic:
            body["isMonotonic"] = True
        out["sum"] = body
    elif isinstance(data, Gauge):
        out["gauge"] = {"dataPoints": [_number_point(p) for p in data.data_points]}
    elif isinstance(data, Histogram):
        body = {"dataPoints": [_histogram_point(p) for p in data.data_points]}
        if data.aggregation_temporality:
            body["aggregationTemporality"] = int(data.aggregation_temporality)
        out["histogram"] = body
    elif isinstance(data, ExponentialHistogram):
        body = {"dataPoints": [_exponential_point(p) for p in data.data_points]}
        if data.aggregation_temporality:
            body["aggregationTemporality"] = int(data.aggregation_temporality)
        out["exponentialHistogram"] = body
    elif isinstance(data, Summary):
        out["summary"] = {"dataPoints": [_summary_point(p) for p in data.data_points]}
    else:
        raise EncodeError(f"Metric.data: cannot encode a {type(data).__name__}")
    if metric.metadata:
        out["metadata"] = _attributes(metric.metadata)
    return out


def encode_metrics_json(metrics: Sequence[Metric]) -> bytes:
    """Serialize ``metrics`` as an OTLP/JSON ``ExportMetricsServiceRequest`` (UTF-8); empty: ``b"{}"``."""
    return _request(metrics, "resourceMetrics", "scopeMetrics", "metrics", _metric)
