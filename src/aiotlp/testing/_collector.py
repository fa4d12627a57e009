"""FakeCollector: a real OTLP receiver (gRPC and HTTP) on 127.0.0.1, scripted, recording every request.

```python
async with FakeCollector() as collector:
    collector.script(Reply(http_status=503, retry_after="1"), Reply())   # then the default: 200 / OK
    ... export to collector.http_endpoint or collector.grpc_endpoint ...
    await collector.wait_for(2)
    assert collector.spans()[0].name == "work"
```

gRPC: a ``grpc.aio`` server with a generic handler for the three ``Export`` methods over raw bytes, so
``ReceivedRequest.body`` is exactly what arrived (after gzip, deflate or zstd decompression, which the collector
does itself: the server runs with ``grpc.per_message_decompression`` off and accepts identity, gzip and deflate, a
zlib stream, told apart by their first bytes). grpc core refuses ``grpc-encoding: zstd`` before any handler runs
(INTERNAL, "Error parsing 'grpc-encoding' metadata"): ``FakeCollector(grpc_server="h2")`` serves gRPC with a
small server of its own on ``h2`` instead (same handler, same records and replies) that also takes zstd. HTTP: an
``aiohttp`` server for ``POST /v1/traces|metrics|logs`` with ``application/x-protobuf`` or ``application/json``
bodies, optionally ``Content-Encoding: gzip``, ``deflate`` (a zlib stream, as in HTTP and the official exporter)
or ``zstd``; it answers in the request's content type. Decompression is bounded by ``max_request_size`` for
every encoding (413 / RESOURCE_EXHAUSTED past it); zstd needs a zstd binding (``aiotlp[zstd]``, in
``aiotlp[testing]``).
Requests it cannot accept get 404 (path), 405 (method), 413 (size), 415 (content type or encoding) or 400
(body), with a ``google.rpc.Status`` body; they land in :attr:`FakeCollector.bad_requests` and consume no
scripted reply.

Replies: each accepted request takes the next scripted :class:`Reply` for its signal, else the next one
scripted for any signal, else :attr:`FakeCollector.default`. A request is recorded (and waiters woken) before
its reply's ``delay``.

gRPC quirks worth knowing: gRPC sends a message uncompressed when gzip would not shrink it, so a tiny request
from a gzip channel is recorded with ``compression=None``; a call to a method other than the three Export
methods gets UNIMPLEMENTED from grpc itself and is not recorded.

Restart: :meth:`FakeCollector.stop` then :meth:`FakeCollector.start` binds the SAME ports again (for reconnect
tests); only the first start picks free ports.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import errno
import functools
import os
import socket
import ssl
import tempfile
from collections import deque
from collections.abc import Callable, Iterator
from typing import Any, Literal

import grpc
from aiohttp import web
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import ExportMetricsServiceRequest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.logs.v1.logs_pb2 import LogRecord
from opentelemetry.proto.metrics.v1.metrics_pb2 import Metric
from opentelemetry.proto.trace.v1.trace_pb2 import Span

from aiotlp._exceptions import ConfigurationError, MissingExtraError
from aiotlp._validate import is_int
from aiotlp.config import MAX_REQUEST_BYTES
from aiotlp.model import Signal
from aiotlp.transport import grpc_method

from ._bodies import ZSTD_MAGIC, Filler, gunzip, inflate_zlib, is_zlib, unzstd
from ._replies import (
    GRPC,
    JSON,
    PROTOBUF,
    BadRequest,
    ReceivedRequest,
    Refused,
    Reply,
    decode_json,
    decode_protobuf,
    export_response,
    rpc_status,
    serialize,
    status_body,
)

__all__ = ["BadRequest", "FakeCollector", "ReceivedRequest", "Reply"]

_HOST = "127.0.0.1"
_DEFAULT_MAX_REQUEST_SIZE = MAX_REQUEST_BYTES + 1024 * 1024  # the 64 MiB OTLP cap, and room for the envelope
_CHUNK = 64 * 1024
_BY_PATH = {signal.http_path: signal for signal in Signal}
_GRPC_SERVICES = {signal: grpc_method(signal).strip("/").rsplit("/", 1)[0] for signal in Signal}


def _join_headers(pairs: Iterator[tuple[str, str]]) -> dict[str, str]:
    headers: dict[str, str] = {}
    for key, value in pairs:
        key = key.lower()
        headers[key] = f"{headers[key]}, {value}" if key in headers else value
    return headers


def _grpc_headers(metadata: Any) -> dict[str, str]:
    def pairs() -> Iterator[tuple[str, str]]:
        for key, value in metadata or ():
            if isinstance(value, bytes):
                yield key, base64.b64encode(value).decode("ascii").rstrip("=")
            else:
                yield key, value

    return _join_headers(pairs())


def _server_ssl_context(cert: bytes, key: bytes, client_ca: bytes | None) -> ssl.SSLContext:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    # ssl loads a certificate chain from files only: write them to a private directory for the load
    with tempfile.TemporaryDirectory(prefix="aiotlp-fake-collector-") as tmp:
        cert_path = os.path.join(tmp, "cert.pem")
        key_path = os.path.join(tmp, "key.pem")
        for path, data in ((cert_path, cert), (key_path, key)):
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "wb") as file:
                file.write(data)
        context.load_cert_chain(cert_path, key_path)
    if client_ca is not None:
        context.load_verify_locations(cadata=client_ca.decode("ascii"))
        context.verify_mode = ssl.CERT_REQUIRED
    return context


# -- the collector -------------------------------------------------------------------------------------------


class FakeCollector:
    """A real OTLP collector for tests: gRPC and HTTP servers on ``127.0.0.1``, scripted replies, recording.

    ``ssl_cert`` / ``ssl_key`` (PEM) serve TLS on both ports (the endpoints become ``https://``);
    ``client_ca`` (PEM) also requires client certificates signed by it (mTLS). ``max_request_size`` caps a
    request body after decompression (413 / RESOURCE_EXHAUSTED beyond it). ``grpc_port`` / ``http_port`` bind
    those ports on 127.0.0.1 (default 0: free ones, picked by the first start and kept by later starts).
    ``grpc_server``: ``"grpcio"`` (grpc.aio, the default) or ``"h2"`` (a small asyncio server on ``h2``, needs
    ``aiotlp[grpc]``), which also receives zstd, the one encoding grpc core refuses.
    """

    def __init__(
        self,
        *,
        ssl_cert: bytes | None = None,
        ssl_key: bytes | None = None,
        client_ca: bytes | None = None,
        max_request_size: int = _DEFAULT_MAX_REQUEST_SIZE,
        default: Reply | None = None,
        grpc_port: int = 0,
        http_port: int = 0,
        grpc_server: Literal["grpcio", "h2"] = "grpcio",
    ) -> None:
        if grpc_server not in ("grpcio", "h2"):
            raise ConfigurationError(f"grpc_server must be 'grpcio' or 'h2', got {grpc_server!r}")
        for name, port in (("grpc_port", grpc_port), ("http_port", http_port)):
            if not is_int(port) or not 0 <= port <= 65535:
                raise ConfigurationError(f"{name} must be a port number 0-65535, got {port!r}")
        if (ssl_cert is None) != (ssl_key is None):
            raise ConfigurationError("ssl_cert and ssl_key must be given together")
        if client_ca is not None and ssl_cert is None:
            raise ConfigurationError("client_ca (mTLS) needs ssl_cert and ssl_key")
        if max_request_size <= 0:
            raise ConfigurationError(f"max_request_size must be > 0, got {max_request_size}")
        self._ssl_cert = ssl_cert
        self._ssl_key = ssl_key
        self._client_ca = client_ca
        self._ssl_context = (
            None if ssl_cert is None or ssl_key is None else _server_ssl_context(ssl_cert, ssl_key, client_ca)
        )
        self._max_request_size = max_request_size
        self.default: Reply = default if default is not None else Reply()
        """The reply when nothing is scripted."""
        self.received: list[ReceivedRequest] = []
        """Every accepted request, in arrival order."""
        self.bad_requests: list[BadRequest] = []
        """Every refused request (404, 405, 413, 415, 400 / INVALID_ARGUMENT), in arrival order."""
        self._scripts: dict[Signal | None, deque[Reply]] = {key: deque() for key in (None, *Signal)}
        self._changed = asyncio.Condition()
        self._grpc_server: Any = None
        self._runner: web.AppRunner | None = None
        self._http_tasks: set[asyncio.Task[Any]] = set()
        self._grpc_port = grpc_port
        self._http_port = http_port
        self._grpc_kind = grpc_server

    # -- lifecycle

    async def __aenter__(self) -> FakeCollector:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.stop()

    @property
    def running(self) -> bool:
        return self._runner is not None

    async def start(self) -> None:
        """Bind and serve. The first start picks free ports; a start after :meth:`stop` reuses them."""
        if self.running:
            raise RuntimeError("FakeCollector is already running")
        try:
            await self._start_grpc()
            await self._start_http()
        except BaseException:
            await self.stop()
            raise

    async def stop(self) -> None:
        """Stop both servers at once (no grace: in-flight requests are cut). Idempotent."""
        grpc_server, self._grpc_server = self._grpc_server, None
        runner, self._runner = self._runner, None
        tasks, self._http_tasks = self._http_tasks, set()
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.wait(tasks)
        if grpc_server is not None:
            if self._grpc_kind == "grpcio":
                await grpc_server.stop(0)
            else:
                await grpc_server.stop()
        if runner is not None:
            await runner.cleanup()

    async def _start_grpc(self) -> None:
        if self._grpc_port:
            # a taken port: one line naming it (grpc core would log its own line to stderr, and raise a text that
            # points at GRPC_VERBOSITY)
            _check_free("gRPC", self._grpc_port)
        if self._grpc_kind == "h2":
            await self._start_h2_grpc()
            return
        server = grpc.aio.server(
            options=[
                ("grpc.so_reuseport", 0),
                ("grpc.max_receive_message_length", self._max_request_size),
                # hand the handler the bytes as sent so it can tell (and record) gzip; it inflates them
                ("grpc.per_message_decompression", 0),
                ("grpc.compression_enabled_algorithms_bitset", 0b111),  # identity, deflate and gzip
            ]
        )
        server.add_generic_rpc_handlers(
            [
                grpc.method_handlers_generic_handler(
                    _GRPC_SERVICES[signal],
                    {"Export": grpc.unary_unary_rpc_method_handler(functools.partial(self._grpc_export, signal))},
                )
                for signal in Signal
            ]
        )
        address = f"{_HOST}:{self._grpc_port}"
        if self._ssl_cert is not None and self._ssl_key is not None:
            credentials = grpc.ssl_server_credentials(
                [(self._ssl_key, self._ssl_cert)],
                root_certificates=self._client_ca,
                require_client_auth=self._client_ca is not None,
            )
            port = server.add_secure_port(address, credentials)
        else:
            port = server.add_insecure_port(address)
        if not port:
            raise OSError(f"FakeCollector: cannot bind gRPC on {address}")
        self._grpc_server = server
        self._grpc_port = port
        await server.start()

    async def _start_h2_grpc(self) -> None:
        try:
            from aiotlp.testing._h2server import H2GrpcServer
        except ImportError:
            raise MissingExtraError("grpc", "h2 (for FakeCollector(grpc_server='h2'))") from None
        context = None
        if self._ssl_cert is not None and self._ssl_key is not None:  # its own context: it offers ALPN h2
            context = _server_ssl_context(self._ssl_cert, self._ssl_key, self._client_ca)
        server = H2GrpcServer(
            self._grpc_export,
            {grpc_method(signal).encode("ascii"): signal for signal in Signal},
            max_request_size=self._max_request_size,
            ssl_context=context,
        )
        self._grpc_port = await server.start(_HOST, self._grpc_port)
        self._grpc_server = server

    async def _start_http(self) -> None:
        app = web.Application(client_max_size=self._max_request_size)
        app.router.add_route("*", "/{path:.*}", self._http_handle)
        runner = web.AppRunner(app, access_log=None, auto_decompress=False, shutdown_timeout=1.0)
        await runner.setup()
        self._runner = runner
        site = web.TCPSite(
            runner,
            _HOST,
            self._http_port,
            ssl_context=self._ssl_context,
            reuse_address=True,
            reuse_port=False,
        )
        try:
            await site.start()
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                raise OSError(f"the HTTP port {self._http_port} on {_HOST} is already in use") from None
            raise
        self._http_port = site.port

    # -- addresses

    def _port(self, port: int) -> int:
        if not port:
            raise RuntimeError("FakeCollector has not been started")
        return port

    @property
    def grpc_port(self) -> int:
        return self._port(self._grpc_port)

    @property
    def http_port(self) -> int:
        return self._port(self._http_port)

    @property
    def _scheme(self) -> str:
        return "https" if self._ssl_context is not None else "http"

    @property
    def grpc_endpoint(self) -> str:
        """``http://127.0.0.1:PORT`` (``https://`` with TLS)."""
        return f"{self._scheme}://{_HOST}:{self.grpc_port}"

    @property
    def http_endpoint(self) -> str:
        """``http://127.0.0.1:PORT`` (``https://`` with TLS); the signal paths are ``/v1/<signal>``."""
        return f"{self._scheme}://{_HOST}:{self.http_port}"

    # -- scripting

    def script(self, *replies: Reply, signal: Signal | None = None) -> None:
        """Queue replies, consumed one per accepted request of ``signal`` (``None``: any signal)."""
        for reply in replies:
            if not isinstance(reply, Reply):
                raise ConfigurationError(f"script() takes Reply objects, got {type(reply).__name__}")
        self._scripts[signal].extend(replies)

    def pending(self, signal: Signal | None = None) -> int:
        """How many scripted replies are still queued for ``signal`` (``None``: for any signal)."""
        return len(self._scripts[signal])

    def clear_script(self, signal: Signal | None = None) -> int:
        """Drop the replies still queued for ``signal`` (``None``: those for any signal); return how many."""
        queue = self._scripts[signal]
        dropped = len(queue)
        queue.clear()
        return dropped

    def _next_reply(self, signal: Signal) -> Reply:
        for queue in (self._scripts[signal], self._scripts[None]):
            if queue:
                return queue.popleft()
        return self.default

    # -- recording

    def requests(self, signal: Signal | None = None) -> list[ReceivedRequest]:
        """The accepted requests of ``signal`` (all when ``None``), in arrival order."""
        return [r for r in self.received if signal is None or r.signal is signal]

    def spans(self) -> list[Span]:
        """Every span received, flattened across requests, resources and scopes."""
        return self._flatten(ExportTraceServiceRequest, "resource_spans", "scope_spans", "spans")

    def log_records(self) -> list[LogRecord]:
        """Every log record received, flattened."""
        return self._flatten(ExportLogsServiceRequest, "resource_logs", "scope_logs", "log_records")

    def metrics(self) -> list[Metric]:
        """Every metric received, flattened (each with its data points)."""
        return self._flatten(ExportMetricsServiceRequest, "resource_metrics", "scope_metrics", "metrics")

    def _flatten(self, request_type: type, resources: str, scopes: str, items: str) -> list[Any]:
        """The ``items`` of every ``scopes`` of every ``resources`` of the requests of ``request_type``."""
        return [
            item
            for request in self.received
            if isinstance(request.message, request_type)
            for resource in getattr(request.message, resources)
            for scope in getattr(resource, scopes)
            for item in getattr(scope, items)
        ]

    def clear(self) -> None:
        """Forget the recorded requests (``received`` and ``bad_requests``); scripts stay."""
        self.received.clear()
        self.bad_requests.clear()

    async def wait_for(
        self, predicate_or_count: int | Callable[[FakeCollector], bool], timeout: float = 5.0
    ) -> list[ReceivedRequest]:
        """Wait until ``predicate(collector)`` holds, or until ``count`` requests were accepted.

        Woken by each request (accepted or refused), never by polling. Returns a copy of :attr:`received`;
        raises :class:`TimeoutError` after ``timeout`` seconds.
        """
        if isinstance(predicate_or_count, int):
            count = predicate_or_count

            def predicate() -> bool:
                return len(self.received) >= count

            description = f"{count} requests (got {{}})"
        else:
            check = predicate_or_count

            def predicate() -> bool:
                return check(self)

            description = "the predicate (after {} requests)"
        async with self._changed:
            try:
                await asyncio.wait_for(self._changed.wait_for(predicate), timeout)
            except asyncio.TimeoutError:
                raise TimeoutError(
                    f"FakeCollector: waited {timeout}s for " + description.format(len(self.received))
                ) from None
        return list(self.received)

    async def _notify(self) -> None:
        async with self._changed:
            self._changed.notify_all()

    async def _record(self, request: ReceivedRequest) -> None:
        self.received.append(request)
        await self._notify()

    async def _record_bad(self, bad: BadRequest) -> None:
        self.bad_requests.append(bad)
        await self._notify()

    # -- gRPC

    async def _grpc_export(self, signal: Signal, request: bytes, context: Any) -> bytes:
        headers = _grpc_headers(context.invocation_metadata())
        body = request
        compression: Literal["gzip", "deflate", "zstd"] | None = None
        try:
            if body[:4] == ZSTD_MAGIC:
                compression = "zstd"
                body = unzstd(body, self._max_request_size)
            elif body[:2] == b"\x1f\x8b":  # gzip magic; no protobuf message starts with 0x1f (wire type 7)
                compression = "gzip"
                body = gunzip(body, self._max_request_size)
            elif is_zlib(body):  # no export request has field 15, whose varint tag 0x78 starts a zlib stream
                compression = "deflate"
                body = inflate_zlib(body, self._max_request_size)
            message = decode_protobuf(signal, body)
        except Refused as refused:
            bad = BadRequest("grpc", grpc_method(signal), refused.grpc_code.name, refused.reason, headers, request)
            await self._record_bad(bad)
            await context.abort(refused.grpc_code, refused.reason)
            raise  # not reached: abort() raises
        peer = str(context.peer()).removeprefix("ipv4:")
        # the reply is chosen as the request is recorded (no await between): a test woken by the record that then
        # changes the script or the default sees every recorded request answered by what was set before
        reply = self._next_reply(signal)
        await self._record(ReceivedRequest(signal, "grpc", GRPC, compression, headers, body, message, peer))
        if reply.delay:
            await asyncio.sleep(reply.delay)
        if reply.drop_connection:
            await context.abort(grpc.StatusCode.UNAVAILABLE, reply.message or "connection dropped (scripted)")
        code = reply.effective_grpc_code
        if code is not grpc.StatusCode.OK:
            trailers: tuple[tuple[str, bytes], ...] = ()
            if reply.retry_delay is not None:
                details = rpc_status(code, reply.message, reply.retry_delay).SerializeToString()
                trailers = (("grpc-status-details-bin", details),)
            await context.abort(code, reply.message, trailing_metadata=trailers)
        if reply.body is not None:
            return reply.body
        if reply.body_size is not None:
            return b"".join(Filler.of(reply.body_size, PROTOBUF).chunks())
        if reply.gzip_bomb is not None:
            context.set_compression(grpc.Compression.Gzip)
            return b"".join(Filler.of(reply.gzip_bomb, PROTOBUF).chunks())
        return serialize(export_response(signal, reply), PROTOBUF)

    # -- HTTP

    async def _http_handle(self, request: web.Request) -> web.StreamResponse:
        task = asyncio.current_task()
        assert task is not None
        self._http_tasks.add(task)
        try:
            return await self._http_export(request)
        finally:
            self._http_tasks.discard(task)

    async def _http_export(self, request: web.Request) -> web.StreamResponse:
        headers = _join_headers(iter(request.headers.items()))
        media_type = request.content_type
        answer_type = media_type if media_type in (PROTOBUF, JSON) else JSON
        raw = b""
        try:
            signal = _BY_PATH.get(request.path)
            if signal is None:
                raise Refused(404, grpc.StatusCode.UNIMPLEMENTED, f"unknown path {request.path!r}")
            if request.method != "POST":
                raise Refused(405, grpc.StatusCode.UNIMPLEMENTED, f"method {request.method} is not allowed")
            if media_type not in (PROTOBUF, JSON):
                raise Refused(415, grpc.StatusCode.INVALID_ARGUMENT, f"unsupported content type {media_type!r}")
            try:
                raw = await request.read()
            except web.HTTPRequestEntityTooLarge:
                raise Refused(
                    413,
                    grpc.StatusCode.RESOURCE_EXHAUSTED,
                    f"body larger than {self._max_request_size} bytes",
                ) from None
            encoding = request.headers.get("Content-Encoding", "identity").strip().lower()
            compression: Literal["gzip", "deflate", "zstd"] | None = None
            if encoding == "zstd":
                compression = "zstd"
                body = unzstd(raw, self._max_request_size)
            elif encoding == "gzip":
                compression = "gzip"
                body = gunzip(raw, self._max_request_size)
            elif encoding == "deflate":
                compression = "deflate"
                body = inflate_zlib(raw, self._max_request_size)
            elif encoding in ("identity", ""):
                body = raw
            else:
                raise Refused(415, grpc.StatusCode.INVALID_ARGUMENT, f"unsupported Content-Encoding {encoding!r}")
            message = decode_json(signal, body) if media_type == JSON else decode_protobuf(signal, body)
        except Refused as refused:
            await self._record_bad(BadRequest("http", request.path, refused.http_status, refused.reason, headers, raw))
            response_headers = {"Allow": "POST"} if refused.http_status == 405 else None
            return web.Response(
                status=refused.http_status,
                headers=response_headers,
                body=status_body(rpc_status(refused.grpc_code, refused.reason, None), answer_type),
                content_type=answer_type,
            )
        content_type: Literal["application/x-protobuf", "application/json"] = JSON if media_type == JSON else PROTOBUF
        address = request.transport.get_extra_info("peername") if request.transport is not None else None
        peer = f"{address[0]}:{address[1]}" if address else ""
        reply = self._next_reply(signal)  # as the request is recorded: see _grpc_export
        await self._record(ReceivedRequest(signal, "http", content_type, compression, headers, body, message, peer))
        if reply.delay:
            await asyncio.sleep(reply.delay)
        if reply.drop_connection:
            if request.transport is not None:
                request.transport.close()
            return web.Response()  # never written: aiohttp ignores the closed connection
        return await self._http_reply(request, signal, reply, answer_type)

    async def _http_reply(
        self, request: web.Request, signal: Signal, reply: Reply, media_type: str
    ) -> web.StreamResponse:
        headers = {} if reply.retry_after is None else {"Retry-After": reply.retry_after}
        status = reply.http_status
        if reply.gzip_bomb is not None:
            headers["Content-Encoding"] = "gzip"
            # the CRC of a GiB takes ~0.5 s: computed off the loop, once per size
            payload = await asyncio.to_thread(Filler.of(reply.gzip_bomb, media_type).gzip)
            return await _stream(request, status, headers, media_type, len(payload), _slices(payload))
        if reply.body_size is not None:
            filler = Filler.of(reply.body_size, media_type)
            return await _stream(request, status, headers, media_type, reply.body_size, filler.chunks())
        if reply.body is not None:
            body = reply.body
        elif 200 <= status <= 299:
            body = serialize(export_response(signal, reply), media_type)
        else:
            body = status_body(rpc_status(reply.effective_grpc_code, reply.message, reply.retry_delay), media_type)
        return web.Response(status=status, headers=headers, body=body, content_type=media_type)


def _check_free(what: str, port: int) -> None:
    """Raise a one-line OSError naming ``port`` if it cannot be bound on 127.0.0.1 (another server holds it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as a server binds: TIME_WAIT is no obstacle
        try:
            probe.bind((_HOST, port))
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                raise OSError(f"the {what} port {port} on {_HOST} is already in use") from None
            raise OSError(f"cannot bind the {what} port {port} on {_HOST}: {exc.strerror or exc}") from None


def _slices(data: bytes) -> Iterator[bytes]:
    view = memoryview(data)
    for start in range(0, len(data), _CHUNK):
        yield bytes(view[start : start + _CHUNK])


async def _stream(
    request: web.Request,
    status: int,
    headers: dict[str, str],
    media_type: str,
    length: int,
    chunks: Iterator[bytes],
) -> web.StreamResponse:
    """Write a body chunk by chunk; a client that hangs up early just ends it."""
    response = web.StreamResponse(status=status, headers=headers)
    response.content_type = media_type
    response.content_length = length
    with contextlib.suppress(ConnectionError):
        await response.prepare(request)
        for chunk in chunks:
            await response.write(chunk)
    return response
