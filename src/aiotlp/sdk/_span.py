"""The span of :class:`aiotlp.sdk.TracerProvider`: the OpenTelemetry API over a :class:`~aiotlp.encoding.SpanCore`.

``Span(SpanCore, opentelemetry.trace.Span)`` keeps the span's state in the core (compiled or pure, chosen in
:mod:`aiotlp.encoding._compat`); what it adds is the API's and the SDK's behaviour around it:

- ``set_attribute``, ``set_attributes``, ``add_event``, ``update_name`` are the core's (its warning texts are
  logged here, on the SDK's loggers: :func:`_install_warning_hooks`);
- ``get_span_context()`` builds the ``SpanContext`` once, on first use; ``is_recording()`` until ``end()``;
- ``set_status`` with the SDK's rules (a ``Status`` or a ``StatusCode`` and a description; UNSET ignored; OK is
  final; a description only with ERROR, else the API's warning), ``record_exception`` (the SDK's event),
  ``add_link`` (left out as the SDK leaves links out), ``end()`` (a second one ignored with the SDK's warning),
  ``__enter__`` / ``__exit__`` as the SDK's span;
- what a foreign span processor reads on the span it gets in ``on_start``: ``name``, ``context``, ``parent``,
  ``kind``, ``start_time``, ``end_time``, ``status``, ``attributes``, ``events``, ``links``, ``resource``,
  ``instrumentation_scope``, ``instrumentation_info``, ``dropped_*``, ``to_json()`` (built on demand); and in
  ``on_end`` a real ``opentelemetry.sdk.trace.ReadableSpan`` (:meth:`Span._readable`), built only when such a
  processor is attached.

:class:`CurrentSpan` is ``start_as_current_span``'s context manager: a small class instead of a generator, with
the semantics of the SDK's (``opentelemetry.trace.use_span``: the span set in the context, an ``Exception``
recorded and the status set to ERROR, re-raised; ``end_on_exit``), usable as a decorator of sync and async
functions as the SDK's is.
"""

from __future__ import annotations

import functools
import inspect
import logging
import threading
import traceback
import warnings
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from types import MappingProxyType, TracebackType
from typing import TYPE_CHECKING, Any, Final

from opentelemetry import context as context_api
from opentelemetry import trace as trace_api
from opentelemetry.attributes import BoundedAttributes
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import Event, ReadableSpan
from opentelemetry.sdk.util import BoundedList
from opentelemetry.trace import Link, SpanContext, SpanKind, TraceFlags, TraceState
from opentelemetry.trace.status import Status, StatusCode

from aiotlp.encoding import SPAN_CORES, SpanCore, set_span_warning_hook

if TYPE_CHECKING:
    from opentelemetry.sdk.util.instrumentation import InstrumentationScope

    from ._provider import Tracer

__all__ = ["CurrentSpan", "Span", "span_class"]

_trace_logger = logging.getLogger("opentelemetry.sdk.trace")
_attributes_logger = logging.getLogger("opentelemetry.attributes")
_TRACE_TEXTS: Final = ("Setting attribute", "Tried calling")


def _warning_hook(text: str) -> None:
    """The cores' warnings, logged where the SDK logs the same text."""
    (_trace_logger if text.startswith(_TRACE_TEXTS) else _attributes_logger).warning(text)


set_span_warning_hook(_warning_hook)

_KINDS: Final = (None, *SpanKind)  # by OTLP value: SpanKind value + 1
_STATUS_CODES: Final = tuple(StatusCode)  # by value: UNSET, OK, ERROR
_UNSET_STATUS: Final = Status(StatusCode.UNSET)
_SPAN_KEY: Final = trace_api._SPAN_KEY  # type: ignore[attr-defined]
_EMPTY_STATE: Final = TraceState()


def _state_text(state: TraceState | None) -> str:
    return ",".join([f"{key}={value}" for key, value in state.items()]) if state else ""


