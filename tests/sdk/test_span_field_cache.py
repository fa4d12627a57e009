"""The pure-Python one-span writer's fast paths (``aiotlp.sdk._encode_spans._span_field``, ``on_end``'s hot path
without the accelerator, issue 13): each attribute's whole field is taken from caches by (key, value), one per
value type, and a str, int or float attribute missing from them is written in line; span and event names come
from tagged caches; the Span's fields are joined once.

The bytes must stay those of the batch writer (``_write_spans``, itself checked against the official encoder) for a
batch of one, and those of the compiled twin when it is built: for attribute values of every type, equal values
of different types under one key in any order (``1``, ``True``, ``1.0``, ``"1"``; ``0``, ``False``, ``0.0``,
``-0.0``), subclasses (``IntEnum``, ``str`` subclasses), ints at the edges of int64 (left out past them, and
counted), NaN and infinities, non-ASCII and surrogate text, long values and keys (not cached), large varints
(dropped counts, events and spans past one-byte and two-byte lengths), events without a name, a time or
attributes; with the caches full (cleared) and from several threads at once; and end to end, through
``BatchSpanProcessor`` to a collector over gRPC and HTTP, as the official encoder sends the same spans.
"""

from __future__ import annotations

import asyncio
import enum
import math
import random
import threading
from collections.abc import Iterator
from typing import Any

import pytest
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans as official_encode_spans
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.trace.v1.trace_pb2 import ScopeSpans
from opentelemetry.sdk.trace import Event, ReadableSpan, SpanLimits, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanContext, TraceFlags

from aiotlp.encoding import _compat
from aiotlp.model import Signal
from aiotlp.sdk import BatchSpanProcessor, SpanExporter, _encode_spans
from aiotlp.testing import FakeCollector


@pytest.fixture
def empty_caches() -> Iterator[None]:
    """The writer's caches empty before and after the test (no test sees another's entries)."""

    def clear() -> None:
        for cache in (*_encode_spans._SPAN_KV, *_encode_spans._EVENT_KV):
            cache.clear()
        _encode_spans._SPAN_NAMES.clear()
        _encode_spans._EVENT_NAMES.clear()

    clear()
    try:
        yield
    finally:
        clear()


pytestmark = pytest.mark.usefixtures("pure", "empty_caches")


class Status(enum.IntEnum):
    OK = 200


class Tag(str):
    pass


class Method(str, enum.Enum):
    GET = "GET"
    POST = "post"  # its name is not its value (Enum hashes by name)


LONG = "x" * 65
EDGE = "y" * 64
VALUES: list[Any] = [
    # equal values of different types, in both orders
    1,
    True,
    1.0,
    "1",
    0,
    False,
    0.0,
    -0.0,
    "",
    # ints: varint lengths, negatives (10 bytes), the int64 edges and past them (left out, counted)
    127,
    128,
    16383,
    16384,
    -1,
    2**63 - 1,
    -(2**63),
    2**63,
    -(2**63) - 1,
    2**64,
    # floats
    1.5,
    -2.25,
    math.nan,
    math.inf,
    -math.inf,
    1e300,
    # subclasses
    Status.OK,
    200,
    Tag("GET"),
    "GET",
    Method.GET,
    Method.POST,
    "post",
    "POST",
    # text
    "ключ→値 ✓ 🎉",
    "\ud800 lone surrogate",
    "\ud83d\ude00 a pair",
    EDGE,
    LONG,
    "z" * 20_000,
    # other types (the writer's own path)
    b"\x00\xff",
    ("a", 1, True, 2.5),
    (),
    {"k": "v", "n": {"m": 1}},
    None,
]
KEYS = ["v", "ключ ✓", "k" * 256, "k" * 257]


def ended_spans(limits: SpanLimits | None = None) -> tuple[TracerProvider, InMemorySpanExporter]:
    exporter = InMemorySpanExporter()
    provider = TracerProvider(shutdown_on_exit=False, span_limits=limits)
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    return provider, exporter


