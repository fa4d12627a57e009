"""Export's codec: how one batch becomes requests under the byte cap, and the export verbs written once on it.

* :class:`Codec`: how to encode, count and split a batch's items (aiotlp model objects, or the SDK adapters'
  own); :meth:`Codec.requests` encodes a batch and halves it until every part fits the request cap.
* :class:`CodecExporter`: ``export_traces``, ``export_metrics``, ``export_logs`` and ``export_encoded``, each
  turning its batch into a :class:`Codec` and handing it to the exporter's one step (send now:
  :class:`~aiotlp.export.OTLPExporter`; write to a disk queue: :class:`~aiotlp.durable.DurableExporter`).
"""

from __future__ import annotations

import abc
import dataclasses
import functools
from collections.abc import Callable, Coroutine, Iterator, Sequence
from typing import Any, TypeVar

from .._exceptions import EncodeError, RequestTooLargeError
from ..config import ExporterConfig
from ..encoding import count_items, encode
from ..model import LogRecord, Metric, Signal, Span
from ._types import ExportRequest, ExportResult

__all__ = ["Codec", "CodecExporter", "Invalid"]

_T = TypeVar("_T")


@dataclasses.dataclass(frozen=True, slots=True)
class Invalid:
    """Items that cannot be encoded (an :class:`EncodeError`): dropped, counted as ``ExportResult.invalid``."""

    items: int
    message: str


@dataclasses.dataclass(frozen=True, slots=True)
class Codec:
    """How to encode, count and split one batch's items (aiotlp model objects, or the SDK adapters' own)."""

    signal: Signal
    encode: Callable[[Sequence[Any]], bytes]
    count: Callable[[Sequence[Any]], int]
    split_item: Callable[[Any], Sequence[Any]] | None

    @classmethod
    def for_model(cls, signal: Signal, *, json: bool) -> Codec:
        """aiotlp model objects of ``signal``, in OTLP/JSON (``json``) or protobuf."""
        return cls(
            signal,
            functools.partial(encode, signal, json=json),
            functools.partial(count_items, signal),
            _split_metric if signal is Signal.METRICS else None,
        )

    def requests(
        self, items: Sequence[Any], cap: int, body: bytes | None = None
    ) -> Iterator[ExportRequest | RequestTooLargeError | Invalid]:
        """Encode ``items`` (unless ``body`` is their encoding); halve any batch over ``cap`` until every part fits.

        A metric whose points alone exceed the cap is split by data points. A single span, log record or data
        point over the cap cannot be sent: it is yielded as a :class:`RequestTooLargeError`, to be counted. A
        batch that cannot be encoded (:class:`EncodeError`) is halved the same way, so that only the items that
        cannot be encoded are left out: each is yielded as an :class:`Invalid` (a metric whole, with all its
        points).
        """
        signal = self.signal
        count = self.count(items)
        if body is None:
            try:
                body = self.encode(items)
            except EncodeError as exc:
                if len(items) > 1:
                    half = len(items) // 2
                    yield from self.requests(items[:half], cap)
                    yield from self.requests(items[half:], cap)
                elif count:
                    kind = {"traces": "span", "metrics": "metric", "logs": "log record"}[signal.value]
                    yield Invalid(count, f"dropped one {kind} that cannot be encoded: {exc}")
                return
        if len(body) <= cap:
            if count:
                yield ExportRequest(signal=signal, body=body, items=count, size=len(body))
            return
        if len(items) == 1 and self.split_item is not None and count > 1:
            items = self.split_item(items[0])
        if len(items) == 1:
            kind = {"traces": "span", "metrics": "metric data point", "logs": "log record"}[signal.value]
            yield RequestTooLargeError(
                f"dropped one {kind}: it encodes to {len(body)} bytes, over the {cap}-byte request cap",
                items=count,
            )
            return
        half = len(items) // 2
        yield from self.requests(items[:half], cap)
        yield from self.requests(items[half:], cap)


