"""A minimal, bounds-checked protobuf wire-format reader (sans-IO).

Only what response parsing needs: varints, and a flat walk over the fields of one message. Nested
messages are read by calling :func:`iter_fields` again on a length-delimited value. Every read is checked
against the end of the buffer, and nothing is allocated beyond slices of the input, so hostile bytes cost at
most their own size. Malformed input raises :class:`~aiotlp._exceptions.ResponseError`, nothing else.
"""

from __future__ import annotations

from collections.abc import Iterator

from aiotlp._exceptions import ResponseError

__all__ = [
    "WIRE_FIXED32",
    "WIRE_FIXED64",
    "WIRE_LEN",
    "WIRE_VARINT",
    "iter_fields",
    "read_varint",
]

WIRE_VARINT = 0
WIRE_FIXED64 = 1
WIRE_LEN = 2
WIRE_FIXED32 = 5

_MAX_VARINT_BYTES = 10
_UINT64_MASK = (1 << 64) - 1
_MAX_FIELD_NUMBER = (1 << 29) - 1

Buffer = bytes | memoryview
"""What the reader accepts. Length-delimited values are slices of the same type."""


def read_varint(buf: Buffer, pos: int) -> tuple[int, int]:
    """Read a base-128 varint at ``pos``; return ``(value, next_pos)``.

    The value is an unsigned 64-bit integer (bits past 64 in a 10-byte varint are dropped, as protobuf does).
    """
    end = len(buf)
    if pos >= end:
        raise ResponseError("malformed protobuf: truncated varint")
    byte = buf[pos]
    if byte < 0x80:  # fast path: one-byte varint (tags, small lengths, small ints)
        return byte, pos + 1
    result = byte & 0x7F
    shift = 7
    limit = pos + _MAX_VARINT_BYTES
    pos += 1
    while pos < limit:
        if pos >= end:
            raise ResponseError("malformed protobuf: truncated varint")
        byte = buf[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        if byte < 0x80:
            return result & _UINT64_MASK, pos
        shift += 7
    raise ResponseError("malformed protobuf: varint longer than 10 bytes")


def iter_fields(buf: Buffer) -> Iterator[tuple[int, int, int | Buffer]]:
    """Walk the top-level fields of one protobuf message.

    Yields ``(field_number, wire_type, value)``: an ``int`` for varint, fixed32 and fixed64 (fixed values as
    unsigned little-endian integers), and a slice of ``buf`` for length-delimited values. Groups (wire types
    3 and 4, deprecated and never used by OTLP), wire types 6 and 7, field number 0 and any read past the end
    raise :class:`ResponseError`. Fields already yielded stay valid when a later one turns out malformed.
    """
    pos = 0
    end = len(buf)
    while pos < end:
        tag, pos = read_varint(buf, pos)
        field_number = tag >> 3
        wire_type = tag & 7
        if field_number == 0:
            raise ResponseError("malformed protobuf: field number 0")
        if field_number > _MAX_FIELD_NUMBER:
            raise ResponseError(f"malformed protobuf: field number {field_number} out of range")
        value: int | Buffer
        if wire_type == WIRE_VARINT:
            value, pos = read_varint(buf, pos)
        elif wire_type == WIRE_LEN:
            length, pos = read_varint(buf, pos)
            if length > end - pos:
                raise ResponseError(f"malformed protobuf: field {field_number} length {length} runs past the end")
            value = buf[pos : pos + length]
            pos += length
        elif wire_type == WIRE_FIXED64:
            if end - pos < 8:
                raise ResponseError(f"malformed protobuf: truncated fixed64 field {field_number}")
            value = int.from_bytes(buf[pos : pos + 8], "little")
            pos += 8
        elif wire_type == WIRE_FIXED32:
            if end - pos < 4:
                raise ResponseError(f"malformed protobuf: truncated fixed32 field {field_number}")
            value = int.from_bytes(buf[pos : pos + 4], "little")
            pos += 4
        elif wire_type in (3, 4):
            raise ResponseError(f"malformed protobuf: group (wire type {wire_type}) in field {field_number}")
        else:
            raise ResponseError(f"malformed protobuf: invalid wire type {wire_type} in field {field_number}")
        yield field_number, wire_type, value
