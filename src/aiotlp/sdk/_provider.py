"""``aiotlp.sdk.TracerProvider``: the OpenTelemetry SDK's TracerProvider, with spans kept in a SpanCore (issue 16).

```python
from opentelemetry import trace
import aiotlp.sdk

provider = aiotlp.sdk.TracerProvider()
provider.add_span_processor(aiotlp.sdk.BatchSpanProcessor(aiotlp.sdk.SpanExporter()))
trace.set_tracer_provider(provider)
```

The same API and arguments as ``opentelemetry.sdk.trace.TracerProvider`` (``sampler``, ``resource``,
``shutdown_on_exit``, ``active_span_processor``, ``id_generator``, ``span_limits``; ``get_tracer`` with version,
schema URL and attributes; ``add_span_processor``, ``force_flush``, ``shutdown``), and the SDK's own objects
where they are what users pass or read: ``Resource``, ``SpanLimits`` (which reads ``OTEL_SPAN_*_LIMIT`` and
``OTEL_ATTRIBUTE_*``), the ``Sampler`` classes (``OTEL_TRACES_SAMPLER`` / ``_ARG`` read by the SDK's own reader),
``IdGenerator``, ``InstrumentationScope``, the multi span processors (``SynchronousMultiSpanProcessor`` by
default); ``OTEL_SDK_DISABLED=true`` gives no-op tracers, as the SDK. So the behaviour is the SDK's by
construction; what differs is the span (:mod:`aiotlp.sdk._span`): its state lives in a SpanCore, compiled or pure.

Sampling: the default sampler (``ParentBased(ALWAYS_ON)``, with its default delegates) and ``ALWAYS_ON`` are
decided here without calling them (the same decision and trace state); any other sampler is called as the SDK
calls it (``should_sample(context, trace_id, name, kind, attributes, links)``), its attributes set on the span and
its trace state used. Ids: the default ``RandomIdGenerator`` is ``random.getrandbits`` (what it calls); any other
generator is called.

Processors are called in the order they were added, as the SDK's ``SynchronousMultiSpanProcessor`` calls them:
``on_start`` (with the span itself), ``_on_ending``, ``on_end``. A processor that does not override
``SpanProcessor.on_start`` / ``_on_ending`` is not called for them (they do nothing), nor are aiotlp's own
processors in ``on_start`` (theirs does nothing). aiotlp's
``BatchSpanProcessor`` takes a span at ``end()`` through its native hook (``_on_end_native``): the span's bytes,
straight from the core, with no Python span object built. Any other processor gets in ``on_end`` an SDK
``ReadableSpan`` built from the core, one per span, only when such a processor is attached. With an
``active_span_processor`` of the caller's, every call goes through it (it is a foreign processor).

Lifecycle, as the SDK: ``shutdown_on_exit`` registers ``shutdown`` with ``atexit``; after ``os.fork`` the child's
provider merges the process-dependent resource again (its new pid) and keeps working; aiotlp's processors start
clean in the child on their own.

The SDK's internal tracer metrics (``otel.sdk.span.started``, ``otel.sdk.span.live``) are its own objects, made
the same way: only with ``OTEL_PYTHON_SDK_INTERNAL_METRICS_ENABLED=true``, on ``meter_provider`` (else the
global one). Not carried over: the SDK's private tracer configurator (``_tracer_configurator``).
"""

from __future__ import annotations

import atexit
import logging
import os
import random
import threading
import warnings
import weakref
from collections.abc import Mapping, Sequence
from time import time_ns
from typing import Any, Final

from opentelemetry import context as context_api
from opentelemetry import metrics as metrics_api
from opentelemetry import trace as trace_api
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import (
    ConcurrentMultiSpanProcessor,
    SpanLimits,
    SpanProcessor,
    SynchronousMultiSpanProcessor,
    sampling,
)
from opentelemetry.sdk.trace.id_generator import IdGenerator, RandomIdGenerator
from opentelemetry.sdk.util.instrumentation import InstrumentationInfo, InstrumentationScope
from opentelemetry.trace import NonRecordingSpan, NoOpTracer, SpanContext, SpanKind, TraceFlags, TraceState

from ._span import CurrentSpan, _state_text, span_class

try:  # the SDK's internal tracer metrics (SDK 1.39+; private modules: without them, no such metrics)
    from opentelemetry.sdk.environment_variables import OTEL_PYTHON_SDK_INTERNAL_METRICS_ENABLED
    from opentelemetry.sdk.environment_variables._internal import parse_boolean_environment_variable
    from opentelemetry.sdk.trace._tracer_metrics import NoOpTracerMetrics, create_tracer_metrics
