"""Connecting ahead: ``Transport.connect`` (aiotlp's h2, HTTP/1.1 and grpc.aio transports are
:class:`~aiotlp.transport.Connectable`) and ``OTLPExporter.connect``, which opens a signal's connection on the
running loop before its first export.

Each client connects through a counting TCP proxy in front of a FakeCollector: the connection is made by
``connect``, the first send goes over it (no second connection), a failure is a classified
:class:`~aiotlp.ExportError` from the transport and a quiet ``False`` from the exporter.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from typing import Any

import pytest
from tests.faults._support import TcpProxy, _LoopbackServer
from tests.transport.support import call

from aiotlp import (
    AttemptTimeoutError,
    ConnectError,
    OTLPExporter,
    PermanentError,
    RetryPolicy,
    Signal,
)
from aiotlp.config import ExporterConfig, SignalConfig
from aiotlp.encoding import encode_traces
from aiotlp.model import Span
from aiotlp.testing import FakeCollector, free_port
from aiotlp.transport import Connectable, FleetTransport, Transport, make_transport

CLIENTS = [("grpc", "h2"), ("grpc", "grpcio"), ("http/protobuf", None)]
SPAN = Span(name="s", trace_id=1, span_id=1, start_time_unix_nano=1, end_time_unix_nano=2)
BODY = encode_traces([SPAN])
SECRET = "Bearer s3cr3t-t0ken"


@pytest.fixture
async def collector() -> AsyncIterator[FakeCollector]:
    async with FakeCollector() as fake:
        yield fake


def endpoint(protocol: str, port: int) -> str:
    return f"http://127.0.0.1:{port}" + ("/v1/traces" if protocol != "grpc" else "")


def transport(protocol: str, client: str | None, port: int, **settings: Any) -> Transport:
    config = SignalConfig(signal=Signal.TRACES, protocol=protocol, endpoint=endpoint(protocol, port), **settings)  # type: ignore[arg-type]
    return make_transport(config, grpc_implementation=client)  # type: ignore[arg-type]


async def proxied(collector: FakeCollector, protocol: str) -> TcpProxy:
    proxy = TcpProxy("127.0.0.1", collector.grpc_port if protocol == "grpc" else collector.http_port)
    return await proxy.__aenter__()


@contextlib.asynccontextmanager
async def relayed(collector: FakeCollector, protocol: str, client: str | None) -> AsyncIterator[tuple[TcpProxy, Any]]:
    """A transport of ``client`` to the collector through a counting proxy; the transport closed at the end."""
    relay = await proxied(collector, protocol)
    try:
        sender = transport(protocol, client, relay.port)
        assert isinstance(sender, Connectable)
        yield relay, sender
        await sender.close()
    finally:
        await relay.__aexit__(None, None, None)


@pytest.mark.parametrize(("protocol", "client"), CLIENTS)
async def test_connect_opens_the_connection_the_first_send_uses(
    collector: FakeCollector, protocol: str, client: str | None
) -> None:
    async with relayed(collector, protocol, client) as (relay, sender):
        await sender.connect(5.0)
        # HTTP/1.1's connect ends with TCP's handshake, maybe before the proxy has taken the connection
        assert await asyncio.to_thread(relay.wait_for_connections, 1, 5.0)
        assert relay.connections == 1
        assert collector.received == []  # connected, nothing sent
        await sender.connect(5.0)  # already open: kept
        await call(sender, BODY, timeout=5.0)
        await call(sender, BODY, timeout=5.0)
        assert len(collector.received) == 2
        assert relay.connections == 1


@pytest.mark.parametrize(("protocol", "client"), CLIENTS)
async def test_a_send_while_connecting_ahead_waits_for_that_connection(
    collector: FakeCollector, protocol: str, client: str | None
) -> None:
    async with relayed(collector, protocol, client) as (relay, sender):
        connecting = asyncio.ensure_future(sender.connect(5.0))
        await asyncio.sleep(0)  # the connect is under way
        await call(sender, BODY, timeout=5.0)
        await connecting
        await call(sender, BODY, timeout=5.0)
        assert len(collector.received) == 2
        assert relay.connections == 1


@pytest.mark.parametrize(("protocol", "client"), CLIENTS)
async def test_connect_to_a_closed_port_is_a_classified_error_without_secrets(
    protocol: str, client: str | None
) -> None:
    sender = transport(protocol, client, free_port(), headers={"authorization": SECRET})
    assert isinstance(sender, Connectable)
    with pytest.raises(ConnectError) as caught:
        await sender.connect(2.0)
    assert caught.value.retryable
    assert "s3cr3t" not in str(caught.value)
    await sender.close()


@pytest.mark.parametrize(("protocol", "client"), CLIENTS)
async def test_connect_after_close_is_refused(protocol: str, client: str | None) -> None:
    sender = transport(protocol, client, free_port())
    await sender.close()
    assert isinstance(sender, Connectable)
    with pytest.raises(PermanentError, match="closed"):
        await sender.connect(1.0)


@pytest.mark.parametrize("client", ["h2", "grpcio"])
async def test_a_server_that_never_answers_the_handshake_times_the_connect_out(client: str) -> None:
    """TCP is accepted but no HTTP/2 SETTINGS ever come: connect gives up within its timeout."""

    async with Silent() as server:
        sender = transport("grpc", client, server.port)
        assert isinstance(sender, Connectable)
        loop = asyncio.get_running_loop()
        started = loop.time()
        with pytest.raises((AttemptTimeoutError, ConnectError)):
            await sender.connect(0.5)
        assert loop.time() - started < 5.0
        await sender.close()


class Silent(_LoopbackServer):
    """Accepts TCP connections and never says anything."""

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read()  # until the client goes away (or the server is left)


# -- OTLPExporter.connect


@pytest.mark.parametrize(("protocol", "client"), CLIENTS)
async def test_the_exporter_connects_ahead_and_exports_over_that_connection(
    collector: FakeCollector, protocol: str, client: str | None
) -> None:
    relay = await proxied(collector, protocol)
    try:
        config = ExporterConfig.from_env(endpoint=f"http://127.0.0.1:{relay.port}", protocol=protocol)  # type: ignore[arg-type]
        async with OTLPExporter(config=config, grpc_implementation=client) as exporter:  # type: ignore[arg-type]
            assert await exporter.connect(Signal.TRACES) is True
            assert await asyncio.to_thread(relay.wait_for_connections, 1, 5.0)
            assert relay.connections == 1
            assert collector.received == []
            result = await exporter.export_traces([SPAN])
            assert result.accepted == 1
            assert relay.connections == 1
        assert await exporter.connect("traces") is False  # shut down
    finally:
        await relay.__aexit__(None, None, None)


async def test_the_exporter_says_false_quietly_when_it_cannot_connect(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger="aiotlp")
    exporter = OTLPExporter(
        endpoint=f"http://127.0.0.1:{free_port()}", protocol="grpc", headers={"authorization": SECRET}
    )
    try:
        assert await exporter.connect(timeout=2.0) is False
    finally:
        await exporter.shutdown()
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert any("could not connect ahead" in r.getMessage() for r in caplog.records)
    assert "s3cr3t" not in caplog.text


async def test_a_fleet_does_not_connect_ahead(collector: FakeCollector) -> None:
    config = ExporterConfig.from_env(
        endpoint=[collector.grpc_endpoint, f"http://127.0.0.1:{free_port()}"], protocol="grpc"
    )
    async with OTLPExporter(config=config, retry=RetryPolicy(max_attempts=1)) as exporter:
        transport_of = exporter._bind(asyncio.get_running_loop()).stacks[Signal.TRACES].transport
        assert isinstance(transport_of, FleetTransport)
        assert not isinstance(transport_of, Connectable)
        assert await exporter.connect() is False
        assert collector.received == []
