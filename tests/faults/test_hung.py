"""A hung collector: the real rotel collector, frozen with SIGSTOP. Its kernel still accepts connections and
takes the bytes, but nothing ever answers.

Criteria: every attempt ends at its timeout (the attempt timeout, or what is left of the export deadline)
within 15 %; a batch processor's shutdown returns within its timeout plus the documented grace; no task is
left behind; every item is counted (failed, or dropped at the shutdown deadline); and once the collector is
thawed (SIGCONT) the same exporter delivers again.
"""

from __future__ import annotations

import asyncio
import time

import pytest
from tests.faults._support import TimedTransport, accounted, balanced, error_kinds
from tests.faults.summary import Figure
from tests.processing.helpers import make_spans

from aiotlp import OTLPExporter, RetryPolicy
from aiotlp.model import Signal, Span
from aiotlp.processing import SHUTDOWN_GRACE, BatchProcessor, FlushStatus
from aiotlp.testing import Rotel
from aiotlp.transport import make_transport

ATTEMPT_TIMEOUT = 0.3
EXPORT_TIMEOUT = 1.6  # attempts at 0, 0.35, 0.7, 1.05 (0.3 s each), 1.4 (cut by the deadline at 0.2 s)
TOLERANCE = 0.15
SHUTDOWN_TIMEOUT = 0.5

CLIENTS = [("http/protobuf", None), ("grpc", "h2"), ("grpc", "grpcio")]


def _exporter(rotel: Rotel, protocol: str, implementation: str | None, timed: list[TimedTransport]) -> OTLPExporter:
    def factory(config: object) -> TimedTransport:
        transport = TimedTransport(make_transport(config, grpc_implementation=implementation))  # type: ignore[arg-type]
        timed.append(transport)
        return transport

    return OTLPExporter(
        endpoint=rotel.grpc_endpoint if protocol == "grpc" else rotel.http_endpoint,
        protocol=protocol,
        timeout=EXPORT_TIMEOUT,
        attempt_timeout=ATTEMPT_TIMEOUT,
        retry=RetryPolicy(initial_backoff=0.05, max_backoff=0.05, jitter=0),
        max_concurrent=2,
        transport_factory=factory,
    )


@pytest.mark.parametrize(("protocol", "implementation"), CLIENTS, ids=["http", "grpc-h2", "grpc-grpcio"])
async def test_a_hung_collector_costs_exactly_the_timeouts(
    rotel: Rotel, protocol: str, implementation: str | None, figure: Figure
) -> None:
    figure.criterion = "each attempt ends at its timeout +-15%; shutdown <= timeout + grace; no task left"
    tasks_before = asyncio.all_tasks()
    timed: list[TimedTransport] = []
    exporter = _exporter(rotel, protocol, implementation, timed)
    traces = timed[0]  # transports are made per signal, in Signal order: traces first
    assert (await exporter.export_traces(make_spans(5))).ok  # warm: the connection is up

    rotel.pause()
    try:
        # two exports at once, each retried until its deadline; every attempt is cut at its timeout
        start = time.perf_counter()
        results = await asyncio.gather(*(exporter.export_traces(make_spans(10, start=i * 10)) for i in range(2)))
        elapsed = time.perf_counter() - start
        hung = traces.attempts[1:]
        assert len(hung) == 10  # 5 attempts for each export (see EXPORT_TIMEOUT)
        for attempt in hung:
            assert attempt.outcome in ("cancelled", "AttemptTimeoutError"), attempt
            assert abs(attempt.elapsed - attempt.timeout) <= TOLERANCE * attempt.timeout, attempt
        assert EXPORT_TIMEOUT <= elapsed <= EXPORT_TIMEOUT * (1 + TOLERANCE)
        assert traces.max_active <= 2
        for result in results:
            assert accounted(result).failed == 10
        assert error_kinds(results) == {"DeadlineExceededError": 20}

        # a batch processor in front: its shutdown keeps its deadline although every export hangs
        processor: BatchProcessor[Span] = BatchProcessor(
            exporter, Signal.TRACES, max_queue_size=400, max_export_batch_size=100, schedule_delay=0.02
        )
        processor.start()
        admitted = sum(processor.put_nowait(span) for span in make_spans(400))
        flushed = await processor.force_flush(timeout=0.1)
        assert flushed.status is FlushStatus.TIMEOUT
        start = time.perf_counter()
        outcome = await processor.shutdown(timeout=SHUTDOWN_TIMEOUT)
        shutdown_elapsed = time.perf_counter() - start
    finally:
        rotel.resume()
    assert SHUTDOWN_TIMEOUT <= shutdown_elapsed <= SHUTDOWN_TIMEOUT + 2 * SHUTDOWN_GRACE + 0.05, shutdown_elapsed
    assert outcome.status is FlushStatus.TIMEOUT
    stats = balanced(processor.statistics())
    assert admitted == stats.produced == 400
    assert stats.exported == 0 and stats.queued == stats.in_flight == 0
    assert stats.failed + stats.dropped["shutdown"] == 400

    # nothing is left running: no export, retry, connection or reader task
    await asyncio.sleep(0)
    leaked = asyncio.all_tasks() - tasks_before - {asyncio.current_task()}
    assert not leaked, leaked

    # thawed, a new exporter delivers (the collector survived; so did the client side)
    timed_after: list[TimedTransport] = []
    async with _exporter(rotel, protocol, implementation, timed_after) as exporter_after:
        assert (await exporter_after.export_traces(make_spans(5))).ok

    figure.load = 5 + 20 + 400 + 5
    figure.faults = len(hung) + stats.batches
    figure.lost = (20 - sum(r.accepted + r.rejected + r.failed + r.dropped for r in results)) + (
        400 - stats.exported - stats.rejected - stats.failed - stats.dropped_total - stats.queued - stats.in_flight
    )
    figure.count({"timeout": 20 + stats.failed, "shutdown": stats.dropped["shutdown"]})
    worst = max(abs(a.elapsed - a.timeout) / a.timeout for a in hung)
    figure.measured = f"worst attempt off by {worst:.1%}; shutdown {shutdown_elapsed:.3f}s of {SHUTDOWN_TIMEOUT}s"
