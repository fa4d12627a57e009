"""Protobuf wire-format writer primitives (sans-IO).

Everything here returns ``bytes`` (or appends to a ``bytearray``) and never allocates a per-field object. The
encoders in :mod:`aiotlp.encoding._protobuf` precompute their tags with :func:`tag` at import time and inline
the hottest of these operations; the functions below are the readable, tested reference of each rule, and what
the colder paths call.

Wire format reminders (https://protobuf.dev/programming-guides/encoding/):

- a tag is the varint ``field_number << 3 | wire_type``;
- varints are little-endian base 128; a negative ``int64``/``int32`` is sent as its 64-bit two's complement
  (10 bytes); ``sint32``/``sint64`` are zigzag-encoded first;
- ``fixed64``/``sfixed64``/``double`` are 8 little-endian bytes, ``fixed32`` 4;
- a length-delimited value (string, bytes, message, packed repeated scalars) is ``varint(len) + payload``.

Strings must be valid UTF-8 on the wire. :func:`utf8` is the one place that turns a ``str`` into bytes: a
well-formed surrogate pair (two code points U+D800..U+DBFF, U+DC00..U+DFFF) is joined into the character it
stands for, and any other surrogate code point becomes U+FFFD, the replacement character.
"""

from __future__ import annotations

import struct
from collections.abc import Iterable, Sequence
from typing import Final

__all__ = [
    "VARINT",
    "VARINT_TABLE_SIZE",
    "WIRE_FIXED32",
    "WIRE_FIXED64",
    "WIRE_LEN",
    "WIRE_VARINT",
    "begin_message",
    "double",
    "end_message",
    "fixed32",
    "fixed64",
    "length_delimited",
    "packed_doubles",
    "packed_fixed64",
    "packed_varints",
    "sfixed64",
    "sint32",
    "sint64",
    "tag",
    "utf8",
    "varint",
    "zigzag32",
    "zigzag64",
]

WIRE_VARINT: Final = 0
WIRE_FIXED64: Final = 1
WIRE_LEN: Final = 2
WIRE_FIXED32: Final = 5

_UINT64: Final = 1 << 64
_UINT64_MAX: Final = _UINT64 - 1

VARINT_TABLE_SIZE: Final = 1 << 14
"""Varints below this (one and two bytes long) are precomputed in :data:`VARINT`."""


def _varint_slow(value: int) -> bytes:
    if value < 0:
        value += _UINT64  # int64/int32: 64-bit two's complement, always 10 bytes
    out = bytearray()
    while value > 0x7F:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


VARINT: Final[tuple[bytes, ...]] = tuple(_varint_slow(i) for i in range(VARINT_TABLE_SIZE))
"""``VARINT[n]`` is the varint encoding of ``n`` for ``0 <= n < VARINT_TABLE_SIZE`` (lengths, small ints)."""


def varint(value: int) -> bytes:
    """A base-128 varint: unsigned and enum values as is; negative int32/int64 as 10 bytes."""
    if 0 <= value < VARINT_TABLE_SIZE:
        return VARINT[value]
    return _varint_slow(value)


def zigzag32(value: int) -> int:
    """Map a signed 32-bit integer to an unsigned one (0, -1, 1, -2 -> 0, 1, 2, 3)."""
    return ((value << 1) ^ (value >> 31)) & 0xFFFFFFFF


def zigzag64(value: int) -> int:
    """Map a signed 64-bit integer to an unsigned one (0, -1, 1, -2 -> 0, 1, 2, 3)."""
    return ((value << 1) ^ (value >> 63)) & _UINT64_MAX


def sint32(value: int) -> bytes:
    """A ``sint32`` value: zigzag, then varint."""
    return varint(zigzag32(value))


def sint64(value: int) -> bytes:
    """A ``sint64`` value: zigzag, then varint."""
    return varint(zigzag64(value))


def tag(field_number: int, wire_type: int) -> bytes:
    """The encoded key of a field. Call it at import time and keep the result as a constant."""
    return varint(field_number << 3 | wire_type)


fixed32: Final = struct.Struct("<I").pack
"""``fixed32(n)``: 4 little-endian bytes."""
fixed64: Final = struct.Struct("<Q").pack
"""``fixed64(n)``: 8 little-endian bytes (times, counts)."""
sfixed64: Final = struct.Struct("<q").pack
"""``sfixed64(n)``: 8 little-endian bytes, two's complement (``as_int``)."""
double: Final = struct.Struct("<d").pack
"""``double(x)``: IEEE 754 binary64, little-endian (NaN, infinities and -0.0 pass through bit for bit)."""


def utf8(text: str) -> bytes:
    """``text`` as UTF-8; surrogate pairs are joined, lone surrogates become U+FFFD (see the module doc)."""
    try:
        return text.encode()
    except UnicodeEncodeError:
        return text.encode("utf-16-le", "surrogatepass").decode("utf-16-le", "replace").encode()


def length_delimited(field_tag: bytes, payload: bytes) -> bytes:
    """``tag + varint(len(payload)) + payload``: a string, bytes, message or packed field."""
    return field_tag + varint(len(payload)) + payload


def packed_fixed64(values: Sequence[int]) -> bytes:
    """The payload of a packed ``repeated fixed64`` (without tag and length)."""
    return struct.pack(f"<{len(values)}Q", *values)


def packed_doubles(values: Sequence[float]) -> bytes:
    """The payload of a packed ``repeated double`` (without tag and length)."""
    return struct.pack(f"<{len(values)}d", *values)


def packed_varints(values: Iterable[int]) -> bytes:
    """The payload of a packed ``repeated uint64``/``int64`` (without tag and length)."""
    table = VARINT
    size = VARINT_TABLE_SIZE
    return b"".join([table[v] if 0 <= v < size else _varint_slow(v) for v in values])


def begin_message(buf: bytearray, field_tag: bytes) -> int:
    """Append ``field_tag`` and a one-byte length placeholder; return the position the payload starts at.

    Write the payload into ``buf`` next, then call :func:`end_message` with the returned position. This is how
    a nested message is written into one buffer without building it separately first.
    """
    buf += field_tag
    buf.append(0)
    return len(buf)


def end_message(buf: bytearray, start: int) -> None:
    """Fill in the length placeholder written by :func:`begin_message` for the payload ``buf[start:]``.

    A payload of 128 bytes or more needs a longer varint: it is spliced in, which moves only this payload.
    """
    size = len(buf) - start
    if size < 0x80:
        buf[start - 1] = size
    else:
        buf[start - 1 : start] = varint(size)
