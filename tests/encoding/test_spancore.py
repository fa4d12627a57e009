"""SpanCore (issue 16), every available implementation: the pure-Python twin and, when the extension has it, the
C twin (``aiotlp.encoding._compat.SPAN_CORES``), against the OpenTelemetry SDK's ``Span`` doing the same.

Each case plays one script of operations on an SDK span (a real ``TracerProvider``'s, fixed ids and times) and on
a SpanCore made with the same content, and compares: the bytes (``encode()`` against
``aiotlp.sdk._encode_spans._span_field`` of the SDK span, with the pure and the compiled attribute writers), the state
(attributes, dropped counts, events, links), and the warnings (the SDK's log records against the texts the
core's warning hook received).

Private names, on purpose: the SDK span's own state (``_attributes``, a ``BoundedAttributes`` whose ``_dict``
holds the values) is the reference the core's is compared with; ``aiotlp.sdk._encode_spans._span_field`` is the
encoder of one SDK span, the reference for ``encode()``; ``_compat`` switches and names the implementations.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator
from types import ModuleType
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from opentelemetry import trace as trace_api
from opentelemetry.sdk.trace import ReadableSpan, SpanLimits, TracerProvider
from opentelemetry.sdk.trace.id_generator import IdGenerator
from opentelemetry.sdk.trace.sampling import ALWAYS_ON
from opentelemetry.trace import SpanContext, SpanKind, TraceFlags, TraceState
from opentelemetry.trace.status import Status, StatusCode
from tests.strategies import any_values

from aiotlp.encoding import _compat, _spancore
from aiotlp.sdk._encode_spans import _span_field

TRACE_ID = 0x0AF7651916CD43DD8448EB211C80319C
SPAN_ID = 0x00F067AA0BA902B7
PARENT_ID = 0x1234567890ABCDEF
START, END = 1_700_000_000_000_000_000, 1_700_000_000_500_000_000


def _implementations() -> list[Any]:
    return [pytest.param(name, id=name) for name in _compat.SPAN_CORES]


@pytest.fixture(params=_implementations())
def core_impl(request: pytest.FixtureRequest) -> Iterator[tuple[type, ModuleType]]:
    """(SpanCore class, the module holding its set_warning_hook), for each implementation available."""
    name = request.param
    module = _spancore if name == "python" else _compat.speedups
    assert module is not None
    previous = module.set_warning_hook(None)  # the SDK layer's hook, if it is installed: put back after
    yield _compat.SPAN_CORES[name], module
    module.set_warning_hook(previous)


class _Ids(IdGenerator):
    def generate_trace_id(self) -> int:
        return TRACE_ID

    def generate_span_id(self) -> int:
        return SPAN_ID


def _limits_tuple(limits: SpanLimits) -> tuple[int, ...]:
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


Op = tuple[Any, ...]


class _Recorder(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.texts: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.texts.append(record.getMessage())


def _run_sdk(
    ops: list[Op], limits: SpanLimits, *, parent: SpanContext | None, kind: SpanKind
) -> tuple[ReadableSpan, list[str]]:
    provider = TracerProvider(sampler=ALWAYS_ON, id_generator=_Ids(), span_limits=limits, shutdown_on_exit=False)
    ended: list[ReadableSpan] = []

    class _Keep:
        def on_start(self, span: Any, parent_context: Any = None) -> None: ...
        def _on_ending(self, span: Any) -> None: ...
        def on_end(self, span: ReadableSpan) -> None:
            ended.append(span)

        def shutdown(self) -> None: ...
        def force_flush(self, timeout_millis: int = 0) -> bool:
            return True

    provider.add_span_processor(_Keep())  # type: ignore[arg-type]
    tracer = provider.get_tracer("t")
    context = trace_api.set_span_in_context(trace_api.NonRecordingSpan(parent)) if parent is not None else None
    recorder = _Recorder()
    loggers = [logging.getLogger("opentelemetry.sdk.trace"), logging.getLogger("opentelemetry.attributes")]
    for logger in loggers:
        logger.addHandler(recorder)
    try:
        span: Any = tracer.start_span("op", context=context, kind=kind, start_time=START)
        for op in ops:
            name, *args = op
            if name == "link":
                trace_id, span_id, remote, state, attributes = args
                span.add_link(SpanContext(trace_id, span_id, remote, TraceFlags(1), TraceState(state)), attributes)
            elif name == "status":
                code, description = args
                span.set_status(Status(StatusCode(code), description))
            elif name == "end":
                span.end(*args)
            else:
                getattr(span, name)(*args)
        if not ended:
            span.end(END)
    finally:
        for logger in loggers:
            logger.removeHandler(recorder)
    return ended[0], recorder.texts


def _run_core(
    impl: tuple[type, ModuleType], ops: list[Op], limits: SpanLimits, *, parent: SpanContext | None, kind: SpanKind
) -> tuple[Any, list[str]]:
    cls, module = impl
    texts: list[str] = []
    module.set_warning_hook(texts.append)
    state = ",".join(f"{k}={v}" for k, v in parent.trace_state.items()) if parent is not None else ""
    flags = 0x300 if parent is not None and parent.is_remote else 0x100
    core = cls(
        "op",
        TRACE_ID if parent is None else parent.trace_id,
        SPAN_ID,
        0 if parent is None else parent.span_id,
        flags,
        state,
        kind.value + 1,
        START,
        _limits_tuple(limits),
    )
    ended = False
    for op in ops:
        name, *args = op
        if name == "link":
            trace_id, span_id, remote, state_items, attributes = args
            link_state = ",".join(f"{k}={v}" for k, v in state_items)
            core.add_link(trace_id, span_id, 0x300 if remote else 0x100, link_state, attributes)
        elif name == "status":
            code, description = args
            # the SDK's Status keeps a description only with ERROR (the SDK layer's rule)
            core.set_status_fields(code, (description or "") if code == 2 else "")
        elif name == "end":
            ended = True
            core.end(*args)
        else:
            getattr(core, name)(*args)
    if not ended:
        core.end(END)
    return core, texts


def _sdk_attrs(attributes: Any) -> dict[str, Any]:
    return dict(attributes._dict) if hasattr(attributes, "_dict") else dict(attributes or {})


def _compare(
    impl: tuple[type, ModuleType],
    ops: list[Op],
    limits: SpanLimits | None = None,
    *,
    parent: SpanContext | None = None,
    kind: SpanKind = SpanKind.INTERNAL,
    warnings: bool = True,
) -> Any:
    limits = limits or SpanLimits()
    sdk_span, sdk_texts = _run_sdk(ops, limits, parent=parent, kind=kind)
    core, core_texts = _run_core(impl, ops, limits, parent=parent, kind=kind)
    for choice in ("python", "c") if _compat.speedups is not None else ("python",):
        previous = _compat.implementation()
        _compat.use(choice)  # type: ignore[arg-type]
        try:
            assert core.encode() == _span_field(sdk_span), choice
        finally:
            _compat.use(previous)
    assert core.name == sdk_span.name
    assert core.attributes == _sdk_attrs(sdk_span._attributes)
    assert list(core.attributes) == list(_sdk_attrs(sdk_span._attributes))
    assert core.dropped_attributes == sdk_span.dropped_attributes
    assert core.dropped_events == sdk_span.dropped_events
    assert core.dropped_links == sdk_span.dropped_links
    assert [(e[0], e[1], e[2], e[3]) for e in core.events] == [
        (e.name, e.timestamp, _sdk_attrs(e.attributes), e.dropped_attributes) for e in sdk_span.events
    ]
    assert [(link[0], link[1], link[4], link[5]) for link in core.links] == [
        (
            link.context.trace_id,
            link.context.span_id,
            _sdk_attrs(link.attributes),
            link.attributes.dropped,  # type: ignore[union-attr]
        )
        for link in sdk_span.links
    ]
    assert core.end_time == sdk_span.end_time
    assert core.ended
    if warnings:
        assert core_texts == sdk_texts
    return core


# ------------------------------------------------------------------------------------------------------------


def test_chosen_implementation_is_the_compiled_one_when_present() -> None:
    from aiotlp import encoding

    assert encoding.SpanCore is _compat.SpanCore
    compiled = getattr(_compat.speedups, "SpanCore", None)
    assert _compat.SpanCore is (compiled if compiled is not None else _spancore.SpanCore)
    assert "python" in _compat.SPAN_CORES


def test_kill_switch_gives_the_pure_twin() -> None:
    import subprocess
    import sys

    code = "from aiotlp.encoding import _compat; print(_compat.SpanCore.__module__)"
    env = {**__import__("os").environ, "AIOTLP_NO_EXTENSIONS": "1"}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True).stdout
    assert out.strip() == "aiotlp.encoding._spancore"


def test_plain_span(core_impl: Any) -> None:
    _compare(core_impl, [])


@pytest.mark.parametrize("kind", list(SpanKind))
@pytest.mark.parametrize("remote", [False, True])
def test_parent_kind_and_trace_state(core_impl: Any, kind: SpanKind, remote: bool) -> None:
    parent = SpanContext(TRACE_ID, PARENT_ID, remote, TraceFlags(1), TraceState([("vendor", "x"), ("b", "2")]))
    _compare(core_impl, [("set_attribute", "k", "v")], parent=parent, kind=kind)


def test_attribute_kinds(core_impl: Any) -> None:
    class Plain:
        pass

    class Custom:
        def __str__(self) -> str:
            return "custom"

    ops: list[Op] = [
        ("set_attribute", "s", "text"),
        ("set_attribute", "i", 42),
        ("set_attribute", "big", 2**64),  # left out by the encoder, counted as dropped
        ("set_attribute", "f", 1.5),
        ("set_attribute", "b", True),
        ("set_attribute", "bytes", b"\x00\x01"),
        ("set_attribute", "none", None),
        ("set_attribute", "list", ["a", "b"]),
        ("set_attribute", "mixed", [1, "a", None, 2.5]),
        ("set_attribute", "nested", {"x": [1, {"y": "z"}], "w": None}),
        ("set_attribute", "plain", Plain()),
        ("set_attribute", "custom", Custom()),
        ("set_attribute", "kind", SpanKind.SERVER),
        ("set_attribute", "", 1),
        ("set_attribute", 5, 1),
        ("set_attributes", {"m1": 1, "": 2, 3: "three", "m4": [True, False]}),
        ("set_attribute", "s", "again"),  # an existing key moves to the end
    ]
    core = _compare(core_impl, ops)
    assert list(core.attributes)[-1] == "s"


@pytest.mark.parametrize(
    "limits",
    [
        SpanLimits(max_span_attributes=3, max_events=2, max_links=1, max_event_attributes=1, max_link_attributes=2),
        SpanLimits(max_attributes=0, max_events=0, max_links=0),
        SpanLimits(max_attribute_length=3),
        SpanLimits(max_attribute_length=5, max_span_attribute_length=2),
        SpanLimits(max_attribute_length=0),
        SpanLimits(
            max_attributes=SpanLimits.UNSET, max_events=SpanLimits.UNSET, max_links=SpanLimits.UNSET
        ),  # unlimited
    ],
    ids=["small", "zero", "length", "span-length", "length-0", "unlimited"],
)
def test_limits(core_impl: Any, limits: SpanLimits) -> None:
    ops: list[Op] = [
        ("set_attribute", "a", "abcdefgh"),
        ("set_attribute", "b", ["abcdefgh", "xy"]),
        ("set_attributes", {"c": {"k": "abcdefgh"}, "d": 4, "e": 5}),
        ("set_attribute", "a", "again-a"),
        ("add_event", "e1", {"x": "abcdefgh", "y": 2}, START + 1),
        ("add_event", "e2", None, START + 2),
        ("add_event", "e3", {"z": 3}, START + 3),
        ("link", TRACE_ID, 0x11, False, (), {"l1": "abcdefgh", "l2": 2, "l3": 3}),
        ("link", TRACE_ID + 1, 0x12, True, (("k", "v"),), None),
        ("link", 0, 0, False, (), None),  # invalid, nothing to keep: left out
        ("link", 0, 0, False, (), {"kept": True}),  # invalid context with attributes: kept by the SDK
    ]
    _compare(core_impl, ops, limits)


def test_status_and_name(core_impl: Any) -> None:
    _compare(core_impl, [("update_name", "renamed"), ("status", 2, "it broke")])
    _compare(core_impl, [("status", 1, None)])
    _compare(core_impl, [("status", 2, None)])


def test_ended_span_changes_nothing_and_warns(core_impl: Any) -> None:
    ops: list[Op] = [
        ("set_attribute", "before", 1),
        ("end", END),
        ("set_attribute", "after", 1),
        ("set_attributes", {"after2": 2}),
        ("add_event", "late", None, END + 1),
        ("link", TRACE_ID, 5, False, (), None),
        ("update_name", "late-name"),
    ]
    core = _compare(core_impl, ops)
    assert core.end() is False
    assert core.end_time == END


def test_end_returns_true_once(core_impl: Any) -> None:
    cls, _ = core_impl
    core = cls("x", 1, 2, 0, 0x100, "", 1, START, (128, 128, 128, 128, 128, -1))
    assert core.end_time is None and not core.ended
    assert core.end(END) is True
    assert core.end(END + 5) is False
    assert core.end_time == END


def test_event_time_defaults_to_now(core_impl: Any) -> None:
    import time

    cls, _ = core_impl
    core = cls("x", 1, 2, 0, 0x100, "", 1, START, (128, 128, 128, 128, 128, -1))
    before = time.time_ns()
    core.add_event("e")
    after = time.time_ns()
    assert before <= core.events[0][1] <= after
    assert core.events[0][2] == {}


def test_read_only_properties(core_impl: Any) -> None:
    cls, _ = core_impl
    core = cls("x", 1 << 100, 2, 3, 0x300, "a=b", 3, START, (128, 128, 128, 128, 128, -1))
    assert (core.name, core.trace_id, core.span_id, core.parent_span_id) == ("x", 1 << 100, 2, 3)
    assert (core.flags, core.trace_state, core.kind, core.start_time) == (0x300, "a=b", 3, START)
    assert (core.status_code, core.status_description) == (0, "")
    assert (core.dropped_attributes, core.dropped_events, core.dropped_links) == (0, 0, 0)
    assert core.attributes == {} and core.events == [] and core.links == []
    copy = core.attributes
    copy["mutated"] = 1
    assert core.attributes == {}


def test_subclassable(core_impl: Any) -> None:
    cls, _ = core_impl

    class WithSlots(cls):  # type: ignore[misc, valid-type]
        __slots__ = ("extra",)

    class WithDict(cls):  # type: ignore[misc, valid-type]
        pass

    for sub in (WithSlots, WithDict):
        span = sub("x", 1, 2, 0, 0x100, "", 1, START, (128, 128, 128, 128, 128, -1))
        span.extra = 5
        span.set_attribute("k", "v")
        assert span.attributes == {"k": "v"} and span.extra == 5


def test_attributes_from_threads(core_impl: Any) -> None:
    """Eight threads set attributes and add events at once: nothing lost, no limit exceeded."""
    cls, _ = core_impl
    limit, threads, per_thread = 50, 8, 40
    bounded = cls("x", 1, 2, 0, 0x100, "", 1, START, (limit, limit, 128, 128, 128, -1))
    unbounded = cls("y", 1, 3, 0, 0x100, "", 1, START, (-1, -1, 128, 128, 128, -1))
    barrier = threading.Barrier(threads)

    def work(n: int) -> None:
        barrier.wait()
        for i in range(per_thread):
            for core in (bounded, unbounded):
                core.set_attribute(f"t{n}-{i}", i)
                core.set_attributes({f"m{n}-{i}": i})
                core.add_event(f"e{n}-{i}", {"i": i}, START + i)

    workers = [threading.Thread(target=work, args=(n,)) for n in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    total = threads * per_thread
    assert len(unbounded.attributes) == 2 * total and unbounded.dropped_attributes == 0
    assert len(unbounded.events) == total and unbounded.dropped_events == 0
    assert len(bounded.attributes) == limit
    assert bounded.dropped_attributes == 2 * total - limit
    assert len(bounded.events) == limit
    assert bounded.dropped_events == total - limit


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    values=st.lists(st.tuples(st.sampled_from(["a", "b", "c", "d"]), any_values(wide=True)), max_size=8),
    max_attributes=st.sampled_from([None, 0, 1, 2, 5]),
    max_length=st.sampled_from([None, 0, 1, 4]),
)
def test_random_attributes(
    core_impl: Any, values: list[tuple[str, Any]], max_attributes: int | None, max_length: int | None
) -> None:
    limits = SpanLimits(
        max_span_attributes=SpanLimits.UNSET if max_attributes is None else max_attributes,
        max_attribute_length=SpanLimits.UNSET if max_length is None else max_length,
        max_event_attributes=SpanLimits.UNSET if max_attributes is None else max_attributes,
    )
    ops: list[Op] = [("set_attribute", key, value) for key, value in values]
    ops.append(("add_event", "e", dict(values), START + 1))
    _compare(core_impl, ops, limits)


def test_warning_hook_none_silences(core_impl: Any) -> None:
    cls, module = core_impl
    seen: list[str] = []
    module.set_warning_hook(seen.append)
    module.set_warning_hook(None)
    core = cls("x", 1, 2, 0, 0x100, "", 1, START, (1, 1, 1, 1, 1, 1))
    core.set_attribute("a", "long")
    core.set_attribute("b", "long")
    assert seen == []


def test_bad_limits(core_impl: Any) -> None:
    cls, _ = core_impl
    with pytest.raises((ValueError, TypeError)):
        cls("x", 1, 2, 0, 0x100, "", 1, START, (1, 2, 3))
