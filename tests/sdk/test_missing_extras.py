"""A missing gRPC client is one line at construction naming the extra to install, on every way in: the standalone
exporter, the SDK exporters, the SDK's auto-configuration, and grpcio asked for by name. OTLP/HTTP needs no
extra (no aiohttp); aiohttp is named, with the right extra, by what still uses it (the FakeCollector, `aiotlp
receive`).

Each case runs in a child interpreter that blocks the modules (``sys.modules[name] = None`` before aiotlp is
imported: ``import h2`` then raises ImportError, as if the extra were not installed).
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import textwrap

import pytest

BLOCK = "import sys\nfor name in {blocked!r}:\n    sys.modules[name] = None\n"


def run(code: str, blocked: tuple[str, ...], env: dict[str, str] | None = None) -> str:
    base = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}
    done = subprocess.run(
        [sys.executable, "-c", BLOCK.format(blocked=blocked) + textwrap.dedent(code)],
        capture_output=True,
        text=True,
        timeout=60,
        env={**base, **(env or {})},
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout + done.stderr


TRY = """
try:
    {call}
except aiotlp.MissingExtraError as exc:
    print("ERROR", exc)
else:
    print("BUILT")
"""


@pytest.mark.parametrize(
    "call",
    [
        "aiotlp.OTLPExporter(protocol='grpc')",
        "aiotlp.OTLPExporter(protocol='grpc', grpc_implementation='h2')",
        "aiotlp.sdk.SpanExporter(protocol='grpc')",
        "aiotlp.sdk.LogExporter(protocol='grpc')",
        "aiotlp.sdk.MetricExporter(protocol='grpc')",
        "aiotlp.sdk.grpc.OTLPSpanExporter()",
    ],
)
def test_no_grpc_client_is_one_line_naming_aiotlp_grpc(call: str) -> None:
    out = run("import aiotlp, aiotlp.sdk, aiotlp.sdk.grpc\n" + TRY.format(call=call), ("h2", "grpc"))
    assert out.strip().splitlines() == [
        "ERROR h2 (aiotlp's gRPC client) is not installed: install it with `pip install 'aiotlp[grpc]'`"
    ]


def test_h2_missing_falls_back_to_grpcio_when_it_is_installed() -> None:
    out = run("import aiotlp.sdk\n" + TRY.format(call="aiotlp.sdk.SpanExporter(protocol='grpc')"), ("h2",))
    assert out.strip() == "BUILT"


def test_grpcio_asked_for_and_missing_names_aiotlp_grpcio() -> None:
    call = "aiotlp.OTLPExporter(protocol='grpc', grpc_implementation='grpcio')"
    out = run("import aiotlp\n" + TRY.format(call=call), ("grpc",))
    assert out.strip().splitlines() == [
        "ERROR grpcio (grpc_implementation='grpcio') is not installed: install it with `pip install 'aiotlp[grpcio]'`"
    ]


def test_http_needs_no_grpc_client() -> None:
    out = run("import aiotlp.sdk\n" + TRY.format(call="aiotlp.sdk.SpanExporter()"), ("h2", "grpc"))
    assert out.strip() == "BUILT"


def test_auto_configuration_reports_it_once_at_start_and_never_per_export() -> None:
    """The SDK's configurator builds the exporter at start: it raises the one-line error there (the
    ``opentelemetry-instrument`` loader logs it and the application runs on, that signal not exported). Spans
    made afterwards export nothing and log nothing: no traceback per export."""
    code = """
    import logging
    logging.basicConfig(level=logging.WARNING)
    from opentelemetry import trace
    from opentelemetry.sdk._configuration import _OTelSDKConfigurator
    try:
        _OTelSDKConfigurator().configure()
    except Exception as exc:
        print("CONFIGURE", type(exc).__name__, exc)
    for _ in range(3):
        with trace.get_tracer("t").start_as_current_span("s"):
            pass
    trace.get_tracer_provider().shutdown()
    print("DONE")
    """
    env = {
        "OTEL_TRACES_EXPORTER": "aiotlp",
        "OTEL_METRICS_EXPORTER": "none",
        "OTEL_LOGS_EXPORTER": "none",
        "OTEL_EXPORTER_OTLP_PROTOCOL": "grpc",
    }
    out = run(code, ("h2", "grpc"), env)
    assert out.strip().splitlines() == [
        "CONFIGURE MissingExtraError h2 (aiotlp's gRPC client) is not installed: install it with "
        "`pip install 'aiotlp[grpc]'`",
        "DONE",
    ]


EXPORT_OVER_HTTP = """
import sys
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SpanExportResult
from opentelemetry.trace import SpanContext
import aiotlp.sdk

exporter = aiotlp.sdk.SpanExporter(sys.argv[1])
span = ReadableSpan(name="s", context=SpanContext(1, 2, False), resource=Resource({}), start_time=1, end_time=2)
print(exporter.export([span]).name)
exporter.shutdown()
"""


async def test_otlp_http_needs_no_aiohttp() -> None:
    """aiohttp is not a core dependency: an OTLP/HTTP export goes over aiotlp's own HTTP/1.1 client."""
    from aiotlp.testing import FakeCollector

    async with FakeCollector() as collector:
        endpoint = collector.http_endpoint + "/v1/traces"
        blocked = BLOCK.format(blocked=("aiohttp", "yarl", "multidict"))
        base = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}
        child = await asyncio.create_subprocess_exec(
            sys.executable,
            "-c",
            blocked + textwrap.dedent(EXPORT_OVER_HTTP),
            endpoint,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=base,
        )
        out, err = await child.communicate()
        assert child.returncode == 0, err.decode()
        assert out.decode().split() == ["SUCCESS"], err.decode()
        assert len(collector.spans()) == 1


def test_the_fake_collector_without_aiohttp_names_aiotlp_testing() -> None:
    expected = "aiohttp is not installed: install it with `pip install 'aiotlp[testing]'`"
    assert _import_error("import aiotlp.testing") == expected


def _import_error(statement: str) -> str:
    code = f"try:\n    {statement}\nexcept ImportError as exc:\n    print(type(exc).__name__, exc)\n"
    return run(code, ("aiohttp",)).strip().removeprefix("MissingExtraError ")


def test_the_cli_receiver_without_aiohttp_names_aiotlp_receiver() -> None:
    code = "import sys; sys.argv = ['aiotlp', 'receive', '--grpc-port', '0', '--http-port', '0']\n"
    code += "from aiotlp.cli import main\nprint('EXIT', main())\n"
    out = run(code, ("aiohttp",))
    assert "aiohttp (the OTLP receiver of `aiotlp receive`) is not installed" in out, out
    assert out.count("pip install 'aiotlp[receiver]'") == 1, out
    assert "EXIT 1" in out, out


@pytest.mark.parametrize("missing", ["aiohttp", "grpc", "opentelemetry.proto"])
def test_the_cli_sender_names_what_is_missing_and_aiotlp_receiver(missing: str) -> None:
    code = "import sys; sys.argv = ['aiotlp', 'send', '--endpoint', 'http://127.0.0.1:9', 'x.json']\n"
    code += "from aiotlp.cli import main\nprint('EXIT', main())\n"
    out = run(code, (missing,))
    named = {"grpc": "grpcio"}.get(missing, missing)  # as pip knows it
    assert f"{named} (the OTLP decoders of `aiotlp send`) is not installed" in out, out
    assert out.count("pip install 'aiotlp[receiver]'") == 1, out
    assert "EXIT 1" in out, out
