"""Drop-in OpenTelemetry SDK exporters: SpanExporter, LogExporter, MetricExporter, backed by aiotlp's exporter.

Each ``export`` encodes the batch in the calling thread with the direct SDK encoders (:mod:`._encode`), hands
the bytes to aiotlp's :class:`~aiotlp.export.OTLPExporter` on the bridge loop (:mod:`._bridge`, through the
exporter's :class:`~._client.ExportClient`) and waits for the outcome, within the configured timeout. The
exporter's own network calls run under OpenTelemetry's "suppress instrumentation" context keys, so instrumented
HTTP or gRPC clients do not trace them.

Called from a thread that is running an event loop (the bridge's own, or an application's), ``export`` cannot
wait without blocking that loop, or deadlocking on it: it hands the batch over and returns ``SUCCESS`` at once
(the outcome is logged on failure; :meth:`force_flush` and :meth:`shutdown` wait for these exports). At most
:data:`MAX_DETACHED` such exports per exporter are in flight; beyond that a batch is dropped (``FAILURE``).

The arguments are one type, :class:`~._options.ExporterOptions`, resolved in :mod:`._options`; the signatures
below are written out for ``help()`` and IDEs.
"""

from __future__ import annotations

import dataclasses
import enum
import itertools
import os
import weakref
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, ClassVar, Final, TypeVar

from opentelemetry.sdk._logs import ReadableLogRecord
from opentelemetry.sdk._logs.export import LogRecordExporter, LogRecordExportResult
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
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SpanExporter as SdkSpanExporter
from opentelemetry.sdk.trace.export import SpanExportResult

from aiotlp._exceptions import ConfigurationError
from aiotlp._validate import is_int
from aiotlp.config import (
    ExporterConfig,
    OtlpProtocol,
    TemporalityPreference,
    metric_preferences_from_env,
    queue_dir_from_env,
    sdk_internal_metrics_from_env,
)
from aiotlp.export import RetryPolicy, TransportFactory
from aiotlp.model import Signal
from aiotlp.transport import require_client, zstd_compress

from . import _encode
from ._client import MAX_DETACHED, ExportClient, encode_batch
from ._options import ExporterOptions, resolve
from ._stats import ExporterStatistics

if TYPE_CHECKING:
    from ._selfmetrics import ExporterSelfMetrics

__all__ = ["MAX_DETACHED", "AiotlpExporter", "LogExporter", "MetricExporter", "SpanExporter", "exporters"]

_I = TypeVar("_I")

_made = itertools.count()
_live: weakref.WeakValueDictionary[int, AiotlpExporter] = weakref.WeakValueDictionary()


def exporters() -> list[AiotlpExporter]:
    """Every aiotlp SDK exporter of this process not yet garbage collected, oldest first: where their
    ``statistics()`` are, when auto-configuration (``OTEL_TRACES_EXPORTER=aiotlp`` under
    ``opentelemetry-instrument``) made them and put the official processors in front. Any thread."""
    return [exporter for _, exporter in sorted(_live.items())]


