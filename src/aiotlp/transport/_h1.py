"""A small asyncio HTTP/1.1 client: what OTLP/HTTP needs, and nothing else.

One request shape: ``POST`` with a body of known length (``Content-Length``; requests are never chunked), to one
origin (scheme, host, port), over plain TCP or TLS. Responses are read in full: the status line, a header section
of at most :data:`MAX_HEADER_BYTES`, and the body by ``Content-Length``, chunked transfer-coding or read to close,
fed as it arrives to a :class:`Sink` (which decompresses and bounds it). ``1xx`` interim responses are skipped.

Connections are kept alive and reused: the pool holds as many as were in use at once (the exporter's concurrency
limit bounds that; ``max_idle`` is only a safety cap), each reused for at most ``keepalive`` seconds after its last
response (an older one is closed when next taken, or at :meth:`H1Client.close`). A connection is not reused when
the response said ``Connection: close``, was HTTP/1.0 without ``keep-alive``, was read to close, or came early
(before the request body was written), nor when the server closed it, or sent anything, while it was idle. A
request that fails on a reused connection before any byte of the response arrived is sent again, once, on a new
connection: a server that closed an idle connection just as it was reused never surfaces as an error.

Errors are this module's own (:class:`H1Error` and its subclasses), with messages that name no header and quote
no request; the transport (:mod:`aiotlp.transport._http`) translates them. A request interrupted in any way
(cancelled, timed out, failed) closes its connection: only a connection whose exchange completed goes back to the
pool. No ``__del__`` anywhere: a client left on a stopped loop is left as it is (:mod:`aiotlp._fork`).
"""

from __future__ import annotations

import asyncio
import ssl
import time
from collections.abc import Mapping
from typing import Final, Protocol, cast

from ._mismatch import is_http2_settings

__all__ = [
    "KEEPALIVE_SECONDS",
    "MAX_HEADER_BYTES",
    "BadResponse",
    "ConnectFailed",
    "Disconnected",
    "H1Client",
    "H1Error",
    "Response",
    "Sink",
    "SinkFactory",
    "TLSFailed",
]

#: The most a response's header section (status line and headers, or a chunked body's trailers) may take.
MAX_HEADER_BYTES: Final = 64 * 1024
#: An idle connection older than this is closed rather than reused (aiohttp's default keep-alive time).
KEEPALIVE_SECONDS: Final = 15.0
_MAX_CHUNK_LINE: Final = 1024  # a chunk-size line (hex size and extensions)
_JOIN_LIMIT: Final = 64 * 1024  # bodies up to this size go out in one write with the request head


class H1Error(Exception):
    """Talking HTTP/1.1 to the server failed. The message names no header and quotes no request."""


class ConnectFailed(H1Error):
    """The connection could not be opened (refused, unreachable, name not resolved): ``os_error`` says why."""

    def __init__(self, message: str, os_error: OSError) -> None:
        super().__init__(message)
        self.os_error = os_error


class TLSFailed(H1Error):
    """The TLS handshake failed; ``verification`` is True when the server's certificate was not trusted."""

    def __init__(self, message: str, *, verification: bool) -> None:
        super().__init__(message)
        self.verification = verification


class Disconnected(H1Error):
    """The server closed (or reset) the connection before the whole response arrived; ``received`` says whether
    any byte of the response had arrived."""

    def __init__(self, message: str, *, received: bool) -> None:
        super().__init__(message)
        self.received = received


class BadResponse(H1Error):
    """The response is not valid HTTP/1.x. ``http2`` is True when it began with an HTTP/2 frame (a server that
    speaks only HTTP/2, as an OTLP/gRPC port does)."""

    def __init__(self, message: str, *, http2: bool = False) -> None:
        super().__init__(message)
        self.http2 = http2


class Sink(Protocol):
    """Takes a response body as it arrives; ``finish`` returns it (decoded, bounded: it may raise)."""

    def feed(self, chunk: bytes) -> None: ...

    def finish(self) -> bytes: ...


class SinkFactory(Protocol):
    """Makes the :class:`Sink` for a response once its status and headers are known (it may raise, e.g. for a
    ``Content-Length`` over a limit: the body is then not read and the connection is closed)."""

    def __call__(self, status: int, headers: Mapping[str, str], /) -> Sink: ...


