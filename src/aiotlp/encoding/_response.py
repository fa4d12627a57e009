"""Reading collector responses, and classifying failures as retryable or permanent (sans-IO).

Success bodies: ``Export{Trace,Metrics,Logs}ServiceResponse`` in protobuf or OTLP/JSON, whose only field
is ``partial_success``. Failure bodies: a ``google.rpc.Status`` (the OTLP/HTTP error body, and the gRPC
``grpc-status-details-bin`` trailer), which may carry a ``google.rpc.RetryInfo`` with the delay the server
asks for.

The retry tables follow the OTLP specification (``specification/protocol/exporter.md``):

- HTTP: 429, 502, 503 and 504 are retryable (:data:`RETRYABLE_HTTP_STATUSES`); every other status is final.
- gRPC: CANCELLED, DEADLINE_EXCEEDED, ABORTED, OUT_OF_RANGE, UNAVAILABLE and DATA_LOSS are retryable
  (:data:`RETRYABLE_GRPC_CODES`); RESOURCE_EXHAUSTED only when the status carries RetryInfo; the rest are
  final.

Nothing here imports grpc or google.protobuf: gRPC codes are plain ints (:data:`GRPC_CODE_NAMES`).
"""

from __future__ import annotations

import datetime
import email.utils
import http
import json
import math
import re
from dataclasses import dataclass
from typing import Any, cast

from aiotlp._exceptions import ExportError, RejectedError, ResponseError, ServerBusyError
from aiotlp._validate import is_int
from aiotlp.encoding._reader import WIRE_LEN, WIRE_VARINT, Buffer, iter_fields

__all__ = [
    "GRPC_CODE_FOR_HTTP_STATUS",
    "GRPC_CODE_NAMES",
    "GRPC_RESOURCE_EXHAUSTED",
    "MAX_ERROR_TEXT",
    "RETRYABLE_GRPC_CODES",
    "RETRYABLE_HTTP_STATUSES",
    "PartialSuccess",
    "RpcStatus",
    "classify_grpc_status",
    "classify_http_response",
    "decode_export_response",
    "decode_export_response_json",
    "decode_rpc_status",
    "decode_rpc_status_json",
    "parse_retry_after",
]

RETRYABLE_HTTP_STATUSES = frozenset({429, 502, 503, 504})
"""HTTP statuses worth retrying; every other non-2xx status is final."""

GRPC_CODE_NAMES: dict[int, str] = {
    0: "OK",
    1: "CANCELLED",
    2: "UNKNOWN",
    3: "INVALID_ARGUMENT",
    4: "DEADLINE_EXCEEDED",
    5: "NOT_FOUND",
    6: "ALREADY_EXISTS",
    7: "PERMISSION_DENIED",
    8: "RESOURCE_EXHAUSTED",
    9: "FAILED_PRECONDITION",
    10: "ABORTED",
    11: "OUT_OF_RANGE",
    12: "UNIMPLEMENTED",
    13: "INTERNAL",
    14: "UNAVAILABLE",
    15: "DATA_LOSS",
    16: "UNAUTHENTICATED",
}
"""gRPC status code -> its canonical name (the ``status`` of a gRPC :class:`ExportError`)."""

GRPC_CODE_FOR_HTTP_STATUS: dict[int, int] = {
    400: 13,  # INTERNAL
    401: 16,  # UNAUTHENTICATED
    403: 7,  # PERMISSION_DENIED
    404: 12,  # UNIMPLEMENTED
    429: 14,  # UNAVAILABLE
    502: 14,
    503: 14,
    504: 14,
}
"""gRPC's table for a call answered with an HTTP status other than 200 (the peer did not speak gRPC for it);
every status not listed means UNKNOWN (gRPC's ``doc/http-grpc-status-mapping.md``)."""

RETRYABLE_GRPC_CODES = frozenset({1, 4, 10, 11, 14, 15})
"""CANCELLED, DEADLINE_EXCEEDED, ABORTED, OUT_OF_RANGE, UNAVAILABLE, DATA_LOSS: always retryable."""

GRPC_RESOURCE_EXHAUSTED = 8
"""Retryable only when the status carries ``google.rpc.RetryInfo``."""

