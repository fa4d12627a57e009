"""The pure-Python one-span writer (``aiotlp.sdk._encode_spans._span_field``, ``on_end``'s hot path without the
accelerator) writes the bytes of the batch writer (``_write_spans``) for a batch of one, and those of the compiled
twin (``_speedups.sdk_span_field``) when it is built: for every kind of span (parents local and remote, a trace
state, links, dropped attributes, events and links, every status, events without a time or a name, a span of
more than 127 bytes and one of more than 16 KiB), in any order (the writer remembers the last status it wrote).
"""

from __future__ import annotations

import random
from typing import Any

import pytest
from opentelemetry.sdk.trace import Event, ReadableSpan, TracerProvider
from opentelemetry.trace import SpanContext, TraceFlags
from opentelemetry.trace.status import Status, StatusCode
from tests.sdk import sdk_data

from aiotlp.encoding import _compat
from aiotlp.sdk import _encode_spans

pytestmark = pytest.mark.usefixtures("pure")


def batch_of_one(span: Any) -> bytes:
    buf = bytearray()
    _encode_spans._write_spans(buf, (span,))
    return bytes(buf)


def odd_spans() -> list[Any]:
    """Spans the SDK's own tracer does not make: events given as plain sequences of SDK events and of other
    objects, no start or end time, an empty name, statuses made per span, a long and a very long span."""
    context = SpanContext(trace_id=0xABC, span_id=0xDEF, is_remote=False, trace_flags=TraceFlags(1))
    remote_parent = SpanContext(trace_id=0xABC, span_id=0x123, is_remote=True, trace_flags=TraceFlags(1))

    class LooseEvent:
        timestamp = 0
        name = ""
        attributes = {"k": "v"}

    return [
        ReadableSpan(name="", context=context, events=[Event("e", {"a": 1}, timestamp=5), LooseEvent()]),  # type: ignore[list-item]
        ReadableSpan(name="start only", context=context, start_time=7, parent=remote_parent),
        ReadableSpan(name="end only", context=context, end_time=9, status=Status(StatusCode.OK)),
        ReadableSpan(name="own error", context=context, start_time=1, end_time=2, status=Status(StatusCode.ERROR, "x")),
        ReadableSpan(name="own unset", context=context, start_time=1, end_time=2, status=Status(StatusCode.UNSET)),
        ReadableSpan(name="long", context=context, attributes={"a": "x" * 200}, start_time=1, end_time=2),
        ReadableSpan(
            name="very long",
            context=context,
            attributes={"a": "x" * 20_000},
            events=[Event("big", {"b": "y" * 300}, timestamp=3)],
            start_time=1,
            end_time=2,
        ),
    ]


def tracer_spans() -> list[Any]:
    """Spans as ``on_end`` gets them from the SDK's TracerProvider (8 attributes and an event each)."""
    provider = TracerProvider(shutdown_on_exit=False)
    tracer = provider.get_tracer("one")
    spans: list[Any] = []
    for i in range(20):
        with tracer.start_as_current_span(f"GET /{i % 3}") as span:
            span.set_attributes({"http.method": "GET", "n": i, "ok": True, "f": 0.5, "l": [1, 2]})
            span.add_event("message", {"message.id": i})
            if i % 4 == 1:
                span.set_status(Status(StatusCode.ERROR, f"failed {i}"))
        spans.append(span)
    return spans


def all_spans() -> list[Any]:
    return [*sdk_data.spans(), *odd_spans(), *tracer_spans()]


def test_one_span_is_the_batch_writers_bytes_in_any_order() -> None:
    spans = all_spans()
    rng = random.Random(13)
    for trial in range(5):
        order = list(spans)
        if trial:
            rng.shuffle(order)
        for span in order:
            field = _encode_spans._span_field(span)
            assert type(field) is bytes
            assert field == batch_of_one(span), span.name


def test_one_span_is_the_compiled_writers_bytes() -> None:
    if _compat.speedups is None or not hasattr(_compat.speedups, "sdk_span_field"):
        pytest.skip("the compiled accelerator is not available")
    compiled = _compat.speedups.sdk_span_field
    for span in all_spans():
        assert _encode_spans._span_field(span) == compiled(_encode_spans._SDK_TYPES, span), span.name
