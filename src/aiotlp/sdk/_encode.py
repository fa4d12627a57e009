"""OpenTelemetry SDK objects -> OTLP request bytes, directly: no copy into aiotlp's model, no google.protobuf.

- :func:`encode_spans` / :func:`encode_spans_json`: ``ReadableSpan`` batches (what ``SpanExporter.export`` gets);
- :func:`encode_log_records` / :func:`encode_log_records_json`: ``ReadableLogRecord`` batches (what the 1.45
  ``LogRecordExporter.export`` gets);
- :func:`encode_metrics_data` / :func:`encode_metrics_data_json`: a ``MetricsData``; the exporter works on its
  flat form, :func:`metric_items` (one ``(resource, scope, metric)`` per metric), with
  :func:`encode_metric_items` / :func:`encode_metric_items_json`, so that an oversized batch can be halved.

The SDK's semantics are mapped exactly as the official encoder (``opentelemetry.exporter.otlp.proto.common``)
maps them, so both decode to the same message:

- spans and log records are grouped by resource, then by scope, by *equality* (as the official dictionaries
  do), in first-seen order; ``resource`` and ``scope`` are always written (an absent scope as an empty one),
  with the resource's and the scope's ``schema_url``; neither carries a dropped-attributes count;
- span kind is the SDK value + 1; the status (always written) carries the code and the description; the
  trace state is written as ``k=v,k2=v2``; the parent span id is written whenever there is a parent;
- ``Span.flags`` and ``Link.flags`` are ``SPAN_FLAGS_CONTEXT_HAS_IS_REMOTE`` (0x100), plus
  ``SPAN_FLAGS_CONTEXT_IS_REMOTE`` (0x200) when the parent's (the linked) context is remote; like the
  official encoder, the W3C trace flags (bits 0-7) are not copied in;
- dropped counts come from the SDK's ``BoundedAttributes`` / ``BoundedList``;
- a log record always has a ``body`` (an empty ``AnyValue`` for ``None``); a zero trace or span id is left out;
  ``flags`` are the record's trace flags; ``severity_number``, ``severity_text`` and ``event_name`` when set;
- metrics: gauges carry no start time; sums carry temporality and monotonicity; a metric without data points
  has no data field at all; histogram ``sum``/``min``/``max`` are written when not ``None``; exponential
  histogram ``positive``/``negative`` only when they have bucket counts; exemplars carry span and trace ids
  only when both are set, ``as_double`` for a float value and ``as_int`` for an int.

Deviations from the official encoder, each deliberate: a link's ``trace_state`` is written (the official
encoder drops it); the metrics of two ``ResourceMetrics`` (or ``ScopeMetrics``) entries that compare equal are
all kept (the official encoder keeps only the last entry's); an empty ``ScopeMetrics`` is not sent.

Values that cannot be sent, the rules of :mod:`aiotlp.encoding` (the SDK limits neither the depth of log bodies
and extended attributes nor the size of ints; a collector refuses a whole request that breaks either):

- depth: lists and mappings nest at most ``aiotlp.model.MAX_NESTING_DEPTH`` deep;
- ints: ``AnyValue.int_value`` is an int64; an int outside ``[-2**63, 2**63 - 1]`` (a uint64 id from another
  system) at any depth of a value cannot be sent as an int.

An attribute whose value breaks either is left out and counted in its item's ``dropped_attributes_count``
(spans, events, links, log records, and the resource's and scope's, written when not 0); a log body that does
is replaced by the string :data:`BODY_TOO_DEEP` (nested too deep, or referring to itself) or
:data:`BODY_INT_OUT_OF_RANGE` (the record is kept; OTLP has no count for it). Metric data points and exemplars
have no dropped count: such an attribute is left out uncounted. A Sum or Gauge int value (or an exemplar's)
outside int64 is sent as ``as_double`` (the point is kept, with a double's precision; beyond the double range, an
infinity). Histogram counts are uint64: one outside ``[0, 2**64 - 1]`` raises :class:`~aiotlp.EncodeError` (the
exporters drop that metric and count it as ``invalid``).

How it is fast: ``ReadableSpan``'s own fields (``_context``, ``_attributes``, ...) are read directly, skipping
the properties that copy (``attributes`` wraps a ``MappingProxyType``, ``events`` builds a tuple); a class that
overrides any of those properties is read through its public API instead (checked once per class). Attributes
are written by aiotlp's protobuf encoder from the ``BoundedAttributes``' inner dict, with its caches. Span and
trace ids are packed with their tags by one ``struct`` call; encoded resources and scopes are cached per
object (they are immutable). All tags are ``bytes`` constants.
"""

from __future__ import annotations

import dataclasses
import functools
import itertools
import logging
import operator
import struct
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, Final, TypeVar

from opentelemetry.attributes import BoundedAttributes
from opentelemetry.sdk._logs import ReadableLogRecord
from opentelemetry.sdk.metrics.export import (
    ExponentialHistogram,
    Gauge,
    Histogram,
    Metric,
    MetricsData,
    Sum,
)
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import Event, ReadableSpan
from opentelemetry.sdk.trace import Span as SdkSpan
from opentelemetry.sdk.util import BoundedList
from opentelemetry.sdk.util.instrumentation import InstrumentationScope
from opentelemetry.trace import TraceState
from opentelemetry.trace.status import Status

from aiotlp._exceptions import EncodeError
from aiotlp.encoding import _compat
from aiotlp.encoding._json import _any, _attributes, _finish, _float
from aiotlp.encoding._protobuf import (
    _INT64_MAX,
    _INT64_MIN,
    _LP,
    _UINT64_MAX,
    BODY_INT_OUT_OF_RANGE,
    BODY_TOO_DEEP,
    _as_double,
    _LeftOut,
    _lp_str,
    _patch,
    _too_deep,
    _uint64_varint,
    _write_any,
    _write_attributes,
    _write_times,
)
from aiotlp.encoding._wire import VARINT, VARINT_TABLE_SIZE, varint, zigzag32
from aiotlp.model import MAX_NESTING_DEPTH

__all__ = [
    "BODY_INT_OUT_OF_RANGE",
    "BODY_TOO_DEEP",
    "MAX_SOURCE_GROUPS",
    "MetricItem",
    "SourceEncoder",
    "SourceItem",
    "count_data_points",
    "encode_log_records",
    "encode_log_records_json",
    "encode_metric_items",
    "encode_metric_items_json",
    "encode_metrics_data",
    "encode_metrics_data_json",
    "encode_spans",
    "encode_spans_json",
    "metric_items",
    "split_metric_item",
]

logger = logging.getLogger("aiotlp.sdk")

_V: Final = VARINT
_VN: Final = VARINT_TABLE_SIZE
_M64: Final = (1 << 64) - 1

