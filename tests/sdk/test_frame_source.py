"""``SourceEncoder.frame``'s common batch (issue 13: the bridge's Python per export): every item a
:data:`~aiotlp.sdk._encode_source.SourceItem` of one key, framed by ``_frame_one`` (pure) or its compiled twin
``_speedups.frame_source`` (one pass, one allocation, one copy). Both twins must write the batch encoder's bytes,
and hand anything else (several keys, objects mixed in, an empty batch, parts that are not exactly ``bytes``)
to the general path, which writes the same bytes.
"""

from __future__ import annotations

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
from aiotlp.sdk import _encode_source
from aiotlp.sdk._encode import SourceEncoder, encode_log_records, encode_spans

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


@pytest.mark.parametrize("choice", ["python", "c"])
def test_a_key_the_encoder_does_not_hold_raises_in_both(choice: str) -> None:
    if choice == "c" and _compat.speedups is None:
        pytest.skip("the compiled accelerator is not available")
    data = pool("spans")
    stranger = (max(data.by_key) + 100, data.items[0][1])
    _compat.use(choice)
    with pytest.raises(KeyError):
        data.source.frame([stranger, stranger])
