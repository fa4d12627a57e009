"""The two verbs of the export layer and what they return.

* ``Sender.send(request, deadline)``: send one encoded request. Every wrapper (limit, retry, timeout) and the
  transport leaf implements it, so they stack freely. Failures are raised as :class:`~aiotlp.ExportError`.
* ``Exporter.export_traces/metrics/logs(items)``: encode a batch once, split it under the byte cap, send the
  parts through the sender stack and *return* an :class:`ExportResult`; it never raises for a failed export.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol, runtime_checkable

from .._exceptions import ExportError
from ..encoding import PartialSuccess
from ..model import LogRecord, Metric, Signal, Span

if TYPE_CHECKING:
    import asyncio

__all__ = ["ExportRequest", "ExportResult", "Exporter", "ExporterHooks", "Sender"]


@dataclass(frozen=True, slots=True)
class ExportRequest:
    """One encoded OTLP request, ready to send as it is; a retry sends these same bytes again.

    ``content_encoding`` says how ``body`` is compressed (``"identity"``: as encoded; else ``"gzip"``,
    ``"deflate"`` or ``"zstd"``, compressed once by :func:`~aiotlp.export.compress_request`). ``items`` counts
    spans, log records or metric data points, and ``size`` is the encoded size before compression.
    """

    signal: Signal
    body: bytes
    items: int
    size: int
    content_encoding: str = "identity"

    @property
    def compressed(self) -> bool:
        return self.content_encoding != "identity"


class Sender(Protocol):
    """Sends one encoded request before ``deadline`` (event-loop time, ``loop.time()``)."""

    async def send(self, request: ExportRequest, deadline: float) -> PartialSuccess: ...

    async def shutdown(self) -> None: ...


@dataclass(frozen=True, slots=True)
class ExportResult:
    """What happened to a batch: every item is counted exactly once.

    ``items == accepted + rejected + failed + dropped``:

    * ``accepted``: the collector took them;
    * ``rejected``: the collector refused them in a partial success (not retried); ``error_message`` says why;
    * ``failed``: their request failed; ``error`` is the exception (a :class:`~aiotlp.PermanentError`
      subclass: :class:`~aiotlp.RetriesExhaustedError`, :class:`~aiotlp.DeadlineExceededError`,
      :class:`~aiotlp.RejectedError`, ...);
    * ``dropped``: never sent, because a single item is larger than the request byte cap, or because it cannot
      be encoded at all; ``invalid`` counts the latter (it is part of ``dropped``): an item the encoders refuse
      with an :class:`~aiotlp.EncodeError` (a non-str attribute key, a value of an unsupported type, ...).
      Values the encoders only leave out (an attribute holding an int outside int64, see
      :mod:`aiotlp.encoding`) drop nothing: the item is sent.
    """

    items: int = 0
    accepted: int = 0
    rejected: int = 0
    failed: int = 0
    dropped: int = 0
    requests: int = 0
    invalid: int = 0
    error: ExportError | None = None
    error_message: str = ""

    @property
    def ok(self) -> bool:
        """True when every item was accepted."""
        return self.accepted == self.items

    def __add__(self, other: ExportResult) -> ExportResult:
        return ExportResult(
            items=self.items + other.items,
            accepted=self.accepted + other.accepted,
            rejected=self.rejected + other.rejected,
            failed=self.failed + other.failed,
            dropped=self.dropped + other.dropped,
            requests=self.requests + other.requests,
            invalid=self.invalid + other.invalid,
            error=other.error or self.error,
            error_message=other.error_message or self.error_message,
        )


@runtime_checkable
class Exporter(Protocol):
    """The async exporter interface. Implementations never raise for a failed export: they return the result.

    An exporter may also have any of the optional hooks declared by :class:`ExporterHooks`; a batch processor
    calls those it has.
    """

    async def export_traces(self, spans: Sequence[Span]) -> ExportResult: ...

    async def export_metrics(self, metrics: Sequence[Metric]) -> ExportResult: ...

    async def export_logs(self, records: Sequence[LogRecord]) -> ExportResult: ...

    async def shutdown(self, timeout: float | None = None) -> None: ...


class ExporterHooks(Protocol):
    """The optional hooks of an :class:`Exporter`, each called by the batch processor when the exporter has it.

    * ``start()``: on the processor's loop, when its worker starts (a DurableExporter starts its delivery task,
      which sends what an earlier run left on disk); an exception is logged and the exports go on;
    * ``async detach_loop()``: the loop the processor exports on is ending (or the processor leaves it from that
      loop's thread): close the connections held there, on that loop;
    * ``release_loop(loop)``: the processor left ``loop``, which is not running: let go of the connections held
      there without closing them (any thread);
    * ``async force_flush(timeout) -> bool``: after a flush's exports (a DurableExporter makes its queue durable);
      False fails the flush;
    * ``retries``: retries made so far, shown in the processor's statistics.
    """

    def start(self) -> None: ...

    async def detach_loop(self) -> None: ...

    def release_loop(self, loop: asyncio.AbstractEventLoop) -> None: ...

    async def force_flush(self, timeout: float | None = None) -> bool: ...

    @property
    def retries(self) -> int: ...