_pack_q: Final = struct.Struct("<Q").pack  # fixed64
_pack_sq: Final = struct.Struct("<q").pack  # sfixed64
_pack_d: Final = struct.Struct("<d").pack  # double
_pack_i: Final = struct.Struct("<I").pack  # fixed32
_pack_two_fixed64: Final = struct.Struct("<BQBQ").pack  # tag, fixed64, tag, fixed64 (one-byte tags)
# Ids are big-endian bytes on the wire; a 128-bit trace id is packed as two big-endian 64-bit halves.
# (tag, len 16, trace id high, low, tag, len 8, span id) and the same followed by the parent span id.
_pack_ids: Final = struct.Struct(">2sQQ2sQ").pack
_pack_ids_parent: Final = struct.Struct(">2sQQ2sQ2sQ").pack
_pack_id8: Final = struct.Struct(">Q").pack

_BA: Final = BoundedAttributes
_BL: Final = BoundedList
_EVENT: Final = Event

# Span.kind (6): the SDK's SpanKind value (INTERNAL=0 .. CONSUMER=4) + 1.
_KIND: Final = tuple(b"\x30" + bytes((value + 1,)) for value in range(5))
# Span.status (15) without a message, indexed by StatusCode value (UNSET, OK, ERROR); Status 3 code.
_STATUS: Final = (b"\x7a\x00", b"\x7a\x02\x18\x01", b"\x7a\x02\x18\x02")
# Span.flags (16, fixed32) / Link.flags (6, fixed32): HAS_IS_REMOTE, and IS_REMOTE for a remote context.
_SPAN_FLAGS_LOCAL: Final = b"\x85\x01" + _pack_i(0x100)
_SPAN_FLAGS_REMOTE: Final = b"\x85\x01" + _pack_i(0x300)
_LINK_FLAGS_LOCAL: Final = b"\x35" + _pack_i(0x100)
_LINK_FLAGS_REMOTE: Final = b"\x35" + _pack_i(0x300)

_I = TypeVar("_I")
_Groups = list[tuple[Resource, list[tuple[InstrumentationScope | None, list[_I]]]]]

MetricItem = tuple[Resource, InstrumentationScope, Metric]
"""One metric with the resource and scope it was reported under: the unit a metrics batch is split by."""


# ------------------------------------------------------------------------------------------------------------
# Helpers shared by the three signals


def _plain(attributes: Any) -> Any:
    """The mapping to iterate: a ``BoundedAttributes``' inner dict (C-speed ``items()``), else ``attributes``."""
    return attributes._dict if type(attributes) is _BA else attributes


def _dropped(attributes: Any) -> int:
    return attributes.dropped if type(attributes) is _BA else 0


def _write_counted_attributes(buf: bytearray, field_tag: bytes, dropped_tag: bytes, attributes: Any) -> None:
    """An item's attributes (a ``BoundedAttributes``: its inner dict) and its ``dropped_attributes_count``: the
    SDK's count plus the attributes left out (nested too deep, or holding an int outside int64; written when
    not 0)."""
    if type(attributes) is _BA:
        dropped = _write_attributes(buf, field_tag, attributes._dict) if attributes._dict else 0
        dropped += attributes.dropped
    elif attributes:
        dropped = _write_attributes(buf, field_tag, attributes)
    else:
        return
    if dropped:
        buf += dropped_tag
        buf += varint(dropped)


def _put_attributes(out: dict[str, Any], attributes: Any) -> None:
    """The JSON twin of :func:`_write_counted_attributes`: ``attributes`` and ``droppedAttributesCount``."""
    plain = _plain(attributes)
    dropped = _dropped(attributes)
    if plain:
        listed = _attributes(plain)
        if listed:
            out["attributes"] = listed
        dropped += len(plain) - len(listed)  # left out: nested too deep, or an int outside int64
    if dropped:
        out["droppedAttributesCount"] = dropped


def _trace_state(trace_state: Mapping[str, str]) -> str:
    """A ``TraceState`` as the official encoder writes it: ``k=v,k2=v2``."""
    return ",".join([f"{key}={value}" for key, value in trace_state.items()])


_NOTHING: Final = object()


def _group(items: Sequence[_I], key: Callable[[_I], tuple[Any, Any]]) -> _Groups[_I]:
    """Group by resource, then scope, in first-seen order, with the official encoder's equality semantics.

    Items are grouped by object identity first (cheap: one process has one resource per provider, one scope
    object per tracer). Only when two distinct resource (or scope) objects compare equal are the groups built
    again by equality, as the official encoder's dictionaries do.
    """
    keys = list(map(key, items))
    if keys and keys.count(keys[0]) == len(keys):
        # The common batch: one resource and one scope (a C-speed check: tuple comparison tries identity first).
        resource, scope = keys[0]
        return [(resource, [(scope, items if type(items) is list else list(items))])]
    buckets: dict[tuple[int, int], list[_I]] = {}
    order: list[tuple[Any, Any, list[_I]]] = []
    last_resource: object = _NOTHING
    last_scope: object = _NOTHING
    last: list[_I] = []
    for item, (resource, scope) in zip(items, keys, strict=True):
        if resource is last_resource and scope is last_scope:
            last.append(item)
            continue
        ids = (id(resource), id(scope))
        bucket = buckets.get(ids)
        if bucket is None:
            bucket = buckets[ids] = []
            order.append((resource, scope, bucket))
        last_resource, last_scope, last = resource, scope, bucket
        bucket.append(item)
    if len(order) > 1 and _has_equal_twins(order):
        return _group_by_equality(items, key)
    grouped: dict[int, tuple[Resource, list[tuple[InstrumentationScope | None, list[_I]]]]] = {}
    for resource, scope, bucket in order:
        entry = grouped.get(id(resource))
        if entry is None:
            entry = grouped[id(resource)] = (resource, [])
        entry[1].append((scope, bucket))
    return list(grouped.values())


def _has_equal_twins(order: list[tuple[Any, Any, list[_I]]]) -> bool:
    resources = {id(resource): resource for resource, _, _ in order}
    scopes = {id(scope): scope for _, scope, _ in order}
    if len(scopes) > 1 and len(set(scopes.values())) < len(scopes):
        return True
    return len(resources) > 1 and len(set(resources.values())) < len(resources)


def _group_by_equality(items: Sequence[_I], key: Callable[[_I], tuple[Any, Any]]) -> _Groups[_I]:
    grouped: dict[Any, dict[Any, list[_I]]] = {}
    for item in items:
        resource, scope = key(item)
        grouped.setdefault(resource, {}).setdefault(scope, []).append(item)
    return [(resource, list(scopes.items())) for resource, scopes in grouped.items()]


_CACHE_MAX: Final = 256
_RESOURCE_PB: dict[int, tuple[object, bytes]] = {}
_SCOPE_PB: dict[int, tuple[object, bytes]] = {}
_RESOURCE_JSON: dict[int, tuple[object, dict[str, Any]]] = {}
_SCOPE_JSON: dict[int, tuple[object, dict[str, Any]]] = {}
# Each cache keeps the object it describes, so its id() cannot be reused while the entry exists. The SDK's
# resources and scopes are immutable. Bounded by clearing when full; under threads the worst case is a redo.


def _cached(cache: dict[int, tuple[object, _I]], obj: object, make: Callable[[Any], _I]) -> _I:
    hit = cache.get(id(obj))
    if hit is not None and hit[0] is obj:
        return hit[1]
    value = make(obj)
    if len(cache) >= _CACHE_MAX:
        cache.clear()
    cache[id(obj)] = (obj, value)
    return value


