"""aiotlp's SDK processors with the disk queue: a batch written to disk is `persisted`, not `exported`, until the
queue delivers it, in the processor's statistics() and in its self-metrics (inflight until then). A dead collector:
nothing exported, all on disk; a live one: all exported, nothing left on disk."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import pytest
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider

from aiotlp import RetryPolicy
from aiotlp.sdk import BatchSpanProcessor, SpanExporter
from aiotlp.testing import CollectorThread, free_port

SPANS = 40


def run(endpoint: str, queue_dir: Path, reader: InMemoryMetricReader, how: str) -> BatchSpanProcessor:
    """End SPANS spans through an aiotlp processor with the disk queue (``queue_dir=`` or AIOTLP_QUEUE_DIR),
    flush, shut down; the processor is returned for its statistics."""
    exporter = SpanExporter(
        endpoint + "/v1/traces",
        timeout=2,
        retry=RetryPolicy(max_attempts=1),
        environ={"AIOTLP_QUEUE_DIR": str(queue_dir)} if how == "variable" else {},
    )
    processor = BatchSpanProcessor(
        exporter,
        schedule_delay_millis=60_000,
        meter_provider=MeterProvider(metric_readers=[reader]),
        queue_dir=queue_dir if how == "argument" else None,
    )
    provider = TracerProvider(resource=Resource({"service.name": "tests"}), shutdown_on_exit=False)
    provider.add_span_processor(processor)
    tracer = provider.get_tracer("tests")
    for n in range(SPANS):
        with tracer.start_as_current_span(f"job {n}"):
            pass
    assert provider.force_flush(10_000) is True  # written and fsync-ed
    provider.shutdown()
    return processor


def exporter_points(reader: InMemoryMetricReader) -> dict[str, list[tuple[int, dict[str, Any]]]]:
    data = reader.get_metrics_data()
    assert data is not None
    return {
        metric.name: [(point.value, dict(point.attributes or {})) for point in metric.data.data_points]
        for resource_metrics in data.resource_metrics
        for scope_metrics in resource_metrics.scope_metrics
        for metric in scope_metrics.metrics
        if metric.name.startswith("otel.sdk.exporter.span.")
    }


@pytest.mark.parametrize("how", ["argument", "variable"])
def test_a_dead_collector_nothing_is_exported_all_is_persisted(
    tmp_path: Path, how: str, caplog: pytest.LogCaptureFixture
) -> None:
    reader = InMemoryMetricReader()
    with caplog.at_level(logging.WARNING, logger="aiotlp"):
        processor = run(f"http://127.0.0.1:{free_port()}", tmp_path, reader, how)
    stats = processor.statistics()
    assert (stats.produced, stats.exported, stats.persisted, stats.failed) == (SPANS, 0, SPANS, 0)
    assert stats.balanced
    points = exporter_points(reader)
    assert [
        value for value, attributes in points["otel.sdk.exporter.span.exported"] if not attributes.get("error.type")
    ] == [0]
    assert [value for value, _ in points["otel.sdk.exporter.span.inflight"]] == [SPANS]
    # the shutdown says where the spans are, not that they failed
    assert f"{SPANS} spans kept on disk for the next start" in caplog.text
    assert "failed to export" not in caplog.text


def test_a_live_collector_all_is_exported_nothing_persisted(tmp_path: Path) -> None:
    reader = InMemoryMetricReader()
    with CollectorThread() as collector:
        processor = run(collector.http_endpoint, tmp_path, reader, "argument")  # the shutdown delivers the queue
        assert len(collector.spans()) == SPANS
    stats = processor.statistics()
    assert (stats.produced, stats.exported, stats.persisted, stats.failed) == (SPANS, SPANS, 0, 0)
    assert stats.balanced
    points = exporter_points(reader)
    assert [
        value for value, attributes in points["otel.sdk.exporter.span.exported"] if not attributes.get("error.type")
    ] == [SPANS]
    assert [value for value, _ in points["otel.sdk.exporter.span.inflight"]] == [0]


def test_without_the_disk_queue_exported_is_what_the_collector_took(tmp_path: Path) -> None:
    reader = InMemoryMetricReader()
    with CollectorThread() as collector:
        exporter = SpanExporter(collector.http_endpoint + "/v1/traces")
        processor = BatchSpanProcessor(exporter, meter_provider=MeterProvider(metric_readers=[reader]))
        provider = TracerProvider(shutdown_on_exit=False)
        provider.add_span_processor(processor)
        for n in range(SPANS):
            with provider.get_tracer("tests").start_as_current_span(f"job {n}"):
                pass
        assert provider.force_flush(10_000) is True
        provider.shutdown()
    stats = processor.statistics()
    assert (stats.exported, stats.persisted) == (SPANS, 0)
