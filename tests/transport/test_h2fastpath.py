"""The h2 client's receive fast path (``Connection._receive``) against h2's own ``receive_data``.

Differential and white-box, on purpose: each scenario drives two client connections (the fast path on, and off)
with the same server, a server-side ``h2`` connection whose bytes reach the client in a chosen split (one read,
byte by byte, seeded random cuts). Both clients must resolve every call the same way, write the same bytes (the
WINDOW_UPDATEs, PING answers, RST_STREAMs and GOAWAY they send), and end in the same h2 state: connection and
stream states, both flow-control windows of the connection and of every stream, the HPACK decoder's table.
Each scenario also says whether the fast path took frames, and the refusal cases check that what it must refuse
(padding, PRIORITY, CONTINUATION, frames it does not know) went to h2.
"""

from __future__ import annotations

import asyncio
import gzip
import random
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import h2.config
import h2.connection
import h2.events
import h2.settings
import pytest
from h2.errors import ErrorCodes

from aiotlp.transport._base import Reply
from aiotlp.transport._h2connection import Connection
from aiotlp.transport._h2fast import AVAILABLE as _FAST_RECEIVE

pytestmark = pytest.mark.skipif(not _FAST_RECEIVE, reason="the installed h2 lacks the internals the fast path uses")

HEADERS = [
    (b":method", b"POST"),
    (b":scheme", b"http"),
    (b":path", b"/opentelemetry.proto.collector.trace.v1.TraceService/Export"),
    (b":authority", b"127.0.0.1:4317"),
    (b"content-type", b"application/grpc"),
    (b"te", b"trailers"),
]


class FakeTransport:
    """An asyncio transport that keeps what the client writes."""

    def __init__(self) -> None:
        self.written = bytearray()
        self.closed = False

    def write(self, data: Any) -> None:
        self.written += data

    def is_closing(self) -> bool:
        return self.closed

    def close(self) -> None:
        self.closed = True

    def abort(self) -> None:
        self.closed = True

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return default


Split = Callable[[bytes], Iterator[bytes]]


def whole(data: bytes) -> Iterator[bytes]:
    yield data


def bytewise(data: bytes) -> Iterator[bytes]:
    for i in range(len(data)):
        yield data[i : i + 1]


def random_cuts(seed: int) -> Split:
    def split(data: bytes) -> Iterator[bytes]:
        rng = random.Random(seed)
        position = 0
        while position < len(data):
            step = rng.choice((1, 2, 5, 9, 10, 17, 64, 1000))
            yield data[position : position + step]
            position += step

    return split


SPLITS: dict[str, Split] = {"whole": whole, "bytewise": bytewise, "random1": random_cuts(1), "random2": random_cuts(2)}


@dataclass
class Client:
    """One client connection and what it did."""

    fast: bool
    transport: FakeTransport = field(default_factory=FakeTransport)
    connection: Connection | None = None
    h2_reads: int = 0  # reads (or rests of reads) handed to h2's receive_data
    outcomes: list[str] = field(default_factory=list)
    sent: bytearray = field(default_factory=bytearray)  # every byte the client wrote, in order

    limit: int = 4 * 1024 * 1024

    def start(self, loop: asyncio.AbstractEventLoop) -> None:
        connection = Connection(loop, "the test server", self.limit)
        connection.fast_receive = connection.fast_send = self.fast
        receive = connection._h2.receive_data

        def counting(data: Any) -> Any:
            self.h2_reads += 1
            return receive(data)

        connection._h2.receive_data = counting  # type: ignore[method-assign]
        connection.connection_made(self.transport)  # type: ignore[arg-type]
        self.connection = connection

    def take_written(self) -> bytes:
        data = bytes(self.transport.written)
        self.transport.written.clear()
        self.sent += data
        return data

    def state(self) -> dict[str, Any]:
        assert self.connection is not None
        h2c = self.connection._h2
        streams = {
            stream_id: (
                vars(stream.state_machine),  # state, client, headers/trailers sent and received, closed by
                stream.outbound_flow_control_window,
                stream.inbound_flow_control_window,
                vars(stream._inbound_window_manager),
                stream._actual_content_length,
                stream._expected_content_length,
                stream._authority,
                stream.request_method,
                stream.max_outbound_frame_size,
            )
            for stream_id, stream in h2c.streams.items()
        }
        return {
            "connection": h2c.state_machine.state,
            "outbound": h2c.outbound_flow_control_window,
            "inbound": h2c.inbound_flow_control_window,
            "inbound manager": vars(h2c._inbound_flow_control_window_manager),
            "streams": streams,
            "closed streams": dict(h2c._closed_streams),
            "hpack": (h2c.decoder.header_table.maxsize, tuple(h2c.decoder.header_table.dynamic_entries)),
            "highest stream": (h2c.highest_outbound_stream_id, h2c.highest_inbound_stream_id),
            "queued": bytes(h2c._data_to_send),
            "usable": self.connection.usable,
            "calls": sorted(self.connection._calls),
        }


