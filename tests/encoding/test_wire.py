"""The wire-format writer primitives, each checked against the official serializer of a field of that type.

White-box, on purpose: ``_wire._varint_slow``, the loop the precomputed varint table is built from, is the
reference for the table and for ``varint``; ``aiotlp.encoding._reader`` is the reader under test.
"""

from __future__ import annotations

import math

import pytest
from google.protobuf import wrappers_pb2
from hypothesis import given
from hypothesis import strategies as st
from opentelemetry.proto.metrics.v1 import metrics_pb2
from tests.strategies import INT64_MAX, INT64_MIN, UINT64_MAX, doubles

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
def test_zigzag32(value: int) -> None:
    assert (b"\x08" + w.varint(w.zigzag32(value)) if value else b"") == Buckets(offset=value).SerializeToString()
    assert w.zigzag32(value) == (2 * value if value >= 0 else -2 * value - 1)


@given(doubles(allow_nan=True))
def test_double(value: float) -> None:
    expected = wrappers_pb2.DoubleValue(value=value).SerializeToString()
    if value == 0.0 and math.copysign(1.0, value) > 0:
        assert expected == b""  # +0.0 is the default; -0.0 is not (protobuf compares bits)
    else:
        assert b"\x09" + w.double(value) == expected


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