class AiotlpExporter:
    """What the three SDK exporters share: the arguments (the span and log exporters' ``__init__``, see
    :class:`SpanExporter`), the client, ``config``, ``statistics()``."""

    _client: ExportClient
    _encode: Callable[[Sequence[Any]], bytes]
    _SIGNAL: ClassVar[Signal]
    _FIXED_BY: ClassVar[str | None] = None
    """The name of a class that fixes the protocol (:mod:`aiotlp.sdk.grpc`, :mod:`aiotlp.sdk.http`), for messages."""

    def __init__(
        self,
        endpoint: str | Sequence[str] | None = None,
        *,
        protocol: OtlpProtocol | None = None,
        headers: Mapping[str, str] | Iterable[tuple[str, str]] | str | None = None,
        timeout: float | None = None,
        compression: str | enum.Enum | None = None,
        insecure: bool | None = None,
        certificate_file: str | None = None,
        client_key_file: str | None = None,
        client_certificate_file: str | None = None,
        credentials: object = None,
        session: object = None,
        channel_options: object = None,
        retryable_error_codes: object = None,
        max_request_size: int | None = None,
        meter_provider: object = None,
        retry: RetryPolicy | None = None,
        max_concurrent: int = 4,
        transport_factory: TransportFactory | None = None,
        environ: Mapping[str, str] | None = None,
        queue_dir: str | os.PathLike[str] | None = None,
    ) -> None:
        self._setup(ExporterOptions.of(locals()))

    def _encoder(self, json: bool) -> Callable[[Sequence[Any]], bytes]:
        """The batch encoder of this signal: OTLP/JSON, or protobuf."""
        raise NotImplementedError

    def _setup(self, options: ExporterOptions) -> None:
        signal = self._SIGNAL
        config = resolve(signal, options, self._FIXED_BY)
        if options.transport_factory is None:  # one line now, not a traceback at every export
            require_client(config.for_signal(signal).protocol)
        if config.for_signal(signal).compression == "zstd":
            # the transports are made on the first export: a missing zstd binding is one line now, not then
            zstd_compress(b"")
        directory = queue_dir_from_env(options.environ, queue_dir=options.queue_dir)
        self._client = ExportClient(
            signal,
            config,
            retry=options.retry,
            max_concurrent=options.max_concurrent,
            transport_factory=options.transport_factory,
            queue_dir=None if directory is None else os.path.join(directory, signal.value),
            queue_dir_explicit=options.queue_dir is not None,
        )
        self._encode = self._encoder(self._client.json)
        self._self_metrics: ExporterSelfMetrics | None = None
        if sdk_internal_metrics_from_env(options.environ):
            from ._selfmetrics import ExporterSelfMetrics  # only with the self-metrics on

            self._self_metrics = ExporterSelfMetrics(self, self._client)
        _live[next(_made)] = self
        # Dropped without shutdown(): close its connections in the background (the bridge closes what is left
        # at interpreter exit).
        weakref.finalize(self, self._client.release).atexit = False

    def _send(self, batch: Sequence[Any], what: str) -> bool:
        """Send a span or log record batch: True when it was all taken (or is empty), False after shutdown or
        when anything failed or was dropped (items that cannot be encoded are left out, counted)."""
        client = self._client
        if client.refuse_closed():
            return False
        if not batch:
            return True
        items, body, dropped = encode_batch(batch, self._encode, what)
        client.ledger.drop("invalid", dropped)
        ok = client.export([(items, body)], self._encode, len) if items else True
        return ok and not dropped

    def shutdown(self, timeout_millis: float = 30_000) -> None:
        """Refuse further exports, let in-flight ones end (up to ``timeout_millis``), close the connections."""
        self._client.shutdown(timeout_millis / 1000)

    def force_flush(self, timeout_millis: int = 30_000) -> bool:
        """Nothing is buffered here; waits for exports handed over from a running event loop."""
        return self._client.force_flush(timeout_millis / 1000)

    def stop_self_metrics(self) -> None:
        """An aiotlp processor reports this exporter's instruments (its ``meter_provider=``): stop its own."""
        if self._self_metrics is not None:
            self._self_metrics.stop()

    @property
    def config(self) -> ExporterConfig:
        """The resolved configuration (this exporter uses its own signal's part)."""
        return self._client.config

    def statistics(self) -> ExporterStatistics:
        """What this exporter did so far: exports, items accepted / kept on disk / rejected / failed / dropped by
        reason, in flight, retries, delivered and still on disk (with the disk queue), the last error. A
        consistent snapshot (see :class:`~aiotlp.sdk.ExporterStatistics`); any thread."""
        return self._client.statistics()

    def __repr__(self) -> str:
        config = self._client.config.for_signal(self._client.signal)
        name = self._FIXED_BY or f"aiotlp.sdk.{type(self).__name__}"
        return f"<{name} {config.protocol} {config.endpoint_for_display}>"


class SpanExporter(AiotlpExporter, SdkSpanExporter):
    """A drop-in replacement for the official ``OTLPSpanExporter`` (gRPC or HTTP), exporting with aiotlp.

    Takes the official exporters' arguments (``timeout`` in seconds; ``compression`` as a string or any of
    their ``Compression`` enums; ``headers`` as a mapping, pairs or ``"k=v,..."``) plus ``protocol`` (``"grpc"``,
    ``"http/protobuf"`` or ``"http/json"``); anything not given comes from the ``OTEL_EXPORTER_OTLP_*``
    variables (see :mod:`aiotlp.config`): only the generic and this signal's ones, and only those no argument
    overrides. A variable the official exporters would warn about and replace by a default (a bad timeout, an
    unknown compression, a missing certificate file, a bad header entry) gets a warning naming it and the default;
    timeouts are milliseconds, as the specification says (the official Python exporters read seconds).
    ``endpoint`` is used as the official exporter of that protocol uses
    it: OTLP/HTTP posts to it verbatim (``http://collector:4318/v1/traces``), gRPC takes ``host:port`` with an
    optional ``http://`` / ``https://`` scheme; a list of them is a fleet of collectors, sent to in round robin
    with failover (``docs/fleet.md``). ``credentials``, ``session``, ``channel_options``,
    ``retryable_error_codes`` and ``meter_provider`` are refused with a :class:`~aiotlp.ConfigurationError`
    that says what to use instead. ``retry``, ``max_concurrent`` and ``transport_factory`` are passed to
    :class:`~aiotlp.OTLPExporter`; ``environ`` replaces ``os.environ``.
    """

    _SIGNAL = Signal.TRACES

    def _encoder(self, json: bool) -> Callable[[Sequence[Any]], bytes]:
        return _encode.encode_spans_json if json else _encode.encode_spans

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        """Send ``spans``; SUCCESS when the collector took them (a partial success counts: OTLP says not to
        retry it; the rejected count is logged). Never raises; FAILURE after :meth:`shutdown`."""
        return SpanExportResult.SUCCESS if self._send(spans, "spans") else SpanExportResult.FAILURE


