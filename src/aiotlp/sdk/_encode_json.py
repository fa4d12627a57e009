"""SDK spans as OTLP/JSON: :func:`encode_spans_json`, the JSON form of the protobuf encoder, with the same mapping
and rules; the log records' and the metrics' are in :mod:`._encode_json_logs` and :mod:`._encode_json_metrics`
(a span exporter imports neither the logs nor the metrics SDK). See :mod:`._encode`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from opentelemetry.sdk.trace import ReadableSpan

from ._encode_common import (
    _BL,
    _group,
    _json_request,
    _put_attributes,
    _trace_state,
)
from ._encode_spans import (
    _direct_spans,
    _span_key,
)

__all__ = ["encode_spans_json"]


def _span_json(span: ReadableSpan) -> dict[str, Any]:
    context: Any = span._context
    parent: Any = span._parent
    out: dict[str, Any] = {"traceId": f"{context[0]:032x}", "spanId": f"{context[1]:016x}"}
    if context[4]:
        out["traceState"] = _trace_state(context[4])
    if parent is not None:
        out["parentSpanId"] = f"{parent[1]:016x}"
    out["flags"] = 0x300 if parent is not None and parent[2] else 0x100
    if span._name:
        out["name"] = span._name
    out["kind"] = span._kind._value_ + 1
    if span._start_time:
        out["startTimeUnixNano"] = str(span._start_time)
    if span._end_time:
        out["endTimeUnixNano"] = str(span._end_time)
    _put_attributes(out, span._attributes)
    events: Any = span._events
    if events:
        out["events"] = [_event_json(event) for event in events]
    if type(events) is _BL and events.dropped:
        out["droppedEventsCount"] = events.dropped
    links: Any = span._links
    if links:
        out["links"] = [_link_json(link) for link in links]
    if type(links) is _BL and links.dropped:
        out["droppedLinksCount"] = links.dropped
    status: Any = span._status
    status_out: dict[str, Any] = {}
    if status.description:
        status_out["message"] = status.description
    if status.status_code._value_:
        status_out["code"] = status.status_code._value_
    out["status"] = status_out
    return out


def _event_json(event: Any) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if event.timestamp:
        out["timeUnixNano"] = str(event.timestamp)
    if event.name:
        out["name"] = event.name
    _put_attributes(out, event.attributes)
    return out


def _link_json(link: Any) -> dict[str, Any]:
    context = link.context
    out: dict[str, Any] = {"traceId": f"{context[0]:032x}", "spanId": f"{context[1]:016x}"}
    if context[4]:
        out["traceState"] = _trace_state(context[4])
    _put_attributes(out, link.attributes)
    out["flags"] = 0x300 if context[2] else 0x100
    return out


def encode_spans_json(spans: Sequence[ReadableSpan]) -> bytes:
    """The same request as :func:`encode_spans`, as OTLP/JSON (UTF-8). An empty batch gives ``b"{}"``."""
    return _json_request(_group(_direct_spans(spans), _span_key), ("resourceSpans", "scopeSpans", "spans"), _span_json)
