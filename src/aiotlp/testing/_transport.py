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
from ..transport import gzip_compress

__all__ = ["Attempt", "Outcome", "RecordingExporter", "ScriptedTransport"]


@dataclass(frozen=True, slots=True)
class Outcome:
    """What one attempt does: wait ``delay`` seconds (loop time), then raise ``error`` or return ``response``."""

    error: ExportError | None = None
    response: PartialSuccess = field(default_factory=PartialSuccess)
    delay: float = 0.0


@dataclass(frozen=True, slots=True)
class Attempt:
    """One recorded attempt: the exact bytes, and when (loop time) it started."""

    body: bytes
    compressed: bool
    timeout: float
    started: float


class ScriptedTransport:
    """A :class:`~aiotlp.transport.Transport` that plays a script of outcomes, then ``default``.

    ``attempts`` records every call, so tests can check that a retry re-sent the very same bytes.
    """

    content_type = "application/x-protobuf"

    def __init__(self, script: Iterable[Outcome] = (), *, default: Outcome | None = None, gzip: bool = False) -> None:
        self.script: deque[Outcome] = deque(script)
        self.default = default if default is not None else Outcome()
        self.gzip = gzip
        self.attempts: list[Attempt] = []
        self.closed = False
        self.active = 0
        self.max_active = 0

    def prepare(self, body: bytes) -> tuple[bytes, bool]:
        if self.gzip:
            return gzip_compress(body), True
        return body, False

    async def send(self, body: bytes, *, compressed: bool, timeout: float) -> PartialSuccess:
        if self.closed:
            raise PermanentError("the scripted transport is closed")
        loop = asyncio.get_running_loop()
        self.attempts.append(Attempt(body, compressed, timeout, loop.time()))
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
        return outcome.response

    async def close(self) -> None:
        self.closed = True


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
