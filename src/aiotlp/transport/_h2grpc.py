"""OTLP/gRPC over aiotlp's own HTTP/2 client: ``h2`` (sans-IO) on an asyncio Protocol, unary calls only.

Why not grpc.aio: it owns its sockets. Against servers that leave Nagle on (rotel: hyper/tonic never set
TCP_NODELAY on accepted sockets) a response written just after the server's own small WINDOW_UPDATE waits for
that segment's ACK, and the client kernel delays the ACK by its 40 ms minimum (how often: docs/benchmarks.md).
Here the client sets TCP_NODELAY and, on Linux, re-arms TCP_QUICKACK after every read (it is not sticky), so it
never delays an ACK and the server's response leaves at once.

The wire (gRPC's PROTOCOL-HTTP2.md), one HTTP/2 connection per transport, one stream per call::

    HEADERS  :method POST, :scheme, :path /<service>/Export, :authority, content-type application/grpc,
             te trailers, grpc-timeout 1500m, user-agent, grpc-accept-encoding, [grpc-encoding gzip|deflate|zstd],
             custom
    DATA     1 byte compressed flag | 4 bytes big-endian length | message           (END_STREAM)
    <-  HEADERS :status 200, content-type;  DATA (the response message);  HEADERS grpc-status, grpc-message,
        grpc-status-details-bin (trailers)  -- or one "trailers-only" HEADERS frame carrying the status.

The connection is opened on first use (TLS with ALPN ``h2`` for ``https``), waits for the server's SETTINGS
before the first request, multiplexes concurrent calls up to the server's MAX_CONCURRENT_STREAMS (others wait
for a slot), and is replaced after it fails or the server sends GOAWAY (calls the server did not take are
failed as retryable :class:`~aiotlp.ConnectError`; the ones it did take finish on the old connection).

Three modules: this one, the transport (headers, connecting, replacing connections); :mod:`._h2connection`,
one connection and the calls on it; :mod:`._hpack`, the request-header encoder.
"""

from __future__ import annotations

import asyncio
import base64
import math
import ssl
from typing import TYPE_CHECKING, Final

from .._backports import timeout_at
from .._exceptions import (
    AttemptTimeoutError,
    ConfigurationError,
    ConnectError,
    ExportError,
    ExporterShutdownError,
    MissingExtraError,
    PermanentError,
)
from .._version import __version__
from . import _zstd
from ._base import IDENTITY, Reply, grpc_method, make_ssl_context, user_agent
from ._compression import ENCODINGS, MAX_RESPONSE_BYTES, accepted_encodings

try:
    from ._h2connection import Connection, set_exception

    _H2_MISSING = False
except ImportError:  # pragma: no cover - depends on the installed extras
    _H2_MISSING = True

if TYPE_CHECKING:
    from ..config import SignalConfig

__all__ = ["H2GrpcTransport"]

#: Header names a caller may not set: gRPC and HTTP/2 own them (``user-agent`` is merged, not refused).
_RESERVED_HEADERS: Final = frozenset(
    {
        "content-type",
        "te",
        "host",
        "connection",
        "keep-alive",
        "proxy-connection",
        "transfer-encoding",
        "upgrade",
    }
)


def _grpc_timeout(seconds: float) -> bytes:
    """``seconds`` in the ``grpc-timeout`` wire format: at most 8 digits and a unit (``1500m``)."""
    millis = math.ceil(seconds * 1000)
    if millis <= 99_999_999:
        return b"%dm" % max(millis, 1)
    return b"%dS" % min(math.ceil(seconds), 99_999_999)


