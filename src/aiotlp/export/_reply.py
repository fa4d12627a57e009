"""Reading a collector's reply: a :class:`~aiotlp.transport.Reply` becomes a partial success or a classified error.

A transport returns what the collector answered, unread; this is the one place that reads it, with the sans-IO
readers of :mod:`aiotlp.encoding`. The rules, in order:

========================  ======================================================================================
request (content type)    reply
========================  ======================================================================================
OTLP/HTTP (protobuf,      2xx: the body's ``partial_success`` (OTLP/JSON when the reply's content type says
JSON)                     json, or says nothing and the request was JSON; protobuf otherwise). Any other status:
                          :func:`~aiotlp.encoding.classify_http_response` (429/502/503/504 retryable with
                          ``Retry-After`` or the body's RetryInfo; the rest final)
OTLP/gRPC                 ``:status`` not 200: gRPC's HTTP-status table (:data:`GRPC_CODE_FOR_HTTP_STATUS`),
                          "not a gRPC response" (a 404 that is not gRPC: an OTLP/HTTP port that speaks h2c,
                          said with :func:`~aiotlp.transport.port_advice`). No ``grpc-status``: UNKNOWN when
                          the content type is not gRPC, else INTERNAL. ``grpc-status`` not OK:
                          :func:`~aiotlp.encoding.classify_grpc_status` (RESOURCE_EXHAUSTED retryable only with
                          RetryInfo). OK: the message's ``partial_success``
========================  ======================================================================================
"""

from __future__ import annotations

import time

from .._exceptions import ExportError
from .._ratelimit import RateLimitedLogger
from ..encoding import (
    GRPC_CODE_FOR_HTTP_STATUS,
    PartialSuccess,
    classify_grpc_status,
    classify_http_response,
    decode_export_response,
    decode_export_response_json,
)
from ..model import Signal
from ..transport import Reply, port_advice
from ._types import ExportResult

__all__ = ["GRPC", "failed_result", "partial_result", "read_reply", "reply_error"]

GRPC = "application/grpc"
_UNKNOWN = 2
_INTERNAL = 13
_SUCCESS = PartialSuccess()


def reply_error(reply: Reply, content_type: str, *, now: float | None = None) -> ExportError | None:
    """The error ``reply`` (to a request of ``content_type``) means, or ``None`` when the collector took the
    request; ``now`` (a unix time, default the clock) dates an HTTP-date ``Retry-After``. Returned, not raised."""
    if content_type == GRPC:
        if reply.status != 200:
            what = f"HTTP {reply.status}" if reply.status > 0 else "no HTTP status"
            code = GRPC_CODE_FOR_HTTP_STATUS.get(reply.status, _UNKNOWN)
            text = f"{what} (not a gRPC response)"
            if reply.status == 404 and not reply.content_type.startswith(GRPC):
                text += f": it {port_advice('grpc')}"  # an HTTP server that speaks HTTP/2 (h2c): an OTLP/HTTP port
            return classify_grpc_status(code, message=text, details=None)
        if reply.grpc_status is None:
            if not reply.content_type.startswith(GRPC):
                return classify_grpc_status(_UNKNOWN, message="not a gRPC response (content-type)", details=None)
            return classify_grpc_status(_INTERNAL, message="the stream ended without a grpc-status", details=None)
        if reply.grpc_status != 0:
            return classify_grpc_status(reply.grpc_status, message=reply.grpc_message, details=reply.grpc_details)
        return None
    if 200 <= reply.status < 300:
        return None
    return classify_http_response(
        reply.status,
        retry_after=reply.retry_after,
        body=reply.body,
        content_type=reply.content_type,
        now=time.time() if now is None else now,
    )


def read_reply(reply: Reply, content_type: str, *, now: float | None = None) -> PartialSuccess:
    """The partial success of a successful ``reply`` to a request of ``content_type``; raises the classified
    :class:`~aiotlp.ExportError` of any other (see :func:`reply_error`), or a :class:`~aiotlp.ResponseError`
    when the success body cannot be read."""
    error = reply_error(reply, content_type, now=now)
    if error is not None:
        raise error
    body = reply.body
    if not body:
        return _SUCCESS
    if content_type != GRPC and _is_json(reply.content_type, content_type):
        return decode_export_response_json(body)
    return decode_export_response(body)


def _is_json(reply_type: str, request_type: str) -> bool:
    reply_type = reply_type.lower()
    return "json" in reply_type or (request_type == "application/json" and "protobuf" not in reply_type)


def failed_result(
    signal: Signal, items: int, error: ExportError, where: str, log: RateLimitedLogger | None
) -> ExportResult:
    """The result of a request of ``items`` to ``where`` that failed with ``error``, logged on ``log``."""
    if log is not None:
        log.log("failed to export %d %s to %s: %s", items, signal.value, where, error)
    return ExportResult(items=items, failed=items, requests=1, error=error)


_ACCEPTED: dict[int, ExportResult] = {}
"""The result of a full success of a request of n items, by n: made once (a frozen value), the common result."""


def _accepted(items: int) -> ExportResult:
    result = _ACCEPTED.get(items)
    if result is None:
        result = ExportResult(items=items, accepted=items, requests=1)
        if len(_ACCEPTED) < 4096:  # (a bounded cache: the batch sizes in use)
            _ACCEPTED[items] = result
    return result


def partial_result(signal: Signal, items: int, partial: PartialSuccess, log: RateLimitedLogger) -> ExportResult:
    """The result of a request of ``items`` that the collector took with ``partial`` success; a rejection (or a
    message) is logged on ``log``."""
    if partial is _SUCCESS or (not partial.rejected and not partial.error_message):
        return _accepted(items)  # a full success: the same result as below
    rejected = min(max(partial.rejected, 0), items)
    if rejected or partial.error_message:
        log.log(
            "collector accepted part of the %s: %d of %d rejected: %s",
            signal.value,
            rejected,
            items,
            partial.error_message or "(no message)",
        )
    return ExportResult(
        items=items, accepted=items - rejected, rejected=rejected, requests=1, error_message=partial.error_message
    )
