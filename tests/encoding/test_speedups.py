"""The compiled accelerator (aiotlp.encoding._speedups) against the pure-Python encoder it twins.

The rest of the encoding suite runs every case with both implementations (the ``encoder_implementation``
fixture in tests/conftest.py). This module checks the choice itself (built here, the kill switch, the fixture
really switching every twin) and compares the two implementations directly, byte for byte: on random model
batches, on random SDK spans built from them, on every attribute value kind, and on the inputs where the two
could part ways (lone surrogates, int64 bounds, value subclasses and other mappings and sequences, deep nesting,
bad values and keys: the same EncodeError). Decoding and comparing with the official classes is the other
modules' job; here equal bytes suffice, and cost less, so more examples run.

White-box, on purpose: the accelerator switch (``aiotlp.encoding._compat``) and the twins' internal writers
(``_protobuf._write_attributes`` / ``_write_any``, ``aiotlp.sdk._encode_spans._write_spans_compiled``, the SDK
encoders' private modules) are what is compared: no public surface hands out a writer.

The error markers the writers share (``_protobuf._TooDeep``, ``_IntOutOfRange``, ``_LeftOut``) are read for the
same reason.
"""

from __future__ import annotations

import collections
import dataclasses
import math
import os
import subprocess
import sys
import types
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from opentelemetry.attributes import BoundedAttributes
from opentelemetry.sdk.resources import Resource as SdkResource
from opentelemetry.sdk.trace import Event as SdkEvent
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.util import BoundedList
from opentelemetry.sdk.util.instrumentation import InstrumentationScope as SdkScope
from opentelemetry.trace import Link as SdkLink
from opentelemetry.trace import SpanContext, SpanKind, TraceFlags, TraceState
from opentelemetry.trace.status import Status as SdkStatus
from opentelemetry.trace.status import StatusCode as SdkStatusCode
from tests.encoding.test_encoders import Color, Ratio, Tag
from tests.strategies import INT64_MAX, INT64_MIN, any_values, attributes, span_batches

from aiotlp import EncodeError
from aiotlp.encoding import _compat, _protobuf, encode_traces
from aiotlp.model import MAX_NESTING_DEPTH, Span
from aiotlp.sdk import _encode_common, _encode_logs, _encode_spans, encode_spans

# Without the kill switch the accelerator must be here: a build that silently fell back to pure Python fails
# test_the_accelerator_is_built_here_and_chosen_by_default (and every comparison below) instead of passing.
pytestmark = pytest.mark.skipif(_compat.NO_EXTENSIONS, reason="AIOTLP_NO_EXTENSIONS is set")

DIFFERENTIAL = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
# Span batches are slow to generate (every field, nested values); the conformance suite runs 300 more per
# implementation against the official classes.
BATCHES = settings(DIFFERENTIAL, max_examples=50)


@pytest.fixture(autouse=True)
def _restore_choice() -> Iterator[None]:
    previous = _compat.implementation()
    yield
    _compat.use(previous)


def both(call: Callable[[], Any]) -> tuple[Any, Any]:
    """``call()`` with the pure-Python encoder, then with the compiled one: each result, or the exception."""
    results = []
    for choice in _compat.IMPLEMENTATIONS:
        _compat.use(choice)
        try:
            results.append(call())
        except Exception as exc:
            results.append(exc)
    return results[0], results[1]


def same(call: Callable[[], Any]) -> Any:
    """Assert both implementations return the same value (or raise the same exception type and message)."""
    python, compiled = both(call)
    if isinstance(python, Exception) or isinstance(compiled, Exception):
        assert type(python) is type(compiled), (python, compiled)
        assert str(python) == str(compiled)
    else:
        assert python == compiled
    return python


def write(kind: str, value: Any, tag: bytes = b"\x4a") -> Callable[[], bytes]:
    """A call that writes ``value`` with the current implementation's twin, after a prefix, and returns the bytes."""

    def call() -> bytes:
        buf = bytearray(b"prefix")
        if kind == "attributes":
            _protobuf._write_attributes(buf, tag, value)
        else:
            _protobuf._write_any(buf, tag, value)
        return bytes(buf)

    return call


# --- the choice -----------------------------------------------------------------------------------------------


def test_the_accelerator_is_built_here_and_chosen_by_default() -> None:
    # This suite runs against a build of the repository (pip install -e .), where gcc and the headers exist.
    assert _compat.speedups is not None, "aiotlp.encoding._speedups is not built: run pip install -e ."
    assert type(_compat.speedups.write_sdk_spans).__name__ == "builtin_function_or_method"


