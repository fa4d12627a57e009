"""SDK log records as OTLP/JSON: :func:`encode_log_records_json`, the JSON form of :func:`encode_log_records`, with
the same mapping and rules (apart from :mod:`._encode_json`, so that a span exporter does not import the logs SDK).
See :mod:`._encode`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from opentelemetry.sdk._logs import ReadableLogRecord

from aiotlp.encoding import LeftOut as _LeftOut
from aiotlp.encoding import json_any as _any

from ._encode_common import (
    _group,
    _json_request,
    _put_attributes,
)
from ._encode_logs import (
    _coerce,
    _log_key,
)

__all__ = ["encode_log_records_json"]


def _body_json(body: Any) -> dict[str, Any]:
    try:
        return _any(_coerce(body))
    except _LeftOut as exc:  # nested too deep, or an int outside int64: replaced, the record kept
        return {"stringValue": exc.body}


def _log_json(readable: ReadableLogRecord) -> dict[str, Any]:
    record: Any = readable.log_record
    out: dict[str, Any] = {}
    if record.timestamp:
        out["timeUnixNano"] = str(record.timestamp)
    if record.observed_timestamp:
        out["observedTimeUnixNano"] = str(record.observed_timestamp)
    severity = getattr(record.severity_number, "_value_", None)
    if severity:
        out["severityNumber"] = severity
    if record.severity_text:
        out["severityText"] = record.severity_text
    out["body"] = _body_json(record.body)
    _put_attributes(out, record.attributes)
    if record.trace_flags:
        out["flags"] = int(record.trace_flags)
    if record.trace_id:
        out["traceId"] = f"{record.trace_id:032x}"
    if record.span_id:
        out["spanId"] = f"{record.span_id:016x}"
    if record.event_name:
        out["eventName"] = record.event_name
    return out


def encode_log_records_json(records: Sequence[ReadableLogRecord]) -> bytes:
    """The same request as :func:`encode_log_records`, as OTLP/JSON (UTF-8). Empty gives ``b"{}"``."""
    return _json_request(_group(records, _log_key), ("resourceLogs", "scopeLogs", "logRecords"), _log_json)
