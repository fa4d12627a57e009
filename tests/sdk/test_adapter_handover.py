"""``FastAdapter``'s verbs hand its export coroutine over, and its common batch (nothing left out) returns the
client's result as it is (issue 13: fewer coroutines and results per export on the bridge): each end of an export
(the common batch, some items that cannot be encoded, none that can, a closed exporter) gives the same result and
ledger as before, through aiotlp's BatchSpanProcessor as an application uses it, and awaited directly."""

from __future__ import annotations

import asyncio
import inspect
from typing import Any

import pytest
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.trace import SpanContext, TraceFlags

from aiotlp.export import ExportResult
from aiotlp.model import Signal
from aiotlp.sdk import BatchSpanProcessor, SpanExporter
from aiotlp.sdk._adapters import FastAdapter
from aiotlp.sdk._encode import SourceEncoder
from aiotlp.testing import FakeCollector

pytestmark = pytest.mark.usefixtures("encoder_implementation")

CONTEXT = SpanContext(trace_id=0x1234, span_id=0x99, is_remote=False, trace_flags=TraceFlags(1))


def span(i: int, *, bad: bool = False) -> ReadableSpan:
    attributes: dict[Any, Any] = {b"key": "v"} if bad else {"i": i}  # a bytes key cannot be encoded
    return ReadableSpan(name=f"span-{i}", context=CONTEXT, attributes=attributes, start_time=1, end_time=2)


@pytest.mark.parametrize("protocol", ["grpc", "http/protobuf"])
@pytest.mark.parametrize(("bad", "sent"), [((), 6), ((2, 4), 4), (tuple(range(6)), 0)])
async def test_every_end_of_an_export_through_the_processor(
    collector: FakeCollector, protocol: str, bad: tuple[int, ...], sent: int
) -> None:
    where = collector.grpc_endpoint if protocol == "grpc" else f"{collector.http_endpoint}/v1/traces"
    exporter = SpanExporter(endpoint=where, protocol=protocol)  # type: ignore[arg-type]
    processor = BatchSpanProcessor(exporter, schedule_delay_millis=60_000)
    for i in range(6):
        processor.on_end(span(i, bad=i in bad))
    flushed = await asyncio.to_thread(processor.force_flush)
    assert flushed is True or bad  # (a flush with items left out may say so)
    stats = processor.statistics()
    assert (stats.exported, stats.dropped.get("invalid", 0)) == (sent, len(bad))
    assert stats.balanced and stats.in_flight == 0
    ledger = exporter.statistics()
    assert (ledger.accepted, ledger.dropped.get("invalid", 0), ledger.in_flight) == (sent, len(bad), 0)
    assert ledger.exports == (1 if sent else 0)
    assert sorted(s.name for s in collector.spans()) == [f"span-{i}" for i in range(6) if i not in bad]
    await asyncio.to_thread(processor.shutdown)


async def test_the_verbs_return_an_awaitable_result_at_each_end(collector: FakeCollector) -> None:
    exporter = SpanExporter(endpoint=collector.grpc_endpoint, protocol="grpc")
    source = SourceEncoder("spans")
    adapter = FastAdapter(exporter, Signal.TRACES, "spans", source)
    good = [source.item(span(i)) for i in range(3)]
    for items, want in [
        (good, ExportResult(items=3, accepted=3, requests=1)),
        ([*good, span(9, bad=True)], ExportResult(items=4, accepted=3, dropped=1, invalid=1, requests=1)),
        ([span(9, bad=True)], ExportResult(items=1, dropped=1, invalid=1)),
    ]:
        call = adapter.export_traces(items)
        assert inspect.iscoroutine(call)
        assert await call == want
    assert len(collector.spans()) == 6
    await exporter._client.shutdown_here(1.0)
    call = adapter.export_logs(good)  # a closed exporter: failed at once, nothing sent
    assert inspect.iscoroutine(call)
    assert await call == ExportResult(items=3, failed=3)
    assert len(collector.spans()) == 6
