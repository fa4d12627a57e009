"""SDK spans (``ReadableSpan``) as protobuf: :func:`encode_spans`, and :func:`_span_field` (one span's field, for
:class:`~._encode_source.SourceEncoder`). The writer reads the span's private fields (checked once per class), and
has a compiled twin (``_speedups.write_sdk_spans``, chosen as :mod:`aiotlp.encoding._compat` says). See
:mod:`._encode`.
"""

from __future__ import annotations

import functools
import operator
import struct
from collections.abc import Callable, Iterable, Sequence
from typing import Any, Final

from opentelemetry.attributes import BoundedAttributes
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace import Span as SdkSpan
from opentelemetry.sdk.util import BoundedList
from opentelemetry.trace import TraceState
from opentelemetry.trace.status import Status

from aiotlp.encoding import INT64_MAX as _INT64_MAX
from aiotlp.encoding import INT64_MIN as _INT64_MIN
from aiotlp.encoding import LP_CACHE as _LP
from aiotlp.encoding import accelerate as _accelerate
from aiotlp.encoding import lp_str as _lp_str
from aiotlp.encoding import patch_length as _patch
from aiotlp.encoding import speedups as _speedups
from aiotlp.encoding import (
    varint,
)
from aiotlp.encoding import write_attributes as _write_attributes

from ._encode_common import (
    _BA,
    _BL,
    _EVENT,
    _KIND,
    _LINK_FLAGS_LOCAL,
    _LINK_FLAGS_REMOTE,
    _M64,
    _SPAN_FLAGS_LOCAL,
    _SPAN_FLAGS_REMOTE,
    _STATUS,
    _V,
    _VN,
    _group,
    _pack_d,
    _pack_id8,
    _pack_ids,
    _pack_ids_parent,
    _pack_q,
    _pack_two_fixed64,
    _trace_state,
    _write_counted_attributes,
    _write_request,
)

__all__ = ["encode_spans"]

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


# the last status written by _span_field, and its field followed by the flags field of a local, a remote parent
_status_memo: tuple[object, bytes, bytes] = (None, b"", b"")
_pack_kind_times: Final = struct.Struct("<2sBQBQ").pack  # Span 6 kind (its field), 7 and 8 (tag, fixed64)
_pack_tag_q: Final = struct.Struct("<BQ").pack  # a one-byte tag and a fixed64
# Span 1 trace_id (tag, len 16, the id as 16 big-endian bytes), 2 span_id (tag, len 8, big-endian), [4 parent_span_id]
_pack_ids16: Final = struct.Struct(">2s16s2sQ").pack
_pack_ids16_parent: Final = struct.Struct(">2s16s2sQ2sQ").pack
# Span 11 events: the tag and a one-byte length, by length
_EVENT_HEAD: Final = tuple(b"\x5a" + bytes((n,)) for n in range(0x80))

# _span_field's attribute caches: (key, value) -> that attribute's whole field (tag, length, KeyValue), the bytes
# the attribute writer writes for it; for a span's attributes (Span 9, tag 0x4a) and an event's (Event 3, 0x1a).
# One dict per value type, so that equal values of different types (1, True, 1.0) never meet: exact str and int
# (a str never equals an int), bool, float (not 0.0, as -0.0 == 0.0, nor NaN, which never equals itself). Short
# values only (str values up to 64 characters, keys up to 256, as the writer's own caches); a dict full is
# cleared. Any thread: a lost race loses an insert, never gives a wrong field.
_KV_CACHE_MAX: Final = 4096
_KV_MAX_KEY_CHARS: Final = 256
_KV_MAX_VALUE_CHARS: Final = 64
_SPAN_KV: Final[tuple[dict[Any, bytes], dict[Any, bytes], dict[Any, bytes]]] = ({}, {}, {})
_EVENT_KV: Final[tuple[dict[Any, bytes], dict[Any, bytes], dict[Any, bytes]]] = ({}, {}, {})
_KV_SLOT: Final[dict[type, int]] = {str: 0, int: 0, bool: 1, float: 2}
# KeyValue 2 value (tag, the AnyValue's length) and AnyValue 3 int_value's tag, by the length of the int's varint
_INT_VALUE_HEAD: Final = tuple(b"\x12" + bytes((n + 1,)) + b"\x18" for n in range(11))


# name -> its field (tag, length, UTF-8) as a span's (Span 5, 0x2a) / an event's (Event 2, 0x12) name: names up
# to 256 characters, each dict cleared when full
_SPAN_NAMES: Final[dict[str, bytes]] = {}
_EVENT_NAMES: Final[dict[str, bytes]] = {}


def _name_field(cache: dict[str, bytes], tag: bytes, text: str) -> bytes:
    field = tag + (_LP.get(text) or _lp_str(text))
    if len(text) <= _KV_MAX_KEY_CHARS:
        if len(cache) >= _KV_CACHE_MAX:
            cache.clear()
        cache[text] = field
    return field


