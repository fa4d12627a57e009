"""The optional exporter hooks (``aiotlp.export.ExporterHooks``) a batch processor finds and calls through one type."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

from tests.processing.helpers import make_spans

from aiotlp.export import ExportResult
from aiotlp.model import LogRecord, Metric, Signal, Span
from aiotlp.processing import BatchProcessor
from aiotlp.processing._hooks import Hooks


class Bare:
    """Only the four verbs of an Exporter."""

    async def export_traces(self, spans: Sequence[Span]) -> ExportResult:
        return ExportResult(items=len(spans), accepted=len(spans))

    async def export_metrics(self, metrics: Sequence[Metric]) -> ExportResult:
        return ExportResult()

    async def export_logs(self, records: Sequence[LogRecord]) -> ExportResult:
        return ExportResult()

    async def shutdown(self, timeout: float | None = None) -> None:
        pass


class WithHooks(Bare):
    def __init__(self) -> None:
        self.calls: list[str] = []
        self.retries = 3

    def start(self) -> None:
        self.calls.append("start")

    async def force_flush(self, timeout: float | None = None) -> bool:
        self.calls.append(f"force_flush({timeout is not None})")
        return False


class SyncFlush(Bare):
    retries = True  # a bool is no count

    def force_flush(self, timeout_millis: int = 30_000) -> bool:  # an SDK exporter's: not the hook
        return True


def test_a_bare_exporter_has_none_of_the_hooks() -> None:
    hooks = Hooks.of(Bare())
    assert (hooks.start, hooks.detach_loop, hooks.release_loop, hooks.force_flush) == (None, None, None, None)
    assert hooks.retries() is None


def test_only_a_coroutine_force_flush_and_an_int_retries_count() -> None:
    hooks = Hooks.of(SyncFlush())
    assert hooks.force_flush is None
    assert hooks.retries() is None
    exporter = WithHooks()
    hooks = Hooks.of(exporter)
    assert hooks.start is not None and hooks.force_flush is not None
    assert hooks.retries() == 3
    exporter.retries = 5
    assert hooks.retries() == 5  # read at each call


async def test_the_processor_calls_the_hooks_the_exporter_has() -> None:
    exporter = WithHooks()
    p = BatchProcessor(exporter, Signal.TRACES, schedule_delay=100)  # type: ignore[arg-type]
    p.start()
    await asyncio.sleep(0)  # the worker starts: start() is called there
    assert exporter.calls == ["start"]
    p.put_nowait(make_spans(1)[0])
    outcome = await p.force_flush(timeout=5)
    assert exporter.calls == ["start", "force_flush(True)"]
    assert outcome.status.value == "failure"  # the exporter's flush said False
    assert p.statistics().retries == 3
    await p.shutdown()
    assert BatchProcessor(Bare(), Signal.TRACES).statistics().retries is None  # type: ignore[arg-type]
