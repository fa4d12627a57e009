"""Seeing what happened under auto-configuration: `opentelemetry-instrument` with OTEL_TRACES_EXPORTER=aiotlp puts
the official BatchSpanProcessor in front of aiotlp's exporter. Its statistics() are reached through the provider's
processor (and aiotlp.sdk.exporters()), and OTEL_PYTHON_SDK_INTERNAL_METRICS_ENABLED=true (the SDK's documented
switch for its self-metrics) turns on the exporter's otel.sdk.exporter.* instruments, sent with the application's
metrics. With the disk queue and a dead collector: nothing is counted as delivered, the spans are on disk.

The SDK's privates, on purpose: the app finds the official processor where a user of
``opentelemetry-instrument`` does, in the provider's ``_active_span_processor._span_processors`` (the SDK has no
public accessor), and checks that ``aiotlp.sdk.exporters()`` gives the same exporter.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from aiotlp.model import Signal
from aiotlp.testing import CollectorThread, free_port

INSTRUMENT = Path(sys.executable).parent / "opentelemetry-instrument"
SPANS = 25

APP = f"""
import json

from opentelemetry import metrics, trace

import aiotlp.sdk

tracer = trace.get_tracer("app")
for n in range({SPANS}):
    with tracer.start_as_current_span(f"job {{n}}"):
        pass
provider = trace.get_tracer_provider()
assert provider.force_flush(10_000)
# where a user looks: the provider's processor (the official BatchSpanProcessor) holds the exporter
(processor,) = provider._active_span_processor._span_processors
stats = processor.span_exporter.statistics()
assert [e.statistics().signal.value for e in aiotlp.sdk.exporters()] == ["traces", "metrics"]
assert aiotlp.sdk.exporters()[0] is processor.span_exporter
print(json.dumps({{
    "exporter": type(processor.span_exporter).__module__,
    "items": stats.items, "accepted": stats.accepted, "kept_on_disk": stats.kept_on_disk,
    "delivered": stats.delivered, "on_disk": stats.on_disk, "balanced": stats.balanced,
}}))
assert metrics.get_meter_provider().force_flush(10_000)
"""


def run_app(tmp_path: Path, **variables: str) -> dict[str, Any]:
    (tmp_path / "app.py").write_text(APP, encoding="utf-8")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "AIOTLP_"))}
    env.update(
        OTEL_SERVICE_NAME="shop",
        OTEL_TRACES_EXPORTER="aiotlp",
        OTEL_METRICS_EXPORTER="aiotlp",
        OTEL_LOGS_EXPORTER="none",
        OTEL_METRIC_EXPORT_INTERVAL="600000",  # only the app's own force_flush exports metrics
        OTEL_EXPORTER_OTLP_TIMEOUT="2000",
        **variables,
    )
    done = subprocess.run(
        [str(INSTRUMENT), sys.executable, "app.py"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def self_metrics(collector: CollectorThread, name: str) -> list[tuple[int, dict[str, str]]]:
    """(value, attributes) of each data point of the sum ``name`` the collector received, in arrival order."""
    points = []
    metrics = [
        metric
        for request in collector.requests(Signal.METRICS)
        for resource_metrics in request.message.resource_metrics
        for scope_metrics in resource_metrics.scope_metrics
        for metric in scope_metrics.metrics
    ]
    for metric in metrics:
        if metric.name == name:
            for point in metric.sum.data_points:
                attributes = {kv.key: kv.value.string_value or str(kv.value.int_value) for kv in point.attributes}
                points.append((point.as_int, attributes))
    return points


pytestmark = pytest.mark.skipif(
    not INSTRUMENT.exists(), reason="opentelemetry-distro is not installed (the test extra has it)"
)


@pytest.mark.parametrize("protocol", ["grpc", "http/protobuf"])
def test_statistics_and_self_metrics_under_opentelemetry_instrument(tmp_path: Path, protocol: str) -> None:
    with CollectorThread() as collector:
        endpoint = collector.grpc_endpoint if protocol == "grpc" else collector.http_endpoint
        stats = run_app(
            tmp_path,
            OTEL_EXPORTER_OTLP_ENDPOINT=endpoint,
            OTEL_EXPORTER_OTLP_PROTOCOL=protocol,
            OTEL_PYTHON_SDK_INTERNAL_METRICS_ENABLED="true",
        )
        assert len(collector.spans()) == SPANS
        exported = self_metrics(collector, "otel.sdk.exporter.span.exported")
        processed = self_metrics(collector, "otel.sdk.processor.span.processed")  # the official processor's
    assert stats == {
        "exporter": "aiotlp.sdk._exporters",
        "items": SPANS,
        "accepted": SPANS,
        "kept_on_disk": 0,
        "delivered": SPANS,
        "on_disk": 0,
        "balanced": True,
    }
    component = "otlp_grpc_span_exporter" if protocol == "grpc" else "otlp_http_span_exporter"
    (value, attributes), *_ = exported
    assert value == SPANS
    assert attributes["otel.component.type"] == component
    assert attributes["server.address"] == "127.0.0.1"
    assert "error.type" not in attributes
    assert processed, "the switch turns the official processor's self-metrics on too"


def test_without_the_switch_there_are_no_exporter_self_metrics(tmp_path: Path) -> None:
    with CollectorThread() as collector:
        stats = run_app(tmp_path, OTEL_EXPORTER_OTLP_ENDPOINT=collector.grpc_endpoint)
        assert len(collector.spans()) == SPANS
        assert self_metrics(collector, "otel.sdk.exporter.span.exported") == []
    assert stats["accepted"] == SPANS


def test_with_the_disk_queue_and_a_dead_collector_nothing_counts_as_delivered(tmp_path: Path) -> None:
    with CollectorThread() as collector:  # receives the metrics only: the traces' collector is dead
        stats = run_app(
            tmp_path,
            OTEL_EXPORTER_OTLP_PROTOCOL="http/protobuf",
            OTEL_EXPORTER_OTLP_TRACES_ENDPOINT=f"http://127.0.0.1:{free_port()}/v1/traces",
            OTEL_EXPORTER_OTLP_METRICS_ENDPOINT=collector.http_endpoint + "/v1/metrics",
            OTEL_PYTHON_SDK_INTERNAL_METRICS_ENABLED="true",
            AIOTLP_QUEUE_DIR=str(tmp_path / "queue"),
        )
        exported = self_metrics(collector, "otel.sdk.exporter.span.exported")
        inflight = self_metrics(collector, "otel.sdk.exporter.span.inflight")
    assert stats == {
        "exporter": "aiotlp.sdk._exporters",
        "items": SPANS,
        "accepted": 0,
        "kept_on_disk": SPANS,
        "delivered": 0,
        "on_disk": SPANS,
        "balanced": True,
    }
    # each collection (the app's force_flush, the SDK's shutdown at exit) says the same
    assert {value for value, attributes in exported if "error.type" not in attributes} == {0}
    assert {value for value, _ in inflight} == {SPANS}  # on disk: handed over, not exported yet
    assert os.listdir(tmp_path / "queue" / "traces")


ONE_SERIES = """
import sys