def _attribute_field(caches: tuple[dict[Any, bytes], ...], tag: bytes, item: tuple[Any, Any]) -> bytes:
    """The field of one attribute (``item``: key, value) that ``caches`` do not hold, as the attribute writer
    writes it (``b""``: left out, an int outside int64, see :func:`aiotlp.encoding.write_attributes`), kept in
    ``caches`` when it may be. A str, int or float value under a non-empty str key is written here, as the
    writer writes it (a ``KeyValue``: 1 key, 2 value, an ``AnyValue``: 1 string_value, 3 int_value or 4
    double_value); anything else by the writer, which raises as it does (a key that is not a str)."""
    key, value = item
    kind = type(value)
    field = b""
    if type(key) is str and key:
        if kind is str:
            try:
                data = value.encode()
            except UnicodeEncodeError:  # a surrogate: the writer's UTF-8 (aiotlp.encoding._wire.utf8)
                pass
            else:
                n = len(data)
                head = _V[n] if n < _VN else varint(n)
                size = 1 + len(head) + n  # AnyValue 1 string_value
                name = _LP.get(key) or _lp_str(key)
                value_head = _V[size] if size < _VN else varint(size)
                m = 2 + len(name) + len(value_head) + size
                length = _V[m] if m < _VN else varint(m)
                field = b"".join((tag, length, b"\x0a", name, b"\x12", value_head, b"\x0a", head, data))
        elif kind is int:
            if not _INT64_MIN <= value <= _INT64_MAX:
                return field  # left out (and counted by the caller), as the writer does
            data = _V[value] if 0 <= value < _VN else varint(value)
            name = _LP.get(key) or _lp_str(key)
            m = 4 + len(name) + len(data)  # AnyValue 3 int_value: its length is 1 + len(data) (< 0x80)
            length = _V[m] if m < _VN else varint(m)
            field = b"".join((tag, length, b"\x0a", name, _INT_VALUE_HEAD[len(data)], data))
        elif kind is float:
            name = _LP.get(key) or _lp_str(key)
            m = 12 + len(name)  # KeyValue 1 key, 2 value (len 9: AnyValue 4 double_value, tag and 8 bytes)
            field = b"".join((tag, _V[m] if m < _VN else varint(m), b"\x0a", name, b"\x12\x09\x21", _pack_d(value)))
    if not field:
        buf = bytearray()
        _write_attributes(buf, tag, {key: value})
        field = bytes(buf)
    slot = _KV_SLOT.get(kind)
    if (
        slot is None
        or not field
        or type(key) is not str
        or len(key) > _KV_MAX_KEY_CHARS
        or (kind is str and len(value) > _KV_MAX_VALUE_CHARS)
        or (kind is float and not (value and value == value))
    ):
        return field
    cache = caches[slot]
    if len(cache) >= _KV_CACHE_MAX:
        cache.clear()
    cache[item] = field
    return field


def _add_attributes(
    out: list[Any], caches: tuple[dict[Any, bytes], ...], tag: bytes, dropped_tag: bytes, attributes: Any
) -> None:
    """Append the attributes' fields (``tag``) and their dropped count (``dropped_tag``) to ``out``, as
    :func:`_write_counted_attributes` writes them. The SDK's BoundedAttributes is read in line: each attribute's
    field from ``caches`` when they hold it, else :func:`_attribute_field` (which may keep it there); one left out
    (an int outside int64) is counted as dropped. Anything else goes through the writer."""
    if type(attributes) is not _BA:
        buf = bytearray()
        _write_counted_attributes(buf, tag, dropped_tag, attributes)
        out.append(buf)
        return
    dropped = attributes.dropped
    get = caches[0].get
    for item in attributes._dict.items():
        kind = type(item[1])
        if kind is str or kind is int:
            data = get(item)
        elif kind is bool:
            data = caches[1].get(item)
        elif kind is float:
            data = caches[2].get(item)
        else:
            data = None
        if data is None:
            data = _attribute_field(caches, tag, item)
            if not data:
                dropped += 1
                continue
        out.append(data)
    if dropped:
        out.append(dropped_tag)
        out.append(varint(dropped))


def _add_links(out: list[Any], links: Any) -> None:
    """:func:`_span_field`'s Span 13 links and 14 dropped_links_count."""
    if type(links) is _BL:
        dropped = links.dropped
        links = links._dq  # type: ignore[attr-defined]
    else:
        dropped = 0
    buf = bytearray()
    for link in links:
        _write_link(buf, link)
    if dropped:
        buf += b"\x70"  # Span 14 dropped_links_count
        buf += varint(dropped)
    out.append(buf)