class H2GrpcTransport:
    """Sends one signal's requests as unary gRPC calls over one HTTP/2 connection of its own (``h2``).

    Same contract as :class:`~aiotlp.transport.GrpcTransport`: ``compression`` is ``config.compression`` (the
    export step compresses the message once, so retries re-send the same bytes, and ``send`` is told its
    ``content_encoding``, sent as ``grpc-encoding``); ``send`` returns the :class:`~aiotlp.transport.Reply` or
    raises a classified :class:`~aiotlp.ExportError`:

    - the reply: ``:status``, ``content-type``, the ``grpc-status`` of the trailers (or of a trailers-only
      response) with its message and ``grpc-status-details-bin``, and the response message, unframed and
      decompressed; a stream the server reset, or whose message is malformed (bad flag, truncated, an encoding
      not asked for), is reported as grpc core reports it, a status (REFUSED_STREAM -> UNAVAILABLE, ...);
    - connection refused, reset or closed before the response, GOAWAY before the server took the call:
      :class:`~aiotlp.ConnectError`; the attempt's ``timeout``: :class:`~aiotlp.AttemptTimeoutError` (the stream
      is reset with CANCEL, and the server was told the deadline in ``grpc-timeout``); TLS failures and a peer
      that does not speak HTTP/2: :class:`~aiotlp.PermanentError`;
    - a response message over ``max_response_bytes`` (after decompression; never inflated in memory):
      :class:`~aiotlp.ResponseError`.

    A cancelled caller resets its stream and gets its ``CancelledError``. ``close()`` fails pending calls with
    :class:`~aiotlp.ExporterShutdownError` and closes the connection at once.

    ``connect_address`` (``(ip, port)``) connects there instead of resolving ``config.host``, which still names
    the server for TLS and ``:authority``: one transport per address of a name (a fleet, ``FleetPolicy``).
    """

    content_type = "application/grpc"

    def __init__(
        self,
        config: SignalConfig,
        *,
        max_response_bytes: int = MAX_RESPONSE_BYTES,
        connect_address: tuple[str, int] | None = None,
    ) -> None:
        if _H2_MISSING:
            raise MissingExtraError("grpc", "h2")
        if max_response_bytes <= 0:
            raise ConfigurationError(f"max_response_bytes must be > 0, got {max_response_bytes!r}")
        self.config = config
        self.method = grpc_method(config.signal)
        self.max_response_bytes = max_response_bytes
        self._address = connect_address if connect_address is not None else (config.host, config.port)
        self.compression: str = config.compression
        if self.compression == "zstd":
            _zstd.binding()  # MissingExtraError now, not at the first export
        self._ssl: ssl.SSLContext | None = None
        if config.use_tls:
            context = make_ssl_context(config)
            assert context is not None
            context.set_alpn_protocols(["h2"])
            self._ssl = context
        host = config.host
        authority = f"[{host}]:{config.port}" if ":" in host else f"{host}:{config.port}"
        agent = f"{user_agent()} grpc-python-aiotlp-h2/{__version__}"
        custom: list[tuple[bytes, bytes]] = []
        for name, value in config.headers.items():
            if name in _RESERVED_HEADERS or name.startswith("grpc-"):
                # a fixed name is safe to show; the rest of a grpc-* name is the user's and is not
                shown = repr(name) if name in _RESERVED_HEADERS else "a grpc-* header"
                raise ConfigurationError(f"headers: {shown} is set by the gRPC transport itself and cannot be given")
            if name == "user-agent":
                agent = f"{value} {agent}"
                continue
            raw = value.encode("utf-8")
            if name.endswith("-bin"):  # binary metadata travels base64-encoded (unpadded)
                raw = base64.b64encode(raw).rstrip(b"=")
            custom.append((name.encode("ascii"), raw))
        self._head: tuple[tuple[bytes, bytes], ...] = (
            (b":method", b"POST"),
            (b":scheme", b"https" if config.use_tls else b"http"),
            (b":path", self.method.encode("ascii")),
            (b":authority", authority.encode("ascii")),
            (b"content-type", b"application/grpc"),
            (b"te", b"trailers"),
            (b"user-agent", agent.encode("ascii", "replace")),
            (b"grpc-accept-encoding", ",".join(("identity", *accepted_encodings())).encode("ascii")),
        )
        self._tails = {IDENTITY: tuple(custom)}
        for encoding in ENCODINGS:
            self._tails[encoding] = ((b"grpc-encoding", encoding.encode("ascii")), *custom)
        self._connection: Connection | None = None
        self._connecting: asyncio.Task[Connection] | None = None
        self._old: set[Connection] = set()  # replaced connections still finishing their calls
        self._closed = False

    def __repr__(self) -> str:
        return f"H2GrpcTransport({self.config.endpoint_for_display!r}, {self.method})"

    @property
    def connection(self) -> Connection | None:
        """The HTTP/2 connection new calls go on (``None`` before the first call and after :meth:`close`); its
        ``usable`` says whether it takes new calls, its ``closed`` future is done once the socket is closed."""
        return self._connection

    @property
    def request_headers(self) -> tuple[tuple[bytes, bytes], ...]:
        """The header fields every call starts with (pseudo-headers, ``content-type``, ``te``, ``user-agent``,
        ``grpc-accept-encoding``); ``grpc-timeout``, ``grpc-encoding`` and the configured metadata follow."""
        return self._head

    def _where(self) -> str:
        return self.config.endpoint_for_display

    async def send(self, body: bytes, *, content_encoding: str, timeout: float) -> Reply:
        if self._closed:
            raise PermanentError("the gRPC transport is closed")
        tail = self._tails.get(content_encoding)
        if tail is None:
            raise PermanentError(f"the gRPC transport cannot send a message encoded as {content_encoding[:20]!r}")
        if not timeout > 0:
            raise AttemptTimeoutError(f"no time left to send to {self._where()}")
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        connection = self._connection
        if connection is None or not connection.usable:
            connection = await self._connect(loop, deadline)
        headers = [
            *self._head,
            (b"grpc-timeout", _grpc_timeout(timeout)),
            *tail,
        ]
        return await connection.unary(headers, body, content_encoding != IDENTITY, deadline, timeout)

    async def connect(self, timeout: float) -> None:
        """Open the HTTP/2 connection now (or wait for the one being opened), ahead of the first call."""
        if self._closed:
            raise PermanentError("the gRPC transport is closed")
        connection = self._connection
        if connection is None or not connection.usable:
            loop = asyncio.get_running_loop()
            await self._connect(loop, loop.time() + timeout)

    async def close(self) -> None:
        """Fail pending calls with :class:`ExporterShutdownError` and close the connection(s) now."""
        self._closed = True
        task = self._connecting
        if task is not None:
            task.cancel()
            await asyncio.wait([task])
        error = ExporterShutdownError(f"the transport to {self._where()} was closed during the call")
        connections = [c for c in (self._connection, *self._old) if c is not None]
        self._connection = None
        self._old.clear()
        await asyncio.gather(*(c.aclose(error) for c in connections))

    # -- the connection

    async def _connect(self, loop: asyncio.AbstractEventLoop, deadline: float) -> Connection:
        task = self._connecting
        if task is None:
            old = self._connection
            if old is not None:
                self._connection = None
                if not old.closed.done():
                    self._old.add(old)
                    old.closed.add_done_callback(lambda _: self._old.discard(old))
            task = self._connecting = loop.create_task(self._open(loop, deadline))
            task.add_done_callback(self._connected)
        # Wait for the shared connect without letting our own cancellation or deadline cancel it for others.
        waiter: asyncio.Future[Connection] = loop.create_future()

        def relay(done: asyncio.Task[Connection]) -> None:
            if waiter.done():
                return
            if done.cancelled():
                error: ExportError = (
                    ExporterShutdownError(f"the transport to {self._where()} was closed")
                    if self._closed
                    else ConnectError(f"connecting to {self._where()} was interrupted")
                )
                waiter.set_exception(error)
            elif (exc := done.exception()) is not None:
                waiter.set_exception(exc)
            else:
                waiter.set_result(done.result())

        task.add_done_callback(relay)
        timer = loop.call_at(
            deadline,
            set_exception,
            waiter,
            AttemptTimeoutError(f"connecting to {self._where()} did not finish within the attempt's timeout"),
        )
        try:
            return await waiter
        finally:
            timer.cancel()
            task.remove_done_callback(relay)

    def _connected(self, task: asyncio.Task[Connection]) -> None:
        if self._connecting is task:
            self._connecting = None
        if not task.cancelled() and task.exception() is None:
            connection = task.result()
            if self._closed:
                connection.usable = False
                connection._close_if_idle()
            else:
                self._connection = connection

    async def _open(self, loop: asyncio.AbstractEventLoop, deadline: float) -> Connection:
        where = self._where()
        config = self.config
        transport: asyncio.Transport | None = None
        connection: Connection | None = None
        try:
            async with timeout_at(deadline):
                transport, protocol = await loop.create_connection(
                    lambda: Connection(loop, where, self.max_response_bytes, tls=self._ssl is not None),
                    self._address[0],
                    self._address[1],
                    ssl=self._ssl,
                    server_hostname=config.host if self._ssl is not None else None,
                )
                connection = protocol
                if self._ssl is not None:
                    ssl_object = transport.get_extra_info("ssl_object")
                    chosen = ssl_object.selected_alpn_protocol() if ssl_object is not None else None
                    if chosen not in (None, "h2"):
                        raise PermanentError(f"{where} negotiated {chosen!r} instead of HTTP/2 (ALPN h2)")
                await connection.ready
            return connection
        except BaseException as exc:
            if transport is not None:
                transport.abort()
            if connection is not None and not connection.ready.done():
                connection.ready.cancel()
            raise _connect_error(exc, where) from None


def _connect_error(exc: BaseException, where: str) -> BaseException:
    """Translate what opening a connection raised into the aiotlp error tree (CancelledError passes)."""
    if isinstance(exc, ExportError | asyncio.CancelledError):
        return exc
    if isinstance(exc, asyncio.TimeoutError | TimeoutError):
        return AttemptTimeoutError(f"connecting to {where} did not finish within the attempt's timeout")
    if isinstance(exc, ssl.SSLCertVerificationError):
        return PermanentError(f"TLS certificate verification failed for {where}: {exc.verify_message}")
    if isinstance(exc, ssl.SSLError):
        return PermanentError(f"TLS error talking to {where}: {exc.reason or type(exc).__name__}")
    if isinstance(exc, OSError):
        return ConnectError(f"cannot connect to {where}: {exc.strerror or type(exc).__name__}")
    if isinstance(exc, Exception):
        return PermanentError(f"connecting to {where} failed: {type(exc).__name__}")
    return exc