from opentelemetry import metrics
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import TracerProvider

import aiotlp.sdk

reader = InMemoryMetricReader()
meters = MeterProvider(metric_readers=[reader])
metrics.set_meter_provider(meters)  # the exporter's own self-metrics would go here too
exporter = aiotlp.sdk.SpanExporter(endpoint=sys.argv[1] + "/v1/traces")
provider = TracerProvider(shutdown_on_exit=False)
provider.add_span_processor(aiotlp.sdk.BatchSpanProcessor(exporter, meter_provider=meters))
for n in range(10):
    with provider.get_tracer("app").start_as_current_span(f"job {n}"):
        pass
assert provider.force_flush(10_000)
points = [
    (point.value, dict(point.attributes))
    for resource_metrics in reader.get_metrics_data().resource_metrics
    for scope_metrics in resource_metrics.scope_metrics
    for metric in scope_metrics.metrics
    if metric.name == "otel.sdk.exporter.span.exported"
    for point in metric.data.data_points
]
print(len(points), points[0][0], points[0][1]["otel.component.name"])
provider.shutdown()
"""


def test_behind_aiotlps_processor_with_a_meter_provider_the_exporter_is_reported_once() -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "AIOTLP_"))}
    env["OTEL_PYTHON_SDK_INTERNAL_METRICS_ENABLED"] = "true"
    with CollectorThread() as collector:
        done = subprocess.run(
            [sys.executable, "-c", ONE_SERIES, collector.http_endpoint],
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
    assert done.returncode == 0, done.stdout + done.stderr
    count, value, name = done.stdout.split()
    assert (count, value) == ("1", "10")  # one series: the processor's, not the exporter's own beside it
    assert name.startswith("otlp_http_span_exporter/")
