"""The wire-format writer primitives, each checked against the official serializer of a field of that type."""

from __future__ import annotations

import math
import struct

import pytest
from google.protobuf import wrappers_pb2
from hypothesis import given
from hypothesis import strategies as st
from opentelemetry.proto.metrics.v1 import metrics_pb2
from opentelemetry.proto.trace.v1 import trace_pb2
from tests.strategies import INT64_MAX, INT64_MIN, UINT32_MAX, UINT64_MAX, doubles

from aiotlp.encoding import _wire as w
from aiotlp.encoding._reader import read_varint

Buckets = metrics_pb2.ExponentialHistogramDataPoint.Buckets
int32s = st.integers(-(2**31), 2**31 - 1)
uint64s = st.integers(0, UINT64_MAX)


@given(uint64s)
def test_varint_uint64(value: int) -> None:
    expected = wrappers_pb2.UInt64Value(value=value).SerializeToString()
    assert (b"\x08" + w.varint(value) if value else b"") == expected
    assert read_varint(w.varint(value), 0) == (value, len(w.varint(value)))


@given(st.integers(INT64_MIN, INT64_MAX))
def test_varint_int64(value: int) -> None:
    expected = wrappers_pb2.Int64Value(value=value).SerializeToString()
    assert (b"\x08" + w.varint(value) if value else b"") == expected


@pytest.mark.parametrize("value", [0, 1, 127, 128, 16383, 16384, 2**32, UINT64_MAX, -1, INT64_MIN])
def test_varint_boundaries(value: int) -> None:
    expected = w._varint_slow(value)
    assert w.varint(value) == expected
    assert len(expected) == (10 if value < 0 else max(1, (value.bit_length() + 6) // 7))


def test_varint_table() -> None:
    assert len(w.VARINT) == w.VARINT_TABLE_SIZE
    assert all(w.VARINT[i] == w._varint_slow(i) for i in range(w.VARINT_TABLE_SIZE))


@given(int32s)
def test_sint32(value: int) -> None:
    assert (b"\x08" + w.sint32(value) if value else b"") == Buckets(offset=value).SerializeToString()
    assert w.zigzag32(value) == (2 * value if value >= 0 else -2 * value - 1)


@given(st.integers(INT64_MIN, INT64_MAX))
def test_zigzag64(value: int) -> None:
    assert w.zigzag64(value) == (2 * value if value >= 0 else -2 * value - 1)
    assert w.sint64(value) == w.varint(w.zigzag64(value))


@given(uint64s)
def test_fixed64(value: int) -> None:
    expected = trace_pb2.Span(start_time_unix_nano=value).SerializeToString()
    assert (b"\x39" + w.fixed64(value) if value else b"") == expected


@given(st.integers(0, UINT32_MAX))
def test_fixed32(value: int) -> None:
    # Span.Link.flags is field 6, fixed32
    assert (b"\x35" + w.fixed32(value) if value else b"") == trace_pb2.Span.Link(flags=value).SerializeToString()


@given(st.integers(INT64_MIN, INT64_MAX))
def test_sfixed64(value: int) -> None:
    assert b"\x31" + w.sfixed64(value) == metrics_pb2.NumberDataPoint(as_int=value).SerializeToString()


@given(doubles(allow_nan=True))
def test_double(value: float) -> None:
    expected = wrappers_pb2.DoubleValue(value=value).SerializeToString()
    if value == 0.0 and math.copysign(1.0, value) > 0:
        assert expected == b""  # +0.0 is the default; -0.0 is not (protobuf compares bits)
    else:
        assert b"\x09" + w.double(value) == expected


def test_tags_match_descriptors() -> None:
    span = trace_pb2.Span.DESCRIPTOR.fields_by_name
    assert w.tag(span["flags"].number, w.WIRE_FIXED32) == b"\x85\x01"
    assert w.tag(span["name"].number, w.WIRE_LEN) == b"\x2a"
    assert w.tag(span["start_time_unix_nano"].number, w.WIRE_FIXED64) == b"\x39"
    assert w.tag(span["kind"].number, w.WIRE_VARINT) == b"\x30"


@given(st.lists(uint64s, max_size=20))
def test_packed_fixed64(values: list[int]) -> None:
    payload = w.packed_fixed64(values)
    expected = metrics_pb2.HistogramDataPoint(bucket_counts=values).SerializeToString()
    assert (w.length_delimited(b"\x32", payload) if values else b"") == expected


@given(st.lists(doubles(), max_size=20))
def test_packed_doubles(values: list[float]) -> None:
    payload = w.packed_doubles(values)
    expected = metrics_pb2.HistogramDataPoint(explicit_bounds=values).SerializeToString()
    assert (w.length_delimited(b"\x3a", payload) if values else b"") == expected


@given(st.lists(uint64s, max_size=20))
def test_packed_varints(values: list[int]) -> None:
    payload = w.packed_varints(values)
    assert (w.length_delimited(b"\x12", payload) if values else b"") == Buckets(
        bucket_counts=values
    ).SerializeToString()


@pytest.mark.parametrize("size", [0, 1, 127, 128, 300, 16383, 16384, 70000])
def test_begin_end_message(size: int) -> None:
    buf = bytearray(b"prefix")
    start = w.begin_message(buf, b"\x2a")
    buf += b"x" * size
    w.end_message(buf, start)
    assert bytes(buf) == b"prefix" + w.length_delimited(b"\x2a", b"x" * size)
    if size:
        assert bytes(buf) == b"prefix" + trace_pb2.Span(name="x" * size).SerializeToString()


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("", b""),
        ("plain", b"plain"),
        ("\x00ü中😀", "\x00ü中😀".encode()),
        ("a\ud800b", "a\ufffdb".encode()),  # lone high surrogate
        ("\udc00", "\ufffd".encode()),  # lone low surrogate
        ("\ud83d\ude00", "😀".encode()),  # a well-formed pair is joined
        ("\ude00\ud83d", "\ufffd\ufffd".encode()),  # reversed: two lone surrogates
        ("😀\ud800", "😀\ufffd".encode()),
    ],
)
def test_utf8(text: str, expected: bytes) -> None:
    assert w.utf8(text) == expected
    expected.decode()  # always valid UTF-8


def test_struct_formats_are_little_endian() -> None:
    assert w.fixed64(1) == struct.pack("<Q", 1) == b"\x01" + b"\x00" * 7
    assert w.sfixed64(-1) == b"\xff" * 8
