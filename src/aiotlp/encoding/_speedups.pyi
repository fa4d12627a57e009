"""Type stub of the optional C extension ``aiotlp.encoding._speedups`` (source: ``_speedups.c``).

Each function appends to ``buf`` exactly what the pure-Python function it twins appends; on an error ``buf``
is left as it was. Chosen (or not) in :mod:`aiotlp.encoding._compat`.
"""

from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

MAX_NESTING_DEPTH: int
"""``aiotlp.model.MAX_NESTING_DEPTH``, compiled in."""

def write_attributes(buf: bytearray, field_tag: bytes, attributes: Mapping[str, Any], depth: int = 0, /) -> int:
    """``aiotlp.encoding._protobuf._write_attributes``: one ``field_tag`` + ``KeyValue`` per item; returns how
    many were left out (``_LeftOut``: nested too deep, or an int outside int64) at ``depth`` 0; deeper,
    ``_LeftOut`` goes through."""

def write_any(buf: bytearray, field_tag: bytes, value: Any, depth: int = 0, /) -> None:
    """``aiotlp.encoding._protobuf._write_any``: ``field_tag`` + an ``AnyValue`` message; raises ``_LeftOut``
    (``buf`` left as it was) when ``value`` nests deeper than ``MAX_NESTING_DEPTH`` (``_TooDeep``) or holds an
    int outside int64 (``_IntOutOfRange``)."""

def write_spans(buf: bytearray, spans: Iterable[Any], /) -> None:
    """``aiotlp.encoding._protobuf._write_spans``: ``ScopeSpans.spans`` entries of aiotlp model spans."""

def write_sdk_spans(
    buf: bytearray,
    spans: Iterable[Any],
    types: tuple[type, type, type, Callable[[Any], str], type, type],
    /,
) -> None:
    """``aiotlp.sdk._encode_spans._write_spans``: ``ScopeSpans.spans`` entries of OpenTelemetry SDK ``ReadableSpan``s.

    ``types`` is ``(BoundedAttributes, BoundedList, Event, trace_state_text, TraceState, Status)``.
    """

def sdk_span_field(types: tuple[type, type, type, Callable[[Any], str], type, type], span: Any, /) -> bytes:
    """``aiotlp.sdk._encode._span_field``: one SDK span's ``ScopeSpans.spans`` field (tag, length, ``Span``)."""

def sdk_span_item(
    types: tuple[type, type, type, Callable[[Any], str], type, type],
    direct: dict[type, bool],
    memo: tuple[object, object, int],
    ids: dict[tuple[int, int], tuple[object, object, int]],
    span: Any,
    /,
) -> Any:
    """``aiotlp.sdk._encode_source._span_item`` (``on_end``'s hot path): ``None`` when the span is not sampled;
    ``(key, field)`` when its class is read directly, its (resource, scope) are ``memo``'s or ``ids``' by identity
    and it encodes (the tuple untracked by the garbage collector); otherwise the span itself."""

def sdk_log_item(
    types: tuple[Any, ...],
    direct: object,
    memo: tuple[object, object, int],
    ids: dict[tuple[int, int], tuple[object, object, int]],
    record: Any,
    /,
) -> Any:
    """``aiotlp.sdk._encode_source._log_item`` (``on_emit``'s hot path): ``(key, field)`` when the record's
    (resource, instrumentation scope) are ``memo``'s or ``ids``' by identity and it encodes (the tuple untracked
    by the garbage collector); otherwise the record itself."""

def set_warning_hook(hook: Callable[[str], object] | None, /) -> Callable[[str], object] | None:
    """Where :class:`SpanCore` reports its warnings (the SDK's texts, one ``str``); ``None`` drops them. Returns
    the hook it replaces."""

class SpanCore:
    """The state of one span, encoded straight to OTLP protobuf: the twin of
    ``aiotlp.encoding._spancore.SpanCore`` (the SDK's ``Span`` / ``BoundedAttributes`` / ``BoundedList`` rules).

    ``limits`` is ``(max_attributes, max_events, max_links, max_event_attributes, max_link_attributes,
    max_attribute_length)``, each ``-1`` for unlimited.
    """

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
        limits: tuple[int, int, int, int, int, int],
    ) -> None: ...
    def set_attribute(self, key: str, value: Any) -> None: ...
    def set_attributes(self, attributes: Mapping[str, Any]) -> None: ...
    def add_event(
        self, name: str, attributes: Mapping[str, Any] | None = None, timestamp: int | None = None
    ) -> None: ...
    def add_link(
        self, trace_id: int, span_id: int, flags: int, trace_state: str, attributes: Mapping[str, Any] | None = None, /
    ) -> None: ...
    def update_name(self, name: str) -> None: ...
    def set_status_fields(self, code: int, description: str | None, /) -> None: ...
    def end(self, end_time: int | None = None, /) -> bool: ...
    def encode(self) -> bytes: ...
    @property
    def name(self) -> str: ...
    @property
    def trace_id(self) -> int: ...
    @property
    def span_id(self) -> int: ...
    @property
    def parent_span_id(self) -> int: ...
    @property
    def flags(self) -> int: ...
    @property
    def trace_state(self) -> str: ...
    @property
    def kind(self) -> int: ...
    @property
    def start_time(self) -> int: ...
    @property
    def end_time(self) -> int | None: ...
    @property
    def ended(self) -> bool: ...
    @property
    def status_code(self) -> int: ...
    @property
    def status_description(self) -> str: ...
    @property
    def dropped_attributes(self) -> int: ...
    @property
    def dropped_events(self) -> int: ...
    @property
    def dropped_links(self) -> int: ...
    @property
    def attributes(self) -> dict[str, Any]: ...
    @property
    def events(self) -> list[tuple[str, int, dict[str, Any], int]]: ...
    @property
    def links(self) -> list[tuple[int, int, int, str, dict[str, Any], int]]: ...

def sdk_log_field(types: tuple[type], record: Any, /) -> bytes:
    """``aiotlp.sdk._encode_logs._log_field``: one SDK log record's ``ScopeLogs.log_records`` field (tag, length,
    ``LogRecord``); ``types`` is ``(BoundedAttributes,)``."""

def write_sdk_logs(buf: bytearray, records: Iterable[Any], types: tuple[type], /) -> None:
    """``aiotlp.sdk._encode_logs._write_log_records``: ``ScopeLogs.log_records`` entries of SDK log records."""

def frame_source(items: Sequence[Any], groups: dict[int, tuple[Any, ...]], /) -> bytes | None:
    """``aiotlp.sdk._encode_source._frame_one``: the request of ``items`` when it is the common batch (a list, a
    list subclass that iterates as one, or a tuple, of ``(key, bytes)`` pairs, all of one exact-int key that
    ``groups`` holds), written in one allocation; ``None`` for anything else (the caller's general path frames
    it, with the same bytes)."""
