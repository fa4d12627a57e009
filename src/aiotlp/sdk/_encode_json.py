"""SDK spans, log records and metrics as OTLP/JSON: :func:`encode_spans_json`, :func:`encode_log_records_json`,
:func:`encode_metrics_data_json` and :func:`encode_metric_items_json`, the JSON forms of the protobuf encoders,
with the same mapping and rules. See :mod:`._encode`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from opentelemetry.sdk._logs import ReadableLogRecord
from opentelemetry.sdk.metrics.export import (
    ExponentialHistogram,
    Gauge,
    Histogram,
    Metric,
    MetricsData,
    Sum,
)
from opentelemetry.sdk.trace import ReadableSpan

from aiotlp._exceptions import EncodeError
from aiotlp.encoding import INT64_MAX as _INT64_MAX
from aiotlp.encoding import INT64_MIN as _INT64_MIN
from aiotlp.encoding import UINT64_MAX as _UINT64_MAX
from aiotlp.encoding import LeftOut as _LeftOut
from aiotlp.encoding import as_double as _as_double
from aiotlp.encoding import count_error as _count_error
from aiotlp.encoding import json_any as _any
from aiotlp.encoding import json_attributes as _attributes
from aiotlp.encoding import json_float as _float

from ._encode_common import (
    _BL,
    MetricItem,
    _group,
    _json_request,
    _plain,
    _put_attributes,
    _trace_state,
    logger,
)
from ._encode_logs import (
    _coerce,
    _log_key,
)
from ._encode_metrics import (
    _metric_groups,
    metric_items,
)
from ._encode_spans import (
    _direct_spans,
    _span_key,
)

__all__ = ["encode_log_records_json", "encode_metric_items_json", "encode_metrics_data_json", "encode_spans_json"]


def _span_json(span: ReadableSpan) -> dict[str, Any]:
    context: Any = span._context
    parent: Any = span._parent
    out: dict[str, Any] = {"traceId": f"{context[0]:032x}", "spanId": f"{context[1]:016x}"}
    if context[4]:
        out["traceState"] = _trace_state(context[4])
    if parent is not None:
        out["parentSpanId"] = f"{parent[1]:016x}"
    out["flags"] = 0x300 if parent is not None and parent[2] else 0x100
    if span._name:
        out["name"] = span._name
    out["kind"] = span._kind._value_ + 1
    if span._start_time:
        out["startTimeUnixNano"] = str(span._start_time)
    if span._end_time:
        out["endTimeUnixNano"] = str(span._end_time)
    _put_attributes(out, span._attributes)
    events: Any = span._events
    if events:
        out["events"] = [_event_json(event) for event in events]
    if type(events) is _BL and events.dropped:
        out["droppedEventsCount"] = events.dropped
    links: Any = span._links
    if links:
        out["links"] = [_link_json(link) for link in links]
    if type(links) is _BL and links.dropped:
        out["droppedLinksCount"] = links.dropped
    status: Any = span._status
    status_out: dict[str, Any] = {}
    if status.description:
        status_out["message"] = status.description
    if status.status_code._value_:
        status_out["code"] = status.status_code._value_
    out["status"] = status_out
    return out


def _event_json(event: Any) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if event.timestamp:
        out["timeUnixNano"] = str(event.timestamp)
    if event.name:
        out["name"] = event.name
    _put_attributes(out, event.attributes)
    return out


def _link_json(link: Any) -> dict[str, Any]:
    context = link.context
    out: dict[str, Any] = {"traceId": f"{context[0]:032x}", "spanId": f"{context[1]:016x}"}
    if context[4]:
        out["traceState"] = _trace_state(context[4])
    _put_attributes(out, link.attributes)
    out["flags"] = 0x300 if context[2] else 0x100
    return out


def encode_spans_json(spans: Sequence[ReadableSpan]) -> bytes:
    """The same request as :func:`encode_spans`, as OTLP/JSON (UTF-8). An empty batch gives ``b"{}"``."""
    return _json_request(_group(_direct_spans(spans), _span_key), ("resourceSpans", "scopeSpans", "spans"), _span_json)


def _body_json(body: Any) -> dict[str, Any]:
    try:
        return _any(_coerce(body))
    except _LeftOut as exc:  # nested too deep, or an int outside int64: replaced, the record kept
        return {"stringValue": exc.body}


def _log_json(readable: ReadableLogRecord) -> dict[str, Any]:
    record: Any = readable.log_record
    out: dict[str, Any] = {}
    if record.timestamp:
        out["timeUnixNano"] = str(record.timestamp)
    if record.observed_timestamp:
        out["observedTimeUnixNano"] = str(record.observed_timestamp)
    severity = getattr(record.severity_number, "_value_", None)
    if severity:
        out["severityNumber"] = severity
    if record.severity_text:
        out["severityText"] = record.severity_text
    out["body"] = _body_json(record.body)
    _put_attributes(out, record.attributes)
    if record.trace_flags:
        out["flags"] = int(record.trace_flags)
    if record.trace_id:
        out["traceId"] = f"{record.trace_id:032x}"
    if record.span_id:
        out["spanId"] = f"{record.span_id:016x}"
    if record.event_name:
        out["eventName"] = record.event_name
    return out


def encode_log_records_json(records: Sequence[ReadableLogRecord]) -> bytes:
    """The same request as :func:`encode_log_records`, as OTLP/JSON (UTF-8). Empty gives ``b"{}"``."""
    return _json_request(_group(records, _log_key), ("resourceLogs", "scopeLogs", "logRecords"), _log_json)


def _check_counts(point: Any, *counts: Sequence[int]) -> None:
    """The JSON twin of the protobuf writers' uint64 check: ``point.count`` and each of ``counts``."""
    if not 0 <= point.count <= _UINT64_MAX or any(
        values and not (min(values) >= 0 and max(values) <= _UINT64_MAX) for values in counts
    ):
        raise _count_error(point)


