"""SpanCore: a live span's state, and its protobuf bytes, without OpenTelemetry objects (pure-Python twin).

Interface changes from the brief (issue 16), agreed for both twins (this one and ``SpanCore`` in ``_speedups.c``):

1. ``limits`` is a 6-tuple *or a 7-tuple*: ``(max_attributes, max_events, max_links, max_event_attributes,
   max_link_attributes, max_attribute_length[, max_span_attribute_length])``, each ``-1`` for unlimited. The
   SDK bounds the span's *own* attribute values by ``SpanLimits.max_span_attribute_length`` and event and link
   attribute values by ``max_attribute_length`` (they differ when ``OTEL_SPAN_ATTRIBUTE_VALUE_LENGTH_LIMIT`` is
   set); without the 7th item the span's attributes use the 6th.
2. Attribute validation is the SDK 1.45 ``BoundedAttributes`` (``opentelemetry/attributes/__init__.py``), which
   no longer refuses values: values are "extended attributes" (``None``, bool, int, float, bytes and str kept
   as they are, subclasses too; any other ``Sequence`` becomes a tuple and any ``Mapping`` a dict, cleaned
   recursively, strings truncated at every depth); a value of another type becomes ``str(value)`` when its class
   defines ``__str__`` or ``__repr__``, else ``None`` (a warning either way). ``set_attribute`` with an empty or
   non-str key stores nothing but *counts one dropped* (as the SDK does); ``set_attributes`` drops empty keys,
   turns non-str keys into ``str(key)`` (classes without ``__str__``/``__repr__``: dropped) and counts in
   ``dropped_attributes`` how many keys the mapping lost. A limit of 0 drops (and counts) without validating.
3. ``add_event(name, attributes=None, timestamp=None)`` and ``add_link(trace_id, span_id, flags, trace_state,
   attributes=None)``: the optional arguments have defaults. A link is left out (silently, as the SDK) only when
   its context is invalid (trace_id or span_id 0) *and* it has neither attributes nor a trace state: the SDK
   keeps an invalid context that carries either.
4. ``set_status_fields`` changes the status even after ``end()`` (the SDK-layer wrapper checks ``ended`` and
   warns); ``update_name``, ``set_attribute(s)``, ``add_event`` and ``add_link`` on an ended span change nothing
   and report through the warning hook with the SDK's texts: "Setting attribute on ended span.",
   "Tried calling update_name on an ended span.", "Tried calling _add_event on an ended span.",
   "Tried calling _add_link on an ended span."; ``end()`` does not warn (returns False).
5. Warning hook texts otherwise (``opentelemetry.attributes``' texts, formatted): "String attribute value exceeds
   max length of N, truncating.", "Attributes dict is full. Dropping the oldest key-value pair from attributes to
   make space for the new key-value pair.", "invalid key `K`. must be non-empty string. Dropping key from
   attributes.", "invalid attribute key `K`. must be non-empty string. Dropping key from attributes.", and the
   two "Invalid type `<class 'T'>` for attribute ..." texts. The SDK layer routes texts beginning with
   "Setting attribute" or "Tried calling" to ``opentelemetry.sdk.trace``, the rest to ``opentelemetry.attributes``.
6. ``encode()`` writes ``Span.kind``, ``Span.flags`` and ``Link.flags`` only when not 0 (proto3; the SDK layer
   always passes non-zero ones); ``trace_state`` is written as given when not empty.
7. The methods the SDK layer inherits as the API's take the API's keyword names too: ``set_attribute(key,
   value)``, ``set_attributes(attributes)``, ``add_event(name, attributes=None, timestamp=None)``,
   ``update_name(name)`` (applications call ``span.add_event("x", attributes=..., timestamp=...)``). A core
   without keywords still works: the SDK layer then wraps these four in Python (a little slower).

The state of one span, as the SDK's ``Span`` keeps it (``opentelemetry/sdk/trace/__init__.py``: a
``BoundedAttributes`` for the attributes, bounded deques for events and links, each with its dropped count), held
in plain Python values: ints for ids, times, kind (the OTLP enum value) and status code; ``str`` for the name, the
trace state (W3C header form) and the status description; a dict for the attributes; events and links as tuples.
:meth:`SpanCore.encode` writes the span's ``ScopeSpans.spans`` field, byte for byte what
``aiotlp.sdk._encode_spans._span_field`` writes for the SDK span with the same content, through the same attribute
writer (``aiotlp.encoding._protobuf._write_attributes``, compiled or pure as ``_compat`` chose).

Sans-IO: no OpenTelemetry, no asyncio. The SDK layer (``aiotlp.sdk._span.Span``) subclasses the implementation
:mod:`aiotlp.encoding._compat` chose and adds the OpenTelemetry API on top.

Thread safety: ``set_attribute(s)``, ``add_event``, ``add_link`` and ``end`` take the span's lock around their
check-then-act; from several threads at once nothing is lost and no limit is exceeded.
"""

