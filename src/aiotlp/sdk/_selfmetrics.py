"""Self-metrics of an SDK exporter on its own (under the official processors, e.g. ``OTEL_TRACES_EXPORTER=aiotlp``).

Turned on as the OpenTelemetry Python SDK turns on its own: ``OTEL_PYTHON_SDK_INTERNAL_METRICS_ENABLED=true``
(read by :func:`aiotlp.config.sdk_internal_metrics_from_env`, through the exporter's ``environ``), reported
through the global ``MeterProvider`` (the one ``opentelemetry-instrument`` sets up with ``OTEL_METRICS_EXPORTER``;
set later than the exporter is made, it is used as soon as it is set). The official processors then report
their ``otel.sdk.processor.*`` instruments, and each aiotlp exporter these, named after the semantic
conventions, read from its ledger (:class:`~._stats.Ledger`) when the metrics are collected:

| instrument                               | kind                   | value, attributes                          |
|------------------------------------------|------------------------|--------------------------------------------|
| ``otel.sdk.exporter.<kind>.exported``    | observable counter     | delivered (no ``error.type``); else        |
|                                          |                        | ``rejected``, a drop reason, ``timeout`` or |
|                                          |                        | the error's class name                     |
| ``otel.sdk.exporter.<kind>.inflight``    | observable up-down ctr | handed over, not settled; with the disk    |
|                                          |                        | queue also what waits on disk              |
| ``otel.sdk.exporter.operation.duration`` | histogram (s)          | one per export; ``error.type`` as above    |

With the disk queue an export ends when the batch is on disk; those items are ``inflight`` until the queue
delivers them (then ``exported``), never ``exported`` at the write. The attributes are those of the processors'
self-metrics (:func:`aiotlp.processing.exporter_attributes`): ``otel.component.type`` (``otlp_grpc_span_exporter``,
...), ``otel.component.name``, ``server.address``, ``server.port``. The callbacks hold the exporter's client by a
weak reference: a meter provider never keeps a dropped exporter alive. Behind aiotlp's own processors given a
``meter_provider=``, the processor reports the exporter instruments, and the exporter's own stop (no series twice).
"""

from __future__ import annotations

import weakref
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING

from aiotlp._version import __version__

if TYPE_CHECKING:
    from opentelemetry.metrics import CallbackOptions, Observation

    from ._client import ExportClient

__all__ = ["ExporterSelfMetrics"]

_Values = list[tuple[int, dict[str, str | int]]]


class ExporterSelfMetrics:
    """The instruments of one SDK exporter (``exporter``: the SDK exporter, for its name; ``client``: its ledger)."""

    def __init__(self, exporter: object, client: ExportClient) -> None:
        from opentelemetry.metrics import Observation, get_meter_provider

        from aiotlp.processing import ExporterInstruments, exporter_attributes  # only with the self-metrics on

        self._observation = Observation
        self.attributes = exporter_attributes(exporter, client.signal)
        self._client = weakref.ref(client)
        instruments = ExporterInstruments(
            get_meter_provider().get_meter("aiotlp.sdk", __version__),
            client.signal,
            self.attributes,
            exported=self._callback(self._exported),
            inflight=self._callback(self._inflight),
        )
        client.ledger.on_settled = instruments.record_export
        self._stopped = False

    def stop(self) -> None:
        """Report nothing more: an aiotlp processor with ``meter_provider=`` reports this exporter's instruments
        (one series per exporter, never two)."""
        self._stopped = True
        client = self._client()
        if client is not None:
            client.ledger.on_settled = None

    def _callback(self, read: Callable[[ExportClient], _Values]) -> Callable[[CallbackOptions], Iterable[Observation]]:
        client_ref, observation = self._client, self._observation

        def callback(options: CallbackOptions) -> Iterable[Observation]:
            client = client_ref()
            if client is None or self._stopped:
                return []
            return [observation(value, attributes) for value, attributes in read(client)]

        return callback

    def _exported(self, client: ExportClient) -> _Values:
        stats = client.statistics()
        delivered = stats.accepted + stats.kept_on_disk - min(stats.kept_on_disk, stats.on_disk)
        values: _Values = [(delivered, self.attributes)]
        for error_type, count in client.ledger.failures().items():
            values.append((count, {**self.attributes, "error.type": error_type}))
        return values

    def _inflight(self, client: ExportClient) -> _Values:
        stats = client.statistics()
        return [(stats.in_flight + min(stats.kept_on_disk, stats.on_disk), self.attributes)]
