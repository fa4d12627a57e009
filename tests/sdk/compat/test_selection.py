"""aiotlp's tracer provider selected the ways users select things (issue 16, docs/sdk.md), each in a child process:

- ``OTEL_PYTHON_CONFIGURATOR=aiotlp opentelemetry-instrument python app.py``: the SDK's auto-configuration on
  aiotlp's provider (metrics and logs as the SDK's configurator makes them), with ``OTEL_TRACES_EXPORTER=aiotlp``
  (aiotlp's processor and exporter) and with the distro's default ``otlp`` (the official exporter);
- without the variable, ``opentelemetry-instrument`` runs on the SDK's provider as before aiotlp was installed;
- ``OTEL_PYTHON_TRACER_PROVIDER=aiotlp python app.py``: the API's global provider, for a plain
  ``opentelemetry.trace.get_tracer(...)``.

Each app prints the classes of its global providers; its spans must reach a FakeCollector.

The entry points are read from the installed package's metadata, which ``pip install`` writes from
pyproject.toml. A development venv installed before they were declared lacks them, so the child processes get
that metadata as pip writes it (name, version and pyproject's entry points) ahead of the installed one.

The SDK's privates, on purpose: to print which processor and exporter the configuration made, the app walks the
provider's ``_active_span_processor._span_processors`` and the official processor's ``_batch_processor._exporter``
(the SDK has no public accessor), each through ``getattr`` with a default.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import tomllib

import aiotlp
from aiotlp.testing import FakeCollector

ROOT = Path(__file__).resolve().parents[3]
SRC = Path(aiotlp.__file__).resolve().parents[1]
INSTRUMENT = Path(sys.executable).parent / "opentelemetry-instrument"

SERVICE = """
import asyncio
import logging

import httpx
from fastapi import FastAPI
from opentelemetry import metrics, trace
from opentelemetry._logs import get_logger_provider

app = FastAPI()


@app.get("/items/{item_id}")
async def read_item(item_id: int) -> dict[str, int]:
    logging.getLogger("shop").warning("item %d asked for", item_id)
    with trace.get_tracer("shop").start_as_current_span("load item"):
        return {"item_id": item_id}


async def main() -> None:
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://shop") as client:
        assert (await client.get("/items/42")).json() == {"item_id": 42}


def name(thing: object) -> str:
    return type(thing).__module__ + "." + type(thing).__qualname__


def exporter(processor: object) -> object:
    inner = getattr(processor, "_batch_processor", processor)  # the SDK's BatchSpanProcessor keeps it there
    return getattr(inner, "span_exporter", None) or getattr(inner, "_exporter", None)


asyncio.run(main())
print("tracer=" + name(trace.get_tracer_provider()))
print("meter=" + name(metrics.get_meter_provider()))
print("logger=" + name(get_logger_provider()))
processors = getattr(trace.get_tracer_provider(), "_active_span_processor", None)
for processor in getattr(processors, "_span_processors", ()):
    print("processor=" + name(processor) + " " + name(exporter(processor)))
"""

PLAIN = """
from opentelemetry import trace

import aiotlp.sdk

tracer = trace.get_tracer("plain", "1.0")
provider = trace.get_tracer_provider()
provider.add_span_processor(aiotlp.sdk.BatchSpanProcessor(aiotlp.sdk.SpanExporter()))
with tracer.start_as_current_span("parent"):
    with tracer.start_as_current_span("child") as child:
        child.set_attribute("n", 1)
print("tracer=" + type(provider).__module__ + "." + type(provider).__qualname__)
# no shutdown: the provider's exit hook flushes
"""


def metadata(directory: Path) -> Path:
    """The package's metadata as pip writes it from pyproject.toml (name, version, entry points)."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    info = directory / f"aiotlp-{aiotlp.__version__}.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: aiotlp\nVersion: {aiotlp.__version__}\n")
    groups = {"console_scripts": project.get("scripts", {}), **project["entry-points"]}
    (info / "entry_points.txt").write_text(
        "".join(
            f"[{group}]\n" + "".join(f"{name} = {value}\n" for name, value in points.items()) + "\n"
            for group, points in groups.items()
        )
    )
    return directory


def environment(tmp_path: Path, collector: FakeCollector, **variables: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}
    env["PYTHONPATH"] = os.pathsep.join([str(metadata(tmp_path / "metadata")), str(SRC)])
    env.update(
        OTEL_SERVICE_NAME="shop",
        OTEL_EXPORTER_OTLP_ENDPOINT=collector.grpc_endpoint,  # opentelemetry-distro defaults the protocol to grpc
        OTEL_METRIC_EXPORT_INTERVAL="3600000",  # metrics only at shutdown
        **variables,
    )
    return env


async def run(tmp_path: Path, code: str, env: dict[str, str], instrument: bool = True) -> dict[str, list[str]]:
    (tmp_path / "app.py").write_text(code, encoding="utf-8")
    command = [str(INSTRUMENT), sys.executable, "app.py"] if instrument else [sys.executable, "app.py"]
    done = await asyncio.to_thread(
        subprocess.run, command, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=90, check=False
    )
    assert done.returncode == 0, done.stdout + done.stderr
    printed: dict[str, list[str]] = {}
    for line in done.stdout.splitlines():
        key, _, value = line.partition("=")
        printed.setdefault(key, []).append(value)
    printed["stderr"] = [done.stderr]
    return printed


def names(collector: FakeCollector) -> set[str]:
    return {span.name for span in collector.spans()}


