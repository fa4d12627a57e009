"""Framing of the disk queue, sans-IO: bytes in, records out.

A segment file is a magic header followed by records, each framed as::

    length   u64 little-endian   size of the payload, in bytes
    crc      u32 little-endian   CRC-32 (zlib) of the 8 length bytes followed by the payload
    payload  length bytes:
        version  u8   1
        signal   u8   1 traces, 2 metrics, 3 logs
        format   u8   0 protobuf (gRPC and HTTP/protobuf), 1 OTLP/JSON
        reserved u8   0
        items    u32  little-endian: spans, metric data points or log records in the body
        body     the encoded export request, exactly as it goes on the wire (before compression)

Why this shape: the length comes first so a reader knows how much to read, and it is checked against the record
cap *before* anything is allocated (a flipped high bit, or a length of 2**62, is corruption, not a reason to
allocate). The CRC covers the length too, so a damaged length that still fits the cap is caught. The payload
carries the signal, the wire format and the item count, so a record is replayed and counted without decoding its
body. Only the body is stored: headers and credentials never reach the disk.

CRC-32 (zlib, in C in every CPython) rather than CRC-32C: both catch every burst error up to 32 bits and the odd
bit flips; CRC-32C would need a compiled dependency for no gain in what the queue can detect.
"""

from __future__ import annotations

import struct
import zlib
from dataclasses import dataclass
from typing import Final

from ..model import Signal

__all__ = [
    "FORMAT_JSON",
    "FORMAT_PROTOBUF",
    "HEADER",
    "MAGIC",
    "PAYLOAD_PREFIX",
    "CorruptRecord",
    "Payload",
    "check_header",
    "decode_payload",
    "encode_payload",
    "frame",
    "parse_header",
]

#: The first bytes of every segment file: "AIOTLPQ" and the format version.
MAGIC: Final = b"AIOTLPQ\x01"

_HEADER: Final = struct.Struct("<QI")
_LENGTH: Final = struct.Struct("<Q")
_PREFIX: Final = struct.Struct("<BBBBI")

#: Bytes of a record header (length and crc).
HEADER: Final = _HEADER.size
#: Bytes of the payload before the body.
PAYLOAD_PREFIX: Final = _PREFIX.size

FORMAT_PROTOBUF: Final = 0
FORMAT_JSON: Final = 1

_VERSION: Final = 1
_SIGNAL_CODE: Final = {Signal.TRACES: 1, Signal.METRICS: 2, Signal.LOGS: 3}
_CODE_SIGNAL: Final = {code: signal for signal, code in _SIGNAL_CODE.items()}
_MAX_ITEMS: Final = 0xFFFFFFFF


class CorruptRecord(Exception):
    """A record (or segment header) that fails a check; ``reason`` says which. Internal to the durable layer:
    the reader counts it and skips the damaged segment, it never reaches a caller."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True, slots=True)
class Payload:
    """A decoded payload: one encoded export request and what it holds."""

    signal: Signal
    format: int
    items: int
    body: bytes


def encode_payload(signal: Signal, fmt: int, items: int, body: bytes) -> bytes:
    """The payload bytes for one encoded request."""
    if fmt not in (FORMAT_PROTOBUF, FORMAT_JSON):
        raise ValueError(f"format must be FORMAT_PROTOBUF or FORMAT_JSON, got {fmt!r}")
    if not 0 <= items <= _MAX_ITEMS:
        raise ValueError(f"items must be in 0..{_MAX_ITEMS}, got {items!r}")
    return _PREFIX.pack(_VERSION, _SIGNAL_CODE[signal], fmt, 0, items) + body


def decode_payload(payload: bytes) -> Payload:
    """Parse a payload whose CRC already matched; raise :class:`CorruptRecord` if its fields are impossible."""
    if len(payload) < PAYLOAD_PREFIX:
        raise CorruptRecord(f"payload of {len(payload)} bytes is shorter than its {PAYLOAD_PREFIX}-byte prefix")
    version, code, fmt, reserved, items = _PREFIX.unpack_from(payload)
    if version != _VERSION:
        raise CorruptRecord(f"unknown record version {version}")
    signal = _CODE_SIGNAL.get(code)
    if signal is None:
        raise CorruptRecord(f"unknown signal code {code}")
    if fmt not in (FORMAT_PROTOBUF, FORMAT_JSON) or reserved:
        raise CorruptRecord(f"unknown format {fmt} (reserved byte {reserved})")
    return Payload(signal, fmt, items, payload[PAYLOAD_PREFIX:])


def frame(payload: bytes) -> bytes:
    """One framed record: length, crc, payload."""
    length = _LENGTH.pack(len(payload))
    return length + struct.pack("<I", zlib.crc32(payload, zlib.crc32(length))) + payload


def parse_header(header: bytes, max_payload: int) -> tuple[int, int]:
    """``(length, crc)`` from a record header; a length outside ``PAYLOAD_PREFIX..max_payload`` is corruption.

    This check comes before the payload is read, so a damaged length never makes the reader allocate more than
    ``max_payload`` bytes.
    """
    if len(header) < HEADER:
        raise CorruptRecord(f"truncated record header ({len(header)} of {HEADER} bytes)")
    length, crc = _HEADER.unpack_from(header)
    if length < PAYLOAD_PREFIX:
        raise CorruptRecord(f"record length {length} is shorter than a payload prefix")
    if length > max_payload:
        raise CorruptRecord(f"record length {length} is over the {max_payload}-byte record cap")
    return length, crc


def check_header(header: bytes, payload: bytes, crc: int) -> None:
    """Raise :class:`CorruptRecord` unless ``crc`` matches the header's length bytes and ``payload``."""
    if zlib.crc32(payload, zlib.crc32(header[: _LENGTH.size])) != crc:
        raise CorruptRecord("checksum mismatch")
