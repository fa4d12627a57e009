"""H2GrpcTransport (aiotlp's own HTTP/2 gRPC client) against a grpc C-core server, the real rotel collector,
and a scripted h2 server in this module for what neither can be made to do (GOAWAY, RST_STREAM, trailers-only,
non-200 statuses, tiny flow-control windows, MAX_CONCURRENT_STREAMS).

Real time, kept short: backoffs of a few milliseconds.

White-box, on purpose: ``test_the_stateless_hpack_encoder_round_trips`` checks the private HPACK encoder
(``aiotlp.transport._hpack``) against the ``hpack`` package's decoder.
"""

from __future__ import annotations

import asyncio
import gzip
import logging
import time
import tracemalloc
import urllib.parse
import zlib
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import grpc
import h2.config
import h2.connection
import h2.events
import h2.settings
import hyperframe.frame
import pytest
from google.protobuf.message import Message
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import ExportMetricsServiceRequest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from tests import samples
from tests.transport.support import call as exchange

from aiotlp import (
    AttemptTimeoutError,
    ConfigurationError,
    ConnectError,
    DeadlineExceededError,
    ExportError,
    ExporterShutdownError,
    OTLPExporter,
    PermanentError,
    RejectedError,
    ResponseError,
    RetriesExhaustedError,
    RetryableError,
    RetryPolicy,
    ServerBusyError,
    Signal,
)
from aiotlp.config import SignalConfig
from aiotlp.encoding import encode_logs, encode_metrics, encode_traces
from aiotlp.model import Span
from aiotlp.testing import FakeCollector, Reply, Rotel, free_port
from aiotlp.transport import (
    DEFAULT_GRPC_IMPLEMENTATION,
    GrpcTransport,
    H2GrpcTransport,
    make_transport,
    zstd_compress,
    zstd_decompress,
)

FAST_RETRY = RetryPolicy(initial_backoff=0.005, max_backoff=0.02, jitter=0.1, max_attempts=3)
MESSAGES: dict[Signal, type[Message]] = {
    Signal.TRACES: ExportTraceServiceRequest,
    Signal.METRICS: ExportMetricsServiceRequest,
    Signal.LOGS: ExportLogsServiceRequest,
}
ENCODERS: dict[Signal, Callable[[Any], bytes]] = {
    Signal.TRACES: encode_traces,
    Signal.METRICS: encode_metrics,
    Signal.LOGS: encode_logs,
}


def h2_exporter(endpoint: str, **kwargs: Any) -> OTLPExporter:
    kwargs.setdefault("retry", FAST_RETRY)
    kwargs.setdefault("timeout", 5.0)
    limit = kwargs.pop("max_response_bytes", 4 * 1024 * 1024)
    return OTLPExporter(
        endpoint=endpoint,
        protocol="grpc",
        transport_factory=lambda cfg: H2GrpcTransport(cfg, max_response_bytes=limit),
        **kwargs,
    )


def transport_for(endpoint: str, signal: Signal = Signal.TRACES, **kwargs: Any) -> H2GrpcTransport:
    limit = kwargs.pop("max_response_bytes", 4 * 1024 * 1024)
    return H2GrpcTransport(
        SignalConfig(signal=signal, protocol="grpc", endpoint=endpoint, **kwargs), max_response_bytes=limit
    )


def big_spans(total_bytes: int) -> list[Span]:
    """Spans whose encoding is a little over ``total_bytes`` (one large attribute each)."""
    base = samples.spans(1)[0]
    chunk = 16 * 1024
    count = total_bytes // chunk + 1
    return [
        Span(
            trace_id=base.trace_id,
            span_id=i + 1,
            name=f"big-{i}",
            start_time_unix_nano=1,
            end_time_unix_nano=2,
            attributes={"payload": "x" * chunk, "index": i},
            resource=base.resource,
            scope=base.scope,
        )
        for i in range(count)
    ]


@pytest.fixture
async def collector() -> AsyncIterator[FakeCollector]:
    async with FakeCollector() as c:
        yield c


# -- the implementation switch -------------------------------------------------------------------------------


def test_make_transport_picks_the_grpc_implementation() -> None:
    config = SignalConfig(signal=Signal.TRACES, protocol="grpc", endpoint="http://127.0.0.1:4317")
    default = H2GrpcTransport if DEFAULT_GRPC_IMPLEMENTATION == "h2" else GrpcTransport
    assert isinstance(make_transport(config), default)
    assert isinstance(make_transport(config, grpc_implementation="h2"), H2GrpcTransport)
    assert isinstance(make_transport(config, grpc_implementation="grpcio"), GrpcTransport)
    with pytest.raises(ConfigurationError, match="grpc_implementation"):
        make_transport(config, grpc_implementation="nope")  # type: ignore[arg-type]


def test_reserved_headers_are_refused_at_construction() -> None:
    for name in ("content-type", "te", "grpc-timeout", "connection"):
        config = SignalConfig(
            signal=Signal.TRACES, protocol="grpc", endpoint="http://127.0.0.1:4317", headers={name: "secret-value"}
        )
        with pytest.raises(ConfigurationError, match=r"a grpc-\* header" if name.startswith("grpc-") else name) as info:
            H2GrpcTransport(config)
        assert "secret-value" not in str(info.value)
        assert "timeout" not in str(info.value)  # the user's part of a grpc-* name is not shown


# -- FakeCollector (grpc C-core) and rotel ---------------------------------------------------------------------


