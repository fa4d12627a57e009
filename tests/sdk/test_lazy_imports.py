"""A configuration imports only the client it uses (not timed: ``benchmarks/import_time.py`` measures): ``import
aiotlp`` and ``import aiotlp.sdk`` import neither aiohttp nor grpcio nor h2, nor does making an exporter: its
client is imported when its first transport is made, or when aiotlp's processor (which exports on the
application's loop) is made; a gRPC export through the h2 client imports no HTTP/1.1 client; an HTTP export
imports neither gRPC client, and no aiohttp anywhere (the HTTP/1.1 client is aiotlp's own, ``aiotlp.transport._h1``).
Each in a fresh interpreter."""

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


def imported(code: str, *args: str) -> list[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}
    done = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code) + REPORT, *args],
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
