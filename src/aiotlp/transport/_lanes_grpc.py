"""The gRPC flavour of the native lane (:mod:`aiotlp.transport._lane_h2`): OTLP/gRPC calls over cleartext HTTP/2
made by native threads, without the GIL, for :class:`~aiotlp.transport._lanes.NativeLane`.

The lane sends one header block, made here once from the fields :class:`~aiotlp.transport.H2GrpcTransport` sends
(its request headers, a ``grpc-timeout`` for the configured timeout, its identity tail; but ``grpc-accept-encoding``
is ``identity`` alone), HPACK without the dynamic table. The lane announces HEADER_TABLE_SIZE 0, so each header
block of a response is read alone: :func:`decode_block` (called by a lane thread, with the GIL, once per distinct
block) says what the lane needs to tell the plain success, and :func:`grpc_reply` reads a response that is not one
as the h2 client reads it (the same :class:`~aiotlp.transport.Reply`, the same statuses for a broken message).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Final
from urllib.parse import unquote_to_bytes

from hpack import Decoder

from .._exceptions import ExportError
from ._base import IDENTITY, Reply
from ._compression import BoundedInflater, accepted_encodings
from ._grpcwire import INTERNAL, OK, UNKNOWN, b64decode, broken
from ._hpack import StaticEncoder

if TYPE_CHECKING:
    from ._h2grpc import H2GrpcTransport

__all__ = ["decode_block", "grpc_reply", "header_block"]

_GRPC: Final = b"application/grpc"
_NO_STATUS: Final = -1


def header_block(transport: H2GrpcTransport, timeout: float, encoding: str = IDENTITY) -> bytes:
    """The request header block of every call on the lane, for messages in ``encoding`` (its grpc-encoding):
    static-table indexes and literals without indexing (the block touches no dynamic table, so it is the same on
    every stream of every connection)."""
    from ._h2grpc import _grpc_timeout

    encoder = StaticEncoder()
    encoder.encode([])  # (its first block announces a table size of 0: not needed by a block that never indexes)
    # grpc-accept-encoding: identity only. A server that compresses its replies when the client accepts it (rotel
    # gzips its empty OK reply) would make every reply one for Python to inflate: the lane's plain success is an
    # uncompressed message.
    head = [
        (name, b"identity" if name == b"grpc-accept-encoding" else value) for name, value in transport.request_headers
    ]
    headers = [*head, (b"grpc-timeout", _grpc_timeout(timeout)), *transport._tails[encoding]]
    return encoder.encode(headers, huffman=False)


def _decode(block: bytes) -> list[tuple[bytes, bytes]]:
    decoder = Decoder()
    decoder.max_allowed_table_size = 0  # as announced: a block that would use the dynamic table does not decode
    decoder.header_table_size = 0
    return [(bytes(name), bytes(value)) for name, value in decoder.decode(block, raw=True)]


def _is_grpc(content_type: bytes) -> bool:
    return content_type == _GRPC or content_type.startswith((_GRPC + b"+", _GRPC + b";"))


def decode_block(block: bytes) -> tuple[int, int, int] | None:
    """``(:status or -1, content-type is gRPC's (0/1), grpc-status or -1)`` of one response header block, or
    ``None`` when it does not decode (the lane then hands the call back to the exporter)."""
    try:
        headers = _decode(block)
    except Exception:  # a malformed block (hpack's errors): the lane says BAD_RESPONSE
        return None
    status = grpc_status = _NO_STATUS
    grpc_ct = 0
    for name, value in headers:
        if name == b":status":
            status = int(value) if len(value) == 3 and value.isdigit() else -2
        elif name == b"content-type":
            grpc_ct = int(_is_grpc(value))
        elif name == b"grpc-status":
            grpc_status = int(value) if value.isdigit() and len(value) < 10 else UNKNOWN
    return status, grpc_ct, grpc_status


def _blocks(head: bytes) -> list[bytes]:
    blocks = []
    at = 0
    while at + 4 <= len(head):
        size = int.from_bytes(head[at : at + 4], "big")
        blocks.append(head[at + 4 : at + 4 + size])
        at += 4 + size
    return blocks


def grpc_reply(head: bytes, data: bytes, limit: int) -> Reply | None:
    """The :class:`Reply` to a call the lane saw end: ``head``, its header blocks (as the lane frames them);
    ``data``, the DATA it carried (the length-prefixed message). ``None`` where the h2 client raises rather than
    answers (a message over ``limit``, more than one message, a block that does not decode, a compressed message
    that does not inflate): the exporter's own stack sends it again, and reports it."""
    http_status = 0
    content_type = encoding = grpc_message = b""
    grpc_status: int | None = None
    details: bytes | None = None
    try:
        blocks = _blocks(head)
        for index, block in enumerate(blocks):
            # the status is the trailers' (the last block after the headers), or a trailers-only response's
            trailers = index == len(blocks) - 1 and (len(blocks) > 1 or not data)
            for name, value in _decode(block):
                if name == b":status":
                    http_status = int(value) if value.isdigit() else -1
                elif name == b"content-type":
                    content_type = value
                elif name == b"grpc-encoding":
                    encoding = value
                elif not trailers:
                    continue
                elif name == b"grpc-status":
                    grpc_status = int(value) if value.isdigit() else UNKNOWN
                elif name == b"grpc-message":
                    grpc_message = value
                elif name == b"grpc-status-details-bin":
                    details = b64decode(value)
    except Exception:
        return None
    ctype = content_type.decode("latin-1")
    if len(data) >= 5:
        flag = data[0]
        length = int.from_bytes(data[1:5], "big")
        if flag > 1:
            return broken(INTERNAL, "bad message flag")
        if length > limit or len(data) > 5 + length:
            return None
    if http_status != 200 or grpc_status is None:
        return Reply(http_status, content_type=ctype, grpc_status=grpc_status)
    if grpc_status != OK:
        text = unquote_to_bytes(grpc_message).decode("utf-8", "replace") if grpc_message else ""
        return Reply(200, content_type=ctype, grpc_status=grpc_status, grpc_message=text, grpc_details=details)
    if not data:
        return Reply(200, content_type=ctype, grpc_status=OK)
    if len(data) < 5 or len(data) < 5 + length:
        return broken(INTERNAL, "truncated response message")
    message = data[5:]
    if flag:
        if encoding.decode("latin-1") not in accepted_encodings():
            return broken(INTERNAL, "response compressed with an unsupported encoding")
        try:
            inflater = BoundedInflater(encoding.decode("latin-1"), limit=limit)
            inflater.feed(message)
            message = inflater.finish()
        except ExportError:
            return None
    return Reply(200, message, content_type=ctype, grpc_status=OK)