def flatten(messages: list[Message], signal: Signal) -> list[tuple[bytes, bytes, bytes]]:
    """(resource, scope, item) triples serialized deterministically, sorted: rotel may regroup, not change."""
    names = {
        Signal.TRACES: ("resource_spans", "scope_spans", "spans"),
        Signal.METRICS: ("resource_metrics", "scope_metrics", "metrics"),
        Signal.LOGS: ("resource_logs", "scope_logs", "log_records"),
    }[signal]
    out = []
    for message in messages:
        for resource_x in getattr(message, names[0]):
            resource = resource_x.resource.SerializeToString(deterministic=True) + resource_x.schema_url.encode()
            for scope_x in getattr(resource_x, names[1]):
                scope = scope_x.scope.SerializeToString(deterministic=True) + scope_x.schema_url.encode()
                for item in getattr(scope_x, names[2]):
                    out.append((resource, scope, item.SerializeToString(deterministic=True)))
    return sorted(out)


@pytest.mark.parametrize("compression", ["none", "gzip"])
async def test_all_signals_arrive_exactly_at_the_fake_collector(collector: FakeCollector, compression: str) -> None:
    data = {Signal.TRACES: samples.spans(), Signal.METRICS: samples.metrics(), Signal.LOGS: samples.logs()}
    headers = {"x-tenant": "t1", "authorization": "Bearer abc", "x-blob-bin": "bytes"}
    async with h2_exporter(collector.grpc_endpoint, compression=compression, headers=headers) as exporter:
        results = [
            await exporter.export_traces(data[Signal.TRACES]),  # type: ignore[arg-type]
            await exporter.export_metrics(data[Signal.METRICS]),  # type: ignore[arg-type]
            await exporter.export_logs(data[Signal.LOGS]),  # type: ignore[arg-type]
        ]
    assert [r.ok for r in results] == [True, True, True], [r.error for r in results]
    assert sorted(r.signal.value for r in collector.received) == ["logs", "metrics", "traces"]
    for request in collector.received:
        expected = ENCODERS[request.signal](data[request.signal])
        assert request.body == expected  # the encoder's own bytes, unchanged
        assert request.message == MESSAGES[request.signal].FromString(expected)
        assert request.compression == ("gzip" if compression == "gzip" else None)
        assert request.content_type == "application/grpc"
        assert request.headers["x-tenant"] == "t1"
        assert request.headers["authorization"] == "Bearer abc"
        assert request.headers["x-blob-bin"] == "Ynl0ZXM"  # b"bytes", base64 as on the wire
        agent = request.headers["user-agent"]
        assert "OTel-OTLP-Exporter-Python/" in agent and "aiotlp/" in agent and "grpc-python-aiotlp-h2/" in agent


@pytest.mark.integration
@pytest.mark.parametrize("compression", ["none", "gzip"])
async def test_all_signals_arrive_exactly_through_rotel(collector: FakeCollector, compression: str) -> None:
    data = {Signal.TRACES: samples.spans(), Signal.METRICS: samples.metrics(), Signal.LOGS: samples.logs()}
    async with Rotel(forward_to=collector.grpc_endpoint) as rotel:
        async with h2_exporter(rotel.grpc_endpoint, compression=compression, retry=FAST_RETRY) as exporter:
            for _ in range(3):  # several calls on one connection
                results = [
                    await exporter.export_traces(data[Signal.TRACES]),  # type: ignore[arg-type]
                    await exporter.export_metrics(data[Signal.METRICS]),  # type: ignore[arg-type]
                    await exporter.export_logs(data[Signal.LOGS]),  # type: ignore[arg-type]
                ]
                assert all(r.ok for r in results), [(r.error, rotel.log_text()) for r in results if not r.ok]
        await collector.wait_for(lambda c: {r.signal for r in c.received} == set(Signal), timeout=10)
    for signal in Signal:
        received = flatten([r.message for r in collector.requests(signal)], signal)
        expected = flatten([MESSAGES[signal].FromString(ENCODERS[signal](data[signal]))] * 3, signal)
        assert received == expected, signal


@pytest.mark.integration
async def test_a_large_request_arrives_intact_through_rotel(collector: FakeCollector) -> None:
    spans = big_spans(3 * 1024 * 1024)  # far over rotel's 16 KiB frames and initial windows
    async with Rotel(forward_to=collector.grpc_endpoint) as rotel, h2_exporter(rotel.grpc_endpoint) as exporter:
        result = await exporter.export_traces(spans)
        assert result.ok, (result.error, rotel.log_text())
        await collector.wait_for(lambda c: len(c.spans()) >= len(spans), timeout=10)
    expected = ExportTraceServiceRequest.FromString(encode_traces(spans))
    assert flatten([r.message for r in collector.received], Signal.TRACES) == flatten([expected], Signal.TRACES)


async def test_a_large_request_arrives_intact(collector: FakeCollector) -> None:
    for size in (70 * 1024, 5 * 1024 * 1024):  # over the 64 KiB default window; over C-core's window too
        spans = big_spans(size)
        async with h2_exporter(collector.grpc_endpoint, max_request_bytes=16 * 1024 * 1024) as exporter:
            result = await exporter.export_traces(spans)
        assert result.ok, result.error
        assert collector.received[-1].body == encode_traces(spans)


async def test_partial_success_is_reported(collector: FakeCollector) -> None:
    collector.script(Reply(rejected=2, error_message="spans too old"))
    async with h2_exporter(collector.grpc_endpoint) as exporter:
        result = await exporter.export_traces(samples.spans(5))
    assert (result.accepted, result.rejected, result.error_message) == (3, 2, "spans too old")


RETRYABLE_GRPC = {
    grpc.StatusCode.CANCELLED,
    grpc.StatusCode.DEADLINE_EXCEEDED,
    grpc.StatusCode.ABORTED,
    grpc.StatusCode.OUT_OF_RANGE,
    grpc.StatusCode.UNAVAILABLE,
    grpc.StatusCode.DATA_LOSS,
}


