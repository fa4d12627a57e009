"""Self-metrics of a batch processor, named after the OpenTelemetry semantic conventions for SDK metrics.

| instrument                                 | kind                     | value, attributes                         |
|--------------------------------------------|--------------------------|-------------------------------------------|
| ``otel.sdk.processor.<kind>.queue.size``   | observable up-down ctr   | items queued                              |
| ``otel.sdk.processor.<kind>.queue.capacity`` | observable up-down ctr | ``max_queue_size``                        |
| ``otel.sdk.processor.<kind>.processed``    | observable counter       | handed to the exporter (no ``error.type``);|
|                                            |                          | dropped: ``error.type`` = ``queue_full``, |
|                                            |                          | ``already_shutdown`` or ``shutdown``      |
| ``otel.sdk.exporter.<kind>.exported``      | observable counter       | accepted (no ``error.type``); else        |
|                                            |                          | ``rejected``, ``too_large``, ``invalid``, |
|                                            |                          | ``timeout``, or the error's class name    |
| ``otel.sdk.exporter.<kind>.inflight``      | observable up-down ctr   | items handed to the exporter, not settled |
| ``otel.sdk.exporter.operation.duration``   | histogram (s)            | one per export call; ``error.type`` on    |
|                                            |                          | anything short of full success            |

``<kind>`` is ``span`` or ``log``; metrics only get the exporter instruments, as ``metric_data_point``.
Processor instruments carry ``otel.component.type`` (``batching_span_processor`` / ``batching_log_processor``)
and ``otel.component.name`` (``<type>/<n>``); exporter instruments carry the exporter's component type
(``otlp_http_span_exporter``, ... for an :class:`~aiotlp.OTLPExporter`, a disk queue in front of one, or an
``aiotlp.sdk`` exporter; else the exporter's qualified class name), its name, and ``server.address`` /
``server.port`` when known.

Only the OpenTelemetry *API* is used (imported here, lazily, when a meter provider is given). Observable
callbacks run on whatever thread collects the metrics; they read the ledger under its lock, and hold the
processor's queue by a weak reference so that a meter provider never keeps a dead processor alive.
"""

from __future__ import annotations

import itertools
import threading
import weakref
from collections.abc import Callable, Iterable, Iterator
from typing import TYPE_CHECKING, Any, Final

from .._exceptions import ConfigurationError, MissingExtraError
from .._version import __version__
from ..config import ExporterConfig
from ..model import Signal
from ._queue import BoundedQueue

if TYPE_CHECKING:
    from opentelemetry.metrics import CallbackOptions, Histogram, Observation

__all__ = ["SelfMetrics"]

_KIND: Final = {Signal.TRACES: "span", Signal.LOGS: "log", Signal.METRICS: "metric_data_point"}
_UNIT: Final = {Signal.TRACES: "{span}", Signal.LOGS: "{log_record}", Signal.METRICS: "{data_point}"}
_PROCESSOR_TYPE: Final = {Signal.TRACES: "batching_span_processor", Signal.LOGS: "batching_log_processor"}
_EXPORTER_KIND: Final = {Signal.TRACES: "span", Signal.LOGS: "log", Signal.METRICS: "metric"}
_PROTOCOL_PART: Final = {"grpc": "otlp_grpc", "http/protobuf": "otlp_http", "http/json": "otlp_http_json"}
_DURATION_BUCKETS: Final = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)

_counters: dict[str, Iterator[int]] = {}
_counters_lock = threading.Lock()


def _component_name(component_type: str) -> str:
    """``<type>/<n>``, ``n`` counting instances of that type from 0 (low cardinality, as the convention asks)."""
    with _counters_lock:
        counter = _counters.setdefault(component_type, itertools.count())
        return f"{component_type}/{next(counter)}"


def _exporter_attributes(exporter: object, signal: Signal) -> dict[str, str | int]:
    """What the exporter instruments say of ``exporter``: an adapter (the SDK processors') speaks for the exporter
    it wraps (its ``wrapped``); anything with an OTLP ``config`` (an :class:`~aiotlp.OTLPExporter`, a disk queue
    in front of one, an ``aiotlp.sdk`` exporter) is named by protocol, with the collector's address and port."""
    exporter = getattr(exporter, "wrapped", exporter)
    config = getattr(exporter, "config", None)
    if isinstance(config, ExporterConfig):
        signal_config = config.for_signal(signal)
        component_type = f"{_PROTOCOL_PART[signal_config.protocol]}_{_EXPORTER_KIND[signal]}_exporter"
        return {
            "otel.component.type": component_type,
            "otel.component.name": _component_name(component_type),
            "server.address": signal_config.host,
            "server.port": signal_config.port,
        }
    cls = type(exporter)
    component_type = f"{cls.__module__}.{cls.__qualname__}"
    return {"otel.component.type": component_type, "otel.component.name": _component_name(component_type)}


