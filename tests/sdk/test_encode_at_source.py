"""Encoding at the source: the SDK batch processors encode each span / log record where it ends
(``aiotlp.sdk._encode.SourceEncoder``) and frame batches from the bytes.

What reaches the collector must be what the object path (``encode_at_source=False``: SDK objects queued, each
batch encoded at export) sends for the same items: the same SDK spans and log records go through both paths to
a FakeCollector and the decoded requests are compared, for traces and logs, over HTTP/protobuf, gRPC and
HTTP/JSON (which keeps the object path), with the pure-Python and the compiled encoder; also when the exporter
splits a batch by size. Below that, the framed bytes are compared with the batch encoder's for any subset and
order of the items, past the cap of (resource, scope) groups and mixed with objects left unencoded. And: an item
that cannot be encoded is counted as ``invalid``; the queue has a byte capacity, measured in encoded bytes; a
queued span costs under 600 bytes and no SDK object stays alive in the queue.
"""

from __future__ import annotations

import asyncio
import gc
import os
import random
import subprocess
import sys
import weakref
from typing import Any

import pytest
from opentelemetry.sdk._logs import LoggerProvider
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.trace import SpanContext, TraceFlags
from tests.sdk import sdk_data

from aiotlp import EncodeError
from aiotlp.model import Signal
from aiotlp.sdk import BatchLogRecordProcessor, BatchSpanProcessor, LogExporter, SpanExporter
from aiotlp.sdk._encode import SourceEncoder, encode_log_records, encode_spans
from aiotlp.sdk._processors import DEFAULT_MAX_QUEUE_BYTES
from aiotlp.testing import FakeCollector

pytestmark = [
    pytest.mark.usefixtures("encoder_implementation"),
    pytest.mark.filterwarnings("ignore::opentelemetry.sdk._logs.LogRecordDroppedAttributesWarning"),
]

PROTOCOLS = ["http/protobuf", "grpc", "http/json"]


def endpoint(collector: FakeCollector, protocol: str, signal: str) -> str:
    return collector.grpc_endpoint if protocol == "grpc" else f"{collector.http_endpoint}/v1/{signal}"


# ------------------------------------------------------------------------------------------------------------
# The framed bytes are the batch encoder's


@pytest.mark.parametrize("kind", ["spans", "logs"])
@pytest.mark.parametrize("max_groups", [1024, 1, 0])
def test_frame_writes_the_batch_encoders_bytes_for_any_subset(kind: str, max_groups: int) -> None:
    items: list[Any] = sdk_data.spans() if kind == "spans" else sdk_data.log_records()
    encode: Any = encode_spans if kind == "spans" else encode_log_records
    source = SourceEncoder(kind, max_groups=max_groups)
    queued = [source.item(item) for item in items]
    # past max_groups the objects are left as they are (framed from the object)
    encoded = sum(type(item) is tuple for item in queued)
    assert encoded == len(items) if max_groups == 1024 else encoded < len(items)
    assert source.frame(queued) == encode(items)
    assert source.frame([]) == encode([]) == b""
    rng = random.Random(13)
    for trial in range(40):
        chosen = [i for i in range(len(items)) if rng.random() < 0.5]
        if trial % 2:
            rng.shuffle(chosen)
        assert source.frame([queued[i] for i in chosen]) == encode([items[i] for i in chosen]), chosen
        # objects mixed in (an item whose encoding failed at the source is queued as the object)
        mixed = [items[i] if i % 3 == 0 else queued[i] for i in chosen]
        assert source.frame(mixed) == encode([items[i] for i in chosen])


def test_an_item_that_cannot_be_encoded_stays_an_object_and_framing_it_raises() -> None:
    context = SpanContext(trace_id=1, span_id=2, is_remote=False, trace_flags=TraceFlags(1))
    bad = ReadableSpan(name="bad", context=context, attributes={b"key": "v"}, start_time=1, end_time=2)  # type: ignore[dict-item]
    good = ReadableSpan(name="good", context=context, attributes={"k": "v"}, start_time=1, end_time=2)
    source = SourceEncoder("spans")
    assert source.item(bad) is bad
    item = source.item(good)
    assert type(item) is tuple
    with pytest.raises(EncodeError):  # the exporter drops it as invalid
        source.frame([item, bad])
    with pytest.raises(ValueError, match="kind"):
        SourceEncoder("metrics")


def test_a_queued_span_is_bytes_under_600_and_its_span_is_freed() -> None:
    provider = TracerProvider(resource=Resource({"service.name": "bytes"}), shutdown_on_exit=False)
    source = SourceEncoder("spans")
    tracer = provider.get_tracer("bytes")
    with tracer.start_as_current_span("GET /v1/users/{id}", attributes=sdk_data.ATTRIBUTES) as span:
        span.add_event("cache lookup", {"key": "users:12345"})
    alive = weakref.ref(span)
    item = source.item(span)
    del span
    gc.collect()
    assert alive() is None  # the queued item keeps no reference to the span
    assert gc.is_tracked(item) is False  # an int and bytes: nothing for the collector to walk
    assert sys.getsizeof(item) + sys.getsizeof(item[1]) <= 600
    assert source.frame([item]) != b""


