"""``BatchSpanProcessor.on_end``'s hot path, encoding at the source (issue 13): once the processor has started,
one call (``_span_item``: compiled ``_speedups.sdk_span_item``, or its pure twin) does the sampled check, the key
of the last (resource, scope) and the encode, and the item goes straight into the byte-capped queue
(``BoundedQueue.put_sized``, its size the field's length); a ready batch wakes the worker once.

Checked here: the compiled and the pure twin return the same thing for every kind of span (encoded, not sampled,
the slow path's cases); the same spans through ``on_end`` leave the same queue and the same ledger with either;
threads ending spans at once keep the ledger balanced; a batch made ready wakes the worker once; fork, shutdown,
spans that cannot be encoded and the cap of (resource, scope) groups take the other path and are counted as
before; the native provider's spans (``_on_end_native``) take the same hot path.
"""

from __future__ import annotations

import asyncio
import gc
import os
import sys
import threading
from typing import Any

import pytest
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.trace import SpanContext, TraceFlags
from tests.sdk import sdk_data

import aiotlp.sdk
from aiotlp.encoding import _compat
from aiotlp.model import Signal
from aiotlp.processing import HotPut
from aiotlp.sdk import BatchSpanProcessor, SpanExporter, _processors
from aiotlp.sdk import _encode_source as source_module
from aiotlp.sdk._encode_spans import _DIRECT, _SDK_TYPES, _span_field
from aiotlp.testing import FakeCollector

ATTRIBUTES = {"http.method": "GET", "http.route": "/v1/users/{id}", "http.status_code": 200, "user.id": 12345}


def implementations() -> list[str]:
    return (
        ["python", "c"] if _compat.speedups is not None and hasattr(_compat.speedups, "sdk_span_item") else ["python"]
    )


def tracer_spans(count: int, resource: Resource | None = None, scope: str = "hot") -> list[Any]:
    """Spans as the SDK's TracerProvider hands them to ``on_end`` (8 attributes and an event; every 5th not
    sampled: a parent-based sampler would drop it, here its flags say so)."""
    provider = TracerProvider(resource=resource or Resource({"service.name": "hot"}), shutdown_on_exit=False)
    tracer = provider.get_tracer(scope)
    spans = []
    for i in range(count):
        with tracer.start_as_current_span(f"span-{i}", attributes={**ATTRIBUTES, "i": i}) as span:
            span.add_event("cache lookup", {"key": f"users:{i}"})
        spans.append(span)
    return spans


def unsampled(span: Any) -> ReadableSpan:
    context = SpanContext(span.context.trace_id, span.context.span_id, False, TraceFlags(0))
    return ReadableSpan(name=span.name, context=context, resource=span.resource, attributes={"k": "v"})


def bad_span(resource: Resource, scope: Any) -> ReadableSpan:
    context = SpanContext(trace_id=0x1234, span_id=0x99, is_remote=False, trace_flags=TraceFlags(1))
    return ReadableSpan(
        name="bad",
        context=context,
        attributes={b"key": "v"},  # type: ignore[dict-item]
        resource=resource,
        instrumentation_scope=scope,
        start_time=1,
        end_time=2,
    )


def outcome(result: Any, span: Any) -> Any:
    """What ``_span_item`` returned, comparable across implementations."""
    if result is None:
        return None
    if result is span:
        return "the span"
    assert type(result) is tuple
    return result


# ------------------------------------------------------------------------------------------------------------
# The compiled twin and the pure one