def _resource_pb(resource: Resource) -> bytes:
    """``Resource*.resource`` (field 1), always present: the resource's attributes."""
    buf = bytearray(b"\x0a\x00")
    # Resource 1 attributes, 2 dropped_attributes_count (only for values left out)
    _write_counted_attributes(buf, b"\x0a", b"\x10", _plain(resource.attributes))
    _patch(buf, 2)
    return bytes(buf)


def _scope_pb(scope: InstrumentationScope | None) -> bytes:
    """``Scope*.scope`` (field 1), always present (empty for no scope): name, version, attributes."""
    buf = bytearray(b"\x0a\x00")
    if scope is not None:
        if scope.name:
            buf += b"\x0a"  # InstrumentationScope 1 name
            buf += _lp_str(scope.name)
        if scope.version:
            buf += b"\x12"  # InstrumentationScope 2 version
            buf += _lp_str(scope.version)
        # InstrumentationScope 3 attributes, 4 dropped_attributes_count (only for values left out)
        _write_counted_attributes(buf, b"\x1a", b"\x20", _plain(scope.attributes))
    _patch(buf, 2)
    return bytes(buf)


def _resource_json(resource: Resource) -> dict[str, Any]:
    out: dict[str, Any] = {}
    _put_attributes(out, _plain(resource.attributes))
    return out


def _scope_json(scope: InstrumentationScope | None) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if scope is not None:
        if scope.name:
            out["name"] = scope.name
        if scope.version:
            out["version"] = scope.version
        _put_attributes(out, _plain(scope.attributes))
    return out


def _write_schema_url(buf: bytearray, schema_url: str | None) -> None:
    if schema_url:
        buf += b"\x1a"  # Resource*/Scope* 3 schema_url
        buf += _lp_str(schema_url)


def _write_request(groups: _Groups[_I], write_items: Callable[[bytearray, list[_I]], None]) -> bytes:
    """The ``Export*ServiceRequest`` around grouped items; ``write_items(buf, items)`` writes one scope's.

    Each ``Scope*`` body is written into its own buffer and the request is joined once at the end, with the
    lengths known: the items (almost all of the bytes) are copied once, instead of being moved by each length
    patch of the two enclosing messages and copied again into the result.
    """
    parts: list[bytes | bytearray] = []
    for resource, scopes in groups:
        resource_parts: list[bytes | bytearray] = [_cached(_RESOURCE_PB, resource, _resource_pb)]
        for scope, items in scopes:
            body = bytearray(_cached(_SCOPE_PB, scope, _scope_pb))
            write_items(body, items)
            if scope is not None:
                _write_schema_url(body, scope.schema_url)
            resource_parts += (b"\x12", varint(len(body)), body)  # Resource* 2 scope_{spans,logs,metrics}
        if resource.schema_url:
            resource_parts += (b"\x1a", _lp_str(resource.schema_url))  # Resource* 3 schema_url
        size = sum(map(len, resource_parts))
        parts += (b"\x0a", varint(size), *resource_parts)  # Export*ServiceRequest 1 resource_{spans,logs,metrics}
    return b"".join(parts)


def _json_request(groups: _Groups[_I], keys: tuple[str, str, str], convert: Callable[[_I], dict[str, Any]]) -> bytes:
    if not groups:
        return b"{}"
    resource_key, scope_key, items_key = keys
    resources: list[dict[str, Any]] = []
    for resource, scopes in groups:
        scope_list: list[dict[str, Any]] = []
        for scope, items in scopes:
            scope_out: dict[str, Any] = {
                "scope": _cached(_SCOPE_JSON, scope, _scope_json),
                items_key: [convert(item) for item in items],
            }
            if scope is not None and scope.schema_url:
                scope_out["schemaUrl"] = scope.schema_url
            scope_list.append(scope_out)
        resource_out: dict[str, Any] = {
            "resource": _cached(_RESOURCE_JSON, resource, _resource_json),
            scope_key: scope_list,
        }
        if resource.schema_url:
            resource_out["schemaUrl"] = resource.schema_url
        resources.append(resource_out)
    return _finish({resource_key: resources})


# ------------------------------------------------------------------------------------------------------------
# Traces

# The ReadableSpan API the encoder reads through the private fields behind it.
_SPAN_API: Final = (
    "name",
    "context",
    "get_span_context",
    "kind",
    "parent",
    "start_time",
    "end_time",
    "status",
    "attributes",
    "events",
    "links",
    "resource",
    "instrumentation_scope",
    "dropped_attributes",
    "dropped_events",
    "dropped_links",
)
_DIRECT: dict[type, bool] = {ReadableSpan: True}
"""Span class -> whether its fields may be read directly (it overrides none of ReadableSpan's accessors)."""


def _same_accessors() -> dict[str, object]:
    """Overrides known to read the same field as ReadableSpan's accessor: the SDK's own ``Span`` (what
    ``on_end`` gets from a ``TracerProvider``) overrides ``get_span_context`` with one that returns
    ``self._context`` (SDK 1.45); checked here on a probe, so that an SDK whose override differs is read through
    its public API, as any other class."""
    probe: Any = object.__new__(SdkSpan)
    marker = object()
    probe._context = marker
    try:
        same = SdkSpan.get_span_context(probe) is marker
    except Exception:
        same = False
    return {"get_span_context": SdkSpan.get_span_context} if same else {}


_SAME_ACCESSORS: Final = _same_accessors()


def _reads_directly(cls: type) -> bool:
    direct = True
    for name in _SPAN_API:
        accessor = getattr(cls, name, None)
        if accessor is not getattr(ReadableSpan, name) and (
            accessor is None or accessor is not _SAME_ACCESSORS.get(name)
        ):
            direct = False
            break
    _DIRECT[cls] = direct
    return direct


def _snapshot(span: ReadableSpan) -> ReadableSpan:
    """A plain ReadableSpan built from ``span``'s public API (for classes that override its accessors)."""
    attributes = BoundedAttributes(maxlen=None, attributes=span.attributes, immutable=True)
    attributes.dropped = span.dropped_attributes
    events: BoundedList[Any] = BoundedList.from_seq(None, span.events)
    events.dropped = span.dropped_events
    links: BoundedList[Any] = BoundedList.from_seq(None, span.links)
    links.dropped = span.dropped_links
    return ReadableSpan(
        name=span.name,
        context=span.get_span_context(),
        parent=span.parent,
        resource=span.resource,
        attributes=attributes,
        events=events,
        links=links,
        kind=span.kind,
        status=span.status,
        start_time=span.start_time,
        end_time=span.end_time,
        instrumentation_scope=span.instrumentation_scope,
    )


def _direct_spans(spans: Sequence[ReadableSpan]) -> Sequence[ReadableSpan]:
    """``spans``, with every span of a class that overrides ReadableSpan's accessors replaced by a snapshot."""
    direct = _DIRECT
    if all(direct.get(kind) or _reads_directly(kind) for kind in set(map(type, spans))):
        return spans  # the common batch: one or two span classes, all read directly
    out: list[ReadableSpan] | None = None
    for index, span in enumerate(spans):
        ok = direct.get(type(span))
        if ok is None:
            ok = _reads_directly(type(span))
        if not ok:
            if out is None:
                out = list(spans)
            out[index] = _snapshot(span)
    return spans if out is None else out