def _split_metric(metric: Metric) -> list[Metric]:
    points = metric.data.data_points
    half = len(points) // 2
    return [
        dataclasses.replace(metric, data=dataclasses.replace(metric.data, data_points=points[:half])),  # type: ignore[arg-type]
        dataclasses.replace(metric, data=dataclasses.replace(metric.data, data_points=points[half:])),  # type: ignore[arg-type]
    ]


class CodecExporter(abc.ABC):
    """The export verbs, written once: each turns its batch into a :class:`Codec` and calls :meth:`_export_codec`.

    A subclass gives the configuration the requests are encoded for (:attr:`config`: wire format, request cap),
    what is done with a batch (:meth:`_export_codec`: send it, queue it) and :meth:`shutdown`.
    """

    @property
    @abc.abstractmethod
    def config(self) -> ExporterConfig:
        """The configuration the requests are encoded for."""

    @abc.abstractmethod
    async def _export_codec(
        self, codec: Codec, items: Sequence[Any], body: bytes | None, timeout: float | None
    ) -> ExportResult:
        """Export ``items``, encoded by ``codec`` (``body``: their encoding, when the caller has it); ``timeout``
        shortens this call's deadline. Never raises for a failed export."""

    @abc.abstractmethod
    async def shutdown(self, timeout: float | None = None) -> None: ...

    async def __aexit__(self, *exc_info: object) -> None:
        await self.shutdown()

    def model_codec(self, signal: Signal) -> Codec:
        """The codec of aiotlp model objects of ``signal``, in this exporter's wire format."""
        return Codec.for_model(signal, json=self.config.for_signal(signal).protocol == "http/json")

    async def export_traces(self, spans: Sequence[Span]) -> ExportResult:
        return await self._export_codec(self.model_codec(Signal.TRACES), spans, None, None)

    async def export_metrics(self, metrics: Sequence[Metric]) -> ExportResult:
        return await self._export_codec(self.model_codec(Signal.METRICS), metrics, None, None)

    async def export_logs(self, records: Sequence[LogRecord]) -> ExportResult:
        return await self._export_codec(self.model_codec(Signal.LOGS), records, None, None)

    def export_encoded(
        self,
        signal: Signal,
        items: Sequence[_T],
        encode: Callable[[Sequence[_T]], bytes],
        *,
        body: bytes | None = None,
        count: Callable[[Sequence[_T]], int] = len,
        split_item: Callable[[_T], Sequence[_T]] | None = None,
        timeout: float | None = None,
    ) -> Coroutine[Any, Any, ExportResult]:
        """Export items of any type, encoded by the caller: the hook the OpenTelemetry SDK adapters use.

        ``encode(items)`` returns the request bytes for ``signal`` in this exporter's wire format: OTLP/JSON
        when ``self.config.for_signal(signal).protocol == "http/json"``, protobuf otherwise. ``body`` is
        ``encode(items)`` when the caller already has it (it is not encoded again). ``count(items)`` counts
        the items as OTLP does (spans, log records, metric data points). From there it is the path of
        :meth:`export_traces`: a batch over ``max_request_bytes`` is halved and the halves encoded again, a
        single item still over the cap is split by ``split_item`` when given (a metric into two halves of
        its data points) or else dropped and counted. ``timeout`` (seconds) shortens this call's deadline
        below the configured one (a disk queue: bounds the wait for its fsync). Never raises for a failed export.

        Awaited like the other verbs: it hands :meth:`_export_codec`'s coroutine over (one coroutine less per
        export, on the SDK processors' path).
        """
        return self._export_codec(Codec(signal, encode, count, split_item), items, body, timeout)

    def export_codec(
        self, codec: Codec, items: Sequence[Any], *, body: bytes | None = None, timeout: float | None = None
    ) -> Coroutine[Any, Any, ExportResult]:
        """:meth:`export_encoded` with the batch's :class:`Codec` made once by the caller (a processor's adapter
        sends every batch with the same one): the same path, without a new Codec per batch."""
        return self._export_codec(codec, items, body, timeout)