MAX_ERROR_TEXT = 256
"""The most characters of a server's error text put into an exception message."""

_RETRY_INFO_TYPE = "google.rpc.RetryInfo"
_INT64_MIN = -(1 << 63)
_INT64_MAX = (1 << 63) - 1


@dataclass(frozen=True, slots=True)
class PartialSuccess:
    """The ``partial_success`` of an export response. ``rejected`` > 0 means items were dropped."""

    rejected: int = 0
    error_message: str = ""


@dataclass(frozen=True, slots=True)
class RpcStatus:
    """A decoded ``google.rpc.Status``.

    ``retry_delay`` is ``None`` when the status carries no ``google.rpc.RetryInfo``; otherwise its delay in
    seconds (``0.0`` when the RetryInfo has no delay, negative delays clamped to ``0.0``).
    """

    code: int
    message: str
    retry_delay: float | None


# -- protobuf ------------------------------------------------------------------------------------------------


def _int64(value: int) -> int:
    return value - (1 << 64) if value & (1 << 63) else value


def _int32(value: int) -> int:
    # protobuf keeps the low 32 bits of an int32 varint (negatives are sign-extended to 10 bytes)
    value &= 0xFFFFFFFF
    return value - (1 << 32) if value & (1 << 31) else value


def _text(value: Buffer) -> str:
    return bytes(value).decode("utf-8", "replace")


def decode_export_response(body: bytes) -> PartialSuccess:
    """Decode a protobuf ``Export*ServiceResponse``; an empty body is a full success."""
    rejected = 0
    error_message = ""
    for number, wire_type, value in iter_fields(body):
        if number != 1 or wire_type != WIRE_LEN:
            continue  # unknown field, or a wire type this field cannot have: skipped, as protobuf does
        # a repeated occurrence of a message field merges into the previous one: last scalar wins
        for inner_number, inner_type, inner in iter_fields(cast(Buffer, value)):
            if inner_number == 1 and inner_type == WIRE_VARINT:
                rejected = _int64(cast(int, inner))
            elif inner_number == 2 and inner_type == WIRE_LEN:
                error_message = _text(cast(Buffer, inner))
    return PartialSuccess(rejected=rejected, error_message=error_message)


def _decode_duration(data: Buffer) -> float:
    seconds = 0
    nanos = 0
    for number, wire_type, value in iter_fields(data):
        if number == 1 and wire_type == WIRE_VARINT:
            seconds = _int64(cast(int, value))
        elif number == 2 and wire_type == WIRE_VARINT:
            nanos = _int32(cast(int, value))
    return max(0.0, seconds + nanos / 1e9)


def _decode_retry_info(data: Buffer) -> float:
    delay = 0.0
    for number, wire_type, value in iter_fields(data):
        if number == 1 and wire_type == WIRE_LEN:
            delay = _decode_duration(cast(Buffer, value))
    return delay


def _is_retry_info(type_url: str) -> bool:
    # google.protobuf.Any: the type name is everything after the last "/"
    return type_url.rpartition("/")[2] == _RETRY_INFO_TYPE


def decode_rpc_status(data: bytes) -> RpcStatus:
    """Decode a protobuf ``google.rpc.Status``, reading the delay of a ``google.rpc.RetryInfo`` detail."""
    code = 0
    message = ""
    retry_delay: float | None = None
    for number, wire_type, value in iter_fields(data):
        if number == 1 and wire_type == WIRE_VARINT:
            code = _int32(cast(int, value))
        elif number == 2 and wire_type == WIRE_LEN:
            message = _text(cast(Buffer, value))
        elif number == 3 and wire_type == WIRE_LEN:
            type_url = ""
            payload: Buffer = b""
            for any_number, any_type, any_value in iter_fields(cast(Buffer, value)):
                if any_type != WIRE_LEN:
                    continue
                if any_number == 1:
                    type_url = _text(cast(Buffer, any_value))
                elif any_number == 2:
                    payload = cast(Buffer, any_value)
            if _is_retry_info(type_url):
                retry_delay = _decode_retry_info(payload)
    return RpcStatus(code=code, message=message, retry_delay=retry_delay)


