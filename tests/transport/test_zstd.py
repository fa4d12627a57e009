"""zstd: the bindings (each installed one through the same code), bounded decoding, the transports' choices
(Accept-Encoding, grpcio's refusal), zstd responses, and the one-line error without a binding.

White-box, on purpose: the binding loader (``aiotlp.transport._zstd``: ``load``, ``binding``) is under test, each
installed binding through the same code.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import textwrap
from collections.abc import AsyncIterator

import pytest
from aiohttp import web
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceResponse
from tests.transport.support import call

from aiotlp import ConfigurationError, OTLPExporter, ResponseError
from aiotlp.config import COMPRESSIONS, ExporterConfig
from aiotlp.export import ExportRequest, compress_request
from aiotlp.model import Signal, Span
from aiotlp.testing import FakeCollector
from aiotlp.transport import (
    ENCODINGS,
    BoundedInflater,
    GrpcTransport,
    HttpTransport,
    _zstd,
    accepted_encodings,
    make_transport,
)


def _importable(name: str) -> bool:
    try:
        _zstd.load(name)
    except ImportError:
        return False
    return True


BINDINGS = [name for name in ("compression.zstd", "zstandard", "backports.zstd") if _importable(name)]


@pytest.fixture(params=BINDINGS)
def zstd(request: pytest.FixtureRequest) -> _zstd.Zstd:
    return _zstd.load(request.param)


SPAN = Span(trace_id=1, span_id=1, name="op", start_time_unix_nano=1, end_time_unix_nano=2)
DATA = b"".join(b"span %d of a batch, attribute http.route=/v1/items/{id} " % i for i in range(20_000))


def test_the_compression_list_is_one_list() -> None:
    assert COMPRESSIONS == ("gzip", "deflate", "zstd", "none")
    assert ENCODINGS == ("gzip", "deflate", "zstd")
    assert accepted_encodings() == ENCODINGS  # a binding is installed here


def test_a_binding_is_chosen_and_it_is_the_first_that_imports() -> None:
    assert _zstd.binding().name == BINDINGS[0]
    assert _zstd.available()


def test_round_trip_and_every_binding_reads_every_other(zstd: _zstd.Zstd) -> None:
    frame = zstd.compress(DATA)
    assert frame[:4] == b"\x28\xb5\x2f\xfd"
    assert len(frame) < len(DATA) // 10
    for name in BINDINGS:
        assert _zstd.load(name).decompress(frame, len(DATA)) == DATA
    assert zstd.decompress(b"", 10) == b""


def test_every_frame_is_decoded(zstd: _zstd.Zstd) -> None:
    assert zstd.decompress(zstd.compress(b"one ") + zstd.compress(b"two"), 100) == b"one two"


@pytest.mark.parametrize(
    ("mangle", "match"),
    [
        (lambda frame: frame[:-3], "truncated"),
        (lambda frame: frame + b"junk", None),
        (lambda frame: b"not zstd at all", None),
    ],
    ids=["truncated", "trailing-bytes", "garbage"],
)
def test_invalid_data_is_a_value_error(zstd: _zstd.Zstd, mangle: object, match: str | None) -> None:
    frame = zstd.compress(DATA)
    with pytest.raises(_zstd.ZstdDataError, match=match):
        zstd.decompress(mangle(frame), len(DATA))  # type: ignore[operator]


def test_a_bomb_stops_at_the_limit(zstd: _zstd.Zstd) -> None:
    bomb = zstd.compress(b"\0" * (256 * 1024 * 1024))
    assert len(bomb) < 64 * 1024
    out = zstd.decompress(bomb, 1024 * 1024)
    assert 1024 * 1024 < len(out) <= 1024 * 1024 + 9 * 1024 * 1024  # stopped after at most one step past it


def test_a_window_over_8_mib_is_refused(zstd: _zstd.Zstd) -> None:
    zstandard = pytest.importorskip("zstandard")
    params = zstandard.ZstdCompressionParameters.from_level(19, window_log=25)
    large = zstandard.ZstdCompressor(compression_params=params).compress(os.urandom(1024) * 40_000)
    with pytest.raises(_zstd.ZstdDataError):
        zstd.decompress(large, 64 * 1024 * 1024)


@pytest.mark.parametrize("step", [1, 7, 4096, 1 << 20])
def test_bounded_inflater_decodes_zstd_fed_in_pieces(step: int) -> None:
    frame = _zstd.binding().compress(DATA)
    inflater = BoundedInflater("zstd", limit=len(DATA))
    for start in range(0, len(frame), step):
        inflater.feed(frame[start : start + step])
    assert inflater.finish() == DATA


def test_bounded_inflater_refuses_more_than_the_limit() -> None:
    frame = _zstd.binding().compress(b"\0" * (64 * 1024 * 1024))
    inflater = BoundedInflater("zstd", limit=1024 * 1024)
    inflater.feed(frame)
    with pytest.raises(ResponseError, match="larger than 1048576 bytes"):
        inflater.finish()
    incompressible = BoundedInflater("zstd", limit=1024)
    with pytest.raises(ResponseError, match="larger than 1024 bytes"):
        incompressible.feed(os.urandom(4096))


@pytest.mark.parametrize("encoding", ["zstd", "gzip", "deflate"])
def test_bounded_inflater_refuses_invalid_bodies(encoding: str) -> None:
    def read() -> None:
        inflater = BoundedInflater(encoding)
        inflater.feed(b"this is not compressed at all")
        inflater.finish()

    with pytest.raises(ResponseError, match=f"not valid {encoding}"):
        read()


def test_bounded_inflater_refuses_an_unknown_encoding() -> None:
    with pytest.raises(ResponseError, match="unsupported encoding"):
        BoundedInflater("br")


# -- the transports ------------------------------------------------------------------------------------------


def _config(protocol: str, compression: str = "zstd", endpoint: str = "http://127.0.0.1:9") -> ExporterConfig:
    return ExporterConfig.from_env(endpoint=endpoint, protocol=protocol, compression=compression)  # type: ignore[arg-type]


def test_grpcio_refuses_zstd_at_construction_and_names_the_alternatives() -> None:
    config = _config("grpc").traces
    with pytest.raises(ConfigurationError) as caught:
        GrpcTransport(config)
    message = str(caught.value)
    assert "grpc.aio" in message
    assert "grpc_implementation='h2'" in message
    assert "compression='gzip'" in message
    with pytest.raises(ConfigurationError, match="cannot send zstd"):
        make_transport(config, grpc_implementation="grpcio")
    with pytest.raises(ConfigurationError, match="cannot send zstd"):
        OTLPExporter(endpoint="http://127.0.0.1:9", protocol="grpc", compression="zstd", grpc_implementation="grpcio")


async def test_h2_and_http_send_zstd_and_ask_for_what_they_decode() -> None:
    for protocol in ("grpc", "http/protobuf"):
        transport = make_transport(_config(protocol).traces)
        try:
            assert transport.compression == "zstd"  # what the export step compresses with
            body = compress_request(ExportRequest(Signal.TRACES, DATA, 1, len(DATA)), transport.compression).body
            assert _zstd.binding().decompress(body, len(DATA)) == DATA
        finally:
            await transport.close()
    # on the wire, as a collector that decodes zstd (gRPC too: grpc_server="h2") receives it
    async with FakeCollector(grpc_server="h2") as collector:
        for protocol, endpoint in (("grpc", collector.grpc_endpoint), ("http/protobuf", collector.http_endpoint)):
            async with OTLPExporter(endpoint=endpoint, protocol=protocol, compression="zstd") as exporter:
                assert (await exporter.export_traces([SPAN])).ok
        grpc, http = collector.requests()
    assert (grpc.transport, grpc.compression, http.transport, http.compression) == ("grpc", "zstd", "http", "zstd")
    # (grpc-encoding and grpc-accept-encoding are HTTP/2 headers, not metadata: the h2 client's are pinned by
    # tests/transport/test_h2grpc.py's wire-format tests)
    assert http.headers["content-encoding"] == "zstd"
    assert http.headers["accept-encoding"] == "gzip, deflate, zstd"


@pytest.fixture
async def zstd_answering_server() -> AsyncIterator[tuple[str, list[str]]]:
    """An HTTP server that answers every POST with a zstd-compressed partial success, recording Accept-Encoding."""
    seen: list[str] = []
    response = ExportTraceServiceResponse()
    response.partial_success.rejected_spans = 2
    response.partial_success.error_message = "two were too old " * 50
    body = _zstd.binding().compress(response.SerializeToString())

    async def handle(request: web.Request) -> web.Response:
        seen.append(request.headers.get("Accept-Encoding", ""))
        await request.read()
        return web.Response(body=body, headers={"Content-Encoding": "zstd", "Content-Type": "application/x-protobuf"})

    app = web.Application()
    app.router.add_post("/v1/traces", handle)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    try:
        yield f"http://127.0.0.1:{port}", seen
    finally:
        await runner.cleanup()


@pytest.mark.parametrize("compression", ["none", "zstd"])
async def test_http_reads_a_zstd_response(zstd_answering_server: tuple[str, list[str]], compression: str) -> None:
    endpoint, seen = zstd_answering_server
    transport = HttpTransport(_config("http/protobuf", compression, endpoint).traces)
    try:
        result = await call(transport, b"", timeout=5.0, compress_body=compression != "none")
    finally:
        await transport.close()
    assert result.rejected == 2
    assert seen == ["gzip, deflate, zstd"]


# -- without a binding ---------------------------------------------------------------------------------------

_BLOCKED = """
import sys
for name in ("zstandard", "compression", "compression.zstd", "backports.zstd"):
    sys.modules[name] = None  # import fails as if not installed
