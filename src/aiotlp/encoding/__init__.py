"""Sans-IO OTLP codecs: model objects to request bytes, and collector responses to results.

Requests (pure Python, no ``google.protobuf`` at run time):

- :func:`encode_traces`, :func:`encode_metrics`, :func:`encode_logs`: ``Export*ServiceRequest`` as protobuf,
  byte-for-byte what the official deterministic serializer writes for the same message;
- :func:`encode_traces_json`, :func:`encode_metrics_json`, :func:`encode_logs_json`: the same request as
  OTLP/JSON (hex ids, integer enums, 64-bit integers as strings), UTF-8;
- :func:`encode` picks one of the six by signal and format; :func:`count_items` counts what a batch holds in
  the unit the OTLP spec counts (spans, log records, metric data points).

The protobuf hot paths have an optional compiled twin (``_speedups``, a C extension built when a compiler is
present), chosen in :mod:`aiotlp.encoding._compat` (``AIOTLP_NO_EXTENSIONS=1`` forces pure Python); both write
the same bytes.

Encode once per batch: a retry re-sends the same bytes. An empty batch encodes to ``b""`` (protobuf) or
``b"{}"`` (JSON); the exporters never send one. Strings are sent as valid UTF-8: a lone surrogate code point
becomes U+FFFD.

Values that cannot be sent as they are (a collector refuses a whole request holding one) are never sent, and
never cost the item; the same decision in every encoder (protobuf pure and compiled, byte for byte; JSON; the
SDK drop-in's ``aiotlp.sdk._encode``):

- an attribute whose value is, or holds at any depth (a list element, a mapping value), an int outside
  ``[-2**63, 2**63 - 1]`` (``AnyValue.int_value`` is an int64; a uint64 id does not fit), or lists and mappings
  nested deeper than ``MAX_NESTING_DEPTH`` (24), is left out and counted in the ``dropped_attributes_count``
  of the message that owns it (span, event, link, log record, resource, scope). Data points, exemplars and a
  metric's metadata have no such count: the attribute is left out uncounted;
- a log body that is or holds such a value is replaced by a string saying why, ``BODY_INT_OUT_OF_RANGE`` or
  ``BODY_TOO_DEEP`` (``aiotlp.encoding._protobuf``; the first reason met); the record is kept;
- a Sum or Gauge int value (and an exemplar's) outside int64 is sent as ``as_double`` (the point is kept, with
  a double's precision; beyond the double range, an infinity of its sign);
- histogram counts are uint64: every value in ``[0, 2**64 - 1]`` is sent; one outside raises ``EncodeError``.

Anything else that cannot be encoded (an attribute key that is not a ``str``, a value of no attribute type)
raises :class:`~aiotlp.EncodeError`; the exporter leaves out just those items and counts them as ``invalid``
(``ExportResult.invalid``), never ``too_large``. ``-2**63`` and ``2**63 - 1`` are sent as ints. The check costs
nothing for the ints that fit: the protobuf writers check only past the one- and two-byte varint table (and the
compiled one reads every int with ``PyLong_AsLongLongAndOverflow`` anyway); JSON compares once per int.

Responses: :func:`decode_export_response` / :func:`decode_export_response_json` read ``partial_success``;
:func:`decode_rpc_status` reads a ``google.rpc.Status`` (with ``RetryInfo``); :func:`classify_http_response`
and :func:`classify_grpc_status` turn a failed attempt into a retryable or permanent error;
:func:`parse_retry_after` reads an HTTP ``Retry-After`` header.

Live spans: :class:`SpanCore` holds one span's state and writes its protobuf bytes (``aiotlp.sdk.TracerProvider``
builds its spans on it; see :mod:`aiotlp.encoding._spancore`): the compiled one when the extension has it, else
the pure-Python twin, chosen in :mod:`aiotlp.encoding._compat`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from aiotlp.model import Signal

from ._compat import SpanCore
from ._json import encode_logs_json, encode_metrics_json, encode_traces_json
from ._protobuf import encode_logs, encode_metrics, encode_traces
from ._response import (
    GRPC_CODE_FOR_HTTP_STATUS,
    PartialSuccess,
    RpcStatus,
    classify_grpc_status,
    classify_http_response,
    decode_export_response,
    decode_export_response_json,
    decode_rpc_status,
    parse_retry_after,
)

__all__ = [
    "GRPC_CODE_FOR_HTTP_STATUS",
    "PartialSuccess",
    "RpcStatus",
    "SpanCore",
    "classify_grpc_status",
    "classify_http_response",
    "count_items",
    "decode_export_response",
    "decode_export_response_json",
    "decode_rpc_status",
    "encode",
    "encode_logs",
    "encode_logs_json",
    "encode_metrics",
    "encode_metrics_json",
    "encode_traces",
    "encode_traces_json",
    "parse_retry_after",
]

_ENCODERS: dict[tuple[Signal, bool], Callable[[Sequence[Any]], bytes]] = {
    (Signal.TRACES, False): encode_traces,
    (Signal.METRICS, False): encode_metrics,
    (Signal.LOGS, False): encode_logs,
    (Signal.TRACES, True): encode_traces_json,
    (Signal.METRICS, True): encode_metrics_json,
    (Signal.LOGS, True): encode_logs_json,
}


def encode(signal: Signal, items: Sequence[Any], *, json: bool) -> bytes:
    """Encode a batch of ``signal`` items (Spans, Metrics or LogRecords) as protobuf, or as OTLP/JSON."""
    return _ENCODERS[signal, json](items)


def count_items(signal: Signal, items: Sequence[Any]) -> int:
    """How many items a batch holds, as OTLP counts them: spans, log records, or metric *data points*."""
    if signal is Signal.METRICS:
        return sum(metric.data_point_count for metric in items)
    return len(items)
