"""The C twin of the span state (``aiotlp.encoding._speedups.SpanCore``, issue 16) against the SDK's own ``Span``.

Every case builds an OpenTelemetry SDK span and a SpanCore with the same content (fixed ids and times), drives
both with the same calls, and compares what a user of either can observe: the bytes the exporter would send
(``encode()`` against ``aiotlp.sdk._encode._span_field(sdk_span)``), the attributes, events and links with their
dropped counts, the name, status and end time, and the warnings (the SDK's log records against the texts the
core hands to its warning hook). Hypothesis drives random call sequences under random limits; the cases after it
pin the rules one at a time (limits, cleaning, ended spans, invalid links), the constructor's argument checks,
threads, garbage collection and subclassing (the SDK layer's ``class Span(SpanCore, trace.Span)``).

Private names, on purpose: the SDK span's own state (``_attributes._dict``, ``_events``, ``_links`` and their
``dropped``) is the reference, and ``aiotlp.sdk._encode_spans._span_field`` the reference encoder; neither has a
public accessor.
"""

from __future__ import annotations

import enum
import gc
import logging
import sys
import threading
import time
import types
import weakref
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from opentelemetry import trace
from opentelemetry.proto.trace.v1.trace_pb2 import ScopeSpans
from opentelemetry.sdk.trace import Span as SdkSpan
from opentelemetry.sdk.trace import SpanLimits, TracerProvider
from opentelemetry.sdk.trace.id_generator import IdGenerator
from opentelemetry.trace import NonRecordingSpan, SpanContext, SpanKind, TraceFlags, TraceState
from opentelemetry.trace.status import Status, StatusCode
from tests.strategies import any_values, texts

from aiotlp.encoding import _compat
from aiotlp.sdk import _encode_spans as _encode

pytestmark = pytest.mark.skipif(_compat.speedups is None, reason="the C accelerator is not built or switched off")

if _compat.speedups is not None:
    SpanCore: Any = _compat.speedups.SpanCore
    set_warning_hook: Callable[[Any], Any] = _compat.speedups.set_warning_hook

TRACE_ID = 0x0AF7651916CD43DD8448EB211C80319C
SPAN_ID = 0xB7AD6B7169203331
UNLIMITED = (-1, -1, -1, -1, -1, -1)
SETTINGS = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


# ------------------------------------------------------------------------------------------------------------
# Values the SDK cleans in every way it knows: kept, cut, made tuples or dicts, made str, made None.


class StrKey(str):
    """A str subclass (the SDK keeps it; the core stores an exact str: equal, same bytes)."""


class Color(enum.IntEnum):
    RED = 1


class WithStr:
    def __str__(self) -> str:
        return "with-str"


class Plain:
    """No __str__ or __repr__ of its own: the SDK replaces the value with None (a key: dropped)."""


ODD_VALUES = [
    StrKey("sub"),
    Color.RED,
    WithStr(),
    Plain(),
    bytearray(b"ab"),
    range(3),
    frozenset({1}),
    types.MappingProxyType({"m": 1, "n": [1, "x"]}),
    (1, "a", None, 2.5),
    [[1, 2], {"deep": ("x" * 30,)}],
    "x" * 40,
]

values = st.one_of(any_values(wide=True), st.sampled_from(ODD_VALUES))
keys = st.one_of(texts(12), st.sampled_from(["", "k", StrKey("k"), StrKey(""), 5, None, b"k", 1.5]))
mappings = st.dictionaries(keys, values, max_size=5)
_lengths = st.sampled_from([-1, 0, 3, 20])
# 6 items, or 7: the span's own max_span_attribute_length after max_attribute_length (events' and links')
limits_st = st.one_of(
    st.tuples(*[st.one_of(st.just(-1), st.integers(0, 4)) for _ in range(5)], _lengths),
    st.tuples(*[st.one_of(st.just(-1), st.integers(0, 4)) for _ in range(5)], _lengths, _lengths),
)
times = st.integers(1, 2**64 - 1)
ids128 = st.one_of(st.just(0), st.integers(1, 2**128 - 1))
ids64 = st.one_of(st.just(0), st.integers(1, 2**64 - 1))
trace_states = st.lists(
    st.tuples(st.sampled_from(["a", "b", "vendor@x"]), st.sampled_from(["1", "v2"])),
    max_size=2,
    unique_by=lambda p: p[0],
)

