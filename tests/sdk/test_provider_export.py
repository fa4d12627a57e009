"""aiotlp.sdk.TracerProvider to a collector, through aiotlp's BatchSpanProcessor (issue 16).

- Conformance: what the processor sends for spans of the native provider (their bytes taken straight from the
  SpanCore at ``end()``) is byte for byte what it sends for the same spans from the SDK's TracerProvider (same
  ids, same times), over HTTP/protobuf, gRPC and HTTP/JSON, with each SpanCore implementation and each attribute
  writer (pure and compiled);
- lifecycles, in a child process, with the SDK's provider doing the same as the reference: ``os.fork()`` after
  spans were exported (the child's provider keeps working), and exit without ``shutdown()`` (the ``atexit``
  hook delivers what is queued), from plain code and from ``asyncio.run``.
"""

from __future__ import annotations

import asyncio
import gc
import os
import weakref
from typing import Any

import pytest
from opentelemetry import trace as trace_api
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider as SdkTracerProvider
from opentelemetry.trace import Link, NonRecordingSpan, SpanContext, SpanKind, TraceFlags, TraceState
from opentelemetry.trace.status import StatusCode
from tests.sdk.test_process import run_python
from tests.sdk.test_provider import SequentialIds

import aiotlp.sdk
from aiotlp.encoding import SPAN_CORES
from aiotlp.model import Signal
from aiotlp.sdk import BatchSpanProcessor, SpanExporter
from aiotlp.testing import FakeCollector

pytestmark = pytest.mark.usefixtures("encoder_implementation")

PROTOCOLS = ["http/protobuf", "grpc", "http/json"]


@pytest.fixture(params=list(SPAN_CORES))
def span_core(request: pytest.FixtureRequest) -> str:
    """The SpanCore implementation under aiotlp's provider: ``"python"``, and ``"c"`` when available."""
    return str(request.param)


T0 = 1_700_000_000_000_000_000


def endpoint(collector: FakeCollector, protocol: str) -> str:
    return collector.grpc_endpoint if protocol == "grpc" else f"{collector.http_endpoint}/v1/traces"


def workload(provider: Any) -> None:
    """Spans with every kind of content, from two tracers (two scopes)."""
    tracer = provider.get_tracer("app.server", "2.0", "https://opentelemetry.io/schemas/1.21.0", {"lib": "x"})
    other = provider.get_tracer("app.db")
    remote = SpanContext(0x5EED << 64 | 9, 0x77, True, TraceFlags(1), TraceState([("vendor", "abc")]))
    context = trace_api.set_span_in_context(NonRecordingSpan(remote))
    with tracer.start_as_current_span(
        "GET /users/{id}",
        context=context,
        kind=SpanKind.SERVER,
        attributes={"http.method": "GET", "http.status_code": 200, "user.id": 12345, "cache.hit": True},
        start_time=T0,
        end_on_exit=False,
    ) as server:
        server.set_attribute("ratio", 0.25)
        server.set_attribute("tags", ["a", "b", "c"])
        server.set_attribute("nested", {"k": [1, 2, {"deep": None}], "b": b"\x00\xff"})
        server.set_attribute("big", 2**64)  # outside int64: left out by the encoder, counted
        server.add_event("cache lookup", {"key": "users:12345"}, T0 + 10)
        server.add_event("empty", None, T0 + 11)
        server.add_link(SpanContext(0xAB << 64, 0xCD, False, TraceFlags(1), TraceState([("l", "1")])), {"why": 1})
        for i in range(3):
            query = other.start_span(f"SELECT {i}", kind=SpanKind.CLIENT, start_time=T0 + 20 + i)
            query.set_attributes({"db.system": "sqlite", "db.rows": i})
            if i == 1:
                query.set_status(StatusCode.ERROR, "locked")
                query.record_exception(RuntimeError("locked"), timestamp=T0 + 30)
            elif i == 2:
                query.set_status(StatusCode.OK)
            query.end(T0 + 40 + i)
        server.update_name("GET /users/12345")
        server.end(T0 + 100)
    root = tracer.start_span(
        "root", links=[Link(SpanContext(1, 2, True, TraceFlags(0)))], kind=SpanKind.PRODUCER, start_time=T0 + 200
    )
    root.end(T0 + 300)
    tracer.start_span("", kind=SpanKind.CONSUMER, start_time=T0 + 400).end(T0 + 401)


async def send(collector: FakeCollector, protocol: str, provider: Any) -> list[bytes]:
    collector.clear()
    processor = BatchSpanProcessor(
        SpanExporter(endpoint=endpoint(collector, protocol), protocol=protocol),  # type: ignore[arg-type]
        max_queue_size=4096,
        max_export_batch_size=4096,
        schedule_delay_millis=60_000,
    )
    provider.add_span_processor(processor)
    workload(provider)
    assert await asyncio.to_thread(provider.force_flush) is True
    await asyncio.to_thread(provider.shutdown)
    assert not collector.bad_requests
    stats = processor.statistics()
    assert stats.produced == stats.exported == 6
    return [request.body for request in collector.requests(Signal.TRACES)]


@pytest.mark.parametrize("protocol", PROTOCOLS)
async def test_the_collector_receives_the_same_bytes_as_from_the_sdk_provider(
    collector: FakeCollector, protocol: str, span_core: str
) -> None:
    resource = Resource({"service.name": "conformance", "service.version": "1"})
    sdk = await send(collector, protocol, SdkTracerProvider(resource=resource, id_generator=SequentialIds()))
    ours = await send(
        collector,
        protocol,
        aiotlp.sdk.TracerProvider(resource=resource, id_generator=SequentialIds(), _implementation=span_core),
    )
    assert len(sdk) == 1
    assert ours == sdk
    spans = collector.spans()
    assert sorted(span.name for span in spans) == ["", "GET /users/12345", "SELECT 0", "SELECT 1", "SELECT 2", "root"]


