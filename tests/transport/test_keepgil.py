"""The bridge's event loop whose non-blocking socket calls keep the GIL (aiotlp.transport._keepgil).

What a user relies on: every byte still goes out and comes back (partial writes, a full socket buffer, the end of
the stream), exports over each client and protocol work on that loop, TLS keeps asyncio's own sockets, and the
switch AIOTLP_NO_EXTENSIONS=1 gives asyncio's plain loop with the same results.
"""

from __future__ import annotations

import asyncio
import hashlib
import importlib.util
import os
import selectors
import socket
import subprocess
import sys
import threading
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import pytest
from tests import samples

from aiotlp.export import OTLPExporter
from aiotlp.testing import FakeCollector
from aiotlp.transport import _keepgil

T = TypeVar("T")

needs_helper = pytest.mark.skipif(
    not _keepgil.AVAILABLE, reason="the compiled helper is not built, or AIOTLP_NO_EXTENSIONS is set"
)


def run_on_keepgil_loop(main: Callable[[], Awaitable[T]]) -> tuple[T, asyncio.AbstractEventLoop]:
    """``main()`` run to its end on a fresh loop of _keepgil.new_event_loop(), in a thread of its own (as the
    bridge runs it); the result and the (closed) loop."""
    loop = _keepgil.new_event_loop()
    out: list[Any] = []

    def run() -> None:
        try:
            out.append(loop.run_until_complete(main()))
        except BaseException as exc:
            out.append(exc)
        finally:
            loop.close()

    thread = threading.Thread(target=run)
    thread.start()
    thread.join(60)
    assert not thread.is_alive()
    if isinstance(out[0], BaseException):
        raise out[0]
    return out[0], loop


# -- the helper on plain sockets ---------------------------------------------------------------------------------


@needs_helper
def test_send_and_recv_keep_every_byte_with_partial_writes() -> None:
    left, right = socket.socketpair()
    with left, right:
        left.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)
        left.setblocking(False)
        right.setblocking(False)
        assert _keepgil.adopt(left) and _keepgil.adopt(right)
        assert isinstance(left, _keepgil.KeepGilSocket)
        payload = os.urandom(1 << 20)
        sent = left.send(payload)
        assert 0 < sent < len(payload)  # a partial write: the buffer is far smaller than the payload
        while True:  # until the buffer is full: then the error asyncio expects, not a hang
            try:
                sent += left.send(memoryview(payload)[sent:])
            except BlockingIOError:
                break
        received = bytearray()
        while len(received) < len(payload):
            try:
                chunk = right.recv(65536)
            except BlockingIOError:
                sent += left.send(memoryview(payload)[sent:])
                continue
            received += chunk
        assert bytes(received) == payload and sent == len(payload)
        with pytest.raises(BlockingIOError):  # nothing to read
            right.recv(10)
        left.shutdown(socket.SHUT_WR)
        assert right.recv(10) == b""  # the end of the stream
        left.close()
        with pytest.raises(OSError, match="Bad file descriptor"):  # a closed socket raises, as socket.send does
            _keepgil.KeepGilSocket.send(left, b"x")


@needs_helper
def test_adopt_takes_only_plain_non_blocking_stream_sockets(pki: dict[str, Any]) -> None:
    import ssl

    blocking = socket.socket()
    datagram = socket.socket(type=socket.SOCK_DGRAM)
    datagram.setblocking(False)
    context = ssl.create_default_context()
    tls = context.wrap_socket(socket.socket(), server_hostname="localhost", do_handshake_on_connect=False)
    tls.setblocking(False)
    with blocking, datagram, tls:
        assert not _keepgil.adopt(blocking)  # a call on it could block: it must release the GIL
        assert not _keepgil.adopt(datagram)
        assert not _keepgil.adopt(tls)  # an SSLSocket's send encrypts: the helper would send plaintext
        assert type(blocking) is socket.socket and type(tls) is ssl.SSLSocket


