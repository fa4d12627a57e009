"""Response parsing and failure classification, checked against the official generated protobuf classes.

White-box, on purpose: the modules under test (``aiotlp.encoding._response``, ``_reader``) with their tables
(``GRPC_CODE_NAMES``, ``RETRYABLE_*``, ``MAX_ERROR_TEXT``), which the public surface does not re-export.
"""

from __future__ import annotations

import contextlib
import email.utils
import http
import json

import pytest
from google.protobuf import any_pb2, duration_pb2, json_format
from google.protobuf.message import DecodeError
from google.rpc import error_details_pb2, status_pb2
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from opentelemetry.proto.collector.logs.v1 import logs_service_pb2
from opentelemetry.proto.collector.metrics.v1 import metrics_service_pb2
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2

from aiotlp import RejectedError, ResponseError, ServerBusyError
from aiotlp.encoding._reader import iter_fields, read_varint
from aiotlp.encoding._response import (
    GRPC_CODE_NAMES,
    MAX_ERROR_TEXT,
    RETRYABLE_GRPC_CODES,
    RETRYABLE_HTTP_STATUSES,
    PartialSuccess,
    RpcStatus,
    classify_grpc_status,
    classify_http_response,
    decode_export_response,
    decode_export_response_json,
    decode_rpc_status,
    decode_rpc_status_json,
    parse_retry_after,
)

NOW = 1_700_000_000.0
INT64 = st.integers(min_value=-(2**63), max_value=2**63 - 1)

# (response class, name of its rejected_* field, its lowerCamelCase JSON name)
RESPONSES = [
    (trace_service_pb2.ExportTraceServiceResponse, "rejected_spans", "rejectedSpans"),
    (metrics_service_pb2.ExportMetricsServiceResponse, "rejected_data_points", "rejectedDataPoints"),
    (logs_service_pb2.ExportLogsServiceResponse, "rejected_log_records", "rejectedLogRecords"),
]


def _varint(value: int) -> bytes:
    value &= (1 << 64) - 1
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def _len_field(number: int, payload: bytes) -> bytes:
    return _varint(number << 3 | 2) + _varint(len(payload)) + payload


def _retry_info_any(seconds: int = 0, nanos: int = 0) -> any_pb2.Any:
    packed = any_pb2.Any()
    packed.Pack(error_details_pb2.RetryInfo(retry_delay=duration_pb2.Duration(seconds=seconds, nanos=nanos)))
    return packed


def _status(code: int, message: str = "", *details: any_pb2.Any) -> bytes:
    return status_pb2.Status(code=code, message=message, details=list(details)).SerializeToString()


# -- reader --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        (b"\x00", 0),
        (b"\x01", 1),
        (b"\x7f", 127),
        (b"\x80\x01", 128),
        (b"\x96\x01", 150),
        (b"\xff" * 9 + b"\x01", 2**64 - 1),
        (b"\x80" * 9 + b"\x7f", 2**63),  # bits past 64 are dropped, as protobuf does
    ],
)
def test_read_varint(data: bytes, expected: int) -> None:
    assert read_varint(data + b"tail", 0) == (expected, len(data))
    assert read_varint(memoryview(b"x" + data), 1) == (expected, len(data) + 1)


@given(st.integers(min_value=0, max_value=2**64 - 1))
def test_read_varint_round_trip(value: int) -> None:
    encoded = _varint(value)
    assert read_varint(encoded, 0) == (value, len(encoded))


@pytest.mark.parametrize(
    ("data", "pos", "match"),
    [
        (b"", 0, "truncated varint"),
        (b"\x01", 1, "truncated varint"),
        (b"\x80", 0, "truncated varint"),
        (b"\xff\xff\xff", 0, "truncated varint"),
        (b"\x80" * 10 + b"\x01", 0, "longer than 10 bytes"),
        (b"\xff" * 20, 0, "longer than 10 bytes"),
    ],
)
def test_read_varint_malformed(data: bytes, pos: int, match: str) -> None:
    with pytest.raises(ResponseError, match=match):
        read_varint(data, pos)


def test_iter_fields_all_wire_types() -> None:
    data = (
        _varint(1 << 3 | 0)
        + _varint(300)
        + _varint(2 << 3 | 1)
        + (0x0102030405060708).to_bytes(8, "little")
        + _len_field(3, b"hello")
        + _varint(4 << 3 | 5)
        + (0xFFFFFFFF).to_bytes(4, "little")
        + _len_field(5, b"")
    )
    assert list(iter_fields(data)) == [
        (1, 0, 300),
        (2, 1, 0x0102030405060708),
        (3, 2, b"hello"),
        (4, 5, 0xFFFFFFFF),
        (5, 2, b""),
    ]


