"""aiotlp's SDK batch processors keep at least two exports in flight to aiotlp's own exporters on the bridge (two over
OTLP/HTTP, ``sdk._bridge.EXPORTS_IN_FLIGHT``; four over OTLP/gRPC, checked in ``test_sdk_exports_in_flight_grpc``),
and one to any other SDK exporter (the SDK's rule: ``export`` is never called concurrently on one instance).

An application on a plain thread makes spans; the processor exports them on the bridge, over each client.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Sequence
from typing import Any

import pytest
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SpanExporter as SdkSpanExporter
from opentelemetry.sdk.trace.export import SpanExportResult

from aiotlp.sdk import BatchSpanProcessor, SpanExporter
from aiotlp.sdk._bridge import EXPORTS_IN_FLIGHT, LANE_EXPORTS_IN_FLIGHT
from aiotlp.testing import CollectorThread, Reply
from aiotlp.transport import lane_available, make_transport


def make_spans(provider: TracerProvider, n: int) -> None:
    tracer = provider.get_tracer("app")
    for i in range(n):
        with tracer.start_as_current_span(f"span {i}"):
            pass


@pytest.mark.parametrize(("protocol", "client"), [("grpc", "h2"), ("grpc", "grpcio"), ("http/protobuf", None)])
def test_two_exports_in_flight_to_aiotlps_exporter(protocol: str, client: str | None) -> None:
    assert EXPORTS_IN_FLIGHT == 2
    with CollectorThread() as collector:
        # the first two requests are answered after 3 s: both must arrive before either is answered
        collector.script(Reply(delay=3.0), Reply(delay=3.0))
        if protocol == "grpc":
            exporter = SpanExporter(
                collector.grpc_endpoint,
                protocol="grpc",
                transport_factory=lambda config: make_transport(config, grpc_implementation=client),  # type: ignore[arg-type]
            )
        else:
            exporter = SpanExporter(collector.http_endpoint + "/v1/traces", protocol="http/protobuf")
        processor = BatchSpanProcessor(exporter)
        provider = TracerProvider()
        provider.add_span_processor(processor)
        make_spans(provider, 1024)  # two full batches
        collector.wait_for(lambda c: len(c.received) >= 2, timeout=2.5)
        stats = processor.statistics()
        assert (stats.in_flight, stats.exported) == (1024, 0)
        make_spans(provider, 1000)
        provider.shutdown()
        stats = processor.statistics()
        assert (stats.produced, stats.exported, stats.queued, stats.in_flight) == (2024, 2024, 0, 0)
        assert sum(stats.dropped.values()) == 0
        assert len(collector.spans()) == 2024


class SlowSdkExporter(SdkSpanExporter):
    """A foreign SDK exporter: its first call waits until a second starts (it must not), or 1 s."""

    def __init__(self) -> None:
        self.active = self.max_active = self.exported = 0
        self.lock = threading.Lock()
        self.second = threading.Event()
        self.calls = 0

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        with self.lock:
            self.calls += 1
            first = self.calls == 1
            self.active += 1
            self.max_active = max(self.max_active, self.active)
            if not first:
                self.second.set()
        try:
            if first:
                self.second.wait(1.0)
        finally:
            with self.lock:
                self.active -= 1
                self.exported += len(spans)
        return SpanExportResult.SUCCESS

    def shutdown(self) -> None:
        pass

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return True


def test_one_export_at_a_time_to_a_foreign_exporter() -> None:
    exporter = SlowSdkExporter()
    processor = BatchSpanProcessor(exporter)
    provider = TracerProvider()
    provider.add_span_processor(processor)
    make_spans(provider, 1024)
    provider.shutdown()
    assert exporter.max_active == 1
    assert exporter.exported == 1024
    stats: Any = processor.statistics()
    assert (stats.exported, stats.in_flight, stats.queued) == (1024, 0, 0)


async def test_one_export_at_a_time_on_the_applications_loop() -> None:
    """An asyncio application: its processor exports on its own loop, one call at a time (no GIL to wait for)."""
    with CollectorThread() as collector:
        collector.script(Reply(delay=1.5), Reply(delay=1.5))
        processor = BatchSpanProcessor(SpanExporter(collector.http_endpoint + "/v1/traces", protocol="http/protobuf"))
        provider = TracerProvider()
        provider.add_span_processor(processor)
        make_spans(provider, 1024)  # two full batches, on this loop
        with pytest.raises(TimeoutError):  # the second request waits for the first reply
            await asyncio.to_thread(collector.wait_for, lambda c: len(c.received) >= 2, 1.0)
        assert processor.statistics().in_flight == 512
        assert (await processor.aforce_flush(30_000)).status.value == "success"
        stats = processor.statistics()
        assert (stats.exported, stats.in_flight, stats.queued) == (1024, 0, 0)
        await asyncio.to_thread(provider.shutdown)


def test_max_concurrent_exports_is_validated_and_settable() -> None:
    from aiotlp import ConfigurationError
    from aiotlp.model import Signal
    from aiotlp.processing import BatchProcessor
    from aiotlp.testing import RecordingExporter

    p: BatchProcessor[object] = BatchProcessor(RecordingExporter(), Signal.TRACES)  # type: ignore[arg-type]
    assert p.max_concurrent_exports == 1
    p.max_concurrent_exports = 3
    assert p.max_concurrent_exports == 3
    for bad in (0, -1, 1.5, True, "2"):
        with pytest.raises(ConfigurationError, match="max_concurrent_exports"):
            p.max_concurrent_exports = bad  # type: ignore[assignment]
    assert p.max_concurrent_exports == 3


def test_exports_in_flight_per_exporter_on_the_bridge(tmp_path: Any) -> None:
    """On the bridge: two to aiotlp's own exporter (four where the native lane sends: one per lane thread); one with
    the disk queue (a DurableExporter) and one to a foreign SDK exporter."""
    own = LANE_EXPORTS_IN_FLIGHT if lane_available() else 2
    with CollectorThread() as collector:
        cases = {
            "aiotlp": (SpanExporter(collector.http_endpoint + "/v1/traces", protocol="http/protobuf"), own),
            "queue_dir": (
                SpanExporter(collector.http_endpoint + "/v1/traces", protocol="http/protobuf", queue_dir=tmp_path),
                1,
            ),
            "foreign": (SlowSdkExporter(), 1),
        }
        for name, (exporter, expected) in cases.items():
            processor = BatchSpanProcessor(exporter)  # type: ignore[arg-type]
            provider = TracerProvider()
            provider.add_span_processor(processor)
            make_spans(provider, 10)  # the first span binds the processor to the bridge
            assert processor._processor.max_concurrent_exports == expected, name
            provider.shutdown()
            assert processor.statistics().exported == 10, name
