"""The FakeCollector's second gRPC server: unary gRPC over ``h2`` on asyncio, for what grpc core cannot receive.

grpc core parses ``grpc-encoding`` while it decodes the request headers and fails the call with INTERNAL
("Error parsing 'grpc-encoding' metadata") for any encoding it does not implement, zstd among them, before a
handler sees it. ``FakeCollector(grpc_server="h2")`` serves its gRPC port with this server instead: the same
handler (``FakeCollector._grpc_export``, through :class:`_Context`, the few calls it makes on a grpc.aio
``ServicerContext``), so a request is recorded and answered exactly as under grpcio, and every message encoding
aiotlp sends (identity, gzip, deflate, zstd) is received. It answers UNIMPLEMENTED for an unknown ``grpc-encoding``
or method, RESOURCE_EXHAUSTED for a message over the size limit (neither recorded, as under grpcio), HTTP 415 for
a content type that is not gRPC. Flow control: it grants the client's data as it arrives and sends the response
within the client's windows.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import ssl
import struct
from collections.abc import Awaitable, Callable
from typing import Any, Final
from urllib.parse import quote

import grpc
from h2.config import H2Configuration
from h2.connection import H2Connection
from h2.events import (
    ConnectionTerminated,
    DataReceived,
    RequestReceived,
    StreamEnded,
    StreamReset,
    WindowUpdated,
)
from h2.exceptions import H2Error

from ..model import Signal

__all__ = ["H2GrpcServer"]

_ENCODINGS: Final = frozenset({b"identity", b"gzip", b"deflate", b"zstd"})
_HIDDEN: Final = frozenset(
    {b"content-type", b"te", b"grpc-timeout", b"grpc-encoding", b"grpc-accept-encoding", b"content-length"}
)

Handler = Callable[[Signal, bytes, "_Context"], Awaitable[bytes]]


class _Abort(Exception):
    def __init__(self, code: grpc.StatusCode, message: str, trailers: tuple[tuple[str, bytes], ...]) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.trailers = trailers


class _Context:
    """What ``FakeCollector._grpc_export`` uses of a grpc.aio ``ServicerContext``."""

    def __init__(self, metadata: list[tuple[str, str | bytes]], peer: str) -> None:
        self._metadata = metadata
        self._peer = peer
        self.gzip = False

    def invocation_metadata(self) -> list[tuple[str, str | bytes]]:
        return self._metadata

    def peer(self) -> str:
        return self._peer

    def set_compression(self, compression: grpc.Compression) -> None:
        self.gzip = compression == grpc.Compression.Gzip

    async def abort(
        self, code: grpc.StatusCode, details: str = "", trailing_metadata: tuple[tuple[str, bytes], ...] = ()
    ) -> None:
        raise _Abort(code, details, trailing_metadata)


class _Stream:
    def __init__(self, headers: dict[bytes, bytes], metadata: list[tuple[str, str | bytes]]) -> None:
        self.headers = headers
        self.metadata = metadata
        self.body = bytearray()
        self.too_large = False
        self.task: asyncio.Task[None] | None = None


class _ServerConnection(asyncio.Protocol):
    def __init__(self, server: H2GrpcServer) -> None:
        self._server = server
        self._h2 = H2Connection(H2Configuration(client_side=False, header_encoding=None))
        self._transport: asyncio.Transport | None = None
        self._streams: dict[int, _Stream] = {}
        self._window = asyncio.Event()
        self._peer = ""
        self.closed = asyncio.get_running_loop().create_future()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self._transport = transport
        self._server.connections.add(self)
        peer = transport.get_extra_info("peername")
        self._peer = f"ipv4:{peer[0]}:{peer[1]}" if peer else "unknown"
        self._h2.initiate_connection()
        self._flush()

    def connection_lost(self, exc: Exception | None) -> None:
        self._server.connections.discard(self)
        if not self.closed.done():
            self.closed.set_result(None)
        self._transport = None
        self._window.set()
        for stream in self._streams.values():
            if stream.task is not None:
                stream.task.cancel()
        self._streams.clear()

    def close(self) -> None:
        if self._transport is not None:
            self._transport.close()

    def _flush(self) -> None:
        data = self._h2.data_to_send()
        if data and self._transport is not None:
            self._transport.write(data)

    def data_received(self, data: bytes) -> None:
        try:
            events = self._h2.receive_data(data)
        except H2Error:
            self._flush()
            self.close()
            return
        for event in events:
            if isinstance(event, RequestReceived):
                self._request(event.stream_id, event.headers or [])
            elif isinstance(event, DataReceived):
                stream = self._streams.get(event.stream_id)
                if event.flow_controlled_length:
                    with contextlib.suppress(H2Error):
                        self._h2.acknowledge_received_data(event.flow_controlled_length, event.stream_id)
                if stream is not None and not stream.too_large:
                    stream.body += event.data or b""
                    if len(stream.body) > self._server.max_request_size + 5:
                        stream.too_large = True  # answered at the end of the stream; not buffered
                        stream.body = bytearray(stream.body[:5])
            elif isinstance(event, StreamEnded):
                stream = self._streams.get(event.stream_id)
                if stream is not None:
                    stream.task = asyncio.get_running_loop().create_task(self._answer(event.stream_id, stream))
            elif isinstance(event, StreamReset):
                stream = self._streams.pop(event.stream_id, None)
                if stream is not None and stream.task is not None:
                    stream.task.cancel()
            elif isinstance(event, WindowUpdated):
                self._window.set()
            elif isinstance(event, ConnectionTerminated):
                self._flush()
                self.close()
                return
        self._flush()

    def _request(self, stream_id: int, raw: Any) -> None:
        headers: dict[bytes, bytes] = {}
        metadata: list[tuple[str, str | bytes]] = []
        for name, value in raw:
            name = bytes(name)
            value = bytes(value)
            headers[name] = value
            if name.startswith(b":") or name in _HIDDEN:
                continue
            key = name.decode("latin-1")
            if key.endswith("-bin"):
                metadata.append((key, base64.b64decode(value + b"=" * (-len(value) % 4))))
            else:
                metadata.append((key, value.decode("latin-1")))
        self._streams[stream_id] = _Stream(headers, metadata)

    async def _answer(self, stream_id: int, stream: _Stream) -> None:
        try:
            await self._respond(stream_id, stream)
        except (H2Error, ConnectionError):
            self.close()
        finally:
            self._streams.pop(stream_id, None)

    async def _respond(self, stream_id: int, stream: _Stream) -> None:
        headers = stream.headers
        if not headers.get(b"content-type", b"").startswith(b"application/grpc"):
            self._h2.send_headers(stream_id, [(b":status", b"415")], end_stream=True)
            self._flush()
            return
        signal = self._server.methods.get(headers.get(b":path", b""))
        if signal is None:
            self._trailers_only(stream_id, grpc.StatusCode.UNIMPLEMENTED, "Method not found")
            return
        encoding = headers.get(b"grpc-encoding", b"identity")
        if encoding not in _ENCODINGS:
            self._trailers_only(stream_id, grpc.StatusCode.UNIMPLEMENTED, "unsupported grpc-encoding")
            return
        body = bytes(stream.body)
        if stream.too_large or (len(body) >= 5 and struct.unpack(">I", body[1:5])[0] > self._server.max_request_size):
            self._trailers_only(stream_id, grpc.StatusCode.RESOURCE_EXHAUSTED, "Received message larger than max")
            return
        if len(body) < 5 or len(body) != 5 + struct.unpack(">I", body[1:5])[0]:
            self._trailers_only(stream_id, grpc.StatusCode.INTERNAL, "not one length-prefixed message")
            return
        context = _Context(stream.metadata, self._peer)
        try:
            message = await self._server.handler(signal, body[5:], context)
        except _Abort as abort:
            self._trailers_only(stream_id, abort.code, abort.message, abort.trailers)
            return
        compressed = context.gzip
        if compressed:
            from ..transport import gzip_compress

            message = gzip_compress(message)
        response_headers = [(b":status", b"200"), (b"content-type", b"application/grpc")]
        if compressed:
            response_headers.append((b"grpc-encoding", b"gzip"))
        self._h2.send_headers(stream_id, response_headers)
        self._flush()
        await self._send_data(stream_id, struct.pack(">BI", int(compressed), len(message)) + message)
        self._h2.send_headers(stream_id, [(b"grpc-status", b"0")], end_stream=True)
        self._flush()

    async def _send_data(self, stream_id: int, data: bytes) -> None:
        view = memoryview(data)
        while view:
            if self._transport is None:
                raise ConnectionError("the connection closed")
            window = min(self._h2.local_flow_control_window(stream_id), self._h2.max_outbound_frame_size)
            if window <= 0:
                self._window.clear()
                await self._window.wait()
                continue
            self._h2.send_data(stream_id, bytes(view[:window]))
            view = view[window:]
            self._flush()

    def _trailers_only(
        self,
        stream_id: int,
        code: grpc.StatusCode,
        message: str,
        trailers: tuple[tuple[str, bytes], ...] = (),
    ) -> None:
        headers = [
            (b":status", b"200"),
            (b"content-type", b"application/grpc"),
            (b"grpc-status", str(code.value[0]).encode("ascii")),
        ]
        if message:
            headers.append((b"grpc-message", quote(message, safe=" !\"#$&'()*+,-./:;<=>?@[\\]^_`{|}~").encode()))
        for name, value in trailers:
            headers.append((name.encode("ascii"), base64.b64encode(value).rstrip(b"=")))
        self._h2.send_headers(stream_id, headers, end_stream=True)
        self._flush()


class H2GrpcServer:
    """Unary gRPC on ``host:port`` (0: a free port) over asyncio and ``h2``, calling ``handler`` per call."""

    def __init__(
        self,
        handler: Handler,
        methods: dict[bytes, Signal],
        *,
        max_request_size: int,
        ssl_context: ssl.SSLContext | None,
    ) -> None:
        self.handler = handler
        self.methods = methods
        self.max_request_size = max_request_size
        self.connections: set[_ServerConnection] = set()
        self._ssl = ssl_context
        self._server: asyncio.Server | None = None

    async def start(self, host: str, port: int) -> int:
        context = self._ssl
        if context is not None:
            context.set_alpn_protocols(["h2"])
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(
            lambda: _ServerConnection(self), host, port, ssl=context, reuse_address=True
        )
        bound: int = self._server.sockets[0].getsockname()[1]
        return bound

    async def stop(self) -> None:
        server, self._server = self._server, None
        if server is None:
            return
        server.close()
        connections = list(self.connections)
        for connection in connections:
            connection.close()
        # the sockets are closed by connection_lost, a callback of the loop: wait for it, so that a test that stops
        # the collector and then its loop leaves no socket to the garbage collector
        if connections:
            await asyncio.wait([c.closed for c in connections], timeout=5)
        await server.wait_closed()