_new: Final = object.__new__
_SHARED_LOCK: Final = threading.Lock()  # the containers below are never changed: their lock guards nothing


def _fields(obj: object) -> frozenset[str]:
    return frozenset(vars(obj))


_READABLE_FIELDS: Final = frozenset(
    (
        "_name",
        "_context",
        "_kind",
        "_instrumentation_info",
        "_instrumentation_scope",
        "_parent",
        "_start_time",
        "_end_time",
        "_attributes",
        "_events",
        "_links",
        "_resource",
        "_status",
    )
)
# A ReadableSpan (and the containers in it) is built by setting its fields at once when they are these: checked
# on real ones here, once, so that an SDK whose classes have other fields gets its constructors instead.
_READABLE_FIELDS_KNOWN: Final = (
    _fields(ReadableSpan("probe", resource=Resource.get_empty())) == _READABLE_FIELDS
    and _fields(BoundedAttributes()) == {"_dict", "maxlen", "dropped", "max_value_len", "_lock", "_immutable"}
    and _fields(BoundedList(None)) == {"dropped", "_dq", "_lock"}
)


def _bounded_attributes(values: Mapping[str, Any], dropped: int) -> BoundedAttributes:
    """An immutable BoundedAttributes holding ``values`` as they are (already clean), with its dropped count."""
    if _READABLE_FIELDS_KNOWN:
        attributes = _new(BoundedAttributes)
        attributes.__dict__ = {
            "_dict": dict(values),
            "maxlen": None,
            "dropped": dropped,
            "max_value_len": None,
            "_lock": _SHARED_LOCK,
            "_immutable": True,
        }
        return attributes
    attributes = BoundedAttributes(immutable=False)
    attributes._dict = dict(values)
    attributes.dropped = dropped
    attributes._immutable = True
    return attributes


def _bounded_list(items: list[Any], maxlen: int, dropped: int) -> BoundedList[Any]:
    if _READABLE_FIELDS_KNOWN:
        bounded = _new(BoundedList)
        bounded.__dict__ = {
            "dropped": dropped,
            "_dq": deque(items, None if maxlen < 0 else maxlen),
            "_lock": _SHARED_LOCK,
        }
        return bounded
    bounded = BoundedList(None if maxlen < 0 else maxlen)
    bounded._dq.extend(items)  # type: ignore[attr-defined]
    bounded.dropped = dropped
    return bounded


def _takes_keywords(core: type[Any]) -> bool:
    """Whether the core's API methods take the API's keyword names (a probe on a throwaway span)."""
    probe = core("probe", 1, 1, 0, 0x100, "", 1, 1, (-1, -1, -1, -1, -1, -1))
    try:
        probe.set_attribute(key="k", value=1)
        probe.set_attributes(attributes={"k": 2})
        probe.add_event(name="e", attributes=None, timestamp=1)
        probe.update_name(name="n")
    except TypeError:
        return False
    return True