"""


def _run(code: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", _BLOCKED + textwrap.dedent(code)],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)},
        check=False,
    )


@pytest.mark.parametrize("protocol", ["http/protobuf", "http/json", "grpc"])
def test_without_a_binding_zstd_fails_at_construction_in_one_line(protocol: str) -> None:
    result = _run(f"""
        from aiotlp import OTLPExporter, MissingExtraError
        try:
            OTLPExporter(endpoint="http://127.0.0.1:9", protocol={protocol!r}, compression="zstd")
        except MissingExtraError as exc:
            print(exc)
        else:
            print("constructed")
    """)
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == [
        "zstandard (for compression 'zstd') is not installed: install it with `pip install 'aiotlp[zstd]'`"
    ]


def test_without_a_binding_everything_else_works_and_zstd_is_not_asked_for() -> None:
    result = _run("""
        import asyncio
        from aiotlp.config import ExporterConfig
        from aiotlp.transport import H2GrpcTransport, HttpTransport, accepted_encodings, gzip_compress

        print(accepted_encodings())
        config = ExporterConfig.from_env(endpoint="http://127.0.0.1:9", compression="gzip")
        http = HttpTransport(config.traces)
        print(http.request_headers["accept-encoding"])
        grpc_config = ExporterConfig.from_env(endpoint="http://127.0.0.1:9", protocol="grpc", compression="gzip")
        print(dict(H2GrpcTransport(grpc_config.traces).request_headers)[b"grpc-accept-encoding"])
        asyncio.run(http.close())
    """)
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == ["('gzip', 'deflate')", "gzip, deflate", "b'identity,gzip,deflate'"]


async def test_no_import_of_a_binding_before_zstd_is_used() -> None:
    # (aiohttp imports backports.zstd itself when it is installed)
    code = """
        import sys
        import aiotlp, aiotlp.transport, aiotlp.config
        print(sorted(name for name in ("zstandard", "compression.zstd") if name in sys.modules))
    """
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        textwrap.dedent(code),
        stdout=asyncio.subprocess.PIPE,
        env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)},
    )
    out, _ = await process.communicate()
    assert out.decode().strip() == "[]"
