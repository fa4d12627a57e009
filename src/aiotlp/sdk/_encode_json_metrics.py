"""SDK metrics as OTLP/JSON: :func:`encode_metrics_data_json` and :func:`encode_metric_items_json`, the JSON forms
of the protobuf encoders, with the same mapping and rules (apart from :mod:`._encode_json`, so that a span exporter
does not import the metrics SDK). See :mod:`._encode`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from opentelemetry.sdk.metrics.export import (
    ExponentialHistogram,
    Gauge,
    Histogram,
    Metric,
    MetricsData,
    Sum,
)

from aiotlp._exceptions import EncodeError
from aiotlp.encoding import INT64_MAX as _INT64_MAX
from aiotlp.encoding import INT64_MIN as _INT64_MIN
from aiotlp.encoding import UINT64_MAX as _UINT64_MAX
from aiotlp.encoding import as_double as _as_double
from aiotlp.encoding import count_error as _count_error
from aiotlp.encoding import json_attributes as _attributes
from aiotlp.encoding import json_float as _float

from ._encode_common import (
    MetricItem,
    _json_request,
    _plain,
    logger,
)
from ._encode_metrics import (
    _metric_groups,
    metric_items,
)

__all__ = ["encode_metric_items_json", "encode_metrics_data_json"]


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