def typed_spans() -> list[Any]:
    """SDK spans (from the SDK's own tracer) holding each value under each key, alone, then all of them in one
    span and in one event."""
    provider, exporter = ended_spans()
    tracer = provider.get_tracer("typed")
    for key in KEYS:
        for value in VALUES:
            with tracer.start_as_current_span("one value") as span:
                span.set_attribute(key, value)
                span.add_event("e", {key: value})
    with tracer.start_as_current_span("all values") as span:
        span.set_attributes({f"a{i}": value for i, value in enumerate(VALUES)})
        span.add_event("all", {f"e{i}": value for i, value in enumerate(VALUES)})
    return list(exporter.get_finished_spans())


def batch_of_one(span: Any) -> bytes:
    buf = bytearray()
    _encode_spans._write_spans(buf, (span,))
    return bytes(buf)


def check(spans: list[Any], rounds: int = 3) -> None:
    """Each span's field is the batch writer's, in any order, again and again (from the caches)."""
    expected = {id(span): batch_of_one(span) for span in spans}
    rng = random.Random(13)
    for trial in range(rounds):
        order = list(spans)
        if trial:
            rng.shuffle(order)
        for span in order:
            assert _encode_spans._span_field(span) == expected[id(span)], (span.name, dict(span.attributes or {}))


def test_attribute_values_of_every_type_under_every_key_are_the_batch_writers_bytes() -> None:
    spans = typed_spans()
    check(spans)
    # and with the caches warm from the others first, in reverse
    check(spans[::-1], rounds=1)


def test_equal_values_of_different_types_keep_their_own_type() -> None:
    """``1``, ``True`` and ``1.0`` (and ``0``, ``False``, ``0.0``, ``-0.0``) are equal dict keys: each must come
    out as its own AnyValue, whichever the writer saw first."""
    provider, exporter = ended_spans()
    tracer = provider.get_tracer("typed")
    values: list[Any] = [1, True, 1.0, 0, False, 0.0, -0.0, Status.OK, 200, 200.0]
    for value in [*values, *values[::-1], *values]:
        with tracer.start_as_current_span("s") as span:
            span.set_attribute("v", value)
            span.add_event("e", {"v": value})
    expected_kind = {int: "int_value", bool: "bool_value", float: "double_value", Status: "int_value"}
    for span in exporter.get_finished_spans():
        value = span.attributes["v"]  # type: ignore[index]
        scope_spans = ScopeSpans.FromString(_encode_spans._span_field(span))
        (decoded,) = scope_spans.spans
        for attribute in (decoded.attributes[0], decoded.events[0].attributes[0]):
            kind = attribute.value.WhichOneof("value")
            assert kind == expected_kind[type(value)], value
            written = getattr(attribute.value, kind)
            assert written == value and math.copysign(1, written) == math.copysign(1, value), value


def test_ints_past_int64_are_left_out_and_counted_from_the_cache_path_too() -> None:
    provider, exporter = ended_spans()
    tracer = provider.get_tracer("ints")
    for _ in range(2):
        with tracer.start_as_current_span("s") as span:
            span.set_attributes({"ok": 5, "big": 2**63, "small": -(2**63) - 1, "edge": 2**63 - 1})
            span.add_event("e", {"big": 2**64, "ok": -(2**63)})
    for span in exporter.get_finished_spans():
        (decoded,) = ScopeSpans.FromString(_encode_spans._span_field(span)).spans
        assert [a.key for a in decoded.attributes] == ["ok", "edge"]
        assert decoded.dropped_attributes_count == 2
        assert [a.key for a in decoded.events[0].attributes] == ["ok"]
        assert decoded.events[0].dropped_attributes_count == 1
        assert _encode_spans._span_field(span) == batch_of_one(span)


