"""aiotlp.sdk.TracerProvider against the OpenTelemetry SDK's TracerProvider, in the same test (issue 16).

Each test runs one workload on both providers (the same arguments or environment, a sequential IdGenerator each,
explicit times) with a recording processor, and compares what the application and the processors see: the span
objects and contexts, ``is_recording``, the ReadableSpans of ``on_end`` (their protobuf encoding, their
``to_json``, and field by field), the warnings logged. Every test runs with each SpanCore implementation
available (``span_core``: the pure-Python twin, and the compiled one when the extension has it).

Private names, on purpose: the two providers' ended spans are normalised before they are compared (end times,
event timestamps and the stack trace in an event's ``BoundedAttributes._dict``, the SDK ``ReadableSpan``'s own
state); ``_instrumentation_scope`` and ``_readable_span()`` are the SDK's names that instrumentations use and
aiotlp's tracer and span keep; ``_make_span_class`` / ``_takes_keywords`` (``aiotlp.sdk._span``) and the pure
twin (``aiotlp.encoding._spancore``) are tested for a core whose methods take no keywords.
"""

from __future__ import annotations

import logging
import re
import threading
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from opentelemetry import context as context_api
from opentelemetry import trace as trace_api
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, SpanLimits, SpanProcessor, SynchronousMultiSpanProcessor, sampling
from opentelemetry.sdk.trace import TracerProvider as SdkTracerProvider
from opentelemetry.sdk.trace.id_generator import IdGenerator
from opentelemetry.trace import (
    Link,
    NonRecordingSpan,
    SpanContext,
    SpanKind,
    TraceFlags,
    TraceState,
)
from opentelemetry.trace.status import Status, StatusCode

import aiotlp.sdk
from aiotlp import RetryPolicy
from aiotlp.encoding import SPAN_CORES, SpanCore
from aiotlp.sdk import encode_spans

T0 = 1_700_000_000_000_000_000


@pytest.fixture(params=list(SPAN_CORES))
def span_core(request: pytest.FixtureRequest) -> str:
    """The SpanCore implementation under aiotlp's provider: ``"python"``, and ``"c"`` when available."""
    return str(request.param)


class SequentialIds(IdGenerator):
    """Deterministic ids: a counter, its trace ids' low 64 bits spread (a ratio sampler samples some, not all)."""

    def __init__(self, random: bool = True) -> None:
        self._next = 0
        self._traces = 0
        self._random = random

    def generate_trace_id(self) -> int:
        self._traces += 1
        n = self._traces
        return (0xABC << 100) | (n & 1) << 64 | (n * 0x9E3779B97F4A7C15 & (2**64 - 1))

    def generate_span_id(self) -> int:
        self._next += 1
        return (0xDEF << 40) | self._next

    def is_trace_id_random(self) -> bool:
        return self._random


class Recorder(SpanProcessor):
    """Records each call: ("start", name, parent_context is given) / ("end", ReadableSpan) ..."""

    def __init__(self, label: str = "", calls: list[Any] | None = None) -> None:
        self.label = label
        self.calls: list[Any] = [] if calls is None else calls
        self.ended: list[ReadableSpan] = []
        self.started: list[Any] = []

    def on_start(self, span: Any, parent_context: context_api.Context | None = None) -> None:
        self.started.append(span)
        self.calls.append((self.label, "start", span.name))

    def _on_ending(self, span: Any) -> None:
        self.calls.append((self.label, "ending", span.name))

    def on_end(self, span: ReadableSpan) -> None:
        self.ended.append(span)
        self.calls.append((self.label, "end", span.name))

    def shutdown(self) -> None:
        self.calls.append((self.label, "shutdown"))

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        self.calls.append((self.label, "flush"))
        return True