def _exemplars_json(exemplars: Sequence[Any]) -> list[dict[str, Any]]:
    result: list[dict[str, Any]] = []
    for exemplar in exemplars:
        out: dict[str, Any] = {}
        attributes = _plain(exemplar.filtered_attributes)
        if attributes:
            out["filteredAttributes"] = _attributes(attributes)
        if exemplar.time_unix_nano:
            out["timeUnixNano"] = str(exemplar.time_unix_nano)
        value = exemplar.value
        if isinstance(value, int) and not _INT64_MIN <= value <= _INT64_MAX:
            value = _as_double(value)  # as_int is an sfixed64
        if isinstance(value, float):
            out["asDouble"] = _float(value)
        elif isinstance(value, int):
            out["asInt"] = str(int(value))
        else:
            raise EncodeError(f"an exemplar value must be an int or a float, got {type(value).__name__}")
        if exemplar.span_id is not None and exemplar.trace_id is not None:
            out["spanId"] = f"{exemplar.span_id:016x}"
            out["traceId"] = f"{exemplar.trace_id:032x}"
        result.append(out)
    return result


def _point_json(point: Any, with_start: bool = True) -> dict[str, Any]:
    out: dict[str, Any] = {}
    attributes = _plain(point.attributes)
    if attributes:
        out["attributes"] = _attributes(attributes)
    if with_start and point.start_time_unix_nano:
        out["startTimeUnixNano"] = str(point.start_time_unix_nano)
    if point.time_unix_nano:
        out["timeUnixNano"] = str(point.time_unix_nano)
    if point.exemplars:
        out["exemplars"] = _exemplars_json(point.exemplars)
    return out