# ------------------------------------------------------------------------------------------------------------
# Both paths, end to end, to a FakeCollector


async def send_spans(
    collector: FakeCollector, protocol: str, encode: bool, spans: list[ReadableSpan], **exporter: Any
) -> tuple[list[Any], Any]:
    collector.clear()
    processor = BatchSpanProcessor(
        SpanExporter(endpoint=endpoint(collector, protocol, "traces"), protocol=protocol, **exporter),  # type: ignore[arg-type]
        max_queue_size=4096,
        max_export_batch_size=4096,
        schedule_delay_millis=60_000,
        encode_at_source=encode,
    )
    assert processor.encodes_at_source is (encode and protocol != "http/json")
    for span in spans:
        processor.on_end(span)
    assert await asyncio.to_thread(processor.force_flush) is True
    await asyncio.to_thread(processor.shutdown)
    assert not collector.bad_requests
    return [request.message for request in collector.requests(Signal.TRACES)], processor.statistics()


@pytest.mark.parametrize("protocol", PROTOCOLS)
async def test_spans_both_paths_send_the_same_requests(collector: FakeCollector, protocol: str) -> None:
    spans = sdk_data.spans()
    by_object, stats_object = await send_spans(collector, protocol, False, spans)
    at_source, stats_source = await send_spans(collector, protocol, True, spans)
    assert len(by_object) == 1 and sum(len(r.resource_spans) for r in by_object) >= 2
    assert at_source == by_object
    assert stats_source.exported == stats_object.exported == len(spans)
    assert stats_source.balanced and stats_source.dropped_total == 0


@pytest.mark.parametrize("protocol", ["http/protobuf", "grpc"])
async def test_a_batch_split_by_size_is_framed_again_from_subsets(collector: FakeCollector, protocol: str) -> None:
    spans = sdk_data.spans() * 8
    size = len(encode_spans(spans)) // 5
    by_object, stats_object = await send_spans(collector, protocol, False, spans, max_request_size=size)
    at_source, stats_source = await send_spans(collector, protocol, True, spans, max_request_size=size)
    assert len(by_object) >= 5
    assert at_source == by_object
    assert stats_source.exported == stats_object.exported == len(spans)
    assert stats_source.balanced and stats_source.dropped_total == 0


async def send_logs(collector: FakeCollector, protocol: str, encode: bool, records: list[Any]) -> list[Any]:
    collector.clear()
    processor = BatchLogRecordProcessor(
        LogExporter(endpoint=endpoint(collector, protocol, "logs"), protocol=protocol),  # type: ignore[arg-type]
        max_queue_size=4096,
        max_export_batch_size=4096,
        schedule_delay_millis=60_000,
        encode_at_source=encode,
    )
    assert processor.encodes_at_source is (encode and protocol != "http/json")
    for record in records:
        processor.on_emit(record)
    assert await asyncio.to_thread(processor.force_flush) is True
    await asyncio.to_thread(processor.shutdown)
    stats = processor.statistics()
    assert stats.exported == len(records) and stats.balanced and stats.dropped_total == 0
    assert not collector.bad_requests
    return [request.message for request in collector.requests(Signal.LOGS)]


@pytest.mark.parametrize("protocol", PROTOCOLS)
async def test_log_records_both_paths_send_the_same_requests(collector: FakeCollector, protocol: str) -> None:
    records = sdk_data.log_records()
    by_object = await send_logs(collector, protocol, False, records)
    at_source = await send_logs(collector, protocol, True, records)
    assert len(by_object) == 1 and sum(len(r.resource_logs) for r in by_object) >= 2
    assert at_source == by_object


async def test_log_records_through_a_logger_provider(collector: FakeCollector) -> None:
    """The records as a LoggerProvider hands them over (ReadWriteLogRecord), changed after emit: the bytes were
    taken at emit."""
    processor = BatchLogRecordProcessor(
        LogExporter(endpoint=endpoint(collector, "http/protobuf", "logs")), encode_at_source=True
    )
    assert processor.encodes_at_source
    provider = LoggerProvider(resource=Resource({"service.name": "logs"}), shutdown_on_exit=False)
    provider.add_log_record_processor(processor)
    logger = provider.get_logger("tests")
    for i in range(5):
        logger.emit(body=f"record {i}", attributes={"i": i})
    assert await asyncio.to_thread(provider.force_flush) is True
    assert [r.body.string_value for r in collector.log_records()] == [f"record {i}" for i in range(5)]
    await asyncio.to_thread(provider.shutdown)
    assert processor.statistics().exported == 5


# ------------------------------------------------------------------------------------------------------------
# The ledger


