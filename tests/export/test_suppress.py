"""The standalone OTLPExporter's own network calls are not traced by instrumented HTTP and gRPC clients.

gRPC with grpcio: with an OpenTelemetry SDK TracerProvider recording into memory and
opentelemetry-instrumentation-grpc's grpc.aio client interceptors on, an export produces no span (the test first
shows that the instrumentation does trace a call the test makes itself, so that "no span" means suppressed, not
"not instrumented"). aiotlp's own clients (HTTP/1.1 and h2) are not hooked by any instrumentation package; what
such a package checks is the context the request is sent in, so for them the tests read it where a client
library's hook would: in the transport, at the moment of sending (``is_http_instrumentation_enabled`` and
``is_instrumentation_enabled`` are False there, and True in the caller's context before and after). Directly and
through the disk queue's delivery task.
"""

from __future__ import annotations

import asyncio
import os
import sys
import textwrap
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import grpc
import grpc.aio
import pytest
from opentelemetry.instrumentation.utils import is_http_instrumentation_enabled, is_instrumentation_enabled
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from tests.samples import spans

from aiotlp import DurableExporter, OTLPExporter, SignalConfig
from aiotlp.export import reply_error
from aiotlp.model import Signal
from aiotlp.testing import FakeCollector
from aiotlp.transport import Reply, Transport, grpc_method, make_transport


@pytest.fixture
async def collector() -> AsyncIterator[FakeCollector]:
    async with FakeCollector() as collector:
        yield collector


@pytest.fixture
def recorded() -> Iterator[tuple[TracerProvider, InMemorySpanExporter]]:
    memory = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(memory))
    yield provider, memory
    provider.shutdown()


class ContextAtSend:
    """A transport factory: the real transport of each signal, wrapped to record, at each send, whether an
    instrumentation would trace a request made there (the checks instrumentation packages make)."""

    def __init__(self) -> None:
        self.seen: list[tuple[bool, bool]] = []  # (HTTP instrumentation enabled, instrumentation enabled)

    def __call__(self, config: SignalConfig) -> Transport:
        inner = make_transport(config, grpc_implementation="h2", classify=reply_error)
        seen = self.seen

        class Recording:
            content_type = inner.content_type
            compression = inner.compression

            async def send(self, body: bytes, *, content_encoding: str, timeout: float) -> Reply:
                seen.append((is_http_instrumentation_enabled(), is_instrumentation_enabled()))
                return await inner.send(body, content_encoding=content_encoding, timeout=timeout)

            async def close(self) -> None:
                await inner.close()

        return Recording()


@pytest.mark.parametrize("protocol", ["http/protobuf", "http/json", "grpc"])
@pytest.mark.parametrize("durable", [False, True], ids=["direct", "disk-queue"])
async def test_aiotlp_clients_send_in_a_suppressed_context(
    protocol: str, durable: bool, collector: FakeCollector, tmp_path: Path
) -> None:
    assert is_http_instrumentation_enabled() and is_instrumentation_enabled()  # the caller's context: on
    recorder = ContextAtSend()
    endpoint = collector.grpc_endpoint if protocol == "grpc" else collector.http_endpoint
    exporter = OTLPExporter(endpoint=endpoint, protocol=protocol, transport_factory=recorder)
    sender: OTLPExporter | DurableExporter = DurableExporter(exporter, tmp_path) if durable else exporter
    async with sender:
        result = await sender.export_traces(spans(3))
        assert result.accepted == 3
        await collector.wait_for(lambda c: len(c.spans()) >= 3)
    assert len(collector.spans()) == 3
    assert recorder.seen and set(recorder.seen) == {(False, False)}
    assert is_http_instrumentation_enabled() and is_instrumentation_enabled()  # and on again after


@pytest.mark.parametrize("implementation", ["grpcio", "h2"])
async def test_grpc_export_is_not_traced(
    implementation: str, collector: FakeCollector, recorded: tuple[TracerProvider, InMemorySpanExporter]
) -> None:
    grpc_instrumentation = pytest.importorskip("opentelemetry.instrumentation.grpc", reason="the test extra has it")
    provider, memory = recorded
    instrumentor = grpc_instrumentation.GrpcAioInstrumentorClient()
    instrumentor.instrument(tracer_provider=provider)
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{collector.grpc_port}") as channel:
            await channel.unary_unary(grpc_method(Signal.TRACES))(b"")  # traced: the instrumentation works
        assert len(memory.get_finished_spans()) == 1
        memory.clear()

        exporter = OTLPExporter(endpoint=collector.grpc_endpoint, protocol="grpc", grpc_implementation=implementation)
        async with exporter:
            result = await exporter.export_traces(spans(3))
        assert result.accepted == 3
        assert len(collector.spans()) == 3
        assert memory.get_finished_spans() == ()
    finally:
        instrumentor.uninstrument()


async def test_the_core_does_not_import_opentelemetry(collector: FakeCollector) -> None:
    """Suppression costs nothing without OpenTelemetry: an export does not import it."""
    code = """
    import asyncio, sys
    from aiotlp import OTLPExporter
    from aiotlp.model import InstrumentationScope, Resource, Span

    span = Span(trace_id=b"\\x01" * 16, span_id=b"\\x02" * 8, name="plain", start_time_unix_nano=1,
                end_time_unix_nano=2, resource=Resource({}), scope=InstrumentationScope("plain"))

    async def main():
        async with OTLPExporter(endpoint=sys.argv[1]) as exporter:
            assert (await exporter.export_traces([span])).accepted == 1

    asyncio.run(main())
    print(sorted(name for name in sys.modules if name.startswith("opentelemetry")))
    """
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        textwrap.dedent(code),
        collector.http_endpoint,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
        env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)},
    )
    output, _ = await asyncio.wait_for(process.communicate(), 60)
    assert process.returncode == 0, output
    assert output.decode().strip() == "[]"
    assert [span.name for span in collector.spans()] == ["plain"]
