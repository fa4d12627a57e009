"""Protobuf wire-format writer primitives (sans-IO).

Everything here returns ``bytes`` and never allocates a per-field object. The encoders in
:mod:`aiotlp.encoding._protobuf` write their tags as ``bytes`` constants and inline the hottest of these
operations (fixed-width values with ``struct``); what is here is what they call.

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
from typing import Final

__all__ = ["VARINT", "VARINT_TABLE_SIZE", "double", "utf8", "varint", "zigzag32"]

_UINT64: Final = 1 << 64

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


double: Final = struct.Struct("<d").pack
"""``double(x)``: IEEE 754 binary64, little-endian (NaN, infinities and -0.0 pass through bit for bit)."""


def utf8(text: str) -> bytes:
    """``text`` as UTF-8; surrogate pairs are joined, lone surrogates become U+FFFD (see the module doc)."""
    try:
        return text.encode()
    except UnicodeEncodeError:
        return text.encode("utf-16-le", "surrogatepass").decode("utf-16-le", "replace").encode()
