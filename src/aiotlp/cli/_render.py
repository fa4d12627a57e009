"""Readable views of received OTLP requests (the official protobuf messages the FakeCollector decodes).

Trace trees with durations, one line per log record, one table row per metric data point. Shared by
``aiotlp receive`` and by ``aiotlp demo``, which shows one trace as its embedded receiver got it.
"""

from __future__ import annotations

import datetime
from collections.abc import Iterable, Sequence
from typing import Any

from ._ui import UI, Node

__all__ = ["any_value", "render_request", "summarize", "trace_nodes"]

_KINDS = {0: "", 1: "internal", 2: "server", 3: "client", 4: "producer", 5: "consumer"}
_SEVERITIES = ("", "TRACE", "DEBUG", "INFO", "WARN", "ERROR", "FATAL")
_MAX_VALUE = 200


def any_value(value: Any) -> str:
    """An ``AnyValue`` as short text."""
    kind = value.WhichOneof("value")
    if kind is None:
        return ""
    if kind == "string_value":
        text = str(value.string_value)
    elif kind == "bool_value":
        text = "true" if value.bool_value else "false"
    elif kind == "int_value":
        text = str(value.int_value)
    elif kind == "double_value":
        text = f"{value.double_value:g}"
    elif kind == "bytes_value":
        text = "0x" + bytes(value.bytes_value).hex()
    elif kind == "array_value":
        text = "[" + ", ".join(any_value(v) for v in value.array_value.values) + "]"
    else:
        text = "{" + ", ".join(f"{kv.key}: {any_value(kv.value)}" for kv in value.kvlist_value.values) + "}"
    return text if len(text) <= _MAX_VALUE else text[: _MAX_VALUE - 1] + "…"


def attributes(pairs: Iterable[Any]) -> str:
    return " ".join(f"{kv.key}={any_value(kv.value)}" for kv in pairs)


def service_name(resource: Any) -> str:
    for kv in resource.attributes:
        if kv.key == "service.name":
            return any_value(kv.value)
    return "unknown service"


def _duration(start: int, end: int) -> str:
    ms = (end - start) / 1e6
    return f"{ms:.2f} ms" if ms < 1000 else f"{ms / 1000:.2f} s"


def _span_node(span: Any) -> Node:
    parts = [_duration(span.start_time_unix_nano, span.end_time_unix_nano)]
    if _KINDS.get(span.kind):
        parts.append(_KINDS[span.kind])
    style = ""
    if span.status.code == 2:
        parts.append("ERROR" + (f": {span.status.message}" if span.status.message else ""))
        style = "bold red"
    if span.events:
        parts.append(f"{len(span.events)} event{'s' if len(span.events) > 1 else ''}")
    return Node(span.name, "  ".join(parts), style)


def _build(children: dict[bytes, list[Any]], parent: bytes, seen: set[bytes]) -> list[Node]:
    nodes = []
    for span in sorted(children.get(parent, []), key=lambda s: int(s.start_time_unix_nano)):
        span_id = bytes(span.span_id)
        node = _span_node(span)
        if span_id not in seen:  # a loop of parent ids (hostile input) cannot recurse forever
            node.children = _build(children, span_id, seen | {span_id})
        nodes.append(node)
    return nodes


def trace_nodes(spans: Sequence[Any], service: str = "") -> list[Node]:
    """One tree per trace: spans under their parents, by start time; a span whose parent did not arrive (yet)
    is shown at the top of its trace."""
    by_trace: dict[bytes, list[Any]] = {}
    for span in spans:
        by_trace.setdefault(bytes(span.trace_id), []).append(span)
    roots: list[Node] = []
    for trace_id, members in by_trace.items():
        ids = {bytes(s.span_id) for s in members}
        children: dict[bytes, list[Any]] = {}
        for span in members:
            parent = bytes(span.parent_span_id)
            children.setdefault(parent if parent in ids else b"", []).append(span)

        count = f"{len(members)} span{'s' if len(members) > 1 else ''}"
        detail = f"{service}  {count}" if service else count
        roots.append(Node(f"trace {trace_id.hex()}", detail, "bold", _build(children, b"", set())))
    return roots