_span_key: Final[Callable[[ReadableSpan], tuple[Any, Any]]] = operator.attrgetter("_resource", "_instrumentation_scope")


def _write_spans(buf: bytearray, spans: Iterable[ReadableSpan]) -> None:
    V = _V
    lp_get = _LP.get
    lp_str = _lp_str
    pack_q = _pack_q
    pack_qq = _pack_two_fixed64
    pack_ids = _pack_ids
    pack_ids_parent = _pack_ids_parent
    write_attributes = _write_counted_attributes
    kinds = _KIND
    M = _M64
    BL = _BL
    EVENT = _EVENT
    last_status: object = None
    status_field = b""
    for span in spans:
        buf += b"\x12\x00"  # ScopeSpans 2 spans
        start = len(buf)
        context: Any = span._context
        trace_id = context[0]
        parent: Any = span._parent
        trace_state = context[4]
        # Span 1 trace_id (len 16), 2 span_id (len 8), 3 trace_state, 4 parent_span_id (len 8)
        if trace_state:
            buf += pack_ids(b"\x0a\x10", trace_id >> 64, trace_id & M, b"\x12\x08", context[1])
            text = _trace_state(trace_state)
            buf += b"\x1a"
            buf += lp_get(text) or lp_str(text)
            if parent is not None:
                buf += b"\x22\x08"
                buf += _pack_id8(parent[1])
        elif parent is not None:
            buf += pack_ids_parent(
                b"\x0a\x10", trace_id >> 64, trace_id & M, b"\x12\x08", context[1], b"\x22\x08", parent[1]
            )
        else:
            buf += pack_ids(b"\x0a\x10", trace_id >> 64, trace_id & M, b"\x12\x08", context[1])
        text = span._name
        if text:
            buf += b"\x2a"  # Span 5 name
            buf += lp_get(text) or lp_str(text)
        buf += kinds[span._kind._value_]  # Span 6 kind
        t0 = span._start_time
        t1 = span._end_time
        if t0 and t1:
            buf += pack_qq(0x39, t0, 0x41, t1)  # Span 7 start_time_unix_nano, 8 end_time_unix_nano
        else:
            if t0:
                buf += b"\x39"
                buf += pack_q(t0)
            if t1:
                buf += b"\x41"
                buf += pack_q(t1)
        # Span 9 attributes, 10 dropped_attributes_count
        write_attributes(buf, b"\x4a", b"\x50", span._attributes)
        events: Any = span._events
        if type(events) is BL:
            dropped = events.dropped
            events = events._dq  # type: ignore[attr-defined]
        else:
            dropped = 0
        for event in events:
            buf += b"\x5a\x00"  # Span 11 events
            event_start = len(buf)
            if type(event) is EVENT:
                time, text, attributes = event._timestamp, event._name, event._attributes
            else:
                time, text, attributes = event.timestamp, event.name, event.attributes
            if time:
                buf += b"\x09"  # Event 1 time_unix_nano
                buf += pack_q(time)
            if text:
                buf += b"\x12"  # Event 2 name
                buf += lp_get(text) or lp_str(text)
            write_attributes(buf, b"\x1a", b"\x20", attributes)  # Event 3 attributes, 4 dropped_attributes_count
            n = len(buf) - event_start
            if n < 0x80:
                buf[event_start - 1] = n
            else:
                buf[event_start - 1 : event_start] = V[n] if n < _VN else varint(n)
        if dropped:
            buf += b"\x60"  # Span 12 dropped_events_count
            buf += varint(dropped)
        links: Any = span._links
        if type(links) is BL:
            dropped = links.dropped
            links = links._dq  # type: ignore[attr-defined]
        else:
            dropped = 0
        for link in links:
            _write_link(buf, link)
        if dropped:
            buf += b"\x70"  # Span 14 dropped_links_count
            buf += varint(dropped)
        status = span._status
        if status is not last_status:
            status_field = _status_field(status)
            last_status = status
        buf += status_field  # Span 15 status
        # Span 16 flags
        buf += _SPAN_FLAGS_REMOTE if parent is not None and parent[2] else _SPAN_FLAGS_LOCAL
        n = len(buf) - start
        if n < 0x80:
            buf[start - 1] = n
        else:
            buf[start - 1 : start] = V[n] if n < _VN else varint(n)


def _write_link(buf: bytearray, link: Any) -> None:
    context = link.context
    trace_id = context[0]
    buf += b"\x6a\x00"  # Span 13 links
    start = len(buf)
    # Link 1 trace_id (len 16), 2 span_id (len 8)
    buf += _pack_ids(b"\x0a\x10", trace_id >> 64, trace_id & _M64, b"\x12\x08", context[1])
    if context[4]:
        buf += b"\x1a"  # Link 3 trace_state (the official encoder leaves it out)
        buf += _lp_str(_trace_state(context[4]))
    _write_counted_attributes(buf, b"\x22", b"\x28", link.attributes)  # Link 4 attributes, 5 dropped count
    buf += _LINK_FLAGS_REMOTE if context[2] else _LINK_FLAGS_LOCAL  # Link 6 flags
    _patch(buf, start)


def _status_field(status: Any) -> bytes:
    code = status.status_code._value_
    description = status.description
    if not description:
        return _STATUS[code]
    body = b"\x12" + _lp_str(description)  # Status 2 message
    if code:
        body += b"\x18" + _V[code]  # Status 3 code
    return b"\x7a" + varint(len(body)) + body


def encode_spans(spans: Sequence[ReadableSpan]) -> bytes:
    """An ``ExportTraceServiceRequest`` (protobuf) of SDK spans. An empty batch gives ``b""``."""
    return _write_request(_group(_direct_spans(spans), _span_key), _write_spans)


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


def _body_json(body: Any) -> dict[str, Any]:
    try:
        return _any(_coerce(body))
    except _LeftOut as exc:  # nested too deep, or an int outside int64: replaced, the record kept
        return {"stringValue": exc.body}


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
        text = record.event_name
        if text:
            buf += b"\x62"  # LogRecord 12 event_name
            buf += lp_get(text) or lp_str(text)
        n = len(buf) - start
        if n < 0x80:
            buf[start - 1] = n
        else:
            buf[start - 1 : start] = V[n] if n < _VN else varint(n)


def encode_log_records(records: Sequence[ReadableLogRecord]) -> bytes:
    """An ``ExportLogsServiceRequest`` (protobuf) of SDK log records. An empty batch gives ``b""``."""
    return _write_request(_group(records, _log_key), _write_log_records)


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


# ------------------------------------------------------------------------------------------------------------
# Encoding at the source: each span (log record) encoded as it ends, framed into requests later

SourceItem = tuple[int, bytes]
"""A span or log record encoded where it ended: ``(group key, its Scope* field bytes)`` (see :class:`SourceEncoder`)."""