@pytest.mark.usefixtures("restore_implementation")
def test_the_compiled_span_item_returns_what_the_pure_one_returns() -> None:
    spans = tracer_spans(12) + sdk_data.spans()
    first = spans[0]
    resource, scope = first.resource, first.instrumentation_scope
    spans += [unsampled(first), bad_span(resource, scope), object()]

    class Renamed(ReadableSpan):  # read through the public API: the slow path's
        @property
        def name(self) -> str:
            return "renamed"

    spans.append(Renamed(name="x", context=first.context, resource=resource, instrumentation_scope=scope))
    source = source_module.SourceEncoder("spans")
    for span in spans[:1] + sdk_data.spans():  # registers the classes read directly
        source.item(span)
    key = source.key(resource, scope)
    memos = [(resource, scope, key), (resource, scope, -1), (None, None, 0)]
    cases = [(memo, ids) for memo in memos for ids in ({}, source._ids, {(id(resource), id(scope)): memos[1]})]
    seen: dict[str, list[Any]] = {}
    for choice in implementations():
        _compat.use(choice)  # type: ignore[arg-type]
        seen[choice] = [
            outcome(source_module._span_item(_SDK_TYPES, _DIRECT, memo, ids, span), span)
            for memo, ids in cases
            for span in spans
        ]
    pure = seen["python"]
    if "c" in seen:
        assert seen["c"] == pure
    # and what each one is: encoded exactly when it is sampled, of a class read directly, its pair is the memo's
    # (or else in ids) with a key that is not negative, and it encodes
    _compat.use("python")
    encoded = 0
    for case_index, (memo, ids) in enumerate(cases):
        for span_index, span in enumerate(spans):
            got = pure[case_index * len(spans) + span_index]
            context = getattr(span, "_context", None)
            pair = (getattr(span, "_resource", None), getattr(span, "_instrumentation_scope", None))
            found = memo if memo[0] is pair[0] and memo[1] is pair[1] else None
            if found is None:
                found = ids.get((id(pair[0]), id(pair[1])))
            if context is not None and not context.trace_flags & 1:
                assert got is None
            elif (
                found is not None and found[2] >= 0 and type(span) in (type(first), ReadableSpan) and span.name != "bad"
            ):
                assert got == (found[2], _span_field(span)), (case_index, span_index)
                encoded += 1
            else:
                assert got == "the span", (case_index, span_index)
    assert encoded >= 3 * 12  # the tracer's spans, through the memo and through ids


def test_the_compiled_item_is_not_tracked_by_the_garbage_collector() -> None:
    if "c" not in implementations():
        pytest.skip("the compiled accelerator is not available")
    assert _compat.speedups is not None
    span = tracer_spans(1)[0]
    source = source_module.SourceEncoder("spans")
    assert type(source.item(span)) is tuple  # the key registered: the memo is the span's pair
    item = _compat.speedups.sdk_span_item(_SDK_TYPES, _DIRECT, source._memo, source._ids, span)
    assert type(item) is tuple and not gc.is_tracked(item)
    with pytest.raises(TypeError, match="5 arguments"):
        _compat.speedups.sdk_span_item(_SDK_TYPES, _DIRECT, source._memo, span)
    with pytest.raises(TypeError, match="memo a 3-tuple"):
        _compat.speedups.sdk_span_item(_SDK_TYPES, _DIRECT, (1, 2), {}, span)


def test_the_compiled_span_item_leaks_no_reference() -> None:
    if "c" not in implementations():
        pytest.skip("the compiled accelerator is not available")
    assert _compat.speedups is not None
    span = tracer_spans(1)[0]
    resource, scope = span.resource, span.instrumentation_scope
    source = source_module.SourceEncoder("spans")
    source.item(span)
    bad, not_sampled = bad_span(resource, scope), unsampled(span)
    source.item(bad)
    cases = [
        (source._memo, {}, span),  # encoded through the memo
        ((None, None, 0), source._ids, span),  # through ids
        ((None, None, 0), {}, span),  # not found
        ((resource, scope, -1), {}, span),  # past the group cap
        (source._memo, {}, bad),  # cannot be encoded
        (source._memo, {}, not_sampled),
        (source._memo, {}, object()),  # no _context
    ]
    watched = [span, resource, scope, bad, not_sampled, source._memo, source._memo[2], source._ids]
    for memo, ids, item in cases:
        before = [sys.getrefcount(o) for o in watched]
        for _ in range(1000):
            _compat.speedups.sdk_span_item(_SDK_TYPES, _DIRECT, memo, ids, item)
        assert [sys.getrefcount(o) for o in watched] == before, (memo, item)


# ------------------------------------------------------------------------------------------------------------
# Through on_end: the queue and the ledger


