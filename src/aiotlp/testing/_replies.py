"""What the fake collector answers and records: scripted :class:`Reply`, :class:`ReceivedRequest`,
:class:`BadRequest`, and the protobuf/JSON codec of requests, responses and ``google.rpc.Status`` bodies."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Final, Literal

import grpc
from google.protobuf import json_format  # type: ignore[import-untyped]
from google.protobuf.any_pb2 import Any as AnyProto  # type: ignore[import-untyped]
from google.protobuf.message import DecodeError  # type: ignore[import-untyped]
from google.rpc import error_details_pb2, status_pb2  # type: ignore[import-untyped]

from aiotlp._exceptions import ConfigurationError
from aiotlp.model import Signal
from aiotlp.testing._otlp_json import (
    ExportRequest,
    message_to_otlp_json,
    otlp_json_to_message,
    request_class,
    response_class,
)

__all__ = [
    "GRPC",
    "JSON",
    "PROTOBUF",
    "BadRequest",
    "ReceivedRequest",
    "Refused",
    "Reply",
    "decode_json",
    "decode_protobuf",
    "export_response",
    "rpc_status",
    "serialize",
    "status_body",
]

PROTOBUF: Final = "application/x-protobuf"
JSON: Final = "application/json"
GRPC: Final = "application/grpc"
_REJECTED_FIELD = {
    Signal.TRACES: "rejected_spans",
    Signal.METRICS: "rejected_data_points",
    Signal.LOGS: "rejected_log_records",
}


@dataclass(frozen=True, slots=True)
class Reply:
    """One scripted answer. Each transport reads its own fields.

    - ``http_status`` (HTTP) and ``grpc_code`` (gRPC): the status. When ``grpc_code`` is ``None`` gRPC derives
      it from ``http_status``: 2xx -> OK, 429 -> RESOURCE_EXHAUSTED, 502/503/504 -> UNAVAILABLE,
      400 -> INVALID_ARGUMENT, any other -> INTERNAL. ``grpc_code`` never changes the HTTP status.
    - ``message``: the error text (``google.rpc.Status.message`` in an HTTP error body, the gRPC details).
    - ``retry_after``: the HTTP ``Retry-After`` header value, verbatim (any status).
    - ``retry_delay``: seconds of a ``google.rpc.RetryInfo``: in the ``grpc-status-details-bin`` trailer of a
      gRPC error, and in the ``google.rpc.Status`` body of an HTTP error status.
    - ``delay``: seconds to wait before answering (the request is recorded at once, before the wait).
    - ``rejected`` and ``error_message``: the ``partial_success`` of a successful response.
    - ``body``: the raw response body instead of the generated one (both transports).
    - ``body_size``: a well-formed response of exactly this many bytes, with ``http_status``: protobuf, one
      large unknown field of zeros; JSON, an object with one large unknown string member. Streamed in 64 KiB
      chunks over HTTP, never whole in memory; gRPC needs it in one piece.
    - ``gzip_bomb``: HTTP: the same well-formed body of this many bytes, sent as ``Content-Encoding: gzip``
      (about 1 KiB per MiB, built from one cached deflate block, once per size); gRPC: a response of this
      many bytes sent with gRPC gzip compression.
    - ``drop_connection``: HTTP: close the connection without a response; gRPC: abort with UNAVAILABLE.
    """

    http_status: int = 200
    grpc_code: grpc.StatusCode | None = None
    message: str = ""
    retry_after: str | None = None
    retry_delay: float | None = None
    delay: float = 0.0
    rejected: int = 0
    error_message: str = ""
    body: bytes | None = None
    body_size: int | None = None
    gzip_bomb: int | None = None
    drop_connection: bool = False

    def __post_init__(self) -> None:
        if not 100 <= self.http_status <= 599:
            raise ConfigurationError(f"http_status must be in 100..599, got {self.http_status}")
        if self.grpc_code is not None and not isinstance(self.grpc_code, grpc.StatusCode):
            raise ConfigurationError(f"grpc_code must be a grpc.StatusCode, got {self.grpc_code!r}")
        for name in ("retry_delay", "delay"):
            value = getattr(self, name)
            if value is not None and not value >= 0:
                raise ConfigurationError(f"{name} must be >= 0, got {value}")
        for name in ("body_size", "gzip_bomb"):
            value = getattr(self, name)
            if value is not None and value < 0:
                raise ConfigurationError(f"{name} must be >= 0, got {value}")
        if self.retry_after is not None and any(ch in self.retry_after for ch in "\r\n\0"):
            raise ConfigurationError("retry_after must not contain CR, LF or NUL")
        if sum(x is not None for x in (self.body, self.body_size, self.gzip_bomb)) > 1:
            raise ConfigurationError("body, body_size and gzip_bomb are exclusive: give at most one")

    @property
    def effective_grpc_code(self) -> grpc.StatusCode:
        """``grpc_code``, or the code derived from ``http_status`` (see the class docstring)."""
        if self.grpc_code is not None:
            return self.grpc_code
        status = self.http_status
        if 200 <= status <= 299:
            return grpc.StatusCode.OK
        if status == 429:
            return grpc.StatusCode.RESOURCE_EXHAUSTED
        if status in (502, 503, 504):
            return grpc.StatusCode.UNAVAILABLE
        if status == 400:
            return grpc.StatusCode.INVALID_ARGUMENT
        return grpc.StatusCode.INTERNAL


@dataclass(frozen=True, slots=True)
class ReceivedRequest:
    """One accepted export request.

    ``headers``: lowercased names; for gRPC the invocation metadata, with ``-bin`` values base64-encoded (as
    on the wire); repeated names joined with ``", "``. ``body``: the exact bytes received, after
    decompression. ``peer``: the client's address and port (``"127.0.0.1:54321"``): one connection, one peer.
    """

    signal: Signal
    transport: Literal["grpc", "http"]
    content_type: Literal["application/x-protobuf", "application/json", "application/grpc"]
    compression: Literal["gzip", "deflate", "zstd"] | None
    headers: dict[str, str]
    body: bytes
    message: ExportRequest
    peer: str = ""


@dataclass(frozen=True, slots=True)
class BadRequest:
    """A request the collector refused before any scripted reply: ``status`` is the HTTP status or gRPC code
    name it answered with, ``reason`` the error text, ``body`` the bytes as received (still compressed)."""

    transport: Literal["grpc", "http"]
    path: str
    status: int | str
    reason: str
    headers: dict[str, str]
    body: bytes


class Refused(Exception):
    """Internal: a request the collector refuses (HTTP status, gRPC code, reason)."""

    def __init__(self, http_status: int, grpc_code: grpc.StatusCode, reason: str) -> None:
        super().__init__(reason)
        self.http_status = http_status
        self.grpc_code = grpc_code
        self.reason = reason


def rpc_status(code: grpc.StatusCode, message: str, retry_delay: float | None) -> Any:
    status = status_pb2.Status(code=code.value[0], message=message)
    if retry_delay is not None:
        info = error_details_pb2.RetryInfo()
        info.retry_delay.FromNanoseconds(round(retry_delay * 1e9))
        packed = AnyProto()
        packed.Pack(info)
        status.details.append(packed)
    return status


def serialize(message: Any, media_type: str) -> bytes:
    if media_type == JSON:
        return json.dumps(message_to_otlp_json(message)).encode()
    data: bytes = message.SerializeToString()
    return data


def status_body(status: Any, media_type: str) -> bytes:
    if media_type == JSON:
        return json.dumps(json_format.MessageToDict(status)).encode()
    data: bytes = status.SerializeToString()
    return data


def export_response(signal: Signal, reply: Reply) -> Any:
    response = response_class(signal)()
    if reply.rejected or reply.error_message:
        setattr(response.partial_success, _REJECTED_FIELD[signal], reply.rejected)
        response.partial_success.error_message = reply.error_message
    return response


def decode_protobuf(signal: Signal, body: bytes) -> ExportRequest:
    try:
        message: ExportRequest = request_class(signal).FromString(body)
    except DecodeError as exc:
        raise Refused(400, grpc.StatusCode.INVALID_ARGUMENT, f"cannot decode {signal.value} request: {exc}") from None
    return message


def decode_json(signal: Signal, body: bytes) -> ExportRequest:
    try:
        return otlp_json_to_message(signal, body)
    except ValueError as exc:
        raise Refused(400, grpc.StatusCode.INVALID_ARGUMENT, str(exc)) from None