class Response:
    """A final response: ``status``, ``headers`` (lower-case names; repeated ones joined with ``", "``) and the
    ``body`` as the sink returned it."""

    __slots__ = ("body", "headers", "reason", "status", "version")

    def __init__(self, version: int, status: int, reason: str, headers: dict[str, str], body: bytes) -> None:
        self.version = version  # 0 (HTTP/1.0) or 1 (HTTP/1.1)
        self.status = status
        self.reason = reason
        self.headers = headers
        self.body = body

    def __repr__(self) -> str:
        return f"Response(HTTP/1.{self.version} {self.status}, {len(self.body)} bytes)"


class _Connection(asyncio.Protocol):
    """One TCP (or TLS) connection: a receive buffer and a waiter, woken by data, EOF or loss."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self.transport: asyncio.Transport | None = None
        self.buffer = bytearray()
        self.eof = False
        self.error: BaseException | None = None
        self.received = 0  # bytes of the current response seen so far
        self.idle_since = 0.0
        self.reused = False
        self.lost: asyncio.Future[None] = loop.create_future()
        self._waiter: asyncio.Future[None] | None = None

    # -- asyncio.Protocol

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # a stream transport (uvloop's is not an asyncio.Transport subclass, hence no isinstance check)
        self.transport = cast("asyncio.Transport", transport)

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        self.received += len(data)
        self._wake()

    def eof_received(self) -> bool:
        self.eof = True
        self._wake()
        return False  # close our side too

    def connection_lost(self, exc: Exception | None) -> None:
        self.eof = True
        self.error = exc
        if not self.lost.done():
            self.lost.set_result(None)
        self._wake()

    def _wake(self) -> None:
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    # -- reading

    async def fill(self, what: str) -> None:
        """Wait for more data; :class:`Disconnected` if the server is gone (``what``: what was being read)."""
        if self.eof:
            raise self._disconnected(what)
        self._waiter = self._loop.create_future()
        try:
            await self._waiter
        finally:
            self._waiter = None
        if self.eof and not self.buffer:
            raise self._disconnected(what)

    def _disconnected(self, what: str) -> Disconnected:
        if isinstance(self.error, OSError) and self.error.strerror:
            how = f"the connection was lost ({self.error.strerror.lower()})"
        elif self.error is not None:
            how = f"the connection was lost ({type(self.error).__name__})"
        else:
            how = "the connection closed"
        if not self.received:
            return Disconnected(f"{how} before the response", received=False)
        return Disconnected(f"{how} in the middle of the response ({what})", received=True)

    async def read_section(self, what: str) -> bytes:
        """Bytes up to an empty line (``CRLF CRLF``), which is consumed; at most :data:`MAX_HEADER_BYTES`."""
        start = 0
        while True:
            end = self.buffer.find(b"\r\n\r\n", start)
            if end > MAX_HEADER_BYTES:
                raise BadResponse(f"the response's {what} is larger than {MAX_HEADER_BYTES} bytes")
            if end >= 0:
                section = bytes(self.buffer[:end])
                del self.buffer[: end + 4]
                return section
            if len(self.buffer) > MAX_HEADER_BYTES:
                raise BadResponse(f"the response's {what} is larger than {MAX_HEADER_BYTES} bytes")
            if what == "header section" and len(self.buffer) >= 5 and not self.buffer.startswith(b"HTTP/"):
                raise _bad_start(self.buffer)
            start = max(0, len(self.buffer) - 3)
            await self.fill(what)

    async def read_line(self, what: str) -> bytes:
        """One ``CRLF``-ended line (at most :data:`_MAX_CHUNK_LINE` bytes), without its ``CRLF``."""
        while True:
            end = self.buffer.find(b"\r\n")
            if end >= 0:
                line = bytes(self.buffer[:end])
                del self.buffer[: end + 2]
                return line
            if len(self.buffer) > _MAX_CHUNK_LINE:
                raise BadResponse(f"the response's {what} is longer than {_MAX_CHUNK_LINE} bytes")
            await self.fill(what)

    async def read_into(self, sink: Sink, size: int) -> None:
        """Exactly ``size`` body bytes into ``sink``, as they arrive."""
        while size:
            if not self.buffer:
                await self.fill("body")
            take = min(size, len(self.buffer))
            if take == len(self.buffer):
                chunk = bytes(self.buffer)
                self.buffer.clear()
            else:
                chunk = bytes(self.buffer[:take])
                del self.buffer[:take]
            sink.feed(chunk)
            size -= take

    async def read_to_close(self, sink: Sink) -> None:
        while True:
            if self.buffer:
                sink.feed(bytes(self.buffer))
                self.buffer.clear()
            if self.eof:
                if self.error is not None:  # reset, not closed: the body may be cut short
                    raise self._disconnected("body")
                return
            self._waiter = self._loop.create_future()
            try:
                await self._waiter
            finally:
                self._waiter = None

    # -- state

    def usable(self) -> bool:
        """Idle and still open: the server neither closed it nor sent anything since the last response."""
        transport = self.transport
        return transport is not None and not self.eof and not self.buffer and not transport.is_closing()

    def close(self) -> None:
        """Close at once (no TLS close_notify, no waiting for unsent data): used for broken, interrupted and
        surplus connections, and at the client's close."""
        transport = self.transport
        if transport is not None and not transport.is_closing():
            transport.abort()