def quiet_processor(collector: FakeCollector, **kwargs: Any) -> BatchSpanProcessor:
    arguments: dict[str, Any] = {"schedule_delay_millis": 60_000, "encode_at_source": True, **kwargs}
    return BatchSpanProcessor(SpanExporter(endpoint=f"{collector.http_endpoint}/v1/traces"), **arguments)


def ledger(processor: BatchSpanProcessor) -> tuple[int, ...]:
    stats = processor.statistics()
    assert stats.balanced
    return (stats.produced, stats.queued, stats.queued_bytes, stats.dropped_total, stats.dropped["queue_full"])


@pytest.mark.usefixtures("restore_implementation")
async def test_on_end_queues_the_same_items_and_ledger_with_both_implementations(collector: FakeCollector) -> None:
    spans = tracer_spans(30)
    resource, scope = spans[0].resource, spans[0].instrumentation_scope
    other = tracer_spans(3, Resource({"service.name": "other"}))
    spans[7:7] = [unsampled(spans[0]), bad_span(resource, scope), *other]
    queues: dict[str, list[Any]] = {}
    ledgers: dict[str, tuple[int, ...]] = {}
    for choice in implementations():
        _compat.use(choice)  # type: ignore[arg-type]
        processor = quiet_processor(collector, max_queue_size=20, max_export_batch_size=8)
        for span in spans:
            processor.on_end(span)
        queue = processor._processor._queue
        with queue.lock:
            queues[choice] = [item if type(item) is tuple else item.name for chunk in queue._chunks for item in chunk]
        ledgers[choice] = ledger(processor)
        await asyncio.to_thread(processor.shutdown)
        stats = processor.statistics()
        assert stats.balanced and stats.dropped["invalid"] == 1  # the bad span, queued as the object
    produced, queued, queued_bytes, dropped, full = ledgers["python"]
    assert (produced, queued, dropped, full) == (len(spans) - 1, 20, len(spans) - 21, len(spans) - 21)
    assert queued_bytes == sum(len(item[1]) if type(item) is tuple else 0 for item in queues["python"]) + sum(
        aiotlp.processing.estimate_size(span) for span in spans[:21] if span.name == "bad"
    )
    assert "bad" in queues["python"]
    if "c" in queues:
        assert queues["c"] == queues["python"]
        assert ledgers["c"] == ledgers["python"]


@pytest.mark.usefixtures("encoder_implementation")
async def test_threads_ending_spans_at_once_keep_the_ledger(collector: FakeCollector) -> None:
    processor = quiet_processor(collector, max_queue_size=256, max_export_batch_size=64, schedule_delay_millis=5)
    spans = [tracer_spans(200, scope=f"thread-{t}") for t in range(4)]
    start = threading.Barrier(4)

    def produce(mine: list[Any]) -> None:
        start.wait()
        for span in mine:
            processor.on_end(span)

    threads = [threading.Thread(target=produce, args=(mine,)) for mine in spans]
    for thread in threads:
        thread.start()
    for thread in threads:
        await asyncio.to_thread(thread.join)
    assert await asyncio.to_thread(processor.force_flush) is True
    await asyncio.to_thread(processor.shutdown)
    stats = processor.statistics()
    sampled = sum(1 for mine in spans for span in mine)
    assert stats.balanced and stats.produced == sampled
    assert (
        stats.exported + stats.dropped["queue_full"] == sampled and stats.dropped_total == stats.dropped["queue_full"]
    )
    assert len(collector.spans()) == stats.exported


