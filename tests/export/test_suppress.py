"""The standalone OTLPExporter's own network calls are not traced by instrumented HTTP and gRPC clients.

With an OpenTelemetry SDK TracerProvider recording into memory and the client instrumentations on, an export
produces no span, over HTTP (protobuf and JSON), gRPC with grpcio (opentelemetry-instrumentation-grpc's grpc.aio
client interceptors) and gRPC with aiotlp's h2 client (no instrumentation applies to it); directly and through
the disk queue's delivery task. Each case first shows that the instrumentation does trace a call the test makes
itself, so that "no span" means suppressed, not "not instrumented".

opentelemetry-instrumentation-aiohttp-client cannot be installed next to this environment's
opentelemetry-instrumentation (its newest release pins an older one), so :class:`AiohttpClientInstrumentation`
stands in for it: the same hook (a ``TraceConfig`` added to every ``ClientSession``) and the same check
(``opentelemetry.instrumentation.utils.is_http_instrumentation_enabled``) as the official package.
"""

from __future__ import annotations

import asyncio
import os
import sys
import textwrap
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import aiohttp
import grpc
import grpc.aio
import pytest
from opentelemetry.instrumentation.utils import is_http_instrumentation_enabled
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from tests.samples import spans

from aiotlp import DurableExporter, OTLPExporter
from aiotlp.model import Signal
from aiotlp.testing import FakeCollector
from aiotlp.transport import grpc_method


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


class AiohttpClientInstrumentation:
    """What opentelemetry-instrumentation-aiohttp-client does, reduced to the part under test: every new
    ClientSession gets a TraceConfig that starts a CLIENT span per request unless HTTP instrumentation is
    suppressed in the current context."""

    def __init__(self, provider: TracerProvider, monkeypatch: pytest.MonkeyPatch) -> None:
        tracer = provider.get_tracer("aiohttp-client-stand-in")
        original = aiohttp.ClientSession.__init__

        async def on_request_start(
            session: aiohttp.ClientSession, context: SimpleNamespace, params: aiohttp.TraceRequestStartParams
        ) -> None:
            context.span = None
            if is_http_instrumentation_enabled():
                context.span = tracer.start_span(f"{params.method} {params.url}")

        async def on_request_end(session: aiohttp.ClientSession, context: SimpleNamespace, params: Any) -> None:
            if context.span is not None:
                context.span.end()

        def init(session: aiohttp.ClientSession, *args: Any, **kwargs: Any) -> None:
            trace_config = aiohttp.TraceConfig()
            trace_config.on_request_start.append(on_request_start)
            trace_config.on_request_end.append(on_request_end)
            trace_config.on_request_exception.append(on_request_end)
            kwargs["trace_configs"] = [*(kwargs.get("trace_configs") or ()), trace_config]
            original(session, *args, **kwargs)

        monkeypatch.setattr(aiohttp.ClientSession, "__init__", init)


@pytest.mark.parametrize("protocol", ["http/protobuf", "http/json"])
@pytest.mark.parametrize("durable", [False, True], ids=["direct", "disk-queue"])
async def test_http_export_is_not_traced(
    protocol: str,
    durable: bool,
    collector: FakeCollector,
    recorded: tuple[TracerProvider, InMemorySpanExporter],
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    provider, memory = recorded
    AiohttpClientInstrumentation(provider, monkeypatch)
    # the instrumentation works: the test's own request is traced
    headers = {"content-type": "application/x-protobuf"}
    async with (
        aiohttp.ClientSession() as session,
        session.post(collector.http_endpoint + "/v1/traces", data=b"", headers=headers) as response,
    ):
        assert response.status == 200
    assert len(memory.get_finished_spans()) == 1
    memory.clear()

    exporter = OTLPExporter(endpoint=collector.http_endpoint, protocol=protocol)
    sender: OTLPExporter | DurableExporter = DurableExporter(exporter, tmp_path) if durable else exporter
    async with sender:
        result = await sender.export_traces(spans(3))
        assert result.accepted == 3
        await collector.wait_for(lambda c: len(c.spans()) >= 3)
    assert len(collector.spans()) == 3
    assert memory.get_finished_spans() == ()


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