def test_the_fixture_switches_every_twin(encoder_implementation: str) -> None:
    assert _compat.implementation() == encoder_implementation
    speedups = _compat.speedups
    assert speedups is not None
    twins = {
        (_protobuf, "_write_attributes"): speedups.write_attributes,
        (_protobuf, "_write_any"): speedups.write_any,
        (_protobuf, "_write_spans"): speedups.write_spans,
        (_encode_common, "_write_attributes"): speedups.write_attributes,
        (_encode_logs, "_write_attributes"): speedups.write_attributes,
        (_encode_logs, "_write_any"): speedups.write_any,
        (_encode_spans, "_write_spans"): _encode_spans._write_spans_compiled,
    }
    for (module, name), compiled in twins.items():
        bound = getattr(module, name)
        if encoder_implementation == "c":
            assert bound is compiled, name
        else:
            assert bound is not compiled, name
            # the pure function: the sdk encoders import the attribute writers from aiotlp.encoding (_protobuf's)
            defined_in = _protobuf if name != "_write_spans" else module
            assert (bound.__module__, bound.__name__) == (defined_in.__name__, name)


@pytest.mark.parametrize(("switch", "expected"), [("1", "python"), ("yes", "python"), ("0", "c"), ("", "c")])
def test_the_kill_switch_in_a_fresh_interpreter(switch: str, expected: str) -> None:
    code = (
        "from aiotlp.encoding import _compat, _protobuf\n"
        "print(_compat.implementation(), _compat.speedups is None, _protobuf._write_any.__module__)"
    )
    env = {**os.environ, "AIOTLP_NO_EXTENSIONS": switch}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True).stdout
    implementation, no_module, module = out.split()
    assert implementation == expected
    assert no_module == str(expected == "python")
    assert (module == "aiotlp.encoding._protobuf") == (expected == "python")


def test_use_rejects_an_unknown_implementation() -> None:
    with pytest.raises(ValueError, match="'rust'"):
        _compat.use("rust")  # type: ignore[arg-type]


# --- random data ------------------------------------------------------------------------------------------------


@DIFFERENTIAL
@given(any_values(allow_nan=True, max_leaves=12, wide=True))
def test_any_value(value: Any) -> None:
    same(write("any", value))
    same(write("attributes", {"k": value}, b"\x62"))


@DIFFERENTIAL
@given(attributes(allow_nan=True, max_size=12, wide=True))
def test_attributes(values: dict[str, Any]) -> None:
    same(write("attributes", values))


@BATCHES
@given(span_batches(max_size=8))
def test_model_span_batches(spans: list[Span]) -> None:
    assert same(lambda: encode_traces(spans)) == encode_traces(spans)


@BATCHES
@given(span_batches(max_size=6), st.lists(st.tuples(st.integers(0, 5), attributes(max_size=3, wide=True)), max_size=4))
def test_model_span_batches_with_ints_outside_int64(spans: list[Span], extra: list[tuple[int, dict[str, Any]]]) -> None:
    """Attributes with ints outside int64 (left out and counted) added to spans, their events and links."""
    for index, more in extra:
        if spans:
            span = spans[index % len(spans)]
            events = [dataclasses.replace(e, attributes={**e.attributes, **more}) for e in span.events]
            links = [dataclasses.replace(k, attributes={**k.attributes, **more}) for k in span.links]
            updated = dataclasses.replace(span, attributes={**span.attributes, **more}, events=events, links=links)
            spans[index % len(spans)] = updated
    assert same(lambda: encode_traces(spans)) == encode_traces(spans)


def _context(trace_id: bytes, span_id: bytes, remote: bool, trace_state: str) -> SpanContext:
    state = TraceState([("k", "v"), ("vendor", trace_state[:8].encode().hex() or "x")]) if trace_state else TraceState()
    return SpanContext(int.from_bytes(trace_id, "big"), int.from_bytes(span_id, "big"), remote, TraceFlags(1), state)


def _sdk_attributes(values: dict[str, Any], dropped: int, bounded: bool) -> Any:
    if not bounded:
        return values
    result = BoundedAttributes(maxlen=None, attributes=values, immutable=True)
    result.dropped = dropped
    return result


