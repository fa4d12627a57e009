"""Request and response bodies of the fake collector: bounded decompression of what clients send (gzip,
deflate, zstd: refused past a limit, never inflated whole), and generated responses of any size, streamed or as
a gzip bomb."""

from __future__ import annotations

import functools
import struct
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Final

import grpc

from aiotlp._exceptions import MissingExtraError
from aiotlp.transport import zstd_decompress

from ._replies import JSON, Refused

__all__ = ["ZSTD_MAGIC", "Filler", "gunzip", "inflate_zlib", "is_zlib", "unzstd"]

_CHUNK = 64 * 1024


def _varint(value: int, width: int = 0) -> bytes:
    """``value`` as a varint, padded to ``width`` bytes with redundant continuation bytes if needed."""
    out = bytearray()
    while value > 0x7F or len(out) + 1 < width:
        out.append(value & 0x7F | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


@dataclass(frozen=True, slots=True)
class Filler:
    """A well-formed response of exactly ``size`` bytes, mostly one repeated byte: ``head``, ``count`` times
    ``fill``, ``tail``. Protobuf: one unknown length-delimited field (number 15) of zeros; JSON: an object
    with one unknown string member of ``"0"`` characters."""

    head: bytes
    fill: int
    count: int
    tail: bytes

    @classmethod
    def of(cls, size: int, media_type: str) -> Filler:
        if media_type == JSON:
            head, tail = b'{"filler":"', b'"}'
            if size < len(head) + len(tail):
                return cls(b"", 0x20, size, b"")  # blank: an empty JSON response
            return cls(head, 0x30, size - len(head) - len(tail), tail)
        if size < 2:
            return cls(b"", 0, size, b"")  # b"" is a valid message; one byte cannot be
        for width in range(1, 11):
            length = size - 1 - width
            # where no minimal varint fits exactly (130 bytes, ...), pad it: every decoder accepts that
            if length >= 0 and len(_varint(length)) <= width:
                return cls(b"\x7a" + _varint(length, width), 0, length, b"")
        raise AssertionError("unreachable")  # pragma: no cover

    def chunks(self) -> Iterator[bytes]:
        """The body in chunks of at most 64 KiB, never all of it in memory."""
        if self.head:
            yield self.head
        block = bytes([self.fill]) * min(_CHUNK, self.count)
        remaining = self.count
        while remaining > 0:
            step = min(_CHUNK, remaining)
            yield block if step == len(block) else block[:step]
            remaining -= step
        if self.tail:
            yield self.tail

    def gzip(self) -> bytes:
        """The body as one gzip member, built from a cached deflate block of 1 MiB: ~1 KiB per MiB."""
        return _gzip_filler(self)


_BOMB_UNIT = 1 << 20


def _deflate_flushed(data: bytes) -> bytes:
    """Raw deflate ending in a full flush: byte-aligned and self-contained, so blocks can be concatenated."""
    compressor = zlib.compressobj(9, zlib.DEFLATED, -zlib.MAX_WBITS)
    return compressor.compress(data) + compressor.flush(zlib.Z_FULL_FLUSH)


@functools.cache
def _deflated_run(fill: int, count: int) -> bytes:
    return _deflate_flushed(bytes([fill]) * count)


@functools.cache
def _gzip_filler(filler: Filler) -> bytes:
    full, rest = divmod(filler.count, _BOMB_UNIT)
    unit = bytes([filler.fill]) * _BOMB_UNIT
    crc = zlib.crc32(filler.head)
    for _ in range(full):
        crc = zlib.crc32(unit, crc)
    crc = zlib.crc32(unit[:rest], crc)
    crc = zlib.crc32(filler.tail, crc)
    size = len(filler.head) + filler.count + len(filler.tail)
    return b"".join(
        (
            b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x02\xff",  # gzip header: deflate, no name, no mtime
            _deflate_flushed(filler.head),
            _deflated_run(filler.fill, _BOMB_UNIT) * full,
            _deflated_run(filler.fill, rest) if rest else b"",
            _deflate_flushed(filler.tail),
            b"\x03\x00",  # the final, empty, block
            struct.pack("<II", crc, size & 0xFFFFFFFF),
        )
    )


def gunzip(data: bytes, limit: int) -> bytes:
    """Inflate a gzip body (all members), refusing more than ``limit`` bytes of output."""
    out = bytearray()
    while data:
        inflater = zlib.decompressobj(16 + zlib.MAX_WBITS)
        try:
            out += inflater.decompress(data, limit + 1 - len(out))
        except zlib.error as exc:
            raise Refused(400, grpc.StatusCode.INVALID_ARGUMENT, f"invalid gzip body: {exc}") from None
        if len(out) > limit or inflater.unconsumed_tail:
            raise Refused(413, grpc.StatusCode.RESOURCE_EXHAUSTED, f"gzip body inflates to more than {limit} bytes")
        if not inflater.eof:
            raise Refused(400, grpc.StatusCode.INVALID_ARGUMENT, "invalid gzip body: truncated")
        data = inflater.unused_data
    return bytes(out)


def is_zlib(data: bytes) -> bool:
    """A zlib stream's header (RFC 1950) as zlib and grpc write it: deflate, 32 KiB window, valid check value."""
    return len(data) >= 2 and data[0] == 0x78 and (0x7800 | data[1]) % 31 == 0


def inflate_zlib(data: bytes, limit: int) -> bytes:
    """Inflate a zlib stream (``deflate`` in HTTP and gRPC), refusing more than ``limit`` bytes of output."""
    inflater = zlib.decompressobj(zlib.MAX_WBITS)
    try:
        out = inflater.decompress(data, limit + 1)
    except zlib.error as exc:
        raise Refused(400, grpc.StatusCode.INVALID_ARGUMENT, f"invalid deflate body: {exc}") from None
    if len(out) > limit or inflater.unconsumed_tail:
        raise Refused(413, grpc.StatusCode.RESOURCE_EXHAUSTED, f"deflate body inflates to more than {limit} bytes")
    if not inflater.eof or inflater.unused_data:
        raise Refused(400, grpc.StatusCode.INVALID_ARGUMENT, "invalid deflate body: truncated or trailing bytes")
    return out


ZSTD_MAGIC: Final = b"\x28\xb5\x2f\xfd"  # a zstd frame (RFC 8878); no export request has field 5 (tag 0x28)


def unzstd(data: bytes, limit: int) -> bytes:
    """Decode a zstd body (every frame), refusing more than ``limit`` bytes of output."""
    try:
        out = zstd_decompress(data, limit)
    except MissingExtraError:
        raise Refused(
            415, grpc.StatusCode.UNIMPLEMENTED, "zstd: no zstd binding here (pip install 'aiotlp[zstd]')"
        ) from None
    except ValueError as exc:
        raise Refused(400, grpc.StatusCode.INVALID_ARGUMENT, f"invalid zstd body: {exc}") from None
    if len(out) > limit:
        raise Refused(413, grpc.StatusCode.RESOURCE_EXHAUSTED, f"zstd body decompresses to more than {limit} bytes")
    return out
