"""In-memory fakes of the transport and the exporter, scripted by tests (no network, no mocks)."""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from .._exceptions import ExportError, ExporterShutdownError, PermanentError
from ..encoding import PartialSuccess, count_items
from ..export import ExportResult
from ..model import LogRecord, Metric, Signal, Span
from ..transport import IDENTITY, Reply

__all__ = ["Attempt", "Outcome", "RecordingExporter", "ScriptedTransport"]


@dataclass(frozen=True, slots=True)
class Outcome:
    """What one attempt does: wait ``delay`` seconds (loop time), then raise ``error`` or return ``response``
    (a :class:`~aiotlp.encoding.PartialSuccess`, answered as a protobuf HTTP 200, or a
    :class:`~aiotlp.transport.Reply` as it is)."""

    error: ExportError | None = None
    response: PartialSuccess | Reply = field(default_factory=PartialSuccess)
    delay: float = 0.0


@dataclass(frozen=True, slots=True)
class Attempt:
    """One recorded attempt: the exact bytes, and when (loop time) it started."""

    body: bytes
    compressed: bool
    timeout: float
    started: float
    content_encoding: str = IDENTITY


class ScriptedTransport:
    """A :class:`~aiotlp.transport.Transport` that plays a script of outcomes, then ``default``.

    ``attempts`` records every call, so tests can check that a retry re-sent the very same bytes.
    """

    content_type = "application/x-protobuf"

    def __init__(self, script: Iterable[Outcome] = (), *, default: Outcome | None = None, gzip: bool = False) -> None:
        self.script: deque[Outcome] = deque(script)
        self.default = default if default is not None else Outcome()
        self.gzip = gzip
        self.compression = "gzip" if gzip else "none"
        self.attempts: list[Attempt] = []
        self.closed = False
        self.active = 0
        self.max_active = 0

    async def send(self, body: bytes, *, content_encoding: str, timeout: float) -> Reply:
        if self.closed:
            raise PermanentError("the scripted transport is closed")
        loop = asyncio.get_running_loop()
        compressed = content_encoding != IDENTITY
        self.attempts.append(Attempt(body, compressed, timeout, loop.time(), content_encoding))
        outcome = self.script.popleft() if self.script else self.default
        self.active += 1
        self.max_active = max(self.max_active, self.active)
        try:
            if outcome.delay:
                await asyncio.sleep(outcome.delay)
        finally:
            self.active -= 1
        if outcome.error is not None:
            raise outcome.error
        response = outcome.response
        if isinstance(response, Reply):
            return response
        return Reply(200, _partial_success_body(response), content_type=self.content_type)

    async def close(self) -> None:
        self.closed = True


def _varint(value: int) -> bytes:
    value &= (1 << 64) - 1  # an int64 as protobuf writes it (negatives take 10 bytes)
    out = bytearray()
    while value > 0x7F:
        out.append(value & 0x7F | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def _partial_success_body(partial: PartialSuccess) -> bytes:
    """An ``Export*ServiceResponse`` (protobuf) carrying ``partial`` (empty for a full success)."""
    if not partial.rejected and not partial.error_message:
        return b""
    inner = b""
    if partial.rejected:
        inner += b"\x08" + _varint(partial.rejected)
    if partial.error_message:
        text = partial.error_message.encode("utf-8")
        inner += b"\x12" + _varint(len(text)) + text
    return b"\x0a" + _varint(len(inner)) + inner


class RecordingExporter:
    """An :class:`~aiotlp.Exporter` that keeps every batch it is given and reports them all accepted.

    Set ``fail_with`` to make the next exports fail with that error instead.
    """

    def __init__(self) -> None:
        self.batches: list[tuple[Signal, tuple[object, ...]]] = []
        self.fail_with: ExportError | None = None
        self.shutdown_calls = 0
        self._closed = False

    def items(self, signal: Signal) -> list[object]:
        return [item for sig, batch in self.batches if sig is signal for item in batch]

    async def _record(self, signal: Signal, items: Sequence[object]) -> ExportResult:
        total = count_items(signal, items)
        if self._closed:
            return ExportResult(items=total, failed=total, error=ExporterShutdownError("shut down"))
        if self.fail_with is not None:
            return ExportResult(items=total, failed=total, requests=1, error=self.fail_with)
        self.batches.append((signal, tuple(items)))
        return ExportResult(items=total, accepted=total, requests=1)

    async def export_traces(self, spans: Sequence[Span]) -> ExportResult:
        return await self._record(Signal.TRACES, spans)

    async def export_metrics(self, metrics: Sequence[Metric]) -> ExportResult:
        return await self._record(Signal.METRICS, metrics)

    async def export_logs(self, records: Sequence[LogRecord]) -> ExportResult:
        return await self._record(Signal.LOGS, records)

    async def shutdown(self, timeout: float | None = None) -> None:
        self.shutdown_calls += 1
        self._closed = True
