"""A port of the other OTLP protocol, and a port already taken (issue 14, item 4).

OTLP/HTTP sent to an OTLP/gRPC port, OTLP/gRPC sent to an OTLP/HTTP port: each signal and each client, against
real listeners on 127.0.0.1:0 (the FakeCollector's servers, and the OpenTelemetry Collector when it can be built):
a permanent ProtocolMismatchError, never retried, that says what was seen and what to change, logged once,
counted as failed under its own reason. A taken port: one line that names it.

Private, on purpose: ``aiotlp.cli._check.explain``, the sentence ``aiotlp check`` prints for an error, is
compared with the exporter's own message.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import subprocess
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from tests import samples
from tests.cli._run import assert_one_line_error, run

from aiotlp import OTLPExporter, ProtocolMismatchError, RejectedError, RetryPolicy, Signal
from aiotlp.cli._check import explain
from aiotlp.processing import BatchProcessor
from aiotlp.testing import FakeCollector, OtelCollector, Rotel
from aiotlp.transport import CHECK_HINT, http1_status_line, http2_frames_in_text, is_http2_settings

BUILD_SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "build-otelcol"
HTTP_CLIENTS = [("http/protobuf", None), ("http/json", None)]
GRPC_CLIENTS = [("grpc", "h2"), ("grpc", "grpcio")]

TO_GRPC_PORT = (
    "answered with HTTP/2 frames: it does not speak {protocol}; it looks like an OTLP/gRPC port: use port 4318 for "
    "OTLP/HTTP, or set OTEL_EXPORTER_OTLP_PROTOCOL=grpc; `aiotlp check` diagnoses the endpoint"
)
TO_HTTP_PORT = (
    ": it does not speak grpc; it looks like an OTLP/HTTP port: use port 4317 for OTLP/gRPC, or set "
    "OTEL_EXPORTER_OTLP_PROTOCOL=http/protobuf; `aiotlp check` diagnoses the endpoint"
)


def items(signal: Signal) -> list[Any]:
    if signal is Signal.TRACES:
        return samples.spans(3)
    if signal is Signal.METRICS:
        return samples.metrics()
    return samples.logs()


async def export_twice(
    base: str, protocol: str, implementation: str | None, signal: Signal, caplog: pytest.LogCaptureFixture
) -> tuple[OTLPExporter, ProtocolMismatchError, str]:
    """Two batches of ``signal`` through a BatchProcessor and an exporter with a patient retry policy: returns the
    exporter, the error and the log text, after checking the processor's ledger and that it was logged once."""
    exporter = OTLPExporter(
        endpoint=base,
        protocol=protocol,
        timeout=10,
        retry=RetryPolicy(initial_backoff=0.01, max_attempts=5),
        grpc_implementation=implementation,  # type: ignore[arg-type]
    )
    processor: BatchProcessor[Any] = BatchProcessor(exporter, signal, schedule_delay=60)
    caplog.clear()
    try:
        with caplog.at_level(logging.WARNING, logger="aiotlp.export"):
            for _ in range(2):
                for item in items(signal):
                    assert processor.put_nowait(item)
                outcome = await processor.force_flush(timeout=10)
                assert not outcome and outcome.failed > 0
        stats = processor.statistics()
        assert stats.balanced and stats.exported == 0 and stats.failed == stats.produced > 0
        assert stats.last_error is not None and stats.last_error.startswith("ProtocolMismatchError: the endpoint ")
        assert exporter.retries == 0  # a misconfiguration is not retried
        result = await getattr(exporter, f"export_{signal.value}")(items(signal))
        assert (result.requests, result.failed, result.accepted) == (1, result.items, 0)
        assert exporter.retries == 0
        assert isinstance(result.error, ProtocolMismatchError) and result.error.status is None
        failures = [r.getMessage() for r in caplog.records if "failed to export" in r.getMessage()]
        assert len(failures) == 1, failures  # three failed exports, one line (rate-limited)
        return exporter, result.error, failures[0]
    finally:
        await processor.shutdown(timeout=5)
        await exporter.shutdown()


@pytest.fixture(params=["grpcio", "h2"])
async def collector(request: pytest.FixtureRequest) -> AsyncIterator[FakeCollector]:
    async with FakeCollector(grpc_server=request.param) as fake:
        yield fake