class LogExporter(AiotlpExporter, LogRecordExporter):
    """A drop-in replacement for the official ``OTLPLogExporter`` (gRPC or HTTP): a ``LogRecordExporter``
    exporting the ``ReadableLogRecord`` batches of opentelemetry-sdk. Arguments as :class:`SpanExporter`."""

    _SIGNAL = Signal.LOGS

    def _encoder(self, json: bool) -> Callable[[Sequence[Any]], bytes]:
        return _encode.encode_log_records_json if json else _encode.encode_log_records

    def export(self, batch: Sequence[ReadableLogRecord]) -> LogRecordExportResult:
        """Send ``batch``; as :meth:`SpanExporter.export`."""
        return LogRecordExportResult.SUCCESS if self._send(batch, "log records") else LogRecordExportResult.FAILURE


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


def _chunks(items: list[_encode.MetricItem], max_points: int | None) -> list[list[_encode.MetricItem]]:
    """``items`` in consecutive chunks of at most ``max_points`` data points (a metric may be cut in parts)."""
    if max_points is None:
        return [items]
    chunks: list[list[_encode.MetricItem]] = []
    chunk: list[_encode.MetricItem] = []
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


def _with_points(item: _encode.MetricItem, points: Sequence[Any]) -> _encode.MetricItem:
    resource, scope, metric = item
    data: Any = metric.data
    return resource, scope, dataclasses.replace(metric, data=dataclasses.replace(data, data_points=points))


class MetricExporter(AiotlpExporter, SdkMetricExporter):
    """A drop-in replacement for the official ``OTLPMetricExporter`` (gRPC or HTTP). Arguments as
    :class:`SpanExporter`, plus the official ``preferred_temporality`` (over the map that
    ``OTEL_EXPORTER_OTLP_METRICS_TEMPORALITY_PREFERENCE`` selects), ``preferred_aggregation`` (over the histogram
    aggregation ``OTEL_EXPORTER_OTLP_METRICS_DEFAULT_HISTOGRAM_AGGREGATION`` selects: explicit buckets, or
    ``base2_exponential_bucket_histogram``; both read by :func:`aiotlp.config.metric_preferences_from_env`) and
    ``max_export_batch_size`` (at most that many data points per request; a metric may be split)."""

    _SIGNAL = Signal.METRICS

    def __init__(
        self,
        endpoint: str | Sequence[str] | None = None,
        *,
        protocol: OtlpProtocol | None = None,
        headers: Mapping[str, str] | Iterable[tuple[str, str]] | str | None = None,
        timeout: float | None = None,
        compression: str | enum.Enum | None = None,
        insecure: bool | None = None,
        certificate_file: str | None = None,
        client_key_file: str | None = None,
        client_certificate_file: str | None = None,
        credentials: object = None,
        session: object = None,
        channel_options: object = None,
        retryable_error_codes: object = None,
        preferred_temporality: dict[type, AggregationTemporality] | None = None,
        preferred_aggregation: dict[type, Aggregation] | None = None,
        max_export_batch_size: int | None = None,
        max_request_size: int | None = None,
        meter_provider: object = None,
        retry: RetryPolicy | None = None,
        max_concurrent: int = 4,
        transport_factory: TransportFactory | None = None,
        environ: Mapping[str, str] | None = None,
        queue_dir: str | os.PathLike[str] | None = None,
    ) -> None:
        if max_export_batch_size is not None and (not is_int(max_export_batch_size) or max_export_batch_size <= 0):
            raise ConfigurationError("max_export_batch_size: must be a positive int (data points) or None")
        # only the exporter's own variables (not OTEL_METRIC_EXPORT_*, which the reader uses), leniently
        preference, histogram = metric_preferences_from_env(environ, on_invalid="warn")
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
        self._setup(ExporterOptions.of(locals()))
        self._max_points = max_export_batch_size

    def _encoder(self, json: bool) -> Callable[[Sequence[Any]], bytes]:
        return _encode.encode_metric_items_json if json else _encode.encode_metric_items

    def export(self, metrics_data: MetricsData, timeout_millis: float = 10_000, **kwargs: Any) -> MetricExportResult:
        """Send ``metrics_data`` within ``timeout_millis`` (and the configured timeout); as
        :meth:`SpanExporter.export`."""
        client = self._client
        if client.refuse_closed():
            return MetricExportResult.FAILURE
        items = _encode.metric_items(metrics_data)
        if not items:
            return MetricExportResult.SUCCESS
        parts: list[tuple[Sequence[_encode.MetricItem], bytes]] = []
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