class Server:
    """A server-side h2 connection; every client gets the same bytes from it (it is built anew per client)."""

    def __init__(self, settings: dict[int, int] | None = None) -> None:
        config = h2.config.H2Configuration(client_side=False, header_encoding=None)
        self.h2 = h2.connection.H2Connection(config=config)
        self.h2.local_settings = h2.settings.Settings(client=False, initial_values=settings or {})
        self.h2.initiate_connection()
        self.requests: list[int] = []

    def receive(self, data: bytes) -> None:
        for event in self.h2.receive_data(data):
            if isinstance(event, h2.events.DataReceived) and event.flow_controlled_length:
                self.h2.acknowledge_received_data(event.flow_controlled_length, event.stream_id)
            elif isinstance(event, h2.events.RequestReceived):
                self.requests.append(event.stream_id)

    def out(self) -> bytes:
        return self.h2.data_to_send()


def message(payload: bytes) -> bytes:
    return b"\x00" + len(payload).to_bytes(4, "big") + payload


# A reply script: (server, the stream of the call) -> the server's bytes, written through its h2 connection.
Script = Callable[[Server, int], None]


def ok_reply(payload: bytes = b"", **trailers: str) -> Script:
    def script(server: Server, stream_id: int) -> None:
        server.h2.send_headers(stream_id, [(b":status", b"200"), (b"content-type", b"application/grpc")])
        framed = message(payload)
        for start in range(0, len(framed), 16384):
            server.h2.send_data(stream_id, framed[start : start + 16384])
        extra = [(name.replace("_", "-").encode(), value.encode()) for name, value in trailers.items()]
        server.h2.send_headers(stream_id, [(b"grpc-status", b"0"), *extra], end_stream=True)

    return script


async def run(
    scripts: list[Script],
    split: Split,
    *,
    fast: bool,
    body: bytes = b"\x0a\x00",
    limit: int = 4 * 1024 * 1024,
    headers: Callable[[int], list[tuple[bytes, bytes]]] = lambda _: list(HEADERS),
) -> Client:
    """Each script answers one call, in turn, on one connection; what reaches the client is cut by ``split``."""
    loop = asyncio.get_running_loop()
    client = Client(fast, limit=limit)
    client.start(loop)
    server = Server()
    server.receive(client.take_written())
    for chunk in split(server.out()):
        client.connection.data_received(chunk)  # type: ignore[union-attr]
    server.receive(client.take_written())  # the SETTINGS ack
    for script in scripts:
        assert client.connection is not None
        if not client.connection.usable:
            client.outcomes.append("not usable")
            break
        deadline = loop.time() + 30
        task = asyncio.ensure_future(client.connection.unary(headers(len(client.outcomes)), body, False, deadline, 30))
        for _ in range(3):
            await asyncio.sleep(0)
        server.receive(client.take_written())
        script(server, server.requests[-1])
        for chunk in split(server.out()):
            client.connection.data_received(chunk)
            server.receive(client.take_written())
        for _ in range(3):
            await asyncio.sleep(0)
        if not task.done():
            task.cancel()
        try:
            reply: Reply | str = await task
        except asyncio.CancelledError:
            reply = "no answer"
        except Exception as exc:
            reply = f"{type(exc).__name__}: {exc}"
        client.outcomes.append(repr(reply))
        server.receive(client.take_written())
    return client


async def same(scripts: list[Script], split: Split, **kwargs: Any) -> tuple[Client, Client]:
    """Run ``scripts`` with the fast path and without: assert both clients did and wrote the same."""
    fast = await run(scripts, split, fast=True, **kwargs)
    slow = await run(scripts, split, fast=False, **kwargs)
    assert fast.outcomes == slow.outcomes
    assert fast.sent == slow.sent
    assert fast.state() == slow.state()
    return fast, slow