async def test_a_ready_batch_wakes_the_worker_once(collector: FakeCollector) -> None:
    processor = quiet_processor(collector, max_queue_size=64, max_export_batch_size=8)
    spans = tracer_spans(40)
    await asyncio.to_thread(processor.on_end, spans[0])  # starts it, on the bridge: the next ones take the hot path
    batch = processor._processor
    batch.attach_lane(None)  # the wake-up path (without the native lane: a ready batch goes out with no wake-up)
    wakes = []
    wake = batch._wake_threadsafe

    def counting() -> None:
        wakes.append(batch._queue.queued)
        wake()

    batch._wake_threadsafe = counting  # type: ignore[method-assign]
    # the worker is held off (the bridge's thread blocked), so nothing is taken while the spans are put
    blocked, release = threading.Event(), threading.Event()
    assert batch.loop is not None
    batch.loop.call_soon_threadsafe(lambda: (blocked.set(), release.wait(10)))
    assert await asyncio.to_thread(blocked.wait, 10)
    for span in spans[1:]:
        processor.on_end(span)
    release.set()
    assert wakes == [8]  # the first batch made ready; the next ones wait for the worker, already woken
    assert await asyncio.to_thread(processor.force_flush) is True
    assert len(collector.spans()) == 40
    await asyncio.to_thread(processor.shutdown)
    assert processor.statistics().exported == 40


class CountingResource(Resource):
    """A Resource that counts how often it is hashed (the SDK's hashes its attributes as JSON: ~10 us)."""

    hashed = 0

    def __hash__(self) -> int:
        CountingResource.hashed += 1
        return super().__hash__()


@pytest.mark.usefixtures("encoder_implementation")
@pytest.mark.parametrize("native", [False, True], ids=["sdk-provider", "aiotlp-provider"])
async def test_spans_of_alternating_scopes_stay_on_the_hot_path(collector: FakeCollector, native: bool) -> None:
    """An application's spans come from several instrumentations (a server span, then a client's, ...): the pairs
    seen are found by identity, the resource is hashed only when a pair is first seen; through ``on_end`` (the
    SDK's provider) and ``_on_end_native`` (aiotlp's)."""
    processor = quiet_processor(collector)
    make: Any = aiotlp.sdk.TracerProvider if native else TracerProvider
    provider = make(resource=CountingResource({"service.name": "scopes"}), shutdown_on_exit=False)
    provider.add_span_processor(processor)
    tracers = [provider.get_tracer(f"scope-{i}") for i in range(3)]
    CountingResource.hashed = 0
    for i in range(30):
        with tracers[i % 3].start_as_current_span(f"span-{i}", attributes=ATTRIBUTES):
            pass
    assert CountingResource.hashed <= 3 * 3  # when each pair is registered (its key, its resource), not per span
    queue = processor._processor._queue
    with queue.lock:
        keys = [item[0] for chunk in queue._chunks for item in chunk]
    assert keys == [i % 3 for i in range(30)]
    assert await asyncio.to_thread(provider.force_flush) is True
    await asyncio.to_thread(provider.shutdown)
    assert sorted(s.name for s in collector.spans()) == sorted(f"span-{i}" for i in range(30))
    requests = collector.requests(Signal.TRACES)
    scopes = {s.scope.name for q in requests for r in q.message.resource_spans for s in r.scope_spans}
    assert scopes == {"scope-0", "scope-1", "scope-2"}


# ------------------------------------------------------------------------------------------------------------
# The other path: shutdown, fork, the group cap, the native provider


def hot_processor(collector: FakeCollector) -> tuple[BatchSpanProcessor, list[Any]]:
    """A quiet processor on the hot path (the first 3 of 6 spans ended through it), and the 6 spans."""
    processor = quiet_processor(collector)
    spans = tracer_spans(6)
    for span in spans[:3]:
        processor.on_end(span)
    assert processor._hot is not None
    return processor, spans


def installed(processor: BatchSpanProcessor) -> bool:
    """Whether ``on_end`` is the compiled HotPut on the instance (only where ``_putfast`` is built)."""
    hot = processor.__dict__.get("on_end")
    assert hot is None or type(hot) is HotPut
    return hot is not None


