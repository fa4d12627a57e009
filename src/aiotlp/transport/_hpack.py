"""HPACK for aiotlp's gRPC client: a request-header encoder without a dynamic table (see :class:`StaticEncoder`)."""

from __future__ import annotations

from typing import Any, Final

from hpack import Encoder, NeverIndexedHeaderTuple
from hpack.hpack import encode_integer
from hpack.table import HeaderTable

__all__ = ["StaticEncoder"]

#: Header fields sent as HPACK "never indexed" literals (credentials), so no intermediary indexes them.
_SENSITIVE_NAMES: Final = frozenset({b"authorization", b"proxy-authorization", b"cookie", b"grpc-timeout"})
#: Header fields whose value changes from call to call: not cached by the HPACK encoder.
_VOLATILE_NAMES: Final = frozenset({b"grpc-timeout"})


class StaticEncoder(Encoder):
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
        self._last_plain: list[tuple[bytes, bytes]] | None = None  # (encode_plain's memo)
        self._last_block = b""

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

    def encode_plain(self, headers: list[tuple[bytes, bytes]]) -> bytes:
        """:meth:`encode` for ``headers`` that are plain tuples of bytes (none a ``NeverIndexedHeaderTuple``): the
        block of the last such call again when ``headers`` equal its (a call's headers mostly do: only
        ``grpc-timeout`` may change). Every block but the first encodes the same headers the same way."""
        if headers == self._last_plain:
            return self._last_block
        first = self._first  # (the first block starts with a table size update: never repeated)
        block = self.encode(headers)
        if not first:
            self._last_plain = list(headers)
            self._last_block = block
        return block

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