@pytest.mark.parametrize("code", [c for c in grpc.StatusCode if c is not grpc.StatusCode.OK], ids=lambda c: c.name)
@pytest.mark.parametrize("retry_info", [False, True], ids=["plain", "retryinfo"])
async def test_grpc_retry_matrix(collector: FakeCollector, code: grpc.StatusCode, retry_info: bool) -> None:
    collector.default = Reply(grpc_code=code, message="nope", retry_delay=0.001 if retry_info else None)
    async with h2_exporter(collector.grpc_endpoint, timeout=10) as exporter:
        result = await exporter.export_traces(samples.spans(2))
    attempts = len(collector.received)
    assert result.failed == 2
    retryable = code in RETRYABLE_GRPC or (code is grpc.StatusCode.RESOURCE_EXHAUSTED and retry_info)
    if retryable:
        assert attempts == 3, result.error
        assert isinstance(result.error, RetriesExhaustedError)
        assert result.error.status == code.name
    else:
        assert attempts == 1, result.error
        assert isinstance(result.error, RejectedError)
        assert result.error.status == code.name


async def test_the_status_message_and_retry_info_are_read(collector: FakeCollector) -> None:
    collector.script(Reply(grpc_code=grpc.StatusCode.RESOURCE_EXHAUSTED, message="slow down ✓ 100%", retry_delay=0.6))
    transport = transport_for(collector.grpc_endpoint)
    try:
        with pytest.raises(ServerBusyError) as info:
            await exchange(transport, encode_traces(samples.spans(1)), timeout=5)
    finally:
        await transport.close()
    assert info.value.retry_after == pytest.approx(0.6)
    assert info.value.status == "RESOURCE_EXHAUSTED"
    assert "slow down ✓ 100%" in str(info.value)


async def test_a_hung_server_times_out_and_the_connection_survives(collector: FakeCollector) -> None:
    collector.script(Reply(delay=30))
    transport = transport_for(collector.grpc_endpoint)
    body = encode_traces(samples.spans(1))
    try:
        start = time.monotonic()
        with pytest.raises(AttemptTimeoutError):
            await exchange(transport, body, timeout=0.3)
        assert 0.29 <= time.monotonic() - start < 0.8
        assert await exchange(transport, body, timeout=5) is not None  # same connection, next stream
    finally:
        await transport.close()
    assert len({r.peer for r in collector.received}) == 1


async def test_the_export_deadline_holds_against_a_hung_server(collector: FakeCollector) -> None:
    collector.default = Reply(delay=30)
    retry = RetryPolicy(initial_backoff=0.05, jitter=0)
    async with h2_exporter(collector.grpc_endpoint, timeout=1.0, retry=retry, attempt_timeout=0.3) as exporter:
        start = time.monotonic()
        result = await exporter.export_traces(samples.spans(1))
        assert time.monotonic() - start <= 1.15
        assert isinstance(result.error, DeadlineExceededError)
        assert result.failed == 1


async def test_close_during_a_call_fails_it_at_once(collector: FakeCollector) -> None:
    collector.script(Reply(delay=30))
    transport = transport_for(collector.grpc_endpoint)
    call = asyncio.create_task(exchange(transport, encode_traces(samples.spans(1)), timeout=20))
    await collector.wait_for(1)
    start = time.monotonic()
    await transport.close()
    with pytest.raises(ExporterShutdownError):
        await call
    assert time.monotonic() - start < 0.5
    with pytest.raises(PermanentError):
        await exchange(transport, b"", timeout=1)


async def test_shutdown_of_the_exporter_during_a_call(collector: FakeCollector) -> None:
    collector.default = Reply(delay=30)
    exporter = h2_exporter(collector.grpc_endpoint, timeout=20)
    pending = asyncio.create_task(exporter.export_traces(samples.spans(1)))
    await collector.wait_for(1)
    start = time.monotonic()
    await exporter.shutdown(timeout=0.2)
    assert time.monotonic() - start < 0.6
    result = await pending
    assert result.failed == 1
    assert isinstance(result.error, ExporterShutdownError | DeadlineExceededError | RetriesExhaustedError)


async def test_a_cancelled_caller_resets_only_its_stream(collector: FakeCollector) -> None:
    collector.script(Reply(delay=30))
    transport = transport_for(collector.grpc_endpoint)
    body = encode_traces(samples.spans(1))
    try:
        call = asyncio.create_task(exchange(transport, body, timeout=20))
        await collector.wait_for(1)
        call.cancel()
        with pytest.raises(asyncio.CancelledError):
            await call
        await exchange(transport, body, timeout=5)
    finally:
        await transport.close()
    assert len({r.peer for r in collector.received}) == 1


async def test_reconnects_after_the_collector_restarts(collector: FakeCollector) -> None:
    transport = transport_for(collector.grpc_endpoint)
    body = encode_traces(samples.spans(1))
    try:
        await exchange(transport, body, timeout=5)
        await collector.stop()
        with pytest.raises(ConnectError):
            await exchange(transport, body, timeout=5)
        await collector.start()  # the same port
        await exchange(transport, body, timeout=5)
    finally:
        await transport.close()
    assert len(collector.received) == 2
    assert collector.received[0].peer != collector.received[1].peer


async def test_reconnects_through_the_exporter(collector: FakeCollector) -> None:
    retry = RetryPolicy(initial_backoff=0.05, max_backoff=0.5, jitter=0.1)
    async with h2_exporter(collector.grpc_endpoint, retry=retry, timeout=1.0) as exporter:
        assert (await exporter.export_traces(samples.spans(1))).ok
        await collector.stop()
        down = await exporter.export_traces(samples.spans(1))
        assert isinstance(down.error, DeadlineExceededError)
        assert isinstance(down.error.last, RetryableError)
        await collector.start()
        up = await exporter.export_traces(samples.spans(1))
        assert up.ok, up.error


async def test_concurrent_calls_share_one_connection(collector: FakeCollector) -> None:
    collector.default = Reply(delay=0.3)
    async with h2_exporter(collector.grpc_endpoint, max_concurrent=20) as exporter:
        start = time.monotonic()
        results = await asyncio.gather(*(exporter.export_traces(samples.spans(1)) for _ in range(20)))
        elapsed = time.monotonic() - start
    assert all(r.ok for r in results), [r.error for r in results]
    assert len(collector.received) == 20
    assert len({r.peer for r in collector.received}) == 1
    assert elapsed < 2.0  # multiplexed: not 20 x 0.3 s


