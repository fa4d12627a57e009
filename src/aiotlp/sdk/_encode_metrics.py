"""SDK metrics (``MetricsData``) as protobuf: :func:`encode_metrics_data`, and its flat form (:func:`metric_items`,
:func:`encode_metric_items`, :func:`split_metric_item`) by which an oversized batch is split. The data and its
points are written by :class:`aiotlp.encoding.MetricWriter`, the model encoder's writer. See :mod:`._encode`.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Sequence
from typing import Any, Final

from opentelemetry.sdk.metrics.export import (
    ExponentialHistogram,
    Gauge,
    Histogram,
    Metric,
    MetricsData,
    Sum,
)
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.util.instrumentation import InstrumentationScope

from aiotlp.encoding import (
    MetricWriter,
    write_metric_names,
)
from aiotlp.encoding import patch_length as _patch
from aiotlp.model import ExponentialHistogram as ExponentialHistogram_
from aiotlp.model import Gauge as Gauge_
from aiotlp.model import Histogram as Histogram_
from aiotlp.model import Sum as Sum_

from ._encode_common import (
    MetricItem,
    _Groups,
    _pack_id8,
    _plain,
    _write_request,
    logger,
)

__all__ = ["count_data_points", "encode_metric_items", "encode_metrics_data", "metric_items", "split_metric_item"]

# ------------------------------------------------------------------------------------------------------------
# Metrics


def metric_items(data: MetricsData) -> list[MetricItem]:
    """``data`` flattened: one ``(resource, scope, metric)`` per metric, in order."""
    return [
        (resource_metrics.resource, scope_metrics.scope, metric)
        for resource_metrics in data.resource_metrics
        for scope_metrics in resource_metrics.scope_metrics
        for metric in scope_metrics.metrics
    ]


def count_data_points(items: Sequence[MetricItem]) -> int:
    """How many data points ``items`` hold (the unit OTLP counts metrics in)."""
    return sum(len(getattr(metric.data, "data_points", ())) for _, _, metric in items)


def split_metric_item(item: MetricItem) -> list[MetricItem]:
    """One metric as two, each with half of its data points (to split a metric too large for a request)."""
    resource, scope, metric = item
    data: Any = metric.data
    points = data.data_points
    half = len(points) // 2
    return [
        (resource, scope, dataclasses.replace(metric, data=dataclasses.replace(data, data_points=part)))
        for part in (points[:half], points[half:])
    ]


def _metric_groups(items: Sequence[MetricItem]) -> _Groups[Metric]:
    """Group by resource identity, then scope identity, in first-seen order (the SDK groups them already)."""
    grouped: dict[int, tuple[Resource, dict[int, tuple[InstrumentationScope, list[Metric]]]]] = {}
    for resource, scope, metric in items:
        entry = grouped.get(id(resource))
        if entry is None:
            entry = grouped[id(resource)] = (resource, {})
        scopes = entry[1]
        scope_entry = scopes.get(id(scope))
        if scope_entry is None:
            scope_entry = scopes[id(scope)] = (scope, [])
        scope_entry[1].append(metric)
    return [(resource, list(scopes.values())) for resource, scopes in grouped.values()]


def _sdk_ids(exemplar: Any) -> tuple[bytes, bytes]:
    """An SDK exemplar's span and trace id (ints) as bytes: both, or neither (as the official encoder)."""
    span_id, trace_id = exemplar.span_id, exemplar.trace_id
    if span_id is None or trace_id is None:
        return b"", b""
    return _pack_id8(span_id), trace_id.to_bytes(16, "big")


_WRITER: Final = MetricWriter(plain=_plain, exemplar_ids=_sdk_ids, gauge_start_time=False, empty_buckets=False)
"""The metric data writer of :mod:`aiotlp.encoding`, for SDK points: BoundedAttributes, int ids, no start time on
a gauge point (as the official encoder), exponential buckets only with counts."""

_KINDS: Final = ((Sum, Sum_), (Gauge, Gauge_), (Histogram, Histogram_), (ExponentialHistogram, ExponentialHistogram_))


def _write_metrics(buf: bytearray, metrics: Iterable[Metric]) -> None:
    for metric in metrics:
        buf += b"\x12\x00"  # ScopeMetrics 2 metrics
        start = len(buf)
        write_metric_names(buf, metric)
        # The official encoder sets the data kind (and its temporality) only while adding a data point.
        if getattr(metric.data, "data_points", None):
            kind = next((model for sdk, model in _KINDS if isinstance(metric.data, sdk)), None)
            if kind is not None:
                _WRITER.data(buf, metric, kind)
            else:
                logger.warning(
                    "metric %r: unsupported data type %s, sent without data", metric.name, type(metric.data).__name__
                )
        _patch(buf, start)


def encode_metric_items(items: Sequence[MetricItem]) -> bytes:
    """An ``ExportMetricsServiceRequest`` (protobuf) of :func:`metric_items`. Empty gives ``b""``."""
    return _write_request(_metric_groups(items), _write_metrics)


def encode_metrics_data(data: MetricsData) -> bytes:
    """An ``ExportMetricsServiceRequest`` (protobuf) of an SDK ``MetricsData``."""
    return encode_metric_items(metric_items(data))
