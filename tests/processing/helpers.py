"""Shared pieces of the processing tests: telemetry, a controllable exporter, and the accounting check."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from aiotlp import ExporterConfig, OTLPExporter
from aiotlp.export import ExportResult
from aiotlp.model import Gauge, LogRecord, Metric, NumberDataPoint, Signal, Span
from aiotlp.processing import ProcessorStatistics
from aiotlp.testing import ScriptedTransport


def make_spans(n: int, *, start: int = 0, name: str = "work") -> list[Span]:
    return [
        Span(trace_id=i + 1, span_id=i + 1, name=name, start_time_unix_nano=1, end_time_unix_nano=2)
        for i in range(start, start + n)
    ]


def make_logs(n: int) -> list[LogRecord]:
    return [LogRecord(time_unix_nano=i + 1, body=f"line {i}") for i in range(n)]


def make_metric(points: int, name: str = "m") -> Metric:
    return Metric(name=name, data=Gauge([NumberDataPoint(value=i) for i in range(points)]))


def otlp_exporter(transport: ScriptedTransport, *, timeout: float = 1000.0, **kwargs: object) -> OTLPExporter:
    config = ExporterConfig.from_env({}, timeout=timeout, **kwargs)  # type: ignore[arg-type]
    return OTLPExporter(config, transport_factory=lambda _cfg: transport)


def balanced(stats: ProcessorStatistics) -> ProcessorStatistics:
    """Assert the accounting identity, spelled out, and return the snapshot."""
    settled = stats.exported + stats.rejected + stats.failed + sum(stats.dropped.values())
    assert stats.produced == settled + stats.queued + stats.in_flight, stats
    assert min(stats.queued, stats.in_flight, stats.exported, stats.failed, *stats.dropped.values()) >= 0, stats
    return stats


def now() -> float:
    return asyncio.get_running_loop().time()


@dataclass
class Call:
    """One export call seen by :class:`ControlledExporter`."""

    items: list[object]
    started: float
    release: asyncio.Future[ExportResult | None]
    finished: float | None = None


@dataclass
class ControlledExporter:
    """An Exporter whose calls are recorded and, when ``hold`` is set, wait until the test releases them.

    ``result`` decides each call's ExportResult (default: all accepted). ``wait_calls(n)`` and
    ``wait_finished(n)`` wait (on events, not sleeps) until n calls started or finished.
    """

    hold: bool = False
    result: Callable[[Signal, Sequence[object]], ExportResult] | None = None
    calls: list[Call] = field(default_factory=list)
    active: int = 0
    max_active: int = 0
    finished: int = 0
    shutdown_calls: list[float | None] = field(default_factory=list)
    _changed: asyncio.Event | None = None

    @property
    def exported_items(self) -> list[object]:
        return [item for call in self.calls if call.finished is not None for item in call.items]

    def _event(self) -> asyncio.Event:
        if self._changed is None:
            self._changed = asyncio.Event()
        return self._changed

    async def _wait(self, predicate: Callable[[], bool]) -> None:
        while not predicate():
            event = self._event()
            event.clear()
            await event.wait()

    async def wait_calls(self, n: int) -> None:
        await self._wait(lambda: len(self.calls) >= n)

    async def wait_finished(self, n: int) -> None:
        await self._wait(lambda: self.finished >= n)

    def release(self, index: int = 0, result: ExportResult | None = None) -> None:
        future = self.calls[index].release
        if not future.done():
            future.set_result(result)

    def release_all(self) -> None:
        self.hold = False
        for call in self.calls:
            if not call.release.done():
                call.release.set_result(None)

    async def _export(self, signal: Signal, items: Sequence[object]) -> ExportResult:
        loop = asyncio.get_running_loop()
        call = Call(list(items), loop.time(), loop.create_future())
        self.calls.append(call)
        self.active += 1
        self.max_active = max(self.max_active, self.active)
        self._event().set()
        try:
            override = await call.release if self.hold else None
        finally:
            self.active -= 1
        call.finished = loop.time()
        self.finished += 1
        self._event().set()
        if override is not None:
            return override
        if self.result is not None:
            return self.result(signal, items)
        total = sum(len(m.data.data_points) for m in items) if signal is Signal.METRICS else len(items)  # type: ignore[attr-defined]
        return ExportResult(items=total, accepted=total, requests=1)

    async def export_traces(self, spans: Sequence[Span]) -> ExportResult:
        return await self._export(Signal.TRACES, spans)

    async def export_metrics(self, metrics: Sequence[Metric]) -> ExportResult:
        return await self._export(Signal.METRICS, metrics)

    async def export_logs(self, records: Sequence[LogRecord]) -> ExportResult:
        return await self._export(Signal.LOGS, records)

    async def shutdown(self, timeout: float | None = None) -> None:
        self.shutdown_calls.append(timeout)