async def test_connection_refused_is_a_connect_error() -> None:
    port = free_port()
    transport = transport_for(f"http://127.0.0.1:{port}")
    try:
        with pytest.raises(ConnectError, match=f"127.0.0.1:{port}"):
            await exchange(transport, b"", timeout=2)
    finally:
        await transport.close()
    async with h2_exporter(f"http://127.0.0.1:{port}") as exporter:
        result = await exporter.export_logs(samples.logs())
    assert isinstance(result.error, RetriesExhaustedError)
    assert isinstance(result.error.last, ConnectError)


async def test_a_5_mib_reply_is_refused(collector: FakeCollector) -> None:
    collector.script(Reply(body_size=5 * 1024 * 1024))
    transport = transport_for(collector.grpc_endpoint)
    body = encode_traces(samples.spans(1))
    try:
        with pytest.raises(ResponseError, match="more than"):
            await exchange(transport, body, timeout=5)
        await exchange(transport, body, timeout=5)  # the connection is still good
    finally:
        await transport.close()
    async with h2_exporter(collector.grpc_endpoint) as exporter:
        collector.script(Reply(body_size=5 * 1024 * 1024))
        result = await exporter.export_traces(samples.spans(1))
    assert isinstance(result.error, ResponseError), result.error
    assert len(collector.received) == 3  # not retried


async def test_a_gzip_bomb_reply_from_the_fake_collector_is_refused(collector: FakeCollector) -> None:
    collector.script(Reply(gzip_bomb=64 * 1024 * 1024))  # (C-core may send it uncompressed: refused either way)
    transport = transport_for(collector.grpc_endpoint)
    try:
        with pytest.raises(ResponseError):
            await exchange(transport, encode_traces(samples.spans(1)), timeout=10)
    finally:
        await transport.close()


async def test_a_reply_just_under_the_limit_is_read(collector: FakeCollector) -> None:
    collector.script(Reply(body_size=1000))
    transport = transport_for(collector.grpc_endpoint, max_response_bytes=1000)
    try:
        result = await exchange(transport, encode_traces(samples.spans(1)), timeout=5)
    finally:
        await transport.close()
    assert result.rejected == 0


# -- TLS -------------------------------------------------------------------------------------------------------


async def test_tls(pki: dict[str, Any]) -> None:
    async with FakeCollector(ssl_cert=pki["server_cert"], ssl_key=pki["server_key"]) as collector:
        assert collector.grpc_endpoint.startswith("https://")
        async with h2_exporter(collector.grpc_endpoint, certificate_file=pki["ca"]) as exporter:
            result = await exporter.export_traces(samples.spans(2))
        assert result.ok, result.error
        assert len(collector.spans()) == 2
        transport = transport_for(collector.grpc_endpoint, certificate_file=pki["other_ca"])
        try:
            with pytest.raises(PermanentError, match="certificate verification failed") as info:
                await exchange(transport, encode_traces(samples.spans(1)), timeout=3)
            assert collector.grpc_endpoint in str(info.value)
        finally:
            await transport.close()
        # plaintext to the TLS port: refused, nothing arrives
        plain = transport_for(collector.grpc_endpoint.replace("https://", "http://"))
        try:
            with pytest.raises((PermanentError, ConnectError)):
                await exchange(plain, encode_traces(samples.spans(1)), timeout=3)
        finally:
            await plain.close()
        assert len(collector.received) == 1


async def test_mtls(pki: dict[str, Any]) -> None:
    async with FakeCollector(
        ssl_cert=pki["server_cert"], ssl_key=pki["server_key"], client_ca=pki["ca_pem"]
    ) as collector:
        async with h2_exporter(
            collector.grpc_endpoint,
            certificate_file=pki["ca"],
            client_certificate_file=pki["client_cert"],
            client_key_file=pki["client_key"],
        ) as exporter:
            result = await exporter.export_logs(samples.logs())
        assert result.ok, result.error
        # without a client certificate the server refuses the handshake: a permanent TLS error, nothing arrives
        transport = transport_for(collector.grpc_endpoint, certificate_file=pki["ca"])
        try:
            with pytest.raises(PermanentError, match="TLS"):
                await exchange(transport, encode_logs(samples.logs()), timeout=3)
        finally:
            await transport.close()
        assert len(collector.received) == 1


async def test_a_tls_shutdown_is_prompt_and_closes_the_socket(pki: dict[str, Any]) -> None:
    """grpc C-core never answers our TLS close_notify: closing must not wait for it (it used to cost 1 s)."""
    async with FakeCollector(ssl_cert=pki["server_cert"], ssl_key=pki["server_key"]) as collector:
        for _ in range(2):
            transport = transport_for(collector.grpc_endpoint, certificate_file=pki["ca"])
            await exchange(transport, encode_traces(samples.spans(1)), timeout=3)
            connection = transport.connection
            assert connection is not None and connection.usable
            loop = asyncio.get_running_loop()
            start = loop.time()
            await transport.close()
            elapsed = loop.time() - start
            assert elapsed < 0.3, f"closing a TLS connection took {elapsed:.3f}s"
            assert connection.closed.done()  # connection_lost ran: the socket is closed, not left to linger
        async with h2_exporter(collector.grpc_endpoint, certificate_file=pki["ca"]) as exporter:
            assert (await exporter.export_traces(samples.spans(1))).ok
            start = loop.time()
        assert loop.time() - start < 0.3  # the exporter's shutdown, through every signal's transport
        assert len(collector.received) == 3


# -- a scripted h2 server ----------------------------------------------------------------------------------------


