"""Log records."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field

from ._common import (
    EMPTY_RESOURCE,
    EMPTY_SCOPE,
    AnyValue,
    Attributes,
    InstrumentationScope,
    Resource,
    check_id,
    check_str,
    check_time,
    check_uint,
    validate_attributes,
    validate_value,
)
from ._trace import _enum, _instance

__all__ = ["LogRecord", "SeverityNumber"]


class SeverityNumber(enum.IntEnum):
    UNSPECIFIED = 0
    TRACE = 1
    TRACE2 = 2
    TRACE3 = 3
    TRACE4 = 4
    DEBUG = 5
    DEBUG2 = 6
    DEBUG3 = 7
    DEBUG4 = 8
    INFO = 9
    INFO2 = 10
    INFO3 = 11
    INFO4 = 12
    WARN = 13
    WARN2 = 14
    WARN3 = 15
    WARN4 = 16
    ERROR = 17
    ERROR2 = 18
    ERROR3 = 19
    ERROR4 = 20
    FATAL = 21
    FATAL2 = 22
    FATAL3 = 23
    FATAL4 = 24


@dataclass(frozen=True, slots=True)
class LogRecord:
    """One log record. ``body`` is any attribute value (a string, a mapping, a list, bytes, ...)."""

    time_unix_nano: int = 0
    observed_time_unix_nano: int = 0
    severity_number: SeverityNumber = SeverityNumber.UNSPECIFIED
    severity_text: str = ""
    body: AnyValue = None
    attributes: Attributes = field(default_factory=dict)
    dropped_attributes_count: int = 0
    flags: int = 0
    trace_id: bytes = b""
    span_id: bytes = b""
    event_name: str = ""
    resource: Resource = EMPTY_RESOURCE
    scope: InstrumentationScope = EMPTY_SCOPE

    def __post_init__(self) -> None:
        set_ = object.__setattr__
        check_time(self.time_unix_nano, "LogRecord.time_unix_nano")
        check_time(self.observed_time_unix_nano, "LogRecord.observed_time_unix_nano")
        set_(self, "severity_number", _enum(SeverityNumber, self.severity_number, "LogRecord.severity_number"))
        check_str(self.severity_text, "LogRecord.severity_text")
        set_(self, "body", validate_value(self.body, "LogRecord.body"))
        set_(self, "attributes", validate_attributes(self.attributes, "LogRecord.attributes"))
        check_uint(self.dropped_attributes_count, "LogRecord.dropped_attributes_count")
        check_uint(self.flags, "LogRecord.flags")
        set_(self, "trace_id", check_id(self.trace_id, 16, "LogRecord.trace_id", optional=True))
        set_(self, "span_id", check_id(self.span_id, 8, "LogRecord.span_id", optional=True))
        check_str(self.event_name, "LogRecord.event_name")
        _instance(self.resource, Resource, "LogRecord.resource")
        _instance(self.scope, InstrumentationScope, "LogRecord.scope")