# A group: (resource index, resource, scope, the resource's field, the scope's field, the scope's schema_url
# field, the resource's schema_url field); the index is the same for equal resources.
_Group = tuple[int, Resource, Any, bytes, bytes, bytes, bytes]

MAX_SOURCE_GROUPS: Final = 1024
"""Distinct (resource, scope) pairs a :class:`SourceEncoder` keys; items of further pairs are queued as objects."""


def _schema_field(schema_url: str | None) -> bytes:
    return b"\x1a" + _lp_str(schema_url) if schema_url else b""  # Resource*/Scope* 3 schema_url


def _span_field(span: ReadableSpan) -> bytes:
    """One span's ``ScopeSpans.spans`` field (tag, length, ``Span``): :func:`_write_spans` for a batch of one."""
    buf = bytearray()
    _write_spans(buf, (span,))
    return bytes(buf)


def _span_one(span: Any) -> tuple[Any, Any, bytes]:
    """(resource, scope, the span's ``ScopeSpans.spans`` field)."""
    direct = _DIRECT.get(type(span))
    if direct is None:
        direct = _reads_directly(type(span))
    if not direct:
        span = _snapshot(span)
    return span._resource, span._instrumentation_scope, _span_field(span)


def _log_one(record: Any) -> tuple[Any, Any, bytes]:
    """(resource, scope, the record's ``ScopeLogs.log_records`` field)."""
    buf = bytearray()
    _write_log_records(buf, (record,))
    return record.resource, record.instrumentation_scope, bytes(buf)


_TUPLE_ONLY: Final = {tuple}
_first: Final = operator.itemgetter(0)
_second: Final = operator.itemgetter(1)


class SourceEncoder:
    """Encodes SDK spans or log records one at a time, as they end, and frames batches of them into requests.

    An item becomes a :data:`SourceItem`: a small group key (its resource and scope) and the bytes of its
    ``ScopeSpans.spans`` / ``ScopeLogs.log_records`` field (tag, length, message), written by the writer of the
    batch encoder (:func:`_write_spans`, compiled or pure; :func:`_write_log_records`). The tuple of an int and
    bytes holds no reference to the span, which is freed by the thread that ended it, and the garbage
    collector stops tracking it. :meth:`frame` puts an ``Export*ServiceRequest`` around any subset of such
    items (a batch, or a part of a batch split by size) without encoding them again: the bytes are those of
    :func:`encode_spans` / :func:`encode_log_records` for the same items, in the same order.

    Groups are by *equality* of (resource, scope), as the batch encoders group: one key per distinct pair,
    kept for the encoder's life (SDK resources and scopes are immutable), the last pair seen remembered by
    identity (one check per item). Past ``max_groups`` pairs, or when an item cannot be encoded, :meth:`item`
    returns the object itself; :meth:`frame` accepts such objects mixed with encoded items and encodes them
    then (one that cannot be raises there, and the exporter drops it as ``invalid``, counted). Any thread: keys
    are taken without a lock (a lost race registers a spare group, never a wrong one), so a forked child can
    go on using it.
    """

    def __init__(self, kind: str, *, max_groups: int = MAX_SOURCE_GROUPS) -> None:
        if kind == "spans":
            self._one: Callable[[Any], tuple[Any, Any, bytes]] = _span_one
        elif kind == "logs":
            self._one = _log_one
        else:
            raise ValueError(f"kind must be 'spans' or 'logs', got {kind!r}")
        self._max_groups = max_groups
        self._keys: dict[tuple[Any, Any], int] = {}  # (resource, scope), by equality -> key
        self._resources: dict[Any, int] = {}  # resource, by equality -> resource index
        self._groups: dict[int, _Group] = {}
        self._next = itertools.count()
        self._memo: tuple[object, object, int] = (_NOTHING, _NOTHING, -1)

    def key(self, resource: Any, scope: Any) -> int:
        """The key of (resource, scope): registered on first sight; -1 past ``max_groups`` pairs."""
        memo = self._memo  # one tuple, replaced whole: other threads see an old or a new one, never a mix
        if memo[0] is resource and memo[1] is scope:
            return memo[2]
        pair = (resource, scope)
        key = self._keys.get(pair)
        if key is None:
            if len(self._groups) >= self._max_groups:
                return -1
            candidate = next(self._next)
            self._groups[candidate] = self._group(self._resources.setdefault(resource, candidate), resource, scope)
            key = self._keys.setdefault(pair, candidate)  # another thread may have won: its key
        self._memo = (resource, scope, key)
        return key

    @staticmethod
    def _group(index: int, resource: Any, scope: Any) -> _Group:
        scope_schema = _schema_field(scope.schema_url) if scope is not None else b""
        return (
            index,
            resource,
            scope,
            _resource_pb(resource),
            _scope_pb(scope),
            scope_schema,
            _schema_field(resource.schema_url),
        )

    def item(self, item: Any) -> Any:
        """``item`` encoded (a :data:`SourceItem`), or ``item`` itself when it cannot be (encoded at export)."""
        try:
            resource, scope, data = self._one(item)
            key = self.key(resource, scope)
        except Exception:  # framed from the object at export: dropped there as invalid, and counted
            return item
        return item if key < 0 else (key, data)

    def span_item(self, span: Any) -> Any:
        """:meth:`item` for a span (``on_end``'s hot path): a span of a class read directly, of the last
        (resource, scope) seen, costs one dictionary lookup, one identity check and the encoder's call."""
        if _DIRECT.get(type(span)) is True:
            resource = span._resource
            scope = span._instrumentation_scope
            memo = self._memo
            if memo[0] is resource and memo[1] is scope and memo[2] >= 0:
                try:
                    return (memo[2], _span_field(span))
                except Exception:  # framed from the object at export: dropped there as invalid, and counted
                    return span
        return self.item(span)

    def frame(self, items: Sequence[Any]) -> bytes:
        """The request of ``items`` (:data:`SourceItem` tuples, or objects :meth:`item` left as they are).
        Raises if an object among them cannot be encoded; an empty sequence gives ``b""``."""
        groups = self._groups
        if items and set(map(type, items)) == _TUPLE_ONLY:  # the common batch, at C speed: one group, all bytes
            keys = set(map(_first, items))
            if len(keys) == 1:
                group = groups[keys.pop()]
                parts = list(map(_second, items))
                # Resource* 2 scope_{spans,logs}: the scope, the items, the scope's schema_url
                size = len(group[4]) + sum(map(len, parts)) + len(group[5])
                body = (group[3], b"\x12", varint(size), group[4], *parts, group[5], group[6])
                return b"".join((b"\x0a", varint(sum(map(len, body))), *body))
        buckets: dict[int, list[bytes]] = {}
        local: dict[tuple[Any, Any], int] | None = None  # pairs past max_groups, by equality -> a batch key
        for item in items:
            if type(item) is tuple:
                key, data = item
            else:
                resource, scope, data = self._one(item)
                key = self.key(resource, scope)
                if key < 0:
                    if local is None:
                        local = {}
                        groups = dict(groups)
                    key = local.get((resource, scope), 0)
                    if key >= 0:  # first in this batch: a negative key, its resource's index or a new one
                        key = -1 - len(local)
                        index = self._resources.get(resource)
                        if index is None:
                            same = [g[0] for k, g in groups.items() if k < 0 and g[1] == resource]
                            index = same[0] if same else key
                        groups[key] = self._group(index, resource, scope)
                        local[(resource, scope)] = key
            bucket = buckets.get(key)
            if bucket is None:
                buckets[key] = [data]
            else:
                bucket.append(data)
        # ResourceSpans in first-seen order of (equal) resources; within one, its scopes in first-seen order
        by_resource: dict[int, list[tuple[_Group, list[bytes]]]] = {}
        for key, parts in buckets.items():
            group = groups[key]
            scopes = by_resource.get(group[0])
            if scopes is None:
                by_resource[group[0]] = [(group, parts)]
            else:
                scopes.append((group, parts))
        out: list[bytes] = []
        for scopes in by_resource.values():
            resource_parts = [scopes[0][0][3]]
            for group, parts in scopes:
                # Resource* 2 scope_{spans,logs}: the scope, the items, the scope's schema_url
                size = len(group[4]) + sum(map(len, parts)) + len(group[5])
                resource_parts += (b"\x12", varint(size), group[4], *parts, group[5])
            resource_parts.append(scopes[0][0][6])
            out += (b"\x0a", varint(sum(map(len, resource_parts))), *resource_parts)  # Export* 1 resource_*
        return b"".join(out)


