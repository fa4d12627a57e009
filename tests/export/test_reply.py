"""The export step's reader of a collector's reply (export/_reply.py): one table, the rules in the order they apply."""

from __future__ import annotations

import pytest
from google.protobuf import any_pb2, duration_pb2
from google.rpc import error_details_pb2, status_pb2  # type: ignore[import-untyped]

from aiotlp import RejectedError, ResponseError, ServerBusyError
from aiotlp.encoding import PartialSuccess
from aiotlp.export import read_reply, reply_error
from aiotlp.transport import Reply

PROTOBUF = "application/x-protobuf"
JSON = "application/json"
GRPC = "application/grpc"
NOW = 1_700_000_000.0

PARTIAL = b"\x0a\x07\x08\x03\x12\x03old"  # partial_success {rejected: 3, error_message: "old"}
PARTIAL_JSON = b'{"partialSuccess": {"rejectedSpans": "3", "errorMessage": "old"}}'
# google.rpc.Status {code: 8, message: "slow", details: [Any(RetryInfo {retry_delay: 2.5s})]}, by the reference
_DELAY = duration_pb2.Duration(seconds=2, nanos=500_000_000)
_ANY = any_pb2.Any()
_ANY.Pack(error_details_pb2.RetryInfo(retry_delay=_DELAY))
STATUS_WITH_RETRY = status_pb2.Status(code=8, message="slow", details=[_ANY]).SerializeToString()

SUCCESSES = [
    (PROTOBUF, Reply(200), PartialSuccess()),
    (PROTOBUF, Reply(200, PARTIAL, content_type=PROTOBUF), PartialSuccess(3, "old")),
    (PROTOBUF, Reply(204, PARTIAL), PartialSuccess(3, "old")),  # any 2xx
    (PROTOBUF, Reply(200, PARTIAL_JSON, content_type="application/json"), PartialSuccess(3, "old")),  # by its type
    (JSON, Reply(200, PARTIAL_JSON), PartialSuccess(3, "old")),  # no type: the request's format
    (JSON, Reply(200, PARTIAL_JSON, content_type="Application/JSON; charset=utf-8"), PartialSuccess(3, "old")),
    (JSON, Reply(200, PARTIAL, content_type="application/x-protobuf"), PartialSuccess(3, "old")),
    (JSON, Reply(200, b"{}", content_type=JSON), PartialSuccess()),
    (GRPC, Reply(200, content_type=GRPC, grpc_status=0), PartialSuccess()),
    (GRPC, Reply(200, PARTIAL, content_type=GRPC, grpc_status=0), PartialSuccess(3, "old")),
]


@pytest.mark.parametrize(("request_type", "reply", "expected"), SUCCESSES)
def test_successes(request_type: str, reply: Reply, expected: PartialSuccess) -> None:
    assert reply_error(reply, request_type, now=NOW) is None
    assert read_reply(reply, request_type, now=NOW) == expected


