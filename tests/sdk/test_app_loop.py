"""Where the SDK batch processors export: on the application's loop when there is one, on the aiotlp bridge
otherwise, and how they move to the bridge when the application's loop goes away (nothing queued or in flight
is lost, everything is counted once).

The collector runs in a thread of its own (CollectorThread): these tests block or end the application's loop.

Private, on purpose: the bridge (``aiotlp.sdk._bridge.get_bridge``), whose loop these tests compare with the
processors' ``loop`` and drive.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import threading
from collections.abc import Iterator

import pytest
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider

from aiotlp.sdk import BatchSpanProcessor, SpanExporter
from aiotlp.sdk._bridge import get_bridge
from aiotlp.testing import CollectorThread, Reply

RESOURCE = Resource({"service.name": "tests"})


@pytest.fixture
def collector() -> Iterator[CollectorThread]:
    with CollectorThread() as collector:
        yield collector


def pipeline(collector: CollectorThread, **kwargs: object) -> tuple[TracerProvider, BatchSpanProcessor]:
    processor = BatchSpanProcessor(
        SpanExporter(endpoint=collector.http_endpoint + "/v1/traces"), schedule_delay_millis=60_000, **kwargs
    )
    provider = TracerProvider(resource=RESOURCE, shutdown_on_exit=False)
    provider.add_span_processor(processor)
    return provider, processor


def make_spans(provider: TracerProvider, prefix: str, count: int) -> set[str]:
    tracer = provider.get_tracer("tests")
    for i in range(count):
        with tracer.start_as_current_span(f"{prefix}-{i}"):
            pass
    return {f"{prefix}-{i}" for i in range(count)}


def test_without_a_loop_the_exports_run_on_the_bridge(collector: CollectorThread) -> None:
    provider, processor = pipeline(collector)
    names = make_spans(provider, "sync", 3)
    assert processor.loop is get_bridge().running_loop
    assert provider.force_flush() is True
    assert {s.name for s in collector.spans()} == names
    provider.shutdown()


def test_on_a_loop_the_exports_run_there(collector: CollectorThread) -> None:
    provider, processor = pipeline(collector)
    seen: list[object] = []

    async def app() -> None:
        names = make_spans(provider, "async", 5)
        seen.append(processor.loop is asyncio.get_running_loop())
        outcome = await processor.aforce_flush(10_000)
        seen.append(outcome.status.value)
        seen.append({s.name for s in collector.spans()} == names)
        seen.append(threading.get_ident())

    asyncio.run(app())
    assert seen[:3] == [True, "success", True]
    assert seen[3] == threading.get_ident()  # exported from this (the application's) thread
    provider.shutdown()
    stats = processor.statistics()
    assert stats.exported == 5 and stats.balanced


def test_spans_left_when_asyncio_run_ends_are_exported_from_the_bridge(collector: CollectorThread) -> None:
    """asyncio.run returns with spans queued (not flushed): the processor moves to the bridge, a later
    force_flush (as the SDK's atexit shutdown does) delivers them all."""
    provider, processor = pipeline(collector)
    app_loops: list[asyncio.AbstractEventLoop] = []

    async def app() -> set[str]:
        app_loops.append(asyncio.get_running_loop())
        return make_spans(provider, "left", 700)  # one full batch of 512 goes out at once, 188 stay queued

    names = asyncio.run(app())
    assert processor.loop is get_bridge().running_loop and processor.loop is not app_loops[0]
    assert provider.force_flush() is True
    got = [s.name for s in collector.spans()]
    assert set(got) == names
    stats = processor.statistics()
    assert stats.produced == 700 and stats.exported == 700 and stats.balanced
    assert sum(stats.dropped.values()) == stats.failed == 0
    provider.shutdown()


def test_an_export_in_flight_when_asyncio_run_ends_is_sent_again(collector: CollectorThread) -> None:
    """The collector answers slowly: the export is cut by the loop's end, and sent again from the bridge
    (at-least-once: the collector may hold it twice, it must hold it at least once)."""
    collector.script(Reply(delay=1.0))
    provider, processor = pipeline(collector)

    async def app() -> set[str]:
        names = make_spans(provider, "inflight", 512)  # a full batch: its export starts at once
        for _ in range(50):
            await asyncio.sleep(0.01)
            if collector.requests():
                break
        assert processor.statistics().in_flight == 512
        return names

    names = asyncio.run(app())
    assert provider.force_flush() is True
    assert {s.name for s in collector.spans()} == names
    stats = processor.statistics()
    # the cut export cannot have been counted: exported == 512 is the second request's answer
    assert stats.exported == 512 and stats.failed == 0 and stats.balanced
    assert len(collector.requests()) == 2
    provider.shutdown()


def test_a_loop_closed_without_asyncio_run(collector: CollectorThread) -> None:
    """loop.run_until_complete + loop.close: no task is cancelled; the next flush notices the closed loop."""
    provider, processor = pipeline(collector)
    loop = asyncio.new_event_loop()

    async def app() -> set[str]:
        return make_spans(provider, "closed", 10)

    names = loop.run_until_complete(app())
    loop.close()
    assert provider.force_flush() is True
    assert {s.name for s in collector.spans()} == names
    assert processor.loop is get_bridge().running_loop
    provider.shutdown()
    assert processor.statistics().exported == 10


def test_a_full_batch_after_the_loop_closed_moves_at_once(
    collector: CollectorThread, caplog: pytest.LogCaptureFixture
) -> None:
    provider, processor = pipeline(collector)
    loop = asyncio.new_event_loop()
    loop.run_until_complete(asyncio.sleep(0))

    async def first() -> None:
        make_spans(provider, "before", 1)

    loop.run_until_complete(first())
    loop.close()
    names = make_spans(provider, "after", 512)  # the 511th fills a batch: its wake-up finds the loop closed
    assert processor.loop is get_bridge().running_loop
    assert collector.wait_for_spans(512)  # that batch went out without a flush
    provider.shutdown()
    assert {s.name for s in collector.spans()} == names | {"before-0"}
    assert processor.statistics().exported == 513
    gc.collect()  # the worker left pending on the closed loop is collected quietly, and harms nothing
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR], caplog.text


