"""Acceptance: two real rotel collectors share a steady load; one is killed mid-run and restarted.

    producer (3,000 spans/s) -> BatchProcessor -> [DurableExporter ->] OTLPExporter(endpoint=[rotel A, rotel B])
                                                                          rotel A, rotel B -> FakeCollector (sink)

5 s of load; rotel B is SIGKILLed at 1.5 s and started again (same ports) at 2.5 s.

* Without the disk queue: every span is accounted for by reason (the processor's ledger balances exactly and
  equals the sum of the exporter's ExportResults), and with failover none is failed or dropped at all.
* With the disk queue (:class:`aiotlp.durable.DurableExporter`): every span produced is written to the queue and
  delivered to a collector (``delivered_items == produced``), none failed, rejected or dropped.

The sink also shows what the collectors did with what they acknowledged: a collector SIGKILLed with spans still
in its own pipeline loses them after it said OK (no client can see or prevent that; it is bounded by what this
client had in flight), and a failover may duplicate. The split of load between the two collectors (requests,
bytes, per phase) is printed: run with ``-s`` to see it::

    .venv/bin/python -m pytest tests/integration/test_fleet_rotel.py -s -p no:randomly
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import pytest

from aiotlp import OTLPExporter, RetryPolicy, Signal, Span
from aiotlp.export import ExportResult
from aiotlp.model import LogRecord, Metric
from aiotlp.processing import BatchProcessor, ProcessorStatistics
from aiotlp.testing import FakeCollector, Rotel
from aiotlp.transport import EndpointStatistics, FleetPolicy

pytestmark = pytest.mark.integration

RATE = 3000  # spans per second
TICK = 0.01  # the producer puts RATE * TICK spans every TICK seconds
RUN = 5.0  # seconds of load
KILL_AT, RESTART_AT = 1.5, 2.5
BATCH, CONCURRENT = 256, 2
IN_FLIGHT_MAX = BATCH * CONCURRENT


class Tally:
    """Wraps the exporter and adds up every ExportResult it returns (to check the processor's ledger)."""

    def __init__(self, inner: OTLPExporter | object) -> None:
        self.inner = inner
        self.total = ExportResult()
        self.errors: dict[str, int] = {}

    async def export_traces(self, spans: Sequence[Span]) -> ExportResult:
        result: ExportResult = await self.inner.export_traces(spans)  # type: ignore[attr-defined]
        self.total = self.total + result
        if result.error is not None:
            name = type(result.error).__name__
            self.errors[name] = self.errors.get(name, 0) + result.failed + result.dropped
        return result

    async def export_metrics(self, metrics: Sequence[Metric]) -> ExportResult:
        raise AssertionError("traces only")

    async def export_logs(self, records: Sequence[LogRecord]) -> ExportResult:
        raise AssertionError("traces only")

    async def shutdown(self, timeout: float | None = None) -> None:
        await self.inner.shutdown(timeout)  # type: ignore[attr-defined]


@dataclass(frozen=True, slots=True)
class Run:
    produced: int
    stats: ProcessorStatistics
    tally: Tally
    endpoints: tuple[EndpointStatistics, ...]
    phases: dict[str, tuple[EndpointStatistics, ...]]  # the endpoints' counters at the end of each phase
    sink_ids: list[int]  # every span id the sink received, duplicates included


def make_span(i: int) -> Span:
    return Span(
        trace_id=(i + 1).to_bytes(16, "big"),
        span_id=(i + 1).to_bytes(8, "big"),
        name="fleet-load",
        start_time_unix_nano=1_700_000_000_000_000_000 + i,
        end_time_unix_nano=1_700_000_000_000_001_000 + i,
    )


@pytest.fixture
async def sink() -> AsyncIterator[FakeCollector]:
    async with FakeCollector() as collector:
        yield collector


@pytest.fixture
async def rotels(sink: FakeCollector) -> AsyncIterator[tuple[Rotel, Rotel]]:
    async with Rotel(forward_to=sink.grpc_endpoint) as a, Rotel(forward_to=sink.grpc_endpoint) as b:
        yield a, b


async def restart(rotel: Rotel) -> None:
    """Start a killed rotel again on the same ports."""
    assert rotel.process is not None
    await rotel.process.wait()
    await rotel.stop()
    await rotel.start()


def fleet_of(exporter: object) -> OTLPExporter:
    inner = getattr(exporter, "inner", exporter)
    assert isinstance(inner, OTLPExporter)
    return inner


async def run_load(rotels: tuple[Rotel, Rotel], sink: FakeCollector, exporter: object) -> Run:
    """RATE spans/s for RUN seconds through a BatchProcessor; rotel B killed at KILL_AT, restarted at RESTART_AT."""
    b = rotels[1]
    tally = Tally(exporter)
    processor: BatchProcessor[Span] = BatchProcessor(
        tally,
        Signal.TRACES,
        max_queue_size=4096,
        max_export_batch_size=BATCH,
        schedule_delay=0.1,
        export_timeout=8.0,
        max_concurrent_exports=CONCURRENT,
    )
    loop = asyncio.get_running_loop()
    fleet = fleet_of(exporter)
    phases: dict[str, tuple[EndpointStatistics, ...]] = {}
    produced = 0
    restarting: asyncio.Task[None] | None = None
    per_tick = int(RATE * TICK)
    processor.start()
    start = loop.time()
    for tick in itertools.count(1):
        for _ in range(per_tick):
            processor.put_nowait(make_span(produced))
            produced += 1
        elapsed = loop.time() - start
        if "both up" not in phases and elapsed >= KILL_AT:
            phases["both up"] = fleet.endpoints_statistics()
            b.kill()
        if "B killed" not in phases and elapsed >= RESTART_AT:
            phases["B killed"] = fleet.endpoints_statistics()
            restarting = loop.create_task(restart(b))
        if elapsed >= RUN:
            break
        await asyncio.sleep(max(0.0, start + tick * TICK - loop.time()))
    assert restarting is not None
    await restarting
    outcome = await processor.shutdown(timeout=20)
    stats = processor.statistics()
    endpoints = fleet.endpoints_statistics()  # still there after the shutdown
    phases["B back"] = endpoints
    assert outcome.pending == 0, outcome

    # What the collectors acknowledged is on its way to the sink: wait for it (each request read once), for up
    # to 3 s; whatever does not come was lost inside the killed collector after it said OK.
    ids: list[int] = []
    read = 0

    def arrived(collector: FakeCollector) -> bool:
        nonlocal read
        for request in collector.received[read:]:
            for resource_spans in request.message.resource_spans:
                for scope_spans in resource_spans.scope_spans:
                    ids.extend(int.from_bytes(span.span_id, "big") for span in scope_spans.spans)
        read = len(collector.received)
        return len(set(ids)) >= stats.exported

    with contextlib.suppress(TimeoutError):
        await sink.wait_for(arrived, timeout=3.0)
    return Run(produced, stats, tally, endpoints, phases, ids)


def report(title: str, run: Run) -> None:
    unique = set(run.sink_ids)
    total_requests = sum(e.requests for e in run.endpoints) or 1
    print(f"\n{title}: produced {run.produced} spans in {RUN}s ({RATE}/s)")
    print(
        f"  ledger: exported {run.stats.exported}, failed {run.stats.failed}, rejected {run.stats.rejected}, "
        f"dropped {run.stats.dropped_total}, errors by type {run.tally.errors}"
    )
    for name, e in zip("AB", run.endpoints, strict=True):
        print(
            f"  {name} {e.endpoint}: {e.requests} requests ({100 * e.requests / total_requests:.1f} %), "
            f"{e.successes} ok, {e.failures} failed ({e.failovers} failed over), {e.sent_bytes} bytes, now {e.state}"
        )
    before: tuple[EndpointStatistics, ...] = ()
    for phase, snapshot in run.phases.items():
        served = [
            now.successes - (then.successes if before else 0)
            for now, then in zip(snapshot, before or snapshot, strict=True)
        ]
        print(f"  requests served while {phase}: A {served[0]}, B {served[1]}")
        before = snapshot
    print(
        f"  sink: {len(unique)} distinct spans, {len(run.sink_ids) - len(unique)} duplicates, "
        f"{run.produced - len(unique)} produced spans missing"
    )


def check_ledger(run: Run) -> None:
    stats, total = run.stats, run.tally.total
    assert stats.balanced, stats
    assert stats.produced == run.produced
    assert (stats.queued, stats.in_flight) == (0, 0)
    # the processor's ledger is exactly the sum of the ExportResults, plus what it dropped itself
    assert stats.exported == total.accepted
    assert stats.rejected == total.rejected
    assert stats.failed == total.failed
    assert stats.dropped.get("too_large", 0) == total.dropped
    assert stats.exported + stats.rejected + stats.failed + stats.dropped_total == run.produced


def check_sink(run: Run) -> None:
    """The sink holds only spans we produced. Spans missing there were acknowledged by rotel B and lost when it
    was SIGKILLed with them still in its own pipeline: no client can see or prevent that (a collector's answer
    ends the exporter's responsibility; the collector's own persistent queue is the cure, see docs/fleet.md).
    B can hold at most what this client had in flight (max_concurrent_exports x max_export_batch_size)."""
    unique = set(run.sink_ids)
    assert unique <= set(range(1, run.produced + 1))
    assert run.produced - len(unique) <= IN_FLIGHT_MAX


def check_split(run: Run) -> None:
    both_up, killed = run.phases["both up"], run.phases["B killed"]
    first, second = run.endpoints
    assert both_up[0].successes > 0 and both_up[1].successes > 0  # both served before the kill
    # a killed collector answers nothing more, but SIGKILL lands asynchronously: a request in flight when the
    # snapshot was taken may still have been answered (at most one per concurrent export)
    assert 0 <= killed[1].successes - both_up[1].successes <= CONCURRENT
    assert second.successes > killed[1].successes  # B served again after its restart
    assert second.state == "up" and second.failures >= 1 and second.failovers == second.failures
    assert first.failures == 0


@pytest.mark.parametrize("protocol", ["http/protobuf", "grpc"])
async def test_two_rotels_share_the_load_and_survive_a_kill_without_the_disk_queue(
    rotels: tuple[Rotel, Rotel], sink: FakeCollector, protocol: str
) -> None:
    a, b = rotels
    endpoints = [a.http_endpoint, b.http_endpoint] if protocol != "grpc" else [a.grpc_endpoint, b.grpc_endpoint]
    exporter = OTLPExporter(
        endpoint=endpoints,
        protocol=protocol,
        timeout=5.0,
        retry=RetryPolicy(initial_backoff=0.1, max_backoff=1.0),
        fleet=FleetPolicy(initial_backoff=0.2, max_backoff=1.0),
    )
    run = await run_load(rotels, sink, exporter)
    report(f"two rotels, {protocol}, one killed at {KILL_AT}s and restarted at {RESTART_AT}s", run)
    check_ledger(run)
    # with failover, nothing was lost on the client side
    assert (run.stats.failed, run.stats.dropped_total, run.stats.rejected) == (0, 0, 0), run.tally.errors
    assert run.stats.exported == run.produced
    check_split(run)
    check_sink(run)


async def test_two_rotels_with_the_disk_queue_lose_nothing(
    rotels: tuple[Rotel, Rotel], sink: FakeCollector, tmp_path: Path
) -> None:
    durable = pytest.importorskip("aiotlp.durable")
    a, b = rotels
    inner = OTLPExporter(
        endpoint=[a.http_endpoint, b.http_endpoint],
        timeout=5.0,
        retry=RetryPolicy(initial_backoff=0.1, max_backoff=1.0),
        fleet=FleetPolicy(initial_backoff=0.2, max_backoff=1.0),
    )
    exporter = durable.DurableExporter(inner, tmp_path / "queue", retry_initial=0.1, retry_max=1.0)
    run = await run_load(rotels, sink, exporter)
    durable_stats = exporter.statistics()
    report("two rotels, http/protobuf, with the disk queue", run)
    print(f"  disk queue: {durable_stats}")
    check_ledger(run)
    assert run.stats.exported == run.produced  # all written to the queue
    assert durable_stats.queued_records == 0
    assert durable_stats.delivered_items == run.produced
    assert (durable_stats.failed_items, durable_stats.rejected_items, durable_stats.disk_full_items) == (0, 0, 0)
    check_split(run)
    check_sink(run)