def test_large_counts_long_events_and_spans_and_odd_events() -> None:
    """Dropped counts past one varint byte, events past a one-byte and a two-byte length, a span past 16 KiB,
    events without a name, a time or attributes."""
    limits = SpanLimits(max_span_attributes=3, max_events=2, max_event_attributes=2)
    provider, exporter = ended_spans(limits)
    tracer = provider.get_tracer("large")
    with tracer.start_as_current_span("counts") as span:
        span.set_attributes({f"k{i}": i for i in range(300)})  # 297 dropped
        for i in range(200):  # 198 dropped
            span.add_event(f"e{i}", {f"a{j}": j for j in range(150)})  # 148 dropped per event
    with tracer.start_as_current_span("long event") as span:
        span.add_event("e" * 130)  # an event past 127 bytes, the name alone
        span.add_event("x", {"v": "w" * 20_000})  # past 16 KiB: a three-byte length, the span's too
    with tracer.start_as_current_span("") as span:
        span.add_event("", timestamp=0)  # no name, no time, no attributes: an empty Event
        span.add_event("", {})
    spans = list(exporter.get_finished_spans())
    check(spans)
    (counts,) = ScopeSpans.FromString(_encode_spans._span_field(spans[0])).spans
    assert counts.dropped_attributes_count == 297
    assert counts.dropped_events_count == 198
    assert [event.dropped_attributes_count for event in counts.events] == [148, 148]
    (odd,) = ScopeSpans.FromString(_encode_spans._span_field(spans[2])).spans
    assert odd.events[0].time_unix_nano == 0 and odd.events[0].name == ""


def test_spans_made_by_hand_with_plain_attributes_and_events() -> None:
    """A ReadableSpan given plain dicts (not BoundedAttributes) and SDK events over plain dicts."""
    context = SpanContext(trace_id=2**128 - 1, span_id=2**64 - 1, is_remote=False, trace_flags=TraceFlags(1))
    spans = [
        ReadableSpan(
            name="plain",
            context=context,
            attributes={"s": "v", "i": 7, "b": False, "f": 0.5},
            events=[Event("e", {"s": "v", "i": 7}, timestamp=3), Event("no attributes", None, timestamp=4)],
            start_time=1,
            end_time=2,
        ),
        ReadableSpan(name="ids", context=context, start_time=0, end_time=0),
    ]
    check(spans)


def test_what_the_caches_keep(monkeypatch: pytest.MonkeyPatch) -> None:
    """Short values and keys only (str values <= 64 characters, keys <= 256), no left-out ints, no 0.0 (equal to
    -0.0) nor NaN; names <= 256 characters; a full cache is cleared, never grown past its cap."""
    spans = typed_spans()
    for span in spans:
        _encode_spans._span_field(span)
    strings_and_ints, bools, floats = _encode_spans._SPAN_KV
    assert ("v", EDGE) in strings_and_ints and ("v", LONG) not in strings_and_ints
    assert ("k" * 256, 1) in strings_and_ints and ("k" * 257, 1) not in strings_and_ints
    assert ("v", 2**63 - 1) in strings_and_ints and ("v", 2**63) not in strings_and_ints
    assert ("v", True) in bools and ("v", 1.5) in floats
    assert all(key[1] != 0.0 and key[1] == key[1] for key in floats)  # neither 0.0 nor NaN
    assert all(type(key[1]) in (str, int) for key in strings_and_ints)
    assert all(type(key[1]) is bool for key in bools) and all(type(key[1]) is float for key in floats)
    assert "all values" in _encode_spans._SPAN_NAMES

    for cache in (*_encode_spans._SPAN_KV, *_encode_spans._EVENT_KV):
        cache.clear()
    monkeypatch.setattr(_encode_spans, "_KV_CACHE_MAX", 4)
    provider, exporter = ended_spans()
    tracer = provider.get_tracer("full")
    for i in range(50):
        with tracer.start_as_current_span(f"name {i}") as span:
            span.set_attributes({"s": f"v{i}", "i": i * 1000, "f": i + 0.5, "b": i % 2 == 0})
            span.add_event(f"event {i}", {"s": f"v{i}", "i": i})
    unique = list(exporter.get_finished_spans())
    check(unique)
    for cache in (*_encode_spans._SPAN_KV, *_encode_spans._EVENT_KV, _encode_spans._SPAN_NAMES):
        assert len(cache) <= 4