FAILURES = [
    # OTLP/HTTP: the spec's table; Retry-After (seconds or HTTP-date) or the body's RetryInfo
    (PROTOBUF, Reply(503), ServerBusyError, 503, None, "HTTP 503 Service Unavailable from collector"),
    (PROTOBUF, Reply(429, retry_after="4"), ServerBusyError, 429, 4.0, "HTTP 429"),
    (JSON, Reply(502, retry_after="Tue, 14 Nov 2023 22:13:30 GMT"), ServerBusyError, 502, 10.0, "HTTP 502"),
    (PROTOBUF, Reply(504, STATUS_WITH_RETRY, content_type=PROTOBUF), ServerBusyError, 504, 2.5, "from collector: slow"),
    (PROTOBUF, Reply(400, b"\x12\x03bad", content_type=PROTOBUF), RejectedError, 400, None, "HTTP 400 Bad Request"),
    (PROTOBUF, Reply(401), RejectedError, 401, None, "HTTP 401 Unauthorized from collector"),
    (PROTOBUF, Reply(302), RejectedError, 302, None, "HTTP 302"),  # redirects are never followed
    (JSON, Reply(500, b"<html>oops</html>", content_type="text/html"), RejectedError, 500, None, "HTTP 500"),
    # OTLP/gRPC: the grpc-status of the trailers
    (
        GRPC,
        Reply(200, content_type=GRPC, grpc_status=14, grpc_message="down"),
        ServerBusyError,
        "UNAVAILABLE",
        None,
        "gRPC UNAVAILABLE from collector: down",
    ),
    (
        GRPC,
        Reply(200, content_type=GRPC, grpc_status=8),
        RejectedError,
        "RESOURCE_EXHAUSTED",
        None,
        "RESOURCE_EXHAUSTED",
    ),
    (
        GRPC,
        Reply(200, content_type=GRPC, grpc_status=8, grpc_details=STATUS_WITH_RETRY),
        ServerBusyError,
        "RESOURCE_EXHAUSTED",
        2.5,
        "RESOURCE_EXHAUSTED",
    ),
    (
        GRPC,
        Reply(200, content_type=GRPC, grpc_status=3, grpc_message="bad"),
        RejectedError,
        "INVALID_ARGUMENT",
        None,
        "INVALID_ARGUMENT from collector: bad",
    ),
    (GRPC, Reply(200, content_type=GRPC, grpc_status=42), RejectedError, 42, None, "gRPC 42"),
    # ... and what gRPC makes of an answer that is not gRPC
    (
        GRPC,
        Reply(503, content_type="text/plain"),
        ServerBusyError,
        "UNAVAILABLE",
        None,
        "HTTP 503 (not a gRPC response)",
    ),
    (GRPC, Reply(404), RejectedError, "UNIMPLEMENTED", None, "HTTP 404 (not a gRPC response)"),
    (
        GRPC,
        Reply(404, content_type="text/plain"),
        RejectedError,
        "UNIMPLEMENTED",
        None,
        "OTLP/HTTP port: use port 4317",
    ),
    (GRPC, Reply(400), RejectedError, "INTERNAL", None, "HTTP 400"),
    (GRPC, Reply(418), RejectedError, "UNKNOWN", None, "HTTP 418"),
    (GRPC, Reply(0), RejectedError, "UNKNOWN", None, "no HTTP status"),
    (GRPC, Reply(200, content_type="text/html"), RejectedError, "UNKNOWN", None, "not a gRPC response (content-type)"),
    (GRPC, Reply(200, content_type="application/grpc+proto"), RejectedError, "INTERNAL", None, "without a grpc-status"),
]


@pytest.mark.parametrize(("request_type", "reply", "kind", "status", "retry_after", "text"), FAILURES)
def test_failures(
    request_type: str, reply: Reply, kind: type, status: int | str, retry_after: float | None, text: str
) -> None:
    error = reply_error(reply, request_type, now=NOW)
    assert type(error) is kind
    assert error.status == status
    assert getattr(error, "retry_after", None) == retry_after
    assert text in error.message
    with pytest.raises(kind) as raised:
        read_reply(reply, request_type, now=NOW)
    assert raised.value.message == error.message


def test_only_a_404_that_is_not_grpc_points_at_the_port() -> None:
    advice = "it looks like an OTLP/HTTP port"
    assert advice in reply_error(Reply(404, content_type="text/html"), GRPC).message  # type: ignore[union-attr]
    assert advice in reply_error(Reply(404), GRPC).message  # type: ignore[union-attr]
    assert advice not in reply_error(Reply(404, content_type=GRPC), GRPC).message  # type: ignore[union-attr]
    assert advice not in reply_error(Reply(503, content_type="text/html"), GRPC).message  # type: ignore[union-attr]
    assert advice not in reply_error(Reply(404), PROTOBUF).message  # type: ignore[union-attr]


@pytest.mark.parametrize(
    ("request_type", "reply"),
    [(JSON, Reply(200, b"[1, 2]", content_type=JSON)), (PROTOBUF, Reply(200, b"{not json", content_type=JSON))],
)
def test_an_unreadable_success_body_is_a_response_error(request_type: str, reply: Reply) -> None:
    assert reply_error(reply, request_type) is None  # the collector took it...
    with pytest.raises(ResponseError, match="malformed JSON"):  # ...but what it said cannot be read
        read_reply(reply, request_type)