def _span_field(span: ReadableSpan) -> bytes:
    """One span's ``ScopeSpans.spans`` field (tag, length, ``Span``): the bytes :func:`_write_spans` writes for a
    batch of one, written here without its per-batch set-up (``on_end``'s hot path, pure Python). The ``Span``
    is written first and its tag and length put before it once its size is known; a span's status field is the
    last one's again when the span holds the same status object (the SDK's unset status is one object)."""
    # The Span's fields are gathered in a list and joined once (no bytearray grown a field at a time); an
    # attribute's field comes from the caches above when they hold it.
    global _status_memo
    context: Any = span._context
    trace_id = context[0]
    parent: Any = span._parent
    trace_state = context[4]
    # Span 1 trace_id (len 16), 2 span_id (len 8), 3 trace_state, 4 parent_span_id (len 8)
    if trace_state:
        text = _trace_state(trace_state)
        out: list[Any] = [
            _pack_ids16(b"\x0a\x10", trace_id.to_bytes(16, "big"), b"\x12\x08", context[1]),
            b"\x1a",
            _LP.get(text) or _lp_str(text),
        ]
        if parent is not None:
            out.append(b"\x22\x08")
            out.append(_pack_id8(parent[1]))
    elif parent is not None:
        out = [
            _pack_ids16_parent(
                b"\x0a\x10", trace_id.to_bytes(16, "big"), b"\x12\x08", context[1], b"\x22\x08", parent[1]
            )
        ]
    else:
        out = [_pack_ids16(b"\x0a\x10", trace_id.to_bytes(16, "big"), b"\x12\x08", context[1])]
    text = span._name
    if text:
        out.append(_SPAN_NAMES.get(text) or _name_field(_SPAN_NAMES, b"\x2a", text))  # Span 5 name
    t0 = span._start_time
    t1 = span._end_time
    if t0 and t1:
        # Span 6 kind, 7 start_time_unix_nano, 8 end_time_unix_nano
        out.append(_pack_kind_times(_KIND[span._kind._value_], 0x39, t0, 0x41, t1))
    else:
        out.append(_KIND[span._kind._value_])  # Span 6 kind
        if t0:
            out.append(_pack_tag_q(0x39, t0))
        if t1:
            out.append(_pack_tag_q(0x41, t1))
    _add_attributes(out, _SPAN_KV, b"\x4a", b"\x50", span._attributes)  # Span 9 attributes, 10 dropped count
    events: Any = span._events
    if type(events) is _BL:
        dropped = events.dropped
        events = events._dq  # type: ignore[attr-defined]
    else:
        dropped = 0
    for event in events:
        if type(event) is _EVENT:
            time, text, attributes = event._timestamp, event._name, event._attributes
        else:
            time, text, attributes = event.timestamp, event.name, event.attributes
        part: list[Any] = [_pack_tag_q(0x09, time)] if time else []  # Event 1 time_unix_nano
        if text:
            part.append(_EVENT_NAMES.get(text) or _name_field(_EVENT_NAMES, b"\x12", text))  # Event 2 name
        _add_attributes(part, _EVENT_KV, b"\x1a", b"\x20", attributes)  # Event 3 attributes, 4 dropped count
        data = b"".join(part)
        n = len(data)
        out.append(_EVENT_HEAD[n] if n < 0x80 else b"\x5a" + varint(n))  # Span 11 events
        out.append(data)
    if dropped:
        out.append(b"\x60")  # Span 12 dropped_events_count
        out.append(varint(dropped))
    links: Any = span._links
    # the SDK's span: an empty BoundedList, one check
    if type(links) is not _BL or links._dq or links.dropped:  # type: ignore[attr-defined]
        _add_links(out, links)
    status = span._status
    memo = _status_memo  # (one tuple, replaced whole: a thread sees an old or a new one, never a mix)
    if memo[0] is not status:
        field = _status_field(status)
        memo = _status_memo = (status, field + _SPAN_FLAGS_LOCAL, field + _SPAN_FLAGS_REMOTE)
    # Span 15 status, 16 flags
    out.append(memo[2] if parent is not None and parent[2] else memo[1])
    data = b"".join(out)
    n = len(data)
    return b"\x12" + (_V[n] if n < _VN else varint(n)) + data  # ScopeSpans 2 spans


# ------------------------------------------------------------------------------------------------------------
# The compiled twins, when aiotlp.encoding._compat chose them (same bytes, see there). The span writer reads the
# same private fields as _write_spans; it is given the SDK classes that _write_spans compares types against (the
# extension imports nothing from OpenTelemetry), the trace-state formatter, and TraceState and Status, whose
# len() and properties it reads from their fields.

_SDK_TYPES: Final = (_BA, _BL, _EVENT, _trace_state, TraceState, Status)

if _speedups is not None:
    _write_sdk_spans: Final = _speedups.write_sdk_spans

    def _write_spans_compiled(buf: bytearray, spans: Iterable[ReadableSpan]) -> None:
        _write_sdk_spans(buf, spans, _SDK_TYPES)

    # an extension built before sdk_span_field existed: the pure one over the compiled batch writer
    _span_field_compiled = (
        functools.partial(_speedups.sdk_span_field, _SDK_TYPES) if hasattr(_speedups, "sdk_span_field") else _span_field
    )
    _accelerate(
        globals(),
        _write_spans=_write_spans_compiled,
        _span_field=_span_field_compiled,
        _write_attributes=_speedups.write_attributes,  # (the pure _span_field's, bound here too)
    )