def resource_of(collector: FakeCollector) -> dict[str, Any]:
    traces = [r for r in collector.received if r.signal.value == "traces"]
    resource = traces[0].message.resource_spans[0].resource
    return {kv.key: kv.value.string_value for kv in resource.attributes}


pytestmark = pytest.mark.skipif(
    not INSTRUMENT.exists(), reason="opentelemetry-distro is not installed (the test extra has it)"
)

AIOTLP_PROVIDER = "aiotlp.sdk._provider.TracerProvider"
SDK_PROVIDER = "opentelemetry.sdk.trace.TracerProvider"


async def test_configurator_aiotlp_with_aiotlp_exporters(tmp_path: Path, collector: FakeCollector) -> None:
    env = environment(
        tmp_path,
        collector,
        OTEL_PYTHON_CONFIGURATOR="aiotlp",
        OTEL_TRACES_EXPORTER="aiotlp",
        OTEL_METRICS_EXPORTER="aiotlp",
        OTEL_LOGS_EXPORTER="aiotlp",
    )
    printed = await run(tmp_path, SERVICE, env)
    assert printed["tracer"] == [AIOTLP_PROVIDER], printed
    # metrics and logs: the SDK's providers, as the SDK's configurator makes them
    assert printed["meter"] == ["opentelemetry.sdk.metrics._internal.MeterProvider"], printed
    assert printed["logger"][0].startswith("opentelemetry.sdk._logs"), printed
    assert printed["processor"] == ["aiotlp.sdk._processors.BatchSpanProcessor aiotlp.sdk._exporters.SpanExporter"]
    assert resource_of(collector)["service.name"] == "shop"
    assert {r.signal.value for r in collector.received} == {"traces", "metrics", "logs"}
    spans = {span.name: span for span in collector.spans()}
    assert spans["load item"].parent_span_id == spans["GET /items/{item_id}"].span_id
    (record,) = [r for r in collector.log_records() if "asked for" in str(r.body)]
    assert record.span_id == spans["GET /items/{item_id}"].span_id  # the logging instrumentation's handler


async def test_configurator_aiotlp_with_the_distros_default_exporter(tmp_path: Path, collector: FakeCollector) -> None:
    """OTEL_TRACES_EXPORTER unset: opentelemetry-distro's default ``otlp``, the official gRPC exporter behind the
    SDK's batch processor, on aiotlp's provider (a foreign processor)."""
    env = environment(tmp_path, collector, OTEL_PYTHON_CONFIGURATOR="aiotlp", OTEL_LOGS_EXPORTER="none")
    printed = await run(tmp_path, SERVICE, env)
    assert printed["tracer"] == [AIOTLP_PROVIDER], printed
    assert printed["processor"] == [
        "opentelemetry.sdk.trace.export.BatchSpanProcessor"
        " opentelemetry.exporter.otlp.proto.grpc.trace_exporter.OTLPSpanExporter"
    ], printed
    assert {"GET /items/{item_id}", "load item"} <= names(collector)
    assert {r.signal.value for r in collector.received} == {"traces", "metrics"}


async def test_without_the_variable_opentelemetry_instrument_runs_on_the_sdk(
    tmp_path: Path, collector: FakeCollector
) -> None:
    """Installing aiotlp changes nothing until it is asked for: the SDK's provider, configured from the same
    variables. aiotlp's metadata comes first on the path here, so its configurator is the one loaded, and hands
    over to opentelemetry-distro's."""
    env = environment(tmp_path, collector, OTEL_TRACES_EXPORTER="aiotlp", OTEL_LOGS_EXPORTER="none")
    printed = await run(tmp_path, SERVICE, env)
    assert printed["tracer"] == [SDK_PROVIDER], printed
    assert {"GET /items/{item_id}", "load item"} <= names(collector)


async def test_tracer_provider_variable_with_a_plain_get_tracer(tmp_path: Path, collector: FakeCollector) -> None:
    env = environment(tmp_path, collector, OTEL_PYTHON_TRACER_PROVIDER="aiotlp")
    env["OTEL_EXPORTER_OTLP_ENDPOINT"] = collector.http_endpoint  # aiotlp's default protocol: http/protobuf
    printed = await run(tmp_path, PLAIN, env, instrument=False)
    assert printed["tracer"] == [AIOTLP_PROVIDER], printed
    spans = {span.name: span for span in collector.spans()}
    assert set(spans) == {"parent", "child"}
    assert spans["child"].parent_span_id == spans["parent"].span_id
    assert resource_of(collector)["service.name"] == "shop"  # the provider's default resource reads the env


async def test_configurator_aiotlp_refuses_a_configuration_file(tmp_path: Path, collector: FakeCollector) -> None:
    """OTEL_CONFIG_FILE builds the SDK's own provider: with OTEL_PYTHON_CONFIGURATOR=aiotlp the configurator says
    which two variables conflict (opentelemetry-instrument logs it and runs the app unconfigured)."""
    config = tmp_path / "otel.yaml"
    config.write_text("file_format: '1.0'\n")
    env = environment(tmp_path, collector, OTEL_PYTHON_CONFIGURATOR="aiotlp", OTEL_CONFIG_FILE=str(config))
    printed = await run(tmp_path, SERVICE, env)
    assert "OTEL_CONFIG_FILE is set" in printed["stderr"][0], printed
    assert "OTEL_PYTHON_CONFIGURATOR=aiotlp" in printed["stderr"][0], printed
    assert printed["tracer"] == ["opentelemetry.trace.ProxyTracerProvider"], printed
    assert collector.received == []
