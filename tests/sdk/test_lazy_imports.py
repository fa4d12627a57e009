"""A configuration imports only the client it uses (not timed: ``benchmarks/import_time.py`` measures): ``import
aiotlp`` and ``import aiotlp.sdk`` import neither aiohttp nor grpcio nor h2, nor does making an exporter: its
client is imported when its first transport is made, or when aiotlp's processor (which exports on the
application's loop) is made; a gRPC export through the h2 client imports no HTTP/1.1 client; an HTTP export
imports neither gRPC client, and no aiohttp anywhere (the HTTP/1.1 client is aiotlp's own, ``aiotlp.transport._h1``).
A span exporter (built, or exporting, over HTTP and over gRPC) imports neither the metrics SDK nor the logs SDK: the
log and metric exporters are imported when first used, and still resolve by every public name and entry point.
Each in a fresh interpreter.

Private module names appear as the names ``sys.modules`` reports (``aiotlp.transport._h1``), and
``aiotlp.sdk._exporters`` is checked to resolve the lazy names it documents.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import textwrap

import pytest

from aiotlp.testing import FakeCollector

REPORT = """
import sys
names = ("aiohttp", "grpc", "h2", "aiotlp.transport._h1", "aiotlp.durable", "aiotlp.processing")
print(sorted(name for name in names if name in sys.modules))
"""


SDKS = """
import sys
print(sorted(name for name in ("opentelemetry.sdk.metrics", "opentelemetry.sdk._logs") if name in sys.modules))
"""


def imported(code: str, *args: str, report: str = REPORT) -> list[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}
    done = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code) + report, *args],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    result: list[str] = eval(done.stdout.strip().splitlines()[-1])
    return result


@pytest.mark.parametrize("statement", ["import aiotlp", "import aiotlp.sdk", "import aiotlp.sdk.grpc, aiotlp.sdk.http"])
def test_importing_aiotlp_imports_no_client(statement: str) -> None:
    assert imported(statement) == []


def test_public_names_still_resolve() -> None:
    code = """
    import aiotlp, aiotlp.sdk
    for name in aiotlp.__all__:
        getattr(aiotlp, name)
    for name in aiotlp.sdk.__all__:
        getattr(aiotlp.sdk, name)
    assert set(aiotlp.__all__) <= set(dir(aiotlp))
    """
    assert set(imported(code)) == {"aiotlp.durable", "aiotlp.processing"}  # the names' own modules


@pytest.mark.parametrize(
    "statement",
    [
        "aiotlp.sdk.SpanExporter(protocol='grpc')",
        "aiotlp.sdk.grpc.OTLPMetricExporter()",
        "aiotlp.sdk.LogExporter()",
        "aiotlp.sdk.http.OTLPSpanExporter()",
    ],
)
def test_building_an_exporter_imports_no_client(statement: str) -> None:
    """The client is imported when the first transport is made (the official processors export on aiotlp's
    thread, off the application's loop)."""
    assert imported("import aiotlp.sdk.grpc, aiotlp.sdk.http\n" + statement) == []


@pytest.mark.parametrize(
    ("exporter", "clients"),
    [
        ("aiotlp.sdk.grpc.OTLPSpanExporter()", ["h2"]),
        ("aiotlp.sdk.SpanExporter()", ["aiotlp.transport._h1"]),
    ],
)
def test_aiotlps_processor_imports_the_client_when_it_is_made(exporter: str, clients: list[str]) -> None:
    """aiotlp's processors export on the application's loop: the client is imported before, not there."""
    code = f"import aiotlp.sdk.grpc\naiotlp.sdk.BatchSpanProcessor({exporter}).shutdown()"
    assert [name for name in imported(code) if name not in ("aiotlp.durable", "aiotlp.processing")] == clients


EXPORT = """
import sys
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SpanExportResult
from opentelemetry.trace import SpanContext
from aiotlp.sdk import SpanExporter

exporter = SpanExporter(sys.argv[1], protocol=sys.argv[2], insecure=True)
span = ReadableSpan(name="s", context=SpanContext(1, 2, False), resource=Resource({}), start_time=1, end_time=2)
assert exporter.export([span]) is SpanExportResult.SUCCESS
exporter.shutdown()
"""


async def test_a_grpc_export_through_h2_imports_no_http_client() -> None:
    async with FakeCollector() as collector:
        modules = await asyncio.to_thread(imported, EXPORT, collector.grpc_endpoint, "grpc")
        assert len(collector.spans()) == 1
    assert modules == ["h2"]


async def test_an_http_export_imports_no_grpc_client() -> None:
    async with FakeCollector() as collector:
        modules = await asyncio.to_thread(imported, EXPORT, collector.http_endpoint + "/v1/traces", "http/protobuf")
        assert len(collector.spans()) == 1
    assert modules == ["aiotlp.transport._h1"]  # no aiohttp, no gRPC client


@pytest.mark.parametrize(
    "statement",
    [
        "from aiotlp.sdk.http import OTLPSpanExporter\nOTLPSpanExporter()",
        "from aiotlp.sdk.grpc import OTLPSpanExporter\nOTLPSpanExporter()",
        "import aiotlp.sdk\naiotlp.sdk.SpanExporter(protocol='grpc')",
        "import aiotlp.sdk\naiotlp.sdk.SpanExporter(protocol='http/json')",
        "import aiotlp.sdk.grpc, aiotlp.sdk.http\ndir(aiotlp.sdk.grpc), dir(aiotlp.sdk.http), dir(aiotlp.sdk)",
    ],
)
def test_a_span_exporter_imports_neither_the_metrics_nor_the_logs_sdk(statement: str) -> None:
    assert imported(statement, report=SDKS) == []


@pytest.mark.parametrize(
    ("exporter", "protocol"),
    [
        ("aiotlp.sdk.http.OTLPSpanExporter", "http/protobuf"),
        ("aiotlp.sdk.grpc.OTLPSpanExporter", "grpc"),
        ("aiotlp.sdk.SpanExporter", "http/json"),
    ],
)
async def test_a_span_export_imports_neither_the_metrics_nor_the_logs_sdk(exporter: str, protocol: str) -> None:
    code = EXPORT.replace("from aiotlp.sdk import SpanExporter", "import aiotlp.sdk.grpc, aiotlp.sdk.http")
    code = code.replace("SpanExporter(sys.argv[1], protocol=sys.argv[2], insecure=True)", exporter + "(sys.argv[1])")
    if exporter == "aiotlp.sdk.SpanExporter":
        code = code.replace(exporter + "(sys.argv[1])", exporter + "(sys.argv[1], protocol=sys.argv[2])")
    elif protocol == "grpc":
        code = code.replace(exporter + "(sys.argv[1])", exporter + "(sys.argv[1], insecure=True)")
    async with FakeCollector() as collector:
        endpoint = collector.grpc_endpoint if protocol == "grpc" else collector.http_endpoint + "/v1/traces"
        modules = await asyncio.to_thread(imported, code, endpoint, protocol, report=SDKS)
        assert len(collector.spans()) == 1
    assert modules == []


METRIC_EXPORT = """
import sys
from importlib.metadata import entry_points
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import PeriodicExportingMetricReader
import aiotlp.sdk, aiotlp.sdk.grpc, aiotlp.sdk.http

how, endpoint = sys.argv[1], sys.argv[2]
if how == "entry point":
    (point,) = entry_points(group="opentelemetry_metrics_exporter", name="aiotlp_proto_http")
    exporter = point.load()(endpoint)
elif how == "from import":
    from aiotlp.sdk.grpc import OTLPMetricExporter
    exporter = OTLPMetricExporter(endpoint, insecure=True)
else:
    exporter = aiotlp.sdk.MetricExporter(endpoint, protocol="http/json")
assert "OTLPMetricExporter" in dir(aiotlp.sdk.grpc) and "MetricExporter" in dir(aiotlp.sdk)
reader = PeriodicExportingMetricReader(exporter, export_interval_millis=60_000)
provider = MeterProvider(metric_readers=[reader])
provider.get_meter("m").create_counter("requests").add(3)
provider.shutdown()
"""


@pytest.mark.parametrize("how", ["entry point", "from import", "aiotlp.sdk"])
async def test_a_metric_exporter_still_works_and_imports_no_logs_sdk(how: str) -> None:
    async with FakeCollector() as collector:
        endpoint = {
            "entry point": collector.http_endpoint + "/v1/metrics",
            "from import": collector.grpc_endpoint,
            "aiotlp.sdk": collector.http_endpoint + "/v1/metrics",
        }[how]
        modules = await asyncio.to_thread(imported, METRIC_EXPORT, how, endpoint, report=SDKS)
        assert [metric.name for metric in collector.metrics()] == ["requests"]
    assert modules == ["opentelemetry.sdk.metrics"]


@pytest.mark.parametrize("module", ["aiotlp.sdk.grpc", "aiotlp.sdk.http"])
def test_a_log_exporter_imports_the_logs_sdk_not_the_metrics_sdk(module: str) -> None:
    code = f"import {module}\n{module}.OTLPLogExporter()\nassert 'OTLPLogExporter' in dir({module})"
    assert imported(code, report=SDKS) == ["opentelemetry.sdk._logs"]


def test_an_unknown_name_is_still_an_attribute_error() -> None:
    code = """
    import aiotlp.sdk.http, aiotlp.sdk._exporters
    for module in (aiotlp.sdk.http, aiotlp.sdk._exporters):
        try:
            module.OTLPTraceExporter
        except AttributeError as exc:
            assert "OTLPTraceExporter" in str(exc), exc
        else:
            raise AssertionError(module)
    """
    imported(code, report=SDKS)  # the child's assertions (its exit status)