def _bad_start(data: bytes | bytearray) -> BadResponse:
    # an HTTP/2-only server (an OTLP/gRPC port) answers an HTTP/1.1 request with its SETTINGS frame
    if is_http2_settings(bytes(data[:9])):
        return BadResponse("bad status line: the server answered with HTTP/2 frames, not HTTP/1.1", http2=True)
    return BadResponse("bad status line: the response does not start with HTTP/1.x")


class _Head:
    """A response's header section, parsed: what :meth:`H1Client._read_response` reads from it, worked out once
    per distinct section (a collector answers every export with the same head, its Date aside)."""

    __slots__ = ("close", "fields", "framing", "length", "reason", "status", "version")

    def __init__(self, section: bytes) -> None:
        version, status, reason, headers = _parse_head_once(section)
        self.version = version
        self.status = status
        self.reason = reason
        self.fields = tuple(headers.items())
        # the connection is not reused after this response (nor when its body's framing says so: see framing)
        connection_tokens = _tokens(headers.get("connection"))
        if "close" in connection_tokens:
            self.close = True
        elif version == 0:
            self.close = "keep-alive" not in connection_tokens
        else:
            self.close = False
        # how the body ends: "chunked" (not reused if a content-length came too), "close" (read to close: another
        # transfer-coding last, or no length), or "length" (self.length bytes; None: the length is invalid)
        self.length: int | None = None
        if "transfer-encoding" in headers:
            codings = [t.strip().lower() for t in headers["transfer-encoding"].split(",")]
            self.framing = "chunked" if codings[-1] == "chunked" else "close"
            if self.framing == "chunked" and "content-length" in headers:
                self.framing = "chunked, not reused"
        elif "content-length" not in headers:
            self.framing = "close"
        else:
            self.framing = "length"
            try:
                self.length = _content_length(headers)
            except BadResponse:
                self.framing = "bad length"  # raised again, in order, by _read_response

    def headers(self) -> dict[str, str]:
        return dict(self.fields)


_HEADS: dict[bytes, _Head] = {}
"""Header sections parsed lately."""
_HEADS_KEPT: Final = 16


def _parse_head(section: bytes) -> tuple[int, int, str, dict[str, str]]:
    """``(minor version, status, reason, headers)`` of a response's header section (a dict of its own)."""
    head = _read_head(section)
    return head.version, head.status, head.reason, head.headers()


def _read_head(section: bytes) -> _Head:
    """The parsed header section (see :class:`_Head`); raises :class:`BadResponse` for one that is not valid."""
    known = _HEADS.get(section)
    if known is not None:
        return known
    head = _Head(section)
    if len(_HEADS) >= _HEADS_KEPT:
        _HEADS.clear()
    _HEADS[section] = head
    return head


def _parse_head_once(section: bytes) -> tuple[int, int, str, dict[str, str]]:
    lines = section.split(b"\r\n")
    status_line = lines[0]
    parts = status_line.split(b" ", 2)
    if len(parts) < 2 or parts[0] not in (b"HTTP/1.1", b"HTTP/1.0"):
        raise (
            _bad_start(status_line)
            if not status_line.startswith(b"HTTP/1.")
            else BadResponse("bad status line: not HTTP/1.0 or HTTP/1.1")
        )
    code = parts[1]
    if len(code) != 3 or not code.isdigit():
        raise BadResponse("bad status line: the status is not a 3-digit code")
    reason = parts[2].decode("latin-1").strip() if len(parts) == 3 else ""
    headers: dict[str, str] = {}
    for line in lines[1:]:
        if not line or line[0] in b" \t":
            raise BadResponse("a response header line is empty or folded (obsolete line folding)")
        name, colon, value = line.partition(b":")
        if not colon or not name or name != name.strip() or b" " in name or b"\t" in name:
            raise BadResponse("a response header line is malformed")
        key = name.decode("latin-1").lower()
        text = value.strip(b" \t").decode("latin-1")
        headers[key] = f"{headers[key]}, {text}" if key in headers else text
    return (1 if parts[0] == b"HTTP/1.1" else 0), int(code), reason, headers