from __future__ import annotations

import struct
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Final

from . import _protobuf
from ._protobuf import _lp_str
from ._wire import VARINT, VARINT_TABLE_SIZE, varint

__all__ = ["SpanCore", "set_warning_hook"]

_time_ns: Final = time.time_ns
_V: Final = VARINT
_VN: Final = VARINT_TABLE_SIZE
_M64: Final = (1 << 64) - 1
_pack_q: Final = struct.Struct("<Q").pack
_pack_i: Final = struct.Struct("<I").pack
_pack_two_fixed64: Final = struct.Struct("<BQBQ").pack
_pack_ids: Final = struct.Struct(">2sQQ2sQ").pack
_pack_ids_parent: Final = struct.Struct(">2sQQ2sQ2sQ").pack
_pack_id8: Final = struct.Struct(">Q").pack

# Span.status (15) without a message, by code (UNSET, OK, ERROR)
_STATUS: Final = (b"\x7a\x00", b"\x7a\x02\x18\x01", b"\x7a\x02\x18\x02")
_KIND: Final = tuple(b"\x30" + bytes((value,)) for value in range(6))

_SCALARS: Final = frozenset((type(None), bool, int, float, bytes))
_PLAIN: Final = (type(None), bool, int, float, bytes)


def _no_warning(message: str) -> None:
    pass


_warn: Callable[[str], None] = _no_warning


def set_warning_hook(hook: Callable[[str], None] | None) -> Callable[[str], None] | None:
    """Install the callable that receives each warning text (one ``str``); ``None`` silences them. Returns the
    hook it replaces (``None`` if there was none), as the C twin does."""
    global _warn
    previous = None if _warn is _no_warning else _warn
    _warn = _no_warning if hook is None else hook
    return previous


def _has_str(value: object) -> bool:
    kind = type(value)
    return kind.__str__ is not object.__str__ or kind.__repr__ is not object.__repr__


_FULL: Final = (
    "Attributes dict is full. Dropping the oldest key-value pair from attributes to make space for the new "
    "key-value pair."
)


def _clean(value: Any, max_len: int) -> Any:
    """A value as the SDK's ``_clean_attribute_value`` keeps it (``max_len`` -1: no truncation)."""
    kind = type(value)
    if kind in _SCALARS:
        return value
    if kind is str:
        if 0 <= max_len < len(value):
            _warn(f"String attribute value exceeds max length of {max_len}, truncating.")
            return value[:max_len]
        return value
    if isinstance(value, _PLAIN):  # subclasses (IntEnum, ...) are kept as they are
        return value
    if isinstance(value, str):
        if 0 <= max_len < len(value):
            _warn(f"String attribute value exceeds max length of {max_len}, truncating.")
            return value[:max_len]
        return value
    if isinstance(value, Sequence):
        return tuple([_clean(item, max_len) for item in value])
    if isinstance(value, Mapping):
        return _clean_mapping(value, max_len)
    _warn(
        f"Invalid type `{type(value)}` for attribute value. Expected one of bool, str, None, bytes, int, float or a "
        "Mapping or Sequence of those types. Value's __str__ method will be called if it exists, otherwise the "
        "value will be replaced with None."
    )
    return str(value) if _has_str(value) else None


def _clean_mapping(mapping: Mapping[Any, Any], max_len: int) -> dict[str, Any]:
    out: dict[str, Any] = {}
    scalars = _SCALARS
    for key, value in mapping.items():
        if type(key) is str and key:  # the common case, inlined: a str key, a scalar or a short str value
            kind = type(value)
            if kind in scalars or (kind is str and (max_len < 0 or len(value) <= max_len)):
                out[key] = value
                continue
        if not key:
            _warn(f"invalid attribute key `{key}`. must be non-empty string. Dropping key from attributes.")
            continue
        if not isinstance(key, str):
            _warn(
                f"Invalid type `{type(key)}` for attribute key `{key}`, must be a str. Key's `__str__/__repr__` "
                "method will be called if it exists, otherwise the key/value pair will be dropped."
            )
            if not _has_str(key):
                continue
            key = str(key)
        out[key] = _clean(value, max_len)
    return out