# ------------------------------------------------------------------------------------------------------------
# Metrics


def metric_items(data: MetricsData) -> list[MetricItem]:
    """``data`` flattened: one ``(resource, scope, metric)`` per metric, in order."""
    return [
        (resource_metrics.resource, scope_metrics.scope, metric)
        for resource_metrics in data.resource_metrics
        for scope_metrics in resource_metrics.scope_metrics
        for metric in scope_metrics.metrics
    ]


def count_data_points(items: Sequence[MetricItem]) -> int:
    """How many data points ``items`` hold (the unit OTLP counts metrics in)."""
    return sum(len(getattr(metric.data, "data_points", ())) for _, _, metric in items)


def split_metric_item(item: MetricItem) -> list[MetricItem]:
    """One metric as two, each with half of its data points (to split a metric too large for a request)."""
    resource, scope, metric = item
    data: Any = metric.data
    points = data.data_points
    half = len(points) // 2
    return [
        (resource, scope, dataclasses.replace(metric, data=dataclasses.replace(data, data_points=part)))
        for part in (points[:half], points[half:])
    ]


def _metric_groups(items: Sequence[MetricItem]) -> _Groups[Metric]:
    """Group by resource identity, then scope identity, in first-seen order (the SDK groups them already)."""
    grouped: dict[int, tuple[Resource, dict[int, tuple[InstrumentationScope, list[Metric]]]]] = {}
    for resource, scope, metric in items:
        entry = grouped.get(id(resource))
        if entry is None:
            entry = grouped[id(resource)] = (resource, {})
        scopes = entry[1]
        scope_entry = scopes.get(id(scope))
        if scope_entry is None:
            scope_entry = scopes[id(scope)] = (scope, [])
        scope_entry[1].append(metric)
    return [(resource, list(scopes.values())) for resource, scopes in grouped.values()]


def _write_exemplars(buf: bytearray, field_tag: bytes, exemplars: Sequence[Any]) -> None:
    for exemplar in exemplars:
        buf += field_tag
        buf.append(0)
        start = len(buf)
        if exemplar.time_unix_nano:
            buf += b"\x11"  # Exemplar 2 time_unix_nano
            buf += _pack_q(exemplar.time_unix_nano)
        value = exemplar.value
        if isinstance(value, int) and not _INT64_MIN <= value <= _INT64_MAX:
            value = _as_double(value)  # as_int is an sfixed64
        if isinstance(value, float):
            buf += b"\x19"  # Exemplar 3 as_double
            buf += _pack_d(value)
            is_int = False
        elif isinstance(value, int):
            is_int = True
        else:
            raise EncodeError(f"an exemplar value must be an int or a float, got {type(value).__name__}")
        if exemplar.span_id is not None and exemplar.trace_id is not None:
            buf += b"\x22\x08"  # Exemplar 4 span_id, len 8
            buf += _pack_id8(exemplar.span_id)
            buf += b"\x2a\x10"  # Exemplar 5 trace_id, len 16
            buf += exemplar.trace_id.to_bytes(16, "big")
        if is_int:
            buf += b"\x31"  # Exemplar 6 as_int (sfixed64)
            buf += _pack_sq(value)
        attributes = _plain(exemplar.filtered_attributes)
        if attributes:
            _write_attributes(buf, b"\x3a", attributes)  # Exemplar 7 filtered_attributes
        _patch(buf, start)


def _write_number_points(buf: bytearray, points: Sequence[Any], with_start: bool) -> None:
    for point in points:
        buf += b"\x0a\x00"  # Gauge/Sum 1 data_points
        start = len(buf)
        # NumberDataPoint 2 start_time_unix_nano (not for gauges, as the official encoder), 3 time_unix_nano
        _write_times(buf, point.start_time_unix_nano if with_start else 0, point.time_unix_nano)
        value = point.value
        is_int = isinstance(value, int)
        if is_int and not _INT64_MIN <= value <= _INT64_MAX:
            value, is_int = _as_double(value), False  # as_int is an sfixed64
        if not is_int:
            buf += b"\x21"  # NumberDataPoint 4 as_double
            buf += _pack_d(value)
        if point.exemplars:
            _write_exemplars(buf, b"\x2a", point.exemplars)  # NumberDataPoint 5 exemplars
        if is_int:
            buf += b"\x31"  # NumberDataPoint 6 as_int (sfixed64)
            buf += _pack_sq(value)
        attributes = _plain(point.attributes)
        if attributes:
            _write_attributes(buf, b"\x3a", attributes)  # NumberDataPoint 7 attributes
        _patch(buf, start)


def _count_error(point: Any) -> EncodeError:
    """The error for a histogram point with a count outside uint64 (``struct`` refused to pack it)."""
    counts = [point.count, *getattr(point, "bucket_counts", ()), getattr(point, "zero_count", 0)]
    for buckets in (getattr(point, "positive", None), getattr(point, "negative", None)):
        if buckets is not None:
            counts += buckets.bucket_counts
    bad = next((c for c in counts if not 0 <= c <= _UINT64_MAX), None)
    return EncodeError(f"cannot encode the count {bad}: it is outside the uint64 range")


def _check_counts(point: Any, *counts: Sequence[int]) -> None:
    """The JSON twin of the protobuf writers' uint64 check: ``point.count`` and each of ``counts``."""
    if not 0 <= point.count <= _UINT64_MAX or any(
        values and not (min(values) >= 0 and max(values) <= _UINT64_MAX) for values in counts
    ):
        raise _count_error(point)


def _write_histogram_points(buf: bytearray, points: Sequence[Any]) -> None:
    try:
        _write_histogram_points_unchecked(buf, points)
    except struct.error:  # a count outside uint64 (fixed64): the error names it
        for point in points:
            if not all(0 <= c <= _UINT64_MAX for c in (point.count, *point.bucket_counts)):
                raise _count_error(point) from None
        raise