@pytest.mark.parametrize(("protocol", "implementation"), HTTP_CLIENTS)
@pytest.mark.parametrize("signal", list(Signal))
async def test_otlp_http_to_a_grpc_port(
    collector: FakeCollector, protocol: str, implementation: None, signal: Signal, caplog: pytest.LogCaptureFixture
) -> None:
    base = f"http://127.0.0.1:{collector.grpc_port}"
    exporter, error, logged = await export_twice(base, protocol, implementation, signal, caplog)
    assert error.message == f"the endpoint {base}/v1/{signal.value} " + TO_GRPC_PORT.format(protocol=protocol)
    assert error.message in logged and "\\x00" not in logged
    # aiotlp check says the same, without pointing at itself
    assert explain(error, exporter.config.for_signal(signal)) == error.message.removesuffix(f"; {CHECK_HINT}")
    assert collector.received == [] and collector.bad_requests == []


@pytest.mark.parametrize(("protocol", "implementation"), GRPC_CLIENTS)
@pytest.mark.parametrize("signal", list(Signal))
async def test_otlp_grpc_to_an_http_port(
    protocol: str, implementation: str, signal: Signal, caplog: pytest.LogCaptureFixture
) -> None:
    async with FakeCollector() as collector:
        base = f"http://127.0.0.1:{collector.http_port}"
        exporter, error, logged = await export_twice(base, protocol, implementation, signal, caplog)
        assert collector.received == []
    seen = (
        "an HTTP/1.x reply (HTTP/1.0 400 Bad Request)" if implementation == "h2" else "an HTTP/1.x reply (status 400)"
    )
    assert error.message == f"the endpoint {base} answered with {seen}" + TO_HTTP_PORT
    assert error.message in logged
    assert explain(error, exporter.config.for_signal(signal)) == error.message.removesuffix(f"; {CHECK_HINT}")


@pytest.fixture(scope="module")
def otelcol_binary() -> str:
    """The OpenTelemetry Collector, built (or found cached) as tests/integration does; skips without Go."""
    configured = os.environ.get("AIOTLP_OTELCOL")
    if configured:
        return configured
    built = subprocess.run([BUILD_SCRIPT], capture_output=True, text=True, check=False)
    if built.returncode == 3:  # no Go toolchain
        pytest.skip(built.stderr.strip().splitlines()[-1])
    assert built.returncode == 0, built.stderr
    return built.stdout.strip().splitlines()[-1]


@pytest.mark.parametrize(("protocol", "implementation"), HTTP_CLIENTS + GRPC_CLIENTS)
async def test_the_opentelemetry_collectors_other_port(
    otelcol_binary: str, protocol: str, implementation: str | None, caplog: pytest.LogCaptureFixture
) -> None:
    """grpc-go answers HTTP/1.1 with its SETTINGS frame; Go's net/http answers the HTTP/2 preface with HTTP/1.1."""
    async with OtelCollector(binary=otelcol_binary) as otelcol:
        port = otelcol.http_port if protocol == "grpc" else otelcol.grpc_port
        base = f"http://127.0.0.1:{port}"
        for signal in Signal:
            _, error, logged = await export_twice(base, protocol, implementation, signal, caplog)
            if protocol == "grpc":
                seen = "(HTTP/1.1 400 Bad Request)" if implementation == "h2" else "(status 400)"
                assert error.message == f"the endpoint {base} answered with an HTTP/1.x reply {seen}" + TO_HTTP_PORT
            else:
                expected = TO_GRPC_PORT.format(protocol=protocol)
                assert error.message == f"the endpoint {base}/v1/{signal.value} " + expected
            assert error.message in logged


@pytest.mark.parametrize("implementation", ["h2", "grpcio"])
async def test_grpc_to_an_http_port_that_speaks_h2c(implementation: str) -> None:
    """rotel's OTLP/HTTP port also speaks HTTP/2 (h2c): it answers a gRPC call with an HTTP 404 that is not gRPC.
    Permanent (UNIMPLEMENTED), not retried, and the message points at the port as check does."""
    async with (
        Rotel() as rotel,
        OTLPExporter(
            endpoint=rotel.http_endpoint,
            protocol="grpc",
            timeout=10,
            retry=RetryPolicy(initial_backoff=0.01),
            grpc_implementation=implementation,  # type: ignore[arg-type]
        ) as exporter,
    ):
        result = await exporter.export_traces(samples.spans(1))
        assert exporter.retries == 0
    assert isinstance(result.error, RejectedError) and result.error.status == "UNIMPLEMENTED"
    assert result.error.message == (
        "gRPC UNIMPLEMENTED from collector: HTTP 404 (not a gRPC response)"
        + TO_HTTP_PORT.removesuffix(f"; {CHECK_HINT}")
    )


