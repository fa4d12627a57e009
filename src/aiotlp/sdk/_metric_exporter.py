"""The drop-in ``MetricExporter``, :class:`MetricExporter` (see :mod:`._exporters`), with its temporality and
aggregation preferences and its batching by data points: its own module, imported when it is first used
(``aiotlp.sdk.MetricExporter``, ``OTLPMetricExporter`` of :mod:`aiotlp.sdk.grpc` or :mod:`aiotlp.sdk.http`), so
that a span exporter does not import the metrics SDK (``opentelemetry.sdk.metrics``, about 40 ms).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping, Sequence
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, Final, TypedDict

from opentelemetry.sdk.metrics import (
    Counter,
    Histogram,
    ObservableCounter,
    ObservableGauge,
    ObservableUpDownCounter,
    UpDownCounter,
)
from opentelemetry.sdk.metrics.export import AggregationTemporality, MetricExportResult, MetricsData
from opentelemetry.sdk.metrics.export import MetricExporter as SdkMetricExporter
from opentelemetry.sdk.metrics.view import (
    Aggregation,
    ExplicitBucketHistogramAggregation,
    ExponentialBucketHistogramAggregation,
)

from aiotlp._exceptions import ConfigurationError
from aiotlp._validate import is_int
from aiotlp.config import TemporalityPreference, metric_preferences_from_env
from aiotlp.model import Signal

from . import _encode_metrics as _encode
from ._client import encode_batch
from ._encode_common import MetricItem
from ._encode_json_metrics import encode_metric_items_json
from ._exporters import AiotlpExporter
from ._options import AiotlpOptions, Endpoint, OfficialOptions, ProtocolOption, check_keywords, keywords_of

if TYPE_CHECKING:
    from typing_extensions import Unpack

__all__ = ["MetricArguments", "MetricExporter", "MetricOptions", "temporality_map"]

_TEMPORALITY: Final[dict[str, dict[type, AggregationTemporality]]] = {
    # As the official OTLP metric exporters, for OTEL_EXPORTER_OTLP_METRICS_TEMPORALITY_PREFERENCE.
    "cumulative": {
        Counter: AggregationTemporality.CUMULATIVE,
        UpDownCounter: AggregationTemporality.CUMULATIVE,
        Histogram: AggregationTemporality.CUMULATIVE,
        ObservableCounter: AggregationTemporality.CUMULATIVE,
        ObservableUpDownCounter: AggregationTemporality.CUMULATIVE,
        ObservableGauge: AggregationTemporality.CUMULATIVE,
    },
    "delta": {
        Counter: AggregationTemporality.DELTA,
        UpDownCounter: AggregationTemporality.CUMULATIVE,
        Histogram: AggregationTemporality.DELTA,
        ObservableCounter: AggregationTemporality.DELTA,
        ObservableUpDownCounter: AggregationTemporality.CUMULATIVE,
        ObservableGauge: AggregationTemporality.CUMULATIVE,
    },
    "lowmemory": {
        Counter: AggregationTemporality.DELTA,
        UpDownCounter: AggregationTemporality.CUMULATIVE,
        Histogram: AggregationTemporality.DELTA,
        ObservableCounter: AggregationTemporality.CUMULATIVE,
        ObservableUpDownCounter: AggregationTemporality.CUMULATIVE,
        ObservableGauge: AggregationTemporality.CUMULATIVE,
    },
}


def temporality_map(
    preference: TemporalityPreference, overrides: Mapping[type, AggregationTemporality] | None = None
) -> dict[type, AggregationTemporality]:
    """The instrument -> temporality map of a temporality preference, as the official exporters build it."""
    mapping = dict(_TEMPORALITY[preference])
    mapping.update(overrides or {})
    return mapping


def _chunks(items: list[MetricItem], max_points: int | None) -> list[list[MetricItem]]:
    """``items`` in consecutive chunks of at most ``max_points`` data points (a metric may be cut in parts)."""
    if max_points is None:
        return [items]
    chunks: list[list[MetricItem]] = []
    chunk: list[MetricItem] = []
    room = max_points
    for item in items:
        points = getattr(item[2].data, "data_points", None)
        if not points:
            chunk.append(item)
            continue
        offset = 0
        while offset < len(points):
            take = min(room, len(points) - offset)
            chunk.append(item if take == len(points) else _with_points(item, points[offset : offset + take]))
            offset += take
            room -= take
            if room == 0:
                chunks.append(chunk)
                chunk, room = [], max_points
    if chunk:
        chunks.append(chunk)
    return chunks


def _with_points(item: MetricItem, points: Sequence[Any]) -> MetricItem:
    resource, scope, metric = item
    data: Any = metric.data
    return resource, scope, dataclasses.replace(metric, data=dataclasses.replace(data, data_points=points))


class MetricOptions(TypedDict, total=False):
    """The official metric exporters' own arguments."""

    preferred_temporality: dict[type, AggregationTemporality] | None
    preferred_aggregation: dict[type, Aggregation] | None
    max_export_batch_size: int | None


