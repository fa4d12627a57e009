"""aiotlp's SDK batch processors keep four exports in flight to aiotlp's own exporter over OTLP/gRPC, with either
gRPC client (``sdk._bridge.GRPC_EXPORTS_IN_FLIGHT``: a grpc.aio call to a receiver that leaves Nagle on stalls
~40 ms on the client's delayed ACK, and another call's request carries that ACK), two over OTLP/HTTP
(``EXPORTS_IN_FLIGHT``), when the application makes spans or log records on a plain thread (the exports run on the
bridge); one on an application's own loop, and one with the disk queue.

The collector holds the first replies for seconds: every request allowed in flight arrives before any is answered,
and the next one only after; the ledger counts every item once.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
from opentelemetry.sdk._logs import LoggerProvider
from opentelemetry.sdk.trace import TracerProvider

from aiotlp.sdk import BatchLogRecordProcessor, BatchSpanProcessor, LogExporter, SpanExporter
from aiotlp.sdk._bridge import EXPORTS_IN_FLIGHT, GRPC_EXPORTS_IN_FLIGHT, LANE_EXPORTS_IN_FLIGHT, exports_in_flight
from aiotlp.testing import CollectorThread, Reply
from aiotlp.transport import lane_available, make_transport

CLIENTS = ("h2", "grpcio")
HELD = 5.0  # seconds the collector holds each of the first replies


def grpc_span_exporter(collector: CollectorThread, client: str, **kwargs: Any) -> SpanExporter:
    return SpanExporter(
        collector.grpc_endpoint,
        protocol="grpc",
        transport_factory=lambda config: make_transport(config, grpc_implementation=client),  # type: ignore[arg-type]
        **kwargs,
    )


def make_spans(provider: TracerProvider, n: int) -> None:
    tracer = provider.get_tracer("app")
    for i in range(n):
        with tracer.start_as_current_span(f"span {i}"):
            pass


def test_the_counts_per_protocol() -> None:
    assert (GRPC_EXPORTS_IN_FLIGHT, EXPORTS_IN_FLIGHT) == (4, 2)
    assert exports_in_flight("grpc") == 4
    assert exports_in_flight("http/protobuf") == exports_in_flight("http/json") == 2


@pytest.mark.parametrize("client", CLIENTS)
def test_four_span_exports_in_flight_over_grpc(client: str) -> None:
    with CollectorThread() as collector:
        collector.script(*[Reply(delay=HELD)] * 4)
        processor = BatchSpanProcessor(grpc_span_exporter(collector, client))
        provider = TracerProvider()
        provider.add_span_processor(processor)
        make_spans(provider, 4 * 512)  # four full batches: the default queue (2,048) holds them all
        collector.wait_for(lambda c: len(c.received) >= 4, timeout=HELD - 2)
        stats = processor.statistics()
        assert (stats.in_flight, stats.exported, sum(stats.dropped.values())) == (2048, 0, 0)
        make_spans(provider, 512)  # a fifth batch waits for a reply
        with pytest.raises(TimeoutError):
            collector.wait_for(lambda c: len(c.received) >= 5, timeout=0.3)
        assert processor.statistics().in_flight == 2048
        provider.shutdown()
        stats = processor.statistics()
        assert (stats.produced, stats.exported, stats.queued, stats.in_flight) == (2560, 2560, 0, 0)
        assert sum(stats.dropped.values()) == 0
        assert len(collector.spans()) == 2560


@pytest.mark.parametrize("client", CLIENTS)
def test_four_log_exports_in_flight_over_grpc(client: str) -> None:
    with CollectorThread() as collector:
        collector.script(*[Reply(delay=HELD)] * 4)
        exporter = LogExporter(
            collector.grpc_endpoint,
            protocol="grpc",
            transport_factory=lambda config: make_transport(config, grpc_implementation=client),  # type: ignore[arg-type]
        )
        processor = BatchLogRecordProcessor(exporter)
        provider = LoggerProvider(shutdown_on_exit=False)
        provider.add_log_record_processor(processor)
        logger = provider.get_logger("app")
        for i in range(4 * 512):
            logger.emit(body=f"record {i}")
        collector.wait_for(lambda c: len(c.received) >= 4, timeout=HELD - 2)
        stats = processor.statistics()
        assert (stats.in_flight, stats.exported) == (2048, 0)
        provider.shutdown()
        stats = processor.statistics()
        assert (stats.produced, stats.exported, stats.queued, stats.in_flight) == (2048, 2048, 0, 0)
        assert sum(stats.dropped.values()) == 0
        assert len(collector.log_records()) == 2048


@pytest.mark.parametrize("protocol", ["grpc", "http/protobuf"])
def test_the_count_follows_the_protocol_from_the_environment(protocol: str) -> None:
    """No argument: OTEL_EXPORTER_OTLP_PROTOCOL decides (and the default gRPC client)."""
    with CollectorThread() as collector:
        endpoint = collector.grpc_endpoint if protocol == "grpc" else collector.http_endpoint
        exporter = SpanExporter(
            environ={"OTEL_EXPORTER_OTLP_PROTOCOL": protocol, "OTEL_EXPORTER_OTLP_ENDPOINT": endpoint}
        )
        processor = BatchSpanProcessor(exporter)
        provider = TracerProvider()
        provider.add_span_processor(processor)
        make_spans(provider, 10)  # the first span binds the processor to the bridge
        # the lane's threads where it is built (both protocols: the default clients), else the bridge's exports
        expected = LANE_EXPORTS_IN_FLIGHT if lane_available() else (4 if protocol == "grpc" else 2)
        assert processor._processor.max_concurrent_exports == expected
        provider.shutdown()
        assert processor.statistics().exported == 10
        assert len(collector.spans()) == 10


def test_one_export_over_grpc_with_the_disk_queue(tmp_path: Path) -> None:
    with CollectorThread() as collector:
        processor = BatchSpanProcessor(grpc_span_exporter(collector, "grpcio", queue_dir=tmp_path))
        provider = TracerProvider()
        provider.add_span_processor(processor)
        make_spans(provider, 10)
        assert processor._processor.max_concurrent_exports == 1
        provider.shutdown()
        assert len(collector.spans()) == 10


@pytest.mark.parametrize("client", CLIENTS)
async def test_one_export_over_grpc_on_the_applications_loop(client: str) -> None:
    with CollectorThread() as collector:
        collector.script(Reply(delay=1.5), Reply(delay=1.5))
        processor = BatchSpanProcessor(grpc_span_exporter(collector, client))
        provider = TracerProvider()
        provider.add_span_processor(processor)
        make_spans(provider, 1024)  # two full batches, on this loop
        assert processor._processor.max_concurrent_exports == 1
        with pytest.raises(TimeoutError):  # the second request waits for the first reply
            await asyncio.to_thread(collector.wait_for, lambda c: len(c.received) >= 2, 1.0)
        assert (await processor.aforce_flush(30_000)).status.value == "success"
        stats = processor.statistics()
        assert (stats.exported, stats.in_flight, stats.queued) == (1024, 0, 0)
        await asyncio.to_thread(provider.shutdown)
