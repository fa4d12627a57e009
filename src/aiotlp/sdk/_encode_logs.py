"""SDK log records (``ReadableLogRecord``) as protobuf: :func:`encode_log_records`. See :mod:`._encode`."""

from __future__ import annotations

import functools
import operator
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, Final

from opentelemetry.sdk._logs import ReadableLogRecord

from aiotlp.encoding import LP_CACHE as _LP
from aiotlp.encoding import LeftOut as _LeftOut
from aiotlp.encoding import accelerate as _accelerate
from aiotlp.encoding import lp_str as _lp_str
from aiotlp.encoding import speedups as _speedups
from aiotlp.encoding import too_deep as _too_deep
from aiotlp.encoding import (
    varint,
)
from aiotlp.encoding import write_any as _write_any
from aiotlp.encoding import write_attributes as _write_attributes
from aiotlp.model import MAX_NESTING_DEPTH

from ._encode_common import (
    _BA,
    _V,
    _VN,
    _group,
    _pack_i,
    _pack_id8,
    _pack_q,
    _write_request,
)

__all__ = ["encode_log_records"]

# ------------------------------------------------------------------------------------------------------------
# Logs


_log_key: Final[Callable[[ReadableLogRecord], tuple[Any, Any]]] = operator.attrgetter(
    "resource", "instrumentation_scope"
)


_SCALARS: Final = frozenset((str, bytes, bool, int, float, type(None)))


def _coerce(value: Any, depth: int = 0) -> Any:
    """A structured log body as the official encoder reads it: mapping keys as ``str``, sequences as tuples.

    aiotlp's AnyValue writers expect ``str`` keys; a log body is not validated by the SDK, so a ``dict`` body
    may have other keys (the official encoder writes ``str(key)``). ``value`` sits inside ``depth`` lists and
    mappings: deeper than ``MAX_NESTING_DEPTH`` (a body referring to itself, too) raises _TooDeep (ints are
    checked by the writers).
    """
    if type(value) in _SCALARS or isinstance(value, (str, bytes)):
        return value
    if isinstance(value, Mapping):
        if depth >= MAX_NESTING_DEPTH:
            raise _too_deep()
        return {str(key): _coerce(item, depth + 1) for key, item in value.items()}
    if isinstance(value, Sequence):
        if depth >= MAX_NESTING_DEPTH:
            raise _too_deep()
        return tuple([_coerce(item, depth + 1) for item in value])
    return value  # a scalar subclass (IntEnum, ...), or something the writer will refuse


def _write_log_records(buf: bytearray, records: Iterable[ReadableLogRecord]) -> None:
    V = _V
    lp_get = _LP.get
    lp_str = _lp_str
    pack_q = _pack_q
    write_any = _write_any
    write_attributes = _write_attributes  # LogRecord 6 attributes (returns how many it left out)
    scalars = _SCALARS
    BA = _BA
    for readable in records:
        record: Any = readable.log_record
        buf += b"\x12\x00"  # ScopeLogs 2 log_records
        start = len(buf)
        time = record.timestamp
        if time:
            buf += b"\x09"  # LogRecord 1 time_unix_nano
            buf += pack_q(time)
        # the official encoder reads SeverityNumber's value (anything else: no severity number)
        severity = getattr(record.severity_number, "_value_", None)
        if severity:
            buf += b"\x10"  # LogRecord 2 severity_number
            buf += varint(severity)
        text = record.severity_text
        if text:
            buf += b"\x1a"  # LogRecord 3 severity_text
            buf += lp_get(text) or lp_str(text)
        # LogRecord 5 body: always, None as an empty AnyValue (the log hot path: inlined)
        body = record.body
        mark = len(buf)
        try:
            write_any(buf, b"\x2a", body if type(body) in scalars else _coerce(body))
        except _LeftOut as exc:  # nested too deep, or an int outside int64: replaced, the record kept
            del buf[mark:]
            write_any(buf, b"\x2a", exc.body)
        attributes = record.attributes
        if type(attributes) is BA:  # _write_counted_attributes, inlined
            inner = attributes._dict
            dropped = write_attributes(buf, b"\x32", inner) + attributes.dropped if inner else attributes.dropped
        else:
            dropped = write_attributes(buf, b"\x32", attributes) if attributes else 0
        if dropped:
            buf += b"\x38"  # LogRecord 7 dropped_attributes_count
            buf += varint(dropped)
        flags = record.trace_flags
        if flags:
            buf += b"\x45"  # LogRecord 8 flags (fixed32)
            buf += _pack_i(int(flags))
        trace_id = record.trace_id
        if trace_id:
            buf += b"\x4a\x10"  # LogRecord 9 trace_id, len 16
            buf += trace_id.to_bytes(16, "big")
        span_id = record.span_id
        if span_id:
            buf += b"\x52\x08"  # LogRecord 10 span_id, len 8
            buf += _pack_id8(span_id)
        time = record.observed_timestamp
        if time:
            buf += b"\x59"  # LogRecord 11 observed_time_unix_nano
            buf += pack_q(time)
        text = getattr(record, "event_name", None)  # a record of an older API has none
        if text:
            buf += b"\x62"  # LogRecord 12 event_name
            buf += lp_get(text) or lp_str(text)
        n = len(buf) - start
        if n < 0x80:
            buf[start - 1] = n
        else:
            buf[start - 1 : start] = V[n] if n < _VN else varint(n)


def _log_field(record: ReadableLogRecord) -> bytes:
    """One record's ``ScopeLogs.log_records`` field (tag, length, ``LogRecord``): :func:`_write_log_records` for a
    batch of one (encoding at the source: :class:`aiotlp.sdk._encode_source.SourceEncoder`)."""
    buf = bytearray()
    _write_log_records(buf, (record,))
    return bytes(buf)


def encode_log_records(records: Sequence[ReadableLogRecord]) -> bytes:
    """An ``ExportLogsServiceRequest`` (protobuf) of SDK log records. An empty batch gives ``b""``."""
    return _write_request(_group(records, _log_key), _write_log_records)


# The compiled writers, when the accelerator is chosen: bound in this module too (see aiotlp.encoding._compat).
# The log writers are given the SDK class _write_log_records compares the attributes' type against (the
# extension imports nothing from OpenTelemetry); an extension built before they existed: the pure ones.
_SDK_LOG_TYPES: Final = (_BA,)
if _speedups is not None:
    _log_field_compiled: Final[Callable[[ReadableLogRecord], bytes]] = (
        functools.partial(_speedups.sdk_log_field, _SDK_LOG_TYPES)
        if hasattr(_speedups, "sdk_log_field")
        else _log_field
    )
    if hasattr(_speedups, "write_sdk_logs"):
        _write_sdk_logs: Final = _speedups.write_sdk_logs

        def _write_log_records_compiled(buf: bytearray, records: Iterable[ReadableLogRecord]) -> None:
            _write_sdk_logs(buf, records, _SDK_LOG_TYPES)

        _accelerate(globals(), _write_log_records=_write_log_records_compiled)
    _accelerate(
        globals(),
        _write_attributes=_speedups.write_attributes,
        _write_any=_speedups.write_any,
        _log_field=_log_field_compiled,
    )
