"""Self-metrics: semantic-convention names, units, attributes and values, read with the OpenTelemetry SDK."""

from __future__ import annotations

import gc
import weakref
from collections.abc import Iterator
from typing import Any

import pytest
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from tests.processing.helpers import ControlledExporter, make_logs, make_metric, make_spans, otlp_exporter

from aiotlp import RejectedError
from aiotlp.model import Signal
from aiotlp.processing import BatchProcessor
from aiotlp.testing import RecordingExporter, ScriptedTransport

pytestmark = pytest.mark.looptime


@pytest.fixture
def reader() -> Iterator[InMemoryMetricReader]:
    reader = InMemoryMetricReader()
    provider = MeterProvider(metric_readers=[reader])
    reader.provider = provider  # type: ignore[attr-defined]
    yield reader
    provider.shutdown()


def collect(reader: InMemoryMetricReader) -> dict[str, Any]:
    data = reader.get_metrics_data()
    assert data is not None
    metrics: dict[str, Any] = {}
    for resource_metrics in data.resource_metrics:
        for scope_metrics in resource_metrics.scope_metrics:
            assert scope_metrics.scope.name == "aiotlp.processing"
            for metric in scope_metrics.metrics:
                metrics[metric.name] = metric
    return metrics


def points(metric: Any, key: str = "error.type") -> dict[str | None, Any]:
    """Data points by the value of attribute ``key`` (None when absent)."""
    return {dict(p.attributes).get(key): p for p in metric.data.data_points}


async def test_span_processor_metrics(reader: InMemoryMetricReader) -> None:
    exporter = ControlledExporter(hold=True)
    provider = reader.provider  # type: ignore[attr-defined]
    p = BatchProcessor(exporter, Signal.TRACES, max_queue_size=4, max_export_batch_size=2, meter_provider=provider)  # type: ignore[arg-type]
    p.start()
    for span in make_spans(6):  # 4 queued, 2 dropped
        p.put_nowait(span)
    await exporter.wait_calls(1)  # one batch of 2 in flight

    metrics = collect(reader)
    prefix = "otel.sdk.processor.span"
    assert {f"{prefix}.queue.size", f"{prefix}.queue.capacity", f"{prefix}.processed"} <= set(metrics)
    assert {"otel.sdk.exporter.span.exported", "otel.sdk.exporter.span.inflight"} <= set(metrics)
    size = metrics[f"{prefix}.queue.size"]
    assert size.unit == "{span}"
    (point,) = size.data.data_points
    assert point.value == 2
    attributes = dict(point.attributes)
    assert attributes["otel.component.type"] == "batching_span_processor"
    assert attributes["otel.component.name"].startswith("batching_span_processor/")
    assert metrics[f"{prefix}.queue.capacity"].data.data_points[0].value == 4
    processed = points(metrics[f"{prefix}.processed"])
    assert processed[None].value == 2  # handed to the exporter
    assert processed["queue_full"].value == 2
    assert metrics[f"{prefix}.processed"].data.is_monotonic
    inflight = metrics["otel.sdk.exporter.span.inflight"].data.data_points[0]
    assert inflight.value == 2
    assert dict(inflight.attributes)["otel.component.type"].endswith("ControlledExporter")

    exporter.release_all()
    await p.shutdown()
    assert not p.put_nowait(make_spans(1)[0])

    metrics = collect(reader)
    processed = points(metrics[f"{prefix}.processed"])
    assert (processed[None].value, processed["queue_full"].value, processed["already_shutdown"].value) == (4, 2, 1)
    exported = points(metrics["otel.sdk.exporter.span.exported"])
    assert exported[None].value == 4
    duration = metrics["otel.sdk.exporter.operation.duration"]
    assert duration.unit == "s"
    (point,) = duration.data.data_points
    assert point.count == 2  # one per export call
    assert "error.type" not in dict(point.attributes)


async def test_exporter_failures_carry_error_type(reader: InMemoryMetricReader) -> None:
    exporter = RecordingExporter()
    exporter.fail_with = RejectedError("no", status=400)
    p = BatchProcessor(exporter, Signal.LOGS, meter_provider=reader.provider)  # type: ignore[attr-defined]
    for record in make_logs(3):
        p.put_nowait(record)
    await p.force_flush()
    metrics = collect(reader)
    assert "otel.sdk.processor.log.queue.size" in metrics
    exported = points(metrics["otel.sdk.exporter.log.exported"])
    assert exported[None].value == 0
    assert exported["RejectedError"].value == 3
    assert metrics["otel.sdk.exporter.log.exported"].unit == "{log_record}"
    duration = points(metrics["otel.sdk.exporter.operation.duration"])
    assert duration["RejectedError"].count == 1
    await p.shutdown()


async def test_metric_processor_has_only_exporter_metrics_with_server_attributes(
    reader: InMemoryMetricReader,
) -> None:
    transport = ScriptedTransport()
    exporter = otlp_exporter(transport, endpoint="http://collector.example:4318")
    p = BatchProcessor(exporter, Signal.METRICS, meter_provider=reader.provider)  # type: ignore[attr-defined]
    p.put_nowait(make_metric(3))
    await p.force_flush()
    metrics = collect(reader)
    assert not any(name.startswith("otel.sdk.processor.") for name in metrics)
    exported = metrics["otel.sdk.exporter.metric_data_point.exported"]
    assert exported.unit == "{data_point}"
    (point,) = exported.data.data_points
    assert point.value == 3
    attributes = dict(point.attributes)
    assert attributes["otel.component.type"] == "otlp_http_metric_exporter"
    assert (attributes["server.address"], attributes["server.port"]) == ("collector.example", 4318)
    assert "otel.sdk.exporter.metric_data_point.inflight" in metrics
    await p.shutdown()


async def test_the_meter_provider_does_not_keep_a_processor_alive(reader: InMemoryMetricReader) -> None:
    p = BatchProcessor(RecordingExporter(), Signal.TRACES, meter_provider=reader.provider)  # type: ignore[attr-defined]
    p.put_nowait(make_spans(1)[0])
    await p.shutdown()
    assert "otel.sdk.processor.span.queue.size" in collect(reader)
    processor = weakref.ref(p)
    del p
    gc.collect()
    assert processor() is None
    reporting = {name for name, metric in collect(reader).items() if metric.data.data_points}
    assert reporting == {"otel.sdk.exporter.operation.duration"}  # the callbacks observe nothing any more
