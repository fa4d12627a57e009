"""Type stub of the optional C extension ``aiotlp.encoding._speedups`` (source: ``_speedups.c``).

Each function appends to ``buf`` exactly what the pure-Python function it twins appends; on an error ``buf``
is left as it was. Chosen (or not) in :mod:`aiotlp.encoding._compat`.
"""

from collections.abc import Callable, Iterable, Mapping
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
