"""Framing of the disk queue: length | crc | payload, round trips and every check.

White-box, on purpose: the framing (``aiotlp.durable._record``) is the private module under test.
"""

from __future__ import annotations

import struct
import zlib

import pytest
from hypothesis import given
from hypothesis import strategies as st

from aiotlp.durable._record import (
    FORMAT_JSON,
    FORMAT_PROTOBUF,
    HEADER,
    PAYLOAD_PREFIX,
    CorruptRecord,
    check_header,
    decode_payload,
    encode_payload,
    frame,
    parse_header,
)
from aiotlp.model import Signal

CAP = 1 << 20


def unframe(data: bytes, cap: int = CAP) -> tuple[bytes, int]:
    length, crc = parse_header(data[:HEADER], cap)
    payload = data[HEADER : HEADER + length]
    if len(payload) != length:
        raise CorruptRecord("truncated")
    check_header(data[:HEADER], payload, crc)
    return payload, HEADER + length


@given(
    signal=st.sampled_from(Signal),
    fmt=st.sampled_from([FORMAT_PROTOBUF, FORMAT_JSON]),
    items=st.integers(0, 2**32 - 1),
    body=st.binary(max_size=2000),
)
def test_round_trip(signal: Signal, fmt: int, items: int, body: bytes) -> None:
    data = frame(encode_payload(signal, fmt, items, body))
    payload, used = unframe(data)
    assert used == len(data) == HEADER + PAYLOAD_PREFIX + len(body)
    decoded = decode_payload(payload)
    assert (decoded.signal, decoded.format, decoded.items, decoded.body) == (signal, fmt, items, body)


def test_layout_is_little_endian_length_then_crc_of_length_and_payload() -> None:
    payload = encode_payload(Signal.LOGS, FORMAT_JSON, 7, b"{}")
    data = frame(payload)
    length, crc = struct.unpack_from("<QI", data)
    assert length == len(payload) == PAYLOAD_PREFIX + 2
    assert crc == zlib.crc32(data[:8] + payload)
    assert payload[:8] == bytes([1, 3, 1, 0, 7, 0, 0, 0])


@given(body=st.binary(min_size=1, max_size=200), data=st.data())
def test_every_single_bit_flip_is_caught(body: bytes, data: st.DataObject) -> None:
    framed = bytearray(frame(encode_payload(Signal.TRACES, FORMAT_PROTOBUF, 1, body)))
    bit = data.draw(st.integers(0, len(framed) * 8 - 1))
    framed[bit // 8] ^= 1 << (bit % 8)
    with pytest.raises(CorruptRecord):
        decode_payload(unframe(bytes(framed))[0])


def test_length_prefix_of_2_pow_62_is_refused_before_any_read() -> None:
    header = struct.pack("<QI", 2**62, 0)
    with pytest.raises(CorruptRecord, match="over the 1048576-byte record cap"):
        parse_header(header, CAP)


@pytest.mark.parametrize("length", [0, PAYLOAD_PREFIX - 1])
def test_length_shorter_than_a_payload_prefix_is_corrupt(length: int) -> None:
    with pytest.raises(CorruptRecord, match="shorter than a payload prefix"):
        parse_header(struct.pack("<QI", length, 0), CAP)


def test_truncated_header_is_corrupt() -> None:
    with pytest.raises(CorruptRecord, match="truncated record header"):
        parse_header(b"\x01\x02\x03", CAP)


@pytest.mark.parametrize(
    ("prefix", "reason"),
    [
        (bytes([2, 1, 0, 0, 1, 0, 0, 0]), "unknown record version 2"),
        (bytes([1, 9, 0, 0, 1, 0, 0, 0]), "unknown signal code 9"),
        (bytes([1, 1, 5, 0, 1, 0, 0, 0]), "unknown format 5"),
        (bytes([1, 1, 0, 1, 1, 0, 0, 0]), "reserved byte 1"),
    ],
)
def test_impossible_payload_fields_are_corrupt(prefix: bytes, reason: str) -> None:
    with pytest.raises(CorruptRecord, match=reason):
        decode_payload(prefix + b"body")


def test_encode_refuses_bad_arguments() -> None:
    with pytest.raises(ValueError, match="format"):
        encode_payload(Signal.TRACES, 3, 1, b"")
    with pytest.raises(ValueError, match="items"):
        encode_payload(Signal.TRACES, FORMAT_PROTOBUF, 2**32, b"")