@dataclass
class Stream:
    """One request as the scripted server saw it, and the means to answer it."""

    server: H2Server
    conn: h2.connection.H2Connection
    writer: asyncio.StreamWriter
    stream_id: int
    headers: dict[str, str]
    body: bytearray = field(default_factory=bytearray)

    def flush(self) -> None:
        self.writer.write(self.conn.data_to_send())

    async def write_and_ping(self, frames: bytes, opaque_data: bytes = b"barrier!") -> None:
        """Write raw ``frames`` (beside h2) and a PING after them, and wait for the client's ACK of it: the client
        has then read ``frames`` (in order, on one connection). A client that never answers fails the call."""
        self.server.ping_acked.clear()
        ping = hyperframe.frame.PingFrame(0, opaque_data=opaque_data)
        self.writer.write(frames + ping.serialize())
        await asyncio.wait_for(self.server.ping_acked.wait(), 4)

    def message(self) -> bytes:
        assert self.body[0] == 0
        length = int.from_bytes(self.body[1:5], "big")
        assert len(self.body) == 5 + length
        return bytes(self.body[5:])

    def reply(
        self,
        *,
        status: int = 200,
        grpc_status: int | None = 0,
        message: bytes | None = b"",
        grpc_message: str = "",
        compress: bool | str = False,  # True: gzip; or the encoding's name
        trailers_only: bool = False,
    ) -> None:
        headers = [(":status", str(status)), ("content-type", "application/grpc")]
        encoding = "gzip" if compress is True else compress
        if encoding:
            headers.append(("grpc-encoding", encoding))
        status_headers = [] if grpc_status is None else [("grpc-status", str(grpc_status))]
        if grpc_message:
            status_headers.append(("grpc-message", urllib.parse.quote(grpc_message, safe=" ")))
        if trailers_only:
            self.conn.send_headers(self.stream_id, headers + status_headers, end_stream=True)
        else:
            self.conn.send_headers(self.stream_id, headers, end_stream=message is None and not status_headers)
            if message is not None:
                payload = compress_as(encoding, message) if encoding else message
                flag = b"\x01" if compress else b"\x00"
                self.conn.send_data(self.stream_id, flag + len(payload).to_bytes(4, "big") + payload)
            if status_headers:
                self.conn.send_headers(self.stream_id, status_headers, end_stream=True)
            elif message is not None:
                self.conn.end_stream(self.stream_id)
        self.flush()


Handler = Callable[[Stream], Awaitable[None]]


def compress_as(encoding: str, message: bytes) -> bytes:
    if encoding == "zstd":
        return zstd_compress(message)
    return zlib.compress(message) if encoding == "deflate" else gzip.compress(message)


async def answer_ok(stream: Stream) -> None:
    stream.reply()


class H2Server:
    """An HTTP/2 server on 127.0.0.1:0 (h2, server side) whose handler answers each request as scripted."""

    def __init__(
        self, handler: Handler = answer_ok, *, settings: dict[int, int] | None = None, stall_after: int | None = None
    ) -> None:
        self.handler = handler
        self.settings = settings or {}
        self.stall_after = stall_after  # stop reading after this many bytes (the client's socket buffer fills)
        self.stalled = asyncio.Event()
        self.streams: list[Stream] = []
        self.resets: list[tuple[int, int]] = []
        self.connections = 0
        self.active = 0
        self.max_active = 0
        self.reset_seen = asyncio.Event()
        self.ping_acked = asyncio.Event()  # set on each PING ACK the server receives (Stream.write_and_ping)
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._writers: set[asyncio.StreamWriter] = set()

    @property
    def endpoint(self) -> str:
        assert self._server is not None
        return f"http://127.0.0.1:{self._server.sockets[0].getsockname()[1]}"

    async def __aenter__(self) -> H2Server:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        assert self._server is not None
        self._server.close()
        for writer in list(self._writers):
            writer.close()
        for task in list(self._tasks):
            task.cancel()
        if self._tasks:
            await asyncio.wait(self._tasks)
        await self._server.wait_closed()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        self._writers.add(writer)
        self.connections += 1
        conn = h2.connection.H2Connection(h2.config.H2Configuration(client_side=False, header_encoding="utf-8"))
        conn.local_settings = h2.settings.Settings(client=False, initial_values=self.settings)  # type: ignore[arg-type]
        # settings given as initial values are in force at once (no ACK to wait for): so is their frame size
        conn.max_inbound_frame_size = conn.incoming_buffer.max_frame_size = conn.local_settings.max_frame_size
        conn.initiate_connection()
        if self.stall_after is not None:
            conn.increment_flow_control_window(2**31 - 1 - 65535)
        writer.write(conn.data_to_send())
        open_streams: dict[int, Stream] = {}
        received = 0
        try:
            while data := await reader.read(65536):
                received += len(data)
                if self.stall_after is not None and received > self.stall_after:
                    self.stalled.set()
                    await asyncio.sleep(3600)
                for event in conn.receive_data(data):
                    if isinstance(event, h2.events.RequestReceived):
                        headers = dict(event.headers)  # type: ignore[arg-type]
                        open_streams[event.stream_id] = Stream(self, conn, writer, event.stream_id, headers)
                    elif isinstance(event, h2.events.DataReceived):
                        open_streams[event.stream_id].body += event.data
                        conn.acknowledge_received_data(event.flow_controlled_length, event.stream_id)
                    elif isinstance(event, h2.events.StreamEnded):
                        stream = open_streams.pop(event.stream_id)
                        self.streams.append(stream)
                        handler = asyncio.create_task(self._handle(stream))
                        self._tasks.add(handler)
                        handler.add_done_callback(self._tasks.discard)
                    elif isinstance(event, h2.events.PingAckReceived):
                        self.ping_acked.set()
                    elif isinstance(event, h2.events.StreamReset):
                        self.resets.append((event.stream_id, int(event.error_code)))
                        self.reset_seen.set()
                writer.write(conn.data_to_send())
        except (ConnectionError, h2.exceptions.ProtocolError):
            pass
        finally:
            writer.close()
            self._writers.discard(writer)
            self._tasks.discard(task)

    async def _handle(self, stream: Stream) -> None:
        self.active += 1
        self.max_active = max(self.max_active, self.active)
        try:
            await self.handler(stream)
        except (ConnectionError, h2.exceptions.StreamClosedError):
            pass
        finally:
            self.active -= 1


