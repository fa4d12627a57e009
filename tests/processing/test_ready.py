"""A full batch put from another thread is started from the loop's callback (``BatchProcessor._ready``) without
an iteration of the worker: behaviour at the edges (real time, asyncio debug mode). The export slot busy: the
batch waits and starts when the export in flight ends. A batch put as the processor starts: the exporter's
``start()`` comes first."""

from __future__ import annotations

import asyncio
import threading
from dataclasses import dataclass, field

from tests.processing.helpers import ControlledExporter, balanced, make_spans

from aiotlp.model import Signal
from aiotlp.processing import BatchProcessor


def batches_of_four(exporter: ControlledExporter) -> BatchProcessor[object]:
    """A processor of 4-item batches, exported only when full (no timed export), on a loop in debug mode."""
    asyncio.get_running_loop().set_debug(True)
    return BatchProcessor(
        exporter,  # type: ignore[arg-type]
        Signal.TRACES,
        max_queue_size=64,
        max_export_batch_size=4,
        schedule_delay=3600,
    )


def put_from_a_thread(p: BatchProcessor[object], items: list[object]) -> None:
    thread = threading.Thread(target=lambda: [p.put_nowait(item) for item in items])
    thread.start()
    thread.join(10)


async def test_a_full_batch_from_a_thread_while_the_slot_is_busy_starts_when_the_export_ends() -> None:
    exporter = ControlledExporter(hold=True)
    p = batches_of_four(exporter)
    p.start()
    spans: list[object] = list(make_spans(12))
    put_from_a_thread(p, spans[:4])
    await exporter.wait_calls(1)
    put_from_a_thread(p, spans[4:12])  # two more full batches while the first export is held
    for _ in range(5):
        await asyncio.sleep(0)
    assert len(exporter.calls) == 1  # one export slot
    exporter.release(0)
    await exporter.wait_calls(2)
    exporter.release(1)
    await exporter.wait_calls(3)
    exporter.release(2)
    await exporter.wait_finished(3)
    assert [call.items for call in exporter.calls] == [spans[:4], spans[4:8], spans[8:12]]
    await p.shutdown(timeout=10)
    assert balanced(p.statistics()).exported == 12


@dataclass
class StartingExporter(ControlledExporter):
    started: list[int] = field(default_factory=list)  # calls made when start() ran

    def start(self) -> None:
        self.started.append(len(self.calls))


async def test_a_full_batch_from_a_thread_as_the_processor_starts_comes_after_the_exporters_start() -> None:
    exporter = StartingExporter()
    p = batches_of_four(exporter)
    p.start()  # the worker task is made; it runs at the loop's next turn, after the thread's wake-up is queued
    put_from_a_thread(p, list(make_spans(4)))
    await exporter.wait_finished(1)
    assert exporter.started == [0]
    await p.shutdown(timeout=10)
    assert balanced(p.statistics()).exported == 4