def _severity(record: Any) -> str:
    if record.severity_text:
        return str(record.severity_text)
    number = int(record.severity_number)
    return _SEVERITIES[min((number + 3) // 4, 6)] if number > 0 else "-"


def _timestamp(nanos: int) -> str:
    if nanos <= 0:
        return "--:--:--.---"
    moment = datetime.datetime.fromtimestamp(nanos / 1e9)
    return moment.strftime("%H:%M:%S.") + f"{moment.microsecond // 1000:03d}"


def _point_value(kind: str, point: Any) -> str:
    if kind in ("sum", "gauge"):
        which = point.WhichOneof("value")
        return f"{point.as_double:.6g}" if which == "as_double" else str(point.as_int)
    text = f"count={point.count} sum={point.sum:.4g}"
    if kind == "histogram" and point.HasField("min"):
        text += f" min={point.min:.4g} max={point.max:.4g}"
    return text


def render_request(ui: UI, message: Any, signal: str, *, max_items: int = 50) -> None:
    """Print one export request: trace trees, log lines or a metric table (at most ``max_items`` of them)."""
    if signal == "traces":
        shown = 0
        for resource_spans in message.resource_spans:
            service = service_name(resource_spans.resource)
            spans = [span for scope in resource_spans.scope_spans for span in scope.spans]
            for node in trace_nodes(spans, service):
                if shown >= max_items:
                    break
                ui.tree(node)
                shown += 1
        total = len({bytes(s.trace_id) for rs in message.resource_spans for ss in rs.scope_spans for s in ss.spans})
        if total > shown:
            ui.line(f"  … and {total - shown} more traces", "dim")
    elif signal == "logs":
        shown = total = 0
        for resource_logs in message.resource_logs:
            service = service_name(resource_logs.resource)
            for scope in resource_logs.scope_logs:
                for record in scope.log_records:
                    total += 1
                    if shown >= max_items:
                        continue
                    shown += 1
                    text = any_value(record.body)
                    extra = attributes(record.attributes)
                    if record.trace_id:
                        extra += f" trace={bytes(record.trace_id).hex()[:16]}… span={bytes(record.span_id).hex()}"
                    prefix = f"{_timestamp(record.time_unix_nano or record.observed_time_unix_nano)} {service}"
                    ui.log(prefix, _severity(record), int(record.severity_number), f"{text}  {extra.strip()}".rstrip())
        if total > shown:
            ui.line(f"  … and {total - shown} more log records", "dim")
    else:
        rows: list[list[str]] = []
        for resource_metrics in message.resource_metrics:
            for scope in resource_metrics.scope_metrics:
                for metric in scope.metrics:
                    kind = metric.WhichOneof("data") or "empty"
                    points = getattr(metric, kind).data_points if kind != "empty" else []
                    for point in points:
                        rows.append(
                            [
                                metric.name,
                                kind.replace("exponential_histogram", "exp. histogram"),
                                metric.unit,
                                attributes(point.attributes),
                                _point_value(kind, point),
                            ]
                        )
        more = len(rows) - max_items
        services = sorted({service_name(rm.resource) for rm in message.resource_metrics})
        title = f"metrics of {', '.join(services)}" if services else ""
        ui.table(title, ["metric", "type", "unit", "attributes", "value"], rows[:max_items])
        if more > 0:
            ui.line(f"  … and {more} more data points", "dim")


def summarize(message: Any, signal: str) -> tuple[int, str]:
    """How many items a request holds, in OTLP's unit, and that unit's name."""
    if signal == "traces":
        return sum(len(ss.spans) for rs in message.resource_spans for ss in rs.scope_spans), "spans"
    if signal == "logs":
        return sum(len(sl.log_records) for rl in message.resource_logs for sl in rl.scope_logs), "log records"
    count = 0
    for rm in message.resource_metrics:
        for sm in rm.scope_metrics:
            for metric in sm.metrics:
                kind = metric.WhichOneof("data")
                if kind is not None:
                    count += len(getattr(metric, kind).data_points)
    return count, "metric data points"