def test_iter_fields_memoryview_slices_without_copying() -> None:
    data = memoryview(_len_field(7, b"abc"))
    [(number, wire_type, value)] = list(iter_fields(data))
    assert (number, wire_type) == (7, 2)
    assert isinstance(value, memoryview)
    assert value.obj is data.obj
    assert bytes(value) == b"abc"


@pytest.mark.parametrize(
    ("data", "match"),
    [
        (b"\x08", "truncated varint"),
        (b"\x0a\x05abc", "runs past the end"),
        (b"\x0a\xff\xff\xff\xff\xff\xff\xff\xff\xff\x01", "runs past the end"),
        (b"\x09\x00\x00", "truncated fixed64"),
        (b"\x0d\x00", "truncated fixed32"),
        (b"\x0b", "group"),
        (b"\x0c", "group"),
        (b"\x0e", "invalid wire type 6"),
        (b"\x0f", "invalid wire type 7"),
        (b"\x00\x00", "field number 0"),
        (b"\x02\x00", "field number 0"),
        (_varint(2**29 << 3), "out of range"),
    ],
)
def test_iter_fields_malformed(data: bytes, match: str) -> None:
    with pytest.raises(ResponseError, match=match):
        list(iter_fields(data))


# -- export responses ----------------------------------------------------------------------------------------


def test_empty_body_is_full_success() -> None:
    assert decode_export_response(b"") == PartialSuccess()
    assert decode_export_response(b"") == PartialSuccess(rejected=0, error_message="")


@pytest.mark.parametrize(("cls", "field", "_json_name"), RESPONSES)
@given(rejected=INT64, message=st.text())
def test_decode_export_response_official(cls: type, field: str, _json_name: str, rejected: int, message: str) -> None:
    response = cls()
    setattr(response.partial_success, field, rejected)
    response.partial_success.error_message = message
    assert decode_export_response(response.SerializeToString()) == PartialSuccess(rejected, message)


@pytest.mark.parametrize(("cls", "field", "_json_name"), RESPONSES)
def test_decode_export_response_present_but_empty(cls: type, field: str, _json_name: str) -> None:
    response = cls()
    response.partial_success.SetInParent()
    body = response.SerializeToString()
    assert body == b"\x0a\x00"
    assert decode_export_response(body) == PartialSuccess()


def test_decode_export_response_skips_unknown_fields() -> None:
    partial = (
        _varint(1 << 3)
        + _varint(7)
        + _varint(9 << 3 | 5)
        + b"\x00" * 4
        + _len_field(2, b"too many")
        + _len_field(3, b"future")
    )
    body = (
        _varint(99 << 3 | 1)
        + b"\x00" * 8
        + _len_field(1, partial)
        + _varint(2 << 3)
        + _varint(5)
        + _len_field(1000, b"\xff\xfe")
    )
    expected = trace_service_pb2.ExportTraceServiceResponse.FromString(body).partial_success
    assert (expected.rejected_spans, expected.error_message) == (7, "too many")
    assert decode_export_response(body) == PartialSuccess(7, "too many")


def test_decode_export_response_merges_repeated_message_like_protobuf() -> None:
    body = _len_field(1, b"\x08\x02\x12\x01a") + _len_field(1, b"\x08\x05") + _len_field(1, b"")
    official = trace_service_pb2.ExportTraceServiceResponse.FromString(body).partial_success
    assert decode_export_response(body) == PartialSuccess(official.rejected_spans, official.error_message)
    assert decode_export_response(body) == PartialSuccess(5, "a")


def test_decode_export_response_wrong_wire_type_is_skipped() -> None:
    # field 1 as a varint (not a message), and rejected_* as a length-delimited value: unknown, skipped
    body = _varint(1 << 3) + _varint(3) + _len_field(1, _len_field(1, b"xx"))
    official = trace_service_pb2.ExportTraceServiceResponse.FromString(body)
    assert official.partial_success.rejected_spans == 0
    assert decode_export_response(body) == PartialSuccess()


