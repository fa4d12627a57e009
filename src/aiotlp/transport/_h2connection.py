"""One HTTP/2 connection of aiotlp's gRPC client (``h2`` on an asyncio Protocol): unary calls multiplexed on it.

:class:`Connection` writes each call's HEADERS and length-prefixed DATA, reads the response as it arrives and
resolves the call with the :class:`~aiotlp.transport.Reply` (a stream the server reset or whose message is
malformed becomes a status, as grpc core reports it), or with a classified error for a failure of the
connection itself (refused, reset, closed, GOAWAY before the call was taken, timeout, an oversized response, an
HTTP/1.x server). See :mod:`aiotlp.transport._h2grpc` for the wire and the transport around it.

h2 keeps the protocol state (stream and connection state machines, flow-control windows, HPACK tables), but the
frames of a common call do not go through its generic machinery, which cost the bridge thread about 1 ms of CPU
per 250 KB export: the request HEADERS, the body's DATA frames and the reply's HEADERS, DATA, trailers and
WINDOW_UPDATEs are framed and parsed here, and h2's state is changed for each as h2 changes it, in h2's order
(:mod:`aiotlp.transport._h2fast`). Anything
else (SETTINGS, PING, RST_STREAM, GOAWAY, padding, PRIORITY, CONTINUATION, a frame split across reads) goes
through h2 as before. ``tests/transport/test_h2fastpath.py`` checks both ways against each other byte for byte.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import socket
import ssl
from collections.abc import Callable
from typing import Any, Final, cast
from urllib.parse import unquote_to_bytes

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

from .._exceptions import AttemptTimeoutError, ConnectError, ExportError, PermanentError, ResponseError
from ._base import Reply
from ._compression import BoundedInflater, accepted_encodings
from ._grpcwire import INTERNAL, OK, RESET_NAMES, RESET_TO_GRPC, UNKNOWN, b64decode, broken, message_slice
from ._h2fast import AVAILABLE as FAST_FRAMES
from ._h2fast import FastFrames, data_frame_head
from ._hpack import StaticEncoder
from ._mismatch import http1_status_line, wrong_port

__all__ = ["Connection", "set_exception"]

_SENDING_STATES = frozenset({StreamState.OPEN, StreamState.HALF_CLOSED_REMOTE})  # where h2 sends DATA
_INFLATED_MEMO_SIZE: Final = 16  # distinct compressed replies remembered, each at most _INFLATED_MEMO_BYTES
_INFLATED_MEMO_BYTES: Final = 256


class _DrainingStateMachine(H2ConnectionStateMachine):
    """h2's connection state machine, except that a GOAWAY received on an open connection leaves it open.

    h2 has no draining state: any GOAWAY closes it, and every later frame is then a ProtocolError. A server
    closing gracefully goes on talking: grpc-go (max_connection_age, a graceful stop) sends GOAWAY with the
    last stream id 2^31-1 and a PING in one write, then, once the PING is answered, GOAWAY with the real last
    stream id, then the answers to the calls it took. With h2 closed, the PING raised a ProtocolError inside
    ``receive_data`` (the GOAWAY's own event was lost with it) and failed every call in flight as permanent.
    Here the connection stays open for those calls; :class:`Connection` starts no new stream on it
    (``usable`` is False after a GOAWAY) and closes it once they are done."""

    def process_input(self, input_: ConnectionInputs) -> list[Any]:
        if input_ is ConnectionInputs.RECV_GOAWAY and self.state is ConnectionState.CLIENT_OPEN:
            return []
        return super().process_input(input_)


#: Linux only; 0 where the platform has no TCP_QUICKACK.
_QUICKACK: Final[int] = socket.TCP_QUICKACK if hasattr(socket, "TCP_QUICKACK") else 0

_LAST_STREAM_ID: Final = 2**31 - 1 - 2 * 1024  # leave room for calls racing to start on this connection
_FLUSH_BYTES: Final = 256 * 1024  # while sending a large body: write out and yield to the loop this often


def set_exception(future: asyncio.Future[Any], error: BaseException) -> None:
    if not future.done():
        future.set_exception(error)


def _wake(future: asyncio.Future[None] | None) -> None:
    if future is not None and not future.done():
        future.set_result(None)


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


class Connection(asyncio.Protocol):
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
        self._h2.encoder = StaticEncoder()
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
        # Reads go through FastFrames.receive, and request HEADERS and a body's last DATA frame through its
        # send_headers and end_stream (h2's own state changes, without its frame objects) while these are True.
        # (_DrainingStateMachine differs from h2's only for RECV_GOAWAY: the inputs of a call's frames are quiet)
        self._fast = FastFrames(self._h2, quiet_machine=True) if FAST_FRAMES else None
        self.fast_receive = self.fast_send = FAST_FRAMES
        # (grpc-encoding, a small compressed response message) -> the message inflated: a collector compresses
        # its (empty or near-empty) OK reply the same way every time
        self._inflated: dict[tuple[bytes, bytes], bytes] = {}

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
            fast = self._fast if self.fast_receive else None
            self._handle(fast.receive(data) if fast is not None else self._h2.receive_data(data))
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
        fast = self._fast if self.fast_receive else None
        for event in events:
            kind = type(event)
            if kind is DataReceived:
                size = event.flow_controlled_length
                stream_id = event.stream_id
                if size:
                    if fast is not None:
                        fast.acknowledge(size, stream_id)
                    else:
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
            set_exception(call.future, error)
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
                    call.grpc_status = UNKNOWN
            elif name == b"content-type":
                call.content_type = value
            elif name == b"grpc-message":
                call.grpc_message = value
            elif name == b"grpc-status-details-bin":
                call.details = b64decode(value)
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
                self._answer(call, broken(INTERNAL, "bad message flag"))
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
        name = RESET_NAMES.get(int(error_code), str(int(error_code)))
        if remote:
            code = RESET_TO_GRPC.get(int(error_code), INTERNAL)
            message = f"the server reset the stream ({name})"
        else:  # h2 reset it: the server broke the protocol on this stream
            code = INTERNAL
            message = f"the server's response broke HTTP/2 ({name})"
        self._answer(call, broken(code, message))

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
        if grpc_status != OK:
            text = unquote_to_bytes(call.grpc_message).decode("utf-8", "replace") if call.grpc_message else ""
            return Reply(
                200, content_type=content_type, grpc_status=grpc_status, grpc_message=text, grpc_details=call.details
            )
        data = call.data
        length = call.length
        if length <= 0:
            if not data or length == 0:  # an empty message (or, leniently, none at all)
                return Reply(200, content_type=content_type, grpc_status=OK)
            return broken(INTERNAL, "truncated response message")
        if len(data) < 5 + length:
            return broken(INTERNAL, "truncated response message")
        message = bytes(memoryview(data)[5:])
        if call.compressed_flag:
            if call.encoding.decode("latin-1") not in accepted_encodings():
                return broken(INTERNAL, "response compressed with an unsupported encoding")
            known = self._inflated.get((call.encoding, message))
            if known is not None:
                return Reply(200, known, content_type=content_type, grpc_status=OK)
            compressed = message
            try:
                inflater = BoundedInflater(call.encoding.decode("latin-1"), limit=self._limit)
                inflater.feed(message)
                message = inflater.finish()
            except ResponseError as exc:
                raise ResponseError(f"the response from {self._where}: {exc.message}") from None
            if len(compressed) <= _INFLATED_MEMO_BYTES:
                if len(self._inflated) >= _INFLATED_MEMO_SIZE:
                    self._inflated.clear()
                self._inflated[(call.encoding, compressed)] = message
        return Reply(200, message, content_type=content_type, grpc_status=OK)

    def _answer(self, call: _Call, reply: Reply) -> None:
        """Resolve ``call`` with ``reply`` before its stream ended and, if the stream is still open, reset it."""
        if not call.future.done():
            call.future.set_result(reply)
        _wake(call.waiter)
        self._reset(call)

    def _fail(self, call: _Call, error: ExportError) -> None:
        """Resolve ``call`` with ``error`` and, if the stream is still open, reset it."""
        set_exception(call.future, error)
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
                set_exception(call.future, error)
                _wake(call.waiter)
        self._fail_slot_waiters(error)
        if not self.ready.done():
            self._error = error
        self._close_if_idle()

    # -- sending

    def _send_headers(self, stream_id: int, headers: list[tuple[bytes, bytes]]) -> None:
        if self.fast_send and self._fast is not None:
            self._fast.send_headers(stream_id, headers)
        else:
            self._h2.send_headers(stream_id, headers)

    def _end_stream(self, stream_id: int, size: int) -> bool:
        """:meth:`FastFrames.end_stream` when the fast send path is on, else False (h2 does it all)."""
        return self.fast_send and self._fast is not None and self._fast.end_stream(stream_id, size)

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
            self._send_headers(stream_id, headers)
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
                if self._end_stream(stream_id, len(body) + 5):
                    out = h2c._data_to_send
                    out += data_frame_head(len(body) + 5, stream_id)
                    out += prefix
                    out += body
                else:
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
        512-span export on this machine). The frame that ends the stream moves the stream's state on through
        :meth:`_end_stream` (h2's own state changes), or through h2 when that cannot; so does any frame while h2
        would not send DATA on this connection or stream (it then raises, as before). What h2 holds (this call's
        HEADERS), the frames and the last frame leave in one write: each system call is one more chance for
        another thread to take the GIL.
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
                    h2c.send_data(stream_id, message_slice(prefix, view, position, position + take))
                    position += take
                    self._flush()
                    continue
                out = bytearray(h2c.data_to_send())
                end = position + budget
                if position < 5:  # the frame with (the rest of) the 5-byte prefix
                    take = min(frame_max, end - position)
                    out += take.to_bytes(3, "big")
                    out += frame_tail
                    out += message_slice(prefix, view, position, position + take)
                    position += take
                full_head = frame_max.to_bytes(3, "big") + frame_tail
                while position < end:  # body bytes only: view[position - 5 :]
                    take = end - position
                    if take >= frame_max:
                        take = frame_max
                        out += full_head
                    else:
                        out += take.to_bytes(3, "big")
                        out += frame_tail
                    out += view[position - 5 : position - 5 + take]
                    position += take
                h2c.outbound_flow_control_window -= budget
                stream.outbound_flow_control_window -= budget
                window -= budget
            else:
                out = bytearray()
            last = total - position <= min(window, frame_max)
            try:
                if last:
                    if self._end_stream(stream_id, total - position):
                        out += h2c.data_to_send()
                        out += data_frame_head(total - position, stream_id)
                        out += message_slice(prefix, view, position, total)
                    else:
                        h2c.send_data(stream_id, message_slice(prefix, view, position, total), end_stream=True)
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
                set_exception,
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
            set_exception(self._slot_waiters.popleft(), error)

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
            set_exception(call.future, error)
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
