"""A port of the other OTLP protocol: how a transport recognises it, and the words that say so.

OTLP/gRPC listens on 4317 (HTTP/2), OTLP/HTTP on 4318 (HTTP/1.1, or h2c). Sent to the other port:

- OTLP/HTTP to a gRPC port: the server's first bytes are an HTTP/2 SETTINGS frame (``00 00 xx 04 ...``), which an
  HTTP/1.1 client reads as a bad status line (aiohttp: ``Bad status line ... b'\\x00\\x00\\x18\\x04...'``);
- OTLP/gRPC to an HTTP port: the server answers the HTTP/2 connection preface with an HTTP/1.x response
  (``HTTP/1.1 400 Bad Request``); grpc core says "Trying to connect an http1.x server".

Both are a misconfiguration that no retry mends: the transports raise :class:`~aiotlp.ProtocolMismatchError` with
:func:`wrong_port`'s message, and ``aiotlp check`` explains the same cases with :func:`port_advice`, so the log and
the command say the same thing.
"""

from __future__ import annotations

import re
from typing import Final

from .._exceptions import ProtocolMismatchError

__all__ = [
    "CHECK_HINT",
    "HTTP2_FRAMES",
    "http1_in_grpc_details",
    "http1_status_line",
    "http2_frames_in_text",
    "is_http2_settings",
    "port_advice",
    "wrong_port",
]

CHECK_HINT: Final = "`aiotlp check` diagnoses the endpoint"
HTTP2_FRAMES: Final = "HTTP/2 frames"

#: The repr of a SETTINGS frame header (length 00 00 xx, type 04) in a client's "bad status line" text.
#: (aiohttp quotes the bytes' repr inside a repr: the backslashes may be doubled)
_SETTINGS_REPR: Final = re.compile(r"\\+x00\\+x00(?:\\+x[0-9a-fA-F]{2}|[^\\'\"])\\+x04")
_GRPC_CORE_HTTP1: Final = re.compile(r"Trying to connect an http1\.x server(?: \(HTTP status (\d{3})\))?")
_STATUS_LINE: Final = re.compile(rb"HTTP/1\.[01] [0-9]{3}(?: [ -~]{0,40})?")


def port_advice(protocol: str) -> str:
    """What to do when ``protocol`` (the configured one) met a port of the other protocol: ``"does not speak
    http/protobuf; it looks like an OTLP/gRPC port: use port 4318 for OTLP/HTTP, or set
    OTEL_EXPORTER_OTLP_PROTOCOL=grpc"``."""
    if protocol == "grpc":
        other = "an OTLP/HTTP port: use port 4317 for OTLP/gRPC, or set OTEL_EXPORTER_OTLP_PROTOCOL=http/protobuf"
    else:
        other = "an OTLP/gRPC port: use port 4318 for OTLP/HTTP, or set OTEL_EXPORTER_OTLP_PROTOCOL=grpc"
    return f"does not speak {protocol}; it looks like {other}"


def wrong_port(where: str, protocol: str, seen: str) -> ProtocolMismatchError:
    """The error for ``where`` (the endpoint, as displayed) answering a ``protocol`` request with ``seen``."""
    return ProtocolMismatchError(f"the endpoint {where} answered with {seen}: it {port_advice(protocol)}; {CHECK_HINT}")


def is_http2_settings(data: bytes) -> bool:
    """Whether ``data`` (the first bytes a server sent) starts with an HTTP/2 SETTINGS frame on stream 0: what a
    gRPC port says first, where an HTTP/1.1 client expects a status line."""
    return len(data) >= 9 and data[3] == 0x04 and data[5:9] == b"\x00\x00\x00\x00" and data[0] == 0


def http2_frames_in_text(text: str) -> bool:
    """Whether an HTTP/1.1 client's error text (aiohttp's ``Bad status line``) quotes the header of an HTTP/2
    SETTINGS frame."""
    return "status line" in text.lower() and _SETTINGS_REPR.search(text) is not None


def http1_status_line(data: bytes) -> str | None:
    """The status line when ``data`` (the first bytes a server sent an HTTP/2 client) is an HTTP/1.x response, in
    printable ASCII (``"HTTP/1.1 400 Bad Request"``); ``None`` otherwise."""
    match = _STATUS_LINE.match(data)
    return match.group().decode("ascii").strip() if match else None


def http1_in_grpc_details(details: str) -> str | None:
    """What grpc core saw when its details say it met an HTTP/1.x server (``"an HTTP/1.x reply (status 400)"``)."""
    match = _GRPC_CORE_HTTP1.search(details)
    if match is None:
        return None
    return f"an HTTP/1.x reply (status {match.group(1)})" if match.group(1) else "an HTTP/1.x reply"
