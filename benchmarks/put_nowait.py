"""Micro-benchmark of BatchProcessor.put_nowait (a program, not a test: it prints, it never asserts timings).

    .venv/bin/python benchmarks/put_nowait.py

Each row is the median of several repetitions (min..max shown) of N calls, in ns per call:

* loop thread, admit: a coroutine on the processor's loop puts N spans into a queue with room for them all
  (one worker wake-up per 512-item batch, done directly since it is the loop thread);
* loop thread, drop: the queue is full, every call is dropped and counted;
* other thread, admit: a thread puts N spans while the loop runs the worker in the main thread, which exports
  the batches as they fill (a null exporter), so the producer and the worker share the GIL: the steady state;
* other thread, drop: the same thread, into a full queue;
* byte cap: loop thread, admit, with ``max_queue_bytes`` and the default ``estimate_size`` (3 attributes);
* reference: ``deque.append`` under a ``threading.Lock``, the floor of any locked queue in CPython.
"""

from __future__ import annotations

import asyncio
import statistics
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence

from aiotlp.export import ExportResult
from aiotlp.model import LogRecord, Metric, Signal, Span
from aiotlp.processing import BatchProcessor

N = 200_000
REPEAT = 7


class NullExporter:
    async def export_traces(self, spans: Sequence[Span]) -> ExportResult:
        return ExportResult(items=len(spans), accepted=len(spans))

    async def export_metrics(self, metrics: Sequence[Metric]) -> ExportResult:  # pragma: no cover
        return ExportResult()

    async def export_logs(self, records: Sequence[LogRecord]) -> ExportResult:  # pragma: no cover
        return ExportResult()

    async def shutdown(self, timeout: float | None = None) -> None:
        pass


SPANS = [
    Span(
        trace_id=i + 1,
        span_id=i + 1,
        name="GET /users/{id}",
        start_time_unix_nano=1,
        end_time_unix_nano=2,
        attributes={"http.method": "GET", "http.status_code": 200, "http.route": "/users/{id}"},
    )
    for i in range(1000)
]


def items(n: int) -> list[Span]:
    return [SPANS[i % len(SPANS)] for i in range(n)]


def report(name: str, samples: list[float]) -> None:
    med = statistics.median(samples)
    print(f"{name:<34} {med:8.0f} ns/call   ({min(samples):.0f} .. {max(samples):.0f})")


async def on_loop(*, full: bool, byte_cap: bool) -> float:
    processor: BatchProcessor[Span] = BatchProcessor(
        NullExporter(),
        Signal.TRACES,
        max_queue_size=N if not full else 2048,
        max_queue_bytes=N * 1000 if byte_cap else None,
        schedule_delay=3600,
    )
    processor.start()
    batch = items(N)
    if full:
        for span in batch[:2048]:
            processor.put_nowait(span)
    put = processor.put_nowait
    start = time.perf_counter_ns()
    for span in batch:
        put(span)
    elapsed = time.perf_counter_ns() - start
    stats = processor.statistics()
    assert stats.balanced, stats
    await processor.shutdown(10)
    return elapsed / N


async def from_thread(*, full: bool) -> float:
    processor: BatchProcessor[Span] = BatchProcessor(
        NullExporter(),
        Signal.TRACES,
        max_queue_size=N if not full else 2048,
        schedule_delay=3600,
    )
    processor.start()
    await asyncio.sleep(0)
    if full:
        for span in items(2048):
            processor.put_nowait(span)
    batch = items(N)
    result: list[int] = []
    loop = asyncio.get_running_loop()
    done = asyncio.Event()

    def produce() -> None:
        put = processor.put_nowait
        start = time.perf_counter_ns()
        for span in batch:
            put(span)
        result.append(time.perf_counter_ns() - start)
        loop.call_soon_threadsafe(done.set)

    thread = threading.Thread(target=produce)
    thread.start()
    await done.wait()
    thread.join()
    stats = processor.statistics()
    assert stats.balanced, stats
    await processor.shutdown(10)
    return result[0] / N


def reference() -> float:
    lock = threading.Lock()
    queue: deque[Span] = deque()
    batch = items(N)
    start = time.perf_counter_ns()
    for span in batch:
        with lock:
            queue.append(span)
    return (time.perf_counter_ns() - start) / N


def run(name: str, make: Callable[[], float]) -> None:
    make()  # warm up
    report(name, [make() for _ in range(REPEAT)])


def main() -> None:
    print(f"put_nowait, {N} calls x {REPEAT} repetitions")
    run("loop thread, admit", lambda: asyncio.run(on_loop(full=False, byte_cap=False)))
    run("loop thread, drop (queue full)", lambda: asyncio.run(on_loop(full=True, byte_cap=False)))
    run("other thread, admit (worker busy)", lambda: asyncio.run(from_thread(full=False)))
    run("other thread, drop (queue full)", lambda: asyncio.run(from_thread(full=True)))
    run("loop thread, admit, byte cap", lambda: asyncio.run(on_loop(full=False, byte_cap=True)))
    run("reference: locked deque.append", reference)


if __name__ == "__main__":
    main()
