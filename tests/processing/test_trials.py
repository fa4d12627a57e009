"""200 randomized trials: 8 producers (4 threads, 4 tasks) against a misbehaving exporter, with concurrent
force_flush and shutdown. No deadlock, the ledger exact at every snapshot and at the end, a second shutdown at
once. Real time, asyncio debug mode; each trial's seed is in its failure message."""

from __future__ import annotations

import asyncio
import random
import threading
import time
from collections.abc import Sequence

import pytest
from tests.processing.helpers import balanced, make_spans

from aiotlp import RejectedError, RequestTooLargeError
from aiotlp.export import ExportResult
from aiotlp.model import LogRecord, Metric, Signal, Span
from aiotlp.processing import BatchProcessor, FlushStatus

TRIALS = 200
PRODUCER_THREADS = 4
PRODUCER_TASKS = 4
SPANS = make_spans(64, name="abcdefgh")


class ChaoticExporter:
    """Accepts, fails, rejects some, drops some as too large, raises, miscounts, or hangs until cancelled."""

    def __init__(self, rng: random.Random) -> None:
        self.rng = rng
        self.active = 0
        self.max_active = 0

    async def export_traces(self, spans: Sequence[Span]) -> ExportResult:
        n = len(spans)
        self.active += 1
        self.max_active = max(self.max_active, self.active)
        try:
            roll = self.rng.random()
            if roll < 0.3:
                await asyncio.sleep(self.rng.uniform(0, 0.002))
            if roll < 0.55:
                return ExportResult(items=n, accepted=n, requests=1)
            if roll < 0.65:
                return ExportResult(items=n, failed=n, error=RejectedError("no", status=400))
            if roll < 0.75:
                rejected = self.rng.randint(0, n)
                return ExportResult(items=n, accepted=n - rejected, rejected=rejected, error_message="some")
            if roll < 0.8:
                error = RequestTooLargeError("too big", items=1)
                return ExportResult(items=n, accepted=n - 1, dropped=1, error=error)
            if roll < 0.85:
                raise RuntimeError("exporter bug")
            if roll < 0.9:
                return ExportResult(items=n, accepted=self.rng.choice([0, n + 3]))  # miscounted
            await asyncio.sleep(3600)  # hung: export_timeout or the shutdown deadline cancels it
            raise AssertionError("unreachable")
        finally:
            self.active -= 1

    async def export_metrics(self, metrics: Sequence[Metric]) -> ExportResult:  # pragma: no cover
        raise NotImplementedError

    async def export_logs(self, records: Sequence[LogRecord]) -> ExportResult:  # pragma: no cover
        raise NotImplementedError

    async def shutdown(self, timeout: float | None = None) -> None:
        await asyncio.sleep(0)


async def trial(seed: int) -> None:
    rng = random.Random(seed)
    max_queue_size = rng.randint(4, 64)
    policy = rng.choice(["drop_newest", "drop_oldest", "block"])
    byte_cap = rng.choice([None, rng.randint(8, 400)])
    exporter = ChaoticExporter(random.Random(seed + 1_000_000))
    max_concurrent = rng.randint(1, 3)
    p: BatchProcessor[Span] = BatchProcessor(
        exporter,
        Signal.TRACES,
        max_queue_size=max_queue_size,
        max_queue_bytes=byte_cap,
        max_export_batch_size=rng.randint(1, max_queue_size),
        schedule_delay=rng.uniform(0.001, 0.02),
        export_timeout=rng.uniform(0.005, 0.05),
        max_concurrent_exports=max_concurrent,
        policy=policy,  # type: ignore[arg-type]
        size_of=(lambda span: len(span.name)) if byte_cap is not None and rng.random() < 0.5 else None,
    )
    p.start()
    attempts = [0] * (PRODUCER_THREADS + PRODUCER_TASKS)
    counts = [rng.randint(5, 60) for _ in attempts]
    shut_down = asyncio.Event()

    def thread_producer(k: int) -> None:
        local = random.Random(seed * 100 + k)
        for i in range(counts[k]):
            p.put_nowait(SPANS[i % len(SPANS)])
            attempts[k] += 1
            if local.random() < 0.05:
                time.sleep(0)

    async def task_producer(k: int) -> None:
        local = random.Random(seed * 100 + k)
        for i in range(counts[k]):
            if policy == "block" and local.random() < 0.7:
                await p.put(SPANS[i % len(SPANS)])
            else:
                p.put_nowait(SPANS[i % len(SPANS)])
            attempts[k] += 1
            if local.random() < 0.3:
                await asyncio.sleep(0)

    async def flusher() -> None:
        for _ in range(rng.randint(0, 4)):
            outcome = await p.force_flush(timeout=rng.choice([None, 0, 0.005, 0.03]))
            assert outcome.status in FlushStatus
            balanced(p.statistics())
            await asyncio.sleep(rng.uniform(0, 0.005))

    async def checker() -> None:
        while not shut_down.is_set():
            balanced(p.statistics())
            await asyncio.sleep(0)

    async def shutter() -> None:
        await asyncio.sleep(rng.uniform(0, 0.03))
        timeout = rng.choice([None, 0, 0.01, 0.05])
        outcome = await p.shutdown(timeout=timeout)
        shut_down.set()
        assert outcome.status in FlushStatus
        stats = balanced(p.statistics())
        assert stats.queued == 0
        start = time.perf_counter()
        assert await p.shutdown(timeout=1) is outcome  # a second shutdown returns at once
        assert time.perf_counter() - start < 0.01

    loop = asyncio.get_running_loop()
    threads = [asyncio.to_thread(thread_producer, k) for k in range(PRODUCER_THREADS)]
    tasks = [task_producer(k) for k in range(PRODUCER_THREADS, PRODUCER_THREADS + PRODUCER_TASKS)]
    everything = asyncio.gather(*threads, *tasks, flusher(), checker(), shutter())
    try:
        await asyncio.wait_for(everything, timeout=10)
    except asyncio.TimeoutError:  # pragma: no cover - the failure this test exists to catch
        pytest.fail(f"trial {seed}: deadlock (nothing finished within 10 s)")
    assert loop.time() >= 0
    stats = balanced(p.statistics())
    assert stats.produced == sum(attempts), f"trial {seed}"
    assert (stats.queued, stats.in_flight) == (0, 0), f"trial {seed}: {stats}"
    assert exporter.max_active <= max_concurrent, f"trial {seed}"
    assert not p.put_nowait(SPANS[0])
    assert balanced(p.statistics()).dropped["already_shutdown"] >= 1


async def test_randomized_trials() -> None:
    asyncio.get_running_loop().set_debug(True)
    assert threading.active_count() >= 1
    start = time.perf_counter()
    for seed in range(TRIALS):
        await trial(seed)
    assert time.perf_counter() - start < 60  # the whole file: well under the ~30 s budget, normally
