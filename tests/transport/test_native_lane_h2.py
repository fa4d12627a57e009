"""The native lane for OTLP/gRPC (:mod:`aiotlp.transport._lane_h2`, read by :class:`aiotlp.transport.NativeLane`):
unary calls over cleartext HTTP/2 made by native threads, against grpc C-core (FakeCollector's grpcio server), the
h2 server of FakeCollector(grpc_server="h2"), and the scripted h2 server of ``test_h2grpc`` for what neither does
on demand (small windows, RST_STREAM, GOAWAY, PING, a server that never answers).

The lane is driven as the SDK drives it: ``submit`` on the test's thread, ``notify`` handing over to the event loop
(``call_soon_threadsafe``), ``collect`` there. White-box where the C engine's own contract is the point (the kinds,
the header-block memo): ``_lane_h2.Lane`` directly.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import sys
import time
from collections.abc import AsyncIterator, Iterator
from typing import Any

import grpc
import h2.settings
import hyperframe.frame
import pytest
from tests import samples
from tests.transport.test_h2grpc import H2Server, Stream

from aiotlp.config import SignalConfig
from aiotlp.encoding import encode
from aiotlp.export import read_reply
from aiotlp.model import Signal
from aiotlp.testing import FakeCollector, Reply, Rotel
from aiotlp.transport import LANE_CLOSED, SEND_AGAIN, H2GrpcTransport, NativeLane, lane_available, open_lane
from aiotlp.transport._lanes import OK_REPLY
from aiotlp.transport._lanes_grpc import decode_block, header_block

pytestmark = pytest.mark.skipif(
    not sys.platform.startswith("linux") or os.environ.get("AIOTLP_NO_EXTENSIONS", "") not in ("", "0"),
    reason="the native lane is built on Linux, and AIOTLP_NO_EXTENSIONS turns it off",
)

GRPC = "application/grpc"
BODY = encode(Signal.TRACES, samples.spans(6), json=False)


def test_the_grpc_lane_is_built_here() -> None:
    from aiotlp.transport import _lane_h2

    assert lane_available()
    assert _lane_h2.Lane is not None


class Waker:
    """``notify`` for a lane: wakes the test's event loop (as the SDK's lane does, through the loop)."""

    def __init__(self) -> None:
        self.loop = asyncio.get_running_loop()
        self.event = asyncio.Event()
        self.calls = 0

    def __call__(self) -> None:
        self.calls += 1
        self.loop.call_soon_threadsafe(self.event.set)


def transport_for(endpoint: str, **kwargs: Any) -> H2GrpcTransport:
    return H2GrpcTransport(SignalConfig(signal=Signal.TRACES, protocol="grpc", endpoint=endpoint, **kwargs))


async def outcomes(lane: Any, waker: Waker, count: int, timeout: float = 10.0) -> list[tuple[object, Any]]:
    """The next ``count`` outcomes of ``lane`` (a NativeLane or a raw Lane), waiting for them on the loop."""
    got: list[tuple[object, Any]] = []
    deadline = time.monotonic() + timeout
    while True:
        waker.event.clear()
        lane.wake_on_done()
        got += lane.collect()
        if len(got) >= count:
            return got
        left = deadline - time.monotonic()
        assert left > 0, f"only {len(got)} of {count} outcomes within {timeout} s"
        with contextlib.suppress(asyncio.TimeoutError):  # (a wake may be taken by an outcome collected above)
            await asyncio.wait_for(waker.event.wait(), min(left, 0.5))


async def call(lane: NativeLane, waker: Waker, body: bytes = BODY, token: object = "t") -> Any:
    assert lane.submit(body, token)
    [(got, outcome)] = await outcomes(lane, waker, 1)
    assert got == token
    return outcome


def make_lane(endpoint: str, waker: Waker, *, workers: int = 1, timeout: float = 5.0, **kwargs: Any) -> NativeLane:
    lane = open_lane(transport_for(endpoint, **kwargs), workers=workers, timeout=timeout, notify=waker)
    assert lane is not None
    return lane


@contextlib.contextmanager
def lane_on(endpoint: str, **kwargs: Any) -> Iterator[tuple[NativeLane, Waker]]:
    """A lane to ``endpoint`` (``make_lane``'s options), closed after the block."""
    waker = Waker()
    lane = make_lane(endpoint, waker, **kwargs)
    try:
        yield lane, waker
    finally:
        lane.close()


@pytest.fixture(params=["grpcio", "h2"])
async def collector(request: pytest.FixtureRequest) -> AsyncIterator[FakeCollector]:
    async with FakeCollector(grpc_server=request.param) as running:
        yield running


async def test_calls_are_delivered_on_one_kept_connection(collector: FakeCollector) -> None:
    with lane_on(collector.grpc_endpoint) as (lane, waker):
        for n in range(5):
            outcome = await call(lane, waker, encode(Signal.TRACES, samples.spans(3), json=False), n)
            assert outcome.status == 200 and outcome.grpc_status == 0 and outcome.body == b""
        assert lane.connections_made == 1
        assert waker.calls <= 5  # the plain success runs no Python but the wake asked for
    assert len(collector.spans()) == 15


async def test_a_300_kb_request_arrives_whole(collector: FakeCollector) -> None:
    waker = Waker()
    lane = make_lane(collector.grpc_endpoint, waker)
    big = encode(Signal.TRACES, samples.spans(1500), json=False)
    assert len(big) > 300_000
    try:
        outcome = await call(lane, waker, big)
        assert outcome.grpc_status == 0
        assert (await call(lane, waker)).grpc_status == 0  # the windows' accounting held on the same connection
        assert lane.connections_made == 1
    finally:
        lane.close()
    assert len(collector.spans()) == 1506


@pytest.mark.parametrize(
    ("code", "status"), [(grpc.StatusCode.UNAVAILABLE, 14), (grpc.StatusCode.INVALID_ARGUMENT, 3)], ids=["14", "3"]
)
async def test_an_error_status_is_read_as_the_h2_client_reads_it(
    collector: FakeCollector, code: grpc.StatusCode, status: int
) -> None:
    collector.script(Reply(grpc_code=code, message="no, 100% not now"))
    with lane_on(collector.grpc_endpoint) as (lane, waker):
        outcome = await call(lane, waker)
        assert (outcome.status, outcome.grpc_status, outcome.content_type) == (200, status, GRPC)
        assert outcome.grpc_message == "no, 100% not now"  # percent-decoded
        assert (await call(lane, waker)).grpc_status == 0  # and the connection goes on
        assert lane.connections_made == 1


async def test_a_partial_success_is_handed_to_python(collector: FakeCollector) -> None:
    collector.script(Reply(rejected=2, error_message="two bad spans"))
    with lane_on(collector.grpc_endpoint) as (lane, waker):
        outcome = await call(lane, waker)
    partial = read_reply(outcome, GRPC)
    assert (partial.rejected, partial.error_message) == (2, "two bad spans")


@pytest.mark.integration
async def test_calls_through_rotel_arrive_whole() -> None:
    """rotel (Rust: hyper/tonic, 16 KiB frames and windows, Nagle left on): small and 1 MB requests on kept
    connections, everything forwarded to the fake collector."""
    big = encode(Signal.TRACES, samples.spans(5000), json=False)
    assert len(big) > 1_000_000
    async with FakeCollector(grpc_server="h2") as collector, Rotel(forward_to=collector.grpc_endpoint) as rotel:
        with lane_on(rotel.grpc_endpoint, workers=2, max_request_bytes=16 * 1024 * 1024) as (lane, waker):
            for body in (BODY, big, BODY, big):
                outcome = await call(lane, waker, body)
                assert outcome != SEND_AGAIN and outcome.grpc_status == 0, (outcome, rotel.log_text())
            assert lane.connections_made <= 2
        await collector.wait_for(lambda c: len(c.spans()) >= 2 * 5006, timeout=10)


async def test_window_updates_small_windows_and_frames() -> None:
    """The server's stream window of 1000 bytes: the lane waits for each WINDOW_UPDATE; the body arrives intact."""
    body = bytes(range(256)) * 1200  # 300 KiB

    async def handler(stream: Stream) -> None:
        stream.reply()

    settings = {h2.settings.SettingCodes.INITIAL_WINDOW_SIZE: 1000, h2.settings.SettingCodes.MAX_FRAME_SIZE: 16384}
    async with H2Server(handler, settings=settings) as server:
        with lane_on(server.endpoint, max_request_bytes=16 * 1024 * 1024) as (lane, waker):
            assert (await call(lane, waker, body)).grpc_status == 0
            assert (await call(lane, waker, b"second")).grpc_status == 0
    assert [s.message() for s in server.streams] == [body, b"second"]
    assert server.connections == 1
    headers = server.streams[0].headers
    assert headers[":path"] == "/opentelemetry.proto.collector.trace.v1.TraceService/Export"
    assert (headers["content-type"], headers["te"], headers["grpc-timeout"]) == (GRPC, "trailers", "5000m")
    assert headers["grpc-accept-encoding"] == "identity"  # the plain success is an uncompressed reply


async def test_a_ping_is_answered_and_a_trailers_only_status_read() -> None:
    async def handler(stream: Stream) -> None:
        await stream.write_and_ping(b"")  # fails the handler unless the lane answers the PING
        stream.reply(grpc_status=8, grpc_message="slow down", trailers_only=True)

    async with H2Server(handler) as server:
        with lane_on(server.endpoint) as (lane, waker):
            outcome = await call(lane, waker)
    assert (outcome.grpc_status, outcome.grpc_message) == (8, "slow down")


async def test_a_compressed_reply_is_inflated() -> None:
    partial = b"\x08\x05\x12\x03bad"

    async def handler(stream: Stream) -> None:
        stream.reply(message=partial, compress=True)

    async with H2Server(handler) as server:
        with lane_on(server.endpoint) as (lane, waker):
            outcome = await call(lane, waker)
    assert (outcome.grpc_status, outcome.body) == (0, partial)


def _block(headers: list[tuple[bytes, bytes]]) -> bytes:
    from aiotlp.transport._hpack import StaticEncoder  # (no dynamic table: what the lane announced)

    return StaticEncoder().encode(headers)


async def test_continuation_padding_priority_and_unknown_frames_are_read() -> None:
    """A response the h2 library would not write: its header block split over HEADERS and CONTINUATION, padded
    DATA, PRIORITY and an unknown frame type before it; read as the plain success, and the connection kept."""

    async def handler(stream: Stream) -> None:
        sid = stream.stream_id
        head = _block([(b":status", b"200"), (b"content-type", b"application/grpc"), (b"x-pad", b"p" * 40)])
        frames = [
            b"\x00\x00\x03\x20\x00\x00\x00\x00\x00abc",  # type 0x20: unknown, ignored
            hyperframe.frame.PriorityFrame(sid, depends_on=0, stream_weight=16).serialize(),
            hyperframe.frame.HeadersFrame(sid, head[:10]).serialize(),
            hyperframe.frame.ContinuationFrame(sid, head[10:], flags=["END_HEADERS"]).serialize(),
            hyperframe.frame.DataFrame(sid, b"\x00" * 5, flags=["PADDED"], pad_length=7).serialize(),
            hyperframe.frame.HeadersFrame(
                sid, _block([(b"grpc-status", b"0")]), flags=["END_HEADERS", "END_STREAM"]
            ).serialize(),
        ]
        stream.writer.write(b"".join(frames))

    async with H2Server(handler) as server:
        with lane_on(server.endpoint) as (lane, waker):
            for _ in range(2):
                outcome = await call(lane, waker)
                assert (outcome.status, outcome.grpc_status, outcome.body) == (200, 0, b"")
            assert lane.connections_made == 1


async def test_a_complete_response_then_a_no_error_reset_is_the_response() -> None:
    """A server that refuses a call early answers trailers-only, then resets the stream with NO_ERROR (RFC 9113
    8.1): the status is the answer, not a broken call to send again."""

    async def handler(stream: Stream) -> None:
        sid = stream.stream_id
        trailers = _block([(b":status", b"200"), (b"content-type", b"application/grpc"), (b"grpc-status", b"8")])
        stream.writer.write(
            hyperframe.frame.HeadersFrame(sid, trailers, flags=["END_HEADERS", "END_STREAM"]).serialize()
            + hyperframe.frame.RstStreamFrame(sid, error_code=0).serialize()
        )

    async with H2Server(handler) as server:
        with lane_on(server.endpoint) as (lane, waker):
            outcome = await call(lane, waker)
    assert (outcome.status, outcome.grpc_status) == (200, 8)


async def test_a_status_outside_the_trailers_is_no_status() -> None:
    """grpc-status in the response headers, then the message and END_STREAM without trailers: gRPC's clients
    say the call failed (no status); neither the engine nor Python takes it for a success."""

    async def handler(stream: Stream) -> None:
        sid = stream.stream_id
        head = _block([(b":status", b"200"), (b"content-type", b"application/grpc"), (b"grpc-status", b"0")])
        stream.writer.write(
            hyperframe.frame.HeadersFrame(sid, head, flags=["END_HEADERS"]).serialize()
            + hyperframe.frame.DataFrame(sid, b"\x00" * 5, flags=["END_STREAM"]).serialize()
        )

    async with H2Server(handler) as server:
        with lane_on(server.endpoint) as (lane, waker):
            outcome = await call(lane, waker)
    assert outcome is not OK_REPLY
    assert outcome.grpc_status is None  # the exporter reads it as INTERNAL: the stream ended without a status


async def test_a_continuation_on_stream_zero_breaks_the_connection() -> None:
    async def handler(stream: Stream) -> None:
        ok = _block([(b":status", b"200"), (b"content-type", b"application/grpc"), (b"grpc-status", b"0")])
        stream.writer.write(
            b"\x00\x00\x00\x09\x04\x00\x00\x00\x00"  # CONTINUATION, END_HEADERS, stream 0: a connection error
            + hyperframe.frame.HeadersFrame(stream.stream_id, ok, flags=["END_HEADERS", "END_STREAM"]).serialize()
        )

    async with H2Server(handler) as server:
        with lane_on(server.endpoint) as (lane, waker):
            assert await call(lane, waker) == SEND_AGAIN


async def test_a_push_promise_breaks_the_connection_and_the_call_is_sent_again() -> None:
    async def handler(stream: Stream) -> None:
        push = hyperframe.frame.PushPromiseFrame(
            stream.stream_id, promised_stream_id=2, data=_block([(b":method", b"GET")]), flags=["END_HEADERS"]
        )
        stream.writer.write(push.serialize())

    async with H2Server(handler) as server:
        with lane_on(server.endpoint) as (lane, waker):
            assert await call(lane, waker) == SEND_AGAIN


@pytest.mark.parametrize("code", [2, 8])
async def test_a_stream_reset_by_the_server_is_sent_again(code: int) -> None:
    async def handler(stream: Stream) -> None:
        stream.conn.reset_stream(stream.stream_id, code)
        stream.flush()

    async with H2Server(handler) as server:
        with lane_on(server.endpoint) as (lane, waker):
            assert await call(lane, waker) == SEND_AGAIN
    assert len(server.streams) == 1


async def test_a_refused_stream_is_sent_once_more() -> None:
    refused = 0

    async def handler(stream: Stream) -> None:
        nonlocal refused
        if refused == 0:
            refused += 1
            stream.conn.reset_stream(stream.stream_id, 7)  # REFUSED_STREAM: not processed
            stream.flush()
            return
        stream.reply()

    async with H2Server(handler) as server:
        with lane_on(server.endpoint) as (lane, waker):
            assert (await call(lane, waker)).grpc_status == 0
    assert len(server.streams) == 2


async def test_goaway_before_the_call_was_taken_sends_it_on_a_new_connection() -> None:
    first = True

    async def handler(stream: Stream) -> None:
        nonlocal first
        if first:
            first = False
            stream.conn.close_connection(last_stream_id=0)
            stream.flush()
            return
        stream.reply()

    async with H2Server(handler) as server:
        with lane_on(server.endpoint) as (lane, waker):
            assert (await call(lane, waker)).grpc_status == 0
            assert lane.connections_made == 2
    assert server.connections == 2


async def test_a_graceful_goaway_lets_the_call_finish_and_the_next_one_reconnects() -> None:
    async def handler(stream: Stream) -> None:
        goaway = hyperframe.frame.GoAwayFrame(0, last_stream_id=stream.stream_id, error_code=0)
        await stream.write_and_ping(goaway.serialize())
        stream.reply()

    async with H2Server(handler) as server:
        with lane_on(server.endpoint) as (lane, waker):
            for _ in range(2):
                assert (await call(lane, waker)).grpc_status == 0
    assert server.connections == 2


async def test_a_connection_closed_before_the_response_is_sent_again() -> None:
    async def handler(stream: Stream) -> None:
        stream.writer.close()

    async with H2Server(handler) as server:
        with lane_on(server.endpoint) as (lane, waker):
            assert await call(lane, waker) == SEND_AGAIN


async def test_a_refused_connection_is_sent_again() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    with lane_on(f"http://127.0.0.1:{port}") as (lane, waker):
        assert await call(lane, waker) == SEND_AGAIN
        assert lane.connections_made == 0


async def test_an_http1_server_is_a_bad_response_sent_again(collector: FakeCollector) -> None:
    waker = Waker()
    lane = make_lane(collector.http_endpoint, waker)  # the OTLP/HTTP port: "HTTP/1.1 400"
    try:
        assert await call(lane, waker) == SEND_AGAIN
    finally:
        lane.close()


async def test_a_server_that_never_answers_times_out() -> None:
    async def handler(stream: Stream) -> None:
        await asyncio.sleep(3600)

    async with H2Server(handler) as server:
        with lane_on(server.endpoint, timeout=0.3) as (lane, waker):
            started = time.monotonic()
            assert await call(lane, waker) == SEND_AGAIN
            assert time.monotonic() - started < 3


async def test_close_with_a_call_in_flight_collects_it_as_closed() -> None:
    taken = asyncio.Event()

    async def handler(stream: Stream) -> None:
        taken.set()
        await asyncio.sleep(3600)

    async with H2Server(handler) as server:
        waker = Waker()
        lane = make_lane(server.endpoint, waker, timeout=60)
        assert lane.submit(BODY, "in flight")
        await asyncio.wait_for(taken.wait(), 5)  # the server has the call
        started = time.monotonic()
        await asyncio.to_thread(lane.close)
        assert time.monotonic() - started < 5
        assert lane.collect() == [("in flight", LANE_CLOSED)]
        assert lane.closed and not lane.submit(BODY, "late")


async def test_a_forked_child_refuses_the_parents_lane(collector: FakeCollector) -> None:
    with lane_on(collector.grpc_endpoint) as (lane, waker):
        assert (await call(lane, waker)).grpc_status == 0
        pid = os.fork()
        if pid == 0:  # the child: the lane's threads do not exist here
            ok = not lane.submit(BODY, "child") and lane.room == 0 and lane.closed and lane.in_flight == 0
            lane.close()
            os._exit(0 if ok else 1)
        _, status = await asyncio.to_thread(os.waitpid, pid, 0)
        assert os.waitstatus_to_exitcode(status) == 0
        assert (await call(lane, waker)).grpc_status == 0  # the parent's goes on


async def test_the_engine_reads_each_distinct_header_block_once(collector: FakeCollector) -> None:
    """The C engine's contract: the 8-tuple of collect(); decode() called once per distinct response header block
    (HEADER_TABLE_SIZE 0 makes them context-free), the plain success reported as OK with nothing kept."""
    from aiotlp.transport import _lane_h2

    decoded: list[bytes] = []

    def decode(block: bytes) -> tuple[int, int, int] | None:
        decoded.append(block)
        return decode_block(block)

    waker = Waker()
    transport = transport_for(collector.grpc_endpoint)
    host, port = transport._address
    lane = _lane_h2.Lane(
        host,
        port,
        header_block(transport, 5.0),
        workers=2,
        timeout=5.0,
        keepalive=60.0,
        max_response=1 << 20,
        compress=_lane_h2.IDENTITY,
        notify=waker,
        decode=decode,
    )
    try:
        for n in range(6):
            assert lane.submit(BODY, n)
            [(token, kind, status, head, body, errno, elapsed, received)] = await outcomes(lane, waker, 1)
            assert (token, kind, status, head, body, errno, received) == (n, _lane_h2.OK, 200, None, None, 0, 1)
            assert elapsed > 0
        assert 2 <= len(decoded) <= 3  # the headers and the trailers (and, with grpcio, a first block of its own)
        assert len(set(decoded)) == len(decoded)
        # wake_on_done() says whether outcomes wait to be collected already (no notify tells of those)
        waker.event.clear()
        assert lane.submit(BODY, "waiting")
        if not lane.wake_on_done():
            await asyncio.wait_for(waker.event.wait(), 5)
        assert lane.wake_on_done() is True
        assert [outcome[:2] for outcome in lane.collect()] == [("waiting", _lane_h2.OK)]
        assert lane.wake_on_done() is False
        collector.script(Reply(grpc_code=grpc.StatusCode.UNAVAILABLE, message="later"))
        assert lane.submit(BODY, "busy")
        [(token, kind, status, head, body, *_)] = await outcomes(lane, waker, 1)
        assert (token, kind, status) == ("busy", _lane_h2.RESPONSE, 200)
        assert isinstance(head, bytes) and int.from_bytes(head[:4], "big") <= len(head) - 4
        assert body == b""
    finally:
        lane.close()


def test_a_lane_needs_a_header_block_and_callables() -> None:
    from aiotlp.transport import _lane_h2

    def notify() -> None:
        pass

    common: dict[str, Any] = {
        "workers": 1,
        "timeout": 1.0,
        "keepalive": 1.0,
        "max_response": 100,
        "compress": _lane_h2.IDENTITY,
        "notify": notify,
    }
    with pytest.raises(ValueError, match="header block"):
        _lane_h2.Lane("127.0.0.1", 1, b"", decode=decode_block, **common)
    with pytest.raises(ValueError, match="decode"):
        _lane_h2.Lane("127.0.0.1", 1, b"\x83", decode=None, **common)  # type: ignore[arg-type]


def test_no_grpc_lane_for_tls() -> None:
    def notify() -> None:
        pass

    transport = transport_for("https://127.0.0.1:4317")
    assert open_lane(transport, workers=1, timeout=1.0, notify=notify) is None