except ImportError:  # pragma: no cover - depends on the SDK's version
    create_tracer_metrics = None  # type: ignore[assignment]

__all__ = ["Tracer", "TracerProvider"]

logger = logging.getLogger("opentelemetry.sdk.trace")

_get_current_span: Final = trace_api.get_current_span
_getrandbits: Final = random.getrandbits
_INTERNAL: Final = SpanKind.INTERNAL

# sampling modes
_GENERAL: Final = 0
_PARENT_BASED_ON: Final = 1  # ParentBased(ALWAYS_ON) with its default delegates
_ALWAYS_ON: Final = 2


def _mode(sampler: Any) -> int:
    on, off = sampling.ALWAYS_ON, sampling.ALWAYS_OFF
    if sampler is on:
        return _ALWAYS_ON
    if (
        isinstance(sampler, sampling.ParentBased)
        and type(sampler).should_sample is sampling.ParentBased.should_sample
        and getattr(sampler, "_root", None) is on
        and getattr(sampler, "_remote_parent_sampled", None) is on
        and getattr(sampler, "_local_parent_sampled", None) is on
        and getattr(sampler, "_remote_parent_not_sampled", None) is off
        and getattr(sampler, "_local_parent_not_sampled", None) is off
    ):
        return _PARENT_BASED_ON
    return _GENERAL


def _limits(limits: SpanLimits) -> tuple[int, ...]:
    """The SpanCore limits tuple (-1: unlimited) of an SDK SpanLimits."""

    def n(value: int | None) -> int:
        return -1 if value is None else value

    return (
        n(limits.max_span_attributes),
        n(limits.max_events),
        n(limits.max_links),
        n(limits.max_event_attributes),
        n(limits.max_link_attributes),
        n(limits.max_attribute_length),
        n(limits.max_span_attribute_length),
    )


def _overrides(processor: object, name: str) -> bool:
    method = getattr(type(processor), name, None)
    return method is not None and method is not getattr(SpanProcessor, name)