def test_decode_export_response_invalid_utf8_is_replaced() -> None:
    body = _len_field(1, _varint(1 << 3) + _varint(2) + _len_field(2, b"bad \xff\xfe text"))
    assert decode_export_response(body) == PartialSuccess(2, "bad \ufffd\ufffd text")


@given(st.binary(max_size=64))
def test_decode_export_response_agrees_with_official(data: bytes) -> None:
    try:
        official = trace_service_pb2.ExportTraceServiceResponse.FromString(data)
    except DecodeError:
        return
    try:
        ours = decode_export_response(data)
    except ResponseError:
        return  # stricter than upb on groups in unknown fields; never on what a collector sends
    assert ours == PartialSuccess(official.partial_success.rejected_spans, official.partial_success.error_message)


# -- JSON export responses -----------------------------------------------------------------------------------


@pytest.mark.parametrize(("cls", "field", "json_name"), RESPONSES)
def test_decode_export_response_json_official(cls: type, field: str, json_name: str) -> None:
    response = cls()
    setattr(response.partial_success, field, 3)
    response.partial_success.error_message = "three dropped"
    data = json_format.MessageToDict(response)
    assert data == {"partialSuccess": {json_name: "3", "errorMessage": "three dropped"}}
    assert decode_export_response_json(json.dumps(data).encode()) == PartialSuccess(3, "three dropped")


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        (b"", PartialSuccess()),
        (b"  \n", PartialSuccess()),
        (b"{}", PartialSuccess()),
        (b'{"partialSuccess": {}}', PartialSuccess()),
        (b'{"partialSuccess": null}', PartialSuccess()),
        (b'{"partialSuccess": {"rejectedSpans": 4}}', PartialSuccess(4)),
        (b'{"partialSuccess": {"rejectedSpans": 4.0}}', PartialSuccess(4)),
        (b'{"partialSuccess": {"rejectedDataPoints": "12"}}', PartialSuccess(12)),
        (b'{"partialSuccess": {"rejectedLogRecords": "-1", "errorMessage": "x"}}', PartialSuccess(-1, "x")),
        (b'{"partial_success": {"rejected_spans": "2", "error_message": "y"}}', PartialSuccess(2, "y")),
        (b'{"partialSuccess": {"rejected_log_records": 9}}', PartialSuccess(9)),
        (b'{"partialSuccess": {"errorMessage": "warning only"}}', PartialSuccess(0, "warning only")),
        (b'{"partialSuccess": {"rejectedSpans": "1"}, "futureField": [1, 2]}', PartialSuccess(1)),
        ('{"partialSuccess": {"errorMessage": "caf\u00e9"}}'.encode(), PartialSuccess(0, "caf\u00e9")),
    ],
)
def test_decode_export_response_json(body: bytes, expected: PartialSuccess) -> None:
    assert decode_export_response_json(body) == expected


@pytest.mark.parametrize(
    "body",
    [
        b"not json",
        b"[]",
        b"3",
        b'"text"',
        b"\xff\xfe\x00",
        b'{"partialSuccess": 3}',
        b'{"partialSuccess": {"rejectedSpans": "many"}}',
        b'{"partialSuccess": {"rejectedSpans": true}}',
        b'{"partialSuccess": {"rejectedSpans": 1.5}}',
        b'{"partialSuccess": {"rejectedSpans": "99999999999999999999"}}',
        b'{"partialSuccess": {"rejectedSpans": [1]}}',
        b'{"partialSuccess": {"errorMessage": 5}}',
        b"[" * 100_000,
        b'{"a": ' * 100_000,
    ],
)
def test_decode_export_response_json_malformed(body: bytes) -> None:
    with pytest.raises(ResponseError, match="malformed JSON"):
        decode_export_response_json(body)


# -- google.rpc.Status ---------------------------------------------------------------------------------------


def test_decode_rpc_status_without_details() -> None:
    assert decode_rpc_status(_status(3, "bad span")) == RpcStatus(3, "bad span", None)
    assert decode_rpc_status(b"") == RpcStatus(0, "", None)


def test_decode_rpc_status_retry_info_among_other_details() -> None:
    error_info = any_pb2.Any()
    error_info.Pack(error_details_pb2.ErrorInfo(reason="QUOTA", domain="example.com"))
    data = _status(8, "slow down", error_info, _retry_info_any(2, 500_000_000))
    assert decode_rpc_status(data) == RpcStatus(8, "slow down", 2.5)


