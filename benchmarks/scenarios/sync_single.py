"""sync_single: one span per synchronous ``export([span])`` call, as a SimpleSpanProcessor does it.

The official ``OTLPSpanExporter`` (gRPC and HTTP) vs ``aiotlp.sdk.SpanExporter`` (its background loop
thread), both to rotel: spans/s and the p99 latency of one call.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from opentelemetry.sdk.trace.export import SpanExportResult

import aiotlp.sdk
from aiotlp import RetryPolicy

from ._common import OFFICIAL, PROTOCOLS, Context, Sample, aiotlp_endpoint, official_exporter, percentile, sdk_batch


def measure(exporter: Any, seconds: float) -> tuple[float, float]:
    """(spans/s, p99 ms) of exporting one span per call for ``seconds``."""
    spans = sdk_batch(64)
    for span in spans[:20]:  # warm up: connect, first request
        assert exporter.export([span]) is SpanExportResult.SUCCESS
    latencies = []
    start = time.perf_counter()
    end = start + seconds
    i = 0
    while time.perf_counter() < end:
        t = time.perf_counter()
        result = exporter.export([spans[i % len(spans)]])
        latencies.append(time.perf_counter() - t)
        assert result is SpanExportResult.SUCCESS, result
        i += 1
    elapsed = time.perf_counter() - start
    return len(latencies) / elapsed, percentile(latencies, 0.99) * 1000


async def run(ctx: Context) -> list[Sample]:
    seconds = ctx.seconds(1.5, 0.2)
    samples = []
    for protocol in PROTOCOLS:
        rate = Sample(f"spans/s, {protocol}", "spans/s")
        p99 = Sample(f"p99 ms per call, {protocol}", "ms", higher_is_better=False)
        exporters: dict[str, Any] = {
            OFFICIAL: official_exporter(protocol, ctx.grpc_endpoint, ctx.http_endpoint),
            "aiotlp": aiotlp.sdk.SpanExporter(
                aiotlp_endpoint(ctx.grpc_endpoint, ctx.http_endpoint, protocol),
                protocol=protocol,  # type: ignore[arg-type]
                retry=RetryPolicy(max_attempts=1),
            ),
        }
        for name, exporter in exporters.items():
            try:
                # a thread of its own: the harness's loop must not look like the caller's loop
                rate.values[name], p99.values[name] = await asyncio.to_thread(measure, exporter, seconds)
            finally:
                exporter.shutdown()
        samples += [rate, p99]
    return samples