class MetricArguments(ProtocolOption, OfficialOptions, MetricOptions, AiotlpOptions, total=False):
    """Every keyword argument of :class:`MetricExporter` (see :class:`~._options.ExporterArguments`)."""


class MetricExporter(AiotlpExporter, SdkMetricExporter):
    """A drop-in replacement for the official ``OTLPMetricExporter`` (gRPC or HTTP). Arguments as
    :class:`SpanExporter`, plus the official ``preferred_temporality`` (over the map that
    ``OTEL_EXPORTER_OTLP_METRICS_TEMPORALITY_PREFERENCE`` selects), ``preferred_aggregation`` (over the histogram
    aggregation ``OTEL_EXPORTER_OTLP_METRICS_DEFAULT_HISTOGRAM_AGGREGATION`` selects: explicit buckets, or
    ``base2_exponential_bucket_histogram``; both read by :func:`aiotlp.config.metric_preferences_from_env`) and
    ``max_export_batch_size`` (at most that many data points per request; a metric may be split)."""

    _SIGNAL = Signal.METRICS

    @keywords_of(MetricArguments)
    def __init__(self, endpoint: Endpoint = None, **options: Unpack[MetricArguments]) -> None:
        check_keywords(MetricExporter.__init__, self, options)
        max_export_batch_size = options.pop("max_export_batch_size", None)
        preferred_temporality = options.pop("preferred_temporality", None)
        preferred_aggregation = options.pop("preferred_aggregation", None)
        if max_export_batch_size is not None and (not is_int(max_export_batch_size) or max_export_batch_size <= 0):
            raise ConfigurationError("max_export_batch_size: must be a positive int (data points) or None")
        # only the exporter's own variables (not OTEL_METRIC_EXPORT_*, which the reader uses), leniently
        preference, histogram = metric_preferences_from_env(options.get("environ"), on_invalid="warn")
        aggregation: dict[type, Aggregation] = {
            Histogram: ExponentialBucketHistogramAggregation()
            if histogram == "base2_exponential_bucket_histogram"
            else ExplicitBucketHistogramAggregation()
        }
        aggregation.update(preferred_aggregation or {})
        SdkMetricExporter.__init__(
            self,
            preferred_temporality=temporality_map(preference, preferred_temporality),
            preferred_aggregation=aggregation,
        )
        self._setup(endpoint, options)
        self._max_points = max_export_batch_size

    def _encoder(self, json: bool) -> Callable[[Sequence[Any]], bytes]:
        return encode_metric_items_json if json else _encode.encode_metric_items

    @property
    def preferred_temporality(self) -> Mapping[type, AggregationTemporality]:
        """The temporality this exporter asks the SDK's metric readers for, by instrument class
        (``preferred_temporality=`` over the map ``OTEL_EXPORTER_OTLP_METRICS_TEMPORALITY_PREFERENCE`` selects)."""
        return MappingProxyType(self._preferred_temporality or {})  # always set by __init__

    @property
    def preferred_aggregation(self) -> Mapping[type, Aggregation]:
        """The aggregation this exporter asks the SDK's metric readers for, by instrument class
        (``preferred_aggregation=`` over the histogram aggregation the environment selects)."""
        return MappingProxyType(self._preferred_aggregation or {})  # always set by __init__

    def export(self, metrics_data: MetricsData, timeout_millis: float = 10_000, **kwargs: Any) -> MetricExportResult:
        """Send ``metrics_data`` within ``timeout_millis`` (and the configured timeout); as
        :meth:`SpanExporter.export`."""
        client = self._client
        if client.refuse_closed():
            return MetricExportResult.FAILURE
        items = _encode.metric_items(metrics_data)
        if not items:
            return MetricExportResult.SUCCESS
        parts: list[tuple[Sequence[MetricItem], bytes]] = []
        dropped = 0
        for chunk in _chunks(items, self._max_points):
            good, body, bad = encode_batch(chunk, self._encode, "metrics")
            dropped += bad
            client.ledger.drop("invalid", _encode.count_data_points([item for item in chunk if item not in good]))
            if good:
                parts.append((good, body))
        ok = (
            client.export(
                parts, self._encode, _encode.count_data_points, _encode.split_metric_item, timeout_millis / 1000
            )
            if parts
            else True
        )
        return MetricExportResult.SUCCESS if ok and not dropped else MetricExportResult.FAILURE

    def force_flush(self, timeout_millis: float = 10_000) -> bool:
        """As :meth:`SpanExporter.force_flush`."""
        return self._client.force_flush(timeout_millis / 1000)

    def shutdown(self, timeout_millis: float = 30_000, **kwargs: Any) -> None:
        """As :meth:`SpanExporter.shutdown`."""
        self._client.shutdown(timeout_millis / 1000)