@pytest.mark.usefixtures("encoder_implementation")
async def test_on_end_is_one_compiled_call_while_the_hot_path_is_on(collector: FakeCollector) -> None:
    processor = quiet_processor(collector)
    assert not installed(processor)  # not started: the Python on_end starts it
    provider = TracerProvider(resource=Resource({"service.name": "hot"}), shutdown_on_exit=False)
    provider.add_span_processor(processor)
    tracer = provider.get_tracer("hot")
    for i in range(10):
        with tracer.start_as_current_span(f"span-{i}", attributes=ATTRIBUTES):
            pass
    assert installed(processor) == (HotPut is not None)
    processor.on_end(span=tracer_spans(1)[0])  # by keyword, as the method takes it
    queue = processor._processor._queue
    with queue.lock:
        assert all(type(item) is tuple for chunk in queue._chunks for item in chunk)
    assert ledger(processor)[:2] == (11, 11)
    await asyncio.to_thread(provider.shutdown)
    assert not installed(processor)
    assert sorted(s.name for s in collector.spans()) == sorted(["span-0", *(f"span-{i}" for i in range(10))])
    assert processor.statistics().exported == 11


@pytest.mark.usefixtures("restore_implementation")
async def test_a_switch_of_the_encoders_after_the_start_is_followed(collector: FakeCollector) -> None:
    spans = tracer_spans(12)
    processor = quiet_processor(collector, max_queue_size=64, max_export_batch_size=64)
    for span in spans[:6]:
        processor.on_end(span)
    ended = spans[:6]
    for choice in implementations():  # the pure twin, and the compiled one where it is built and not turned off
        _compat.use(choice)  # type: ignore[arg-type]
        part = spans[6:9] if choice == "python" else spans[9:]
        for span in part:
            processor.on_end(span)
        ended += part
    queue = processor._processor._queue
    with queue.lock:
        queued = [item for chunk in queue._chunks for item in chunk]
    key = queued[0][0]
    sampled = [span for span in ended if span.context.trace_flags.sampled]
    assert queued == [(key, _span_field(span)) for span in sampled]  # the bytes of the pure and the compiled twin
    assert ledger(processor)[:2] == (len(sampled), len(sampled))
    await asyncio.to_thread(processor.shutdown)
    assert processor.statistics().exported == len(sampled)


async def test_a_subclass_with_its_own_on_end_keeps_it(collector: FakeCollector) -> None:
    ended: list[str] = []

    class Counting(BatchSpanProcessor):
        def on_end(self, span: ReadableSpan) -> None:
            ended.append(span.name)
            super().on_end(span)

    processor = Counting(SpanExporter(endpoint=f"{collector.http_endpoint}/v1/traces"), schedule_delay_millis=60_000)
    spans = tracer_spans(5)
    for span in spans:
        processor.on_end(span)
    assert processor._hot is not None and not installed(processor)
    assert ended == [span.name for span in spans]
    await asyncio.to_thread(processor.shutdown)
    assert processor.statistics().exported == sum(1 for span in spans if span.context.trace_flags.sampled)


async def test_after_shutdown_spans_are_counted_as_already_shutdown(collector: FakeCollector) -> None:
    processor, spans = hot_processor(collector)
    assert installed(processor) == (HotPut is not None)
    await asyncio.to_thread(processor.shutdown)
    assert processor._hot is None and not installed(processor)
    for span in spans[3:]:
        processor.on_end(span)
    # and a put that raced with the shutdown (the hot path taken just before): the closed queue counts it
    assert processor._queue.put_sized((0, b"\x12\x00"), 2) == 3  # CLOSED
    # as on_end does: the compiled put leaves a closed queue to the queue's own put (-1), the pure one is that put
    code = _processors._queue_put(processor._queue, (0, b"\x12\x00"), 2)
    if code == -1:
        code = processor._queue.put_sized((0, b"\x12\x00"), 2)
    assert code == 3  # CLOSED
    stats = processor.statistics()
    assert (stats.exported, stats.dropped["already_shutdown"]) == (3, 5)
    assert stats.balanced


async def test_past_the_group_cap_spans_are_queued_as_objects(collector: FakeCollector) -> None:
    processor = quiet_processor(collector)
    assert processor._source is not None
    processor._source._max_groups = 1
    spans = [span for i in range(3) for span in tracer_spans(4, Resource({"service.name": f"service-{i}"}))]
    for span in spans:
        processor.on_end(span)
    queue = processor._processor._queue
    with queue.lock:
        kinds = [type(item) is tuple for chunk in queue._chunks for item in chunk]
    assert kinds == [True] * 4 + [False] * 8
    assert await asyncio.to_thread(processor.force_flush) is True
    await asyncio.to_thread(processor.shutdown)
    assert sorted(s.name for s in collector.spans()) == sorted(s.name for s in spans)
    services = {
        r.resource.attributes[0].value.string_value
        for req in collector.requests(Signal.TRACES)
        for r in req.message.resource_spans
    }
    assert services == {"service-0", "service-1", "service-2"}