@pytest.mark.allow_slow_callbacks
async def test_sync_force_flush_from_a_coroutine_works(collector: CollectorThread) -> None:
    """provider.force_flush() called synchronously on the application's loop thread: the processor moves to
    the bridge (the loop is blocked by the call) and the flush succeeds, as the official processor's does."""
    provider, processor = pipeline(collector)
    names = make_spans(provider, "blocking", 20)
    assert processor.loop is asyncio.get_running_loop()
    assert provider.force_flush(10_000) is True
    assert processor.loop is get_bridge().running_loop
    assert {s.name for s in collector.spans()} == names
    more = make_spans(provider, "then", 3)
    provider.shutdown()  # synchronous, on this loop's thread: exports from the bridge and waits
    assert {s.name for s in collector.spans()} == names | more
    stats = processor.statistics()
    assert stats.exported == 23 and stats.balanced


# -- loops that are not running: the processor moves to the bridge, and nothing raises into the application


def balanced(processor: BatchSpanProcessor) -> bool:
    s = processor.statistics()
    return s.produced == s.exported + s.rejected + s.failed + sum(s.dropped.values()) + s.queued + s.in_flight


def test_a_loop_closed_before_the_first_span(collector: CollectorThread) -> None:
    loop = asyncio.new_event_loop()
    loop.close()
    provider, processor = pipeline(collector, loop=loop)
    names = make_spans(provider, "closed", 5)  # raised RuntimeError('Event loop is closed') into end()
    assert processor.loop is get_bridge().running_loop
    assert balanced(processor) and processor.statistics().produced == 5
    assert provider.force_flush() is True
    assert {s.name for s in collector.spans()} == names
    provider.shutdown()


def test_a_loop_that_never_runs_is_left_after_the_schedule_delay(collector: CollectorThread) -> None:
    loop = asyncio.new_event_loop()
    processor = BatchSpanProcessor(
        SpanExporter(endpoint=collector.http_endpoint + "/v1/traces"), schedule_delay_millis=50, loop=loop
    )
    provider = TracerProvider(resource=RESOURCE, shutdown_on_exit=False)
    provider.add_span_processor(processor)
    names = make_spans(provider, "never", 3)
    assert collector.wait_for_spans(3)  # no flush: the bridge noticed the loop is not running and took over
    assert {s.name for s in collector.spans()} == names
    assert processor.loop is get_bridge().running_loop
    provider.shutdown()
    assert processor.statistics().exported == 3 and balanced(processor)
    loop.close()


def test_a_loop_driven_in_turns_then_a_synchronous_flush(collector: CollectorThread) -> None:
    provider, processor = pipeline(collector)
    loop = asyncio.new_event_loop()

    async def turn(prefix: str) -> set[str]:
        return make_spans(provider, prefix, 600)  # one full batch exported on the loop, the rest queued

    names = loop.run_until_complete(turn("first"))
    assert processor.loop is loop
    # the loop is stopped: a synchronous flush (same thread) moves the processor to the bridge and succeeds
    assert provider.force_flush() is True
    assert processor.loop is get_bridge().running_loop
    names |= loop.run_until_complete(turn("second"))  # spans ended on the loop again: the bridge exports them
    provider.shutdown()
    assert {s.name for s in collector.spans()} == names
    stats = processor.statistics()
    assert stats.exported == 1200 and balanced(processor), stats
    loop.run_until_complete(asyncio.sleep(0))  # the old loop runs again: its leftovers are let go quietly
    loop.close()


def test_a_loop_left_open_is_left_at_shutdown(collector: CollectorThread) -> None:
    provider, processor = pipeline(collector)
    loop = asyncio.new_event_loop()

    async def main() -> set[str]:
        return make_spans(provider, "open", 100)

    names = loop.run_until_complete(main())
    provider.shutdown()  # as at interpreter exit: the loop is stopped, never closed
    assert {s.name for s in collector.spans()} == names
    assert processor.statistics().exported == 100 and balanced(processor)
    loop.run_until_complete(asyncio.sleep(0))
    loop.close()