async def test_native_spans_are_queued_as_bytes(collector: FakeCollector, span_core: str) -> None:
    """At end() the batch processor queues the span's bytes: the span is freed at once, its encoded length is
    what the queue holds."""

    def in_a_thread() -> tuple[Any, Any, Any, int]:  # gc.collect() may take a while: not on the test's loop
        provider = aiotlp.sdk.TracerProvider(shutdown_on_exit=False, _implementation=span_core)
        processor = BatchSpanProcessor(
            SpanExporter(endpoint=endpoint(collector, "http/protobuf")), schedule_delay_millis=60_000
        )
        provider.add_span_processor(processor)
        with provider.get_tracer("t").start_as_current_span("one", attributes={"a": 1}) as span:
            pass
        size = len(span.encode())
        alive = weakref.ref(span)
        del span
        gc.collect()
        return provider, processor, alive, size

    provider, processor, alive, size = await asyncio.to_thread(in_a_thread)
    assert alive() is None
    stats = processor.statistics()
    assert (stats.queued, stats.queued_bytes) == (1, size)
    await asyncio.to_thread(provider.shutdown)
    assert [span.name for span in collector.spans()] == ["one"]


LIFECYCLE_PRELUDE = """
import os, sys
from opentelemetry.sdk.trace import TracerProvider as SdkTracerProvider
import aiotlp.sdk
from aiotlp.sdk import BatchSpanProcessor, SpanExporter

PROVIDERS = {"sdk": SdkTracerProvider, "aiotlp": aiotlp.sdk.TracerProvider}
endpoint, which = sys.argv[1], sys.argv[2]
kwargs = {} if which == "sdk" else {"_implementation": sys.argv[3]}
provider = PROVIDERS[which](**kwargs)
provider.add_span_processor(
    BatchSpanProcessor(SpanExporter(endpoint + "/v1/traces"), schedule_delay_millis=60_000)
)
tracer = provider.get_tracer("lifecycle")
"""


async def run_both(collector: FakeCollector, code: str, span_core: str) -> dict[str, list[str]]:
    """Run ``code`` with the SDK's provider, then aiotlp's: the span names the collector got from each."""
    names = {}
    for which in ("sdk", "aiotlp"):
        collector.clear()
        returncode, output = await run_python(LIFECYCLE_PRELUDE + code, collector.http_endpoint, which, span_core)
        assert returncode == 0, output
        names[which] = sorted(span.name for span in collector.spans())
    return names


@pytest.mark.skipif(not hasattr(os, "fork"), reason="os.fork is POSIX only")
async def test_fork_after_export(collector: FakeCollector, span_core: str) -> None:
    code = """
tracer.start_span("parent before fork").end()
assert provider.force_flush(10_000)
pid = os.fork()
if pid == 0:
    with tracer.start_as_current_span("child") as span:
        span.set_attribute("pid", os.getpid())
    provider.shutdown()
    os._exit(0)
_, status = os.waitpid(pid, 0)
assert os.waitstatus_to_exitcode(status) == 0, status
tracer.start_span("parent after fork").end()
provider.shutdown()
"""
    names = await run_both(collector, code, span_core)
    assert names["aiotlp"] == names["sdk"] == ["child", "parent after fork", "parent before fork"]


@pytest.mark.parametrize("style", ["plain", "asyncio.run"])
async def test_exit_without_shutdown(collector: FakeCollector, span_core: str, style: str) -> None:
    code = {
        "plain": """
for i in range(5):
    with tracer.start_as_current_span(f"span {i}"):
        pass
# no shutdown: the provider's atexit hook flushes the batch processor
""",
        "asyncio.run": """
import asyncio

async def main():
    for i in range(5):
        with tracer.start_as_current_span(f"span {i}"):
            await asyncio.sleep(0)

asyncio.run(main())
""",
    }[style]
    names = await run_both(collector, code, span_core)
    assert names["aiotlp"] == names["sdk"] == [f"span {i}" for i in range(5)]


@pytest.mark.parametrize("processor", ["simple", "batch"])
def test_the_sdks_own_processors_and_the_official_encoder(span_core: str, processor: str) -> None:
    """Foreign processors (the SDK's SimpleSpanProcessor and BatchSpanProcessor, to an in-memory exporter) get
    ReadableSpans that the official OTLP encoder serializes exactly as those of the SDK's provider."""
    from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans as official_encode
    from opentelemetry.sdk.trace.export import BatchSpanProcessor as SdkBatchSpanProcessor
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    resource = Resource({"service.name": "foreign"})
    encoded = []
    for provider in (
        SdkTracerProvider(resource=resource, id_generator=SequentialIds(), shutdown_on_exit=False),
        aiotlp.sdk.TracerProvider(
            resource=resource, id_generator=SequentialIds(), shutdown_on_exit=False, _implementation=span_core
        ),
    ):
        memory = InMemorySpanExporter()
        provider.add_span_processor(
            SimpleSpanProcessor(memory) if processor == "simple" else SdkBatchSpanProcessor(memory)
        )
        workload(provider)
        assert provider.force_flush()
        provider.shutdown()
        spans = memory.get_finished_spans()
        assert len(spans) == 6
        encoded.append(official_encode(spans).SerializeToString(deterministic=True))
    assert encoded[1] == encoded[0]