class SelfMetrics:
    """The instruments of one processor. :meth:`record_export` is called on the loop thread per export."""

    def __init__(self, meter_provider: object, *, signal: Signal, exporter: object, queue: BoundedQueue[Any]) -> None:
        get_meter = getattr(meter_provider, "get_meter", None)
        if not callable(get_meter):
            raise ConfigurationError(
                "meter_provider: must have get_meter(name, version) (an OpenTelemetry MeterProvider), "
                f"got {type(meter_provider).__name__}"
            )
        try:
            from opentelemetry.metrics import Observation
        except ImportError as exc:  # pragma: no cover - depends on the environment
            raise MissingExtraError("sdk", "opentelemetry-api") from exc
        self._observation = Observation
        meter = get_meter("aiotlp.processing", __version__)
        self._queue_ref = weakref.ref(queue)
        kind, unit = _KIND[signal], _UNIT[signal]
        self.exporter_attributes = _exporter_attributes(exporter, signal)
        self.processor_attributes: dict[str, str | int] = {}
        observed = []  # (name, an up-down counter rather than a counter, callback, description)
        if signal in _PROCESSOR_TYPE:
            component_type = _PROCESSOR_TYPE[signal]
            self.processor_attributes = {
                "otel.component.type": component_type,
                "otel.component.name": _component_name(component_type),
            }
            prefix = f"otel.sdk.processor.{kind}"
            observed += [
                (f"{prefix}.queue.size", True, self._queue_size, "The number of items in the queue of the processor."),
                (
                    f"{prefix}.queue.capacity",
                    True,
                    self._queue_capacity,
                    "The maximum number of items the queue of the processor can hold.",
                ),
                (
                    f"{prefix}.processed",
                    False,
                    self._processed,
                    "The number of items for which the processing has finished, either successful or failed.",
                ),
            ]
        prefix = f"otel.sdk.exporter.{kind}"
        observed += [
            (
                f"{prefix}.exported",
                False,
                self._exported,
                "The number of items for which the export has finished, either successful or failed.",
            ),
            (
                f"{prefix}.inflight",
                True,
                self._inflight,
                "The number of items passed to the exporter that have not been exported yet.",
            ),
        ]
        for name, up_down, read, description in observed:
            create = meter.create_observable_up_down_counter if up_down else meter.create_observable_counter
            create(name, callbacks=[self._callback(read)], unit=unit, description=description)
        self._duration: Histogram
        try:
            self._duration = meter.create_histogram(
                "otel.sdk.exporter.operation.duration",
                unit="s",
                description="The duration of exporting a batch of telemetry records.",
                explicit_bucket_boundaries_advisory=_DURATION_BUCKETS,
            )
        except TypeError:  # pragma: no cover - an API older than 1.23 has no advisory parameter
            self._duration = meter.create_histogram(
                "otel.sdk.exporter.operation.duration",
                unit="s",
                description="The duration of exporting a batch of telemetry records.",
            )
        self._duration_attributes: dict[str | None, dict[str, str | int]] = {None: self.exporter_attributes}

    def record_export(self, seconds: float, error_type: str | None) -> None:
        """One ``operation.duration`` observation; ``error_type`` None means full success."""
        attributes = self._duration_attributes.get(error_type)
        if attributes is None:
            attributes = self._with_error_type(self.exporter_attributes, str(error_type))
            self._duration_attributes[error_type] = attributes
        self._duration.record(seconds, attributes)

    # ------------------------------------------------------------------------------------------- callbacks

    def _callback(
        self, read: Callable[[BoundedQueue[Any]], list[tuple[int, dict[str, str | int]]]]
    ) -> Callable[[CallbackOptions], Iterable[Observation]]:
        queue_ref = self._queue_ref
        observation = self._observation

        def callback(options: CallbackOptions) -> Iterable[Observation]:
            queue = queue_ref()
            if queue is None:
                return []
            with queue.lock:
                values = read(queue)
            return [observation(value, attributes) for value, attributes in values]

        return callback

    def _with_error_type(self, base: dict[str, str | int], error_type: str) -> dict[str, str | int]:
        return {**base, "error.type": error_type}

    def _queue_size(self, queue: BoundedQueue[Any]) -> list[tuple[int, dict[str, str | int]]]:
        return [(queue.queued, self.processor_attributes)]

    def _queue_capacity(self, queue: BoundedQueue[Any]) -> list[tuple[int, dict[str, str | int]]]:
        return [(queue.max_size, self.processor_attributes)]

    def _processed(self, queue: BoundedQueue[Any]) -> list[tuple[int, dict[str, str | int]]]:
        base = self.processor_attributes
        values = [(queue.handed, base)]
        for count, error_type in (
            (queue.dropped_full, "queue_full"),
            (queue.dropped_closed, "already_shutdown"),
            (queue.dropped_shutdown, "shutdown"),
        ):
            if count:
                values.append((count, self._with_error_type(base, error_type)))
        return values

    def _exported(self, queue: BoundedQueue[Any]) -> list[tuple[int, dict[str, str | int]]]:
        base = self.exporter_attributes
        values = [(queue.exported, base)]
        values.extend((count, self._with_error_type(base, error_type)) for error_type, count in queue.outcomes.items())
        return values

    def _inflight(self, queue: BoundedQueue[Any]) -> list[tuple[int, dict[str, str | int]]]:
        return [(queue.in_flight, self.exporter_attributes)]
