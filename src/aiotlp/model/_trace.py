"""Spans, with their events, links and status."""

from __future__ import annotations

import enum
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from ._common import (
    EMPTY_RESOURCE,
    EMPTY_SCOPE,
    Attributes,
    InstrumentationScope,
    Resource,
    check_id,
    check_str,
    check_time,
    check_uint,
    validate_attributes,
)

__all__ = ["Event", "Link", "Span", "SpanKind", "Status", "StatusCode"]


class SpanKind(enum.IntEnum):
    """OTLP ``Span.SpanKind`` (the wire values, not the OpenTelemetry API's)."""

    UNSPECIFIED = 0
    INTERNAL = 1
    SERVER = 2
    CLIENT = 3
    PRODUCER = 4
    CONSUMER = 5


class StatusCode(enum.IntEnum):
    UNSET = 0
    OK = 1
    ERROR = 2


@dataclass(frozen=True, slots=True)
class Status:
    code: StatusCode = StatusCode.UNSET
    message: str = ""

    def __post_init__(self) -> None:
        object.__setattr__(self, "code", _enum(StatusCode, self.code, "Status.code"))
        check_str(self.message, "Status.message")


@dataclass(frozen=True, slots=True)
class Event:
    name: str
    time_unix_nano: int = 0
    attributes: Attributes = field(default_factory=dict)
    dropped_attributes_count: int = 0

    def __post_init__(self) -> None:
        check_str(self.name, "Event.name")
        check_time(self.time_unix_nano, "Event.time_unix_nano")
        object.__setattr__(self, "attributes", validate_attributes(self.attributes, "Event.attributes"))
        check_uint(self.dropped_attributes_count, "Event.dropped_attributes_count")


@dataclass(frozen=True, slots=True)
class Link:
    trace_id: bytes
    span_id: bytes
    trace_state: str = ""
    attributes: Attributes = field(default_factory=dict)
    dropped_attributes_count: int = 0
    flags: int = 0

    def __post_init__(self) -> None:
        object.__setattr__(self, "trace_id", check_id(self.trace_id, 16, "Link.trace_id"))
        object.__setattr__(self, "span_id", check_id(self.span_id, 8, "Link.span_id"))
        check_str(self.trace_state, "Link.trace_state")
        object.__setattr__(self, "attributes", validate_attributes(self.attributes, "Link.attributes"))
        check_uint(self.dropped_attributes_count, "Link.dropped_attributes_count")
        check_uint(self.flags, "Link.flags")


@dataclass(frozen=True, slots=True)
class Span:
    """One finished span. ``resource`` and ``scope`` are shared objects; the encoder groups spans by them."""

    trace_id: bytes
    span_id: bytes
    name: str
    start_time_unix_nano: int
    end_time_unix_nano: int
    kind: SpanKind = SpanKind.INTERNAL
    parent_span_id: bytes = b""
    trace_state: str = ""
    flags: int = 0
    attributes: Attributes = field(default_factory=dict)
    dropped_attributes_count: int = 0
    events: Sequence[Event] = ()
    dropped_events_count: int = 0
    links: Sequence[Link] = ()
    dropped_links_count: int = 0
    status: Status = field(default_factory=Status)
    resource: Resource = EMPTY_RESOURCE
    scope: InstrumentationScope = EMPTY_SCOPE

    def __post_init__(self) -> None:
        set_ = object.__setattr__
        set_(self, "trace_id", check_id(self.trace_id, 16, "Span.trace_id"))
        set_(self, "span_id", check_id(self.span_id, 8, "Span.span_id"))
        set_(self, "parent_span_id", check_id(self.parent_span_id, 8, "Span.parent_span_id", optional=True))
        check_str(self.name, "Span.name")
        check_time(self.start_time_unix_nano, "Span.start_time_unix_nano")
        check_time(self.end_time_unix_nano, "Span.end_time_unix_nano")
        set_(self, "kind", _enum(SpanKind, self.kind, "Span.kind"))
        check_str(self.trace_state, "Span.trace_state")
        check_uint(self.flags, "Span.flags")
        set_(self, "attributes", validate_attributes(self.attributes, "Span.attributes"))
        check_uint(self.dropped_attributes_count, "Span.dropped_attributes_count")
        set_(self, "events", _items(self.events, Event, "Span.events"))
        check_uint(self.dropped_events_count, "Span.dropped_events_count")
        set_(self, "links", _items(self.links, Link, "Span.links"))
        check_uint(self.dropped_links_count, "Span.dropped_links_count")
        _instance(self.status, Status, "Span.status")
        _instance(self.resource, Resource, "Span.resource")
        _instance(self.scope, InstrumentationScope, "Span.scope")


def _enum(cls: type[enum.IntEnum], value: Any, where: str) -> enum.IntEnum:
    try:
        return cls(value)
    except ValueError:
        allowed = ", ".join(f"{m.name}={m.value}" for m in cls)
        raise ValueError(f"{where}: {value!r} is not a valid {cls.__name__} ({allowed})") from None


def _instance(value: object, cls: type, where: str) -> None:
    if not isinstance(value, cls):
        raise TypeError(f"{where}: expected {cls.__name__}, got {type(value).__name__}")


def _items(values: object, cls: type, where: str) -> tuple[object, ...]:
    if isinstance(values, (str, bytes)) or not isinstance(values, Sequence):
        raise TypeError(f"{where}: expected a sequence of {cls.__name__}, got {type(values).__name__}")
    for i, v in enumerate(values):
        _instance(v, cls, f"{where}[{i}]")
    return tuple(values)
