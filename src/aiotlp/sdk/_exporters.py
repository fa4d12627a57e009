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

The arguments are written once, as the TypedDict :class:`~._options.ExporterArguments` (``**options``, checked by
type checkers), which also gives the signatures that ``help()`` and IDEs show; they are resolved in
:mod:`._options`.
"""

from __future__ import annotations

import itertools
import os
import weakref
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, ClassVar, TypeVar

from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SpanExporter as SdkSpanExporter
from opentelemetry.sdk.trace.export import SpanExportResult

from aiotlp.config import ExporterConfig, queue_dir_from_env, sdk_internal_metrics_from_env
from aiotlp.model import Signal
from aiotlp.transport import require_client, zstd_compress

from ._client import MAX_DETACHED, ExportClient, encode_batch
from ._encode_json import encode_spans_json
from ._encode_spans import encode_spans
from ._lazy import lazy_names
from ._options import MAX_CONCURRENT, Endpoint, ExporterArguments, check_keywords, keywords_of, resolve
from ._stats import ExporterStatistics

if TYPE_CHECKING:
    from typing_extensions import Unpack

    from ._log_exporter import LogExporter
    from ._metric_exporter import MetricExporter
    from ._selfmetrics import ExporterSelfMetrics

__all__ = ["MAX_DETACHED", "AiotlpExporter", "LogExporter", "MetricExporter", "SpanExporter", "exporters"]

_I = TypeVar("_I")

_ELSEWHERE = {"LogExporter": "._log_exporter", "MetricExporter": "._metric_exporter"}
"""The log and metric exporters, in their own modules (PEP 562): a span exporter imports neither the logs SDK nor
the metrics SDK (``opentelemetry.sdk.metrics`` is about 40 ms); ``from aiotlp.sdk._exporters import MetricExporter``
still works."""


__getattr__, __dir__ = lazy_names(globals(), {name: (module, name) for name, module in _ELSEWHERE.items()}, __all__)


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

    @keywords_of(ExporterArguments)
    def __init__(self, endpoint: Endpoint = None, **options: Unpack[ExporterArguments]) -> None:
        check_keywords(AiotlpExporter.__init__, self, options)
        self._setup(endpoint, options)

    def _encoder(self, json: bool) -> Callable[[Sequence[Any]], bytes]:
        """The batch encoder of this signal: OTLP/JSON, or protobuf."""
        raise NotImplementedError

    def _setup(self, endpoint: Endpoint, options: ExporterArguments) -> None:
        signal = self._SIGNAL
        config = resolve(signal, endpoint, options, self._FIXED_BY)
        transport_factory = options.get("transport_factory")
        queue_dir = options.get("queue_dir")
        if transport_factory is None:  # one line now, not a traceback at every export
            require_client(config.for_signal(signal).protocol)
        if config.for_signal(signal).compression == "zstd":
            # the transports are made on the first export: a missing zstd binding is one line now, not then
            zstd_compress(b"")
        directory = queue_dir_from_env(options.get("environ"), queue_dir=queue_dir)
        self._client = ExportClient(
            signal,
            config,
            retry=options.get("retry"),
            max_concurrent=options.get("max_concurrent", MAX_CONCURRENT),
            transport_factory=transport_factory,
            queue_dir=None if directory is None else os.path.join(directory, signal.value),
            queue_dir_explicit=queue_dir is not None,
        )
        self._encode = self._encoder(self._client.json)
        self._self_metrics: ExporterSelfMetrics | None = None
        if sdk_internal_metrics_from_env(options.get("environ")):
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
        return encode_spans_json if json else encode_spans

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        """Send ``spans``; SUCCESS when the collector took them (a partial success counts: OTLP says not to
        retry it; the rejected count is logged). Never raises; FAILURE after :meth:`shutdown`."""
        return SpanExportResult.SUCCESS if self._send(spans, "spans") else SpanExportResult.FAILURE