async def send_to(server: H2Server, body: bytes = b"\x0a\x00", *, timeout: float = 5, **kwargs: Any) -> Any:
    transport = transport_for(server.endpoint, **kwargs)
    try:
        return await exchange(transport, body, timeout=timeout)
    finally:
        await transport.close()


async def test_request_headers_follow_the_grpc_wire_format() -> None:
    async with H2Server() as server:
        endpoint = server.endpoint
        await send_to(server, b"abc", timeout=1.5, headers={"x-tenant": "t1", "user-agent": "app/1"})
    stream = server.streams[0]
    headers = stream.headers
    assert headers[":method"] == "POST"
    assert headers[":scheme"] == "http"
    assert headers[":path"] == "/opentelemetry.proto.collector.trace.v1.TraceService/Export"
    assert headers[":authority"] == endpoint.removeprefix("http://")
    assert headers["content-type"] == "application/grpc"
    assert headers["te"] == "trailers"
    assert headers["grpc-accept-encoding"] == "identity,gzip,deflate,zstd"
    assert "grpc-encoding" not in headers
    assert 1400 <= int(headers["grpc-timeout"].removesuffix("m")) <= 1500
    assert headers["user-agent"].startswith("app/1 OTel-OTLP-Exporter-Python/")
    assert headers["x-tenant"] == "t1"
    assert stream.message() == b"abc"


async def test_gzip_request_and_response() -> None:
    response = b"\x0a\x07\x08\x03\x12\x03old"  # partial_success {rejected: 3, error_message: "old"}

    async def handler(stream: Stream) -> None:
        stream.reply(message=response, compress=True)

    async with H2Server(handler) as server:
        transport = transport_for(server.endpoint, compression="gzip")
        try:
            result = await exchange(transport, b"hello" * 100, timeout=5, compress_body=True)
        finally:
            await transport.close()
    assert (result.rejected, result.error_message) == (3, "old")
    stream = server.streams[0]
    assert stream.headers["grpc-encoding"] == "gzip"
    assert stream.body[0] == 1
    assert gzip.decompress(bytes(stream.body[5:])) == b"hello" * 100


@pytest.mark.parametrize("encoding", ["zstd", "deflate"])
async def test_zstd_request_and_zstd_or_deflate_response(encoding: str) -> None:
    response = b"\x0a\x07\x08\x03\x12\x03old"  # partial_success {rejected: 3, error_message: "old"}

    async def handler(stream: Stream) -> None:
        stream.reply(message=response, compress=encoding)

    async with H2Server(handler) as server:
        transport = transport_for(server.endpoint, compression="zstd")
        try:
            result = await exchange(transport, b"hello" * 100, timeout=5, compress_body=True)
        finally:
            await transport.close()
    assert (result.rejected, result.error_message) == (3, "old")
    stream = server.streams[0]
    assert stream.headers["grpc-encoding"] == "zstd"
    assert stream.body[0] == 1
    assert zstd_decompress(bytes(stream.body[5:]), 1000) == b"hello" * 100


@pytest.mark.parametrize(("encoding", "match"), [("zstd", "larger than"), ("br", "unsupported encoding")])
async def test_a_zstd_bomb_or_an_unknown_encoding_in_a_response_is_refused(encoding: str, match: str) -> None:
    async def handler(stream: Stream) -> None:
        if encoding == "zstd":
            stream.reply(message=bytes(32 * 1024 * 1024), compress="zstd")
        else:
            headers = [(":status", "200"), ("content-type", "application/grpc"), ("grpc-encoding", "br")]
            stream.conn.send_headers(stream.stream_id, headers)
            stream.conn.send_data(stream.stream_id, b"\x01\x00\x00\x00\x03abc")
            stream.conn.send_headers(stream.stream_id, [("grpc-status", "0")], end_stream=True)
            stream.flush()

    async with H2Server(handler) as server:
        transport = transport_for(server.endpoint)
        try:
            with pytest.raises(ExportError, match=match):
                await exchange(transport, b"", timeout=5)
        finally:
            await transport.close()


@pytest.mark.parametrize(
    ("reply", "error", "status"),
    [
        ({"grpc_status": 14, "grpc_message": "busy 100% ✓", "trailers_only": True}, ServerBusyError, "UNAVAILABLE"),
        ({"grpc_status": 3, "trailers_only": True}, RejectedError, "INVALID_ARGUMENT"),
        ({"status": 503, "grpc_status": None, "message": None}, ServerBusyError, "UNAVAILABLE"),
        ({"status": 429, "grpc_status": None, "message": None}, ServerBusyError, "UNAVAILABLE"),
        ({"status": 404, "grpc_status": None, "message": None}, RejectedError, "UNIMPLEMENTED"),
        ({"status": 401, "grpc_status": None, "message": None}, RejectedError, "UNAUTHENTICATED"),
        ({"status": 500, "grpc_status": None, "message": None}, RejectedError, "UNKNOWN"),
        ({"grpc_status": None}, RejectedError, "INTERNAL"),  # no status at all
        ({"grpc_status": 0, "message": None}, None, None),  # OK and no message: leniently a success
    ],
    ids=[
        "trailers-only-14",
        "trailers-only-3",
        "http-503",
        "http-429",
        "http-404",
        "http-401",
        "http-500",
        "none",
        "ok",
    ],
)
async def test_statuses(reply: dict[str, Any], error: type[Exception] | None, status: str | None) -> None:
    async def handler(stream: Stream) -> None:
        stream.reply(**reply)

    async with H2Server(handler) as server:
        if error is None:
            assert (await send_to(server)).rejected == 0
            return
        with pytest.raises(error) as info:
            await send_to(server)
    assert info.value.status == status  # type: ignore[attr-defined]
    if "grpc_message" in reply:
        assert reply["grpc_message"] in str(info.value)


