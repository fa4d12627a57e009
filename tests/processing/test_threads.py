"""BatchProcessor across threads (real time, asyncio debug mode): producers on other threads, the SDK bridge's
shape (the processor on a background loop thread), and the thread-safe sync entry points."""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from tests.processing.helpers import ControlledExporter, balanced, make_spans

from aiotlp.model import Signal
from aiotlp.processing import BatchProcessor, FlushOutcome, FlushStatus
from aiotlp.testing import RecordingExporter


@pytest.fixture
def background_loop() -> Iterator[asyncio.AbstractEventLoop]:
    """An event loop running in its own thread, like the SDK bridge's."""
    loop = asyncio.new_event_loop()
    loop.set_debug(True)
    thread = threading.Thread(target=loop.run_forever, name="background-loop")
    thread.start()
    try:
        yield loop
    finally:
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)
        loop.close()


def on_loop(loop: asyncio.AbstractEventLoop, fn: Callable[[], Any]) -> Any:
    """Run ``fn`` on ``loop``'s thread and return its result."""

    async def call() -> Any:
        return fn()

    return asyncio.run_coroutine_threadsafe(call(), loop).result(10)


async def test_producers_on_several_threads_and_the_ledger_at_every_snapshot() -> None:
    loop = asyncio.get_running_loop()
    loop.set_debug(True)  # a loop call from a wrong thread raises in debug mode
    exporter = ControlledExporter()
    p: BatchProcessor[object] = BatchProcessor(
        exporter,  # type: ignore[arg-type]
        Signal.TRACES,
        max_queue_size=512,
        max_export_batch_size=64,
        schedule_delay=3600,
    )
    p.start()
    threads, per_thread = 4, 5000
    spans = make_spans(per_thread)
    admitted = [0] * threads
    snapshots = 0
    stop = threading.Event()

    def produce(k: int) -> None:
        admitted[k] = sum(p.put_nowait(span) for span in spans)

    def check_from_a_thread() -> None:
        while not stop.is_set():
            balanced(p.statistics())

    async def check_on_the_loop() -> None:
        nonlocal snapshots
        while not stop.is_set():
            balanced(p.statistics())
            snapshots += 1
            await asyncio.sleep(0)

    checker = asyncio.create_task(check_on_the_loop())
    other_checker = asyncio.create_task(asyncio.to_thread(check_from_a_thread))
    await asyncio.gather(*(asyncio.to_thread(produce, k) for k in range(threads)))
    outcome = await p.force_flush(timeout=10)
    stop.set()
    await asyncio.gather(checker, other_checker)
    assert outcome.status is FlushStatus.SUCCESS
    stats = balanced(p.statistics())
    assert stats.produced == threads * per_thread
    assert stats.exported == sum(admitted) == len(exporter.exported_items)
    assert stats.dropped["queue_full"] == threads * per_thread - sum(admitted)
    assert (stats.queued, stats.in_flight) == (0, 0)
    assert snapshots > 10
    await p.shutdown(timeout=10)


async def test_a_thread_wakes_the_worker_once_per_batch_not_per_item(monkeypatch: pytest.MonkeyPatch) -> None:
    loop = asyncio.get_running_loop()
    loop.set_debug(True)
    wakes = 0
    original = loop.call_soon_threadsafe

    def counting(*args: Any, **kwargs: Any) -> asyncio.Handle:
        nonlocal wakes
        wakes += 1
        return original(*args, **kwargs)

    monkeypatch.setattr(loop, "call_soon_threadsafe", counting)
    exporter = ControlledExporter()
    p: BatchProcessor[object] = BatchProcessor(
        exporter,  # type: ignore[arg-type]
        Signal.TRACES,
        max_queue_size=2000,
        max_export_batch_size=100,
        schedule_delay=3600,
    )
    p.start()
    spans = make_spans(1000)
    done = threading.Event()

    def produce() -> None:
        for span in spans:
            p.put_nowait(span)
        done.set()

    thread = threading.Thread(target=produce)
    thread.start()
    await exporter.wait_finished(10)  # ten full batches, no flush, no tick
    thread.join()
    assert done.is_set()
    assert 1 <= wakes <= 10  # at most one wake-up per batch, for 1000 items
    assert balanced(p.statistics()).exported + p.statistics().in_flight == 1000
    await p.shutdown(timeout=10)


async def test_threadsafe_flush_from_another_thread() -> None:
    exporter = RecordingExporter()
    p: BatchProcessor[object] = BatchProcessor(exporter, Signal.TRACES, schedule_delay=3600)  # type: ignore[arg-type]
    p.start()

    def work() -> FlushOutcome:
        for span in make_spans(10):
            p.put_nowait(span)
        return p.force_flush_threadsafe(timeout=5)

    outcome = await asyncio.to_thread(work)
    assert outcome == FlushOutcome(FlushStatus.SUCCESS, exported=10)
    assert len(exporter.items(Signal.TRACES)) == 10
    assert await asyncio.to_thread(p.shutdown_threadsafe, 5) == FlushOutcome(FlushStatus.SUCCESS)
    assert exporter.shutdown_calls == 1


