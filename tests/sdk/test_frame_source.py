"""``SourceEncoder.frame``'s common batch (issue 13: the bridge's Python per export): every item a
:data:`~aiotlp.sdk._encode_source.SourceItem` of one key, framed by ``_frame_one`` (pure) or its compiled twin
``_speedups.frame_source`` (one pass, one allocation, one copy). Both twins must write the batch encoder's bytes,
and hand anything else (several keys, objects mixed in, an empty batch, parts that are not exactly ``bytes``)
to the general path, which writes the same bytes.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from tests.sdk import sdk_data

from aiotlp.encoding import _compat
from aiotlp.model import Signal
from aiotlp.processing import BoundedQueue
from aiotlp.sdk import BatchSpanProcessor, SpanExporter, _encode_source
from aiotlp.sdk._encode import SourceEncoder, encode_log_records, encode_spans
from aiotlp.testing import FakeCollector

COMPILED = getattr(_compat.speedups, "frame_source", None)
needs_compiled = pytest.mark.skipif(COMPILED is None, reason="the compiled accelerator (frame_source) is not built")

TWINS = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@functools.cache
def _big_spans() -> list[Any]:
    """Spans of one resource and scope whose fields are large: the framed lengths take 3- and 4-byte varints."""
    memory = InMemorySpanExporter()
    provider = TracerProvider(resource=Resource({"service.name": "big"}), shutdown_on_exit=False)
    provider.add_span_processor(SimpleSpanProcessor(memory))
    tracer = provider.get_tracer("big.scope", "1", schema_url="https://schema/big")
    for size in (1, 127, 128, 300, 20_000, 70_000):
        with tracer.start_as_current_span("big") as span:
            span.set_attribute("blob", "x" * size)
    provider.shutdown()
    return list(memory.get_finished_spans())


class Pool:
    """Items of several (resource, scope) keys, each as the object and as its SourceItem, for one encoder."""

    def __init__(self, kind: str) -> None:
        objects: list[Any] = sdk_data.spans() + _big_spans() if kind == "spans" else sdk_data.log_records()
        self.source = SourceEncoder(kind)
        self.objects = objects
        self.items = [self.source.item(item) for item in objects]
        assert all(type(item) is tuple for item in self.items)
        self.encode: Callable[[Sequence[Any]], bytes] = encode_spans if kind == "spans" else encode_log_records
        self.by_key: dict[int, list[int]] = {}
        for index, (key, _) in enumerate(self.items):
            self.by_key.setdefault(key, []).append(index)
        assert len(self.by_key) >= 4  # two resources, two or three scopes each


@functools.cache
def pool(kind: str) -> Pool:
    return Pool(kind)


@pytest.fixture(autouse=True)
def _restore_implementation() -> Iterator[None]:
    previous = _compat.implementation()
    yield
    _compat.use(previous)


def frame_with(choice: _compat.Implementation, source: SourceEncoder, items: Sequence[Any]) -> bytes:
    _compat.use(choice)
    return source.frame(items)


def implementations() -> list[_compat.Implementation]:
    return ["python", "c"] if _compat.speedups is not None else ["python"]


def twins() -> tuple[Callable[..., bytes | None], Callable[..., bytes | None] | None]:
    """(the pure ``_frame_one``, the compiled one or None)."""
    _compat.use("python")
    pure = _encode_source._frame_one
    return pure, COMPILED


@st.composite
def batches(draw: st.DrawFn, kind: str) -> tuple[list[Any], list[Any]]:
    """(what frame gets: SourceItems with objects mixed in, the objects it stands for), most often of one key."""
    data = pool(kind)
    if draw(st.booleans()):  # one key: the common batch (unless objects are mixed in)
        key = draw(st.sampled_from(sorted(data.by_key)))
        indexes = draw(st.lists(st.sampled_from(data.by_key[key]), max_size=40))
    else:
        indexes = draw(st.lists(st.integers(0, len(data.objects) - 1), max_size=40))
    as_object = draw(st.sampled_from([False, False, True])) and draw(st.lists(st.booleans(), min_size=len(indexes)))
    items = [data.objects[i] if as_object and as_object[n] else data.items[i] for n, i in enumerate(indexes)]
    return items, [data.objects[i] for i in indexes]


@pytest.mark.parametrize("kind", ["spans", "logs"])
def test_both_implementations_frame_any_batch_as_the_batch_encoder(kind: str) -> None:
    data = pool(kind)

    @TWINS
    @given(batches(kind))
    def check(batch: tuple[list[Any], list[Any]]) -> None:
        items, objects = batch
        expected = data.encode(objects)
        for choice in implementations():
            assert frame_with(choice, data.source, items) == expected, choice
        # the twins themselves: both decline, or both write the same request (the encoder's)
        pure, compiled = twins()
        framed = pure(items, data.source._groups)
        if compiled is not None:
            assert compiled(items, data.source._groups) == framed
        one_key = items and all(type(item) is tuple for item in items) and len({item[0] for item in items}) == 1
        assert (framed is not None) == bool(one_key)
        if framed is not None:
            assert framed == expected

    check()


@pytest.mark.parametrize("kind", ["spans", "logs"])
@pytest.mark.parametrize("choice", ["python", "c"])
def test_the_common_batch_is_framed_by_the_twin_as_the_batch_encoder(kind: str, choice: str) -> None:
    if choice == "c" and COMPILED is None:
        pytest.skip("the compiled accelerator (frame_source) is not built")
    data = pool(kind)
    pure, compiled = twins()
    twin = pure if choice == "python" else compiled
    assert twin is not None
    for key, indexes in data.by_key.items():
        items = [data.items[i] for i in indexes] * 3  # repeated: the same objects several times
        framed = twin(items, data.source._groups)
        assert framed is not None, key  # the fast path is taken, not left to the general one
        assert framed == data.encode([data.objects[i] for i in indexes] * 3)
        assert frame_with(choice, data.source, tuple(items)) == framed  # a tuple of items too
    assert twin([], data.source._groups) is None
    assert data.source.frame([]) == b""


class Key(int):
    """An int subclass: the compiled twin reads only exact ints."""


@needs_compiled
def test_the_compiled_twin_leaves_anything_unusual_to_the_general_path() -> None:
    data = pool("spans")
    key, indexes = next(iter(data.by_key.items()))
    items = [data.items[i] for i in indexes]
    groups = data.source._groups
    expected = data.encode([data.objects[i] for i in indexes])
    assert COMPILED is not None
    unusual: list[Any] = [
        [(k, bytearray(b)) for k, b in items],  # parts that are not exactly bytes
        [(Key(k), b) for k, b in items],  # a key that is not exactly an int
        [*items[:-1], (*items[-1], "extra")],  # not a pair
        [*items, data.objects[indexes[0]]],  # an object mixed in
        iter(items),  # not a list or a tuple
    ]
    for batch in unusual[:-1]:
        assert COMPILED(batch, groups) is None
    assert COMPILED(unusual[-1], groups) is None
    assert COMPILED(items, dict(groups.items())) == expected  # a dict equal to the encoder's
    assert COMPILED(items, {}) is None  # a key the groups do not hold
    assert COMPILED(items, {key: ("not", "a", "group")}) is None
    assert COMPILED(items, list(groups.values())) is None  # not a dict
    with pytest.raises(TypeError, match="2 arguments"):
        COMPILED(items)  # type: ignore[misc]
    # each is framed by the general path, with the encoder's bytes (the pair's extra item aside: never made)
    _compat.use("c")
    assert data.source.frame(unusual[0]) == expected
    assert data.source.frame(unusual[1]) == expected
    assert data.source.frame(unusual[3]) == data.encode([data.objects[i] for i in indexes] + [data.objects[indexes[0]]])


@needs_compiled
def test_equal_keys_that_are_distinct_int_objects_are_one_key() -> None:
    source = SourceEncoder("spans")
    spans = _big_spans()[:3]
    items = [source.item(span) for span in spans]
    group = source._groups[items[0][0]]
    big = 10**12  # not a cached small int: each int(...) below is its own object
    groups = {big: group}
    batch = [(int(str(big)), data) for _, data in items]
    assert len({id(key) for key, _ in batch}) == len(batch)
    assert COMPILED is not None
    assert COMPILED(batch, groups) == encode_spans(spans)
    assert COMPILED([*batch, (big + 1, items[0][1])], groups) is None  # two keys


class Reversed(list[Any]):
    """A list that iterates in another order than its storage: the compiled twin must not read the storage."""

    def __iter__(self) -> Iterator[Any]:
        return reversed(self[:])


@pytest.mark.parametrize("choice", ["python", "c"])
def test_the_queues_batches_are_framed_by_the_twin(choice: str) -> None:
    if choice == "c" and COMPILED is None:
        pytest.skip("the compiled accelerator (frame_source) is not built")
    data = pool("spans")
    indexes = max(data.by_key.values(), key=len)
    queue: BoundedQueue[Any] = BoundedQueue(
        max_size=64, max_bytes=None, batch_size=len(indexes), drop_oldest=False, weigh=None, size_of=None
    )
    for i in indexes:
        queue.put(data.items[i])
    taken = queue.take(0)
    assert taken is not None
    chunk = taken[0]
    assert type(chunk) is not list  # what the processor exports: the queue's own list subclass
    _compat.use(choice)  # type: ignore[arg-type]
    framed = _encode_source._frame_one(chunk, data.source._groups)
    assert framed is not None
    assert framed == data.encode([data.objects[i] for i in indexes])
    backwards = Reversed(data.items[i] for i in indexes)
    expected = data.encode([data.objects[i] for i in reversed(indexes)])
    assert data.source.frame(backwards) == expected
    if choice == "c":
        assert COMPILED is not None and COMPILED(backwards, data.source._groups) is None


@pytest.mark.parametrize("choice", ["python", "c"])
@pytest.mark.parametrize("protocol", ["grpc", "http/protobuf"])
async def test_an_apps_batches_take_the_common_path_end_to_end(choice: str, protocol: str) -> None:
    """An application's spans of one tracer, through aiotlp's BatchSpanProcessor: every batch is framed by the
    twin (not the general path), and the collector gets every span as the batch encoder writes it."""
    if choice == "c" and COMPILED is None:
        pytest.skip("the compiled accelerator (frame_source) is not built")
    _compat.use(choice)  # type: ignore[arg-type]
    twin = _encode_source._frame_one
    framed: list[int] = []

    def counting(items: Sequence[Any], groups: dict[int, Any]) -> bytes | None:
        request = twin(items, groups)
        framed.append(-1 if request is None else len(items))
        return request

    memory = InMemorySpanExporter()
    _encode_source._frame_one = counting  # type: ignore[assignment]
    try:
        async with FakeCollector() as collector:
            where = collector.grpc_endpoint if protocol == "grpc" else f"{collector.http_endpoint}/v1/traces"
            exporter = SpanExporter(endpoint=where, protocol=protocol)  # type: ignore[arg-type]
            processor = BatchSpanProcessor(exporter, max_export_batch_size=100, schedule_delay_millis=60_000)
            provider = TracerProvider(resource=Resource({"service.name": "app"}), shutdown_on_exit=False)
            provider.add_span_processor(SimpleSpanProcessor(memory))
            provider.add_span_processor(processor)
            tracer = provider.get_tracer("app.tracer", "1.0")

            def work() -> None:
                for i in range(350):
                    with tracer.start_as_current_span(f"request {i}") as span:
                        span.set_attribute("i", i)
                processor.force_flush()
                provider.shutdown()

            await asyncio.to_thread(work)
            requests = collector.requests(Signal.TRACES)
            assert not collector.bad_requests
    finally:
        _encode_source._frame_one = twin  # type: ignore[assignment]
    assert sorted(framed) == [50, 100, 100, 100]  # every batch on the common path (-1: the general path)
    assert processor.statistics().exported == 350
    spans = memory.get_finished_spans()
    expected = [encode_spans(spans[n : n + 100]) for n in range(0, 350, 100)]
    assert sorted(request.body for request in requests) == sorted(expected)  # (exports may overlap)


@pytest.mark.parametrize("choice", ["python", "c"])
def test_a_key_the_encoder_does_not_hold_raises_in_both(choice: str) -> None:
    if choice == "c" and _compat.speedups is None:
        pytest.skip("the compiled accelerator is not available")
    data = pool("spans")
    stranger = (max(data.by_key) + 100, data.items[0][1])
    _compat.use(choice)
    with pytest.raises(KeyError):
        data.source.frame([stranger, stranger])