@pytest.mark.parametrize("body", [2, 40_000], ids=["one-frame-body", "three-frame-body"])
@pytest.mark.parametrize("split", list(SPLITS), ids=list(SPLITS))
async def test_many_exports_read_alike_and_the_windows_match_h2s_own(split: str, body: int) -> None:
    # 200 replies of 2 KiB: the client's inbound windows are used up several times over (it must send
    # WINDOW_UPDATEs at the same points), and the server's HPACK table fills on the first reply; requests of
    # 40 KB use up the client's outbound windows as often (the server's WINDOW_UPDATEs come with its replies)
    scripts = [ok_reply(bytes([i % 251]) * 2048) for i in range(200)]
    fast, slow = await same(scripts, SPLITS[split], body=b"\x0a" * body)
    assert all("grpc_status=0" in outcome and "status=200" in outcome for outcome in fast.outcomes)
    assert fast.state()["inbound"] == slow.state()["inbound"]
    if split == "whole":
        assert fast.h2_reads == 1  # the server's SETTINGS, at the start; every reply on the fast path
        assert slow.h2_reads > 200


async def test_a_large_reply_split_across_reads_and_frames() -> None:
    scripts = [ok_reply(bytes(range(256)) * 80) for _ in range(6)]  # 20 KiB: two DATA frames each
    for split in SPLITS.values():
        await same(scripts, split)


async def test_trailers_only_replies() -> None:
    def trailers_only(server: Server, stream_id: int) -> None:
        server.h2.send_headers(
            stream_id,
            [
                (b":status", b"200"),
                (b"content-type", b"application/grpc"),
                (b"grpc-status", b"14"),
                (b"grpc-message", b"busy%20now"),
            ],
            end_stream=True,
        )

    fast, _ = await same([trailers_only, ok_reply(b"x"), trailers_only], whole)
    assert "grpc_status=14" in fast.outcomes[0] and "busy now" in fast.outcomes[0]


async def test_headers_that_change_the_hpack_table_every_time() -> None:
    # a new grpc-message value each time: the server indexes each, the table changes with every reply, and a
    # remembered header block must never be read against another table
    def varying(i: int) -> Script:
        def script(server: Server, stream_id: int) -> None:
            server.h2.send_headers(stream_id, [(b":status", b"200"), (b"content-type", b"application/grpc")])
            server.h2.send_data(stream_id, message(b""))
            server.h2.send_headers(
                stream_id, [(b"grpc-status", b"%d" % (i % 3 * 7)), (b"grpc-message", b"m%d" % (i % 4))], end_stream=True
            )

        return script

    fast, _ = await same([varying(i) for i in range(60)], whole)
    assert [("grpc_status=7" in o) for o in fast.outcomes[:3]] == [False, True, False]


