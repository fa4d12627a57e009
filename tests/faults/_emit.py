"""The application's side of a load: emit spans at a steady pace and time every emit call.

The emit is timed call by call with ``time.perf_counter_ns`` (a functional bound on a call that must never
wait for the network, not a benchmark): aiotlp's ``BatchProcessor.put_nowait``, and the SDK drop-in's
``BatchSpanProcessor.on_end`` while its bridge thread exports.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from tests.faults._support import TimedTransport, balanced, percentile
from tests.faults.summary import Figure

from aiotlp import OTLPExporter, ProcessorStatistics, SignalConfig
from aiotlp.model import Signal, Span
from aiotlp.processing import BatchProcessor
from aiotlp.transport import make_transport

PADDING = "p" * 300
TICK = 0.005


def padded_spans(n: int) -> list[Span]:
    """``n`` distinct spans of ~350 bytes encoded: big enough for a slow link to be the bottleneck."""
    return [
        Span(
            trace_id=i + 1,
            span_id=i + 1,
            name="faults",
            start_time_unix_nano=1,
            end_time_unix_nano=2,
            attributes={"padding": PADDING, "i": i},
        )
        for i in range(n)
    ]


@dataclass(frozen=True)
class EmitReport:
    calls: int
    p99_ms: float
    max_ms: float
    statistics: ProcessorStatistics


def _report(durations: list[int], statistics: ProcessorStatistics) -> EmitReport:
    return EmitReport(len(durations), percentile(durations, 0.99) / 1e6, max(durations) / 1e6, statistics)


async def _paced(emit: Callable[[Any], object], items: list[Any], seconds: float, per_tick: int) -> list[int]:
    """Emit ``per_tick`` items every 5 ms for ``seconds``, timing each call; the loop runs in between."""
    clock = time.perf_counter_ns
    durations: list[int] = []
    loop = asyncio.get_running_loop()
    end = loop.time() + seconds
    index = 0
    while loop.time() < end:
        for _ in range(per_tick):
            item = items[index % len(items)]
            index += 1
            start = clock()
            emit(item)
            durations.append(clock() - start)
        await asyncio.sleep(TICK)
    return durations


async def emit_aiotlp(processor: BatchProcessor[Span], *, seconds: float, per_tick: int) -> EmitReport:
    """Emit into ``processor`` (started here, on the running loop); the caller shuts it down."""
    processor.start()
    durations = await _paced(processor.put_nowait, padded_spans(per_tick * 10), seconds, per_tick)
    return _report(durations, processor.statistics())


async def emit_sdk(endpoint: str, protocol: str, *, seconds: float, per_tick: int, **exporter: Any) -> EmitReport:
    """Emit finished OpenTelemetry SDK spans into aiotlp's drop-in ``BatchSpanProcessor`` (exporting from its
    bridge thread to ``endpoint``), then shut it down; the statistics are taken after the shutdown."""
    from opentelemetry.sdk.trace import TracerProvider

    from aiotlp.sdk import BatchSpanProcessor, SpanExporter

    tracer = TracerProvider().get_tracer("faults")  # no processor: on_end is called by the test alone
    spans = []
    for i in range(per_tick * 10):
        span = tracer.start_span("faults", attributes={"padding": PADDING, "i": i})
        span.end()
        spans.append(span)
    processor = BatchSpanProcessor(
        SpanExporter(endpoint, protocol=protocol, timeout=10, **exporter),  # type: ignore[arg-type]
        schedule_delay_millis=50,
        max_queue_size=4096,
    )
    try:
        durations = await _paced(processor.on_end, spans, seconds, per_tick)
    finally:
        await processor.ashutdown()
    return _report(durations, processor.statistics())


async def under_pressure(endpoint: str, protocol: str, figure: Figure, *, seconds: float = 1.0) -> None:
    """The slow-link and latency scenarios: emit at a steady pace through aiotlp's BatchProcessor (4 concurrent
    export calls) and then the SDK drop-in, both over an exporter limited to 2 requests in flight, to a
    collector behind a slow path. Requests in flight never exceed 2 and do reach it; emit p99 stays < 1 ms."""
    figure.criterion = "requests in flight <= limit (2), and reach it; emit p99 < 1 ms (put_nowait, SDK on_end)"
    # measured without asyncio debug mode: its per-callback bookkeeping would be timed as part of the emit
    asyncio.get_running_loop().set_debug(False)
    timed: list[TimedTransport] = []

    def factory(config: SignalConfig) -> TimedTransport:
        timed.append(TimedTransport(make_transport(config)))
        return timed[-1]

    exporter = OTLPExporter(
        endpoint=endpoint, protocol=protocol, timeout=10, max_concurrent=2, transport_factory=factory
    )
    processor: BatchProcessor[Span] = BatchProcessor(
        exporter, Signal.TRACES, max_queue_size=4096, schedule_delay=0.05, max_concurrent_exports=4
    )
    own = await emit_aiotlp(processor, seconds=seconds, per_tick=20)
    await processor.shutdown(timeout=3)
    stats = balanced(processor.statistics())
    traces = timed[0]  # transports are made per signal, traces first
    assert traces.max_active == 2, traces.max_active  # the limit was reached: the path was the bottleneck
    assert own.p99_ms < 1.0, own

    sdk_timed: list[TimedTransport] = []

    def sdk_factory(config: SignalConfig) -> TimedTransport:
        sdk_timed.append(TimedTransport(make_transport(config)))
        return sdk_timed[-1]

    sdk_endpoint = endpoint if protocol == "grpc" else endpoint + "/v1/traces"
    sdk = await emit_sdk(sdk_endpoint, protocol, seconds=seconds, per_tick=20, transport_factory=sdk_factory)
    sdk_stats = balanced(sdk.statistics)
    assert sdk.p99_ms < 1.0, sdk
    assert sdk_timed and max(t.max_active for t in sdk_timed) <= 2

    figure.load = stats.produced + sdk_stats.produced
    figure.faults = len(traces.attempts) + sum(len(t.attempts) for t in sdk_timed)  # requests over the slow path
    figure.lost = sum(
        s.produced - s.exported - s.rejected - s.failed - s.dropped_total - s.queued - s.in_flight
        for s in (stats, sdk_stats)
    )
    figure.count(
        {
            "queue_full": stats.dropped["queue_full"] + sdk_stats.dropped["queue_full"],
            "failed": stats.failed + sdk_stats.failed,
            "shutdown": stats.dropped["shutdown"] + sdk_stats.dropped["shutdown"],
        }
    )
    figure.measured = (
        f"max in flight {traces.max_active}/2; emit p99 {own.p99_ms * 1000:.0f} us (put_nowait), "
        f"{sdk.p99_ms * 1000:.0f} us (on_end); exported {stats.exported + sdk_stats.exported}"
    )
