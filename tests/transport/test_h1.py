"""aiotlp's HTTP/1.1 client (``aiotlp.transport._h1``) and the OTLP/HTTP transport over it, against small asyncio
servers on 127.0.0.1:0 written here, each answering as scripted: keep-alive reuse, a server that closes an idle
connection (noticed before reuse, or not: the request is sent again once), ``Connection: close`` and HTTP/1.0,
chunked and read-to-close bodies, interim 1xx responses, an oversized header section, a truncated body, a gzip
bomb, a request cancelled mid-response, TLS and mTLS (trustme), IPv6 loopback, an HTTP/2-only server.

The client is the private module under test (``aiotlp.transport._h1``); its state is read through its public
properties (``idle``, ``busy``, ``connections_made``) and the transport's (``idle_connections``,
``busy_connections``).
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import gzip
import socket
import ssl
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from pathlib import Path
from typing import Any

import pytest
import trustme

from aiotlp import ConnectError, PermanentError, ProtocolMismatchError, ResponseError
from aiotlp.config import SignalConfig
from aiotlp.model import Signal
from aiotlp.transport import IDENTITY, BoundedInflater, HttpTransport
from aiotlp.transport._h1 import (
    MAX_HEADER_BYTES,
    BadResponse,
    ConnectFailed,
    Disconnected,
    H1Client,
    Sink,
    TLSFailed,
)

Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter, "Server"], Awaitable[None]]

OK = b"HTTP/1.1 200 OK\r\nContent-Type: application/x-protobuf\r\nContent-Length: 0\r\n\r\n"


class Request:
    def __init__(self, line: str, headers: dict[str, str], body: bytes) -> None:
        self.line = line
        self.headers = headers
        self.body = body


class Server:
    """A TCP (or TLS) server on a loopback port 0 running ``handler`` for each connection; records requests."""

    def __init__(self, handler: Handler, *, host: str = "127.0.0.1", ssl: ssl.SSLContext | None = None) -> None:
        self.handler = handler
        self.host = host
        self.ssl = ssl
        self.connections = 0
        self.requests: list[Request] = []
        self.closed = asyncio.Event()  # set each time a handler ends (the server closed its side)
        self.peer_eof = asyncio.Event()  # set when a client closed a connection the server was reading
        self._tasks: set[asyncio.Task[None]] = set()
        self._writers: list[asyncio.StreamWriter] = []

    async def __aenter__(self) -> Server:
        self._server = await asyncio.start_server(self._serve, self.host, 0, ssl=self.ssl)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *exc: object) -> None:
        self._server.close()
        for writer in self._writers:
            writer.transport.abort()  # the handlers see the end of their connection and return
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self._server.wait_closed()

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{'https' if self.ssl else 'http'}://{host}:{self.port}/v1/traces"

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        self._writers.append(writer)
        self.connections += 1
        try:
            await self.handler(reader, writer, self)
        except (ConnectionError, asyncio.IncompleteReadError, ssl.SSLError):
            pass
        finally:
            self._tasks.discard(task)
            writer.close()
            with contextlib.suppress(ConnectionError, ssl.SSLError):
                await writer.wait_closed()
            self.closed.set()

    async def read_request(self, reader: asyncio.StreamReader) -> Request | None:
        """The next request on the connection, or None when the client closed it."""
        try:
            head = await reader.readuntil(b"\r\n\r\n")
        except asyncio.IncompleteReadError:
            self.peer_eof.set()
            return None
        line, *lines = head[:-4].decode("latin-1").split("\r\n")
        headers: dict[str, str] = {}
        for text in lines:
            name, _, value = text.partition(":")
            assert name.lower() not in headers, f"{name} sent twice"
            headers[name.lower()] = value.strip()
        body = await reader.readexactly(int(headers["content-length"]))
        request = Request(line, headers, body)
        self.requests.append(request)
        return request


def answering(*responses: bytes, then_close: bool = False) -> Handler:
    """Answers each request on a connection with the next of ``responses`` (the last one repeats)."""

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, server: Server) -> None:
        n = 0
        while await server.read_request(reader) is not None:
            writer.write(responses[min(n, len(responses) - 1)])
            await writer.drain()
            n += 1
            if then_close:
                return

    return handler


def sink(status: int, headers: Mapping[str, str]) -> Sink:
    return BoundedInflater(headers.get("content-encoding", "identity"))


@pytest.fixture
async def client_for() -> AsyncIterator[Callable[..., H1Client]]:
    clients: list[H1Client] = []

    def make(server: Server, **kwargs: Any) -> H1Client:
        client = H1Client(server.host, server.port, **kwargs)
        clients.append(client)
        return client

    yield make
    for client in clients:
        await client.close()


async def post(client: H1Client, body: bytes = b"x", headers: Mapping[str, str] | None = None) -> Any:
    head = client.request_head("/v1/traces", {"content-type": "application/x-protobuf", **(headers or {})})
    return await client.post(head, body, sink)


def config(url: str, **kwargs: Any) -> SignalConfig:
    return SignalConfig(signal=Signal.TRACES, protocol="http/protobuf", endpoint=url, **kwargs)


# -- requests and keep-alive


async def test_a_request_has_the_headers_and_connections_are_kept_alive(client_for: Callable[..., H1Client]) -> None:
    async with Server(answering(OK)) as server:
        client = client_for(server)
        for size in (0, 10, 200_000):  # the last one written in two parts
            response = await post(client, bytes(size), {"x-tenant": "a"})
            assert (response.status, response.body) == (200, b"")
        assert server.connections == 1 and client.connections_made == 1
        first = server.requests[0]
        assert first.line == "POST /v1/traces HTTP/1.1"
        assert first.headers["host"] == f"127.0.0.1:{server.port}"
        assert first.headers["content-length"] == "0" and "transfer-encoding" not in first.headers
        assert first.headers["x-tenant"] == "a"
        assert [len(r.body) for r in server.requests] == [0, 10, 200_000]


async def test_concurrent_requests_open_a_connection_each_and_the_pool_keeps_them(
    client_for: Callable[..., H1Client],
) -> None:
    gate = asyncio.Event()

    async def slow(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, server: Server) -> None:
        while await server.read_request(reader) is not None:
            if len(server.requests) >= 3:
                gate.set()
            await gate.wait()  # answer once three requests are in flight at once
            writer.write(OK)

    async with Server(slow) as server:
        client = client_for(server)
        await asyncio.gather(*(post(client) for _ in range(3)))
        assert client.idle == 3
        await asyncio.gather(*(post(client) for _ in range(3)))
        assert server.connections == 3 and len(server.requests) == 6


async def test_the_transport_sends_what_it_did_with_aiohttp(client_for: Callable[..., H1Client]) -> None:
    """User-Agent, Accept-Encoding, Content-Type, Content-Encoding, the configured headers, userinfo as Basic."""
    async with Server(answering(OK)) as server:
        url = server.url.replace("http://", "http://user:p%40ss@")
        transport = HttpTransport(config(url, headers={"x-api-key": "k"}, compression="gzip"))
        try:
            reply = await transport.send(gzip.compress(b"x"), content_encoding="gzip", timeout=5)
            assert reply.status == 200 and reply.content_type == "application/x-protobuf"
            await transport.send(b"x", content_encoding=IDENTITY, timeout=5)
        finally:
            await transport.close()
    gzipped, plain = server.requests
    assert gzipped.headers["user-agent"].startswith("OTel-OTLP-Exporter-Python/")
    assert "aiotlp/" in gzipped.headers["user-agent"]
    assert gzipped.headers["accept-encoding"].startswith("gzip, deflate")
    assert gzipped.headers["content-type"] == "application/x-protobuf"
    assert gzipped.headers["content-encoding"] == "gzip" and "content-encoding" not in plain.headers
    assert gzipped.headers["x-api-key"] == "k"
    assert gzipped.headers["authorization"] == "Basic " + base64.b64encode(b"user:p@ss").decode()
    assert gzipped.headers["host"] == f"127.0.0.1:{server.port}"
    assert gzipped.line == "POST /v1/traces HTTP/1.1"
    assert server.connections == 1


# -- a server that closes kept-alive connections


async def test_a_connection_the_server_closed_while_idle_is_not_reused(client_for: Callable[..., H1Client]) -> None:
    async def answer_then_fin(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, server: Server) -> None:
        await server.read_request(reader)
        writer.write(OK)
        writer.write_eof()  # the FIN; then read on, to see the client close its side
        await server.read_request(reader)

    async with Server(answer_then_fin) as server:
        client = client_for(server)
        await post(client)
        await server.peer_eof.wait()  # the client saw the FIN (on a later turn of the loop) and closed its side
        await post(client)
        assert server.connections == 2 and len(server.requests) == 2  # nothing sent on the closed one


async def test_a_reused_connection_closed_before_the_response_is_retried_once_on_a_new_one(
    client_for: Callable[..., H1Client],
) -> None:
    """The server takes the second request on the kept-alive connection and closes it without answering (as a
    server whose idle timeout fires just then does): the request goes again on a new connection, no error."""

    async def first_answers_second_drops(
        reader: asyncio.StreamReader, writer: asyncio.StreamWriter, server: Server
    ) -> None:
        await server.read_request(reader)
        writer.write(OK)
        if server.connections == 1:
            await server.read_request(reader)  # and close: no answer
        else:
            await answering(OK)(reader, writer, server)

    async with Server(first_answers_second_drops) as server:
        client = client_for(server)
        await post(client, b"one")
        response = await post(client, b"two")
        assert response.status == 200
        assert [r.body for r in server.requests] == [b"one", b"two", b"two"]
        assert server.connections == 2


async def test_a_new_connection_closed_before_the_response_is_an_error_not_retried(
    client_for: Callable[..., H1Client],
) -> None:
    async def drop(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, server: Server) -> None:
        await server.read_request(reader)

    async with Server(drop) as server:
        client = client_for(server)
        with pytest.raises(Disconnected, match="the connection closed before the response") as caught:
            await post(client)
        assert not caught.value.received
        assert server.connections == 1


async def test_a_truncated_body_is_an_error_and_never_retried(client_for: Callable[..., H1Client]) -> None:
    """On a reused connection too: part of the response arrived, so it is not sent again."""

    async def truncated(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, server: Server) -> None:
        await server.read_request(reader)
        writer.write(OK)
        await server.read_request(reader)
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n" + bytes(10))

    async with Server(truncated) as server:
        client = client_for(server)
        await post(client)
        with pytest.raises(Disconnected, match="in the middle of the response") as caught:
            await post(client)
        assert caught.value.received
        assert len(server.requests) == 2
        transport = HttpTransport(config(server.url))
        try:
            await transport.send(b"x", content_encoding=IDENTITY, timeout=5)
            with pytest.raises(ConnectError, match="in the middle of the response"):  # retryable, as with aiohttp
                await transport.send(b"x", content_encoding=IDENTITY, timeout=5)
        finally:
            await transport.close()


@pytest.mark.parametrize(
    "response",
    [
        b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 0\r\n\r\n",
        b"HTTP/1.0 200 OK\r\nContent-Length: 0\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nConnection: keep-alive, Close\r\nContent-Length: 0\r\n\r\n",
    ],
    ids=["connection-close", "http-1.0", "close-token"],
)
async def test_connection_close_and_http_1_0_are_honoured(response: bytes, client_for: Callable[..., H1Client]) -> None:
    async with Server(answering(response)) as server:  # the server would keep it: the client must not
        client = client_for(server)
        for _ in range(2):
            assert (await post(client)).status == 200
        assert client.idle == 0
        assert server.connections == 2


async def test_http_1_0_with_keep_alive_is_reused(client_for: Callable[..., H1Client]) -> None:
    async with Server(answering(b"HTTP/1.0 200 OK\r\nConnection: keep-alive\r\nContent-Length: 0\r\n\r\n")) as server:
        client = client_for(server)
        for _ in range(2):
            await post(client)
        assert server.connections == 1


# -- response bodies


async def test_a_chunked_body_with_extensions_and_trailers(client_for: Callable[..., H1Client]) -> None:
    chunked = (
        b"HTTP/1.1 400 Bad Request\r\nTransfer-Encoding: chunked\r\nContent-Type: text/plain\r\n\r\n"
        b"5;ext=1\r\nhello\r\n1\r\n \r\n5\r\nworld\r\n0\r\nX-Trailer: t\r\n\r\n"
    )
    async with Server(answering(chunked)) as server:
        client = client_for(server)
        for _ in range(2):
            response = await post(client)
            assert (response.status, response.reason, response.body) == (400, "Bad Request", b"hello world")
            assert response.headers["content-type"] == "text/plain"
        assert server.connections == 1  # reused after a chunked body


async def test_a_body_read_to_close(client_for: Callable[..., H1Client]) -> None:
    async def to_close(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, server: Server) -> None:
        await server.read_request(reader)
        writer.write(b"HTTP/1.1 503 Service Unavailable\r\nRetry-After: 3\r\n\r\nbusy ")
        await writer.drain()
        writer.write(b"for now")

    async with Server(to_close) as server:
        client = client_for(server)
        response = await post(client)
        assert (response.status, response.body, response.headers["retry-after"]) == (503, b"busy for now", "3")
        assert client.idle == 0


async def test_interim_1xx_responses_are_skipped(client_for: Callable[..., H1Client]) -> None:
    interim = b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\n"
    final = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nX-Final: yes\r\n\r\nok"
    async with Server(answering(interim + final)) as server:
        client = client_for(server)
        response = await post(client)
        assert (response.status, response.body, response.headers.get("link")) == (200, b"ok", None)
        await post(client)
        assert server.connections == 1


async def test_repeated_headers_are_joined_and_names_are_case_insensitive(client_for: Callable[..., H1Client]) -> None:
    response = b"HTTP/1.1 200 OK\r\nX-A: 1\r\nx-a: 2\r\nCONTENT-LENGTH: 0\r\n\r\n"
    async with Server(answering(response)) as server:
        got = await post(client_for(server))
        assert got.headers["x-a"] == "1, 2"


async def test_a_header_section_over_64_KiB_is_an_error(client_for: Callable[..., H1Client]) -> None:
    near = b"HTTP/1.1 200 OK\r\nX-Big: " + b"a" * (MAX_HEADER_BYTES - 100) + b"\r\nContent-Length: 0\r\n\r\n"
    over = b"HTTP/1.1 200 OK\r\nX-Big: " + b"a" * MAX_HEADER_BYTES + b"\r\nContent-Length: 0\r\n\r\n"
    async with Server(answering(near, over)) as server:
        client = client_for(server)
        assert (await post(client)).status == 200
        with pytest.raises(BadResponse, match="header section is larger than 65536 bytes"):
            await post(client)
        assert client.idle == 0


@pytest.mark.parametrize(
    ("response", "match"),
    [
        (b"HTTP/1.1 2OO OK\r\n\r\n", "3-digit"),
        (b"ICY 200 OK\r\n\r\n", "does not start with HTTP"),
        (b"HTTP/2 200\r\n\r\n", "does not start with HTTP/1.x"),
        (b"HTTP/1.2 200 OK\r\n\r\n", "not HTTP/1.0 or HTTP/1.1"),
        (b"HTTP/1.1 200 OK\r\nNoColon\r\n\r\n", "malformed"),
        (b"HTTP/1.1 200 OK\r\nX: a\r\n folded\r\n\r\n", "folded"),
        (b"HTTP/1.1 200 OK\r\nContent-Length: 1, 2\r\n\r\n", "conflicting Content-Length"),
        (b"HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n", "not a number"),
        (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n", "invalid chunk size"),
        (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nabX\r\n", "without its CRLF"),
        (b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\ngarbage", "7 bytes more than its response"),
        (b"HTTP/1.1 101 Switching Protocols\r\n\r\n", "switched protocols"),
    ],
)
async def test_malformed_responses(response: bytes, match: str, client_for: Callable[..., H1Client]) -> None:
    async with Server(answering(response)) as server:
        client = client_for(server)
        with pytest.raises(BadResponse, match=match):
            await post(client)
        assert client.idle == 0


@pytest.fixture(scope="module")
def bomb() -> bytes:
    """64 MiB of zeros gzipped (~64 KiB), made once, off the event loop (it takes a while)."""
    return gzip.compress(bytes(64 * 1024 * 1024), compresslevel=1)


async def test_a_gzip_bomb_stops_at_the_cap(bomb: bytes) -> None:
    head = b"HTTP/1.1 200 OK\r\nContent-Encoding: gzip\r\nContent-Length: %d\r\n\r\n" % len(bomb)
    async with Server(answering(head + bomb)) as server:
        transport = HttpTransport(config(server.url))
        try:
            with pytest.raises(ResponseError, match=r"larger than 4194304 bytes \(after decompression\)"):
                await transport.send(b"x", content_encoding=IDENTITY, timeout=10)
        finally:
            await transport.close()


async def test_an_announced_body_over_the_cap_is_refused_unread(client_for: Callable[..., H1Client]) -> None:
    async with Server(answering(b"HTTP/1.1 200 OK\r\nContent-Length: 1000000000000\r\n\r\n")) as server:
        transport = HttpTransport(config(server.url))
        try:
            with pytest.raises(ResponseError, match="announces 1000000000000 bytes"):
                await transport.send(b"x", content_encoding=IDENTITY, timeout=5)
        finally:
            await transport.close()


# -- cancellation and close


async def test_a_request_cancelled_mid_response_closes_its_connection(client_for: Callable[..., H1Client]) -> None:
    started = asyncio.Event()

    async def half(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, server: Server) -> None:
        if await server.read_request(reader) is None:
            return
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n12345")
        await writer.drain()
        started.set()
        await server.read_request(reader)  # returns at the client's EOF

    async with Server(half) as server:
        client = client_for(server)
        reading = asyncio.Event()

        def reading_sink(status: int, headers: Mapping[str, str]) -> Sink:
            reading.set()  # the header section is read: the client is in the middle of the response
            return sink(status, headers)

        head = client.request_head("/v1/traces", {})
        task = asyncio.create_task(client.post(head, b"x", reading_sink))
        await asyncio.gather(started.wait(), reading.wait())
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        await server.peer_eof.wait()  # the client closed that connection
        assert client.idle == 0 and client.busy == 0


async def test_a_timeout_through_the_transport_is_an_attempt_timeout_and_the_connection_is_dropped() -> None:
    async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, server: Server) -> None:
        await server.read_request(reader)
        await server.read_request(reader)

    async with Server(silent) as server:
        transport = HttpTransport(config(server.url))
        try:
            with pytest.raises(Exception, match=r"no response from .* within 0\.2s") as caught:
                await transport.send(b"x", content_encoding=IDENTITY, timeout=0.2)
            assert type(caught.value).__name__ == "AttemptTimeoutError"
            await server.peer_eof.wait()
            assert transport.idle_connections == 0 and transport.busy_connections == 0
        finally:
            await transport.close()


async def test_close_closes_idle_connections_and_refuses_more(client_for: Callable[..., H1Client]) -> None:
    async with Server(answering(OK)) as server:
        client = client_for(server)
        await post(client)
        await client.close()
        await server.peer_eof.wait()
        with pytest.raises(Exception, match="closed"):
            await post(client)


async def test_a_refused_connection_is_connect_failed_and_a_retryable_connect_error() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]  # bound, not listening: refused
        client = H1Client("127.0.0.1", port)
        with pytest.raises(ConnectFailed) as caught:
            await post(client)
        assert isinstance(caught.value.os_error, ConnectionRefusedError)
        transport = HttpTransport(config(f"http://127.0.0.1:{port}/v1/traces"))
        with pytest.raises(ConnectError, match=f"cannot connect to http://127.0.0.1:{port}/v1/traces"):
            await transport.send(b"x", content_encoding=IDENTITY, timeout=5)
        await transport.close()


# -- the wrong port


async def test_an_http2_only_server_is_told_apart(client_for: Callable[..., H1Client]) -> None:
    settings = b"\x00\x00\x06\x04\x00\x00\x00\x00\x00\x00\x03\x00\x00\x00\x64"

    async def h2(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, server: Server) -> None:
        await server.read_request(reader)
        writer.write(settings)
        await writer.drain()
        await reader.read()  # a real HTTP/2 server then waits for the preface

    async with Server(h2) as server:
        with pytest.raises(BadResponse, match="HTTP/2 frames") as caught:
            await post(client_for(server))
        assert caught.value.http2
        transport = HttpTransport(config(server.url))
        try:
            with pytest.raises(ProtocolMismatchError, match="OTLP/gRPC port"):
                await transport.send(b"x", content_encoding=IDENTITY, timeout=5)
        finally:
            await transport.close()


# -- TLS, mTLS, IPv6


@pytest.fixture(scope="module")
def ca() -> trustme.CA:
    return trustme.CA()


def _server_context(ca: trustme.CA, *, mtls: bool, seen: list[str | None]) -> ssl.SSLContext:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("localhost", "127.0.0.1").configure_cert(context)
    if mtls:
        context.verify_mode = ssl.CERT_REQUIRED
        ca.configure_trust(context)

    def sni(sock: Any, name: str | None, ctx: Any) -> None:
        seen.append(name)

    context.sni_callback = sni
    return context


def _pem(path: Path, blobs: list[bytes]) -> str:
    path.write_bytes(b"".join(blobs))
    return str(path)


async def test_tls_checks_the_name_sends_sni_and_verifies_the_ca(ca: trustme.CA, tmp_path: Path) -> None:
    names: list[str | None] = []
    cafile = _pem(tmp_path / "ca.pem", [ca.cert_pem.bytes()])
    async with Server(answering(OK), ssl=_server_context(ca, mtls=False, seen=names)) as server:
        for host in ("localhost", "127.0.0.1"):
            transport = HttpTransport(config(f"https://{host}:{server.port}/v1/traces", certificate_file=cafile))
            try:
                for _ in range(2):
                    assert (await transport.send(b"x", content_encoding=IDENTITY, timeout=5)).status == 200
            finally:
                await transport.close()
        assert names == ["localhost", None]  # SNI names a host, never an IP address
        assert server.connections == 2  # kept alive over TLS
        other = _pem(tmp_path / "other.pem", [trustme.CA().cert_pem.bytes()])
        transport = HttpTransport(config(server.url, certificate_file=other))
        try:
            with pytest.raises(PermanentError, match="TLS certificate verification failed"):
                await transport.send(b"x", content_encoding=IDENTITY, timeout=5)
        finally:
            await transport.close()
        client = H1Client("127.0.0.1", server.port, ssl=ssl.create_default_context())
        with pytest.raises(TLSFailed) as caught:
            await post(client)
        assert caught.value.verification


async def test_mtls(ca: trustme.CA, tmp_path: Path) -> None:
    cafile = _pem(tmp_path / "ca.pem", [ca.cert_pem.bytes()])
    leaf = ca.issue_cert("client")
    cert = _pem(tmp_path / "cert.pem", [blob.bytes() for blob in leaf.cert_chain_pems])
    key = _pem(tmp_path / "key.pem", [leaf.private_key_pem.bytes()])
    async with Server(answering(OK), ssl=_server_context(ca, mtls=True, seen=[])) as server:
        mutual = HttpTransport(
            config(server.url, certificate_file=cafile, client_certificate_file=cert, client_key_file=key)
        )
        anonymous = HttpTransport(config(server.url, certificate_file=cafile))
        try:
            assert (await mutual.send(b"x", content_encoding=IDENTITY, timeout=5)).status == 200
            with pytest.raises((ConnectError, PermanentError)):  # TLS 1.3: refused after the handshake
                await anonymous.send(b"x", content_encoding=IDENTITY, timeout=5)
        finally:
            await mutual.close()
            await anonymous.close()
        assert len(server.requests) == 1


def _has_ipv6_loopback() -> bool:
    if not socket.has_ipv6:
        return False
    try:
        with socket.socket(socket.AF_INET6) as probe:
            probe.bind(("::1", 0))
    except OSError:
        return False
    return True


@pytest.mark.skipif(not _has_ipv6_loopback(), reason="no IPv6 loopback on this machine")
async def test_ipv6_loopback() -> None:
    async with Server(answering(OK), host="::1") as server:
        transport = HttpTransport(config(server.url))
        try:
            for _ in range(2):
                assert (await transport.send(b"x", content_encoding=IDENTITY, timeout=5)).status == 200
        finally:
            await transport.close()
        assert server.requests[0].headers["host"] == f"[::1]:{server.port}"
        assert server.connections == 1


def test_runs_on_uvloop(ca: trustme.CA, tmp_path: Path) -> None:
    """Keep-alive, a server's idle close (the one retry) and TLS, on uvloop's transports."""
    uvloop = pytest.importorskip("uvloop")
    cafile = _pem(tmp_path / "ca.pem", [ca.cert_pem.bytes()])

    async def main() -> tuple[int, int, int]:
        async with Server(answering(OK)) as plain:
            transport = HttpTransport(config(plain.url))
            try:
                for _ in range(3):
                    assert (await transport.send(b"x", content_encoding=IDENTITY, timeout=5)).status == 200
            finally:
                await transport.close()

        async def close_after_one(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, server: Server) -> None:
            await server.read_request(reader)
            writer.write(OK)
            await server.read_request(reader)  # the next one on this connection: closed unanswered

        async with Server(close_after_one) as closing:
            client = H1Client(closing.host, closing.port)
            try:
                for _ in range(2):
                    assert (await post(client)).status == 200
            finally:
                await client.close()
        async with Server(answering(OK), ssl=_server_context(ca, mtls=False, seen=[])) as tls:
            transport = HttpTransport(config(f"https://localhost:{tls.port}/v1/traces", certificate_file=cafile))
            try:
                for _ in range(2):
                    assert (await transport.send(b"x", content_encoding=IDENTITY, timeout=5)).status == 200
            finally:
                await transport.close()
        return plain.connections, closing.connections, tls.connections

    loop = uvloop.new_event_loop()
    try:
        assert loop.run_until_complete(main()) == (1, 2, 1)
    finally:
        loop.close()