class Tracer(trace_api.Tracer):
    """A tracer of :class:`TracerProvider` (``opentelemetry.sdk.trace.Tracer``'s API)."""

    def __init__(self, provider: TracerProvider, scope: InstrumentationScope) -> None:
        self._provider = provider
        self._instrumentation_scope = scope
        self._info: InstrumentationInfo | None = None
        self._span_cls = provider._span_cls
        self.sampler = provider.sampler
        self.id_generator = provider.id_generator
        self._metrics: Any = None  # the SDK's tracer metrics, when OTEL_PYTHON_SDK_INTERNAL_METRICS_ENABLED
        if create_tracer_metrics is not None:
            metrics = create_tracer_metrics(
                provider._meter_provider or metrics_api.get_meter_provider(),
                parse_boolean_environment_variable(OTEL_PYTHON_SDK_INTERNAL_METRICS_ENABLED),
            )
            if not isinstance(metrics, NoOpTracerMetrics):
                self._metrics = metrics

    @property
    def sampler(self) -> sampling.Sampler:
        return self._sampler

    @sampler.setter
    def sampler(self, sampler: sampling.Sampler) -> None:
        self._sampler = sampler
        self._mode = _mode(sampler)

    @property
    def id_generator(self) -> IdGenerator:
        return self._id_generator

    @id_generator.setter
    def id_generator(self, id_generator: IdGenerator) -> None:
        self._id_generator = id_generator
        self._random_ids = type(id_generator) is RandomIdGenerator

    @property
    def resource(self) -> Resource:
        return self._provider._resource

    @property
    def span_processor(self) -> Any:
        return self._provider._active_span_processor

    @property
    def instrumentation_info(self) -> InstrumentationInfo:
        return self._instrumentation_info()

    def _instrumentation_info(self) -> InstrumentationInfo:
        info = self._info
        if info is None:
            scope = self._instrumentation_scope
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", DeprecationWarning)
                info = self._info = InstrumentationInfo(scope.name, scope.version, scope.schema_url)
        return info

    def start_span(
        self,
        name: str,
        context: context_api.Context | None = None,
        kind: SpanKind = _INTERNAL,
        attributes: Mapping[str, Any] | None = None,
        links: Sequence[trace_api.Link] | None = (),
        start_time: int | None = None,
        record_exception: bool = True,
        set_status_on_exception: bool = True,
    ) -> trace_api.Span:
        parent: SpanContext | None = _get_current_span(context).get_span_context()
        if parent is not None and not isinstance(parent, SpanContext):
            raise TypeError("parent_span_context must be a SpanContext or None.")
        random_ids = self._random_ids
        if parent is None or not parent.is_valid:
            parent = None
            if random_ids:
                trace_id = _getrandbits(128)
                while not trace_id:
                    trace_id = _getrandbits(128)
            else:
                trace_id = self._id_generator.generate_trace_id()
        else:
            trace_id = parent.trace_id
        mode = self._mode
        state: TraceState | None
        if mode == _PARENT_BASED_ON:
            if parent is None:
                sampled = recording = True
                state = None
            else:
                sampled = recording = bool(parent.trace_flags & 1)
                state = parent.trace_state
        elif mode == _ALWAYS_ON:
            sampled = recording = True
            state = None if parent is None else parent.trace_state
        else:
            result = self._sampler.should_sample(context, trace_id, name, kind, attributes, links)
            decision = result.decision
            sampled = decision.is_sampled()  # type: ignore[no-untyped-call]
            recording = decision.is_recording()  # type: ignore[no-untyped-call]
            attributes = result.attributes
            state = result.trace_state
        flags = 1 if sampled else 0
        if parent is None:
            if random_ids or self._id_generator.is_trace_id_random():
                flags |= 2
        elif parent.trace_flags & 2:
            flags |= 2
        if random_ids:
            span_id = _getrandbits(64)
            while not span_id:
                span_id = _getrandbits(64)
        else:
            span_id = self._id_generator.generate_span_id()
        metrics = self._metrics
        if metrics is not None:
            end_metrics = metrics.start_span(
                parent,
                sampling.Decision.RECORD_AND_SAMPLE
                if sampled
                else sampling.Decision.RECORD_ONLY
                if recording
                else sampling.Decision.DROP,
            )
        if not recording:
            return NonRecordingSpan(SpanContext(trace_id, span_id, False, TraceFlags(flags), state))
        provider = self._provider
        span = self._span_cls(
            name,
            trace_id,
            span_id,
            0 if parent is None else parent.span_id,
            0x100 if parent is None or not parent.is_remote else 0x300,
            _state_text(state) if state else "",
            kind._value_ + 1,  # SpanKind.value: an enum property, slower
            time_ns() if start_time is None else start_time,
            provider._limits,
        )
        span._tracer = self
        span._parent = parent
        span._span_context = None
        span._trace_flags = flags
        span._state = state
        span._record_exception = record_exception
        span._set_status_on_exception = set_status_on_exception
        if metrics is not None:
            span._end_metrics = end_metrics
        if attributes:
            span.set_attributes(attributes)
        if links:
            for link in links:
                if link:
                    span.add_link(link.context, link.attributes)
        for processor in provider._starters:
            processor.on_start(span, parent_context=context)
        return span  # type: ignore[no-any-return]

    def start_as_current_span(  # type: ignore[override]
        self,
        name: str,
        context: context_api.Context | None = None,
        kind: SpanKind = _INTERNAL,
        attributes: Mapping[str, Any] | None = None,
        links: Sequence[trace_api.Link] | None = (),
        start_time: int | None = None,
        record_exception: bool = True,
        set_status_on_exception: bool = True,
        end_on_exit: bool = True,
    ) -> CurrentSpan:
        return CurrentSpan(
            self,
            (name, context, kind, attributes, links, start_time),
            record_exception,
            set_status_on_exception,
            end_on_exit,
        )