@st.composite
def sdk_span_batches(draw: st.DrawFn) -> list[ReadableSpan]:
    """SDK ReadableSpans made from random model spans: every field, BoundedAttributes/BoundedList or plain."""
    model = draw(span_batches(max_size=6))
    resources: dict[int, SdkResource] = {}
    scopes: dict[int, SdkScope] = {}
    out = []
    for span in model:
        bounded = draw(st.booleans())
        resource = resources.setdefault(id(span.resource), SdkResource(dict(span.resource.attributes)))
        scope = scopes.setdefault(
            id(span.scope), SdkScope(span.scope.name, span.scope.version or None, span.scope.schema_url or None)
        )
        events: Any = [
            SdkEvent(e.name, _sdk_attributes(e.attributes, e.dropped_attributes_count, bounded), e.time_unix_nano)
            for e in span.events
        ]
        links: Any = [
            SdkLink(
                _context(link.trace_id, link.span_id, bool(link.flags & 1), link.trace_state),
                _sdk_attributes(link.attributes, link.dropped_attributes_count, bounded),
            )
            for link in span.links
        ]
        if bounded:
            events = BoundedList.from_seq(None, events)
            events.dropped = span.dropped_events_count
            links = BoundedList.from_seq(None, links)
            links.dropped = span.dropped_links_count
        code = SdkStatusCode(int(span.status.code))
        parent = span.parent_span_id
        out.append(
            ReadableSpan(
                name=span.name,
                context=_context(span.trace_id, span.span_id, False, span.trace_state),
                parent=_context(span.trace_id, parent, bool(span.flags & 1), "") if parent else None,
                resource=resource,
                attributes=_sdk_attributes(span.attributes, span.dropped_attributes_count, bounded),
                events=events,
                links=links,
                kind=SpanKind(max(int(span.kind) - 1, 0)),
                status=SdkStatus(code, span.status.message if code is SdkStatusCode.ERROR else None),
                start_time=span.start_time_unix_nano or None,
                end_time=span.end_time_unix_nano,
                instrumentation_scope=draw(st.sampled_from([scope, None])),
            )
        )
    return out


@BATCHES
@given(sdk_span_batches())
def test_sdk_span_batches(spans: list[ReadableSpan]) -> None:
    same(lambda: encode_spans(spans))


# --- targeted cases ------------------------------------------------------------------------------------------------


# Subclasses of the value types (an IntEnum, a str and a float subclass): the ones test_encoders.py writes
# through the pure encoder, here compared across both implementations.


Point = collections.namedtuple("Point", "x y")

UNUSUAL_VALUES: dict[str, Any] = {
    "int_enum": Color.RED,
    "str_subclass": Tag("t"),
    "float_subclass": Ratio(0.5),
    "bytearray": bytearray(b"\x00\x01"),
    "memoryview": memoryview(b"mv"),
    "list": [1, "a", [2.5, None], {"k": b"v"}],
    "namedtuple": Point(1, 2),
    "range": range(3),
    "deque": collections.deque([True, False]),
    "ordered_dict": collections.OrderedDict([("b", 1), ("a", 2)]),
    "mapping_proxy": types.MappingProxyType({"x": "y"}),
    "nan": math.nan,
    "negative_nan": -math.nan,
    "inf": -math.inf,
    "negative_zero": -0.0,
    "int64_min": INT64_MIN,
    "int64_max": INT64_MAX,
    "ints": [0, 127, 128, 16383, 16384, -1, INT64_MIN],
    "lone_surrogates": "a\ud800b\udfff",
    "surrogate_pair": "\ud83d\ude00",
    "astral": "😀𝄞",
    "empty": "",
    "long": "é" * 10_000,
    "big_list": list(range(200)),
    "none": None,
    "empty_list": [],
    "empty_dict": {},
}


@pytest.mark.parametrize("name", list(UNUSUAL_VALUES))
def test_unusual_values(name: str) -> None:
    value = UNUSUAL_VALUES[name]
    same(write("any", value))
    same(write("attributes", {name: value}))
    same(write("attributes", {f"k\udc00{name}": value, "": value}))  # a lone surrogate in a key; an empty key


def test_other_mappings_as_attributes() -> None:
    same(write("attributes", collections.OrderedDict([("b", 1), ("a", "x")])))
    same(write("attributes", types.MappingProxyType({"x": [1.5], "y": None})))


class Big(int):
    """An int subclass (normalized to int by both writers, then held to the same range)."""


OUT_OF_INT64 = [INT64_MAX + 1, INT64_MIN - 1, 2**64, 2**64 - 1, -(2**64), 10**30, -(10**400)]


