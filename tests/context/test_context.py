"""Trace context across every async boundary, with the OpenTelemetry API and SDK, and the W3C codec."""

from __future__ import annotations

import asyncio
import concurrent.futures
import sys
import threading
from collections.abc import AsyncIterator, Iterator

import pytest
from hypothesis import given
from hypothesis import strategies as st
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from aiotlp import context as ctx

PROVIDER = TracerProvider()
tracer = PROVIDER.get_tracer("aiotlp.tests")


def current_span_id() -> int:
    return trace.get_current_span().get_span_context().span_id


@pytest.fixture
def span() -> Iterator[int]:
    with tracer.start_as_current_span("parent") as parent:
        yield parent.get_span_context().span_id


async def test_create_task_keeps_the_context(span: int) -> None:
    async def child() -> int:
        await asyncio.sleep(0)
        return current_span_id()

    assert await asyncio.create_task(child()) == span


@pytest.mark.skipif(sys.version_info < (3, 11), reason="asyncio.TaskGroup is new in 3.11")
async def test_task_group_keeps_the_context(span: int) -> None:
    seen: list[int] = []

    async def child() -> None:
        await asyncio.sleep(0)
        seen.append(current_span_id())

    async with asyncio.TaskGroup() as group:
        for _ in range(3):
            group.create_task(child())
    assert seen == [span] * 3


async def test_gather_keeps_the_context(span: int) -> None:
    async def child() -> int:
        await asyncio.sleep(0)
        return current_span_id()

    assert await asyncio.gather(child(), child()) == [span, span]


async def test_to_thread_keeps_the_context(span: int) -> None:
    assert await asyncio.to_thread(current_span_id) == span


async def test_run_in_executor_loses_the_context_and_the_helper_keeps_it(span: int) -> None:
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        loop = asyncio.get_running_loop()
        assert await loop.run_in_executor(pool, current_span_id) == 0  # the OpenTelemetry API loses it here
        assert await ctx.run_in_executor(pool, current_span_id) == span


def test_plain_threads_lose_the_context_and_the_helpers_keep_it(span: int) -> None:
    seen: dict[str, int] = {}

    def record(name: str) -> None:
        seen[name] = current_span_id()

    plain = threading.Thread(target=record, args=("plain",))
    kept = ctx.ContextThread(target=record, args=("ContextThread",))
    wrapped = threading.Thread(target=ctx.wrap(record), args=("wrap",))
    for thread in (plain, kept, wrapped):
        thread.start()
        thread.join()
    assert seen == {"plain": 0, "ContextThread": span, "wrap": span}


async def test_async_generators_see_the_context_of_their_consumer(span: int) -> None:
    async def numbers() -> AsyncIterator[int]:
        for _ in range(3):
            await asyncio.sleep(0)
            yield current_span_id()

    assert [n async for n in numbers()] == [span] * 3


async def test_nested_spans_in_concurrent_tasks_do_not_leak_into_each_other() -> None:
    async def worker(name: str) -> tuple[int, int]:
        with tracer.start_as_current_span(name) as own:
            await asyncio.sleep(0)
            inner = current_span_id()
        return own.get_span_context().span_id, inner

    results = await asyncio.gather(*(worker(f"w{i}") for i in range(10)))
    assert all(own == inner for own, inner in results)
    assert current_span_id() == 0


def test_inject_and_extract_round_trip(span: int) -> None:
    carrier = ctx.inject({})
    assert carrier["traceparent"].split("-")[2] == f"{span:016x}"
    restored = ctx.extract(carrier)
    assert trace.get_current_span(restored).get_span_context().span_id == span


def test_tracestate_round_trips() -> None:
    headers = {
        "traceparent": "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
        "tracestate": "a=1,b=2",
    }
    restored = ctx.extract(headers)
    with tracer.start_as_current_span("child", context=restored):
        carrier = ctx.inject({})
    assert carrier["tracestate"] == "a=1,b=2"
    assert carrier["traceparent"].startswith("00-0af7651916cd43dd8448eb211c80319c-")


ids16 = st.binary(min_size=16, max_size=16).filter(any)
ids8 = st.binary(min_size=8, max_size=8).filter(any)


@given(ids16, ids8, st.integers(0, 255))
def test_traceparent_codec_round_trips_and_matches_opentelemetry(trace_id: bytes, span_id: bytes, flags: int) -> None:
    header = ctx.format_traceparent(trace_id, span_id, flags)
    parsed = ctx.parse_traceparent(header)
    assert parsed == ctx.TraceParent(trace_id, span_id, flags)
    otel = TraceContextTextMapPropagator().extract({"traceparent": header})
    span_context = trace.get_current_span(otel).get_span_context()
    assert span_context.trace_id.to_bytes(16, "big") == trace_id
    assert span_context.span_id.to_bytes(8, "big") == span_id


@pytest.mark.parametrize(
    "header",
    [
        "",
        "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331",  # missing flags
        "00-0AF7651916CD43DD8448EB211C80319C-b7ad6b7169203331-01",  # uppercase
        "ff-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",  # version ff
        "00-00000000000000000000000000000000-b7ad6b7169203331-01",  # zero trace id
        "00-0af7651916cd43dd8448eb211c80319c-0000000000000000-01",  # zero span id
        "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01-extra",  # version 00 has 4 fields
    ],
)
def test_invalid_traceparents_are_refused(header: str) -> None:
    assert ctx.parse_traceparent(header) is None


def test_future_versions_may_carry_more_fields() -> None:
    parsed = ctx.parse_traceparent("01-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-00-whatever")
    assert parsed is not None and parsed.version == 1 and not parsed.sampled


def test_format_rejects_bad_ids() -> None:
    with pytest.raises(ValueError, match="trace_id"):
        ctx.format_traceparent(bytes(16), b"\x01" * 8)
    with pytest.raises(ValueError, match="span_id"):
        ctx.format_traceparent(b"\x01" * 16, b"\x01" * 7)