@needs_helper
def test_zero_timeout_select_reports_what_epoll_reports() -> None:
    left, right = socket.socketpair()
    with left, right, _keepgil.KeepGilSelector() as ours, selectors.EpollSelector() as plain:
        for selector in (ours, plain):
            selector.register(left, selectors.EVENT_READ | selectors.EVENT_WRITE, "left")
            selector.register(right, selectors.EVENT_READ, "right")

        def events(selector: selectors.BaseSelector) -> set[tuple[str, int]]:
            return {(key.data, mask) for key, mask in selector.select(0)}

        assert events(ours) == events(plain) == {("left", selectors.EVENT_WRITE)}
        left.send(b"x")
        assert events(ours) == events(plain) == {("left", selectors.EVENT_WRITE), ("right", selectors.EVENT_READ)}
        left.close()  # a hang-up: readable (end of stream)
        for selector in (ours, plain):
            selector.unregister(left)
        assert events(ours) == events(plain) == {("right", selectors.EVENT_READ)}
        assert ours.select(0.01) == plain.select(0.01)  # a timeout that may block: epoll's own poll


# -- on the loop ---------------------------------------------------------------------------------------------------


async def _echo_through(size: int) -> tuple[str, str, bool]:
    """A server that hashes what it receives and sends it back; the client writes ``size`` bytes at once."""
    payload = os.urandom(size)

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        data = await reader.readexactly(size)
        writer.write(hashlib.sha256(data).hexdigest().encode())
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(serve, "127.0.0.1", 0)
    async with server:
        port = server.sockets[0].getsockname()[1]
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        sock = writer.get_extra_info("socket")
        writer.transport.set_write_buffer_limits(high=1 << 30)  # one write, then asyncio's partial-write path
        writer.write(payload)
        await writer.drain()
        answer = (await reader.read()).decode()
        writer.close()
        await writer.wait_closed()
    adopted = isinstance(getattr(sock, "_sock", sock), _keepgil.KeepGilSocket)
    return answer, hashlib.sha256(payload).hexdigest(), adopted


@pytest.mark.parametrize("size", [1, 300_000, 16 << 20])
def test_a_large_write_arrives_whole(size: int) -> None:
    (answer, expected, adopted), loop = run_on_keepgil_loop(lambda: _echo_through(size))
    assert answer == expected
    assert adopted == _keepgil.AVAILABLE
    assert isinstance(loop, _keepgil.KeepGilEventLoop) == _keepgil.AVAILABLE


@pytest.mark.parametrize("wakeups", [1, 5000])
def test_every_callback_from_another_thread_runs(wakeups: int) -> None:
    """call_soon_threadsafe from other threads wakes the loop through its self-pipe, read keeping the GIL, once
    per wake-up: a burst larger than one read (4096 bytes) is read to the end, and every callback runs."""
    ran: list[int] = []

    async def main() -> list[int]:
        loop = asyncio.get_running_loop()
        done = loop.create_future()

        def call(i: int) -> None:
            ran.append(i)
            if len(ran) == wakeups:
                done.set_result(None)

        def burst() -> None:
            for i in range(wakeups):
                loop.call_soon_threadsafe(call, i)

        threads = [threading.Thread(target=burst)]
        for thread in threads:
            thread.start()
        await asyncio.wait_for(done, 30)
        for thread in threads:
            thread.join()
        last = loop.create_future()  # the pipe still wakes the (idle) loop after the burst
        late = threading.Thread(target=loop.call_soon_threadsafe, args=(last.set_result, None))
        late.start()
        await asyncio.wait_for(last, 30)
        late.join()
        return ran

    result, loop = run_on_keepgil_loop(main)
    assert result == list(range(wakeups))
    assert isinstance(loop, _keepgil.KeepGilEventLoop) == _keepgil.AVAILABLE