def _write_histogram_points_unchecked(buf: bytearray, points: Sequence[Any]) -> None:
    for point in points:
        buf += b"\x0a\x00"  # Histogram 1 data_points
        start = len(buf)
        _write_times(buf, point.start_time_unix_nano, point.time_unix_nano)  # HistogramDataPoint 2, 3
        if point.count:
            buf += b"\x21"  # HistogramDataPoint 4 count (fixed64)
            buf += _pack_q(point.count)
        if point.sum is not None:
            buf += b"\x29"  # HistogramDataPoint 5 sum (optional double)
            buf += _pack_d(point.sum)
        counts = point.bucket_counts
        if counts:
            buf += b"\x32"  # HistogramDataPoint 6 bucket_counts (packed fixed64)
            buf += varint(8 * len(counts))
            buf += struct.pack(f"<{len(counts)}Q", *counts)
        bounds = point.explicit_bounds
        if bounds:
            buf += b"\x3a"  # HistogramDataPoint 7 explicit_bounds (packed double)
            buf += varint(8 * len(bounds))
            buf += struct.pack(f"<{len(bounds)}d", *bounds)
        if point.exemplars:
            _write_exemplars(buf, b"\x42", point.exemplars)  # HistogramDataPoint 8 exemplars
        attributes = _plain(point.attributes)
        if attributes:
            _write_attributes(buf, b"\x4a", attributes)  # HistogramDataPoint 9 attributes
        if point.min is not None:
            buf += b"\x59"  # HistogramDataPoint 11 min (optional double)
            buf += _pack_d(point.min)
        if point.max is not None:
            buf += b"\x61"  # HistogramDataPoint 12 max (optional double)
            buf += _pack_d(point.max)
        _patch(buf, start)


def _write_buckets(buf: bytearray, field_tag: bytes, buckets: Any) -> None:
    """Exponential histogram ``positive``/``negative``: written only with bucket counts, as officially."""
    counts = buckets.bucket_counts
    if not counts:
        return
    buf += field_tag
    buf.append(0)
    start = len(buf)
    if buckets.offset:
        buf += b"\x08"  # Buckets 1 offset (sint32)
        buf += varint(zigzag32(buckets.offset))
    V = _V
    data = b"".join([V[c] if 0 <= c < _VN else _uint64_varint(c) for c in counts])
    buf += b"\x12"  # Buckets 2 bucket_counts (packed uint64)
    buf += varint(len(data))
    buf += data
    _patch(buf, start)


def _write_exponential_points(buf: bytearray, points: Sequence[Any]) -> None:
    for point in points:
        buf += b"\x0a\x00"  # ExponentialHistogram 1 data_points
        start = len(buf)
        attributes = _plain(point.attributes)
        if attributes:
            _write_attributes(buf, b"\x0a", attributes)  # ExponentialHistogramDataPoint 1 attributes
        _write_times(buf, point.start_time_unix_nano, point.time_unix_nano)  # 2, 3
        count, zero_count = point.count, point.zero_count
        if not (0 <= count <= _UINT64_MAX and 0 <= zero_count <= _UINT64_MAX):
            raise _count_error(point)
        if count:
            buf += b"\x21"  # 4 count (fixed64)
            buf += _pack_q(count)
        if point.sum is not None:
            buf += b"\x29"  # 5 sum (optional double)
            buf += _pack_d(point.sum)
        if point.scale:
            buf += b"\x30"  # 6 scale (sint32)
            buf += varint(zigzag32(point.scale))
        if zero_count:
            buf += b"\x39"  # 7 zero_count (fixed64)
            buf += _pack_q(zero_count)
        _write_buckets(buf, b"\x42", point.positive)  # 8 positive
        _write_buckets(buf, b"\x4a", point.negative)  # 9 negative
        if point.flags:
            buf += b"\x50"  # 10 flags
            buf += varint(point.flags)
        if point.exemplars:
            _write_exemplars(buf, b"\x5a", point.exemplars)  # 11 exemplars
        if point.min is not None:
            buf += b"\x61"  # 12 min (optional double)
            buf += _pack_d(point.min)
        if point.max is not None:
            buf += b"\x69"  # 13 max (optional double)
            buf += _pack_d(point.max)
        _patch(buf, start)


def _write_metrics(buf: bytearray, metrics: Iterable[Metric]) -> None:
    lp_get = _LP.get
    for metric in metrics:
        buf += b"\x12\x00"  # ScopeMetrics 2 metrics
        start = len(buf)
        text = metric.name
        if text:
            buf += b"\x0a"  # Metric 1 name
            buf += lp_get(text) or _lp_str(text)
        text = metric.description  # type: ignore[assignment]
        if text:
            buf += b"\x12"  # Metric 2 description
            buf += lp_get(text) or _lp_str(text)
        text = metric.unit  # type: ignore[assignment]
        if text:
            buf += b"\x1a"  # Metric 3 unit
            buf += lp_get(text) or _lp_str(text)
        data: Any = metric.data
        points = getattr(data, "data_points", None)
        # The official encoder sets the data kind (and its temporality) only while adding a data point.
        if points:
            if isinstance(data, Sum):
                buf += b"\x3a\x00"  # Metric 7 sum
                data_start = len(buf)
                _write_number_points(buf, points, True)  # Sum 1 data_points
                if data.aggregation_temporality:
                    buf += b"\x10"  # Sum 2 aggregation_temporality
                    buf += _V[data.aggregation_temporality]
                if data.is_monotonic:
                    buf += b"\x18\x01"  # Sum 3 is_monotonic
                _patch(buf, data_start)
            elif isinstance(data, Gauge):
                buf += b"\x2a\x00"  # Metric 5 gauge
                data_start = len(buf)
                _write_number_points(buf, points, False)  # Gauge 1 data_points
                _patch(buf, data_start)
            elif isinstance(data, Histogram):
                buf += b"\x4a\x00"  # Metric 9 histogram
                data_start = len(buf)
                _write_histogram_points(buf, points)  # Histogram 1 data_points
                if data.aggregation_temporality:
                    buf += b"\x10"  # Histogram 2 aggregation_temporality
                    buf += _V[data.aggregation_temporality]
                _patch(buf, data_start)
            elif isinstance(data, ExponentialHistogram):
                buf += b"\x52\x00"  # Metric 10 exponential_histogram
                data_start = len(buf)
                _write_exponential_points(buf, points)  # ExponentialHistogram 1 data_points
                if data.aggregation_temporality:
                    buf += b"\x10"  # ExponentialHistogram 2 aggregation_temporality
                    buf += _V[data.aggregation_temporality]
                _patch(buf, data_start)
            else:
                logger.warning(
                    "metric %r: unsupported data type %s, sent without data", metric.name, type(data).__name__
                )
        _patch(buf, start)


def encode_metric_items(items: Sequence[MetricItem]) -> bytes:
    """An ``ExportMetricsServiceRequest`` (protobuf) of :func:`metric_items`. Empty gives ``b""``."""
    return _write_request(_metric_groups(items), _write_metrics)