@given(
    code=st.integers(min_value=-(2**31), max_value=2**31 - 1),
    seconds=st.integers(0, 10**9),
    nanos=st.integers(0, 999_999_999),
)
def test_decode_rpc_status_official(code: int, seconds: int, nanos: int) -> None:
    status = decode_rpc_status(_status(code, "m", _retry_info_any(seconds, nanos)))
    assert status.code == code
    assert status.retry_delay == pytest.approx(seconds + nanos / 1e9)


@pytest.mark.parametrize(
    ("detail", "expected"),
    [
        (_retry_info_any(), 0.0),  # RetryInfo present, no delay: retryable, no server delay
        (_retry_info_any(-5), 0.0),  # negative delays clamp to zero
        (any_pb2.Any(type_url="google.rpc.RetryInfo", value=b""), 0.0),  # type_url without a host
        (any_pb2.Any(type_url="type.googleapis.com/google.rpc.RetryInfoX", value=b""), None),
        (any_pb2.Any(type_url="type.googleapis.com/google.rpc.DebugInfo", value=b"\x0a\x02\x08\x05"), None),
    ],
)
def test_decode_rpc_status_retry_info_edges(detail: any_pb2.Any, expected: float | None) -> None:
    assert decode_rpc_status(_status(14, "", detail)).retry_delay == expected


def test_decode_rpc_status_malformed_retry_info() -> None:
    detail = any_pb2.Any(type_url="type.googleapis.com/google.rpc.RetryInfo", value=b"\x0a\x05\x08")
    with pytest.raises(ResponseError):
        decode_rpc_status(_status(14, "", detail))


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        (
            json_format.MessageToJson(
                status_pb2.Status.FromString(_status(8, "busy", _retry_info_any(1, 250_000_000)))
            ),
            RpcStatus(8, "busy", 1.25),
        ),
        ('{"code": 3, "message": "bad"}', RpcStatus(3, "bad", None)),
        (
            '{"error": {"code": 429, "message": "quota", "status": "RESOURCE_EXHAUSTED"}}',
            RpcStatus(429, "quota", None),
        ),
        ('{"code": "x", "message": 7}', RpcStatus(0, "", None)),
        ("{}", RpcStatus(0, "", None)),
        ('{"details": [1, {"@type": "type.googleapis.com/google.rpc.RetryInfo"}]}', RpcStatus(0, "", 0.0)),
        ('{"details": [{"@type": "x/google.rpc.RetryInfo", "retryDelay": "3s"}]}', RpcStatus(0, "", 3.0)),
        ('{"details": [{"@type": "x/google.rpc.RetryInfo", "retryDelay": "soon"}]}', RpcStatus(0, "", 0.0)),
        ('{"details": "nope"}', RpcStatus(0, "", None)),
    ],
)
def test_decode_rpc_status_json(body: str, expected: RpcStatus) -> None:
    assert decode_rpc_status_json(body.encode()) == expected


@pytest.mark.parametrize("body", [b"", b"<html>", b"[1]", b"\xff"])
def test_decode_rpc_status_json_malformed(body: bytes) -> None:
    with pytest.raises(ResponseError):
        decode_rpc_status_json(body)


# -- Retry-After ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("0", 0.0),
        ("120", 120.0),
        (" 7 ", 7.0),
        ("1.5", 1.5),
        ("3.", 3.0),
        (email.utils.formatdate(NOW + 30, usegmt=True), 30.0),
        (email.utils.formatdate(NOW + 90), 90.0),  # numeric zone "-0000"
        (email.utils.formatdate(NOW - 3600, usegmt=True), 0.0),  # in the past: retry now
        ("Wed, 21 Oct 2015 07:28:00 GMT", 0.0),
    ],
)
def test_parse_retry_after(value: str, expected: float) -> None:
    assert parse_retry_after(value, NOW) == pytest.approx(expected)


@pytest.mark.parametrize(
    "value",
    ["", "  ", "soon", "-1", "+5", "1e3", "inf", "nan", "0x10", "5 seconds", "9" * 400, "Wed, 99 Foo"],
)
def test_parse_retry_after_garbage(value: str) -> None:
    assert parse_retry_after(value, NOW) is None


@given(st.text())
def test_parse_retry_after_never_raises(value: str) -> None:
    result = parse_retry_after(value, NOW)
    assert result is None or result >= 0.0


