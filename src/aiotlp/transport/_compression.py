"""Request compression (gzip, deflate, zstd) and bounded response decompression.

deflate is a zlib stream, as HTTP's ``Content-Encoding: deflate`` and gRPC's ``deflate`` message encoding mean
it. zstd goes through the binding :mod:`aiotlp.transport._zstd` chooses (the standard library's on 3.14+, else
``zstandard``, ``aiotlp[zstd]``). Every decompressed size is bounded: a gzip or zstd bomb never inflates in
memory.

:data:`ENCODINGS` is the one list of request compressions the transports send (``"none"`` aside); it is
``aiotlp.config.COMPRESSIONS`` without ``"none"``.
"""

from __future__ import annotations

import zlib
from typing import Final

from .._exceptions import ResponseError
from ..config import COMPRESSIONS
from . import _zstd

__all__ = [
    "ENCODINGS",
    "BoundedInflater",
    "accepted_encodings",
    "compress",
    "deflate_compress",
    "gzip_compress",
    "zstd_compress",
    "zstd_decompress",
]

#: The most we read of any response, after decompression (OTLP guidance).
MAX_RESPONSE_BYTES = 4 * 1024 * 1024
_STEP = 64 * 1024

ENCODINGS: Final = tuple(c for c in COMPRESSIONS if c != "none")
"""The request compressions (``aiotlp.config.COMPRESSIONS`` but ``"none"``), by their HTTP ``Content-Encoding``
and gRPC ``grpc-encoding`` names, which are the same."""


def gzip_compress(data: bytes, level: int = 6) -> bytes:
    """gzip ``data`` once; retries re-send the result."""
    compressor = zlib.compressobj(level, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
    return compressor.compress(data) + compressor.flush()


def deflate_compress(data: bytes, level: int = 6) -> bytes:
    """``data`` as one zlib stream (RFC 1950): what ``deflate`` means in HTTP and in gRPC."""
    return zlib.compress(data, level)


def zstd_compress(data: bytes) -> bytes:
    """``data`` as one zstd frame (level 3); :class:`~aiotlp.MissingExtraError` without a zstd binding."""
    return _zstd.binding().compress(data)


def zstd_decompress(data: bytes, limit: int) -> bytes:
    """Every zstd frame of ``data``, decoded; stops once the output passes ``limit`` bytes (the result is then
    longer than ``limit``). ``ValueError`` for invalid or truncated data, or a window over 8 MiB;
    :class:`~aiotlp.MissingExtraError` without a zstd binding."""
    return _zstd.binding().decompress(data, limit)


def compress(data: bytes, encoding: str) -> bytes:
    """``data`` compressed with ``encoding``, one of :data:`ENCODINGS`."""
    if encoding == "gzip":
        return gzip_compress(data)
    if encoding == "deflate":
        return deflate_compress(data)
    if encoding == "zstd":
        return zstd_compress(data)
    raise ValueError(f"unknown compression {encoding!r}")


def accepted_encodings() -> tuple[str, ...]:
    """The response encodings :class:`BoundedInflater` decodes here: gzip, deflate, and zstd when a binding
    imports. A client asks only for these (``Accept-Encoding``, ``grpc-accept-encoding``)."""
    return ENCODINGS if _zstd.available() else tuple(e for e in ENCODINGS if e != "zstd")


class BoundedInflater:
    """Collects a response body, decompressing it, and refuses to hold more than ``limit`` bytes of output.

    ``encoding``: ``"identity"`` (or ``""``), ``"gzip"``, ``"deflate"`` or ``"zstd"``, as the response's
    ``Content-Encoding`` (or ``grpc-encoding``) says; anything else is a :class:`~aiotlp.ResponseError`. gzip
    and deflate are inflated as the body arrives; a zstd body is kept compressed (no more than a body within
    ``limit`` can take) and decoded, bounded, by :meth:`finish`. ``gzip=True`` is ``encoding="gzip"``.
    """

    def __init__(self, encoding: str = "identity", *, gzip: bool = False, limit: int = MAX_RESPONSE_BYTES) -> None:
        encoding = "gzip" if gzip else encoding.strip().lower()
        if encoding not in ("identity", "", "gzip", "deflate", "zstd"):
            raise ResponseError(f"the response is compressed with an unsupported encoding ({encoding[:20]!r})")
        self._encoding = encoding
        self._inflater = (
            zlib.decompressobj(16 + zlib.MAX_WBITS)
            if encoding == "gzip"
            else zlib.decompressobj(zlib.MAX_WBITS)
            if encoding == "deflate"
            else None
        )
        self._zstd = _zstd.binding() if encoding == "zstd" else None  # MissingExtraError: never asked for
        self._limit = limit
        # zstd never grows data by more than ~1/256 (+ frame headers): a longer body cannot fit in limit
        self._compressed_limit = limit + (limit >> 8) + 1024
        self._parts: list[bytes] = []
        self._size = 0

    def feed(self, chunk: bytes) -> None:
        if self._zstd is not None:
            self._size += len(chunk)
            if self._size > self._compressed_limit:
                raise ResponseError(f"the response body is larger than {self._limit} bytes (after decompression)")
            self._parts.append(chunk)
            return
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
            raise ResponseError(f"the response body is not valid {self._encoding}: {exc}") from None

    def _append(self, data: bytes) -> None:
        self._size += len(data)
        if self._size > self._limit:
            raise ResponseError(f"the response body is larger than {self._limit} bytes (after decompression)")
        if data:
            self._parts.append(data)

    def finish(self) -> bytes:
        if self._zstd is not None:
            try:
                body = self._zstd.decompress(b"".join(self._parts), self._limit)
            except _zstd.ZstdDataError as exc:
                raise ResponseError(f"the response body is not valid zstd: {exc}") from None
            if len(body) > self._limit:
                raise ResponseError(f"the response body is larger than {self._limit} bytes (after decompression)")
            return body
        if self._inflater is not None:
            self._append(self._inflater.flush(_STEP))
        return b"".join(self._parts)