# -- JSON ----------------------------------------------------------------------------------------------------


def _load_json_object(body: bytes | str, what: str) -> dict[str, Any]:
    try:
        data = json.loads(body)
    except (ValueError, RecursionError) as exc:  # JSONDecodeError and UnicodeDecodeError are ValueErrors
        raise ResponseError(f"malformed JSON {what}: {type(exc).__name__}") from None
    if not isinstance(data, dict):
        raise ResponseError(f"malformed JSON {what}: expected an object, got {type(data).__name__}")
    return data


def _json_int64(value: object, key: str) -> int:
    """A proto3 JSON int64: a number or a decimal string."""
    result: int | None = None
    if is_int(value):
        result = value
    elif isinstance(value, float):
        if math.isfinite(value) and value.is_integer():
            result = int(value)
    elif isinstance(value, str) and re.fullmatch(r"-?[0-9]{1,20}", value.strip()):
        result = int(value)
    if result is None or not _INT64_MIN <= result <= _INT64_MAX:
        raise ResponseError(f"malformed JSON export response: {key} is not an int64")
    return result


_REJECTED_KEYS = (
    "rejectedSpans",
    "rejectedDataPoints",
    "rejectedLogRecords",
    "rejected_spans",
    "rejected_data_points",
    "rejected_log_records",
)


def decode_export_response_json(body: bytes) -> PartialSuccess:
    """Decode an OTLP/JSON export response; an empty body or ``{}`` is a full success.

    Accepts ``partialSuccess`` (or ``partial_success``) with ``rejectedSpans`` / ``rejectedDataPoints`` /
    ``rejectedLogRecords`` (or snake_case) as a number or decimal string, and ``errorMessage``
    (``error_message``). Unknown keys are ignored.
    """
    if not body.strip():
        return PartialSuccess()
    data = _load_json_object(body, "export response")
    partial = data.get("partialSuccess", data.get("partial_success"))
    if partial is None:
        return PartialSuccess()
    if not isinstance(partial, dict):
        raise ResponseError("malformed JSON export response: partialSuccess is not an object")
    rejected = 0
    for key in _REJECTED_KEYS:
        value = partial.get(key)
        if value is not None:
            rejected = _json_int64(value, key)
            break
    message = partial.get("errorMessage", partial.get("error_message"))
    if message is None:
        message = ""
    elif not isinstance(message, str):
        raise ResponseError("malformed JSON export response: errorMessage is not a string")
    return PartialSuccess(rejected=rejected, error_message=message)


_DURATION_RE = re.compile(r"\s*(-?[0-9]{1,20}(?:\.[0-9]{0,9})?)s\s*")


def _json_retry_delay(details: object) -> float | None:
    if not isinstance(details, list):
        return None
    for detail in details:
        if not isinstance(detail, dict):
            continue
        type_url = detail.get("@type")
        if not isinstance(type_url, str) or not _is_retry_info(type_url):
            continue
        delay = detail.get("retryDelay", detail.get("retry_delay"))
        if isinstance(delay, str) and (match := _DURATION_RE.fullmatch(delay)):
            return max(0.0, float(match.group(1)))
        return 0.0
    return None


def decode_rpc_status_json(data: bytes) -> RpcStatus:
    """Decode a JSON ``google.rpc.Status``, best effort.

    ``{"code": 8, "message": "...", "details": [{"@type": ".../google.rpc.RetryInfo", "retryDelay": "2s"}]}``;
    the Google API style wrapper ``{"error": {...}}`` is unwrapped. Missing or mistyped fields take their
    defaults; only bytes that are not a JSON object raise :class:`ResponseError`.
    """
    obj = _load_json_object(data, "status")
    inner = obj.get("error")
    if isinstance(inner, dict):
        obj = inner
    code = obj.get("code")
    message = obj.get("message")
    return RpcStatus(
        code=code if is_int(code) else 0,
        message=message if isinstance(message, str) else "",
        retry_delay=_json_retry_delay(obj.get("details")),
    )


# -- classification ------------------------------------------------------------------------------------------