@pytest.mark.parametrize("value", OUT_OF_INT64)
def test_integers_outside_int64_raise_the_same_left_out_error(value: int) -> None:
    for payload in (value, [1, {"n": value}], {"a": [value]}, Big(value)):
        python, compiled = both(write("any", payload))
        assert isinstance(python, _protobuf._IntOutOfRange) and isinstance(compiled, _protobuf._IntOutOfRange)
        assert isinstance(compiled, _protobuf._LeftOut) and isinstance(compiled, EncodeError)
        assert str(python) == str(compiled)
        assert str(value) in str(compiled)


@pytest.mark.parametrize("value", OUT_OF_INT64)
def test_an_attribute_holding_an_int_outside_int64_is_left_out_and_counted(value: int) -> None:
    good = {"a": "x", "max": INT64_MAX, "min": INT64_MIN, "list": [1, {"m": INT64_MAX}]}
    expected, none_dropped = same(counted(good))
    assert none_dropped == 0
    mixed = {"a": "x", "bad": value, "max": INT64_MAX, "nested": {"k": [2, value]}, "min": INT64_MIN}
    mixed |= {"list": good["list"], "in-list": [value], "deep": nested(MAX_NESTING_DEPTH + 1)}
    # exactly the good ones, in their order; the three with the int and the too-deep one counted
    assert same(counted(mixed)) == (expected, 4)
    assert same(counted({"bad": value})) == (b"prefix", 1)
    # cached ints (the pure encoder keeps whole int attributes) do not change it: a second time, same answer
    assert same(counted(mixed)) == (expected, 4)
    # in an int subclass, in any mapping type
    assert same(counted(collections.OrderedDict(bad=Big(value), a="x")))[1] == 1


@pytest.mark.parametrize("value", [object(), {1, 2}, 1j, print])
def test_unencodable_values_raise_the_same_encode_error(value: Any) -> None:
    python, compiled = both(write("attributes", {"k": value}))
    assert isinstance(compiled, EncodeError)
    assert type(python) is type(compiled)
    assert str(python) == str(compiled)
    assert "cannot encode" in str(compiled)


@pytest.mark.parametrize("key", [1, None, b"k", ("t",)])
def test_a_key_that_is_not_a_str_raises_the_same_encode_error(key: Any) -> None:
    python, compiled = both(write("attributes", {key: "v"}))
    assert isinstance(compiled, EncodeError)
    assert type(python) is type(compiled)
    assert str(python) == str(compiled)
    assert "key must be a str" in str(compiled)


def nested(depth: int, leaf: Any = "leaf") -> Any:
    """``leaf`` inside ``depth`` containers, mappings and lists alternating (a mapping outermost)."""
    value = leaf
    for i in range(depth):
        value = {"k": value} if (depth - i) % 2 else [value]
    return value


def counted(attributes: Any) -> Callable[[], tuple[bytes, int]]:
    """Write ``attributes`` after a prefix; return the bytes and the count of attributes left out."""

    def call() -> tuple[bytes, int]:
        buf = bytearray(b"prefix")
        dropped = _protobuf._write_attributes(buf, b"\x4a", attributes)
        return bytes(buf), dropped

    return call


def test_the_depth_limit_is_the_models() -> None:
    assert _compat.speedups is not None
    assert _compat.speedups.MAX_NESTING_DEPTH == MAX_NESTING_DEPTH


def test_nesting_up_to_the_limit_is_written_and_one_more_is_too_deep() -> None:
    deepest = nested(MAX_NESTING_DEPTH)
    written = same(write("any", deepest))
    assert same(write("attributes", {"d": deepest})).startswith(b"prefix\x4a")
    assert written.startswith(b"prefix")
    for too_deep in (nested(MAX_NESTING_DEPTH + 1), nested(MAX_NESTING_DEPTH + 1, leaf=[]), nested(100_000)):
        python, compiled = both(write("any", too_deep))
        assert isinstance(python, _protobuf._TooDeep) and isinstance(compiled, _protobuf._TooDeep)
        message = f"a value nests lists and mappings deeper than {MAX_NESTING_DEPTH} levels"
        assert str(python) == str(compiled) == message
        assert isinstance(python, EncodeError)  # a declared error, should a caller not catch it


