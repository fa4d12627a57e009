"""The acceptance test of docs/migration.md: migrating from the official exporters is an import change.

A synchronous script (traces, logs and metrics) and a FastAPI app (instrumented, driven by Starlette's TestClient)
are written once as templates; the official gRPC or HTTP exporters' imports, or aiotlp's (``aiotlp.sdk.grpc``,
``aiotlp.sdk.http``), are the *only* difference between the two runs. Each runs in a child interpreter against a
FakeCollector, and what arrived is compared after decoding: resources, scopes, names, kinds, attributes, events,
statuses, log bodies and severities, metric points and their values, and counts. Ids and timestamps are left out;
how the items were cut into requests is not compared (the batching is the SDK processors' in both runs).
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from typing import Any

import pytest
from google.protobuf.json_format import MessageToDict

from aiotlp.testing import FakeCollector

# One import line per class on both sides: the scripts' line numbers (in the logs' code.line.number) stay equal.
IMPORTS = {
    ("official", "grpc"): (
        "from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter\n"
        "from opentelemetry.exporter.otlp.proto.grpc._log_exporter import OTLPLogExporter\n"
        "from opentelemetry.exporter.otlp.proto.grpc.metric_exporter import OTLPMetricExporter\n"
    ),
    ("aiotlp", "grpc"): (
        "from aiotlp.sdk.grpc import OTLPSpanExporter\n"
        "from aiotlp.sdk.grpc import OTLPLogExporter\n"
        "from aiotlp.sdk.grpc import OTLPMetricExporter\n"
    ),
    ("official", "http"): (
        "from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter\n"
        "from opentelemetry.exporter.otlp.proto.http._log_exporter import OTLPLogExporter\n"
        "from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter\n"
    ),
    ("aiotlp", "http"): (
        "from aiotlp.sdk.http import OTLPSpanExporter\n"
        "from aiotlp.sdk.http import OTLPLogExporter\n"
        "from aiotlp.sdk.http import OTLPMetricExporter\n"
    ),
}

# How each protocol's official exporters are usually called: gRPC with host:port and insecure=True, HTTP with
# the signal's full URL. The same calls for aiotlp.
EXPORTERS = {
    "grpc": """
ENDPOINT = sys.argv[1]
span_exporter = OTLPSpanExporter(endpoint=ENDPOINT, insecure=True)
log_exporter = OTLPLogExporter(endpoint=ENDPOINT, insecure=True)
metric_exporter = OTLPMetricExporter(endpoint=ENDPOINT, insecure=True)
""",
    "http": """
ENDPOINT = sys.argv[1]
span_exporter = OTLPSpanExporter(endpoint=ENDPOINT + "/v1/traces")
log_exporter = OTLPLogExporter(endpoint=ENDPOINT + "/v1/logs")
metric_exporter = OTLPMetricExporter(endpoint=ENDPOINT + "/v1/metrics")
""",
}

SETUP = """
import logging
import sys

from opentelemetry import metrics, trace
from opentelemetry._logs import set_logger_provider
from opentelemetry.sdk._logs import LoggerProvider, LoggingHandler
from opentelemetry.sdk._logs.export import BatchLogRecordProcessor
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import PeriodicExportingMetricReader
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
{imports}
{exporters}
# a fixed instance id (else a random one per process)
resource = Resource.create({{"service.name": "shop", "deployment.environment": "test", "service.instance.id": "1"}})
tracer_provider = TracerProvider(resource=resource)
tracer_provider.add_span_processor(BatchSpanProcessor(span_exporter))
trace.set_tracer_provider(tracer_provider)
logger_provider = LoggerProvider(resource=resource)
logger_provider.add_log_record_processor(BatchLogRecordProcessor(log_exporter))
set_logger_provider(logger_provider)
logging.getLogger("shop").addHandler(LoggingHandler(logger_provider=logger_provider))
logging.getLogger("shop").setLevel(logging.INFO)
reader = PeriodicExportingMetricReader(metric_exporter, export_interval_millis=3_600_000)
meter_provider = MeterProvider(resource=resource, metric_readers=[reader])
metrics.set_meter_provider(meter_provider)


def shutdown():
    tracer_provider.shutdown()
    logger_provider.shutdown()
    meter_provider.shutdown()
"""

SCRIPT = """
tracer = trace.get_tracer("shop.checkout", "1.2.3")
meter = metrics.get_meter("shop.metrics", "0.1")
orders = meter.create_counter("orders", unit="1", description="orders placed")
latency = meter.create_histogram("latency", unit="ms")
queue = meter.create_up_down_counter("queue")
log = logging.getLogger("shop")

for number in range(5):
    orders.add(1, {"region": "eu" if number % 2 else "us"})
    latency.record(number * 10.5, {"route": "/checkout"})
    queue.add(number - 2)
    with tracer.start_as_current_span("checkout", kind=trace.SpanKind.SERVER) as span:
        span.set_attribute("order.number", number)
        span.set_attribute("order.items", [1, 2, 3])
        span.add_event("paid", {"amount": 9.99})
        with tracer.start_as_current_span("charge") as child:
            child.set_attribute("card", "visa")
            if number == 3:
                child.set_status(trace.Status(trace.StatusCode.ERROR, "declined"))
        log.warning("order %d placed", number, extra={"order.number": number})