# -- classification ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("status", range(100, 600))
def test_classify_every_http_status(status: int) -> None:
    error = classify_http_response(status, retry_after="4", body=b"", content_type="", now=NOW)
    assert error.status == status
    assert error.message.startswith(f"HTTP {status}")
    assert error.message.endswith("from collector")
    if status in {429, 502, 503, 504}:
        assert type(error) is ServerBusyError
        assert error.retryable
        assert error.retry_after == 4.0
    else:
        assert type(error) is RejectedError
        assert not error.retryable


def test_retry_tables_exact() -> None:
    assert frozenset({429, 502, 503, 504}) == RETRYABLE_HTTP_STATUSES
    assert {GRPC_CODE_NAMES[code] for code in RETRYABLE_GRPC_CODES} == {
        "CANCELLED",
        "DEADLINE_EXCEEDED",
        "ABORTED",
        "OUT_OF_RANGE",
        "UNAVAILABLE",
        "DATA_LOSS",
    }
    import grpc

    assert {code.value[0]: code.name for code in grpc.StatusCode} == GRPC_CODE_NAMES


def test_classify_http_message_from_protobuf_status() -> None:
    error = classify_http_response(
        400,
        retry_after=None,
        body=_status(3, "span 7 has no name"),
        content_type="application/x-protobuf",
        now=NOW,
    )
    assert type(error) is RejectedError
    assert error.message == "HTTP 400 Bad Request from collector: span 7 has no name"
    assert str(error) == error.message


def test_classify_http_message_from_json_status() -> None:
    body = b'{"code": 14, "message": "try later"}'
    error = classify_http_response(
        503, retry_after=None, body=body, content_type="application/json; charset=utf-8", now=NOW
    )
    assert isinstance(error, ServerBusyError)
    assert error.message == "HTTP 503 Service Unavailable from collector: try later"
    assert error.retry_after is None


@pytest.mark.parametrize(
    ("body", "content_type"),
    [
        (b"<html><body>502 Bad Gateway</body></html>", "text/html"),
        (b"upstream connect error", "text/plain"),
        (b"\x00\x01\x02\xff binary", "application/octet-stream"),
        (b"\xff\xff\xff", "application/x-protobuf"),  # does not decode: not echoed
        (b"not json at all", "application/json"),
        (_status(3, "hidden"), ""),  # no content type: not guessed
    ],
)
def test_classify_http_never_echoes_undecodable_bodies(body: bytes, content_type: str) -> None:
    error = classify_http_response(502, retry_after=None, body=body, content_type=content_type, now=NOW)
    assert error.message == "HTTP 502 Bad Gateway from collector"


def test_classify_http_unknown_status_has_no_phrase() -> None:
    error = classify_http_response(599, retry_after=None, body=b"", content_type="", now=NOW)
    assert error.message == "HTTP 599 from collector"


def test_classify_http_truncates_and_cleans_server_text() -> None:
    text = "line one\nline two\x00\x1b[31m" + "x" * 1000
    error = classify_http_response(
        400, retry_after=None, body=_status(3, text), content_type="application/x-protobuf", now=NOW
    )
    detail = error.message.removeprefix("HTTP 400 Bad Request from collector: ")
    assert detail.startswith("line one line two\ufffd\ufffd[31m")
    assert detail.endswith("x...")
    assert len(detail) == MAX_ERROR_TEXT + 3
    assert detail.isprintable()


@pytest.mark.parametrize(
    ("retry_after", "body", "expected"),
    [
        ("10", b"", 10.0),
        (email.utils.formatdate(NOW + 5, usegmt=True), b"", 5.0),
        ("garbage", b"", None),
        (None, b"", None),
        (None, _status(8, "", _retry_info_any(3)), 3.0),  # no header: the body's RetryInfo
        ("1", _status(8, "", _retry_info_any(3)), 1.0),  # the header wins
    ],
)
def test_classify_http_retry_after(retry_after: str | None, body: bytes, expected: float | None) -> None:
    error = classify_http_response(
        429, retry_after=retry_after, body=body, content_type="application/x-protobuf", now=NOW
    )
    assert isinstance(error, ServerBusyError)
    assert error.retry_after == expected


