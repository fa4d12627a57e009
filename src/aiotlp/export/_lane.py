"""The exporter's native lane: its plain OTLP requests sent without the GIL, its results read as its own.

:func:`open_lane` makes an :class:`ExportLane` where the transport allows one (:mod:`aiotlp.transport._lanes`:
plain TCP, one collector, protobuf over OTLP/HTTP or OTLP/gRPC with aiotlp's own h2 client, uncompressed or gzip
or deflate, compressed by the lane's threads). A batch
processor submits a request body with its item count;
what the collector answered is read here exactly as the exporter's stack reads it (:func:`reply_error`, the
partial success, the same logs and the same :class:`~aiotlp.export.ExportResult`), with two differences, both in
favour of delivery: a request that got no response, or a retryable one (429, 502, 503, 504), is handed back as
:data:`SEND_AGAIN`, for the exporter's stack to send with its retries and backoff; and the lane sends each request
once, with no retries of its own.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Final, cast

from .._exceptions import ExportError
from .._ratelimit import RateLimitedLogger
from ..config import ExporterConfig
from ..model import Signal
from ..transport import (
    LANE_CLOSED,
    MAX_RESPONSE_BYTES,
    SEND_AGAIN,
    NativeLane,
    Reply,
    lane_available,
    lane_compresses,
    make_transport,
)
from ..transport import open_lane as open_native_lane
from ._reply import GRPC, failed_result, partial_result, read_reply, reply_error
from ._types import ExportResult

__all__ = ["CLOSED", "SEND_AGAIN", "ExportLane", "open_lane"]

logger = logging.getLogger("aiotlp.export")

CLOSED: Final = LANE_CLOSED
"""The outcome of a request the lane's :meth:`~ExportLane.close` stopped: it may or may not have been delivered."""

_PROTOBUF: Final = "application/x-protobuf"


def open_lane(
    config: ExporterConfig,
    signal: Signal | str,
    *,
    workers: int,
    notify: Callable[[], object],
    max_response_bytes: int = MAX_RESPONSE_BYTES,
) -> ExportLane | None:
    """An :class:`ExportLane` for ``signal``'s requests as the default transport sends them (``config``), with
    ``workers`` threads, or ``None`` where there can be none: more than one endpoint, another protocol than
    OTLP/HTTP protobuf or gRPC with the default client when it is aiotlp's own (h2; not grpcio), TLS, a compression
    the lanes do not do (zstd; gzip and deflate without zlib at build time), the extension not built or turned off
    (``AIOTLP_NO_EXTENSIONS``). Only for an exporter with the default transports (no ``transport_factory``, no
    ``fleet``, the default gRPC client): the caller knows."""
    signal = Signal(signal)
    one = config.for_signal(signal)
    if len(one.endpoints) > 1 or not lane_compresses(one.compression) or one.use_tls:
        return None
    if one.protocol not in ("http/protobuf", "grpc") or not lane_available():
        return None
    transport = make_transport(one, max_response_bytes=max_response_bytes)
    native: NativeLane | None = None
    if one.protocol == "grpc":
        from ..transport import H2GrpcTransport  # (imported lazily there: h2)

        if isinstance(transport, H2GrpcTransport):  # (not grpcio: the default client where h2 is not installed)
            native = open_native_lane(transport, workers=workers, timeout=one.timeout, notify=notify)
    else:
        from ..transport import HttpTransport  # (imported lazily there: the HTTP/1.1 client)

        if isinstance(transport, HttpTransport):
            native = open_native_lane(transport, workers=workers, timeout=one.timeout, notify=notify)
    if native is None:
        return None
    where = one.endpoint_for_display
    content_type = GRPC if one.protocol == "grpc" else _PROTOBUF
    return ExportLane(signal, native, one.max_request_bytes, where, content_type)


class ExportLane:
    """One signal's plain requests on a :class:`~aiotlp.transport.NativeLane` (see the module docstring).

    :meth:`submit` and :meth:`collect` may be called from any thread; ``notify`` (given to :func:`open_lane`) is
    called on a lane thread."""

    __slots__ = ("_content_type", "_failure_log", "_lane", "_max_request_bytes", "_partial_log", "_signal", "_where")

    def __init__(
        self, signal: Signal, lane: NativeLane, max_request_bytes: int, where: str, content_type: str = _PROTOBUF
    ) -> None:
        self._signal = signal
        self._content_type = content_type
        self._lane = lane
        self._max_request_bytes = max_request_bytes
        self._where = where
        # as the exporter's own (OTLPExporter): the same lines, rate-limited the same way
        self._partial_log = RateLimitedLogger(logger, logging.WARNING, interval=60.0)
        self._failure_log = RateLimitedLogger(logger, logging.WARNING, interval=10.0)

    def __repr__(self) -> str:
        return f"ExportLane({self._signal.value}, {self._lane!r})"

    @property
    def room(self) -> int:
        """How many more requests :meth:`submit` takes now."""
        return self._lane.room

    @property
    def connections_made(self) -> int:
        return self._lane.connections_made

    @property
    def closed(self) -> bool:
        return self._lane.closed

    def submit(self, body: bytes, items: int, token: object) -> bool:
        """Send ``body``, a request of ``items`` items, on a free lane thread; False (nothing sent) when none is
        free, the lane is closed, or the body is over ``max_request_bytes`` (the exporter's stack splits it)."""
        if len(body) > self._max_request_bytes:
            return False
        return self._lane.submit(body, (token, items))

    def wake_on_done(self) -> bool:
        """Call ``notify`` after the next request ends, whatever its outcome; True when some ended already."""
        return self._lane.wake_on_done()

    def preconnect(self) -> None:
        """Open the lane's connections now, ahead of the first request."""
        self._lane.preconnect()

    def close(self) -> None:
        """Stop the lane's threads; requests they had not finished are collected as :data:`CLOSED`."""
        self._lane.close()

    def collect(self) -> list[tuple[object, ExportResult | str]]:
        """``(token, outcome)`` of each request ended since the last call: its :class:`ExportResult`, or
        :data:`SEND_AGAIN` (no response, or a retryable one: the exporter's stack sends it), or :data:`CLOSED`."""
        ended: list[tuple[object, ExportResult | str]] = []
        for sent, outcome in self._lane.collect():
            token, items = cast("tuple[object, int]", sent)
            ended.append((token, self._result(outcome, items)))
        return ended

    def _result(self, outcome: Reply | str, items: int) -> ExportResult | str:
        if isinstance(outcome, str):
            return outcome
        error = reply_error(outcome, self._content_type)
        if error is not None:
            if error.retryable:
                return SEND_AGAIN
            return failed_result(self._signal, items, error, self._where, self._failure_log)
        if not outcome.body:
            return ExportResult(items=items, accepted=items, requests=1)
        try:
            partial = read_reply(outcome, self._content_type)
        except ExportError as exc:  # a success body that cannot be read: what the stack makes of it
            return failed_result(self._signal, items, exc, self._where, self._failure_log)
        return partial_result(self._signal, items, partial, self._partial_log)
