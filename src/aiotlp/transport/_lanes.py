"""The native lane: OTLP/HTTP requests sent by native threads (:mod:`aiotlp.transport._lane`), without the GIL.

An application that makes spans flat out on its own threads holds the GIL nearly all the time; every piece of
Python that an export runs on another thread (the bridge's event loop: the HTTP/1.1 client, the exporter's stack)
takes the GIL from it. A :class:`NativeLane` sends a ready request body (uncompressed protobuf) on one of a few
native worker threads, each with a keep-alive connection of its own, and reads the response there: the common
export (a 2xx with an empty body, or an empty partial success) runs no Python at all until its outcome is
collected. Everything else is handed back: a complete response as a :class:`~aiotlp.transport.Reply` (read by the
exporter, as any other: partial success, a retryable or final status), and a request that did not get one (no
connection, a broken one, a timeout, not an HTTP/1.x response) as :data:`SEND_AGAIN`, for the exporter to send
through its own stack (its HTTP/1.1 client, retries and error reports).

OTLP/gRPC has a lane too (:mod:`aiotlp.transport._lane_h2`, read by :mod:`._lanes_grpc`): unary calls over
cleartext HTTP/2, one connection per worker thread, for an :class:`~aiotlp.transport.H2GrpcTransport`; the plain
success is ``grpc-status`` 0 with an empty message (or an empty partial success), anything else complete is read
as the h2 client reads it.

Only for plain TCP (no TLS: the lane has no TLS of its own), one collector, and only where the extension was built
(Linux); :func:`open_lane` says ``None`` otherwise. Bodies go uncompressed, or, with ``compression`` gzip or deflate,
compressed by the worker thread that sends them (zlib, level 6, as :mod:`aiotlp.transport._compression`: the GIL
is not held for it), where the extension was built with zlib (:func:`compresses`); zstd goes through the
exporter's own stack.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import TYPE_CHECKING, Final, TypeAlias

from ._base import IDENTITY, Reply
from ._compression import BoundedInflater

if TYPE_CHECKING:
    from ._h2grpc import H2GrpcTransport
    from ._http import HttpTransport

try:
    from . import _lane
except ImportError:  # not built (not Linux, no compiler): the exporter's own stack sends everything
    _lane = None  # type: ignore[assignment]
    _OK = _RESPONSE = _CLOSED = -1
else:
    _OK, _RESPONSE, _CLOSED = _lane.OK, _lane.RESPONSE, _lane.CLOSED
try:
    from . import _lane_h2
except ImportError:  # as _lane
    _lane_h2 = None  # type: ignore[assignment]
else:  # the same kinds: one NativeLane reads both
    assert (_lane_h2.OK, _lane_h2.RESPONSE, _lane_h2.CLOSED) == (_OK, _RESPONSE, _CLOSED)

_open: set[_lane.Lane | _lane_h2.Lane] = set()
"""The lanes not closed yet: :func:`close_all` closes them before the interpreter finalizes (a lane's threads
must not take the GIL then). A forked child starts with none (its parent's lanes have no threads there)."""
if hasattr(os, "register_at_fork"):  # pragma: no branch - POSIX
    os.register_at_fork(after_in_child=_open.clear)

__all__ = ["CLOSED", "SEND_AGAIN", "LaneOutcome", "NativeLane", "available", "close_all", "compresses", "open_lane"]

SEND_AGAIN: Final = "send again"
"""The outcome of a request that got no complete response: the exporter sends it again through its own stack."""

CLOSED: Final = "closed"
"""The outcome of a request that the lane's :meth:`~NativeLane.close` stopped (or that it never sent)."""

OK_REPLY: Final = Reply(200)
GRPC_OK_REPLY: Final = Reply(200, content_type="application/grpc", grpc_status=0)
"""The plain success of a gRPC lane: grpc-status 0, an empty message."""

LaneOutcome: TypeAlias = "Reply | str"
"""What became of a request: a :class:`Reply` (:data:`OK_REPLY` for the plain success), :data:`SEND_AGAIN` or
:data:`CLOSED`. (:data:`GRPC_OK_REPLY` on a gRPC lane.)"""


def available() -> bool:
    """Whether the native lane is built here and not turned off (``AIOTLP_NO_EXTENSIONS``)."""
    return _lane is not None and os.environ.get("AIOTLP_NO_EXTENSIONS", "") in ("", "0")


def compresses(compression: str) -> bool:
    """Whether the native lanes send bodies in ``compression`` (a configuration's: none, gzip, deflate, zstd)."""
    return _compress_code(compression) is not None


def _compress_code(compression: str) -> int | None:
    """The lanes' ``compress`` for ``compression`` (``None``: they cannot: zstd, or built without zlib)."""
    if compression in ("none", IDENTITY):
        return 0 if _lane is None else _lane.IDENTITY
    if _lane is None or _lane_h2 is None or not _lane.ZLIB or not _lane_h2.ZLIB:
        return None
    return {"gzip": _lane.GZIP, "deflate": _lane.DEFLATE}.get(compression)


class NativeLane:
    """Sends request bodies to one OTLP/HTTP endpoint (or OTLP/gRPC messages to one gRPC endpoint) on ``workers``
    native threads (see the module docstring).

    :meth:`submit` takes a body when a worker is free (:attr:`room`); :meth:`collect` returns the outcomes since
    the last call. ``notify`` (no arguments) is called on a worker thread, holding the GIL briefly, after any
    outcome that is not the plain success, and after the next outcome of any kind once :meth:`wake_on_done` asked
    for it: it must only hand over to another thread (``loop.call_soon_threadsafe``). Any thread; in a forked
    child a lane made in the parent takes nothing (its threads do not exist there).
    """

    __slots__ = ("_grpc", "_lane", "_max_response", "_ok", "_where")

    def __init__(self, native: _lane.Lane | _lane_h2.Lane, where: str, max_response: int) -> None:
        self._lane = native
        self._where = where
        self._max_response = max_response
        self._grpc = _lane_h2 is not None and isinstance(native, _lane_h2.Lane)
        self._ok = GRPC_OK_REPLY if self._grpc else OK_REPLY

    def __repr__(self) -> str:
        return f"NativeLane({self._where}, room={self.room}, in_flight={self.in_flight})"

    @property
    def room(self) -> int:
        """How many more bodies :meth:`submit` takes now (free workers)."""
        return self._lane.room

    @property
    def in_flight(self) -> int:
        """Bodies submitted and not yet collected."""
        return self._lane.in_flight

    @property
    def connections_made(self) -> int:
        """Connections the workers opened so far."""
        return self._lane.connections_made

    @property
    def closed(self) -> bool:
        return self._lane.closed

    def submit(self, body: bytes, token: object) -> bool:
        """Send ``body`` on a free worker; False (nothing sent) when none is free or the lane is closed."""
        return self._lane.submit(body, token)

    def wake_on_done(self) -> bool:
        """Call ``notify`` after the next outcome, whatever it is. True when outcomes wait to be collected already
        (they ended before this was asked: no notify tells of them)."""
        return self._lane.wake_on_done()

    def preconnect(self) -> None:
        """Have each worker open its connection now, ahead of its first request (a failure is only seen then)."""
        self._lane.preconnect()

    def close(self) -> None:
        """Stop the workers (a request in flight is cut short); what they had not finished is collected as
        :data:`CLOSED`. Waits for the threads without holding the GIL."""
        self._lane.close()
        _open.discard(self._lane)

    def collect(self) -> list[tuple[object, LaneOutcome]]:
        """``(token, outcome)`` of each request finished since the last call, in the order they finished."""
        done: list[tuple[object, LaneOutcome]] = []
        for token, kind, status, head, body, _errno, _elapsed, _received in self._lane.collect():
            if kind == _OK:
                done.append((token, self._ok))
            elif kind == _RESPONSE:
                done.append((token, self._reply(status, head or b"", body or b"")))
            elif kind == _CLOSED:
                done.append((token, CLOSED))
            else:  # CONNECT, DISCONNECTED, TIMEOUT, BAD_RESPONSE: the exporter's own client says what went wrong
                done.append((token, SEND_AGAIN))
        return done

    def _reply(self, status: int, head: bytes, body: bytes) -> LaneOutcome:
        if self._grpc:
            from ._lanes_grpc import grpc_reply

            reply = grpc_reply(head, body, self._max_response)
            return SEND_AGAIN if reply is None else reply
        from ._h1 import _parse_head  # (the HTTP/1.1 client: imported with the first response that needs it)

        try:
            _version, _status, _reason, headers = _parse_head(head)
            encoding = headers.get("content-encoding", IDENTITY).strip().lower() or IDENTITY
            if encoding != IDENTITY and body:
                inflater = BoundedInflater(encoding, limit=self._max_response)
                inflater.feed(body)
                body = inflater.finish()
        except Exception:  # a head the lane took but the client would not, a body that does not inflate
            return SEND_AGAIN
        return Reply(status, body, content_type=headers.get("content-type", ""), retry_after=headers.get("retry-after"))


def open_lane(
    transport: HttpTransport | H2GrpcTransport, *, workers: int, timeout: float, notify: Callable[[], object]
) -> NativeLane | None:
    """A :class:`NativeLane` sending ``transport``'s requests (compressed as the transport compresses them, by the
    worker threads), or ``None`` where there can be none: not built or turned off, TLS, OTLP/JSON, zstd. For an
    :class:`~aiotlp.transport.H2GrpcTransport` the lane makes the calls it makes (its header fields,
    ``grpc-timeout`` for ``timeout``) over h2c."""
    from ._h2grpc import H2GrpcTransport

    if isinstance(transport, H2GrpcTransport):
        return _open_grpc(transport, workers=workers, timeout=timeout, notify=notify)
    config = transport.config
    if not available() or config.use_tls or transport.json or config.protocol != "http/protobuf":
        return None
    compress = _compress_code(transport.compression)
    if compress is None:
        return None
    assert _lane is not None
    native = _lane.Lane(
        transport.host,
        transport.port,
        transport.head(_encoding(transport.compression)),
        workers=workers,
        timeout=timeout,
        keepalive=transport.keepalive,
        max_response=transport.max_response_bytes,
        compress=compress,
        notify=notify,
    )
    _open.add(native)
    return NativeLane(native, config.endpoint_for_display, transport.max_response_bytes)


def _open_grpc(
    transport: H2GrpcTransport, *, workers: int, timeout: float, notify: Callable[[], object]
) -> NativeLane | None:
    config = transport.config
    if not available() or _lane_h2 is None or config.use_tls or config.protocol != "grpc":
        return None
    compress = _compress_code(transport.compression)
    if compress is None:
        return None
    from ._lanes_grpc import decode_block, header_block

    host, port = transport._address
    native = _lane_h2.Lane(
        host,
        port,
        header_block(transport, timeout, _encoding(transport.compression)),
        workers=workers,
        timeout=timeout,
        keepalive=GRPC_IDLE,
        max_response=transport.max_response_bytes,
        compress=compress,
        notify=notify,
        decode=decode_block,
    )
    _open.add(native)
    return NativeLane(native, config.endpoint_for_display, transport.max_response_bytes)


def _encoding(compression: str) -> str:
    """The content-encoding (HTTP) or grpc-encoding of bodies in a configuration's ``compression``."""
    return IDENTITY if compression == "none" else compression


GRPC_IDLE: Final = 600.0
"""How long a lane thread keeps an idle HTTP/2 connection (the h2 client keeps its own until the server closes
it; the lane reads what the server sent while idle, a GOAWAY included, before each call)."""


def close_all() -> None:
    """Close every lane of this process not closed yet (at interpreter exit, once the exports had their time:
    the SDK bridge's exit handler calls it last). A forked child's inherited lanes are only forgotten."""
    while _open:
        _open.pop().close()