def test_from_several_threads_with_caches_cleared_under_them(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_encode_spans, "_KV_CACHE_MAX", 8)
    spans = typed_spans()
    expected = [batch_of_one(span) for span in spans]
    wrong: list[str] = []
    start = threading.Barrier(4)

    def encode(seed: int) -> None:
        rng = random.Random(seed)
        start.wait()
        for _ in range(5):
            order = list(range(len(spans)))
            rng.shuffle(order)
            for i in order:
                if _encode_spans._span_field(spans[i]) != expected[i]:
                    wrong.append(spans[i].name)

    threads = [threading.Thread(target=encode, args=(seed,)) for seed in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert wrong == []


def test_the_compiled_twin_writes_the_same_bytes() -> None:
    if _compat.speedups is None or not hasattr(_compat.speedups, "sdk_span_field"):
        pytest.skip("the compiled accelerator is not available" + (" (AIOTLP_NO_EXTENSIONS)" * _compat.NO_EXTENSIONS))
    compiled = _compat.speedups.sdk_span_field
    for span in typed_spans():
        assert _encode_spans._span_field(span) == compiled(_encode_spans._SDK_TYPES, span), span.name


# ------------------------------------------------------------------------------------------------------------
# End to end: on_end on a plain thread, encoded at the source by the pure writer, to a collector


def official_spans() -> list[Any]:
    """Spans the official encoder can encode too: str, int, bool and float values (no int past int64, no lone
    surrogate), under repeated and unique values, in spans and events."""
    provider, exporter = ended_spans()
    tracer = provider.get_tracer("end to end", "1.0")
    for i in range(300):
        with tracer.start_as_current_span(f"GET /v1/users/{i % 7}") as span:
            span.set_attributes(
                {
                    "http.request.method": "GET",
                    "url.full": f"https://api.example.com/v1/users/{i}?page=2" + "&q=1" * (i % 20),
                    "http.response.status_code": 200 if i % 3 else 404,
                    "server.port": 443,
                    "ok": i % 2 == 0,
                    "duration": i / 7,
                    "ratio": float(i % 4),
                    "ключ": "значение ✓",
                    "negative": -i,
                }
            )
            span.add_event("message", {"message.type": "RECEIVED", "message.id": i, "size": i * 1.5})
    return list(exporter.get_finished_spans())


@pytest.mark.parametrize("protocol", ["grpc", "http/protobuf"])
async def test_end_to_end_the_collector_gets_what_the_official_encoder_sends(protocol: str) -> None:
    spans = official_spans()
    async with FakeCollector() as collector:
        endpoint = collector.grpc_endpoint if protocol == "grpc" else f"{collector.http_endpoint}/v1/traces"
        processor = BatchSpanProcessor(
            SpanExporter(endpoint=endpoint, protocol=protocol),  # type: ignore[arg-type]
            max_queue_size=4096,
            max_export_batch_size=4096,
            schedule_delay_millis=60_000,
        )
        assert processor.encodes_at_source

        def produce() -> None:  # a plain thread, as a synchronous application ends its spans
            for span in spans:
                processor.on_end(span)

        thread = threading.Thread(target=produce)
        thread.start()
        await asyncio.to_thread(thread.join)
        assert await asyncio.to_thread(processor.force_flush) is True
        await asyncio.to_thread(processor.shutdown)
        stats = processor.statistics()
        assert stats.exported == len(spans) and stats.dropped_total == 0 and stats.balanced
        assert not collector.bad_requests
        (request,) = [request.message for request in collector.requests(Signal.TRACES)]
    assert request == official_encode_spans(spans)
    assert isinstance(request, ExportTraceServiceRequest)