def test_an_attribute_nested_too_deep_is_left_out_and_counted() -> None:
    good = {"a": "x", "n": 1, "list": [1, [2, {"m": 3.5}]], "deepest": nested(MAX_NESTING_DEPTH)}
    bad = {"too-deep": nested(MAX_NESTING_DEPTH + 1), "self": self_referencing(), "deeper": nested(10_000)}
    mixed = {"a": "x", "too-deep": bad["too-deep"], "n": 1, "list": good["list"], "self": bad["self"]}
    mixed |= {"deepest": good["deepest"], "deeper": bad["deeper"]}
    expected, none_dropped = same(counted(good))
    assert none_dropped == 0
    assert same(counted(mixed)) == (expected, 3)  # exactly the good ones, in their order, the bad ones counted
    assert same(counted(bad)) == (b"prefix", 3)
    # a nested mapping's too-deep value takes its whole top-level attribute out (one count), not just itself
    inner = {"outer": {"fine": 1, "sub": nested(MAX_NESTING_DEPTH)}}
    assert same(counted(inner)) == (b"prefix", 1)
    # any other mapping and sequence type is held to the same limit
    chain: Any = "leaf"
    for _ in range(MAX_NESTING_DEPTH + 1):
        chain = collections.OrderedDict(k=collections.deque([chain]))
    assert same(counted({"chain": chain, "ok": True}))[1] == 1


def self_referencing() -> list[Any]:
    value: list[Any] = [1]
    value.append(value)
    return value


def test_a_list_that_contains_itself_is_too_deep_not_a_recursion_error() -> None:
    python, compiled = both(write("any", self_referencing()))
    assert isinstance(python, _protobuf._TooDeep) and isinstance(compiled, _protobuf._TooDeep)
    wide: list[Any] = []
    wide += [wide, wide, wide]  # 3**24 paths: found too deep on the first one, not after walking them all
    python, compiled = both(write("any", wide))
    assert isinstance(python, _protobuf._TooDeep) and isinstance(compiled, _protobuf._TooDeep)


def test_a_too_deep_value_leaves_the_compiled_writers_buffer_as_it_was() -> None:
    speedups = _compat.speedups
    assert speedups is not None
    buf = bytearray(b"kept")
    with pytest.raises(_protobuf._TooDeep):
        speedups.write_any(buf, b"\x2a", ["x" * 5000, nested(MAX_NESTING_DEPTH)])
    assert buf == b"kept"
    assert speedups.write_attributes(buf, b"\x4a", {"deep": ["x" * 5000, nested(MAX_NESTING_DEPTH)]}) == 1
    assert buf == b"kept"
    with pytest.raises(ValueError, match="depth"):
        speedups.write_any(buf, b"\x2a", 1, -1)
    with pytest.raises(TypeError, match="3 or 4 arguments"):
        speedups.write_attributes(buf, b"\x4a")


def test_on_error_the_compiled_writer_leaves_the_buffer_as_it_was() -> None:
    speedups = _compat.speedups
    assert speedups is not None
    buf = bytearray(b"kept")
    with pytest.raises(EncodeError):
        speedups.write_attributes(buf, b"\x4a", {"a": "x" * 5000, "b": [1, object()]})
    assert buf == b"kept"
    with pytest.raises(_protobuf._IntOutOfRange):
        speedups.write_any(buf, b"\x2a", ["x" * 5000, [1, 2**70]])
    assert buf == b"kept"


@pytest.mark.parametrize("size", [125, 126, 127, 128, 16383, 16384, 2_097_152])
def test_length_boundaries(size: int) -> None:
    text = "x" * size
    same(write("attributes", {"k": text, text[: size // 2]: [text], "m": {"n": text}}))


def test_sdk_ids_out_of_range_raise_in_both() -> None:
    for trace_id, span_id in ((2**128, 1), (-1, 1), (1, 2**64), (1, -1)):
        span = ReadableSpan("s", context=SpanContext(trace_id, span_id, False), resource=SdkResource({}))
        python, compiled = both(lambda span=span: encode_spans([span]))  # type: ignore[misc]
        assert isinstance(python, Exception) and isinstance(compiled, Exception), (trace_id, span_id)


def test_sdk_spans_sharing_and_alternating_status_objects() -> None:
    error = SdkStatus(SdkStatusCode.ERROR, "boom\ud800")
    ok = SdkStatus(SdkStatusCode.OK)
    context = SpanContext(1, 2, False)
    spans = [
        ReadableSpan(f"s{i}", context=context, status=status, attributes={"i": i}, resource=SdkResource({}))
        for i, status in enumerate([error, error, ok, ok, error, SdkStatus(), error])
    ]
    same(lambda: encode_spans(spans))
    big = [
        ReadableSpan("b", context=context, status=error, attributes={"a": "x" * n}, resource=SdkResource({}))
        for n in (10, 200, 20_000, 10, 100_000, 10)
    ]
    same(lambda: encode_spans(big))