async def test_a_remembered_header_block_is_forgotten_when_the_hpack_table_changes() -> None:
    # each content-type twice: inserted into the table, then sent as a reference to the newest entry; that second
    # block (:status 200 from the static table, then the newest entry) is the same bytes for every value, and
    # means another content-type each time
    def twice(i: int) -> Script:
        def script(server: Server, stream_id: int) -> None:
            kind = b"application/grpc+v%d" % (i // 2)
            server.h2.send_headers(stream_id, [(b":status", b"200"), (b"content-type", kind)])
            server.h2.send_data(stream_id, message(b""))
            server.h2.send_headers(stream_id, [(b"grpc-status", b"0")], end_stream=True)

        return script

    fast, _ = await same([twice(i) for i in range(12)], whole)
    assert [o.split("content_type=")[1].split(",")[0] for o in fast.outcomes] == [
        repr(f"application/grpc+v{i // 2}") for i in range(12)
    ]


@pytest.mark.parametrize("split", ["whole", "bytewise"])
async def test_rst_stream_goes_to_h2(split: str) -> None:
    def reset(server: Server, stream_id: int) -> None:
        server.h2.reset_stream(stream_id, ErrorCodes.REFUSED_STREAM)

    def headers_then_reset(server: Server, stream_id: int) -> None:
        server.h2.send_headers(stream_id, [(b":status", b"200"), (b"content-type", b"application/grpc")])
        server.h2.reset_stream(stream_id, ErrorCodes.INTERNAL_ERROR)

    fast, _ = await same([reset, ok_reply(), headers_then_reset, ok_reply()], SPLITS[split])
    assert "grpc_status=14" in fast.outcomes[0] and "REFUSED_STREAM" in fast.outcomes[0]
    assert "INTERNAL_ERROR" in fast.outcomes[2]


async def test_goaway_after_a_reply_and_before_one() -> None:
    def goaway_after(server: Server, stream_id: int) -> None:
        ok_reply(b"a")(server, stream_id)
        server.h2.close_connection(last_stream_id=stream_id)

    def goaway_before(server: Server, stream_id: int) -> None:
        server.h2.close_connection(last_stream_id=stream_id - 2)

    for split in SPLITS.values():
        fast, _ = await same([ok_reply(), goaway_after, ok_reply()], split)
        assert fast.outcomes[-1] == "not usable"
        fast, _ = await same([ok_reply(), goaway_before], split)
        assert "GOAWAY" in fast.outcomes[-1]


async def test_window_update_and_ping_between_the_frames_of_a_reply() -> None:
    def interleaved(server: Server, stream_id: int) -> None:
        server.h2.ping(b"12345678")
        server.h2.send_headers(stream_id, [(b":status", b"200"), (b"content-type", b"application/grpc")])
        server.h2.increment_flow_control_window(1000)
        server.h2.increment_flow_control_window(77, stream_id=stream_id)
        server.h2.send_data(stream_id, message(b"partial"))
        server.h2.ping(b"abcdefgh")
        server.h2.update_settings({h2.settings.SettingCodes.MAX_FRAME_SIZE: 32768})
        server.h2.send_headers(stream_id, [(b"grpc-status", b"0")], end_stream=True)

    for split in SPLITS.values():
        fast, _ = await same([interleaved] * 5, split)
        assert all("grpc_status=0" in o for o in fast.outcomes)


async def test_padding_priority_and_continuation_go_to_h2() -> None:
    def padded(server: Server, stream_id: int) -> None:
        server.h2.send_headers(stream_id, [(b":status", b"200"), (b"content-type", b"application/grpc")])
        server.h2.send_data(stream_id, message(b"padded"), pad_length=9)
        server.h2.send_headers(stream_id, [(b"grpc-status", b"0")], end_stream=True)

    def priority(server: Server, stream_id: int) -> None:
        # h2 will not send PRIORITY as a server: the reply is framed here (its HPACK through the server's encoder)
        def frame(kind: int, flags: int, payload: bytes) -> bytes:
            return len(payload).to_bytes(3, "big") + bytes((kind, flags)) + stream_id.to_bytes(4, "big") + payload

        block = server.h2.encoder.encode([(b":status", b"200"), (b"content-type", b"application/grpc")])
        trailers = server.h2.encoder.encode([(b"grpc-status", b"0")])
        server.h2._data_to_send += (
            frame(0x1, 0x24, b"\x00\x00\x00\x00\x0a" + block)  # END_HEADERS | PRIORITY: no dependency, weight 11
            + frame(0x0, 0x0, message(b"p"))
            + frame(0x1, 0x5, trailers)
        )

    def continuation(server: Server, stream_id: int) -> None:
        # trailers larger than the 16 KiB frame: a HEADERS frame without END_HEADERS and CONTINUATION
        server.h2.send_headers(stream_id, [(b":status", b"200"), (b"content-type", b"application/grpc")])
        server.h2.send_data(stream_id, message(b"c"))
        server.h2.send_headers(stream_id, [(b"grpc-status", b"3"), (b"grpc-message", b"x" * 40000)], end_stream=True)

    for script in (padded, priority, continuation):
        fast, slow = await same([ok_reply(), script, ok_reply()], whole)
        assert fast.h2_reads == 2 and slow.h2_reads == 4  # the SETTINGS, and the refused reply
    assert "grpc_status=3" in fast.outcomes[1]


async def test_a_reply_on_a_stream_the_client_reset() -> None:
    # the caller gives up (the stream is reset with CANCEL); the server's late reply lands on a closed stream
    loop = asyncio.get_running_loop()
    states = []
    for fast in (True, False):
        client = Client(fast)
        client.start(loop)
        server = Server()
        server.receive(client.take_written())
        assert client.connection is not None
        client.connection.data_received(server.out())
        server.receive(client.take_written())
        task = asyncio.ensure_future(client.connection.unary(list(HEADERS), b"\x0a\x00", False, loop.time() + 30, 30))
        for _ in range(3):
            await asyncio.sleep(0)
        server.receive(client.take_written())
        stream_id = server.requests[-1]
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        ok_reply(b"late" * 100)(server, stream_id)
        client.connection.data_received(server.out())
        server.receive(client.take_written())
        states.append((client.state(), bytes(client.transport.written)))
    assert states[0] == states[1]


async def test_a_flow_control_violation_ends_the_connection_as_h2_does() -> None:
    # the server sends more DATA than the client's stream window allows: FLOW_CONTROL_ERROR, GOAWAY written
    def flood(server: Server, stream_id: int) -> None:
        server.h2.send_headers(stream_id, [(b":status", b"200"), (b"content-type", b"application/grpc")])
        frame = b"\x00\x40\x00\x00\x00" + stream_id.to_bytes(4, "big")  # DATA, 16 KiB, no flags
        server.h2._data_to_send += (frame + bytes(16384)) * 5  # past the 65,535-byte window

    written = []
    for fast in (True, False):
        client = await run([flood], whole, fast=fast)
        assert "broke the HTTP/2 protocol" in client.outcomes[0]
        written.append(client.state()["connection"])
    assert written[0] == written[1]


def gzip_reply(payload: bytes) -> Script:
    def script(server: Server, stream_id: int) -> None:
        compressed = gzip.compress(payload, mtime=0)
        server.h2.send_headers(
            stream_id, [(b":status", b"200"), (b"content-type", b"application/grpc"), (b"grpc-encoding", b"gzip")]
        )
        server.h2.send_data(stream_id, b"\x01" + len(compressed).to_bytes(4, "big") + compressed)
        server.h2.send_headers(stream_id, [(b"grpc-status", b"0")], end_stream=True)

    return script


async def test_small_compressed_replies_read_again_inflate_as_themselves() -> None:
    # a collector compresses the same small reply the same way every time: inflated once, remembered; others
    # (and the same bytes again after them) each read as themselves
    payloads = [b"", b"", b"\x12\x04abcd", b"", b"\x12\x04abcd", b"x" * 300, b"x" * 300, b""]
    client = await run([gzip_reply(p) for p in payloads], whole, fast=True)
    assert [o.split("body=")[1].split(", content_type")[0] for o in client.outcomes] == [repr(p) for p in payloads]


async def test_a_small_compressed_reply_over_the_limit_is_refused_every_time() -> None:
    # 200 zero bytes gzip to ~30: over a 100-byte limit once inflated, and never remembered
    client = await run([gzip_reply(bytes(200))] * 3, whole, fast=True, limit=100)
    assert len(client.outcomes) == 3
    assert all("ResponseError" in o and "larger than 100 bytes" in o for o in client.outcomes), client.outcomes


@pytest.mark.parametrize(("version", "fast"), [("4.4.1", True), ("4.4.9", True), ("4.3.0", False), ("4.5.0", False)])
def test_the_fast_paths_run_only_on_the_h2_releases_they_were_checked_against(
    monkeypatch: pytest.MonkeyPatch, version: str, fast: bool
) -> None:
    import h2

    from aiotlp.transport import _h2fast

    monkeypatch.setattr(h2, "__version__", version)
    assert _h2fast._h2_has_fast_path_internals() is fast


def reply_with(headers: list[tuple[bytes, bytes]], payload: bytes = b"", *, trailers: bool = True) -> Script:
    """A reply with these response headers; the stream ends on the trailers, or on the DATA without them."""

    def script(server: Server, stream_id: int) -> None:
        server.h2.send_headers(stream_id, headers)
        server.h2.send_data(stream_id, message(payload), end_stream=not trailers)
        if trailers:
            server.h2.send_headers(stream_id, [(b"grpc-status", b"0")], end_stream=True)

    return script


async def test_replies_with_a_content_length_are_tracked_as_h2_tracks_them() -> None:
    # right (ended by the trailers, or by the DATA frame), then wrong or unreadable: h2 ends the connection
    base = [(b":status", b"200"), (b"content-type", b"application/grpc")]
    right = [
        reply_with([*base, (b"content-length", b"8")], b"abc"),
        reply_with([*base, (b"content-length", b"6")], b"a", trailers=False),
        ok_reply(b"after"),
    ]
    for wrong in (b"3", b"x8"):
        for split in SPLITS.values():
            fast, _ = await same([*right, reply_with([*base, (b"content-length", wrong)], b"abc")], split)
            assert "grpc_status=0" in fast.outcomes[0] and "grpc_status=0" in fast.outcomes[2]
            assert "grpc_status=None" in fast.outcomes[1]  # (no trailers: no status)
            assert "broke the HTTP/2 protocol" in fast.outcomes[3]


async def test_a_reply_that_ends_on_its_data_frame() -> None:
    # no trailers: the stream ends on the DATA frame's END_STREAM (a status-less reply)
    base = [(b":status", b"200"), (b"content-type", b"application/grpc")]
    for split in SPLITS.values():
        fast, _ = await same([reply_with(base, b"x", trailers=False), ok_reply(b"y")] * 3, split)
        assert "grpc_status=None" in fast.outcomes[0] and "grpc_status=0" in fast.outcomes[1]


async def test_informational_headers_and_trailers_without_end_stream_go_as_in_h2() -> None:
    def informational(server: Server, stream_id: int) -> None:
        # a 100 (Continue) ahead of the response: h2 frames it itself
        block = server.h2.encoder.encode([(b":status", b"100")])
        server.h2._data_to_send += len(block).to_bytes(3, "big") + b"\x01\x04" + stream_id.to_bytes(4, "big") + block
        ok_reply(b"after 100")(server, stream_id)

    def open_trailers(server: Server, stream_id: int) -> None:
        # trailers without END_STREAM: h2 ends the connection (a protocol error)
        server.h2.send_headers(stream_id, [(b":status", b"200"), (b"content-type", b"application/grpc")])
        server.h2.send_data(stream_id, message(b"x"))
        block = server.h2.encoder.encode([(b"grpc-status", b"0")])
        server.h2._data_to_send += len(block).to_bytes(3, "big") + b"\x01\x04" + stream_id.to_bytes(4, "big") + block

    for split in SPLITS.values():
        fast, _ = await same([ok_reply(), informational, ok_reply()], split)
        assert "after 100" in fast.outcomes[1]
        fast, _ = await same([ok_reply(), open_trailers, ok_reply()], split)
        assert "broke the HTTP/2 protocol" in fast.outcomes[1]


async def test_request_headers_that_change_from_call_to_call_are_sent_as_h2_sends_them() -> None:
    # grpc-timeout changes, then stays, then changes back; the encoding (and the custom metadata) too
    def headers(call: int) -> list[tuple[bytes, bytes]]:
        timeout = (b"1500m", b"900m", b"900m", b"900m", b"1500m", b"7S")[call % 6]
        extra = [(b"grpc-encoding", b"gzip")] if call % 4 == 3 else []
        return [*HEADERS, (b"grpc-timeout", timeout), *extra, (b"x-call", b"%d" % (call // 5))]

    for split in (whole, bytewise):
        fast, _ = await same([ok_reply(b"r")] * 24, split, headers=headers)
        assert all("grpc_status=0" in outcome for outcome in fast.outcomes)


@pytest.mark.parametrize(
    "entry",
    ["stream: receiving headers", "stream: ending", "connection: receiving data"],
)
def test_the_fast_paths_turn_off_when_h2s_transitions_differ(monkeypatch: pytest.MonkeyPatch, entry: str) -> None:
    import h2.stream

    from aiotlp.transport import _h2fast

    assert _h2fast._h2_has_fast_path_internals()
    stream_table = dict(h2.stream._transitions)
    connection_table = dict(h2.connection.H2ConnectionStateMachine._transitions)
    if entry == "stream: receiving headers":
        key = (h2.stream.StreamState.HALF_CLOSED_LOCAL, h2.stream.StreamInputs.RECV_HEADERS)
        stream_table[key] = (h2.stream.H2StreamStateMachine.data_received, key[0])
    elif entry == "stream: ending":
        key = (h2.stream.StreamState.OPEN, h2.stream.StreamInputs.SEND_END_STREAM)
        stream_table[key] = (h2.stream.H2StreamStateMachine.send_end_stream, h2.stream.StreamState.HALF_CLOSED_LOCAL)
    else:
        state = h2.connection.ConnectionState.CLIENT_OPEN
        connection_table[(state, h2.connection.ConnectionInputs.RECV_DATA)] = (lambda *_: [], state)
    monkeypatch.setattr(h2.stream, "_transitions", stream_table)
    monkeypatch.setattr(h2.connection.H2ConnectionStateMachine, "_transitions", connection_table)
    assert _h2fast._h2_has_fast_path_internals() is False