def parse_retry_after(value: str, now: float) -> float | None:
    """Parse an HTTP ``Retry-After`` value into a delay in seconds from ``now`` (a unix timestamp).

    Delta-seconds (a non-negative integer; decimals accepted) or an HTTP-date (a past date gives ``0.0``).
    Anything else gives ``None``.
    """
    text = value.strip()
    if not text:
        return None
    if re.fullmatch(r"[0-9]+(?:\.[0-9]*)?", text):
        seconds = float(text)
        return seconds if math.isfinite(seconds) else None
    try:
        when = email.utils.parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    if when.tzinfo is None:  # "-0000" means UTC with no claim about local time
        when = when.replace(tzinfo=datetime.timezone.utc)
    try:
        delay = when.timestamp() - now
    except (OverflowError, ValueError, OSError):
        return None
    return max(0.0, delay)


def _clean_text(text: str) -> str:
    """Make server text safe for a log line: printable characters only, at most MAX_ERROR_TEXT of them."""
    if not text.isprintable():
        text = "".join(ch if ch.isprintable() else (" " if ch.isspace() else "\ufffd") for ch in text)
    text = text.strip()
    if len(text) > MAX_ERROR_TEXT:
        text = text[:MAX_ERROR_TEXT] + "..."
    return text


def _media_type(content_type: str) -> str:
    return content_type.partition(";")[0].strip().lower()


def _decode_error_body(body: bytes, content_type: str) -> RpcStatus | None:
    media_type = _media_type(content_type)
    try:
        if media_type in ("application/x-protobuf", "application/protobuf"):
            return decode_rpc_status(body)
        if media_type == "application/json":
            return decode_rpc_status_json(body)
    except ResponseError:
        return None
    return None


def classify_http_response(
    status: int, *, retry_after: str | None, body: bytes, content_type: str, now: float
) -> ExportError:
    """The exception for a non-2xx OTLP/HTTP response (returned, not raised).

    :class:`ServerBusyError` for :data:`RETRYABLE_HTTP_STATUSES`, with ``retry_after`` from the
    ``Retry-After`` header (else from a RetryInfo in the body); :class:`RejectedError` for every other status
    (the caller treats 2xx as success before calling this). The message quotes the ``google.rpc.Status``
    message of the body when the body decodes as one for its content type; other bodies are never quoted.
    """
    try:
        phrase = http.HTTPStatus(status).phrase
    except ValueError:
        phrase = ""
    head = f"HTTP {status} {phrase}" if phrase else f"HTTP {status}"
    rpc_status = _decode_error_body(body, content_type) if body else None
    detail = _clean_text(rpc_status.message) if rpc_status is not None else ""
    message = f"{head} from collector: {detail}" if detail else f"{head} from collector"
    if status not in RETRYABLE_HTTP_STATUSES:
        return RejectedError(message, status=status)
    delay = parse_retry_after(retry_after, now) if retry_after is not None else None
    if delay is None and rpc_status is not None:
        delay = rpc_status.retry_delay
    return ServerBusyError(message, status=status, retry_after=delay)


def classify_grpc_status(code: int, *, message: str, details: bytes | None) -> ExportError:
    """The exception for a non-OK gRPC status (returned, not raised).

    ``details`` is the ``grpc-status-details-bin`` trailer (a ``google.rpc.Status``), or ``None``; its
    RetryInfo delay becomes ``retry_after`` and makes RESOURCE_EXHAUSTED retryable. Undecodable details are
    ignored. ``status`` of the error is the code's name (``"UNAVAILABLE"``), or the number for a code outside
    0..16.
    """
    name = GRPC_CODE_NAMES.get(code)
    label: int | str = name if name is not None else code
    retry_delay: float | None = None
    if details:
        try:
            retry_delay = decode_rpc_status(details).retry_delay
        except ResponseError:
            retry_delay = None
    detail = _clean_text(message)
    head = f"gRPC {label} from collector"
    text = f"{head}: {detail}" if detail else head
    if code in RETRYABLE_GRPC_CODES or (code == GRPC_RESOURCE_EXHAUSTED and retry_delay is not None):
        return ServerBusyError(text, status=label, retry_after=retry_delay)
    return RejectedError(text, status=label)
