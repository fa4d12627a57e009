"""BatchProcessor(fallback_loop=...): when its loop goes away with items left, the processor moves to the
fallback loop and exports them there; without a fallback they are dropped at shutdown, counted."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator, Sequence

import pytest

from aiotlp import ConfigurationError, ExportResult, Signal
from aiotlp.processing import BatchProcessor
from aiotlp.testing import RecordingExporter


class LoopThread:
    """An event loop running in a daemon thread: the fallback."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)
        self.loop.close()


@pytest.fixture
def fallback() -> Iterator[LoopThread]:
    thread = LoopThread()
    yield thread
    thread.close()


class LoopTrackingExporter(RecordingExporter):
    """Records which loop each export ran on, and whether the processor let go of a loop."""

    def __init__(self) -> None:
        super().__init__()
        self.loops: list[asyncio.AbstractEventLoop] = []
        self.detached: list[asyncio.AbstractEventLoop] = []

    async def export_traces(self, spans: Sequence[object]) -> ExportResult:  # type: ignore[override]
        self.loops.append(asyncio.get_running_loop())
        return await super().export_traces(spans)  # type: ignore[arg-type]

    async def detach_loop(self) -> None:
        self.detached.append(asyncio.get_running_loop())


def test_fallback_loop_is_validated() -> None:
    with pytest.raises(ConfigurationError, match="fallback_loop must be a callable"):
        BatchProcessor(RecordingExporter(), Signal.TRACES, fallback_loop=42)  # type: ignore[arg-type]


def test_items_left_when_asyncio_run_ends_move_to_the_fallback(fallback: LoopThread) -> None:
    exporter = LoopTrackingExporter()
    processor: BatchProcessor[str] = BatchProcessor(
        exporter, Signal.TRACES, schedule_delay=60, fallback_loop=lambda: fallback.loop
    )
    app_loops = []

    async def app() -> None:
        app_loops.append(asyncio.get_running_loop())
        for i in range(10):
            processor.put_nowait(f"item-{i}")

    asyncio.run(app())
    assert exporter.detached == app_loops  # the exporter let go of the application's loop, on that loop
    assert processor.loop is fallback.loop
    outcome = processor.force_flush_threadsafe(5)
    assert outcome.status.value == "success" and outcome.exported == 10
    assert exporter.items(Signal.TRACES) == [f"item-{i}" for i in range(10)]
    assert exporter.loops == [fallback.loop]
    assert processor.shutdown_threadsafe(5)
    stats = processor.statistics()
    assert stats.exported == 10 and stats.balanced


def test_without_a_fallback_the_shutdown_counts_what_the_closed_loop_held() -> None:
    exporter = RecordingExporter()
    processor: BatchProcessor[str] = BatchProcessor(exporter, Signal.TRACES, schedule_delay=60)

    async def app() -> None:
        for i in range(10):
            processor.put_nowait(f"item-{i}")

    asyncio.run(app())
    outcome = processor.shutdown_threadsafe(5)
    assert outcome.status.value == "failure" and outcome.dropped == 10
    stats = processor.statistics()
    assert stats.dropped["shutdown"] == 10 and stats.balanced and exporter.batches == []


async def test_move_to_fallback_from_the_loop_thread(fallback: LoopThread) -> None:
    """Synchronous code on the processor's loop thread that must wait: it moves the processor first."""
    exporter = LoopTrackingExporter()
    processor: BatchProcessor[str] = BatchProcessor(
        exporter, Signal.TRACES, schedule_delay=60, fallback_loop=lambda: fallback.loop
    )
    processor.start()
    for i in range(5):
        processor.put_nowait(f"item-{i}")
    assert processor.move_to_fallback() is True
    outcome = processor.force_flush_threadsafe(5)  # blocks this loop: the export runs on the fallback
    assert outcome.status.value == "success" and exporter.loops == [fallback.loop]
    await asyncio.sleep(0)
    await asyncio.sleep(0)
    assert exporter.detached == [asyncio.get_running_loop()]  # ran here once this loop got control back
    assert processor.move_to_fallback() is False  # not on its loop's thread any more
    await processor.shutdown(5)  # awaited from another loop: hops to the fallback
    assert processor.statistics().balanced


async def test_move_to_fallback_needs_a_fallback() -> None:
    processor: BatchProcessor[str] = BatchProcessor(RecordingExporter(), Signal.TRACES)
    processor.start()
    assert processor.move_to_fallback() is False
    await processor.shutdown(1)