def _number_point_json(point: Any, with_start: bool) -> dict[str, Any]:
    out = _point_json(point, with_start)
    value = point.value
    if isinstance(value, int) and _INT64_MIN <= value <= _INT64_MAX:
        out["asInt"] = str(int(value))
    else:  # a float, or an int outside int64 (as_int is an sfixed64)
        out["asDouble"] = _float(_as_double(value) if isinstance(value, int) else value)
    return out


def _histogram_point_json(point: Any) -> dict[str, Any]:
    _check_counts(point, point.bucket_counts)
    out = _point_json(point)
    if point.count:
        out["count"] = str(point.count)
    if point.sum is not None:
        out["sum"] = _float(point.sum)
    if point.bucket_counts:
        out["bucketCounts"] = [str(c) for c in point.bucket_counts]
    if point.explicit_bounds:
        out["explicitBounds"] = [_float(b) for b in point.explicit_bounds]
    if point.min is not None:
        out["min"] = _float(point.min)
    if point.max is not None:
        out["max"] = _float(point.max)
    return out


def _buckets_json(buckets: Any) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if buckets.offset:
        out["offset"] = buckets.offset
    out["bucketCounts"] = [str(c) for c in buckets.bucket_counts]
    return out


def _exponential_point_json(point: Any) -> dict[str, Any]:
    _check_counts(point, (point.zero_count,), point.positive.bucket_counts, point.negative.bucket_counts)
    out = _point_json(point)
    if point.count:
        out["count"] = str(point.count)
    if point.sum is not None:
        out["sum"] = _float(point.sum)
    if point.scale:
        out["scale"] = point.scale
    if point.zero_count:
        out["zeroCount"] = str(point.zero_count)
    if point.positive.bucket_counts:
        out["positive"] = _buckets_json(point.positive)
    if point.negative.bucket_counts:
        out["negative"] = _buckets_json(point.negative)
    if point.flags:
        out["flags"] = point.flags
    if point.min is not None:
        out["min"] = _float(point.min)
    if point.max is not None:
        out["max"] = _float(point.max)
    return out


def _metric_json(metric: Metric) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if metric.name:
        out["name"] = metric.name
    if metric.description:
        out["description"] = metric.description
    if metric.unit:
        out["unit"] = metric.unit
    data: Any = metric.data
    points = getattr(data, "data_points", None)
    if not points:
        return out
    body: dict[str, Any]
    if isinstance(data, Sum):
        body = {"dataPoints": [_number_point_json(p, True) for p in points]}
        if data.aggregation_temporality:
            body["aggregationTemporality"] = int(data.aggregation_temporality)
        if data.is_monotonic:
            body["isMonotonic"] = True
        out["sum"] = body
    elif isinstance(data, Gauge):
        out["gauge"] = {"dataPoints": [_number_point_json(p, False) for p in points]}
    elif isinstance(data, Histogram):
        body = {"dataPoints": [_histogram_point_json(p) for p in points]}
        if data.aggregation_temporality:
            body["aggregationTemporality"] = int(data.aggregation_temporality)
        out["histogram"] = body
    elif isinstance(data, ExponentialHistogram):
        body = {"dataPoints": [_exponential_point_json(p) for p in points]}
        if data.aggregation_temporality:
            body["aggregationTemporality"] = int(data.aggregation_temporality)
        out["exponentialHistogram"] = body
    else:
        logger.warning("metric %r: unsupported data type %s, sent without data", metric.name, type(data).__name__)
    return out


def encode_metric_items_json(items: Sequence[MetricItem]) -> bytes:
    """The same request as :func:`encode_metric_items`, as OTLP/JSON (UTF-8). Empty gives ``b"{}"``."""
    return _json_request(_metric_groups(items), ("resourceMetrics", "scopeMetrics", "metrics"), _metric_json)


def encode_metrics_data_json(data: MetricsData) -> bytes:
    """The same request as :func:`encode_metrics_data`, as OTLP/JSON (UTF-8)."""
    return encode_metric_items_json(metric_items(data))