shutdown()
print("done")
"""

FASTAPI_APP = """
from fastapi import FastAPI
from fastapi.testclient import TestClient
from opentelemetry.instrumentation.fastapi import FastAPIInstrumentor

app = FastAPI()
log = logging.getLogger("shop")


@app.get("/items/{item_id}")
async def read_item(item_id: int) -> dict:
    log.info("reading item %d", item_id)
    return {"item_id": item_id}


FastAPIInstrumentor.instrument_app(app, tracer_provider=tracer_provider, meter_provider=meter_provider)
with TestClient(app) as client:
    for item_id in (1, 2, 42):
        assert client.get(f"/items/{item_id}").json() == {"item_id": item_id}
    assert client.get("/missing").status_code == 404
shutdown()
print("done")
"""

# Left out of the comparison: ids, timestamps, and values that depend on time (a histogram's bucket of
# durations, the server's duration histogram's sum, min and max).
IGNORED = {
    "traceId",
    "spanId",
    "parentSpanId",
    "startTimeUnixNano",
    "endTimeUnixNano",
    "timeUnixNano",
    "observedTimeUnixNano",
    "flags",
    "exemplars",
}


def _clean(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _clean(v) for k, v in sorted(value.items()) if k not in IGNORED}
    if isinstance(value, list):
        return [_clean(v) for v in value]
    return value


def _timing_free(metric: dict[str, Any]) -> dict[str, Any]:
    if metric["name"].endswith(".duration"):  # how long the requests took: differs from run to run
        for point in metric.get("histogram", {}).get("dataPoints", []):
            for key in ("sum", "min", "max", "bucketCounts"):
                point.pop(key, None)
    return metric


def received(collector: FakeCollector) -> dict[str, list[str]]:
    """Every item that arrived, as a canonical JSON text with its resource and scope, sorted per signal."""
    items: dict[str, list[str]] = {"traces": [], "logs": [], "metrics": []}
    for request in collector.received:
        message = _clean(MessageToDict(request.message))
        for resource_key, scope_key, item_key in (
            ("resourceSpans", "scopeSpans", "spans"),
            ("resourceLogs", "scopeLogs", "logRecords"),
            ("resourceMetrics", "scopeMetrics", "metrics"),
        ):
            for resource in message.get(resource_key, []):
                for scope in resource.get(scope_key, []):
                    for item in scope.get(item_key, []):
                        if item_key == "metrics":
                            item = _timing_free(item)
                        whole = {"resource": resource.get("resource"), "scope": scope.get("scope"), "item": item}
                        items[request.signal.value].append(json.dumps(whole, sort_keys=True))
    return {signal: sorted(texts) for signal, texts in items.items()}


def run(code: str, endpoint: str) -> str:
    env = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}
    done = subprocess.run(
        [sys.executable, "-c", code, endpoint], capture_output=True, text=True, timeout=120, env=env, check=False
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.strip().endswith("done"), done.stdout + done.stderr
    return done.stderr


async def migrate(body: str, protocol: str) -> dict[str, dict[str, list[str]]]:
    """What arrived from the official exporters and from aiotlp's, the program otherwise the same."""
    results: dict[str, dict[str, list[str]]] = {}
    for who in ("official", "aiotlp"):
        code = SETUP.format(imports=IMPORTS[who, protocol], exporters=EXPORTERS[protocol]) + body
        async with FakeCollector() as collector:
            grpc_endpoint = collector.grpc_endpoint.removeprefix("http://")
            endpoint = grpc_endpoint if protocol == "grpc" else collector.http_endpoint
            stderr = await asyncio.to_thread(run, code, endpoint)
            assert "Traceback" not in stderr, stderr
            assert {r.transport for r in collector.received} == {protocol}
            results[who] = received(collector)
    return results


def test_the_templates_differ_only_in_their_imports() -> None:
    for protocol in ("grpc", "http"):
        official = SETUP.format(imports=IMPORTS["official", protocol], exporters=EXPORTERS[protocol])
        ours = SETUP.format(imports=IMPORTS["aiotlp", protocol], exporters=EXPORTERS[protocol])
        differing = set(official.splitlines()) ^ set(ours.splitlines())
        assert differing and all(line.startswith("from ") and " import " in line for line in differing)


@pytest.mark.parametrize("protocol", ["grpc", "http"])
async def test_a_script_migrates_by_changing_imports(protocol: str) -> None:
    results = await migrate(SCRIPT, protocol)
    official, ours = results["official"], results["aiotlp"]
    assert (len(official["traces"]), len(official["logs"])) == (10, 5)
    assert {json.loads(m)["item"]["name"] for m in official["metrics"]} == {"orders", "latency", "queue"}
    assert ours == official


@pytest.mark.parametrize("protocol", ["grpc", "http"])
async def test_a_fastapi_app_migrates_by_changing_imports(protocol: str) -> None:
    results = await migrate(FASTAPI_APP, protocol)
    official, ours = results["official"], results["aiotlp"]
    names = {json.loads(span)["item"]["name"] for span in official["traces"]}
    assert "GET /items/{item_id}" in names
    assert len(official["logs"]) == 3
    assert official["metrics"]
    assert ours == official