def test_a_write_to_a_peer_that_does_not_read_can_be_cancelled() -> None:
    """The socket buffer fills (the helper's send returns short, then raises BlockingIOError): the write waits on
    the loop without blocking it, its wait can be cancelled, and the loop goes on serving other connections."""

    async def main() -> tuple[int, str, str]:
        stalled: list[asyncio.StreamWriter] = []

        async def never_read(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            stalled.append(writer)

        server = await asyncio.start_server(never_read, "127.0.0.1", 0)
        async with server:
            port = server.sockets[0].getsockname()[1]
            _, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.write(b"x" * (64 << 20))
            with pytest.raises(asyncio.TimeoutError):  # the builtin TimeoutError from Python 3.11 on
                await asyncio.wait_for(writer.drain(), 0.5)
            buffered = writer.transport.get_write_buffer_size()
            writer.transport.abort()
            for other in stalled:
                other.transport.abort()
            answer, expected, _ = await _echo_through(100_000)  # the loop still moves bytes
        return buffered, answer, expected

    (buffered, answer, expected), _ = run_on_keepgil_loop(main)
    assert 0 < buffered < 64 << 20  # part was sent, the rest waited in asyncio's buffer
    assert answer == expected


def _exporter(endpoint: str, protocol: str, client: str | None, **options: Any) -> OTLPExporter:
    return OTLPExporter(endpoint=endpoint, protocol=protocol, grpc_implementation=client, timeout=10.0, **options)  # type: ignore[arg-type]


CLIENTS = [("grpc", "h2"), ("grpc", "grpcio"), ("http/protobuf", None)]


@pytest.mark.parametrize(("protocol", "client"), CLIENTS)
def test_exports_over_each_client(protocol: str, client: str | None) -> None:
    async def main() -> tuple[int, int]:
        async with FakeCollector() as collector:
            endpoint = collector.grpc_endpoint if protocol == "grpc" else collector.http_endpoint
            async with _exporter(endpoint, protocol, client) as exporter:
                for _ in range(5):
                    result = await exporter.export_traces(samples.spans(600))
                    assert result.ok, result.error
            return len(collector.spans()), len(collector.requests())

    (spans, requests), _ = run_on_keepgil_loop(main)
    assert (spans, requests) == (3000, 5)


@pytest.mark.parametrize(("protocol", "client"), [("grpc", "h2"), ("http/protobuf", None)])
def test_tls_keeps_asyncios_own_socket(pki: dict[str, Any], protocol: str, client: str | None) -> None:
    adopted: list[bool] = []

    async def main() -> int:
        loop = asyncio.get_running_loop()
        make = loop._make_socket_transport  # type: ignore[attr-defined]

        def watch(sock: Any, *args: Any, **kwargs: Any) -> Any:
            transport = make(sock, *args, **kwargs)
            adopted.append(isinstance(sock, _keepgil.KeepGilSocket))
            return transport

        loop._make_socket_transport = watch  # type: ignore[attr-defined]
        async with FakeCollector(ssl_cert=pki["server_cert"], ssl_key=pki["server_key"]) as collector:
            endpoint = collector.grpc_endpoint if protocol == "grpc" else collector.http_endpoint
            async with _exporter(endpoint, protocol, client, certificate_file=pki["ca"]) as exporter:
                result = await exporter.export_traces(samples.spans(600))
                assert result.ok, result.error
            return len(collector.spans())

    spans, _ = run_on_keepgil_loop(main)
    assert spans == 600
    assert adopted == []  # a TLS connection's transport is not made by _make_socket_transport: never adopted


# -- the switch and the bridge ---------------------------------------------------------------------------------


def test_the_bridge_runs_the_keepgil_loop() -> None:
    from aiotlp.sdk._bridge import Bridge

    bridge = Bridge()
    try:
        assert isinstance(bridge.loop(), _keepgil.KeepGilEventLoop) == _keepgil.AVAILABLE
    finally:
        bridge.stop(5.0)


def test_another_event_loop_policy_is_kept() -> None:
    """An application that installed its own policy (uvloop's, say) gets that policy's loop on the bridge."""

    class TheApplicationsLoop(asyncio.SelectorEventLoop):
        pass

    class Policy(asyncio.DefaultEventLoopPolicy):
        def new_event_loop(self) -> asyncio.AbstractEventLoop:
            return TheApplicationsLoop()

    previous = asyncio.get_event_loop_policy()
    asyncio.set_event_loop_policy(Policy())
    try:
        loop = _keepgil.new_event_loop()
        try:
            assert type(loop) is TheApplicationsLoop
        finally:
            loop.close()
    finally:
        asyncio.set_event_loop_policy(previous)
    loop = _keepgil.new_event_loop()
    loop.close()
    assert isinstance(loop, _keepgil.KeepGilEventLoop) == _keepgil.AVAILABLE


# An SDK app in a child process: 2,000 spans (within the queue of 2,048: none dropped while the connection opens)
# to an in-process collector, then what the bridge ran and how many spans arrived. `prelude` runs first.
_SDK_APP = """
import sys
from aiotlp.testing import CollectorThread
from aiotlp.transport import _keepgil
from aiotlp.sdk import BatchSpanProcessor, SpanExporter
from aiotlp.sdk._bridge import get_bridge
from opentelemetry.sdk.trace import TracerProvider

with CollectorThread() as collector:
    protocol = sys.argv[1]
    endpoint = collector.grpc_endpoint if protocol == "grpc" else collector.http_endpoint + "/v1/traces"
    provider = TracerProvider()
    provider.add_span_processor(BatchSpanProcessor(SpanExporter(endpoint, protocol=protocol)))
    tracer = provider.get_tracer("t")
    for i in range(2000):
        with tracer.start_as_current_span(f"s{i}"):
            pass
    loop = get_bridge().loop()
    provider.shutdown()
    print(_keepgil.AVAILABLE, type(loop).__name__, type(loop._selector).__name__, len(collector.spans()))
"""


def _run_sdk_app(protocol: str, prelude: str = "", **env: str) -> list[str]:
    out = subprocess.run(
        [sys.executable, "-c", prelude + _SDK_APP, protocol],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 0, out.stderr
    return out.stdout.split()


@pytest.mark.parametrize("protocol", ["grpc", "http/protobuf"])
@pytest.mark.parametrize("switch", ["1", "0"])
def test_no_extensions_gives_asyncios_loop_and_the_same_exports(switch: str, protocol: str) -> None:
    """AIOTLP_NO_EXTENSIONS=1: the bridge runs asyncio's own loop (the fallback), and an SDK app's spans arrive."""
    available, loop, selector, spans = _run_sdk_app(protocol, AIOTLP_NO_EXTENSIONS=switch)
    assert spans == "2000"
    built = importlib.util.find_spec("aiotlp.transport._holdgil") is not None
    if switch == "1" or not built:
        assert (available, loop, selector) == ("False", "_UnixSelectorEventLoop", "EpollSelector")
    else:
        assert (available, loop, selector) == ("True", "KeepGilEventLoop", "KeepGilSelector")


@pytest.mark.parametrize("protocol", ["grpc", "http/protobuf"])
def test_without_epoll_aiotlp_imports_and_exports(protocol: str) -> None:
    """A platform without epoll (macOS, the BSDs): aiotlp imports, the helper is off, the bridge runs asyncio's
    own loop on that platform's selector, and an SDK app's spans arrive. (The selector's class was once defined on
    ``selectors.EpollSelector`` unconditionally: ``import aiotlp`` raised AttributeError there.)"""
    prelude = "import selectors\ndel selectors.EpollSelector\nselectors.DefaultSelector = selectors.PollSelector\n"
    assert _run_sdk_app(protocol, prelude) == ["False", "_UnixSelectorEventLoop", "PollSelector", "2000"]