class LogRecorder(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.texts: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        if record.name.startswith("opentelemetry"):
            self.texts.append(f"{record.name}: {record.getMessage()}")


@pytest.fixture
def logs() -> Iterator[LogRecorder]:
    recorder = LogRecorder()
    root = logging.getLogger()
    root.addHandler(recorder)
    try:
        yield recorder
    finally:
        root.removeHandler(recorder)


RESOURCE = Resource({"service.name": "provider-test"})


def providers(span_core: str, **kwargs: Any) -> tuple[Any, Any]:
    """(SDK provider, aiotlp provider), made with the same arguments, each with its own IdGenerator made by
    ``ids`` (default: a SequentialIds)."""
    made = []
    for cls in (SdkTracerProvider, aiotlp.sdk.TracerProvider):
        args = {"resource": RESOURCE, "shutdown_on_exit": False, **kwargs}
        args["id_generator"] = args.pop("ids", SequentialIds)()
        if cls is aiotlp.sdk.TracerProvider:
            args["_implementation"] = span_core
        made.append(cls(**args))
    return made[0], made[1]


def both(
    span_core: str, workload: Callable[[Any], Any], logs: LogRecorder | None = None, **kwargs: Any
) -> tuple[Any, Any]:
    """Run ``workload(tracer)`` on both providers; returns ((result, recorder, log texts), ...) for each."""
    outcomes = []
    for provider in providers(span_core, **kwargs):
        recorder = Recorder()
        provider.add_span_processor(recorder)
        tracer = provider.get_tracer("test.scope", "1.2.3", "https://schema", {"scope.attr": 1})
        if logs is not None:
            logs.texts.clear()
        result = workload(tracer)
        outcomes.append((result, recorder, list(logs.texts) if logs is not None else []))
    return outcomes[0], outcomes[1]


def context_tuple(context: SpanContext | None) -> Any:
    if context is None:
        return None
    return (context.trace_id, context.span_id, context.is_remote, int(context.trace_flags), context.trace_state)


def readable_fields(span: ReadableSpan) -> dict[str, Any]:
    return {
        "name": span.name,
        "context": context_tuple(span.context),
        "parent": context_tuple(span.parent),
        "kind": span.kind,
        "start": span.start_time,
        "end": span.end_time,
        "status": (span.status.status_code, span.status.description),
        "attributes": dict(span.attributes or {}),
        "dropped_attributes": span.dropped_attributes,
        "events": [(e.name, e.timestamp, dict(e.attributes or {}), e.dropped_attributes) for e in span.events],
        "dropped_events": span.dropped_events,
        "links": [
            (context_tuple(link.context), dict(link.attributes or {}), link.dropped_attributes) for link in span.links
        ],
        "dropped_links": span.dropped_links,
        "resource": span.resource,
        "scope": span.instrumentation_scope,
    }


def assert_same_ended(sdk: Recorder, ours: Recorder) -> None:
    assert [readable_fields(s) for s in ours.ended] == [readable_fields(s) for s in sdk.ended]
    assert encode_spans(ours.ended) == encode_spans(sdk.ended)
    assert [s.to_json() for s in ours.ended] == [s.to_json() for s in sdk.ended]


def returned(span: Any) -> Any:
    """What the application sees of a span it started."""
    return (
        type(span) is NonRecordingSpan,
        span.is_recording(),
        context_tuple(span.get_span_context()),
    )


# ------------------------------------------------------------------------------------------------------------
# Sampling


REMOTE_SAMPLED = SpanContext(0x77 << 64 | 1, 0x55, True, TraceFlags(0x03), TraceState([("v", "1")]))
REMOTE_NOT_SAMPLED = SpanContext(0x77 << 64 | 2, 0x56, True, TraceFlags(0x00), TraceState([("v", "2")]))
LOCAL_SAMPLED = SpanContext(0x77 << 64 | 3, 0x57, False, TraceFlags(0x01), TraceState([("v", "3")]))
LOCAL_NOT_SAMPLED = SpanContext(0x77 << 64 | 4, 0x58, False, TraceFlags(0x02), TraceState())
INVALID_PARENT = SpanContext(0, 0, False, TraceFlags(0x01))
PARENTS = {
    "root": None,
    "remote-sampled": REMOTE_SAMPLED,
    "remote-not-sampled": REMOTE_NOT_SAMPLED,
    "local-sampled": LOCAL_SAMPLED,
    "local-not-sampled": LOCAL_NOT_SAMPLED,
    "invalid": INVALID_PARENT,
}


class TaggingSampler(sampling.Sampler):
    """A sampler of the general path: samples half of the traces, records the others; adds attributes and a
    trace state."""

    def should_sample(self, parent_context: Any, trace_id: int, name: str, *args: Any, **kwargs: Any) -> Any:
        decision = sampling.Decision.RECORD_AND_SAMPLE if trace_id >> 64 & 1 else sampling.Decision.RECORD_ONLY
        return sampling.SamplingResult(
            decision, {"sampler.attr": name, "sampler.id": trace_id & 0xFF}, TraceState([("sampler", "yes")])
        )

    def get_description(self) -> str:
        return "TaggingSampler"


SAMPLERS: dict[str, Callable[[], sampling.Sampler | None]] = {
    "default": lambda: None,
    "always_on": lambda: sampling.ALWAYS_ON,
    "always_off": lambda: sampling.ALWAYS_OFF,
    "parentbased_always_on": lambda: sampling.ParentBased(sampling.ALWAYS_ON),
    "parentbased_always_off": lambda: sampling.DEFAULT_OFF,
    "ratio_half": lambda: sampling.TraceIdRatioBased(0.5),
    "parentbased_ratio": lambda: sampling.ParentBasedTraceIdRatio(0.5),
    "parent_based_custom": lambda: sampling.ParentBased(
        TaggingSampler(), remote_parent_not_sampled=sampling.ALWAYS_ON, local_parent_sampled=sampling.ALWAYS_OFF
    ),
    "custom": TaggingSampler,
}


def sampling_workload(parent: SpanContext | None) -> Callable[[Any], Any]:
    def run(tracer: Any) -> Any:
        context = trace_api.set_span_in_context(NonRecordingSpan(parent)) if parent is not None else None
        seen = []
        for i in range(6):
            span = tracer.start_span(
                f"s{i}", context=context, attributes={"i": i}, kind=SpanKind.SERVER, start_time=T0 + i
            )
            seen.append(returned(span))
            span.end(T0 + 100 + i)
        return seen

    return run


@pytest.mark.parametrize("parent", list(PARENTS))
@pytest.mark.parametrize("sampler", list(SAMPLERS))
def test_sampling_by_argument(span_core: str, sampler: str, parent: str) -> None:
    sdk, ours = both(span_core, sampling_workload(PARENTS[parent]), sampler=SAMPLERS[sampler]())
    assert ours[0] == sdk[0]
    assert [s.name for s in ours[1].started] == [s.name for s in sdk[1].started]
    assert_same_ended(sdk[1], ours[1])


@pytest.mark.parametrize(
    ("name", "arg"),
    [
        ("always_on", None),
        ("always_off", None),
        ("parentbased_always_off", None),
        ("traceidratio", "0.5"),
        ("parentbased_traceidratio", "0.25"),
        ("traceidratio", "not-a-number"),
        ("no_such_sampler", None),
    ],
)
@pytest.mark.parametrize("parent", ["root", "remote-sampled", "local-not-sampled"])
def test_sampling_by_environment(
    span_core: str, monkeypatch: pytest.MonkeyPatch, logs: LogRecorder, name: str, arg: str | None, parent: str
) -> None:
    monkeypatch.setenv("OTEL_TRACES_SAMPLER", name)
    if arg is not None:
        monkeypatch.setenv("OTEL_TRACES_SAMPLER_ARG", arg)
    sdk_provider, our_provider = providers(span_core)
    assert type(our_provider.sampler) is type(sdk_provider.sampler)
    assert our_provider.sampler.get_description() == sdk_provider.sampler.get_description()
    sdk, ours = both(span_core, sampling_workload(PARENTS[parent]))
    assert ours[0] == sdk[0]
    assert_same_ended(sdk[1], ours[1])


def test_record_only_spans_reach_processors_but_not_the_batch_processor(span_core: str) -> None:
    """RECORD_ONLY: recording, not sampled: on_start/on_end called; aiotlp's BatchSpanProcessor skips it."""
    _, provider = providers(span_core, sampler=TaggingSampler())
    recorder = Recorder()
    # nothing listens there: one attempt each, so that the shutdown does not retry until the export timeout
    exporter = aiotlp.sdk.SpanExporter(endpoint="http://127.0.0.1:9/v1/traces", retry=RetryPolicy(max_attempts=1))
    batch = aiotlp.sdk.BatchSpanProcessor(exporter)
    provider.add_span_processor(recorder)
    provider.add_span_processor(batch)
    tracer = provider.get_tracer("t")
    for i in range(4):
        tracer.start_span(f"s{i}", start_time=T0).end(T0 + 1)
    assert len(recorder.ended) == 4
    sampled = sum(span.context.trace_flags.sampled for span in recorder.ended)
    assert sampled == 2
    assert batch.statistics().produced == sampled
    provider.shutdown()


def test_non_recording_span_and_disabled_sdk(span_core: str, monkeypatch: pytest.MonkeyPatch) -> None:
    sdk, ours = both(span_core, lambda tracer: returned(tracer.start_span("x")), sampler=sampling.ALWAYS_OFF)
    assert ours[0] == sdk[0] and ours[0][0] is True and ours[0][1] is False
    assert ours[1].started == [] and ours[1].ended == []
    monkeypatch.setenv("OTEL_SDK_DISABLED", "true")
    sdk_provider, our_provider = providers(span_core)
    assert type(our_provider.get_tracer("x")) is type(sdk_provider.get_tracer("x")) is trace_api.NoOpTracer


# ------------------------------------------------------------------------------------------------------------
# Limits and truncation


def limits_workload(tracer: Any) -> Any:
    span = tracer.start_span(
        "limited",
        attributes={f"start{i}": "x" * 20 for i in range(3)},
        links=[
            Link(
                SpanContext(0xAA << 64 | i, 0x10 + i, bool(i % 2), TraceFlags(1)), {f"l{j}": "y" * 20 for j in range(3)}
            )
            for i in range(4)
        ],
        start_time=T0,
    )
    for i in range(6):
        span.set_attribute(f"a{i}", ["long-string-value", 7, "short"] if i % 2 else "a long string value")
    span.set_attributes({"nested": {"deep": "z" * 30}, "start0": "again"})
    for i in range(5):
        span.add_event(f"e{i}", {f"k{j}": "v" * 20 for j in range(i)}, T0 + i)
    span.add_link(SpanContext(0xBB << 64, 0x99, False, TraceFlags(1), TraceState([("a", "b")])), {"late": "link"})
    span.end(T0 + 50)
    return returned(span)


LIMITS = {
    "defaults": {},
    "small": {
        "max_span_attributes": 4,
        "max_events": 3,
        "max_links": 2,
        "max_event_attributes": 2,
        "max_link_attributes": 1,
        "max_attribute_length": 8,
    },
    "span-length": {"max_attribute_length": 10, "max_span_attribute_length": 5},
    "zero": {"max_attributes": 0, "max_events": 0, "max_links": 0},
}


@pytest.mark.parametrize("limits", list(LIMITS))
def test_span_limits_by_argument(span_core: str, logs: LogRecorder, limits: str) -> None:
    sdk, ours = both(span_core, limits_workload, logs, span_limits=SpanLimits(**LIMITS[limits]))
    assert ours[0] == sdk[0]
    assert_same_ended(sdk[1], ours[1])
    assert ours[2] == sdk[2]


ENV_LIMITS = {
    "global": {"OTEL_ATTRIBUTE_COUNT_LIMIT": "3", "OTEL_ATTRIBUTE_VALUE_LENGTH_LIMIT": "6"},
    "span": {
        "OTEL_SPAN_ATTRIBUTE_COUNT_LIMIT": "2",
        "OTEL_SPAN_EVENT_COUNT_LIMIT": "2",
        "OTEL_SPAN_LINK_COUNT_LIMIT": "1",
        "OTEL_EVENT_ATTRIBUTE_COUNT_LIMIT": "1",
        "OTEL_LINK_ATTRIBUTE_COUNT_LIMIT": "2",
        "OTEL_SPAN_ATTRIBUTE_VALUE_LENGTH_LIMIT": "4",
    },
    "unset": {"OTEL_SPAN_EVENT_COUNT_LIMIT": "", "OTEL_ATTRIBUTE_COUNT_LIMIT": ""},
}


@pytest.mark.parametrize("env", list(ENV_LIMITS))
def test_span_limits_by_environment(
    span_core: str, monkeypatch: pytest.MonkeyPatch, logs: LogRecorder, env: str
) -> None:
    for name, value in ENV_LIMITS[env].items():
        monkeypatch.setenv(name, value)
    sdk, ours = both(span_core, limits_workload, logs)
    assert ours[0] == sdk[0]
    assert_same_ended(sdk[1], ours[1])
    assert ours[2] == sdk[2]


# ------------------------------------------------------------------------------------------------------------
# Exceptions, status, end, is_recording, links


class AppError(Exception):
    pass


def test_record_exception(span_core: str) -> None:
    try:
        raise AppError("it failed")
    except AppError as exc:
        error = exc

    def run(tracer: Any) -> Any:
        span = tracer.start_span("x", start_time=T0)
        span.record_exception(error, {"extra": 1}, timestamp=T0 + 1)
        span.record_exception(ValueError("plain"), timestamp=T0 + 2, escaped=True)
        span.end(T0 + 3)

    sdk, ours = both(span_core, run)
    assert_same_ended(sdk[1], ours[1])
    event = ours[1].ended[0].events[0]
    assert event.name == "exception"
    assert event.attributes["exception.type"] == f"{__name__}.AppError"


def test_exceptions_through_context_managers(span_core: str) -> None:
    """start_as_current_span and the span's own ``with``: recorded, status set, re-raised, as the SDK."""

    def run(tracer: Any) -> Any:
        results = []
        for flags in [(True, True), (False, True), (True, False), (False, False)]:
            with (
                pytest.raises(AppError),
                tracer.start_as_current_span(
                    "current", start_time=T0, record_exception=flags[0], set_status_on_exception=flags[1]
                ),
            ):
                raise AppError("from outside")
            with (
                pytest.raises(AppError),
                tracer.start_span("own", start_time=T0, record_exception=flags[0], set_status_on_exception=flags[1]),
            ):
                raise AppError("from outside")
        with pytest.raises(KeyboardInterrupt), tracer.start_as_current_span("base", start_time=T0):
            raise KeyboardInterrupt  # a BaseException: not recorded, the span still ends
        with tracer.start_as_current_span("no-end", end_on_exit=False, start_time=T0) as span:
            results.append(span.is_recording())
        results.append(span.is_recording())
        span.end(T0 + 5)
        results.append(trace_api.get_current_span() is trace_api.INVALID_SPAN)
        return results

    sdk, ours = both(span_core, run)
    assert ours[0] == sdk[0] == [True, True, True]
    # The end times are now(): compare everything else. The one difference: the SDK's stack trace also shows
    # the two frames of its generator context managers (use_span, start_as_current_span); aiotlp's has none.
    for span in [*sdk[1].ended, *ours[1].ended]:
        span._end_time = T0 + 10 if span.name != "no-end" else span._end_time
        for event in span.events:
            event._timestamp = T0 + 1
            values = event.attributes._dict  # type: ignore[union-attr]
            values["exception.stacktrace"] = re.sub(
                r'  File "[^"]*/opentelemetry/[^"]*", line \d+, in \w+\n    yield span\n',
                "",
                values["exception.stacktrace"],
            )
    assert_same_ended(sdk[1], ours[1])
    assert [s.name for s in ours[1].ended] == ["current", "own"] * 4 + ["base", "no-end"]
    assert [len(s.events) for s in ours[1].ended][:8] == [1, 1, 0, 0, 1, 1, 0, 0]


STATUS_SEQUENCES: dict[str, list[tuple[Any, ...]]] = {
    "error-with-description": [(StatusCode.ERROR, "broken")],
    "ok-with-description": [(StatusCode.OK, "ignored")],
    "status-object-error": [(Status(StatusCode.ERROR, "bad"),)],
    "status-object-and-description": [(Status(StatusCode.ERROR, "bad"), "extra")],
    "unset-ignored": [(StatusCode.ERROR, "e"), (StatusCode.UNSET,)],
    "ok-is-final": [(StatusCode.OK,), (StatusCode.ERROR, "too late"), (Status(StatusCode.ERROR),)],
    "error-then-ok": [(StatusCode.ERROR, "e"), (StatusCode.OK,)],
    "error-twice": [(StatusCode.ERROR, "first"), (StatusCode.ERROR, "second")],
}


@pytest.mark.parametrize("sequence", list(STATUS_SEQUENCES))
def test_status_rules(span_core: str, logs: LogRecorder, sequence: str) -> None:
    def run(tracer: Any) -> Any:
        span = tracer.start_span("x", start_time=T0)
        seen = []
        for args in STATUS_SEQUENCES[sequence]:
            span.set_status(*args)
            seen.append((span.status.status_code, span.status.description))
        span.end(T0 + 1)
        span.set_status(StatusCode.ERROR, "after end")
        return seen

    sdk, ours = both(span_core, run, logs)
    assert ours[0] == sdk[0]
    assert ours[2] == sdk[2]
    assert_same_ended(sdk[1], ours[1])


def test_second_end_and_changes_after_end_warn_as_the_sdk(span_core: str, logs: LogRecorder) -> None:
    def run(tracer: Any) -> Any:
        span = tracer.start_span("x", start_time=T0)
        recording = [span.is_recording()]
        span.end(T0 + 1)
        recording.append(span.is_recording())
        span.end(T0 + 2)
        span.set_attribute("late", 1)
        span.set_attributes({"late": 2})
        span.add_event("late", timestamp=T0 + 3)
        span.add_link(SpanContext(5, 6, False))
        span.update_name("late")
        span.set_status(StatusCode.ERROR)
        return recording

    sdk, ours = both(span_core, run, logs)
    assert ours[0] == sdk[0] == [True, False]
    assert ours[2] == sdk[2]
    assert "opentelemetry.sdk.trace: Calling end() on an ended span." in ours[2]
    assert_same_ended(sdk[1], ours[1])
    assert len(ours[1].ended) == 1


def test_links(span_core: str, logs: LogRecorder) -> None:
    def run(tracer: Any) -> Any:
        span = tracer.start_span(
            "linked",
            links=[
                Link(SpanContext(1, 2, True, TraceFlags(1), TraceState([("k", "v")])), {"a": 1}),
                Link(SpanContext(0, 0, False)),  # invalid, nothing else: left out
                Link(SpanContext(0, 0, False), {"kept": "yes"}),  # invalid with attributes: kept
                Link(SpanContext(3, 4, False)),
            ],
            start_time=T0,
        )
        span.add_link(SpanContext(5, 6, True, TraceFlags(1)), {"b": [1, 2]})
        span.add_link(SpanContext(0, 0, False, trace_state=TraceState([("x", "y")])))  # kept: a trace state
        span.add_link(SpanContext(0, 7, False))  # left out
        span.end(T0 + 1)

    sdk, ours = both(span_core, run, logs)
    assert_same_ended(sdk[1], ours[1])
    assert len(ours[1].ended[0].links) == 5
    assert ours[2] == sdk[2]


def test_on_start_sees_an_sdk_like_span(span_core: str) -> None:
    """What a foreign processor reads on the span in on_start: as on the SDK's Span."""

    def run(tracer: Any) -> Any:
        parent = tracer.start_span("parent", start_time=T0)
        span = tracer.start_span(
            "child",
            context=trace_api.set_span_in_context(parent),
            kind=SpanKind.CLIENT,
            attributes={"a": 1},
            links=[Link(SpanContext(1, 2, False), {"l": 1})],
            start_time=T0 + 1,
        )
        span.add_event("e", {"x": 1}, T0 + 2)
        span.set_status(StatusCode.ERROR, "bad")
        seen = {
            "name": span.name,
            "context": context_tuple(span.context),
            "parent": context_tuple(span.parent),
            "kind": span.kind,
            "start": span.start_time,
            "end": span.end_time,
            "attributes": dict(span.attributes),
            "events": [(e.name, e.timestamp, dict(e.attributes)) for e in span.events],
            "links": [(context_tuple(link.context)[:2], dict(link.attributes)) for link in span.links],
            "status": (span.status.status_code, span.status.description),
            "resource": span.resource,
            "scope": span.instrumentation_scope,
            "dropped": (span.dropped_attributes, span.dropped_events, span.dropped_links),
            "json": span.to_json(),
            "recording": span.is_recording(),
        }
        span.end(T0 + 3)
        parent.end(T0 + 4)
        return seen

    sdk, ours = both(span_core, run)
    assert ours[0] == sdk[0]
    assert_same_ended(sdk[1], ours[1])


def test_context_and_propagation(span_core: str) -> None:
    """Spans set and read through opentelemetry.context: use_span, get_current_span, the W3C propagator."""
    from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

    propagator = TraceContextTextMapPropagator()

    def run(tracer: Any) -> Any:
        carrier: dict[str, str] = {}
        seen = []
        with tracer.start_as_current_span("outer", start_time=T0) as outer:
            seen.append(trace_api.get_current_span() is outer)
            propagator.inject(carrier)
            inner = tracer.start_span("inner", start_time=T0 + 1)
            with trace_api.use_span(inner, end_on_exit=True):
                seen.append(trace_api.get_current_span() is inner)
            seen.append(trace_api.get_current_span() is outer)
        remote = propagator.extract(carrier)
        with tracer.start_as_current_span("server", context=remote, kind=SpanKind.SERVER, start_time=T0 + 2) as s:
            seen.append(context_tuple(s.parent))
        seen.append(carrier)
        return seen

    sdk, ours = both(span_core, run)
    assert ours[0] == sdk[0]
    assert [readable_fields(s)["parent"] for s in ours[1].ended] == [readable_fields(s)["parent"] for s in sdk[1].ended]


def test_decorator_sync_and_async(span_core: str) -> None:
    import asyncio

    def run(tracer: Any) -> Any:
        @tracer.start_as_current_span("sync", start_time=T0)
        def sync(x: int) -> int:
            return x + 1

        @tracer.start_as_current_span("async", start_time=T0)
        async def coroutine(x: int) -> tuple[int, str]:
            await asyncio.sleep(0)
            return x * 2, trace_api.get_current_span().name  # type: ignore[attr-defined]

        return [sync(1), sync(2), asyncio.run(coroutine(3))]

    sdk, ours = both(span_core, run)
    assert ours[0] == sdk[0] == [2, 3, (6, "async")]
    assert [s.name for s in ours[1].ended] == [s.name for s in sdk[1].ended] == ["sync", "sync", "async"]


# ------------------------------------------------------------------------------------------------------------
# Processors


def test_processor_order(span_core: str) -> None:
    outcomes = []
    for provider in providers(span_core):
        calls: list[Any] = []
        first, second = Recorder("first", calls), Recorder("second", calls)
        provider.add_span_processor(first)
        tracer = provider.get_tracer("t")
        outer = tracer.start_span("outer", start_time=T0)
        provider.add_span_processor(second)  # from now on: both, in order
        inner = tracer.start_span("inner", start_time=T0)
        inner.end(T0 + 1)
        outer.end(T0 + 2)
        assert provider.force_flush()
        provider.shutdown()
        outcomes.append(calls)
    sdk_calls, our_calls = outcomes
    assert our_calls == sdk_calls
    assert ("second", "end", "outer") in our_calls


def test_active_span_processor_argument(span_core: str) -> None:
    outcomes = []
    for provider_cls in (SdkTracerProvider, aiotlp.sdk.TracerProvider):
        multi = SynchronousMultiSpanProcessor()
        kwargs: dict[str, Any] = {"active_span_processor": multi, "shutdown_on_exit": False}
        if provider_cls is aiotlp.sdk.TracerProvider:
            kwargs["_implementation"] = span_core
        provider = provider_cls(**kwargs)
        calls: list[Any] = []
        provider.add_span_processor(Recorder("only", calls))
        provider.get_tracer("t").start_span("x").end()
        provider.shutdown()
        outcomes.append(calls)
    assert outcomes[1] == outcomes[0]


def test_get_tracer_scope_and_cache(span_core: str, logs: LogRecorder) -> None:
    sdk_provider, our_provider = providers(span_core)
    for provider in (sdk_provider, our_provider):
        assert provider.get_tracer("a", "1", "s", {"k": "v"}) is provider.get_tracer("a", "1", "s", {"k": "v"})
        assert provider.get_tracer("a", "1") is not provider.get_tracer("a", "2")
    ours = our_provider.get_tracer("a", None, "url", {"k": "v"})
    sdk = sdk_provider.get_tracer("a", None, "url", {"k": "v"})
    assert ours._instrumentation_scope == sdk._instrumentation_scope
    logs.texts.clear()
    sdk_provider.get_tracer("")
    sdk_texts = list(logs.texts)
    logs.texts.clear()
    our_provider.get_tracer("")
    assert logs.texts == sdk_texts
    assert our_provider.resource is RESOURCE
    assert isinstance(our_provider.sampler, sampling.ParentBased)


def test_attributes_from_several_threads(span_core: str) -> None:
    """Eight threads set attributes and add events on one span at once: nothing lost, limits kept (both)."""
    threads, per_thread = 8, 50

    def run(tracer: Any) -> Any:
        bounded = tracer.start_span("bounded", start_time=T0)
        barrier = threading.Barrier(threads)

        def work(n: int) -> None:
            barrier.wait()
            for i in range(per_thread):
                bounded.set_attribute(f"t{n}.{i}", i)
                bounded.add_event(f"e{n}.{i}", {"i": i}, T0 + i)

        workers = [threading.Thread(target=work, args=(n,)) for n in range(threads)]
        for worker in workers:
            worker.start()
        for worker in workers:
            worker.join()
        bounded.end(T0 + 1000)

    for limits in (SpanLimits(), SpanLimits(max_span_attributes=1000, max_events=1000)):
        sdk, ours = both(span_core, run, span_limits=limits)
        for side in (sdk, ours):
            span = side[1].ended[0]
            total = threads * per_thread
            kept = min(total, limits.max_span_attributes or total)
            assert len(span.attributes) == kept and span.dropped_attributes == total - kept
            assert len(span.events) == min(total, limits.max_events or total)
            assert span.dropped_events == total - len(span.events)


def test_a_fixed_id_generator_not_random(span_core: str) -> None:
    """is_trace_id_random() False: no random-trace-id flag, as the SDK."""
    sdk, ours = both(
        span_core, lambda tracer: returned(tracer.start_span("x")), ids=lambda: SequentialIds(random=False)
    )
    assert ours[0] == sdk[0]
    assert not ours[0][2][3] & 2


def test_module_exports() -> None:
    from aiotlp.sdk import Span, Tracer, TracerProvider

    assert issubclass(Span, trace_api.Span)
    assert issubclass(Tracer, trace_api.Tracer)
    assert issubclass(TracerProvider, trace_api.TracerProvider)
    assert issubclass(Span, SpanCore)


def test_a_core_without_keyword_arguments_still_takes_the_apis_keywords() -> None:
    """The API's keyword names (``span.add_event("x", attributes=..., timestamp=...)``) work over a core whose
    methods are positional only (the SDK layer wraps them)."""
    from aiotlp.encoding._spancore import SpanCore
    from aiotlp.sdk._span import _make_span_class, _takes_keywords

    class PositionalOnly(SpanCore):
        __slots__ = ()

        def set_attribute(self, key: str, value: Any, /) -> None:
            SpanCore.set_attribute(self, key, value)

        def set_attributes(self, attributes: Any, /) -> None:
            SpanCore.set_attributes(self, attributes)

        def add_event(self, name: str, attributes: Any = None, timestamp: int | None = None, /) -> None:
            SpanCore.add_event(self, name, attributes, timestamp)

        def update_name(self, name: str, /) -> None:
            SpanCore.update_name(self, name)

    assert _takes_keywords(SpanCore) and not _takes_keywords(PositionalOnly)
    cls = _make_span_class(PositionalOnly)
    span = cls("x", 1, 2, 0, 0x100, "", 1, T0, (-1, -1, -1, -1, -1, -1))
    span.set_attribute(key="k", value=1)
    span.set_attributes(attributes={"j": 2})
    span.add_event(name="e", attributes={"a": 1}, timestamp=T0 + 1)
    span.update_name(name="renamed")
    assert (span.name, dict(span.attributes)) == ("renamed", {"k": 1, "j": 2})
    assert [(e.name, e.timestamp, dict(e.attributes)) for e in span.events] == [("e", T0 + 1, {"a": 1})]


@pytest.mark.parametrize("sampler", ["default", "parent_based_custom"])
def test_internal_tracer_metrics(span_core: str, monkeypatch: pytest.MonkeyPatch, sampler: str) -> None:
    """OTEL_PYTHON_SDK_INTERNAL_METRICS_ENABLED: the SDK's otel.sdk.span.started / .live, as the SDK counts."""
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import InMemoryMetricReader

    monkeypatch.setenv("OTEL_PYTHON_SDK_INTERNAL_METRICS_ENABLED", "true")
    points = []
    for provider_cls in (SdkTracerProvider, aiotlp.sdk.TracerProvider):
        reader = InMemoryMetricReader()
        meter_provider = MeterProvider(metric_readers=[reader])
        kwargs: dict[str, Any] = {"meter_provider": meter_provider, "shutdown_on_exit": False}
        kwargs["sampler"] = SAMPLERS[sampler]()
        kwargs["id_generator"] = SequentialIds()
        if provider_cls is aiotlp.sdk.TracerProvider:
            kwargs["_implementation"] = span_core
        tracer = provider_cls(**kwargs).get_tracer("t")
        open_span = tracer.start_span("open")
        for i in range(4):
            tracer.start_span(f"s{i}").end()
        parent = trace_api.set_span_in_context(NonRecordingSpan(REMOTE_NOT_SAMPLED))
        tracer.start_span("dropped", context=parent).end()
        data = reader.get_metrics_data()
        assert data is not None
        seen = {
            (metric.name, tuple(sorted(point.attributes.items())), point.value)  # type: ignore[union-attr]
            for resource_metrics in data.resource_metrics
            for scope_metrics in resource_metrics.scope_metrics
            for metric in scope_metrics.metrics
            for point in metric.data.data_points
        }
        points.append(seen)
        open_span.end()
        meter_provider.shutdown()
    assert points[1] == points[0]
    assert any(name == "otel.sdk.span.live" and value == 1 for name, _, value in points[1])


def test_spans_of_both_providers_nest(span_core: str) -> None:
    """A span of the SDK's provider under one of aiotlp's, and the other way round: the same trace."""
    sdk_provider, our_provider = providers(span_core)
    sdk_recorder, our_recorder = Recorder(), Recorder()
    sdk_provider.add_span_processor(sdk_recorder)
    our_provider.add_span_processor(our_recorder)
    sdk_tracer, our_tracer = sdk_provider.get_tracer("sdk"), our_provider.get_tracer("ours")
    with (
        our_tracer.start_as_current_span("ours outer") as outer,
        sdk_tracer.start_as_current_span("sdk inner") as inner,
        our_tracer.start_as_current_span("ours innermost") as innermost,
    ):
        pass
    assert inner.parent == outer.get_span_context()
    assert innermost.parent == inner.get_span_context()
    assert len({outer.get_span_context().trace_id, inner.get_span_context().trace_id}) == 1
    assert [s.name for s in our_recorder.ended] == ["ours innermost", "ours outer"]
    assert innermost._readable_span().name == "ours innermost"  # the SDK Span's method name