@pytest.mark.parametrize("protocol", ["http/protobuf", "grpc"])
async def test_a_span_that_cannot_be_encoded_is_counted_as_invalid(collector: FakeCollector, protocol: str) -> None:
    processor = BatchSpanProcessor(
        SpanExporter(endpoint=endpoint(collector, protocol, "traces"), protocol=protocol),  # type: ignore[arg-type]
        schedule_delay_millis=60_000,
        encode_at_source=True,
    )
    assert processor.encodes_at_source
    context = SpanContext(trace_id=0x1234, span_id=0x99, is_remote=False, trace_flags=TraceFlags(1))
    for i in range(10):
        attributes: dict[Any, Any] = {b"key": "v"} if i == 4 else {"i": i}
        processor.on_end(
            ReadableSpan(name=f"span-{i}", context=context, attributes=attributes, start_time=1, end_time=2)
        )
    await asyncio.to_thread(processor.force_flush)
    stats = processor.statistics()
    assert (stats.exported, stats.dropped["invalid"], stats.dropped["too_large"]) == (9, 1, 0)
    assert stats.balanced
    assert sorted(span.name for span in collector.spans()) == sorted(f"span-{i}" for i in range(10) if i != 4)
    await asyncio.to_thread(processor.shutdown)


async def test_the_queue_has_a_byte_capacity_in_encoded_bytes(collector: FakeCollector) -> None:
    exporter = SpanExporter(endpoint=endpoint(collector, "http/protobuf", "traces"))
    assert BatchSpanProcessor(exporter, encode_at_source=True).statistics().byte_capacity == DEFAULT_MAX_QUEUE_BYTES
    assert BatchSpanProcessor(exporter, encode_at_source=False).statistics().byte_capacity is None
    for bad in (0, -1, True, 1.5):
        with pytest.raises(Exception, match="max_queue_bytes"):
            BatchSpanProcessor(exporter, max_queue_bytes=bad)  # type: ignore[arg-type]

    provider = TracerProvider(resource=Resource({"service.name": "bytes"}), shutdown_on_exit=False)
    tracer = provider.get_tracer("bytes")
    spans = []
    for i in range(20):
        with tracer.start_as_current_span(f"span-{i:02}", attributes=sdk_data.ATTRIBUTES) as span:
            span.add_event("cache lookup", {"key": "users:12345"})
        spans.append(span)
    size = len(encode_spans(spans[:1])) - len(encode_spans([]))  # about: one span's request
    processor = BatchSpanProcessor(
        exporter, schedule_delay_millis=60_000, max_queue_bytes=5 * size, encode_at_source=True
    )
    for span in spans:
        processor.on_end(span)
    stats = processor.statistics()
    assert stats.byte_capacity == 5 * size
    assert 0 < stats.queued < 20 and stats.dropped["queue_full"] == 20 - stats.queued
    assert stats.queued_bytes <= 5 * size and stats.queued_bytes / stats.queued <= 600
    await asyncio.to_thread(processor.force_flush)
    assert len(collector.spans()) == stats.queued
    await asyncio.to_thread(processor.shutdown)
    assert processor.statistics().balanced


def test_foreign_exporters_keep_the_object_path() -> None:
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    processor = BatchSpanProcessor(InMemorySpanExporter(), encode_at_source=True)
    assert not processor.encodes_at_source
    processor.shutdown()


def test_the_sdks_own_spans_are_read_directly_not_snapshotted() -> None:
    """The SDK's Span overrides ``get_span_context`` (returning ``self._context``, as ReadableSpan's does): its
    spans are read through their fields, in ``on_end`` and in a batch, not copied through the public API."""
    from opentelemetry.sdk.trace import Span as SdkSpan

    from aiotlp.sdk._encode_spans import _reads_directly

    provider = TracerProvider(shutdown_on_exit=False)
    with provider.get_tracer("direct").start_as_current_span("span") as span:
        pass
    assert isinstance(span, SdkSpan)
    assert _reads_directly(type(span)) and _reads_directly(SdkSpan)

    class Renamed(ReadableSpan):
        @property
        def name(self) -> str:
            return "renamed"

    assert not _reads_directly(Renamed)


@pytest.mark.parametrize(("value", "on"), [("", True), ("0", True), ("1", False), ("yes", False)])
def test_the_kill_switch_sets_the_default(value: str, on: bool) -> None:
    """AIOTLP_NO_ENCODE_AT_SOURCE, read once at import by aiotlp.encoding._compat: the processors' default."""
    code = (
        "from aiotlp.encoding import _compat; from aiotlp.sdk import BatchSpanProcessor, SpanExporter; "
        "p = BatchSpanProcessor(SpanExporter(endpoint='http://127.0.0.1:1/v1/traces')); "
        "print(_compat.ENCODE_AT_SOURCE, p.encodes_at_source); p.shutdown()"
    )
    environment = {**os.environ, "AIOTLP_NO_ENCODE_AT_SOURCE": value}
    done = subprocess.run([sys.executable, "-c", code], env=environment, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == [str(on), str(on)]
