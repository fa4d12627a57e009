"""gRPC's conventions on the wire that aiotlp's HTTP/2 client (:mod:`aiotlp.transport._h2connection`) applies:
the status it reports for a stream that broke (as grpc core does), ``-bin`` metadata values, and slices of a
length-prefixed message.
"""

from __future__ import annotations

import base64
import binascii
from typing import Final

from ._base import Reply

__all__ = [
    "CANCEL",
    "CANCELLED",
    "INTERNAL",
    "OK",
    "PERMISSION_DENIED",
    "RESET_NAMES",
    "RESET_TO_GRPC",
    "RESOURCE_EXHAUSTED",
    "UNAVAILABLE",
    "UNKNOWN",
    "b64decode",
    "broken",
    "message_slice",
]

# gRPC codes this client reports itself for a broken stream, as grpc core does (plain ints).
OK, CANCELLED, UNKNOWN, PERMISSION_DENIED, RESOURCE_EXHAUSTED = 0, 1, 2, 7, 8
INTERNAL, UNAVAILABLE = 13, 14

#: RST_STREAM error code -> gRPC code (grpc-go's http2ErrConvTab); anything else is INTERNAL.
RESET_TO_GRPC: Final = {7: UNAVAILABLE, 8: CANCELLED, 11: RESOURCE_EXHAUSTED, 12: PERMISSION_DENIED}
RESET_NAMES: Final = {
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
CANCEL: Final = 8


def b64decode(value: bytes) -> bytes | None:
    """A ``-bin`` header value: base64, padding optional."""
    try:
        return base64.b64decode(value + b"=" * (-len(value) % 4))
    except (binascii.Error, ValueError):
        return None


def broken(code: int, message: str) -> Reply:
    """The status this client reports for a stream that broke (as grpc core would): ``code``, ``message``."""
    return Reply(200, content_type="application/grpc", grpc_status=code, grpc_message=message)


def message_slice(prefix: bytes, body: memoryview, start: int, end: int) -> bytes | memoryview:
    """Bytes ``start:end`` of the length-prefixed message ``prefix + body``, without joining the two."""
    if start >= 5:
        return body[start - 5 : end - 5]
    return prefix[start:end] + body[: max(0, end - 5)]