def _make_span_class(core: type[Any]) -> type[Any]:
    class Span(core, trace_api.Span):  # type: ignore[misc]
        """An ``opentelemetry.trace.Span`` of :class:`aiotlp.sdk.TracerProvider` (see the module docstring)."""

        __slots__ = (
            "_end_metrics",
            "_link_contexts",
            "_parent",
            "_record_exception",
            "_set_status_on_exception",
            "_span_context",
            "_state",
            "_trace_flags",
            "_tracer",
        )

        _tracer: Tracer
        _parent: SpanContext | None
        _link_contexts: list[SpanContext]
        _end_metrics: Callable[[], None]
        _span_context: SpanContext | None
        _trace_flags: int
        _state: TraceState | None
        _record_exception: bool
        _set_status_on_exception: bool

        def __repr__(self) -> str:
            return f'Span(name="{self.name}", context={self.get_span_context()})'

        # -- the API ---------------------------------------------------------------------------------------

        def get_span_context(self) -> SpanContext:
            context = self._span_context
            if context is None:
                context = self._span_context = SpanContext(
                    self.trace_id,
                    self.span_id,
                    False,
                    TraceFlags(self._trace_flags),
                    self._state if self._state is not None else _EMPTY_STATE,
                )
            return context

        def is_recording(self) -> bool:
            return not self.ended

        def add_link(self, context: SpanContext, attributes: Mapping[str, Any] | None = None) -> None:
            if not context or not (context.is_valid or attributes or context.trace_state):
                return
            _core_add_link(
                self,
                context.trace_id,
                context.span_id,
                0x300 if context.is_remote else 0x100,
                _state_text(context.trace_state),
                attributes,
            )
            # the context itself, for what foreign processors read (its trace flags are not in the core)
            if not self.ended:
                contexts = getattr(self, "_link_contexts", None)
                if contexts is None:
                    contexts = self._link_contexts = []
                contexts.append(context)

        def set_status(self, status: Status | StatusCode, description: str | None = None) -> None:
            if self.ended:
                _trace_logger.warning("Tried calling %s on an ended span.", "set_status")
                return
            current = self.status_code
            if isinstance(status, Status):
                if current == 1 or status.status_code is StatusCode.UNSET:
                    return
                if description is not None:
                    _trace_logger.warning(
                        "Description %s ignored. Use either `Status` or `(StatusCode, Description)`", description
                    )
                self.set_status_fields(status.status_code.value, status.description or "")
            elif isinstance(status, StatusCode):
                if current == 1 or status is StatusCode.UNSET:
                    return
                self.set_status_fields(status.value, Status(status, description).description or "")

        def record_exception(
            self,
            exception: BaseException,
            attributes: Mapping[str, Any] | None = None,
            timestamp: int | None = None,
            escaped: bool = False,
        ) -> None:
            stacktrace = "".join(traceback.format_exception(exception))
            module = type(exception).__module__
            qualname = type(exception).__qualname__
            exception_type = f"{module}.{qualname}" if module and module != "builtins" else qualname
            values: dict[str, Any] = {
                "exception.type": exception_type,
                "exception.message": str(exception),
                "exception.stacktrace": stacktrace,
                "exception.escaped": str(escaped),
            }
            if attributes:
                values.update(attributes)
            self.add_event("exception", values, timestamp)

        def end(self, end_time: int | None = None) -> None:
            if not _core_end(self, end_time):
                _trace_logger.warning("Calling end() on an ended span.")
                return
            self._tracer._provider._end(self)

        def __enter__(self) -> Any:
            return self

        def __exit__(
            self,
            exc_type: type[BaseException] | None,
            exc_val: BaseException | None,
            exc_tb: TracebackType | None,
        ) -> None:
            if exc_val is not None and not self.ended:
                if self._record_exception:
                    self.record_exception(exception=exc_val, escaped=True)
                if self._set_status_on_exception:
                    self.set_status(Status(StatusCode.ERROR, f"{type(exc_val).__name__}: {exc_val}"))
            self.end()

        # -- what the SDK's Span / ReadableSpan also offer -------------------------------------------------

        @property
        def context(self) -> SpanContext:
            return self.get_span_context()

        @property
        def parent(self) -> SpanContext | None:
            return self._parent

        @property
        def kind(self) -> SpanKind:
            kind: SpanKind = _KINDS[_core_kind(self)]
            return kind

        @property
        def status(self) -> Status:
            code = self.status_code
            if not code:
                return _UNSET_STATUS
            return Status(_STATUS_CODES[code], self.status_description or None)

        @property
        def attributes(self) -> Mapping[str, Any]:
            return MappingProxyType(_core_attributes(self))

        @property
        def events(self) -> Sequence[Event]:
            return tuple(self._events_list())

        @property
        def links(self) -> Sequence[Link]:
            return tuple(self._links_list())

        @property
        def resource(self) -> Resource:
            return self._tracer.resource

        @property
        def instrumentation_scope(self) -> InstrumentationScope:
            return self._tracer._instrumentation_scope

        @property
        def instrumentation_info(self) -> Any:
            warnings.warn(
                "You should use instrumentation_scope. Deprecated since version 1.11.1.",
                DeprecationWarning,
                stacklevel=2,
            )
            return self._tracer._instrumentation_info()

        def to_json(self, indent: int | None = 4) -> str:
            return str(self._readable().to_json(indent))

        # -- the ReadableSpan a foreign processor gets in on_end -------------------------------------------

        def _events_list(self) -> list[Event]:
            return [
                Event(name, _bounded_attributes(values, dropped), timestamp)
                for name, timestamp, values, dropped in _core_events(self)
            ]

        def _links_list(self) -> list[Link]:
            links = []
            kept = _core_links(self)
            # the core keeps the last max_links links added: the same contexts, in the same order
            contexts = (getattr(self, "_link_contexts", None) or [])[-len(kept) :] if kept else []
            if len(contexts) != len(kept):
                contexts = [None] * len(kept)
            for (trace_id, span_id, flags, state, values, dropped), context in zip(kept, contexts, strict=True):
                if context is None or context.trace_id != trace_id or context.span_id != span_id:
                    context = SpanContext(
                        trace_id,
                        span_id,
                        flags & 0x200 != 0,
                        TraceFlags(0),
                        TraceState.from_header([state]) if state else _EMPTY_STATE,
                    )
                links.append(Link(context, _bounded_attributes(values, dropped)))
            return links

        def _readable(self) -> ReadableSpan:
            """A ReadableSpan of the span's state now (for foreign processors, exporters and ``to_json``)."""
            tracer = self._tracer
            limits = tracer._provider._limits
            if _READABLE_FIELDS_KNOWN:  # its fields set at once, as its __init__ would set them
                readable = _new(ReadableSpan)
                readable.__dict__ = {
                    "_name": self.name,
                    "_context": self.get_span_context(),
                    "_kind": _KINDS[_core_kind(self)],
                    "_instrumentation_info": tracer._instrumentation_info(),
                    "_instrumentation_scope": tracer._instrumentation_scope,
                    "_parent": self._parent,
                    "_start_time": self.start_time,
                    "_end_time": self.end_time,
                    "_attributes": _bounded_attributes(_core_attributes(self), self.dropped_attributes),
                    "_events": _bounded_list(self._events_list(), limits[1], self.dropped_events),
                    "_links": _bounded_list(self._links_list(), limits[2], self.dropped_links),
                    "_resource": tracer._provider._resource,
                    "_status": self.status,
                }
                return readable
            return ReadableSpan(
                name=self.name,
                context=self.get_span_context(),
                parent=self._parent,
                resource=tracer.resource,
                attributes=_bounded_attributes(_core_attributes(self), self.dropped_attributes),
                events=_bounded_list(self._events_list(), limits[1], self.dropped_events),
                links=_bounded_list(self._links_list(), limits[2], self.dropped_links),
                kind=self.kind,
                instrumentation_info=tracer._instrumentation_info(),
                status=self.status,
                start_time=self.start_time,
                end_time=self.end_time,
                instrumentation_scope=tracer._instrumentation_scope,
            )

    Span._readable_span = Span._readable  # the SDK Span's name for it

    if not _takes_keywords(core):  # the API's keyword names, for a core whose methods are positional only
        _core_set_attribute = core.set_attribute
        _core_set_attributes = core.set_attributes
        _core_add_event = core.add_event
        _core_update_name = core.update_name

        def set_attribute(self: Any, key: str, value: Any) -> None:
            _core_set_attribute(self, key, value)

        def set_attributes(self: Any, attributes: Mapping[str, Any]) -> None:
            _core_set_attributes(self, attributes)

        def add_event(
            self: Any, name: str, attributes: Mapping[str, Any] | None = None, timestamp: int | None = None
        ) -> None:
            _core_add_event(self, name, attributes, timestamp)

        def update_name(self: Any, name: str) -> None:
            _core_update_name(self, name)

        for method in (set_attribute, set_attributes, add_event, update_name):
            method.__qualname__ = f"Span.{method.__name__}"
            setattr(Span, method.__name__, method)

    _core_end: Callable[..., bool] = core.end
    _core_add_link: Callable[..., None] = core.add_link
    _core_kind: Callable[[Any], int] = core.kind.__get__
    _core_attributes: Callable[[Any], dict[str, Any]] = core.attributes.__get__
    _core_events: Callable[[Any], list[Any]] = core.events.__get__
    _core_links: Callable[[Any], list[Any]] = core.links.__get__
    Span.__qualname__ = Span.__name__ = "Span"
    Span.__module__ = __name__
    return Span