@pytest.mark.filterwarnings("ignore::DeprecationWarning")  # fork() of a multi-threaded process
@pytest.mark.skipif(not hasattr(os, "fork"), reason="POSIX only")
async def test_fork_the_child_starts_clean_and_takes_the_hot_path_again(collector: FakeCollector) -> None:
    processor, spans = hot_processor(collector)

    pid = os.fork()
    if pid == 0:  # the child: never returns into pytest
        code = 1
        try:
            if processor._hot is None and not installed(processor) and processor.statistics().produced == 0:
                for span in spans[3:]:
                    processor.on_end(span)
                queue = processor._processor._queue
                hot = processor._hot is not None and all(type(i) is tuple for c in queue._chunks for i in c)
                hot = hot and installed(processor) == (HotPut is not None)
                if hot and processor.force_flush(10_000) and processor.statistics().exported == 3:
                    code = 0
        finally:
            os._exit(code)
    _, status = await asyncio.to_thread(os.waitpid, pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    assert sorted(s.name for s in collector.spans()) == ["span-3", "span-4", "span-5"]
    assert await asyncio.to_thread(processor.force_flush) is True
    assert sorted(s.name for s in collector.spans()) == [f"span-{i}" for i in range(6)]
    await asyncio.to_thread(processor.shutdown)


async def test_native_provider_spans_take_the_hot_path(collector: FakeCollector) -> None:
    provider = aiotlp.sdk.TracerProvider(resource=Resource({"service.name": "native"}), shutdown_on_exit=False)
    processor = quiet_processor(collector)
    provider.add_span_processor(processor)
    tracer = provider.get_tracer("native")
    for i in range(5):
        with tracer.start_as_current_span(f"native-{i}", attributes=ATTRIBUTES):
            pass
    assert processor._hot is not None
    queue = processor._processor._queue
    with queue.lock:
        items = [item for chunk in queue._chunks for item in chunk]
    assert all(type(item) is tuple for item in items) and len({item[0] for item in items}) == 1
    assert queue.queued_bytes == sum(len(item[1]) for item in items)
    assert await asyncio.to_thread(provider.force_flush) is True
    await asyncio.to_thread(provider.shutdown)
    assert sorted(s.name for s in collector.spans()) == [f"native-{i}" for i in range(5)]
    assert processor.statistics().balanced


def test_a_span_encoded_while_the_compiled_encoder_writes_another_gets_its_own_buffer() -> None:
    """The compiled one-span encoder writes in a buffer kept from one span to the next. Reading a span can run
    Python code (a property, a finalizer) that encodes another span meanwhile: that one takes a buffer of its own,
    and both come out as they would alone."""
    if "c" not in implementations():
        pytest.skip("the compiled accelerator is not available")
    assert _compat.speedups is not None
    field = _compat.speedups.sdk_span_field
    outer, inner = tracer_spans(2)
    alone = field(_SDK_TYPES, outer), field(_SDK_TYPES, inner)
    seen: list[bytes] = []

    class Reentrant(ReadableSpan):
        """A span whose name, read in the middle of its encoding, encodes ``inner``."""

        @property  # type: ignore[override]
        def _name(self) -> str:
            seen.append(field(_SDK_TYPES, inner))
            return str(self.__dict__["name_value"])

        @_name.setter
        def _name(self, value: str) -> None:
            self.__dict__["name_value"] = value

    fields = "name context parent resource attributes events links kind status start_time end_time"
    fields += " instrumentation_scope"
    copy = Reentrant(**{name: getattr(outer, name) for name in fields.split()})
    assert (field(_SDK_TYPES, copy), seen) == (alone[0], [alone[1]])
    assert field(_SDK_TYPES, outer) == alone[0]  # and the kept buffer is free again
