"""async_loop: exporting 512-span batches from inside an asyncio application.

``await OTLPExporter.export_traces(batch)`` vs the official ``OTLPSpanExporter.export(batch)`` run through
``asyncio.to_thread`` (how an async app has to call it), both to rotel, one batch at a time. Reports spans/s,
the p99 latency of one batch, and the event loop's lag meanwhile: a ticker task sleeps 1 ms again and again
and records how much longer than that each sleep took (p99). The same measurement runs in the multiprocess
scenario's workers (:func:`measure`).
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import asdict, dataclass

from opentelemetry.sdk.trace.export import SpanExportResult

from aiotlp import OTLPExporter, RetryPolicy

from ._common import BATCH, OFFICIAL, PROTOCOLS, Context, Sample, aiotlp_batch, official_exporter, percentile, sdk_batch

TICK = 0.001


@dataclass
class Result:
    spans_per_s: float
    batch_p99_ms: float
    lag_p99_ms: float
    cpu_s: float
    spans: int

    def as_dict(self) -> dict[str, float]:
        return asdict(self)


async def ticker(lags: list[float], stop: asyncio.Event) -> None:
    loop = asyncio.get_running_loop()
    while not stop.is_set():
        t = loop.time()
        await asyncio.sleep(TICK)
        lags.append(loop.time() - t - TICK)


async def measure(side: str, protocol: str, grpc_endpoint: str, http_endpoint: str, seconds: float) -> Result:
    """Export batches for ``seconds`` with ``side`` (``aiotlp`` or ``official``), ticker running."""
    if side == OFFICIAL:
        official = official_exporter(protocol, grpc_endpoint, http_endpoint)
        spans = sdk_batch(BATCH)

        async def export() -> None:
            result = await asyncio.to_thread(official.export, spans)  # type: ignore[attr-defined]
            assert result is SpanExportResult.SUCCESS, result

        async def close() -> None:
            await asyncio.to_thread(official.shutdown)  # type: ignore[attr-defined]

    else:
        exporter = OTLPExporter(
            endpoint=grpc_endpoint if protocol == "grpc" else http_endpoint,  # HTTP: v1/traces is appended
            protocol=protocol,
            retry=RetryPolicy(max_attempts=1),
        )
        model = aiotlp_batch(BATCH)

        async def export() -> None:
            result = await exporter.export_traces(model)
            assert result.ok, result.error

        async def close() -> None:
            await exporter.shutdown()

    try:
        for _ in range(3):
            await export()
        lags: list[float] = []
        latencies: list[float] = []
        stop = asyncio.Event()
        tick = asyncio.create_task(ticker(lags, stop))
        cpu, start = time.process_time(), time.perf_counter()
        while time.perf_counter() - start < seconds or len(latencies) < 2:
            t = time.perf_counter()
            await export()
            latencies.append(time.perf_counter() - t)
        elapsed, cpu = time.perf_counter() - start, time.process_time() - cpu
        stop.set()
        await tick
    finally:
        await close()
    spans = len(latencies) * BATCH
    return Result(spans / elapsed, percentile(latencies, 0.99) * 1000, percentile(lags, 0.99) * 1000, cpu, spans)


async def run(ctx: Context) -> list[Sample]:
    seconds = ctx.seconds(2.0, 0.25)
    samples = []
    for protocol in PROTOCOLS:
        rate = Sample(f"spans/s, {protocol}", "spans/s")
        p99 = Sample(f"p99 ms per batch, {protocol}", "ms", higher_is_better=False)
        lag = Sample(f"loop lag p99 ms, {protocol}", "ms", higher_is_better=False)
        for side in (OFFICIAL, "aiotlp"):
            r = await measure(side, protocol, ctx.grpc_endpoint, ctx.http_endpoint, seconds)
            rate.values[side], p99.values[side], lag.values[side] = r.spans_per_s, r.batch_p99_ms, r.lag_p99_ms
        samples += [rate, p99, lag]
    return samples