@pytest.mark.parametrize(("code", "error"), [(7, ServerBusyError), (8, ServerBusyError), (2, RejectedError)])
async def test_a_stream_reset_by_the_server_is_classified_by_its_code(code: int, error: type[Exception]) -> None:
    async def handler(stream: Stream) -> None:
        stream.conn.reset_stream(stream.stream_id, code)
        stream.flush()

    async with H2Server(handler) as server:
        with pytest.raises(error, match="reset the stream"):
            await send_to(server)


async def test_goaway_fails_the_calls_the_server_did_not_take_and_reconnects() -> None:
    first = True

    async def handler(stream: Stream) -> None:
        nonlocal first
        if first:
            first = False
            stream.conn.close_connection(last_stream_id=0)  # "I took nothing": the call may be retried
            stream.flush()
            return
        stream.reply()

    async with H2Server(handler) as server:
        transport = transport_for(server.endpoint)
        try:
            with pytest.raises(ConnectError, match="GOAWAY"):
                await exchange(transport, b"", timeout=5)
            await exchange(transport, b"", timeout=5)
        finally:
            await transport.close()
    assert server.connections == 2


async def test_goaway_lets_the_calls_the_server_took_finish() -> None:
    async def handler(stream: Stream) -> None:
        # a graceful GOAWAY naming this stream as processed, written beside h2 (whose state machine would refuse
        # to answer after its own GOAWAY); once the client has read it (it answered the PING behind it), the answer
        goaway = hyperframe.frame.GoAwayFrame(0, last_stream_id=stream.stream_id, error_code=0)
        await stream.write_and_ping(goaway.serialize())
        stream.reply()

    async with H2Server(handler) as server:
        transport = transport_for(server.endpoint)
        try:
            for _ in range(2):
                assert (await exchange(transport, b"", timeout=5)).rejected == 0
        finally:
            await transport.close()
    assert server.connections == 2


async def test_grpc_go_graceful_goaway_with_a_ping_lets_the_calls_in_flight_finish() -> None:
    """grpc-go's graceful close (max_connection_age, GracefulStop): GOAWAY(2^31-1) and a PING in one write, then
    GOAWAY(last stream) once the PING is answered, then the answers. h2 used to close on the first GOAWAY and
    raise a ProtocolError on the PING: every call in flight failed as permanent ("broke the HTTP/2 protocol")."""

    async def handler(stream: Stream) -> None:
        first = hyperframe.frame.GoAwayFrame(0, last_stream_id=2**31 - 1, error_code=0)
        # in one write; then grpc-go waits for the PING's ACK
        await stream.write_and_ping(first.serialize(), b"\x01\x06\x01\x08\x00\x03\x03\x09")
        second = hyperframe.frame.GoAwayFrame(0, last_stream_id=stream.stream_id, error_code=0)
        stream.writer.write(second.serialize())
        stream.reply()

    async with H2Server(handler) as server:
        transport = transport_for(server.endpoint)
        try:
            for _ in range(2):
                assert (await exchange(transport, b"", timeout=5)).rejected == 0
        finally:
            await transport.close()
    assert server.connections == 2


async def test_a_connection_closed_before_the_response_is_a_connect_error() -> None:
    async def handler(stream: Stream) -> None:
        stream.writer.close()

    async with H2Server(handler) as server:
        with pytest.raises(ConnectError):
            await send_to(server)


async def test_max_concurrent_streams_is_respected() -> None:
    async def handler(stream: Stream) -> None:
        await asyncio.sleep(0.05)
        stream.reply()

    settings = {h2.settings.SettingCodes.MAX_CONCURRENT_STREAMS: 2}
    async with H2Server(handler, settings=settings) as server:
        transport = transport_for(server.endpoint)
        try:
            await exchange(transport, b"", timeout=5)  # connected: the server's SETTINGS are known
            results = await asyncio.gather(*(exchange(transport, b"", timeout=5) for _ in range(8)))
        finally:
            await transport.close()
    assert len(results) == 8
    assert server.connections == 1
    assert server.max_active == 2


async def test_a_body_larger_than_the_windows_waits_for_window_updates() -> None:
    body = bytes(range(256)) * 800  # 200 KiB

    async def handler(stream: Stream) -> None:
        assert stream.message() == body
        stream.reply()

    settings = {h2.settings.SettingCodes.INITIAL_WINDOW_SIZE: 1000, h2.settings.SettingCodes.MAX_FRAME_SIZE: 16384}
    async with H2Server(handler, settings=settings) as server:
        await send_to(server, body)
    assert server.streams[0].message() == body


