"""OTLP/gRPC over aiotlp's own HTTP/2 client: ``h2`` (sans-IO) on an asyncio Protocol, unary calls only.

Why not grpc.aio: it owns its sockets. Against servers that leave Nagle on (rotel: hyper/tonic never set
TCP_NODELAY on accepted sockets) a response written just after the server's own small WINDOW_UPDATE waits for
that segment's ACK, and the client kernel delays the ACK by its 40 ms minimum: 8-21 % of calls stalled ~40 ms.
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
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import collections
import contextlib
import math
import socket
import ssl
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Final, cast
from urllib.parse import unquote_to_bytes

from .._compat import timeout_at
from .._exceptions import (
    AttemptTimeoutError,
    ConfigurationError,
    ConnectError,
    ExportError,
    ExporterShutdownError,
    MissingExtraError,
    PermanentError,
    ResponseError,
)
from .._version import __version__
from . import _zstd
from ._base import IDENTITY, Reply, grpc_method, make_ssl_context, user_agent
from ._compression import ENCODINGS, MAX_RESPONSE_BYTES, BoundedInflater, accepted_encodings
from ._mismatch import http1_status_line, wrong_port

try:
    from h2.config import H2Configuration
    from h2.connection import ConnectionInputs, ConnectionState, H2Connection, H2ConnectionStateMachine
    from h2.errors import ErrorCodes
    from h2.events import (
        ConnectionTerminated,
        DataReceived,
        RemoteSettingsChanged,
        ResponseReceived,
        StreamEnded,
        StreamReset,
        TrailersReceived,
        WindowUpdated,
    )
    from h2.exceptions import H2Error, ProtocolError
    from h2.settings import SettingCodes, Settings
    from h2.stream import StreamState
    from hpack import Encoder, NeverIndexedHeaderTuple
    from hpack.hpack import encode_integer
    from hpack.table import HeaderTable

    _SENDING_STATES = frozenset({StreamState.OPEN, StreamState.HALF_CLOSED_REMOTE})  # where h2 sends DATA

    class _DrainingStateMachine(H2ConnectionStateMachine):
        """h2's connection state machine, except that a GOAWAY received on an open connection leaves it open.

        h2 has no draining state: any GOAWAY closes it, and every later frame is then a ProtocolError. A server
        closing gracefully goes on talking: grpc-go (max_connection_age, a graceful stop) sends GOAWAY with the
        last stream id 2^31-1 and a PING in one write, then, once the PING is answered, GOAWAY with the real last
        stream id, then the answers to the calls it took. With h2 closed, the PING raised a ProtocolError inside
        ``receive_data`` (the GOAWAY's own event was lost with it) and failed every call in flight as permanent.
        Here the connection stays open for those calls; :class:`_Connection` starts no new stream on it
        (``usable`` is False after a GOAWAY) and closes it once they are done."""

        def process_input(self, input_: ConnectionInputs) -> list[Any]:
            if input_ is ConnectionInputs.RECV_GOAWAY and self.state is ConnectionState.CLIENT_OPEN:
                return []
            return super().process_input(input_)

    _H2_MISSING = False
except ImportError:  # pragma: no cover - depends on the installed extras
    _H2_MISSING = True

if TYPE_CHECKING:
    from ..config import SignalConfig

__all__ = ["H2GrpcTransport"]

#: Linux only; 0 where the platform has no TCP_QUICKACK.
_QUICKACK: Final[int] = socket.TCP_QUICKACK if hasattr(socket, "TCP_QUICKACK") else 0

# gRPC codes this client reports itself for a broken stream, as grpc core does (plain ints).
_OK, _CANCELLED, _UNKNOWN, _PERMISSION_DENIED, _RESOURCE_EXHAUSTED = 0, 1, 2, 7, 8
_INTERNAL, _UNAVAILABLE = 13, 14

#: RST_STREAM error code -> gRPC code (grpc-go's http2ErrConvTab); anything else is INTERNAL.
_RESET_TO_GRPC: Final = {7: _UNAVAILABLE, 8: _CANCELLED, 11: _RESOURCE_EXHAUSTED, 12: _PERMISSION_DENIED}
_RESET_NAMES: Final = {
    0: "NO_ERROR",
    1: "PROTOCOL_ERROR",
    2: "INTERNAL_ERROR",
    3: "FLOW_CONTROL_ERROR",
    4: "SETTINGS_TIMEOUT",
    5: "STREAM_CLOSED",
    6: "FRAME_SIZE_ERROR",
    7: "REFUSED_STREAM",
    8: "CANCEL",
    9: "COMPRESSION_ERROR",
    10: "CONNECT_ERROR",
    11: "ENHANCE_YOUR_CALM",
    12: "INADEQUATE_SECURITY",
    13: "HTTP_1_1_REQUIRED",
}
_CANCEL: Final = 8

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
#: Header fields sent as HPACK "never indexed" literals (credentials), so no intermediary indexes them.
_SENSITIVE_NAMES: Final = frozenset({b"authorization", b"proxy-authorization", b"cookie", b"grpc-timeout"})
#: Header fields whose value changes from call to call: not cached by the HPACK encoder.
_VOLATILE_NAMES: Final = frozenset({b"grpc-timeout"})

_LAST_STREAM_ID: Final = 2**31 - 1 - 2 * 1024  # leave room for calls racing to start on this connection
_FLUSH_BYTES: Final = 256 * 1024  # while sending a large body: write out and yield to the loop this often


def _grpc_timeout(seconds: float) -> bytes:
    """``seconds`` in the ``grpc-timeout`` wire format: at most 8 digits and a unit (``1500m``)."""
    millis = math.ceil(seconds * 1000)
    if millis <= 99_999_999:
        return b"%dm" % max(millis, 1)
    return b"%dS" % min(math.ceil(seconds), 99_999_999)


def _b64decode(value: bytes) -> bytes | None:
    """A ``-bin`` header value: base64, padding optional."""
    try:
        return base64.b64decode(value + b"=" * (-len(value) % 4))
    except (binascii.Error, ValueError):
        return None


def _set_exception(future: asyncio.Future[Any], error: BaseException) -> None:
    if not future.done():
        future.set_exception(error)


def _wake(future: asyncio.Future[None] | None) -> None:
    if future is not None and not future.done():
        future.set_result(None)


class _StaticEncoder(Encoder):
    """HPACK without a dynamic table: each header field encodes the same way every time, so it is cached.

    h2 hands every request's header block to ``encoder.encode``; the stock encoder walks and updates the
    dynamic table per field, a large share of a small call's CPU. Ours never inserts: a field is a static-table
    index or a literal "without indexing" ("never indexed" for credentials and for ``grpc-timeout``, whose
    value changes with every call), and the first block announces a table size of 0 (always within the
    peer's SETTINGS_HEADER_TABLE_SIZE, so later changes to that setting need no update). Request blocks are a
    few dozen bytes larger than with indexing; encoding one is a few dictionary lookups.
    """

    _FULL: Final[dict[tuple[bytes, bytes], int]] = {}
    _NAMES: Final[dict[bytes, int]] = {}
    _CACHE_LIMIT: Final = 512

    def __init__(self) -> None:
        super().__init__()
        if not self._FULL:
            for index, (name, value) in enumerate(HeaderTable.STATIC_TABLE, 1):
                self._FULL.setdefault((name, value), index)
                self._NAMES.setdefault(name, index)
        self._cache: dict[tuple[bytes, bytes], bytes] = {}
        self._names: dict[bytes, bytes] = {}
        self._first = True

    def encode(self, headers: Any, huffman: bool = True) -> bytes:
        cache = self._cache
        parts = []
        if self._first:
            parts.append(b"\x20")  # dynamic table size update: 0
            self._first = False
        for header in headers:
            name = header[0]
            value = header[1]
            field = cache.get((name, value))
            if field is None:
                if name in _VOLATILE_NAMES or len(cache) >= self._CACHE_LIMIT:
                    # a value seen once: the cached name part, and the value as a plain (not Huffman) string
                    prefix = self._names.get(name)
                    if prefix is None:
                        prefix = self._names[name] = self._name_part(name, type(header) is NeverIndexedHeaderTuple)
                    parts.append(prefix + self._string(value, huffman=False))
                    continue
                field = cache[(name, value)] = self._field(name, value, type(header) is NeverIndexedHeaderTuple)
            parts.append(field)
        return b"".join(parts)

    def _field(self, name: bytes, value: bytes, sensitive: bool) -> bytes:
        index = self._FULL.get((name, value))
        if index is not None and not sensitive and name not in _SENSITIVE_NAMES:
            field = encode_integer(index, 7)
            field[0] |= 0x80
            return bytes(field)
        return self._name_part(name, sensitive) + self._string(value)

    def _name_part(self, name: bytes, sensitive: bool) -> bytes:
        """The start of a literal field: representation, and the name (a static-table index, or a string)."""
        name_index = self._NAMES.get(name, 0)
        field = encode_integer(name_index, 4)
        field[0] |= 0x10 if sensitive or name in _SENSITIVE_NAMES else 0x00
        return bytes(field) + (b"" if name_index else self._string(name))

    def _string(self, data: bytes, *, huffman: bool = True) -> bytes:
        if huffman:
            encoded = self.huffman_coder.encode(data)
            if len(encoded) < len(data):
                length = encode_integer(len(encoded), 7)
                length[0] |= 0x80
                return bytes(length) + encoded
        if len(data) < 0x7F:
            return bytes((len(data),)) + data
        return bytes(encode_integer(len(data), 7)) + data


class _Call:
    """One unary call (one stream): the caller's future, what has been sent, and the response as it arrives."""

    __slots__ = (
        "compressed_flag",
        "content_type",
        "data",
        "details",
        "encoding",
        "ended",
        "future",
        "grpc_message",
        "grpc_status",
        "http_status",
        "length",
        "reset",
        "sent",
        "stream_id",
        "waiter",
    )

    def __init__(self, stream_id: int, future: asyncio.Future[Reply]) -> None:
        self.stream_id = stream_id
        self.future = future
        self.waiter: asyncio.Future[None] | None = None  # a sender waiting for flow-control window
        self.sent = False  # our END_STREAM went out
        self.ended = False  # the server ended (or reset) the stream
        self.reset = False  # a RST_STREAM was sent or received: nothing more to send on it
        self.http_status = 0
        self.content_type = b""
        self.encoding = b""
        self.grpc_status: int | None = None
        self.grpc_message = b""
        self.details: bytes | None = None
        self.data: bytes | bytearray = b""
        self.length = -1  # the response message's length, once its 5-byte prefix has arrived
        self.compressed_flag = 0


class _Connection(asyncio.Protocol):
    """One HTTP/2 connection: the h2 state machine, its socket, and the calls multiplexed on it."""

    def __init__(
        self, loop: asyncio.AbstractEventLoop, where: str, max_response_bytes: int, *, tls: bool = False
    ) -> None:
        self._loop = loop
        self._tls = tls
        self._where = where
        self._limit = max_response_bytes
        # gzip makes incompressible data at most ~0.03 % (+ a header) larger: a compressed message longer than
        # this cannot be a response within the limit, so it is refused before it is buffered.
        self._compressed_limit = max_response_bytes + (max_response_bytes >> 8) + 1024
        config = H2Configuration(
            client_side=True,
            header_encoding=None,
            # our own headers are built (and validated) once, in H2GrpcTransport.__init__; the server's are only
            # looked up by name (the few we read are parsed defensively), so h2's per-header checks are skipped
            validate_outbound_headers=False,
            normalize_outbound_headers=False,
            validate_inbound_headers=False,
            normalize_inbound_headers=False,
        )
        self._h2 = H2Connection(config=config)
        self._h2.state_machine = _DrainingStateMachine()
        self._h2.encoder = _StaticEncoder()
        self._h2.local_settings = Settings(client=True, initial_values={SettingCodes.ENABLE_PUSH: 0})
        self._transport: asyncio.Transport | None = None
        self._setsockopt: Callable[[int, int, int], None] | None = None
        self._calls: dict[int, _Call] = {}
        self._slot_waiters: collections.deque[asyncio.Future[None]] = collections.deque()
        self._paused = False
        self._max_streams = 100  # until the server's SETTINGS say otherwise (RFC 9113 recommends >= 100)
        self.ready: asyncio.Future[None] = loop.create_future()  # the server's first SETTINGS arrived
        self.closed: asyncio.Future[None] = loop.create_future()  # connection_lost ran
        self.usable = False  # takes new calls: ready, not failed, no GOAWAY
        self._error: ExportError | None = None
        # The server's first bytes while they may still be an HTTP/1.x status line (an OTLP/HTTP port answering
        # our preface); None once they are known to be something else.
        self._greeting: bytes | None = b""

    # -- asyncio.Protocol

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # (uvloop's transports are not asyncio.Transport subclasses, but offer the same methods)
        self._transport = cast(asyncio.Transport, transport)
        sock = transport.get_extra_info("socket")
        if sock is not None:
            try:
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                if _QUICKACK:
                    sock.setsockopt(socket.IPPROTO_TCP, _QUICKACK, 1)
                    self._setsockopt = sock.setsockopt
            except OSError:  # not TCP (a test's socketpair), or the platform refuses: only a latency loss
                self._setsockopt = None
        self._h2.initiate_connection()
        self._flush()

    def data_received(self, data: bytes) -> None:
        setsockopt = self._setsockopt
        if setsockopt is not None:
            # Quick-ACK mode ends after a while on its own: re-arm it after every read so the kernel ACKs what
            # we just read now, not after the 40 ms delayed-ACK timer (a Nagle-bound server waits for it).
            try:
                setsockopt(socket.IPPROTO_TCP, _QUICKACK, 1)
            except OSError:
                self._setsockopt = None
        if self._greeting is not None:
            greeting = self._greeting + data
            if greeting.startswith(b"HTTP/"[: len(greeting)]):  # (the start of) an HTTP/1.x response
                if not self._h1_reply(greeting):
                    self._greeting = greeting  # wait for the rest of its status line
                return
            self._greeting = None
            data = greeting
        try:
            self._handle(self._h2.receive_data(data))
        except ProtocolError as exc:
            self._flush()  # h2 queued a GOAWAY
            what = "did not speak HTTP/2" if not self.ready.done() else "broke the HTTP/2 protocol"
            self._abort(PermanentError(f"{self._where} {what} ({type(exc).__name__})"))
            return
        except Exception as exc:  # a bug here must fail the calls, not leave them hanging
            self._abort(PermanentError(f"reading from {self._where} failed: {type(exc).__name__}"))
            return
        self._flush()

    def _h1_reply(self, greeting: bytes) -> bool:
        """Fail every call if ``greeting`` (the server's first bytes, starting ``HTTP/``) holds an HTTP/1.x status
        line; False while it may still become one."""
        if len(greeting) < 5 or (b"\n" not in greeting and len(greeting) < 64):
            return False
        line = http1_status_line(greeting)
        self._greeting = None
        self._abort(wrong_port(self._where, "grpc", f"an HTTP/1.x reply ({line})" if line else "an HTTP/1.x reply"))
        return True

    def _handle(self, events: list[Any]) -> None:
        calls = self._calls
        for event in events:
            kind = type(event)
            if kind is DataReceived:
                size = event.flow_controlled_length
                stream_id = event.stream_id
                if size:
                    self._h2.acknowledge_received_data(size, stream_id)
                call = calls.get(stream_id)
                if call is not None and not call.future.done():
                    self._on_data(call, event.data)
            elif kind is ResponseReceived or kind is TrailersReceived:
                call = calls.get(event.stream_id)
                if call is not None:
                    self._on_headers(call, event.headers)
            elif kind is StreamEnded:
                call = calls.get(event.stream_id)
                if call is not None:
                    call.ended = True
                    self._finish(call)
            elif kind is WindowUpdated:
                stream_id = event.stream_id
                if stream_id:
                    call = calls.get(stream_id)
                    if call is not None:
                        _wake(call.waiter)
                else:
                    for call in calls.values():
                        _wake(call.waiter)
            elif kind is StreamReset:
                call = calls.get(event.stream_id)
                if call is not None:
                    self._on_reset(call, event.error_code, event.remote_reset)
            elif kind is RemoteSettingsChanged:
                self._on_settings(event)
            elif kind is ConnectionTerminated:
                self._on_goaway(event)

    def eof_received(self) -> bool | None:
        return False  # close our side too: connection_lost follows

    def connection_lost(self, exc: Exception | None) -> None:
        self.usable = False
        self._transport = None
        self._setsockopt = None
        error = self._error
        if error is None and self._greeting and self._greeting.startswith(b"HTTP/"):
            error = wrong_port(self._where, "grpc", "an HTTP/1.x reply")  # it hung up within its status line
        if error is None:
            if isinstance(exc, ssl.SSLError):
                error = PermanentError(f"TLS error talking to {self._where}: {exc.reason or type(exc).__name__}")
            elif self._tls and not self.ready.done():
                # A TLS server that completes the handshake and hangs up before its first HTTP/2 frame is
                # refusing us at the TLS layer (TLS 1.3 checks the client certificate only after the client
                # thinks the handshake is done; some servers send no alert): retrying will not help.
                error = PermanentError(
                    f"the TLS server {self._where} closed the connection before speaking HTTP/2: it may require a "
                    "client certificate, or have refused ours"
                )
            else:
                reason = f": {exc.strerror or type(exc).__name__}" if isinstance(exc, OSError) else ""
                error = ConnectError(f"the connection to {self._where} closed before the response{reason}")
            self._error = error
        if not self.ready.done():
            self.ready.set_exception(error)
            self.ready.exception()  # retrieved: whoever waited may have given up already
        for call in self._calls.values():
            _set_exception(call.future, error)
            _wake(call.waiter)
        self._fail_slot_waiters(error)
        if not self.closed.done():
            self.closed.set_result(None)

    def pause_writing(self) -> None:
        self._paused = True

    def resume_writing(self) -> None:
        self._paused = False
        for call in self._calls.values():
            _wake(call.waiter)

    # -- receiving

    def _on_headers(self, call: _Call, headers: list[tuple[bytes, bytes]]) -> None:
        for name, value in headers:
            if name == b":status":
                try:
                    call.http_status = int(value)
                except ValueError:
                    call.http_status = -1
            elif name == b"grpc-status":
                try:
                    call.grpc_status = int(value)
                except ValueError:
                    call.grpc_status = _UNKNOWN
            elif name == b"content-type":
                call.content_type = value
            elif name == b"grpc-message":
                call.grpc_message = value
            elif name == b"grpc-status-details-bin":
                call.details = _b64decode(value)
            elif name == b"grpc-encoding":
                call.encoding = value

    def _on_data(self, call: _Call, data: bytes) -> None:
        buffer = call.data
        if not buffer:
            buffer = call.data = data
        else:
            if not isinstance(buffer, bytearray):
                buffer = call.data = bytearray(buffer)
            buffer += data
        if call.length < 0:
            if len(buffer) < 5:
                return
            flag = buffer[0]
            length = int.from_bytes(buffer[1:5], "big")
            if flag > 1:
                self._answer(call, _broken(_INTERNAL, "bad message flag"))
                return
            if length > (self._compressed_limit if flag else self._limit):
                self._fail(
                    call,
                    ResponseError(f"the response from {self._where} announces {length} bytes, more than {self._limit}"),
                )
                return
            call.compressed_flag = flag
            call.length = length
        if len(buffer) > 5 + call.length:
            self._fail(call, ResponseError(f"{self._where} sent more than one message in a unary response"))

    def _on_reset(self, call: _Call, error_code: int, remote: bool) -> None:
        call.ended = call.reset = True
        name = _RESET_NAMES.get(int(error_code), str(int(error_code)))
        if remote:
            code = _RESET_TO_GRPC.get(int(error_code), _INTERNAL)
            message = f"the server reset the stream ({name})"
        else:  # h2 reset it: the server broke the protocol on this stream
            code = _INTERNAL
            message = f"the server's response broke HTTP/2 ({name})"
        self._answer(call, _broken(code, message))

    def _finish(self, call: _Call) -> None:
        """The server ended the stream: resolve the call from its status and message."""
        if call.future.done():
            return
        try:
            result = self._outcome(call)
        except ExportError as exc:
            call.future.set_exception(exc)
        else:
            call.future.set_result(result)
        _wake(call.waiter)

    def _outcome(self, call: _Call) -> Reply:
        """The reply as received; the message is unframed and decompressed only under an OK status."""
        content_type = call.content_type.decode("latin-1")
        grpc_status = call.grpc_status
        if call.http_status != 200 or grpc_status is None:
            return Reply(call.http_status, content_type=content_type, grpc_status=grpc_status)
        if grpc_status != _OK:
            text = unquote_to_bytes(call.grpc_message).decode("utf-8", "replace") if call.grpc_message else ""
            return Reply(
                200, content_type=content_type, grpc_status=grpc_status, grpc_message=text, grpc_details=call.details
            )
        data = call.data
        length = call.length
        if length <= 0:
            if not data or length == 0:  # an empty message (or, leniently, none at all)
                return Reply(200, content_type=content_type, grpc_status=_OK)
            return _broken(_INTERNAL, "truncated response message")
        if len(data) < 5 + length:
            return _broken(_INTERNAL, "truncated response message")
        message = bytes(memoryview(data)[5:])
        if call.compressed_flag:
            if call.encoding.decode("latin-1") not in accepted_encodings():
                return _broken(_INTERNAL, "response compressed with an unsupported encoding")
            try:
                inflater = BoundedInflater(call.encoding.decode("latin-1"), limit=self._limit)
                inflater.feed(message)
                message = inflater.finish()
            except ResponseError as exc:
                raise ResponseError(f"the response from {self._where}: {exc.message}") from None
        return Reply(200, message, content_type=content_type, grpc_status=_OK)

    def _answer(self, call: _Call, reply: Reply) -> None:
        """Resolve ``call`` with ``reply`` before its stream ended and, if the stream is still open, reset it."""
        if not call.future.done():
            call.future.set_result(reply)
        _wake(call.waiter)
        self._reset(call)

    def _fail(self, call: _Call, error: ExportError) -> None:
        """Resolve ``call`` with ``error`` and, if the stream is still open, reset it."""
        _set_exception(call.future, error)
        _wake(call.waiter)
        self._reset(call)

    def _reset(self, call: _Call) -> None:
        if call.reset or (call.ended and call.sent):
            return
        call.reset = True
        with contextlib.suppress(H2Error):
            self._h2.reset_stream(call.stream_id, ErrorCodes.CANCEL)
        self._flush()

    def _on_settings(self, event: RemoteSettingsChanged) -> None:
        before = self._max_streams
        self._max_streams = min(self._h2.remote_settings.max_concurrent_streams, 1 << 31)
        if SettingCodes.INITIAL_WINDOW_SIZE in event.changed_settings:
            for call in self._calls.values():
                _wake(call.waiter)
        if self._max_streams > before:
            self._wake_slots()
        if not self.ready.done():
            self.usable = True
            self.ready.set_result(None)

    def _on_goaway(self, event: ConnectionTerminated) -> None:
        self.usable = False
        last = event.last_stream_id if event.last_stream_id is not None else 0
        error = ConnectError(f"{self._where} is closing the connection (GOAWAY) and did not take the request")
        for stream_id, call in self._calls.items():
            if stream_id > last:
                call.ended = call.reset = True  # never processed: the server ignores the stream
                _set_exception(call.future, error)
                _wake(call.waiter)
        self._fail_slot_waiters(error)
        if not self.ready.done():
            self._error = error
        self._close_if_idle()

    # -- sending

    def _flush(self) -> None:
        data = self._h2.data_to_send()
        if data:
            transport = self._transport
            if transport is not None and not transport.is_closing():
                transport.write(data)

    async def unary(
        self, headers: list[tuple[bytes, bytes]], body: bytes, compressed: bool, deadline: float, timeout: float
    ) -> Reply:
        """One call on this connection: HEADERS, DATA (length-prefixed ``body``), then wait for the response."""
        loop = self._loop
        if len(self._calls) >= self._max_streams:
            await self._wait_slot(deadline)
            if not self.usable:  # a GOAWAY came while we waited: no new stream on this connection
                raise ConnectError(f"the connection to {self._where} closed while the call waited for a stream")
        h2c = self._h2
        try:
            stream_id = h2c.get_next_available_stream_id()
            h2c.send_headers(stream_id, headers)
            if stream_id >= _LAST_STREAM_ID:
                self.usable = False  # stream IDs run out: the next call opens a new connection
        except H2Error as exc:
            self.usable = False
            raise ConnectError(
                f"cannot start a call on the connection to {self._where}: {type(exc).__name__}"
            ) from None
        future: asyncio.Future[Reply] = loop.create_future()
        call = _Call(stream_id, future)
        self._calls[stream_id] = call
        timer = loop.call_at(deadline, self._expire, call, timeout)
        try:
            prefix = (b"\x01" if compressed else b"\x00") + len(body).to_bytes(4, "big")
            if len(body) + 5 <= min(h2c.local_flow_control_window(stream_id), h2c.max_outbound_frame_size):
                h2c.send_data(stream_id, prefix + body, end_stream=True)
                call.sent = True
                self._flush()
            else:
                await self._send_body(call, prefix, body)
            return await future
        except asyncio.CancelledError:
            self._reset(call)  # our caller gave up: tell the server
            raise
        except H2Error as exc:
            # h2 refused to send: the connection or the stream went away underneath (its error is the call's)
            self._reset(call)
            if future.done():
                return await future
            raise ConnectError(f"sending to {self._where} failed: {type(exc).__name__}") from None
        finally:
            timer.cancel()
            self._release(call)

    async def _send_body(self, call: _Call, prefix: bytes, body: bytes) -> None:
        """Send the message (``prefix`` + ``body``) in DATA frames as the flow-control windows allow; stop if the
        call ends first.

        Every frame but the last is framed here, with h2's flow-control windows debited as h2 would: through h2,
        each 16 KiB frame crosses two state machines and is copied three times (about 40 us a frame, 0.6 ms of a
        512-span export on this machine). The frame that ends the stream goes through h2, so that the stream's
        state moves on; so does any frame while h2 would not send DATA on this connection or stream (it then
        raises, as before). What h2 holds (this call's HEADERS), the frames and the last frame leave in one
        write: each system call is one more chance for another thread to take the GIL.
        """
        h2c = self._h2
        stream_id = call.stream_id
        stream = h2c.streams.get(stream_id)
        view = memoryview(body)
        total = len(body) + 5
        position = 0  # bytes of the message (prefix, then body) sent so far
        frame_tail = b"\x00\x00" + stream_id.to_bytes(4, "big")  # type DATA, no flags, the stream
        while not call.future.done():
            window = h2c.local_flow_control_window(stream_id)
            if self._paused or window <= 0:
                # the socket's buffer is full, or no window: wait for resume_writing or a WINDOW_UPDATE (or for
                # the call to end: timeout, reset, a lost connection all wake us too)
                self._flush()
                call.waiter = self._loop.create_future()
                try:
                    await call.waiter
                finally:
                    call.waiter = None
                continue
            frame_max = h2c.max_outbound_frame_size
            budget = min(window, total - position - 1, _FLUSH_BYTES)  # one byte at least is left for the last frame
            if budget > 0:
                if (
                    stream is None
                    or h2c.state_machine.state is not ConnectionState.CLIENT_OPEN
                    or stream.state_machine.state not in _SENDING_STATES
                ):
                    take = min(budget, frame_max)
                    h2c.send_data(stream_id, _message_slice(prefix, view, position, position + take))
                    position += take
                    self._flush()
                    continue
                out = bytearray(h2c.data_to_send())
                end = position + budget
                while position < end:
                    take = min(frame_max, end - position)
                    out += take.to_bytes(3, "big")
                    out += frame_tail
                    out += _message_slice(prefix, view, position, position + take)
                    position += take
                h2c.outbound_flow_control_window -= budget
                stream.outbound_flow_control_window -= budget
                window -= budget
            else:
                out = bytearray()
            last = total - position <= min(window, frame_max)
            try:
                if last:
                    h2c.send_data(stream_id, _message_slice(prefix, view, position, total), end_stream=True)
                    call.sent = True
            finally:  # what is framed (and what h2 holds) is written even if h2 refused the last frame
                out += h2c.data_to_send()
                transport = self._transport
                if out and transport is not None and not transport.is_closing():
                    transport.write(out)
            if last:
                return
            if budget == _FLUSH_BYTES:
                await asyncio.sleep(0)  # a large body with open windows must not hold the event loop

    def _expire(self, call: _Call, timeout: float) -> None:
        if not call.future.done():
            self._fail(call, AttemptTimeoutError(f"no response from {self._where} within {timeout:.3g}s"))

    def _release(self, call: _Call) -> None:
        """The caller is done with ``call``: close its stream if still open, hand its slot on."""
        self._calls.pop(call.stream_id, None)
        future = call.future
        if not future.done():
            future.cancel()
        elif not future.cancelled():
            future.exception()  # retrieved, even if our caller was cancelled before it could look
        if not (call.ended and call.sent):
            self._reset(call)
        if self._slot_waiters:
            self._wake_slots()
        if not self.usable:
            self._close_if_idle()

    # -- stream slots (MAX_CONCURRENT_STREAMS)

    async def _wait_slot(self, deadline: float) -> None:
        loop = self._loop
        while len(self._calls) >= self._max_streams:
            if not self.usable:
                raise self._error or ConnectError(f"the connection to {self._where} is closing")
            waiter: asyncio.Future[None] = loop.create_future()
            self._slot_waiters.append(waiter)
            timer = loop.call_at(
                deadline,
                _set_exception,
                waiter,
                AttemptTimeoutError(f"no free stream on the connection to {self._where} before the deadline"),
            )
            try:
                await waiter
            except asyncio.CancelledError:
                if waiter.done() and not waiter.cancelled():
                    self._wake_slots()  # we were handed a slot we will not use
                raise
            finally:
                timer.cancel()
                if waiter in self._slot_waiters:
                    self._slot_waiters.remove(waiter)

    def _wake_slots(self) -> None:
        free = self._max_streams - len(self._calls)
        waiters = self._slot_waiters
        while free > 0 and waiters:
            waiter = waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)
                free -= 1

    def _fail_slot_waiters(self, error: ExportError) -> None:
        while self._slot_waiters:
            _set_exception(self._slot_waiters.popleft(), error)

    # -- closing

    def _close_if_idle(self) -> None:
        if not self._calls and self._transport is not None:
            with contextlib.suppress(H2Error):
                self._h2.close_connection()
            self._flush()
            self._transport.close()

    def _abort(self, error: ExportError) -> None:
        """Fail every call with ``error`` and drop the connection."""
        self.usable = False
        if self._error is None:
            self._error = error
        for call in self._calls.values():
            call.reset = True
            _set_exception(call.future, error)
            _wake(call.waiter)
        self._fail_slot_waiters(error)
        if self._transport is not None:
            self._transport.close()

    async def aclose(self, error: ExportError) -> None:
        """Fail pending calls with ``error``, send GOAWAY, close, and wait (briefly) until the socket is gone.

        Over TLS, ``close()`` sends our close_notify and asyncio then waits for the server's before it lets the
        socket go, up to its ``ssl_shutdown_timeout`` (30 s): a gRPC server (grpc C-core, for one) never sends
        it, so every shutdown would wait out the grace below. The server's close_notify protects nothing here
        (GOAWAY ended the HTTP/2 session and every call was settled above), so the TLS transport is aborted as
        soon as GOAWAY and close_notify were handed to the socket; the socket is closed at once, not leaked.
        """
        self.usable = False
        if self._error is None:
            self._error = error
        transport = self._transport
        if transport is not None:
            with contextlib.suppress(H2Error):
                self._h2.close_connection()
            self._flush()
        self._abort(error)
        if transport is not None and self._tls and not self.closed.done():
            transport.abort()
        if transport is not None:
            try:
                await asyncio.wait_for(asyncio.shield(self.closed), 1.0)
            except asyncio.TimeoutError:
                transport.abort()


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
        self._connection: _Connection | None = None
        self._connecting: asyncio.Task[_Connection] | None = None
        self._old: set[_Connection] = set()  # replaced connections still finishing their calls
        self._closed = False

    def __repr__(self) -> str:
        return f"H2GrpcTransport({self.config.endpoint_for_display!r}, {self.method})"

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

    async def _connect(self, loop: asyncio.AbstractEventLoop, deadline: float) -> _Connection:
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
        waiter: asyncio.Future[_Connection] = loop.create_future()

        def relay(done: asyncio.Task[_Connection]) -> None:
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
            _set_exception,
            waiter,
            AttemptTimeoutError(f"connecting to {self._where()} did not finish within the attempt's timeout"),
        )
        try:
            return await waiter
        finally:
            timer.cancel()
            task.remove_done_callback(relay)

    def _connected(self, task: asyncio.Task[_Connection]) -> None:
        if self._connecting is task:
            self._connecting = None
        if not task.cancelled() and task.exception() is None:
            connection = task.result()
            if self._closed:
                connection.usable = False
                connection._close_if_idle()
            else:
                self._connection = connection

    async def _open(self, loop: asyncio.AbstractEventLoop, deadline: float) -> _Connection:
        where = self._where()
        config = self.config
        transport: asyncio.Transport | None = None
        connection: _Connection | None = None
        try:
            async with timeout_at(deadline):
                transport, protocol = await loop.create_connection(
                    lambda: _Connection(loop, where, self.max_response_bytes, tls=self._ssl is not None),
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


def _broken(code: int, message: str) -> Reply:
    """The status this client reports for a stream that broke (as grpc core would): ``code``, ``message``."""
    return Reply(200, content_type="application/grpc", grpc_status=code, grpc_message=message)


def _message_slice(prefix: bytes, body: memoryview, start: int, end: int) -> bytes | memoryview:
    """Bytes ``start:end`` of the length-prefixed message ``prefix + body``, without joining the two."""
    if start >= 5:
        return body[start - 5 : end - 5]
    return prefix[start:end] + body[: max(0, end - 5)]


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
