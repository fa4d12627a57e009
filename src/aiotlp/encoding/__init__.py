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

Building blocks, for the other encoder of this package's requests (the SDK drop-in's, :mod:`aiotlp.sdk._encode`,
which writes OpenTelemetry SDK objects with the same writers and the same rules): the protobuf writers
(:func:`write_attributes`, :func:`write_any`, :func:`lp_str` with its cache :data:`LP_CACHE`,
:func:`patch_length`, :class:`MetricWriter` with :func:`write_metric_names`), the wire primitives (:func:`varint`,
:data:`VARINT`), the JSON converters (:func:`json_any`, :func:`json_attributes`, :func:`json_float`,
:func:`json_document`), the rules' constants and errors (:data:`INT64_MIN`, ..., :class:`LeftOut`,
:func:`too_deep`, :func:`as_double`, :func:`count_error`) and the accelerator switch (:data:`speedups`,
:func:`accelerate`, :data:`ENCODE_AT_SOURCE`, see :mod:`aiotlp.encoding._compat`). :func:`write_attributes` and
:func:`write_any` are the chosen implementation (compiled or pure), kept so by :func:`accelerate`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from aiotlp.model import Signal

from ._compat import ENCODE_AT_SOURCE, SPAN_CORES, SpanCore, accelerate, set_span_warning_hook, speedups
from ._json import _any as json_any
from ._json import _attributes as json_attributes
from ._json import _finish as json_document
from ._json import _float as json_float
from ._json import encode_logs_json, encode_metrics_json, encode_traces_json
from ._protobuf import _INT64_MAX as INT64_MAX
from ._protobuf import _INT64_MIN as INT64_MIN
from ._protobuf import _LP as LP_CACHE
from ._protobuf import _UINT64_MAX as UINT64_MAX
from ._protobuf import BODY_INT_OUT_OF_RANGE, BODY_TOO_DEEP, encode_logs, encode_traces
from ._protobuf import _LeftOut as LeftOut
from ._protobuf import _lp_str as lp_str
from ._protobuf import _patch as patch_length
from ._protobuf import _too_deep as too_deep
from ._protobuf import _write_any as write_any
from ._protobuf import _write_attributes as write_attributes
from ._protobuf_metrics import MetricWriter, as_double, count_error, encode_metrics, write_metric_names
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
from ._wire import VARINT, VARINT_TABLE_SIZE, varint

__all__ = [
    "BODY_INT_OUT_OF_RANGE",
    "BODY_TOO_DEEP",
    "ENCODE_AT_SOURCE",
    "GRPC_CODE_FOR_HTTP_STATUS",
    "INT64_MAX",
    "INT64_MIN",
    "LP_CACHE",
    "SPAN_CORES",
    "UINT64_MAX",
    "VARINT",
    "VARINT_TABLE_SIZE",
    "LeftOut",
    "MetricWriter",
    "PartialSuccess",
    "RpcStatus",
    "SpanCore",
    "accelerate",
    "as_double",
    "classify_grpc_status",
    "classify_http_response",
    "count_error",
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
    "json_any",
    "json_attributes",
    "json_document",
    "json_float",
    "lp_str",
    "parse_retry_after",
    "patch_length",
    "set_span_warning_hook",
    "speedups",
    "too_deep",
    "varint",
    "write_any",
    "write_attributes",
    "write_metric_names",
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


# The package-level writers follow the accelerator switch like the modules' own names (see _compat.use).
if speedups is not None:
    accelerate(globals(), write_attributes=speedups.write_attributes, write_any=speedups.write_any)