_CLASSES: dict[str, type[Any]] = {}


def span_class(implementation: str | None = None) -> type[Any]:
    """The Span class over one SpanCore implementation (``None``: the one ``_compat`` chose), made once."""
    cores = SPAN_CORES
    if implementation is None:
        implementation = "c" if SpanCore is cores.get("c") else "python"
    cls = _CLASSES.get(implementation)
    if cls is None:
        if implementation not in cores:
            raise ValueError(f"SpanCore implementation {implementation!r} is not available: {sorted(cores)}")
        cls = _CLASSES[implementation] = _make_span_class(cores[implementation])
    return cls


Span: Final = span_class()
"""The Span class of the chosen implementation (a subclass of ``opentelemetry.trace.Span``)."""


# ------------------------------------------------------------------------------------------------------------
# start_as_current_span


class CurrentSpan:
    """``Tracer.start_as_current_span(...)``: starts the span at ``__enter__``, sets it in the context, and at
    ``__exit__`` restores the context, records an ``Exception`` and sets the ERROR status (as configured), ends
    the span (``end_on_exit``) and lets the exception through. Also a decorator (sync and async functions)."""

    __slots__ = ("_args", "_end_on_exit", "_record_exception", "_set_status_on_exception", "_span", "_token", "_tracer")

    def __init__(
        self,
        tracer: Tracer,
        args: tuple[Any, ...],
        record_exception: bool,
        set_status_on_exception: bool,
        end_on_exit: bool,
    ) -> None:
        self._tracer = tracer
        self._args = args
        self._record_exception = record_exception
        self._set_status_on_exception = set_status_on_exception
        self._end_on_exit = end_on_exit
        self._span: Any = None
        self._token: object = None

    def __enter__(self) -> Any:
        name, context, kind, attributes, links, start_time = self._args
        span = self._tracer.start_span(
            name, context, kind, attributes, links, start_time, self._record_exception, self._set_status_on_exception
        )
        self._span = span
        self._token = context_api.attach(context_api.set_value(_SPAN_KEY, span))
        return span

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc_val: BaseException | None,
        exc_tb: TracebackType | None,
    ) -> None:
        span = self._span
        try:
            context_api.detach(self._token)  # type: ignore[arg-type]
            if isinstance(exc_val, Exception) and span.is_recording():
                if self._record_exception:
                    span.record_exception(exc_val)
                if self._set_status_on_exception:
                    span.set_status(Status(StatusCode.ERROR, f"{type(exc_val).__name__}: {exc_val}"))
        finally:
            if self._end_on_exit:
                span.end()

    def _again(self) -> CurrentSpan:
        return CurrentSpan(
            self._tracer, self._args, self._record_exception, self._set_status_on_exception, self._end_on_exit
        )

    def __call__(self, func: Callable[..., Any]) -> Callable[..., Any]:
        if inspect.iscoroutinefunction(func):

            @functools.wraps(func)
            async def async_wrapper(*args: Any, **kwargs: Any) -> Any:
                with self._again():
                    return await func(*args, **kwargs)

            return async_wrapper

        @functools.wraps(func)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            with self._again():
                return func(*args, **kwargs)

        return wrapper