@pytest.mark.parametrize("code", range(17))
@pytest.mark.parametrize("with_retry_info", [False, True])
def test_classify_every_grpc_code(code: int, with_retry_info: bool) -> None:
    details = _status(code, "details", _retry_info_any(2)) if with_retry_info else None
    error = classify_grpc_status(code, message="went wrong", details=details)
    name = GRPC_CODE_NAMES[code]
    assert error.status == name
    assert error.message == f"gRPC {name} from collector: went wrong"
    retryable = name in {
        "CANCELLED",
        "DEADLINE_EXCEEDED",
        "ABORTED",
        "OUT_OF_RANGE",
        "UNAVAILABLE",
        "DATA_LOSS",
    }
    if name == "RESOURCE_EXHAUSTED":
        retryable = with_retry_info
    if retryable:
        assert type(error) is ServerBusyError
        assert error.retry_after == (2.0 if with_retry_info else None)
    else:
        assert type(error) is RejectedError


def test_classify_grpc_details_edges() -> None:
    # RetryInfo present without a delay still makes RESOURCE_EXHAUSTED retryable
    error = classify_grpc_status(8, message="", details=_status(8, "", _retry_info_any()))
    assert isinstance(error, ServerBusyError)
    assert error.retry_after == 0.0
    assert error.message == "gRPC RESOURCE_EXHAUSTED from collector"
    # undecodable details are ignored, not raised
    error = classify_grpc_status(8, message="quota", details=b"\xff\xff")
    assert type(error) is RejectedError
    error = classify_grpc_status(14, message="down", details=b"\x0b")
    assert isinstance(error, ServerBusyError)
    assert error.retry_after is None
    # a code outside the table keeps its number
    error = classify_grpc_status(42, message="", details=None)
    assert type(error) is RejectedError
    assert error.status == 42
    assert error.message == "gRPC 42 from collector"


def test_classify_grpc_message_cleaned() -> None:
    error = classify_grpc_status(3, message="a\r\nb" + "y" * 500, details=b"")
    assert error.message.startswith("gRPC INVALID_ARGUMENT from collector: a  b")
    assert len(error.message) <= len("gRPC INVALID_ARGUMENT from collector: ") + MAX_ERROR_TEXT + 3


# -- fuzzing: arbitrary bytes give a result or ResponseError, nothing else -----------------------------------

DECODERS = [
    lambda data: list(iter_fields(data)),
    lambda data: list(iter_fields(memoryview(data))),
    decode_export_response,
    decode_export_response_json,
    decode_rpc_status,
    decode_rpc_status_json,
]


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=256))
def test_decoders_on_arbitrary_bytes(data: bytes) -> None:
    for decode in DECODERS:
        with contextlib.suppress(ResponseError):
            decode(data)


def _protobuf_like() -> st.SearchStrategy[bytes]:
    """Mostly well-formed field sequences, nested, with random damage: reaches deeper than random bytes."""
    leaf = st.one_of(
        st.builds(lambda n, v: _varint(n << 3) + _varint(v), st.integers(1, 4), st.integers(0, 2**64 - 1)),
        st.builds(lambda n, b: _len_field(n, b), st.integers(1, 4), st.binary(max_size=16)),
        st.binary(max_size=4),
    )
    return st.recursive(
        leaf,
        lambda inner: st.builds(lambda n, parts: _len_field(n, b"".join(parts)), st.integers(1, 3), st.lists(inner)),
        max_leaves=12,
    )


@given(st.lists(_protobuf_like(), max_size=4).map(b"".join))
def test_decoders_on_protobuf_like_bytes(data: bytes) -> None:
    for decode in DECODERS:
        with contextlib.suppress(ResponseError):
            decode(data)


@given(
    status=st.integers(0, 1000),
    retry_after=st.none() | st.text(max_size=40),
    body=st.binary(max_size=128),
    content_type=st.sampled_from(["", "application/json", "application/x-protobuf", "text/html"]),
    code=st.integers(-5, 40),
    message=st.text(max_size=300),
)
def test_classifiers_never_raise(
    status: int, retry_after: str | None, body: bytes, content_type: str, code: int, message: str
) -> None:
    http_error = classify_http_response(status, retry_after=retry_after, body=body, content_type=content_type, now=NOW)
    assert isinstance(http_error, ServerBusyError | RejectedError)
    grpc_error = classify_grpc_status(code, message=message, details=body)
    assert isinstance(grpc_error, ServerBusyError | RejectedError)
    assert grpc_error.message.isprintable()
    assert http_error.message.isprintable()


def test_http_phrases_match_stdlib() -> None:
    error = classify_http_response(429, retry_after=None, body=b"", content_type="", now=NOW)
    assert error.message == f"HTTP 429 {http.HTTPStatus(429).phrase} from collector"