@pytest.mark.parametrize(
    ("window", "frame", "size"),
    [
        (3, 16384, 1000),  # the 5-byte prefix itself split across two frames
        (1000, 16384, 16384 * 3 - 5),  # the message ends exactly on a frame boundary
        (65535, 16384, 200 * 1024),
        (2**20, 65536, 700 * 1024),  # frames of the server's larger maximum; several 256 KiB writes
        (2**31 - 1, 2**24 - 1, 3 * 1024 * 1024),  # the largest frames and windows HTTP/2 allows
    ],
)
async def test_data_frames_respect_the_servers_frame_size_and_windows(window: int, frame: int, size: int) -> None:
    """The body is framed by aiotlp (all but the last frame) with h2's windows debited by hand: the server's h2
    refuses any frame over its maximum or its windows, and a second call on the same connection shows that the
    client's accounting stayed right."""
    bodies = [bytes(range(256)) * (size // 256) + bytes(size % 256), b"second" * (size // 6)]

    async def handler(stream: Stream) -> None:
        stream.reply()

    settings = {h2.settings.SettingCodes.INITIAL_WINDOW_SIZE: window, h2.settings.SettingCodes.MAX_FRAME_SIZE: frame}
    async with H2Server(handler, settings=settings) as server:
        transport = transport_for(server.endpoint, max_request_bytes=16 * 1024 * 1024)
        try:
            for body in bodies:
                await exchange(transport, body, timeout=10)
        finally:
            await transport.close()
    assert server.connections == 1
    assert [stream.message() for stream in server.streams] == bodies


async def test_a_timeout_while_the_socket_buffer_is_full_is_prompt() -> None:
    settings = {h2.settings.SettingCodes.INITIAL_WINDOW_SIZE: 2**31 - 1}
    async with H2Server(settings=settings, stall_after=1024 * 1024) as server:
        transport = transport_for(server.endpoint)
        try:
            start = time.monotonic()
            with pytest.raises(AttemptTimeoutError):
                await exchange(transport, bytes(64 * 1024 * 1024), timeout=0.5)
            assert time.monotonic() - start < 1.0
            assert server.stalled.is_set()
        finally:
            await transport.close()


async def test_a_server_that_does_not_speak_http2_is_a_permanent_error() -> None:
    async def http1(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read(100)
        writer.write(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(http1, "127.0.0.1", 0)
    try:
        port = server.sockets[0].getsockname()[1]
        transport = transport_for(f"http://127.0.0.1:{port}")
        try:
            with pytest.raises((PermanentError, ConnectError)):
                await exchange(transport, b"", timeout=2)
        finally:
            await transport.close()
    finally:
        server.close()
        await server.wait_closed()


@pytest.fixture(scope="module")
def gzip_bomb() -> bytes:
    return gzip.compress(bytes(64 * 1024 * 1024), compresslevel=9)  # ~64 KiB


async def test_a_gzip_bomb_reply_is_refused_without_inflating_it(gzip_bomb: bytes) -> None:
    async def handler(stream: Stream) -> None:
        stream.conn.send_headers(
            stream.stream_id, [(":status", "200"), ("content-type", "application/grpc"), ("grpc-encoding", "gzip")]
        )
        stream.conn.send_data(stream.stream_id, b"\x01" + len(gzip_bomb).to_bytes(4, "big"))
        for start in range(0, len(gzip_bomb), 16384):
            stream.conn.send_data(stream.stream_id, gzip_bomb[start : start + 16384])
        stream.conn.send_headers(stream.stream_id, [("grpc-status", "0")], end_stream=True)
        stream.flush()

    settings = {h2.settings.SettingCodes.MAX_FRAME_SIZE: 16384}
    async with H2Server(handler, settings=settings) as server:
        tracemalloc.start()
        try:
            with pytest.raises(ResponseError, match="larger than"):
                await send_to(server)
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
    assert peak < 16 * 1024 * 1024


async def test_a_timeout_resets_the_stream_with_cancel() -> None:
    async def handler(stream: Stream) -> None:
        await asyncio.sleep(30)

    async with H2Server(handler) as server:
        transport = transport_for(server.endpoint)
        try:
            with pytest.raises(AttemptTimeoutError):
                await exchange(transport, b"", timeout=0.2)
            await asyncio.wait_for(server.reset_seen.wait(), 2)
        finally:
            await transport.close()
    assert server.resets == [(1, 8)]  # CANCEL


def test_runs_on_uvloop() -> None:
    uvloop = pytest.importorskip("uvloop")

    async def main() -> int:
        async with H2Server() as server:
            transport = transport_for(server.endpoint)
            try:
                for _ in range(3):
                    await exchange(transport, b"\x0a\x00", timeout=5)
            finally:
                await transport.close()
        return server.connections

    loop = uvloop.new_event_loop()
    try:
        assert loop.run_until_complete(main()) == 1
    finally:
        loop.close()


def test_the_stateless_hpack_encoder_round_trips() -> None:
    from hpack import Decoder, NeverIndexedHeaderTuple

    from aiotlp.transport._hpack import StaticEncoder as _StaticEncoder

    encoder, decoder = _StaticEncoder(), Decoder()
    headers: list[tuple[bytes, bytes]] = [
        (b":method", b"POST"),
        (b":scheme", b"https"),
        (b":path", b"/opentelemetry.proto.collector.trace.v1.TraceService/Export"),
        (b":authority", b"collector.example:4317"),
        (b"te", b"trailers"),
        (b"authorization", b"Bearer t"),
        (b"x-long", b"v" * 300),
        NeverIndexedHeaderTuple(b"x-secret", b"s"),
        (b"grpc-timeout", b"1500m"),
    ]
    for timeout in (b"1m", b"1500m", b"99999999m", b"27S"):
        headers[-1] = (b"grpc-timeout", timeout)
        decoded = decoder.decode(encoder.encode(headers), raw=True)
        assert decoded == headers
        never_indexed = {header[0] for header in decoded if type(header) is NeverIndexedHeaderTuple}
        assert never_indexed == {b"authorization", b"x-secret", b"grpc-timeout"}
    assert decoder.header_table_size == 0  # nothing was ever indexed


async def test_no_header_value_in_logs_or_errors(collector: FakeCollector, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    canary = "s3cr3t-canary-h2"
    collector.script(Reply(grpc_code=grpc.StatusCode.UNAUTHENTICATED, message="who are you"))
    exporter = h2_exporter(collector.grpc_endpoint, headers={"authorization": f"Bearer {canary}", "x-key": canary})
    results = [await exporter.export_traces(samples.spans(1))]
    assert collector.received[0].headers["x-key"] == canary  # it was sent
    await collector.stop()
    results.append(await exporter.export_traces(samples.spans(1)))  # connection refused
    await exporter.shutdown()
    assert all(r.error is not None for r in results)
    for text in (*results, *(r.error for r in results), exporter, caplog.text):
        assert canary not in str(text) and canary not in repr(text)
