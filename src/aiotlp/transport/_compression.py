"""gzip in both directions, deflate (a zlib stream, as HTTP's ``Content-Encoding: deflate`` and gRPC's
``deflate`` message encoding mean it) for requests, with the inflated size bounded (a gzip bomb never inflates in
memory)."""

from __future__ import annotations

import zlib

from .._exceptions import ResponseError

__all__ = ["BoundedInflater", "compress", "deflate_compress", "gzip_compress"]

#: The most we read of any response, after decompression (OTLP guidance).
MAX_RESPONSE_BYTES = 4 * 1024 * 1024
_STEP = 64 * 1024


def gzip_compress(data: bytes, level: int = 6) -> bytes:
    """gzip ``data`` once; retries re-send the result."""
    compressor = zlib.compressobj(level, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
    return compressor.compress(data) + compressor.flush()


def deflate_compress(data: bytes, level: int = 6) -> bytes:
    """``data`` as one zlib stream (RFC 1950): what ``deflate`` means in HTTP and in gRPC."""
    return zlib.compress(data, level)


def compress(data: bytes, encoding: str) -> bytes:
    """``data`` compressed with ``encoding``, ``"gzip"`` or ``"deflate"``."""
    return gzip_compress(data) if encoding == "gzip" else deflate_compress(data)


class BoundedInflater:
    """Collects a response body, inflating gzip as it arrives, and refuses to hold more than ``limit`` bytes."""

    def __init__(self, *, gzip: bool, limit: int = MAX_RESPONSE_BYTES) -> None:
        self._inflater = zlib.decompressobj(16 + zlib.MAX_WBITS) if gzip else None
        self._limit = limit
        self._parts: list[bytes] = []
        self._size = 0

    def feed(self, chunk: bytes) -> None:
        if self._inflater is None:
            self._append(chunk)
            return
        try:
            # Inflate in small steps (max_length) so no single allocation is large; what one step could not
            # take waits in unconsumed_tail. _append stops as soon as the total passes the limit.
            data = chunk
            while data:
                self._append(self._inflater.decompress(data, _STEP))
                data = self._inflater.unconsumed_tail
        except zlib.error as exc:
            raise ResponseError(f"the response body is not valid gzip: {exc}") from None

    def _append(self, data: bytes) -> None:
        self._size += len(data)
        if self._size > self._limit:
            raise ResponseError(f"the response body is larger than {self._limit} bytes (after decompression)")
        if data:
            self._parts.append(data)

    def finish(self) -> bytes:
        if self._inflater is not None:
            self._append(self._inflater.flush(_STEP))
        return b"".join(self._parts)