def _bounded(attributes: Mapping[str, Any] | None, maxlen: int, max_len: int) -> tuple[dict[str, Any], int]:
    """An event's or a link's attributes: (dict, dropped), as an SDK ``BoundedAttributes`` made from them."""
    if not attributes:
        return {}, 0
    if maxlen == 0:
        return {}, len(attributes)
    cleaned = _clean_mapping(attributes, max_len)
    dropped = len(attributes) - len(cleaned)
    if maxlen < 0 or len(cleaned) <= maxlen:
        return cleaned, dropped
    out: dict[str, Any] = {}
    for key, value in cleaned.items():
        if len(out) >= maxlen:
            _warn(_FULL)
            del out[next(iter(out))]
            dropped += 1
        out[key] = value
    return out, dropped


class SpanCore:
    """One span's state (see the module docstring). Subclassable; the SDK layer adds the OpenTelemetry API."""

    __slots__ = (
        "_attributes",
        "_dropped_attributes",
        "_dropped_events",
        "_dropped_links",
        "_end_time",
        "_events",
        "_flags",
        "_kind",
        "_limits",
        "_links",
        "_lock",
        "_name",
        "_parent_span_id",
        "_span_id",
        "_start_time",
        "_status_code",
        "_status_description",
        "_trace_id",
        "_trace_state",
    )

    def __init__(
        self,
        name: str,
        trace_id: int,
        span_id: int,
        parent_span_id: int,
        flags: int,
        trace_state: str,
        kind: int,
        start_time: int,
        limits: tuple[int, ...],
    ) -> None:
        if len(limits) == 6:
            limits = (*limits, limits[5])
        elif len(limits) != 7:
            raise ValueError(f"limits must be a tuple of 6 or 7 ints, got {limits!r}")
        self._name = name
        self._trace_id = trace_id
        self._span_id = span_id
        self._parent_span_id = parent_span_id
        self._flags = flags
        self._trace_state = trace_state
        self._kind = kind
        self._start_time = start_time
        self._end_time: int | None = None
        # (max_attributes, max_events, max_links, max_event_attributes, max_link_attributes,
        #  max_attribute_length, max_span_attribute_length)
        self._limits: tuple[int, ...] = limits
        self._attributes: dict[str, Any] = {}
        self._dropped_attributes = 0
        self._events: deque[tuple[str, int, dict[str, Any], int]] | None = None
        self._dropped_events = 0
        self._links: deque[tuple[int, int, int, str, dict[str, Any], int]] | None = None
        self._dropped_links = 0
        self._status_code = 0
        self._status_description = ""
        self._lock = threading.Lock()

    # -- attributes ------------------------------------------------------------------------------------------

    def _put(self, key: str, value: Any) -> None:
        """Store a clean (key, value) under the limit (the lock held)."""
        attributes = self._attributes
        if key in attributes:
            del attributes[key]
        else:
            maxlen = self._limits[0]
            if 0 <= maxlen <= len(attributes):
                _warn(_FULL)
                del attributes[next(iter(attributes))]
                self._dropped_attributes += 1
        attributes[key] = value

    def set_attribute(self, key: str, value: Any) -> None:
        """Set one attribute (the SDK's ``Span.set_attribute``: validation, truncation, limit, eviction)."""
        with self._lock:
            if self._end_time is not None:
                _warn("Setting attribute on ended span.")
                return
            limits = self._limits
            if limits[0] == 0:
                self._dropped_attributes += 1
                return
            if not key or not isinstance(key, str):
                _warn(f"invalid key `{key}`. must be non-empty string. Dropping key from attributes.")
                self._dropped_attributes += 1
                return
            kind = type(value)
            if kind is str:
                max_len = limits[6]
                if 0 <= max_len < len(value):
                    _warn(f"String attribute value exceeds max length of {max_len}, truncating.")
                    value = value[:max_len]
            elif kind not in _SCALARS:
                value = _clean(value, limits[6])
            self._put(key, value)

    def set_attributes(self, attributes: Mapping[str, Any]) -> None:
        """Set several attributes (the SDK's ``Span.set_attributes``)."""
        with self._lock:
            if self._end_time is not None:
                _warn("Setting attribute on ended span.")
                return
            if self._limits[0] == 0:
                self._dropped_attributes += len(attributes)
                return
            cleaned = _clean_mapping(attributes, self._limits[6])
            self._dropped_attributes += len(attributes) - len(cleaned)
            current = self._attributes
            maxlen = self._limits[0]
            if (maxlen < 0 or len(current) + len(cleaned) <= maxlen) and current.keys().isdisjoint(cleaned):
                current.update(cleaned)  # what _put does one by one: new keys, none evicted
                return
            for key, value in cleaned.items():
                self._put(key, value)

    # -- events, links, name, status -------------------------------------------------------------------------

    def add_event(self, name: str, attributes: Mapping[str, Any] | None = None, timestamp: int | None = None) -> None:
        """Add an event (the SDK's ``Span.add_event``); ``timestamp`` None: now."""
        limits = self._limits
        values, dropped = _bounded(attributes, limits[3], limits[5])
        event = (name, _time_ns() if timestamp is None else timestamp, values, dropped)
        with self._lock:
            if self._end_time is not None:
                ended = True
            else:
                ended = False
                events = self._events
                if events is None:
                    events = self._events = deque(maxlen=None if limits[1] < 0 else limits[1])
                if len(events) == limits[1]:
                    self._dropped_events += 1
                events.append(event)
        if ended:
            _warn("Tried calling _add_event on an ended span.")

    def add_link(
        self,
        trace_id: int,
        span_id: int,
        flags: int,
        trace_state: str,
        attributes: Mapping[str, Any] | None = None,
    ) -> None:
        """Add a link (the SDK's ``Span.add_link``); an invalid context without attributes or trace state is
        left out."""
        if not (trace_id and span_id) and not (attributes or trace_state):
            return
        limits = self._limits
        values, dropped = _bounded(attributes, limits[4], limits[5])
        link = (trace_id, span_id, flags, trace_state, values, dropped)
        with self._lock:
            if self._end_time is not None:
                ended = True
            else:
                ended = False
                links = self._links
                if links is None:
                    links = self._links = deque(maxlen=None if limits[2] < 0 else limits[2])
                if len(links) == limits[2]:
                    self._dropped_links += 1
                links.append(link)
        if ended:
            _warn("Tried calling _add_link on an ended span.")

    def update_name(self, name: str) -> None:
        if self._end_time is not None:
            _warn("Tried calling update_name on an ended span.")
            return
        self._name = name

    def set_status_fields(self, code: int, description: str) -> None:
        """Set the status as it is (0 unset, 1 ok, 2 error); the rules are the SDK layer's."""
        self._status_code = code
        self._status_description = description

    def end(self, end_time: int | None = None) -> bool:
        """End the span (``end_time`` None: now): True the first time, False (and nothing changed) after."""
        with self._lock:
            if self._end_time is not None:
                return False
            self._end_time = _time_ns() if end_time is None else end_time
            return True

    # -- read-only views -------------------------------------------------------------------------------------

    @property
    def name(self) -> str:
        return self._name

    @property
    def trace_id(self) -> int:
        return self._trace_id

    @property
    def span_id(self) -> int:
        return self._span_id

    @property
    def parent_span_id(self) -> int:
        return self._parent_span_id

    @property
    def flags(self) -> int:
        return self._flags

    @property
    def trace_state(self) -> str:
        return self._trace_state

    @property
    def kind(self) -> int:
        return self._kind

    @property
    def start_time(self) -> int:
        return self._start_time

    @property
    def end_time(self) -> int | None:
        return self._end_time

    @property
    def ended(self) -> bool:
        return self._end_time is not None

    @property
    def status_code(self) -> int:
        return self._status_code

    @property
    def status_description(self) -> str:
        return self._status_description

    @property
    def dropped_attributes(self) -> int:
        return self._dropped_attributes

    @property
    def dropped_events(self) -> int:
        return self._dropped_events

    @property
    def dropped_links(self) -> int:
        return self._dropped_links

    @property
    def attributes(self) -> dict[str, Any]:
        """A new dict of the attributes, in insertion order."""
        with self._lock:
            return dict(self._attributes)

    @property
    def events(self) -> list[tuple[str, int, dict[str, Any], int]]:
        """``(name, timestamp, attributes, dropped_attributes_count)`` per event, oldest first."""
        events = self._events
        if events is None:
            return []
        with self._lock:
            return [(name, ts, dict(values), dropped) for name, ts, values, dropped in events]

    @property
    def links(self) -> list[tuple[int, int, int, str, dict[str, Any], int]]:
        """``(trace_id, span_id, flags, trace_state, attributes, dropped_attributes_count)`` per link."""
        links = self._links
        if links is None:
            return []
        with self._lock:
            return [(t, s, f, ts, dict(values), dropped) for t, s, f, ts, values, dropped in links]

    # -- protobuf --------------------------------------------------------------------------------------------

    def encode(self) -> bytes:
        """The span's ``ScopeSpans.spans`` field: tag 0x12, length, ``Span`` message."""
        write_attributes = _protobuf._write_attributes  # the implementation _compat chose, now
        buf = bytearray(b"\x12\x00")
        trace_id = self._trace_id
        parent = self._parent_span_id
        trace_state = self._trace_state
        # Span 1 trace_id (len 16), 2 span_id (len 8), 3 trace_state, 4 parent_span_id (len 8)
        if trace_state:
            buf += _pack_ids(b"\x0a\x10", trace_id >> 64, trace_id & _M64, b"\x12\x08", self._span_id)
            buf += b"\x1a"
            buf += _lp_str(trace_state)
            if parent:
                buf += b"\x22\x08"
                buf += _pack_id8(parent)
        elif parent:
            buf += _pack_ids_parent(
                b"\x0a\x10", trace_id >> 64, trace_id & _M64, b"\x12\x08", self._span_id, b"\x22\x08", parent
            )
        else:
            buf += _pack_ids(b"\x0a\x10", trace_id >> 64, trace_id & _M64, b"\x12\x08", self._span_id)
        if self._name:
            buf += b"\x2a"  # Span 5 name
            buf += _lp_str(self._name)
        kind = self._kind
        if kind:
            buf += _KIND[kind] if 0 < kind < 6 else b"\x30" + varint(kind)  # Span 6 kind
        t0 = self._start_time
        t1 = self._end_time
        if t0 and t1:
            buf += _pack_two_fixed64(0x39, t0, 0x41, t1)  # Span 7 start, 8 end
        else:
            if t0:
                buf += b"\x39"
                buf += _pack_q(t0)
            if t1:
                buf += b"\x41"
                buf += _pack_q(t1)
        with self._lock:
            attributes = self._attributes
            dropped = write_attributes(buf, b"\x4a", attributes) if attributes else 0  # Span 9 attributes
            dropped += self._dropped_attributes
            if dropped:
                buf += b"\x50"  # Span 10 dropped_attributes_count
                buf += varint(dropped)
            events = self._events
            if events:
                for name, ts, values, dropped in events:
                    buf += b"\x5a\x00"  # Span 11 events
                    start = len(buf)
                    if ts:
                        buf += b"\x09"  # Event 1 time_unix_nano
                        buf += _pack_q(ts)
                    if name:
                        buf += b"\x12"  # Event 2 name
                        buf += _lp_str(name)
                    if values:
                        dropped += write_attributes(buf, b"\x1a", values)  # Event 3 attributes
                    if dropped:
                        buf += b"\x20"  # Event 4 dropped_attributes_count
                        buf += varint(dropped)
                    _patch(buf, start)
            if self._dropped_events:
                buf += b"\x60"  # Span 12 dropped_events_count
                buf += varint(self._dropped_events)
            links = self._links
            if links:
                for t, s, flags, state, values, dropped in links:
                    buf += b"\x6a\x00"  # Span 13 links
                    start = len(buf)
                    # Link 1 trace_id (len 16), 2 span_id (len 8)
                    buf += _pack_ids(b"\x0a\x10", t >> 64, t & _M64, b"\x12\x08", s)
                    if state:
                        buf += b"\x1a"  # Link 3 trace_state
                        buf += _lp_str(state)
                    if values:
                        dropped += write_attributes(buf, b"\x22", values)  # Link 4 attributes
                    if dropped:
                        buf += b"\x28"  # Link 5 dropped_attributes_count
                        buf += varint(dropped)
                    if flags:
                        buf += b"\x35"  # Link 6 flags (fixed32)
                        buf += _pack_i(flags)
                    _patch(buf, start)
            if self._dropped_links:
                buf += b"\x70"  # Span 14 dropped_links_count
                buf += varint(self._dropped_links)
        code = self._status_code
        description = self._status_description
        if description:  # Span 15 status: 2 message, 3 code
            body = b"\x12" + _lp_str(description)
            if code:
                body += b"\x18" + _V[code]
            buf += b"\x7a"
            buf += varint(len(body))
            buf += body
        else:
            buf += _STATUS[code]
        if self._flags:
            buf += b"\x85\x01"  # Span 16 flags (fixed32)
            buf += _pack_i(self._flags)
        _patch(buf, 2)
        return bytes(buf)


def _patch(buf: bytearray, start: int) -> None:
    n = len(buf) - start
    if n < 0x80:
        buf[start - 1] = n
    else:
        buf[start - 1 : start] = _V[n] if n < _VN else varint(n)
