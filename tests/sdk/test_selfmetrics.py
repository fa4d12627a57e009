"""Self-metrics through the aiotlp.sdk processors: the exporter instruments name the exporter the application
gave (an aiotlp.sdk exporter by protocol, with the collector's address and port; a foreign one by its class),
never an internal adapter."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from aiotlp.sdk import BatchSpanProcessor, SpanExporter
from aiotlp.testing import CollectorThread


def exporter_attributes(reader: InMemoryMetricReader) -> dict[str, Any]:
    data = reader.get_metrics_data()
    assert data is not None
    for resource_metrics in data.resource_metrics:
        for scope_metrics in resource_metrics.scope_metrics:
            for metric in scope_metrics.metrics:
                if metric.name == "otel.sdk.exporter.span.exported":
                    return dict(metric.data.data_points[0].attributes)
    raise AssertionError("no otel.sdk.exporter.span.exported")


@pytest.mark.parametrize(
    ("protocol", "component_type"),
    [("grpc", "otlp_grpc_span_exporter"), ("http/protobuf", "otlp_http_span_exporter")],
)
@pytest.mark.parametrize("disk_queue", [False, True], ids=["memory", "disk-queue"])
def test_an_aiotlp_exporter_is_named_by_protocol_with_the_collectors_address(
    tmp_path: Path, protocol: str, component_type: str, disk_queue: bool
) -> None:
    reader = InMemoryMetricReader()
    meters = MeterProvider(metric_readers=[reader])
    with CollectorThread() as collector:
        endpoint = collector.grpc_endpoint if protocol == "grpc" else collector.http_endpoint + "/v1/traces"
        exporter = SpanExporter(endpoint=endpoint, protocol=protocol, insecure=True)
        processor = BatchSpanProcessor(exporter, meter_provider=meters, queue_dir=tmp_path if disk_queue else None)
        provider = TracerProvider(resource=Resource({"service.name": "tests"}), shutdown_on_exit=False)
        provider.add_span_processor(processor)
        with provider.get_tracer("tests").start_as_current_span("s"):
            pass
        assert provider.force_flush() is True
        attributes = exporter_attributes(reader)
        provider.shutdown()
    assert attributes["otel.component.type"] == component_type
    assert attributes["otel.component.name"].startswith(component_type + "/")
    assert attributes["server.address"] == "127.0.0.1"
    assert attributes["server.port"] == exporter.config.for_signal("traces").port
    meters.shutdown()


def test_a_foreign_exporter_is_named_by_its_class() -> None:
    reader = InMemoryMetricReader()
    meters = MeterProvider(metric_readers=[reader])
    processor = BatchSpanProcessor(InMemorySpanExporter(), meter_provider=meters)
    provider = TracerProvider(shutdown_on_exit=False)
    provider.add_span_processor(processor)
    with provider.get_tracer("tests").start_as_current_span("s"):
        pass
    assert provider.force_flush() is True
    attributes = exporter_attributes(reader)
    assert attributes["otel.component.type"] == (
        "opentelemetry.sdk.trace.export.in_memory_span_exporter.InMemorySpanExporter"
    )
    assert "server.address" not in attributes
    provider.shutdown()
    meters.shutdown()