def encode_metrics_data(data: MetricsData) -> bytes:
    """An ``ExportMetricsServiceRequest`` (protobuf) of an SDK ``MetricsData``."""
    return encode_metric_items(metric_items(data))


def _exemplars_json(exemplars: Sequence[Any]) -> list[dict[str, Any]]:
    result: list[dict[str, Any]] = []
    for exemplar in exemplars:
        out: dict[str, Any] = {}
        attributes = _plain(exemplar.filtered_attributes)
        if attributes:
            out["filteredAttributes"] = _attributes(attributes)
        if exemplar.time_unix_nano:
            out["timeUnixNano"] = str(exemplar.time_unix_nano)
        value = exemplar.value
        if isinstance(value, int) and not _INT64_MIN <= value <= _INT64_MAX:
            value = _as_double(value)  # as_int is an sfixed64
        if isinstance(value, float):
            out["asDouble"] = _float(value)
        elif isinstance(value, int):
            out["asInt"] = str(int(value))
        else:
            raise EncodeError(f"an exemplar value must be an int or a float, got {type(value).__name__}")
        if exemplar.span_id is not None and exemplar.trace_id is not None:
            out["spanId"] = f"{exemplar.span_id:016x}"
            out["traceId"] = f"{exemplar.trace_id:032x}"
        result.append(out)
    return result


def _point_json(point: Any, with_start: bool = True) -> dict[str, Any]:
    out: dict[str, Any] = {}
    attributes = _plain(point.attributes)
    if attributes:
        out["attributes"] = _attributes(attributes)
    if with_start and point.start_time_unix_nano:
        out["startTimeUnixNano"] = str(point.start_time_unix_nano)
    if point.time_unix_nano:
        out["timeUnixNano"] = str(point.time_unix_nano)
    if point.exemplars:
        out["exemplars"] = _exemplars_json(point.exemplars)
    return out


def _number_point_json(point: Any, with_start: bool) -> dict[str, Any]:
    out = _point_json(point, with_start)
    value = point.value
    if isinstance(value, int) and _INT64_MIN <= value <= _INT64_MAX:
        out["asInt"] = str(int(value))
    else:  # a float, or an int outside int64 (as_int is an sfixed64)
        out["asDouble"] = _float(_as_double(value) if isinstance(value, int) else value)
    return out


def _histogram_point_json(point: Any) -> dict[str, Any]:
    _check_counts(point, point.bucket_counts)
    out = _point_json(point)
    if point.count:
        out["count"] = str(point.count)
    if point.sum is not None:
        out["sum"] = _float(point.sum)
    if point.bucket_counts:
        out["bucketCounts"] = [str(c) for c in point.bucket_counts]
    if point.explicit_bounds:
        out["explicitBounds"] = [_float(b) for b in point.explicit_bounds]
    if point.min is not None:
        out["min"] = _float(point.min)
    if point.max is not None:
        out["max"] = _float(point.max)
    return out


def _buckets_json(buckets: Any) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if buckets.offset:
        out["offset"] = buckets.offset
    out["bucketCounts"] = [str(c) for c in buckets.bucket_counts]
    return out


def _exponential_point_json(point: Any) -> dict[str, Any]:
    _check_counts(point, (point.zero_count,), point.positive.bucket_counts, point.negative.bucket_counts)
    out = _point_json(point)
    if point.count:
        out["count"] = str(point.count)
    if point.sum is not None:
        out["sum"] = _float(point.sum)
    if point.scale:
        out["scale"] = point.scale
    if point.zero_count:
        out["zeroCount"] = str(point.zero_count)
    if point.positive.bucket_counts:
        out["positive"] = _buckets_json(point.positive)
    if point.negative.bucket_counts:
        out["negative"] = _buckets_json(point.negative)
    if point.flags:
        out["flags"] = point.flags
    if point.min is not None:
        out["min"] = _float(point.min)
    if point.max is not None:
        out["max"] = _float(point.max)
    return out


def _metric_json(metric: Metric) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if metric.name:
        out["name"] = metric.name
    if metric.description:
        out["description"] = metric.description
    if metric.unit:
        out["unit"] = metric.unit
    data: Any = metric.data
    points = getattr(data, "data_points", None)
    if not points:
        return out
    body: dict[str, Any]
    if isinstance(data, Sum):
        body = {"dataPoints": [_number_point_json(p, True) for p in points]}
        if data.aggregation_temporality:
            body["aggregationTemporality"] = int(data.aggregation_temporality)
        if data.is_monotonic:
            body["isMonotonic"] = True
        out["sum"] = body
    elif isinstance(data, Gauge):
        out["gauge"] = {"dataPoints": [_number_point_json(p, False) for p in points]}
    elif isinstance(data, Histogram):
        body = {"dataPoints": [_histogram_point_json(p) for p in points]}
        if data.aggregation_temporality:
            body["aggregationTemporality"] = int(data.aggregation_temporality)
        out["histogram"] = body
    elif isinstance(data, ExponentialHistogram):
        body = {"dataPoints": [_exponential_point_json(p) for p in points]}
        if data.aggregation_temporality:
            body["aggregationTemporality"] = int(data.aggregation_temporality)
        out["exponentialHistogram"] = body
    else:
        logger.warning("metric %r: unsupported data type %s, sent without data", metric.name, type(data).__name__)
    return out


def encode_metric_items_json(items: Sequence[MetricItem]) -> bytes:
    """The same request as :func:`encode_metric_items`, as OTLP/JSON (UTF-8). Empty gives ``b"{}"``."""
    return _json_request(_metric_groups(items), ("resourceMetrics", "scopeMetrics", "metrics"), _metric_json)


def encode_metrics_data_json(data: MetricsData) -> bytes:
    """The same request as :func:`encode_metrics_data`, as OTLP/JSON (UTF-8)."""
    return encode_metric_items_json(metric_items(data))


# ------------------------------------------------------------------------------------------------------------
# The compiled twins, when aiotlp.encoding._compat chose them (same bytes, see there). The span writer reads the
# same private fields as _write_spans; it is given the SDK classes that _write_spans compares types against (the
# extension imports nothing from OpenTelemetry), the trace-state formatter, and TraceState and Status, whose
# len() and properties it reads from their fields.

if _compat.speedups is not None:
    _SDK_TYPES: Final = (_BA, _BL, _EVENT, _trace_state, TraceState, Status)
    _write_sdk_spans: Final = _compat.speedups.write_sdk_spans

    def _write_spans_compiled(buf: bytearray, spans: Iterable[ReadableSpan]) -> None:
        _write_sdk_spans(buf, spans, _SDK_TYPES)

    # an extension built before sdk_span_field existed: the pure one over the compiled batch writer
    _span_field_compiled = (
        functools.partial(_compat.speedups.sdk_span_field, _SDK_TYPES)
        if hasattr(_compat.speedups, "sdk_span_field")
        else _span_field
    )
    _compat.accelerate(
        globals(),
        _write_attributes=_compat.speedups.write_attributes,
        _write_any=_compat.speedups.write_any,
        _write_spans=_write_spans_compiled,
        _span_field=_span_field_compiled,
    )
