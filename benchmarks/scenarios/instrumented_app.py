"""instrumented_app: an asyncio application instrumented with the OpenTelemetry SDK, ending 20,000 spans/s.

The issue's loop-lag target: "event-loop lag p99 <= 2 ms while exporting 20K spans/s from an instrumented
asyncio app". Each side runs in a fresh process on the harness's loop (asyncio or uvloop):

* ``official``: the SDK's ``BatchSpanProcessor`` (a thread) and the official ``OTLPSpanExporter``;
* ``aiotlp``: ``aiotlp.sdk.BatchSpanProcessor`` and ``aiotlp.sdk.SpanExporter``, exporting on the app's loop
  (spans encoded at the source: the queue holds bytes);
* ``aiotlp, objects``: the same with ``encode_at_source=False`` (the queue holds the SDK's span objects);
* ``aiotlp + gc.freeze()``: the same, with ``gc.freeze()`` called once the app has started (spans waiting in the
  queue make the collector's full collections frequent, and each walks every object of the process: the main
  source of the lag; see ``benchmarks/profiles.py gc``);
* ``aiotlp provider``: the whole aiotlp path: ``aiotlp.sdk.TracerProvider`` (span state in the C core, or the
  pure twin under the accelerator's kill switch), its spans taken to bytes at ``end()`` by aiotlp's processor;
* ``no-op``: the app alone on the SDK's provider (its lag and CPU without any exporter);
* ``no-op, aiotlp provider``: the app alone on aiotlp's provider.

With the spans encoded at the source no span object waits in the queue, which is what ``gc.freeze()`` worked
around.

The app task creates spans (8 attributes + 1 event) at a steady 20,000/s: every millisecond it catches up with
the schedule (at most 100 spans at once), then sleeps. A ticker task sleeps 1 ms again and again and records
how late it woke (the loop lag). Reports the lag's p99, spans delivered/s and dropped, the process CPU µs per
span, and the peak RSS growth. The app's own work (creating 20 spans a millisecond) is in both sides' lag.
"""

from __future__ import annotations

import asyncio
import gc
import json
import sys
import time
from typing import Any

from opentelemetry.sdk.trace import TracerProvider

from aiotlp.sdk import TracerProvider as NativeTracerProvider

from ._common import OFFICIAL, PROTOCOLS, Context, RssSampler, Sample, child_arguments, percentile, run_child, run_on
from .batched_pipeline import PIPELINES, request_span

RATE = 20_000
TICK = 0.001
# our side name -> batched_pipeline's pipeline
SIDES = {
    OFFICIAL: OFFICIAL,
    "aiotlp": "aiotlp processor",
    "aiotlp, objects": "aiotlp processor, objects",
    "aiotlp + gc.freeze()": "aiotlp processor",
    "aiotlp provider": "aiotlp processor",
    "no-op": "no-op",
    "no-op, aiotlp provider": "no-op",
}
FROZEN = frozenset({"aiotlp + gc.freeze()"})
NATIVE = frozenset({"aiotlp provider", "no-op, aiotlp provider"})


async def app(side: str, protocol: str, grpc_endpoint: str, http_endpoint: str, seconds: float) -> dict[str, Any]:
    processor, exported = PIPELINES[SIDES[side]](protocol, grpc_endpoint, http_endpoint)
    provider = NativeTracerProvider() if side in NATIVE else TracerProvider()
    provider.add_span_processor(processor)
    tracer = provider.get_tracer("bench.instrumentation", "0.1.0")
    if side in FROZEN:  # the app has started: what exists now is never walked by the collector again
        gc.collect()
        gc.freeze()
    loop = asyncio.get_running_loop()
    lags: list[float] = []
    stop = asyncio.Event()

    async def ticker() -> None:
        while not stop.is_set():
            t = loop.time()
            await asyncio.sleep(TICK)
            lags.append(loop.time() - t - TICK)

    produced = 0
    rss = RssSampler().__enter__()
    tick = asyncio.create_task(ticker())
    cpu, start = time.process_time(), time.perf_counter()
    while (now := time.perf_counter()) - start < seconds:
        due = min(int((now - start) * RATE) - produced, 100)
        for i in range(due):
            request_span(tracer, i)
        produced += max(due, 0)
        await asyncio.sleep(TICK)
    elapsed = time.perf_counter() - start
    stop.set()
    await tick
    await asyncio.to_thread(provider.shutdown)  # flushes what is queued (aiotlp: moves to its thread first)
    cpu = time.process_time() - cpu
    rss.__exit__()
    return {
        "lag_p99_ms": percentile(lags, 0.99) * 1000,
        "produced_per_s": produced / elapsed,
        "delivered_per_s": exported() / elapsed,
        "dropped": produced - exported(),
        "cpu_us_per_span": cpu / max(produced, 1) * 1e6,
        "peak_rss_mib": rss.growth_mib,
    }


async def run(ctx: Context) -> list[Sample]:
    seconds = ctx.seconds(3.0, 0.5)
    samples = []
    for protocol in PROTOCOLS:
        lag = Sample(f"loop lag p99 at 20K spans/s, {protocol}", "ms", higher_is_better=False)
        rate = Sample(f"spans delivered/s (20K/s produced), {protocol}", "spans/s")
        dropped = Sample(f"spans dropped, {protocol}", "spans", higher_is_better=False)
        cpu = Sample(f"CPU per span incl. creation, {protocol}", "µs", higher_is_better=False)
        rss = Sample(f"peak RSS growth, {protocol}", "MiB", higher_is_better=False)
        for side in SIDES:
            r = await run_child(
                __name__,
                side,
                protocol,
                ctx.grpc_endpoint,
                ctx.http_endpoint,
                str(seconds),
                ctx.loop,
                timeout=seconds + 60,
            )
            lag.values[side], rate.values[side] = r["lag_p99_ms"], r["delivered_per_s"]
            dropped.values[side], cpu.values[side] = r["dropped"], r["cpu_us_per_span"]
            rss.values[side] = r["peak_rss_mib"]
        samples += [lag, rate, dropped, cpu, rss]
    return samples


def main() -> None:
    args = child_arguments()
    result = run_on(args.loop, app(args.side, args.protocol, args.grpc_endpoint, args.http_endpoint, args.seconds))
    sys.stdout.write(json.dumps(result) + "\n")


if __name__ == "__main__":
    main()