class TracerProvider(trace_api.TracerProvider):
    """The OpenTelemetry SDK's TracerProvider with native spans (see the module docstring)."""

    def __init__(
        self,
        sampler: sampling.Sampler | None = None,
        resource: Resource | None = None,
        shutdown_on_exit: bool = True,
        active_span_processor: SynchronousMultiSpanProcessor | ConcurrentMultiSpanProcessor | None = None,
        id_generator: IdGenerator | None = None,
        span_limits: SpanLimits | None = None,
        *,
        meter_provider: Any = None,
        _implementation: str | None = None,
    ) -> None:
        self._own_multi = active_span_processor is None
        self._active_span_processor: Any = active_span_processor or SynchronousMultiSpanProcessor()  # type: ignore[no-untyped-call]
        self.id_generator: IdGenerator = RandomIdGenerator() if id_generator is None else id_generator
        self._resource = Resource.create({}) if resource is None else resource
        if not sampler:
            sampler = sampling._get_from_env_or_default()
        self.sampler: sampling.Sampler = sampler
        self._span_limits = span_limits or SpanLimits()
        self._limits = _limits(self._span_limits)
        self._disabled = os.environ.get("OTEL_SDK_DISABLED", "").lower().strip() == "true"
        self._meter_provider = meter_provider
        self._span_cls = span_class(_implementation)
        self._atexit_handler: Any = None
        if shutdown_on_exit:
            self._atexit_handler = atexit.register(self.shutdown)
        self._tracers_lock = threading.Lock()
        self._tracers: dict[InstrumentationScope, Tracer] = {}
        self._starters: tuple[Any, ...] = ()
        self._ending: tuple[Any, ...] = ()
        self._enders: tuple[tuple[bool, Any], ...] = ()
        self._only_native = True
        self._native_ends: tuple[Any, ...] = ()
        self._refresh()
        if hasattr(os, "register_at_fork"):  # pragma: no branch - POSIX
            weak_fork = weakref.WeakMethod(self._handle_fork)

            def _after_in_child() -> None:
                at_fork = weak_fork()
                if at_fork is not None:
                    at_fork()

            os.register_at_fork(after_in_child=_after_in_child)

    def _handle_fork(self) -> None:
        self._tracers_lock = threading.Lock()
        from opentelemetry.sdk import resources

        process_dependent = getattr(resources, "_get_process_dependent_resource", None)
        if process_dependent is not None:
            self._resource = self._resource.merge(process_dependent())

    @property
    def resource(self) -> Resource:
        return self._resource

    def _refresh(self) -> None:
        """The call lists, from the processors (one tuple each, replaced whole: safe against a concurrent end)."""
        processors: tuple[Any, ...]
        if self._own_multi:
            processors = tuple(self._active_span_processor._span_processors)
        else:
            processors = (self._active_span_processor,)
        enders = tuple((callable(getattr(p, "_on_end_native", None)), p) for p in processors)
        # aiotlp's own processors do nothing in on_start: not called
        self._starters = tuple(p for (native, p) in enders if not native and _overrides(p, "on_start"))
        self._ending = tuple(p for p in processors if _overrides(p, "_on_ending"))
        self._only_native = all(native for native, _ in enders)
        self._native_ends = tuple(p._on_end_native for native, p in enders if native)
        self._enders = enders

    def _end(self, span: Any) -> None:
        """A span ended: the processors, in order."""
        if span._tracer._metrics is not None:  # (a slot read only when set: a missing one costs an exception)
            span._end_metrics()
        for processor in self._ending:
            processor._on_ending(span)
        if self._only_native:
            for end in self._native_ends:
                end(span)
            return
        readable = None
        for native, processor in self._enders:
            if native:
                processor._on_end_native(span)
            else:
                if readable is None:
                    readable = span._readable()
                processor.on_end(readable)

    def get_tracer(
        self,
        instrumenting_module_name: str,
        instrumenting_library_version: str | None = None,
        schema_url: str | None = None,
        attributes: Mapping[str, Any] | None = None,
    ) -> trace_api.Tracer:
        if self._disabled:
            return NoOpTracer()
        if not instrumenting_module_name:
            instrumenting_module_name = ""
            logger.error("get_tracer called with missing module name.")
        if instrumenting_library_version is None:
            instrumenting_library_version = ""
        scope = InstrumentationScope(instrumenting_module_name, instrumenting_library_version, schema_url, attributes)
        with self._tracers_lock:
            tracer = self._tracers.get(scope)
            if tracer is None:
                tracer = self._tracers[scope] = Tracer(self, scope)
        return tracer

    def add_span_processor(self, span_processor: SpanProcessor) -> None:
        """Add a processor: called after those added before (see the module docstring)."""
        self._active_span_processor.add_span_processor(span_processor)
        if self._own_multi:
            self._refresh()

    def shutdown(self) -> None:
        """Shut every processor down, in order; unregisters the ``atexit`` hook."""
        self._active_span_processor.shutdown()
        if self._atexit_handler is not None:
            atexit.unregister(self._atexit_handler)
            self._atexit_handler = None

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        """Flush every processor, in order, within ``timeout_millis`` in all; False on a timeout."""
        return bool(self._active_span_processor.force_flush(timeout_millis))