def _content_length(headers: Mapping[str, str]) -> int | None:
    value = headers.get("content-length")
    if value is None:
        return None
    values = {v.strip() for v in value.split(",")}  # a repeated header: every copy must agree
    if len(values) != 1:
        raise BadResponse("the response has conflicting Content-Length headers")
    (text,) = values
    if not text.isdigit() or not text.isascii():
        raise BadResponse("the response's Content-Length is not a number")
    return int(text)


def _tokens(value: str | None) -> set[str]:
    return {t.strip().lower() for t in value.split(",")} if value else set()


class H1Client:
    """Keep-alive HTTP/1.1 connections to one origin, on the running loop (made on first use).

    ``host``/``port``: where to connect (a host name, an IPv4 or IPv6 address without brackets); ``ssl``: a TLS
    context for ``https`` (the server's name is checked against ``host``, which SNI names); ``host_header``: the
    ``Host`` value. ``headers``: sent with every request after ``Host`` (already validated: no CR, LF or NUL).
    """

    def __init__(
        self,
        host: str,
        port: int,
        *,
        ssl: ssl.SSLContext | None = None,
        host_header: str | None = None,
        max_idle: int = 64,
        keepalive: float = KEEPALIVE_SECONDS,
    ) -> None:
        self.host = host
        self.port = port
        self.ssl = ssl
        if host_header is None:
            name = f"[{host}]" if ":" in host else host
            default = 443 if ssl is not None else 80
            host_header = name if port == default else f"{name}:{port}"
        self._host_line = b"Host: " + host_header.encode("idna" if not host_header.isascii() else "ascii") + b"\r\n"
        self.max_idle = max_idle
        self.keepalive = keepalive
        self._idle: list[_Connection] = []
        self._busy: set[_Connection] = set()
        self._opening: asyncio.Future[None] | None = None  # done when the preconnect() under way ends
        self._closed = False
        self.connections_made = 0  # for tests and benchmarks: how many connections were opened

    def __repr__(self) -> str:
        scheme = "https" if self.ssl is not None else "http"
        return f"H1Client({scheme}://{self.host}:{self.port}, {len(self._idle)} idle, {len(self._busy)} busy)"

    @property
    def idle(self) -> int:
        """How many kept-alive connections wait for a request (not yet known to be closed by the server)."""
        return len(self._idle)

    @property
    def busy(self) -> int:
        """How many connections have a request in flight."""
        return len(self._busy)

    def request_head(self, target: str, headers: Mapping[str, str]) -> bytes:
        """The request line and headers (no ``Content-Length``, no blank line) for :meth:`post`: build it once."""
        head = bytearray(b"POST " + target.encode("ascii") + b" HTTP/1.1\r\n" + self._host_line)
        for name, value in headers.items():
            head += name.encode("ascii") + b": " + value.encode("utf-8") + b"\r\n"
        return bytes(head)

    async def post(self, head: bytes, body: bytes, sink: SinkFactory) -> Response:
        """Send ``head`` (from :meth:`request_head`) with ``body``; the final response, its body through
        ``sink``. Raises :class:`H1Error` subclasses, and whatever ``sink`` raises."""
        if self._closed:
            raise H1Error("the HTTP client is closed")
        request = head + b"Content-Length: %d\r\n\r\n" % len(body)
        connection = self._take_idle()
        if connection is None and self._opening is not None:  # the connection being made ahead: take it
            await asyncio.shield(self._opening)
            connection = self._take_idle()
        if connection is None:
            connection = await self._connect()
        try:
            return await self._exchange(connection, request, body, sink)
        except Disconnected as exc:
            if not connection.reused or exc.received:
                raise
        # the server closed a kept-alive connection as it was reused, before answering: once more, on a new one
        connection = await self._connect()
        return await self._exchange(connection, request, body, sink)

    async def preconnect(self) -> None:
        """Open a connection and keep it idle for the first :meth:`post` (which waits for it rather than open
        another), unless one is idle, busy or being opened already. Raises as :meth:`post` does when it cannot be
        made."""
        if self._closed:
            raise H1Error("the HTTP client is closed")
        if self._opening is not None:
            await asyncio.shield(self._opening)
            return
        if self._idle or self._busy:
            return
        opening = self._opening = asyncio.get_running_loop().create_future()
        try:
            connection = await self._connect()
            connection.idle_since = time.monotonic()
            self._idle.append(connection)  # taken by post() as a kept-alive one: re-sent once if it was closed
        finally:
            self._opening = None
            opening.set_result(None)  # a post() waiting for it looks for an idle connection again

    def _take_idle(self) -> _Connection | None:
        now = time.monotonic()
        while self._idle:
            connection = self._idle.pop()  # the most recently used: the least likely to have been closed
            if connection.usable() and now - connection.idle_since < self.keepalive:
                connection.reused = True
                return connection
            connection.close()
        return None

    async def _connect(self) -> _Connection:
        loop = asyncio.get_running_loop()
        try:
            _, connection = await loop.create_connection(
                lambda: _Connection(loop),
                self.host,
                self.port,
                ssl=self.ssl,
                server_hostname=self.host if self.ssl is not None else None,
            )
        except ssl.SSLCertVerificationError as exc:
            raise TLSFailed(exc.verify_message or str(exc), verification=True) from None
        except ssl.SSLError as exc:
            raise TLSFailed(exc.reason or str(exc), verification=False) from None
        except OSError as exc:
            raise ConnectFailed(_os_reason(exc), exc) from None
        self.connections_made += 1
        if self._closed:  # closed while connecting
            connection.close()
            raise H1Error("the HTTP client is closed")
        return connection

    async def _exchange(self, connection: _Connection, request: bytes, body: bytes, sink: SinkFactory) -> Response:
        self._busy.add(connection)
        keep = False
        try:
            transport = connection.transport
            assert transport is not None
            connection.received = 0
            if len(body) <= _JOIN_LIMIT:
                transport.write(request + body)
            else:
                transport.write(request)
                transport.write(body)
            response, keep = await self._read_response(connection, sink)
            if keep and transport.get_write_buffer_size():
                keep = False  # answered before the whole body was taken: the rest would be read as a request
            return response
        except ssl.SSLError as exc:  # a TLS failure after the handshake (a bad record, an alert)
            raise Disconnected(
                f"TLS error during the exchange: {exc.reason or type(exc).__name__}", received=bool(connection.received)
            ) from None
        finally:
            self._busy.discard(connection)
            if keep and not self._closed and len(self._idle) < self.max_idle:
                connection.idle_since = time.monotonic()
                self._idle.append(connection)
            else:
                connection.close()

    async def _read_response(self, connection: _Connection, sink_factory: SinkFactory) -> tuple[Response, bool]:
        while True:
            section = await connection.read_section("header section")
            head = _read_head(section)
            status = head.status
            if status >= 200:
                break
            if status == 101:
                raise BadResponse("the server switched protocols (101), which was not asked for")
            # 1xx (100 Continue, 103 Early Hints): an interim response, the final one follows
        keep = not head.close
        headers = head.headers()
        sink = sink_factory(status, headers)
        framing = head.framing
        if status in (204, 304):
            pass
        elif framing == "length":
            if head.length:
                await connection.read_into(sink, head.length)
        elif framing == "bad length":
            _content_length(headers)  # raises BadResponse, saying what is wrong
        elif framing == "close":
            await connection.read_to_close(sink)
            keep = False
        else:
            await self._read_chunked(connection, sink)
            keep = keep and framing == "chunked"
        if connection.buffer:
            raise BadResponse(f"the server sent {len(connection.buffer)} bytes more than its response")
        return Response(head.version, status, head.reason, headers, sink.finish()), keep

    async def _read_chunked(self, connection: _Connection, sink: Sink) -> None:
        while True:
            line = await connection.read_line("chunk size line")
            size_text = line.split(b";", 1)[0].strip()
            try:
                if not size_text or len(size_text) > 16:
                    raise ValueError
                size = int(size_text, 16)
            except ValueError:
                raise BadResponse("the response's chunked body has an invalid chunk size") from None
            if size == 0:
                break
            await connection.read_into(sink, size)
            if await connection.read_line("chunk end") != b"":
                raise BadResponse("the response's chunked body has a chunk without its CRLF")
        # trailers (ignored), up to the empty line
        while await connection.read_line("trailer section") != b"":
            pass

    async def close(self) -> None:
        """Close every connection (those in use are closed when their request ends) and wait until they are."""
        self._closed = True
        connections, self._idle = [*self._idle, *self._busy], []
        for connection in connections:
            connection.close()
        pending = [c.lost for c in connections if not c.lost.done()]
        if pending:
            await asyncio.wait(pending, timeout=1.0)


def _os_reason(exc: OSError) -> str:
    if exc.strerror:
        return exc.strerror
    return str(exc) or type(exc).__name__