async def test_threadsafe_calls_on_the_loop_thread_fail_at_once(caplog: pytest.LogCaptureFixture) -> None:
    p: BatchProcessor[object] = BatchProcessor(RecordingExporter(), Signal.TRACES)  # type: ignore[arg-type]
    p.start()
    p.put_nowait(make_spans(1)[0])
    with caplog.at_level(logging.WARNING, logger="aiotlp.processing"):
        outcome = p.force_flush_threadsafe(timeout=5)  # would deadlock: refused
        assert outcome.status is FlushStatus.FAILURE
        assert "await force_flush()" in outcome.error
        assert p.shutdown_threadsafe(timeout=5).status is FlushStatus.FAILURE
    assert "on the processor's own loop" in caplog.text
    assert not p.is_shutdown
    assert await p.shutdown(timeout=5) == FlushOutcome(FlushStatus.SUCCESS, exported=1)


def test_a_processor_on_a_background_loop_fed_by_this_thread(background_loop: asyncio.AbstractEventLoop) -> None:
    exporter = RecordingExporter()
    p: BatchProcessor[object] = BatchProcessor(
        exporter,  # type: ignore[arg-type]
        Signal.TRACES,
        max_export_batch_size=100,
        schedule_delay=3600,
    )
    p.start(background_loop)
    spans = make_spans(1050)
    assert all(p.put_nowait(span) for span in spans[:1000])
    outcome = p.force_flush_threadsafe(timeout=5)
    assert outcome.status is FlushStatus.SUCCESS
    assert outcome.exported <= 1000  # batches that settled before the flush began are not in its outcome
    assert on_loop(background_loop, p.statistics).exported == 1000
    for span in spans[1000:]:
        p.put_nowait(span)
    outcome = p.shutdown_threadsafe(timeout=5)
    assert outcome == FlushOutcome(FlushStatus.SUCCESS, exported=50)
    assert exporter.items(Signal.TRACES) == spans
    assert not p.put_nowait(spans[0])
    assert p.shutdown_threadsafe(timeout=5) is outcome  # again: at once
    stats = balanced(on_loop(background_loop, p.statistics))
    assert (stats.exported, stats.dropped["already_shutdown"], stats.batches) == (1050, 1, 11)


async def test_awaiting_on_another_loop_hops_to_the_processors_loop(
    background_loop: asyncio.AbstractEventLoop,
) -> None:
    exporter = RecordingExporter()
    p: BatchProcessor[object] = BatchProcessor(exporter, Signal.TRACES, schedule_delay=3600)  # type: ignore[arg-type]
    p.start(background_loop)
    for span in make_spans(5):
        p.put_nowait(span)  # from this loop's thread, which is not the processor's
    assert await p.force_flush(timeout=5) == FlushOutcome(FlushStatus.SUCCESS, exported=5)
    assert await p.shutdown(timeout=5) == FlushOutcome(FlushStatus.SUCCESS)
    assert exporter.shutdown_calls == 1


def test_shutdown_threadsafe_of_a_never_started_processor_drains_it_on_a_private_loop() -> None:
    exporter = RecordingExporter()
    p: BatchProcessor[object] = BatchProcessor(exporter, Signal.TRACES)  # type: ignore[arg-type]
    for span in make_spans(3):
        p.put_nowait(span)  # no loop anywhere: queued
    assert p.force_flush_threadsafe(timeout=1).status is FlushStatus.FAILURE  # nothing to run it on
    assert p.shutdown_threadsafe(timeout=5) == FlushOutcome(FlushStatus.SUCCESS, exported=3)
    assert len(exporter.items(Signal.TRACES)) == 3


def test_force_flush_threadsafe_of_an_empty_never_started_processor_succeeds() -> None:
    p: BatchProcessor[object] = BatchProcessor(RecordingExporter(), Signal.TRACES)  # type: ignore[arg-type]
    assert p.force_flush_threadsafe(timeout=1)


def test_shutdown_when_the_processors_loop_has_stopped_drops_what_is_queued() -> None:
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever)
    thread.start()
    exporter = RecordingExporter()
    p: BatchProcessor[object] = BatchProcessor(exporter, Signal.TRACES, schedule_delay=3600)  # type: ignore[arg-type]
    p.start(loop)
    for span in make_spans(4):
        p.put_nowait(span)
    loop.call_soon_threadsafe(loop.stop)
    thread.join(10)
    try:
        assert p.force_flush_threadsafe(timeout=1).status is FlushStatus.FAILURE
        outcome = p.shutdown_threadsafe(timeout=1)
        assert (outcome.status, outcome.dropped) == (FlushStatus.FAILURE, 4)
        assert "not running" in outcome.error
        assert not p.put_nowait(make_spans(1)[0])
        stats = balanced(p.statistics())
        assert (stats.dropped["shutdown"], stats.dropped["already_shutdown"], stats.queued) == (4, 1, 0)
    finally:
        for task in asyncio.all_tasks(loop):  # let the worker end, so that closing the loop leaves no pending task
            task.cancel()
        loop.run_until_complete(asyncio.sleep(0))
        loop.close()
