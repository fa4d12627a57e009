"""Network faults in a network namespace the test creates: the real rotel collector runs inside it, this process
exports to it through a veth pair; nftables drops or resets the traffic, ``tc tbf`` slows the link.

Needs root, ``ip`` and ``tc`` (iproute2) and, for the nftables scenarios, ``nft`` (``scripts/system-deps``
installs it); each scenario skips with its reason otherwise.

Criteria, under a steady load through a :class:`BatchProcessor`:

* blackhole (``drop``) and reset (``reject with tcp reset``): peak RSS grows by at most 32 MiB; every item is
  exported or counted, by reason (queue_full drops, failed exports by root cause: attempt timeouts for the
  blackhole, connection errors for the reset), and the self-metrics agree with the statistics; deliveries
  resume once the rules are gone;
* slow link (a 4 Mbit/s token bucket): requests in flight never exceed the exporter's ConcurrencyLimit (and
  reach it: the link is the bottleneck), and the application's emit (``BatchProcessor.put_nowait``, and the SDK
  ``BatchSpanProcessor.on_end``) stays under 1 ms at the 99th percentile.
"""

from __future__ import annotations

import asyncio

import pytest
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from tests.faults._emit import padded_spans, under_pressure
from tests.faults._support import (
    Ledger,
    Namespace,
    balanced,
    metric_values,
    peak_kib,
    reset_peak,
    rotel_in,
)
from tests.faults.summary import Figure

from aiotlp import OTLPExporter, RetryPolicy
from aiotlp.model import Signal, Span
from aiotlp.processing import BatchProcessor, FlushStatus

MEMORY_LIMIT_KIB = 32 * 1024
RATE = 25  # spans per 5 ms tick: 5000 spans/s

# (phase, nft verdict for the collector's ports or None, seconds)
PHASES = [
    ("healthy", None, 0.4),
    ("blackhole", "drop", 1.2),
    ("healed", None, 0.8),
    ("reset", "reject with tcp reset", 1.2),
    ("recovered", None, 0.6),
]
CLIENTS = [
    pytest.param("http/protobuf", None, id="http"),
    pytest.param("grpc", "h2", id="grpc-h2"),
    pytest.param("grpc", "grpcio", id="grpc-grpcio", marks=pytest.mark.slow),
]


def _rules(verdict: str | None) -> str:
    reset = "flush ruleset\n"
    if verdict is None:
        return reset
    return reset + (
        "table inet faults {\n  chain input {\n    type filter hook input priority 0; policy accept;\n"
        f"    tcp dport {{ 4317, 4318 }} {verdict}\n  }}\n}}\n"
    )


@pytest.mark.parametrize(("protocol", "implementation"), CLIENTS)
async def test_blackhole_and_reset_cost_bounded_memory_and_every_loss_is_counted(
    nft: Namespace, protocol: str, implementation: str | None, figure: Figure
) -> None:
    figure.criterion = "peak RSS +<=32 MiB; losses counted by reason; self-metrics == statistics; recovers"
    http, grpc = await rotel_in(nft)
    reader = InMemoryMetricReader()
    otlp = OTLPExporter(
        endpoint=grpc if protocol == "grpc" else http,
        protocol=protocol,
        timeout=0.6,
        attempt_timeout=0.2,
        retry=RetryPolicy(initial_backoff=0.05, max_backoff=0.1),
        grpc_implementation=implementation,  # type: ignore[arg-type]
    )
    ledger = Ledger(otlp)
    processor: BatchProcessor[Span] = BatchProcessor(
        ledger,
        Signal.TRACES,
        max_queue_size=2048,
        max_export_batch_size=256,
        schedule_delay=0.05,
        export_timeout=2.0,
        max_concurrent_exports=2,
        meter_provider=MeterProvider(metric_readers=[reader]),
    )
    processor.start()
    spans = padded_spans(RATE)
    loop = asyncio.get_running_loop()
    sent = 0
    baseline = 0
    for phase, verdict, seconds in PHASES:
        nft.nft(_rules(verdict))
        ledger.phase = phase
        if phase == "blackhole":
            baseline = reset_peak()
        end = loop.time() + seconds
        while loop.time() < end:
            sent += sum(processor.put_nowait(span) or True for span in spans)
            await asyncio.sleep(0.005)
    flushed = await processor.force_flush(timeout=5)
    growth = peak_kib() - baseline
    outcome = await processor.shutdown(timeout=2)

    assert flushed.status is not FlushStatus.TIMEOUT, flushed
    assert outcome.pending == 0
    stats = balanced(processor.statistics())
    assert stats.produced == sent
    assert stats.queued == stats.in_flight == 0
    assert growth <= MEMORY_LIMIT_KIB, f"peak RSS grew by {growth} KiB"
    # the faults really bit, and were survived
    assert stats.dropped["queue_full"] > 0
    assert stats.failed > 0
    assert set(ledger.causes("blackhole")) <= {"AttemptTimeoutError"}, ledger.causes("blackhole")
    assert sum(ledger.causes("blackhole").values()) > 0
    assert set(ledger.causes("reset")) <= {"ConnectError", "AttemptTimeoutError"}, ledger.causes("reset")
    per_phase = {
        p: (dict(ledger.causes(p)), sum(r.accepted for q, r in ledger.results if q == p)) for p, _, _ in PHASES
    }
    assert ledger.causes("reset")["ConnectError"] > 0, per_phase
    assert all(result.ok for phase, result in ledger.results if phase in ("healthy", "recovered"))
    assert any(phase == "recovered" for phase, _ in ledger.results)
    # the self-metrics say the same, by reason
    processed = metric_values(reader, "otel.sdk.processor.span.processed")
    exported = metric_values(reader, "otel.sdk.exporter.span.exported")
    assert processed.get("queue_full", 0) == stats.dropped["queue_full"]
    assert exported.get(None, 0) == stats.exported
    assert sum(v for k, v in exported.items() if k is not None) == stats.failed + stats.rejected

    figure.load = sent
    figure.faults = sum(1 for _, result in ledger.results if result.failed)
    figure.lost = sent - stats.exported - stats.rejected - stats.failed - stats.dropped_total
    figure.count({"queue_full": stats.dropped["queue_full"], **{k: int(v) for k, v in exported.items() if k}})
    figure.measured = (
        f"peak RSS +{growth / 1024:.1f} MiB; failed by cause: blackhole {dict(ledger.causes('blackhole'))}, "
        f"reset {dict(ledger.causes('reset'))}; exported {stats.exported}"
    )


@pytest.mark.parametrize("protocol", ["http/protobuf", pytest.param("grpc", marks=pytest.mark.slow)])
async def test_a_slow_link_never_exceeds_the_concurrency_limit_nor_slows_the_emit(
    netns: Namespace, protocol: str, figure: Figure
) -> None:
    http, grpc = await rotel_in(netns)
    netns.shape("4mbit")
    await under_pressure(grpc if protocol == "grpc" else http, protocol, figure)
