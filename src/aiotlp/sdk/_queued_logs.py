"""What ``BatchLogRecordProcessor.on_emit`` queues for a log record: a cheap copy that reads as a
``ReadableLogRecord`` (:class:`_QueuedLog` for an API ``LogRecord``, the common case; :class:`_QueuedOther`
otherwise), without the record's context. See :mod:`._processors`.
"""

from __future__ import annotations

import copy
import functools
import operator
from typing import Any, Final

from opentelemetry._logs import LogRecord as ApiLogRecord
from opentelemetry.context import Context
from opentelemetry.sdk._logs import LogRecordLimits, ReadableLogRecord, ReadWriteLogRecord
from opentelemetry.sdk.resources import Resource

_EMPTY_CONTEXT: Final = Context()
_NOTHING: Final = object()
_READABLE_FIELDS: Final = ("resource", "instrumentation_scope", "limits")


class _QueuedLog(ApiLogRecord):
    """What ``on_emit`` queues for an API ``LogRecord`` (the common case): a shallow copy of it, made as one
    ``__dict__`` copy, without its context, that is its own ``log_record``. The other three fields of a
    ``ReadableLogRecord`` (``resource``, ``instrumentation_scope``, ``limits``) are class attributes of a subclass
    made once per combination (:func:`_queued_class`; a process has a few: one per logger), so the copy keeps
    the API record's shared-key (split) dictionary layout: one small allocation per record, no resize, no
    frozen-dataclass construction. The direct encoder reads it as it reads a ``ReadableLogRecord``."""

    resource: Resource
    instrumentation_scope: Any
    limits: Any

    @property
    def log_record(self) -> ApiLogRecord:
        return self

    def readable(self) -> ReadableLogRecord:
        """A real ``ReadableLogRecord`` over a plain API ``LogRecord`` (for a foreign exporter)."""
        record = _new_object(ApiLogRecord)
        record.__dict__ = dict(self.__dict__)
        return ReadableLogRecord(
            log_record=record,
            resource=self.resource,
            instrumentation_scope=self.instrumentation_scope,
            limits=self.limits,
        )


class _QueuedOther(tuple):  # type: ignore[type-arg]
    """The same for a record of another class (``copy.copy`` of it): a tuple whose fields are read by name."""

    __slots__ = ()

    log_record = property(operator.itemgetter(0))
    resource = property(operator.itemgetter(1))
    instrumentation_scope = property(operator.itemgetter(2))
    limits = property(operator.itemgetter(3))

    def readable(self) -> ReadableLogRecord:
        return ReadableLogRecord(log_record=self[0], resource=self[1], instrumentation_scope=self[2], limits=self[3])


_new_object = object.__new__
_queued_other = functools.partial(tuple.__new__, _QueuedOther)
_QUEUED: Final = (_QueuedLog, _QueuedOther)


def _api_field_count() -> int:
    """How many fields an API ``LogRecord`` has: a record with exactly these (and none of the names
    ``_QueuedLog`` gives its class) takes the fast path; -1 (never) if a future API version uses one."""
    fields = ApiLogRecord().__dict__
    return -1 if not fields.keys().isdisjoint((*_READABLE_FIELDS, "log_record", "readable")) else len(fields)


_API_FIELDS: Final = _api_field_count()
_DEFAULT_LIMITS: Final = LogRecordLimits()
_QUEUED_CLASSES: dict[tuple[int, int, int], type[_QueuedLog]] = {}
_MAX_QUEUED_CLASSES: Final = 256  # beyond this many (resource, scope, limits) combinations: the tuple path


def _queued_class(resource: Resource, scope: object, limits: object) -> type[_QueuedLog] | None:
    """The ``_QueuedLog`` subclass for one (resource, scope, limits), made once; keyed by identity (the class
    keeps the three alive, so the ids stay theirs). Limits equal to the defaults share one object (a record made
    without a logger gets a new one each time). None past the cap of combinations."""
    if type(limits) is LogRecordLimits and limits.__dict__ == _DEFAULT_LIMITS.__dict__:
        limits = _DEFAULT_LIMITS
    key = (id(resource), id(scope), id(limits))
    cls = _QUEUED_CLASSES.get(key)
    if cls is None:
        if len(_QUEUED_CLASSES) >= _MAX_QUEUED_CLASSES:
            return None
        namespace = {"resource": resource, "instrumentation_scope": scope, "limits": limits, "__slots__": ()}
        cls = _QUEUED_CLASSES.setdefault(key, type("_QueuedLog", (_QueuedLog,), namespace))
    return cls


@functools.cache
def _default_resource() -> Resource:
    """The resource of a record emitted without one (what the official processor would make each time)."""
    return Resource.create({})


def _queue_other(log_record: ReadWriteLogRecord, resource: Resource) -> _QueuedOther:
    copied = copy.copy(log_record.log_record)
    copied.context = Context()
    return _queued_other((copied, resource, log_record.instrumentation_scope, log_record.limits))