ops = st.one_of(
    st.tuples(st.just("attr"), keys, values),
    st.tuples(st.just("attrs"), mappings),
    st.tuples(st.just("event"), texts(), st.one_of(st.none(), mappings), times),
    st.tuples(st.just("link"), ids128, ids64, st.booleans(), trace_states, st.one_of(st.none(), mappings)),
    st.tuples(st.just("name"), texts()),
    st.tuples(
        st.just("status"),
        st.sampled_from([StatusCode.UNSET, StatusCode.OK, StatusCode.ERROR]),
        st.one_of(st.none(), texts()),
    ),
    st.tuples(st.just("end"), times),
)


# ------------------------------------------------------------------------------------------------------------
# The pair: an SDK span and a SpanCore with the same content


class _Ids(IdGenerator):
    def generate_trace_id(self) -> int:
        return TRACE_ID

    def generate_span_id(self) -> int:
        return SPAN_ID


class _Messages(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.texts: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.texts.append(record.getMessage())


@pytest.fixture
def sdk_log() -> Iterator[_Messages]:
    """The SDK's warnings, as text (its span and attribute loggers)."""
    handler = _Messages()
    loggers = [logging.getLogger(name) for name in ("opentelemetry.sdk.trace", "opentelemetry.attributes")]
    for logger in loggers:
        logger.addHandler(handler)
    yield handler
    for logger in loggers:
        logger.removeHandler(handler)


@pytest.fixture
def hook() -> Iterator[list[str]]:
    """The core's warnings, as text (its hook), the previous hook restored afterwards."""
    texts: list[str] = []
    previous = set_warning_hook(texts.append)
    yield texts
    set_warning_hook(previous)


def _header(pairs: list[tuple[str, str]]) -> str:
    return ",".join(f"{key}={value}" for key, value in dict(pairs).items())


class Pair:
    """An SDK span and a SpanCore, built alike and driven alike. The status rules and the second ``end()``
    warning belong to the SDK layer's wrapper: the pair plays that part for the core."""

    def __init__(
        self,
        limits: tuple[int, ...] = UNLIMITED,
        *,
        name: str = "span",
        kind: SpanKind = SpanKind.INTERNAL,
        parent: tuple[int, bool] | None = None,
        trace_state: list[tuple[str, str]] | None = None,
        start: int = 1_700_000_000_000_000_000,
    ) -> None:
        max_attrs, max_events, max_links, max_event_attrs, max_link_attrs, max_len = limits[:6]
        max_span_len = limits[6] if len(limits) == 7 else max_len
        provider = TracerProvider(
            id_generator=_Ids(),
            span_limits=SpanLimits(
                max_span_attributes=max_attrs,
                max_events=max_events,
                max_links=max_links,
                max_event_attributes=max_event_attrs,
                max_link_attributes=max_link_attrs,
                max_attribute_length=max_len,
                max_span_attribute_length=max_span_len,
            ),
        )
        context = None
        state = TraceState(trace_state or [])
        if parent is not None or trace_state:
            parent_id, remote = parent or (0x1111, False)
            parent_context = SpanContext(TRACE_ID, parent_id, remote, TraceFlags(TraceFlags.SAMPLED), state)
            context = trace.set_span_in_context(NonRecordingSpan(parent_context))
        self.sdk: SdkSpan = provider.get_tracer("t").start_span(name, context, kind=kind, start_time=start)  # type: ignore[assignment]
        self.sdk_end_warnings: list[str] = []
        self.core = SpanCore(
            name,
            TRACE_ID,
            SPAN_ID,
            parent[0] if parent else 0x1111 if trace_state else 0,
            0x300 if parent and parent[1] else 0x100,
            _header(trace_state or []),
            kind.value + 1,
            start,
            limits,
        )
        self.core_wrapper_warnings: list[str] = []

    def apply(self, op: tuple[Any, ...]) -> None:
        verb, *args = op
        sdk, core = self.sdk, self.core
        if verb == "attr":
            sdk.set_attribute(*args)
            core.set_attribute(*args)
        elif verb == "attrs":
            sdk.set_attributes(args[0])
            core.set_attributes(args[0])
        elif verb == "event":
            name, attributes, timestamp = args
            sdk.add_event(name, attributes, timestamp)
            core.add_event(name, attributes, timestamp)
        elif verb == "link":
            trace_id, span_id, remote, state, attributes = args
            context = SpanContext(trace_id, span_id, remote, TraceFlags(TraceFlags.SAMPLED), TraceState(state))
            sdk.add_link(context, attributes)
            core.add_link(trace_id, span_id, 0x300 if remote else 0x100, _header(state), attributes)
        elif verb == "name":
            sdk.update_name(args[0])
            core.update_name(args[0])
        elif verb == "status":
            code, description = args
            if code is not StatusCode.ERROR:
                description = None  # Status() drops it (with a warning of its own) for UNSET and OK
            sdk.set_status(Status(code, description))
            self._core_set_status(code, description)
        elif verb == "end":
            sdk.end(args[0])
            if not core.end(args[0]):
                self.core_wrapper_warnings.append("Calling end() on an ended span.")
        else:  # pragma: no cover
            raise AssertionError(verb)

    def _core_set_status(self, code: StatusCode, description: str | None) -> None:
        # the SDK's set_status rules, as the SDK layer's wrapper applies them
        if self.core.ended:
            self.core_wrapper_warnings.append("Tried calling set_status on an ended span.")
            return
        if self.core.status_code == StatusCode.OK.value + 0 or code is StatusCode.UNSET:
            return
        self.core.set_status_fields({StatusCode.OK: 1, StatusCode.ERROR: 2}[code], description or "")

    def check(self, sdk_log: _Messages | None = None, hook: list[str] | None = None) -> None:
        sdk, core = self.sdk, self.core
        assert core.encode() == _encode._span_field(sdk)
        assert list(core.attributes.items()) == list(sdk._attributes._dict.items())  # type: ignore[attr-defined]
        assert core.dropped_attributes == sdk._attributes.dropped  # type: ignore[attr-defined]
        assert core.events == [
            (e.name, e.timestamp, dict(e.attributes._dict), e.attributes.dropped)  # type: ignore[union-attr]
            for e in sdk.events
        ]
        assert core.dropped_events == sdk._events.dropped  # type: ignore[attr-defined]
        assert core.links == [
            (
                link.context.trace_id,
                link.context.span_id,
                0x300 if link.context.is_remote else 0x100,
                _header(list(link.context.trace_state.items())),
                dict(link.attributes._dict),  # type: ignore[union-attr]
                link.attributes.dropped,  # type: ignore[union-attr]
            )
            for link in sdk.links
        ]
        assert core.dropped_links == sdk._links.dropped  # type: ignore[attr-defined]
        assert core.name == sdk.name
        assert core.end_time == sdk.end_time
        assert core.ended is (sdk.end_time is not None)
        assert core.status_code == {StatusCode.UNSET: 0, StatusCode.OK: 1, StatusCode.ERROR: 2}[sdk.status.status_code]
        assert core.status_description == (sdk.status.description or "")
        if sdk_log is not None and hook is not None:
            assert sorted(hook + self.core_wrapper_warnings) == sorted(sdk_log.texts)
            assert [t for t in hook] == [t for t in sdk_log.texts if t not in self.core_wrapper_warnings]


# ------------------------------------------------------------------------------------------------------------
# Random call sequences


@SETTINGS
@given(
    limits=limits_st,
    name=texts(),
    kind=st.sampled_from(list(SpanKind)),
    parent=st.one_of(st.none(), st.tuples(st.integers(1, 2**64 - 1), st.booleans())),
    trace_state=trace_states,
    calls=st.lists(ops, max_size=12),
)
def test_random_calls_give_what_the_sdk_span_gives(
    limits: tuple[int, ...],
    name: str,
    kind: SpanKind,
    parent: tuple[int, bool] | None,
    trace_state: list[tuple[str, str]],
    calls: list[tuple[Any, ...]],
) -> None:
    handler = _Messages()
    loggers = [logging.getLogger(n) for n in ("opentelemetry.sdk.trace", "opentelemetry.attributes")]
    for logger in loggers:
        logger.addHandler(handler)
    texts_: list[str] = []
    previous = set_warning_hook(texts_.append)
    try:
        pair = Pair(limits, name=name, kind=kind, parent=parent, trace_state=trace_state)
        for call in calls:
            pair.apply(call)
            pair.check()
        pair.check(handler, texts_)
    finally:
        set_warning_hook(previous)
        for logger in loggers:
            logger.removeHandler(handler)


@pytest.mark.parametrize("implementation", _compat.IMPLEMENTATIONS)
def test_encode_matches_both_sdk_span_encoders(implementation: _compat.Implementation) -> None:
    previous = _compat.implementation()
    _compat.use(implementation)
    try:
        pair = Pair((3, 2, 2, 2, 2, 8), parent=(0x42, True), trace_state=[("a", "1")], kind=SpanKind.CLIENT)
        for i in range(5):
            pair.apply(("attr", f"k{i}", "v" * 12 if i % 2 else i))
            pair.apply(("event", f"e{i}", {"x": i, "y": [1, 2], "z": 2**70}, 1000 + i))
            pair.apply(("link", TRACE_ID + i, 7 + i, bool(i % 2), [("b", "v2")], {"l": "long" * 5}))
        pair.apply(("attr", "big", 2**64))  # outside int64: left out by the encoder, counted as dropped
        pair.apply(("status", StatusCode.ERROR, "boom"))
        pair.apply(("end", 5000))
        pair.check()
    finally:
        _compat.use(previous)


# ------------------------------------------------------------------------------------------------------------
# The rules, one at a time


def test_a_full_span_evicts_its_oldest_attribute_and_counts_it(sdk_log: _Messages, hook: list[str]) -> None:
    pair = Pair((2, -1, -1, -1, -1, -1))
    for op in [("attr", "a", 1), ("attr", "b", 2), ("attr", "a", 3), ("attr", "c", 4), ("attrs", {"d": 5, "b": 6})]:
        pair.apply(op)
    pair.check(sdk_log, hook)
    assert pair.core.attributes == {"d": 5, "b": 6}
    assert pair.core.dropped_attributes == 3  # "a" set again moved to the end: "b", then "a", then "c" evicted
    full = (
        "Attributes dict is full. Dropping the oldest key-value pair from attributes to make space for the new "
        "key-value pair."
    )
    assert hook.count(full) == 3


def test_zero_limits_keep_nothing_and_count_everything(sdk_log: _Messages, hook: list[str]) -> None:
    pair = Pair((0, 0, 0, 0, 0, 0))
    for op in [
        ("attr", "a", "text"),
        ("attr", "", 1),
        ("attrs", {"b": 1, "c": 2}),
        ("event", "e", {"x": 1, "y": 2}, 10),
        ("link", TRACE_ID, 5, False, [], {"x": 1}),
    ]:
        pair.apply(op)
    pair.check(sdk_log, hook)
    assert pair.core.dropped_attributes == 4
    assert (pair.core.dropped_events, pair.core.dropped_links) == (1, 1)


def test_strings_are_cut_to_the_length_limit_everywhere(sdk_log: _Messages, hook: list[str]) -> None:
    pair = Pair((-1, -1, -1, -1, -1, 3))
    pair.apply(("attr", "s", "abcdef"))
    pair.apply(("attr", "l", ["abcdef", 1, ("xyzzy",)]))
    pair.apply(("attrs", {"m": {"n": "abcdef"}}))
    pair.apply(("event", "e", {"s": "abcdef"}, 1))
    pair.apply(("link", TRACE_ID, 5, False, [], {"s": "abcdef"}))
    pair.check(sdk_log, hook)
    assert pair.core.attributes == {"s": "abc", "l": ("abc", 1, ("xyz",)), "m": {"n": "abc"}}
    assert hook.count("String attribute value exceeds max length of 3, truncating.") == 6


def test_invalid_keys_and_values_are_cleaned_as_the_sdk_cleans_them(sdk_log: _Messages, hook: list[str]) -> None:
    pair = Pair()
    for op in [
        ("attr", "", 1),
        ("attr", 5, 1),
        ("attr", None, 1),
        ("attr", StrKey("sub"), "v"),
        ("attr", "plain", Plain()),
        ("attr", "with_str", WithStr()),
        ("attr", "set", frozenset({1})),
        ("attr", "none", None),
        ("attrs", {"": 1, 7: "seven", Plain(): 1, "ok": bytearray(b"ab")}),
    ]:
        pair.apply(op)
    pair.check(sdk_log, hook)
    assert pair.core.attributes == {
        "sub": "v",
        "plain": None,
        "with_str": "with-str",
        "set": "frozenset({1})",
        "none": None,
        "7": "seven",
        "ok": (97, 98),
    }
    assert pair.core.dropped_attributes == 5
    assert all(type(key) is str for key in pair.core.attributes)


def test_an_ended_span_changes_no_more(sdk_log: _Messages, hook: list[str]) -> None:
    pair = Pair()
    pair.apply(("attr", "a", 1))
    pair.apply(("end", 100))
    for op in [
        ("attr", "b", 2),
        ("attrs", {"c": 3}),
        ("event", "e", None, 5),
        ("link", TRACE_ID, 5, False, [], None),
        ("name", "renamed"),
        ("status", StatusCode.ERROR, "late"),
        ("end", 200),
    ]:
        pair.apply(op)
    pair.check(sdk_log, hook)
    assert pair.core.end_time == 100
    assert hook == [
        "Setting attribute on ended span.",
        "Setting attribute on ended span.",
        "Tried calling _add_event on an ended span.",
        "Tried calling _add_link on an ended span.",
        "Tried calling update_name on an ended span.",
    ]


def test_events_and_links_past_their_limits_evict_the_oldest(sdk_log: _Messages, hook: list[str]) -> None:
    pair = Pair((-1, 2, 2, 1, 1, -1))
    for i in range(5):
        pair.apply(("event", f"e{i}", {"a": i, "b": i}, i + 1))
        pair.apply(("link", TRACE_ID, i + 1, False, [], {"a": i, "b": i}))
    pair.check(sdk_log, hook)
    assert [e[0] for e in pair.core.events] == ["e3", "e4"]
    assert (pair.core.dropped_events, pair.core.dropped_links) == (3, 3)
    assert [e[3] for e in pair.core.events] == [1, 1]


@pytest.mark.parametrize(
    ("trace_id", "span_id", "state", "attributes", "kept"),
    [
        (0, 5, [], None, False),
        (TRACE_ID, 0, [], {}, False),
        (0, 0, [("a", "1")], None, True),
        (0, 0, [], {"x": 1}, True),
        (TRACE_ID, 5, [], None, True),
    ],
)
def test_invalid_links_are_left_out_unless_they_carry_something(
    trace_id: int, span_id: int, state: list[tuple[str, str]], attributes: dict[str, int] | None, kept: bool
) -> None:
    pair = Pair()
    pair.apply(("link", trace_id, span_id, False, state, attributes))
    pair.check()
    assert len(pair.core.links) == kept


def test_a_timestamp_left_out_is_now() -> None:
    core = SpanCore("s", TRACE_ID, SPAN_ID, 0, 0x100, "", 1, 1, UNLIMITED)
    before = time.time_ns()
    core.add_event("e")
    assert core.end() is True
    after = time.time_ns()
    assert before <= core.events[0][1] <= after
    assert before <= core.end_time <= after
    assert core.end() is False


def test_status_fields_are_stored_as_given() -> None:
    core = SpanCore("s", TRACE_ID, SPAN_ID, 0, 0x100, "", 1, 1, UNLIMITED)
    core.set_status_fields(2, "boom")
    assert (core.status_code, core.status_description) == (2, "boom")
    core.set_status_fields(1, None)
    assert (core.status_code, core.status_description) == (1, "")
    with pytest.raises(ValueError, match="code"):
        core.set_status_fields(3, "")
    with pytest.raises(TypeError, match="description"):
        core.set_status_fields(2, b"x")


def test_the_hook_gets_each_warning_and_none_silences_them() -> None:
    got: list[str] = []
    previous = set_warning_hook(got.append)
    try:
        core = SpanCore("s", TRACE_ID, SPAN_ID, 0, 0x100, "", 1, 1, UNLIMITED)
        core.set_attribute("", 1)
        assert got == ["invalid key ``. must be non-empty string. Dropping key from attributes."]
        assert set_warning_hook(None) == got.append  # type: ignore[comparison-overlap]
        core.set_attribute("", 1)
        assert len(got) == 1
        with pytest.raises(TypeError, match="hook must be a callable"):
            set_warning_hook(42)
    finally:
        set_warning_hook(previous)


# ------------------------------------------------------------------------------------------------------------
# The constructor's checks


GOOD = ("s", TRACE_ID, SPAN_ID, 0, 0x100, "", 1, 10, UNLIMITED)


@pytest.mark.parametrize(
    ("index", "value", "error", "names"),
    [
        (0, b"s", TypeError, "name"),
        (1, "1", TypeError, "trace_id"),
        (1, 0, ValueError, "trace_id"),
        (1, 2**128, ValueError, "trace_id"),
        (1, True, TypeError, "trace_id"),
        (2, 0, ValueError, "span_id"),
        (2, 2**64, ValueError, "span_id"),
        (3, -1, ValueError, "parent_span_id"),
        (4, 2**32, ValueError, "flags"),
        (5, None, TypeError, "trace_state"),
        (6, 6, ValueError, "kind"),
        (7, -5, ValueError, "start_time"),
        (7, 1.5, TypeError, "start_time"),
        (8, [-1] * 6, TypeError, "limits"),
        (8, (-1,) * 5, TypeError, "limits"),
        (8, (-1, -1, -2, -1, -1, -1), ValueError, r"limits\[2\]"),
        (8, (-1, -1, "3", -1, -1, -1), TypeError, "limits"),
    ],
)
def test_wrong_constructor_arguments_are_named(index: int, value: Any, error: type[Exception], names: str) -> None:
    args = list(GOOD)
    args[index] = value
    with pytest.raises(error, match=names):
        SpanCore(*args)


def test_the_constructor_takes_keywords_and_method_arguments_are_checked() -> None:
    names = ["name", "trace_id", "span_id", "parent_span_id", "flags", "trace_state", "kind", "start_time", "limits"]
    core = SpanCore(**dict(zip(names, GOOD, strict=True)))
    assert (core.name, core.trace_id, core.span_id, core.start_time) == ("s", TRACE_ID, SPAN_ID, 10)
    assert core.end_time is None and core.ended is False
    with pytest.raises(TypeError, match="name"):
        core.add_event(1)
    with pytest.raises(TypeError, match="attributes must be a mapping"):
        core.add_event("e", [("a", 1)])
    with pytest.raises(ValueError, match="timestamp"):
        core.add_event("e", None, -1)
    with pytest.raises(ValueError, match="span_id"):
        core.add_link(1, -1, 0x100, "")
    with pytest.raises(TypeError, match="trace_state"):
        core.add_link(1, 1, 0x100, None)
    with pytest.raises(TypeError, match="attributes must be a mapping"):
        core.set_attributes([("a", 1)])
    with pytest.raises(TypeError, match="set_attribute"):
        core.set_attribute("a")
    with pytest.raises(ValueError, match="end_time"):
        core.end(-1)
    assert core.attributes == {} and core.events == [] and core.links == []


def test_the_api_methods_take_the_api_keyword_names() -> None:
    core = SpanCore(*GOOD)
    core.set_attribute(key="k", value=1)
    core.set_attributes(attributes={"m": 2})
    core.add_event(name="e", attributes={"a": 1}, timestamp=5)
    core.add_event("f", timestamp=6)
    core.update_name(name="renamed")
    assert (core.name, core.attributes) == ("renamed", {"k": 1, "m": 2})
    assert core.events == [("e", 5, {"a": 1}, 0), ("f", 6, {}, 0)]
    with pytest.raises(TypeError, match="unexpected keyword argument 'nam'"):
        core.add_event(nam="e")
    with pytest.raises(TypeError, match="multiple values for argument 'value'"):
        core.set_attribute("k", 1, value=2)
    with pytest.raises(TypeError, match="missing required argument 'name'"):
        core.update_name()


# ------------------------------------------------------------------------------------------------------------
# Threads, garbage collection, subclassing


def test_threads_setting_at_once_lose_nothing_and_never_pass_the_limits() -> None:
    threads_n, per_thread, limit = 8, 2000, 100
    unlimited = SpanCore("s", TRACE_ID, SPAN_ID, 0, 0x100, "", 1, 1, UNLIMITED)
    bounded = SpanCore("s", TRACE_ID, SPAN_ID, 0, 0x100, "", 1, 1, (limit, limit, -1, -1, -1, -1))
    start = threading.Barrier(threads_n)

    def work(n: int) -> None:
        start.wait()
        for i in range(per_thread):
            for core in (unlimited, bounded):
                core.set_attribute(f"t{n}-{i}", i)
                core.set_attributes({f"m{n}-{i}": StrKey("v"), "shared": n})
                core.add_event("e", {"i": i}, i + 1)

    threads = [threading.Thread(target=work, args=(n,)) for n in range(threads_n)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    total_keys = threads_n * per_thread * 2 + 1
    assert len(unlimited.attributes) == total_keys and unlimited.dropped_attributes == 0
    assert len(unlimited.events) == threads_n * per_thread
    assert len(bounded.attributes) == limit
    # every new key past the limit evicted exactly one: kept + dropped = keys set (a re-set "shared" is no new key
    # unless it was evicted in between, which the count then includes: so at least, and never kept past the limit)
    assert len(bounded.attributes) + bounded.dropped_attributes >= total_keys
    assert len(bounded.events) == limit
    assert bounded.dropped_events == threads_n * per_thread - limit


def test_encoding_while_other_threads_add_and_evict_is_safe() -> None:
    """encode() runs Python code for values of other types than the built-ins (an IntEnum here); other threads
    then add and evict events, links and attributes under it. A stress test: nothing raises or crashes, and the
    span encoded at the end decodes to what the core holds. (It does not reliably catch a freed dict being read:
    CPython's dict free lists keep the memory valid; the C code holds what it writes instead, see w_core_span.)"""
    limits = (4, 3, 3, 2, 2, -1)
    core = SpanCore("s", TRACE_ID, SPAN_ID, 0, 0x100, "", 1, 1, limits)
    stop = threading.Event()
    errors: list[BaseException] = []

    def encoder() -> None:
        try:
            while not stop.is_set():
                core.encode()
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    def writer(n: int) -> None:
        for i in range(3000):
            core.set_attribute(f"k{n}-{i % 7}", Color.RED)
            core.add_event("e", {"c": Color.RED, "s": StrKey("v")}, i + 1)
            core.add_link(TRACE_ID, i + 1, 0x100, "a=1", {"c": Color.RED})

    threads = [threading.Thread(target=encoder) for _ in range(2)]
    writers = [threading.Thread(target=writer, args=(n,)) for n in range(3)]
    interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)  # switch threads as often as possible: inside encode()'s Python calls too
    try:
        for thread in threads + writers:
            thread.start()
        for thread in writers:
            thread.join()
        stop.set()
        for thread in threads:
            thread.join()
    finally:
        sys.setswitchinterval(interval)
    assert errors == []
    assert (len(core.attributes), len(core.events), len(core.links)) == (4, 3, 3)
    assert core.dropped_events == core.dropped_links == 3 * 3000 - 3
    span = ScopeSpans.FromString(core.encode()).spans[0]
    assert [kv.value.int_value for kv in span.attributes] == [1, 1, 1, 1]
    assert [(e.time_unix_nano, len(e.attributes)) for e in span.events] == [(e[1], 2) for e in core.events]
    assert [link.span_id for link in span.links] == [link[1].to_bytes(8, "big") for link in core.links]
    assert (span.dropped_events_count, span.dropped_links_count) == (core.dropped_events, core.dropped_links)
    assert span.dropped_attributes_count == core.dropped_attributes > 0


class Sub(SpanCore if _compat.speedups is not None else object):  # type: ignore[misc]
    """The SDK layer's shape: a subclass with a __dict__."""


def test_a_subclass_in_a_reference_cycle_is_collected() -> None:
    gone = threading.Event()
    span = Sub("s", TRACE_ID, SPAN_ID, 0, 0x100, "", 1, 1, UNLIMITED)
    span.me = span  # a cycle through the instance's __dict__
    span.set_attribute("a", 1)
    span.add_event("e", {"x": 1}, 1)
    weakref.finalize(span, gone.set)
    del span
    gc.collect()
    assert gone.is_set()


def test_the_sdk_layers_subclass_shape_works() -> None:
    class Span(SpanCore, trace.Span):  # type: ignore[misc]
        __slots__ = ()

        def get_span_context(self) -> SpanContext:
            return SpanContext(self.trace_id, self.span_id, False)

        def is_recording(self) -> bool:
            return not self.ended

        def set_status(self, status: Any, description: str | None = None) -> None:
            pass

        def record_exception(self, exception: BaseException, *args: Any, **kwargs: Any) -> None:
            pass

    span = Span("s", TRACE_ID, SPAN_ID, 0, 0x100, "", 2, 1, UNLIMITED)
    assert isinstance(span, trace.Span) and isinstance(span, SpanCore)
    with trace.use_span(span, end_on_exit=False):
        assert trace.get_current_span() is span
        span.set_attribute("a", 1)
    ref = weakref.ref(span)
    del span
    gc.collect()
    assert ref() is None


def test_many_spans_leave_no_memory_behind() -> None:
    import tracemalloc

    def round_(n: int) -> None:
        for i in range(n):
            core = SpanCore("s", TRACE_ID, SPAN_ID, 0, 0x100, "", 1, 1, (4, 2, 2, 2, 2, 8))
            for k in range(6):
                core.set_attribute(f"k{k}", "value-longer-than-8")
            core.set_attributes({"m": [1, "x" * 20], "n": {"o": i}})
            core.add_event("e", {"a": 1, "b": 2, "c": 3}, 5)
            core.add_event("e2", None, 6)
            core.add_event("e3", {"k": WithStr()}, 7)
            core.add_link(TRACE_ID, i + 1, 0x100, "a=1", {"x": 1})
            core.add_link(0, 0, 0x100, "", None)
            core.set_status_fields(2, "boom")
            core.end(10)
            core.encode()
            _ = core.attributes, core.events, core.links

    # no warning hook: once aiotlp.sdk._span is imported (by any earlier test), its hook logs each warning and
    # pytest keeps every record, which is not the core's memory
    previous = set_warning_hook(None)
    try:
        round_(2000)  # warm-up: caches, interned strings, the encode buffer
        gc.collect()
        tracemalloc.start()
        try:
            before = tracemalloc.get_traced_memory()[0]
            round_(20000)
            gc.collect()
            grown = tracemalloc.get_traced_memory()[0] - before
        finally:
            tracemalloc.stop()
    finally:
        set_warning_hook(previous)
    assert grown < 64 * 1024, f"{grown} bytes more after 20000 spans"


# ------------------------------------------------------------------------------------------------------------
# Against the pure-Python twin, call for call, also outside what an SDK span can hold (kind 0, flags 0, a status
# description with any code, set after end())

PROPERTIES = (
    "name",
    "trace_id",
    "span_id",
    "parent_span_id",
    "flags",
    "trace_state",
    "kind",
    "start_time",
    "end_time",
    "ended",
    "status_code",
    "status_description",
    "dropped_attributes",
    "dropped_events",
    "dropped_links",
    "attributes",
    "events",
    "links",
)

core_ops = st.one_of(
    st.tuples(st.just("set_attribute"), keys, values),
    st.tuples(st.just("set_attributes"), mappings),
    st.tuples(st.just("add_event"), texts(), st.one_of(st.none(), mappings), times),
    st.tuples(
        st.just("add_link"),
        ids128,
        ids64,
        st.sampled_from([0, 0x100, 0x300, 2**32 - 1]),
        st.sampled_from(["", "a=1", "a=1,b=v2"]),
        st.one_of(st.none(), mappings),
    ),
    st.tuples(st.just("update_name"), texts()),
    st.tuples(st.just("set_status_fields"), st.integers(0, 2), texts()),
    st.tuples(st.just("end"), times),
)


@SETTINGS
@given(
    limits=limits_st,
    name=texts(),
    kind=st.integers(0, 5),
    parent=ids64,
    flags=st.sampled_from([0, 0x100, 0x300, 2**32 - 1]),
    trace_state=st.sampled_from(["", "a=1", "vendor@x=v2,a=1"]),
    start=st.one_of(st.just(0), times),
    calls=st.lists(core_ops, max_size=12),
)
def test_random_calls_give_what_the_pure_twin_gives(
    limits: tuple[int, ...],
    name: str,
    kind: int,
    parent: int,
    flags: int,
    trace_state: str,
    start: int,
    calls: list[tuple[Any, ...]],
) -> None:
    from aiotlp.encoding import _spancore

    args = (name, TRACE_ID, SPAN_ID, parent, flags, trace_state, kind, start, limits)
    pure, compiled = _spancore.SpanCore(*args), SpanCore(*args)
    pure_texts: list[str] = []
    compiled_texts: list[str] = []
    previous = set_warning_hook(compiled_texts.append)
    previous_pure = _spancore.set_warning_hook(pure_texts.append)
    try:
        for verb, *call_args in calls:
            assert getattr(compiled, verb)(*call_args) == getattr(pure, verb)(*call_args)
            assert compiled.encode() == pure.encode()
        for prop in PROPERTIES:
            assert getattr(compiled, prop) == getattr(pure, prop), prop
        assert compiled_texts == pure_texts
    finally:
        set_warning_hook(previous)  # the SDK layer's hooks, when it is imported
        _spancore.set_warning_hook(previous_pure)