def test_the_recognisers() -> None:
    settings = b"\x00\x00\x06\x04\x00\x00\x00\x00\x00\x00\x05\x00\x00@\x00"
    assert is_http2_settings(settings)
    assert not is_http2_settings(b"HTTP/1.1 200 OK\r\n") and not is_http2_settings(settings[:8])
    assert not is_http2_settings(b"\x00\x00\x08\x06\x00\x00\x00\x00\x00")  # a PING, not SETTINGS
    aiohttp_text = f'400, message="Bad status line:\\n  Expected HTTP/:\\n\\n  {settings!r}\\n    ^"'
    assert http2_frames_in_text(aiohttp_text) and http2_frames_in_text(repr(aiohttp_text))
    assert not http2_frames_in_text("Bad status line: b'HTPT/1.1 200 OK'")
    assert not http2_frames_in_text(f"Server disconnected {settings!r}")  # not a status-line complaint
    assert http1_status_line(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n") == "HTTP/1.1 400 Bad Request"
    assert http1_status_line(b"HTTP/1.0 505\r\n") == "HTTP/1.0 505"
    assert http1_status_line(b"HTTP/1.1 400 \x1b[31mred\r\n") == "HTTP/1.1 400"  # only printable text is quoted
    assert http1_status_line(settings) is None


# -- a port already in use: one line naming it, no grpc core line on stderr -----------------------------------


@pytest.mark.parametrize("which", ["gRPC", "HTTP"])
async def test_aiotlp_receive_on_a_taken_port_says_so_in_one_line(which: str) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        ports = ["--grpc-port", str(port), "--http-port", "0"] if which == "gRPC" else ["--http-port", str(port)]
        code, _, err = await run("receive", *ports)
    assert_one_line_error(code, err, f"the {which} port {port} on 127.0.0.1 is already in use", "--grpc-port")
    assert "GRPC_VERBOSITY" not in err and "add_port" not in err


@pytest.mark.parametrize("kind", ["grpcio", "h2"])
async def test_a_fake_collector_on_a_taken_grpc_port(kind: str, capfd: pytest.CaptureFixture[str]) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        with pytest.raises(OSError, match=f"^the gRPC port {port} on 127.0.0.1 is already in use$"):
            async with FakeCollector(grpc_server=kind, grpc_port=port):  # type: ignore[arg-type]
                pass
    assert "add_port" not in capfd.readouterr().err  # grpc core never got to log its own line
    async with FakeCollector(grpc_server=kind, grpc_port=port) as collector:  # free again: it binds
        assert collector.grpc_port == port


# -- the h2 client reads an HTTP/1.x status line however it arrives -------------------------------------------


@pytest.mark.parametrize(
    ("pieces", "seen"),
    [
        ([b"HTTP/1.1 400 Bad Request\r\n\r\n"], "an HTTP/1.x reply (HTTP/1.1 400 Bad Request)"),
        ([b"H", b"TTP/1", b".1 505 HTTP Version Not Supported\r\n"], "(HTTP/1.1 505 HTTP Version Not Supported)"),
        ([b"HTTP/1.0 4"], "the endpoint {base} answered with an HTTP/1.x reply: it does not speak grpc"),  # hangs up
    ],
)
async def test_the_h2_client_recognises_a_status_line_in_pieces(pieces: list[bytes], seen: str) -> None:
    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read(24)  # the start of the HTTP/2 preface
        for piece in pieces:
            writer.write(piece)
            await writer.drain()
            await asyncio.sleep(0)
        writer.close()

    server = await asyncio.start_server(answer, "127.0.0.1", 0)
    base = f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}"
    try:
        exporter = OTLPExporter(endpoint=base, protocol="grpc", grpc_implementation="h2", timeout=5)
        result = await exporter.export_traces(samples.spans(1))
        await exporter.shutdown()
    finally:
        server.close()
        await server.wait_closed()
    assert isinstance(result.error, ProtocolMismatchError), result.error
    assert seen.format(base=base) in result.error.message and exporter.retries == 0
