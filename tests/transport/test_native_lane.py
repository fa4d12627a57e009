"""The native lane (the C extension ``aiotlp.transport._lane``) through its wrapper
:class:`aiotlp.transport._lanes.NativeLane`, against small asyncio servers on 127.0.0.1:0 written here, which
record the raw requests and answer with scripted raw HTTP/1.1 bytes.

Covered: the request on the wire (head, ``Content-Length``, body; a 300 KB body); plain successes and keep-alive
reuse; replies (an error status with a body, ``Retry-After``, a partial success, gzip, chunked with a trailer,
interim 1xx, read to close); ``Connection: close`` and HTTP/1.0; a server closing an idle connection (noticed
before reuse, or as the request is sent: once more on a new connection, and only then); what is handed back as
SEND_AGAIN (refused, a timeout, HTTP/2, too large, not HTTP); an answer before the whole body was written;
``room`` and ``in_flight``; ``preconnect()``; ``close()`` with a request in flight or queued, from two threads at
once, from inside ``notify``; when ``notify`` is called; a fork; bad arguments; :func:`open_lane` and
:func:`close_all`.

Nothing sleeps to wait: ``notify`` hands over to the loop (``loop.call_soon_threadsafe``) and ``wake_on_done()``
asks for it after a plain success too; every wait is bounded (:data:`WAIT`), so a bug fails instead of hanging.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import gzip
import json
import math
import os
import signal
import socket
import subprocess
import sys
import textwrap
import threading
import time
import traceback
import warnings
import weakref
import zlib
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from typing import Any, TypeVar

import pytest

from aiotlp.config import SignalConfig
from aiotlp.model import Signal
from aiotlp.transport import IDENTITY, HttpTransport, Reply, lane_compresses
from aiotlp.transport._lanes import CLOSED, OK_REPLY, SEND_AGAIN, LaneOutcome, NativeLane, close_all, open_lane

try:
    from aiotlp.transport import _lane
    from aiotlp.transport._lane import Lane
except ImportError:  # pragma: no cover - built on Linux only
    pytest.skip("the native lane (aiotlp.transport._lane) is not built here", allow_module_level=True)

T = TypeVar("T")
RawOutcome = tuple[object, int, int, "bytes | None", "bytes | None", int, float, int]

WAIT = 10.0
"""Seconds any one wait in these tests may take before the test fails."""

HEAD = b"POST /v1/traces HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/x-protobuf\r\n"
MAX_RESPONSE = 4 * 1024 * 1024

OK = b"HTTP/1.1 200 OK\r\nContent-Type: application/x-protobuf\r\nContent-Length: 0\r\n\r\n"
STATUS_BODY = b"\x08\x03\x12\x04nope"  # a google.rpc.Status: code 3, message "nope"
PARTIAL = b"\x0a\x08\x08\x02\x12\x04half"  # ExportTraceServiceResponse{partial_success{rejected_spans: 2, "half"}}
HTTP2_SETTINGS = b"\x00\x00\x00\x04\x00\x00\x00\x00\x00"
HTTP2_GOAWAY = b"\x00\x00\x08\x07\x00\x00\x00\x00\x00" + b"\x00\x00\x00\x00\x00\x00\x00\x01"


def wire(body: bytes, head: bytes = HEAD) -> bytes:
    """The request the lane must send for ``body``."""
    return head + b"Content-Length: %d\r\n\r\n" % len(body) + body


def response(status: str, *headers: str, body: bytes = b"", length: bool = True, version: str = "1.1") -> bytes:
    lines = [f"HTTP/{version} {status}", *headers]
    if length:
        lines.append(f"Content-Length: {len(body)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body


# -- the server


class Conn:
    """One accepted connection, as a handler sees it."""

    def __init__(self, server: Server, index: int, reader: asyncio.StreamReader, writer: asyncio.StreamWriter):
        self.server = server
        self.index = index  # 1 for the server's first connection
        self.reader = reader
        self.writer = writer

    async def read_request(self) -> bytes | None:
        """The next raw request (head and Content-Length body), or None when the client closed the connection."""
        try:
            head = await self.reader.readuntil(b"\r\n\r\n")
        except (asyncio.IncompleteReadError, ConnectionError) as error:
            partial = error.partial if isinstance(error, asyncio.IncompleteReadError) else b""
            self.server.leftovers.append(partial)
            self.server.eofs += 1
            self.server.changed()
            return None
        length = 0
        for line in head.split(b"\r\n")[1:]:
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"content-length":
                length = int(value)
        raw = head + await self.reader.readexactly(length)
        self.server.requests.append(raw)
        self.server.changed()
        return raw

    async def send(self, data: bytes) -> None:
        self.writer.write(data)
        await self.writer.drain()

    async def until_eof(self) -> None:
        """Hold the connection (answer nothing) until the client closes it."""
        with contextlib.suppress(ConnectionError):
            await self.reader.read()
        self.server.eofs += 1
        self.server.changed()


Handler = Callable[[Conn], Awaitable[None]]


class Server:
    """A TCP server on 127.0.0.1:0 running ``handler`` for each connection; records the raw requests."""

    def __init__(self, handler: Handler) -> None:
        self.handler = handler
        self.port = 0
        self.connections = 0
        self.requests: list[bytes] = []
        self.ended = 0  # connections the server's side closed (their handler returned)
        self.eofs = 0  # times a handler met the client's end of its connection
        self.leftovers: list[bytes] = []  # what a client had sent of a request head when it closed
        self._changed = asyncio.Event()
        self._tasks: set[asyncio.Task[None]] = set()

    async def __aenter__(self) -> Server:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *exc: object) -> None:
        self._server.close()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self._server.wait_closed()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1/traces"

    def changed(self) -> None:
        self._changed.set()

    async def wait_until(self, predicate: Callable[[], bool]) -> None:
        """Wait (at most :data:`WAIT`) until ``predicate()`` holds; it is checked after each recorded change."""

        async def until() -> None:
            while not predicate():
                self._changed.clear()
                await self._changed.wait()

        await asyncio.wait_for(until(), WAIT)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        self.connections += 1
        self.changed()
        try:
            await self.handler(Conn(self, self.connections, reader, writer))
        except (ConnectionError, asyncio.IncompleteReadError, asyncio.CancelledError):
            pass
        finally:
            self._tasks.discard(task)
            writer.close()
            with contextlib.suppress(ConnectionError, asyncio.CancelledError):
                await writer.wait_closed()
            self.ended += 1
            self.changed()


def answering(*responses: bytes, close: bool = False) -> Handler:
    """Answers the server's n-th request (counted over all its connections) with ``responses[n]`` (the last one
    repeats); ``close``: the server then closes the connection."""

    async def handler(conn: Conn) -> None:
        while await conn.read_request() is not None:
            n = len(conn.server.requests) - 1
            await conn.send(responses[min(n, len(responses) - 1)])
            if close:
                return

    return handler


def per_connection(*handlers: Handler) -> Handler:
    """The server's i-th connection runs ``handlers[i]`` (the last one repeats)."""

    async def handler(conn: Conn) -> None:
        await handlers[min(conn.index, len(handlers)) - 1](conn)

    return handler


async def hold(conn: Conn) -> None:
    """Reads requests and never answers, until the client closes the connection."""
    while await conn.read_request() is not None:
        await conn.until_eof()
        return


# -- the lane


class Notifier:
    """The lane's ``notify``: counts its calls, notes the threads, and wakes the loop (``event``)."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.count = 0
        self.threads: set[int] = set()
        self.event = asyncio.Event()
        self.raise_with: Exception | None = None
        self.action: Callable[[], None] | None = None  # run inside notify (on the worker thread)
        self._loop = loop

    def __call__(self) -> None:
        self.count += 1
        self.threads.add(threading.get_ident())
        if self.action is not None:
            self.action()
        self._loop.call_soon_threadsafe(self.event.set)
        if self.raise_with is not None:
            raise self.raise_with

    async def reached(self, n: int) -> None:
        """Wait until notify was called ``n`` times (in all)."""

        async def until() -> None:
            while self.count < n:
                self.event.clear()
                await self.event.wait()

        await asyncio.wait_for(until(), WAIT)


async def _gather(
    collect: Callable[[], list[T]], wake: Callable[[], object] | None, notifier: Notifier, n: int, *, exact: bool = True
) -> list[T]:
    """``n`` outcomes (``exact``), or at least ``n``: collect, and wait for notify between the calls. ``wake``
    (wake_on_done) is asked before each collect, so an outcome that comes after it calls notify even when it is a
    plain success; without it only the outcomes that call notify anyway (not a plain success) end the wait."""
    got: list[T] = []

    async def until() -> None:
        while True:
            notifier.event.clear()
            if wake is not None:
                wake()
            got.extend(collect())
            if len(got) >= n:
                return
            await notifier.event.wait()

    try:
        await asyncio.wait_for(until(), WAIT)
    except asyncio.TimeoutError:
        pytest.fail(f"only {len(got)} of {n} outcomes after {WAIT} s: {got!r}")
    assert len(got) == n or not exact, f"more outcomes than expected: {got!r}"
    return got


async def outcomes(
    lane: NativeLane, notifier: Notifier, n: int, *, wake: bool = True, exact: bool = True
) -> list[tuple[object, LaneOutcome]]:
    return await _gather(lane.collect, lane.wake_on_done if wake else None, notifier, n, exact=exact)


async def roundtrip(lane: NativeLane, notifier: Notifier, body: bytes = b"x", *, wake: bool = True) -> LaneOutcome:
    """Submit ``body`` and wait for its outcome."""
    token = object()
    assert lane.submit(body, token)
    [(got, outcome)] = await outcomes(lane, notifier, 1, wake=wake)
    assert got is token
    return outcome


class Made:
    """A lane made for a test: the native ``raw`` Lane, its ``lane`` wrapper, and the ``notifier``."""

    def __init__(self, raw: Lane, lane: NativeLane, notifier: Notifier) -> None:
        self.raw = raw
        self.lane = lane
        self.notifier = notifier

    async def outcomes(self, n: int, *, wake: bool = True, exact: bool = True) -> list[tuple[object, LaneOutcome]]:
        return await outcomes(self.lane, self.notifier, n, wake=wake, exact=exact)

    async def raw_outcomes(self, n: int, *, wake: bool = True) -> list[RawOutcome]:
        return await _gather(self.raw.collect, self.raw.wake_on_done if wake else None, self.notifier, n)

    async def roundtrip(self, body: bytes = b"x", *, wake: bool = True) -> LaneOutcome:
        return await roundtrip(self.lane, self.notifier, body, wake=wake)


MakeLane = Callable[..., Made]


@pytest.fixture
async def make_lane() -> AsyncIterator[MakeLane]:
    """``make_lane(port, **options)``: a lane to 127.0.0.1:port (closed at the end of the test)."""
    loop = asyncio.get_running_loop()
    made: list[Made] = []

    def make(
        port: int,
        *,
        workers: int = 1,
        timeout: float = WAIT,
        keepalive: float = 30.0,
        max_response: int = MAX_RESPONSE,
        head: bytes = HEAD,
        compress: int = 0,
    ) -> Made:
        notifier = Notifier(loop)
        raw = Lane(
            "127.0.0.1",
            port,
            head,
            workers=workers,
            timeout=timeout,
            keepalive=keepalive,
            max_response=max_response,
            compress=compress,
            notify=notifier,
        )
        one = Made(raw, NativeLane(raw, f"http://127.0.0.1:{port}/v1/traces", max_response), notifier)
        made.append(one)
        return one

    yield make
    for one in made:
        one.lane.close()


@pytest.fixture
def refused_port() -> Iterator[int]:
    """A loopback port where a connection is refused: bound and not listening (held for the test, so that no other
    server, of this run or of another one, can take it meanwhile)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        yield sock.getsockname()[1]


def signal_config(url: str, **kwargs: Any) -> SignalConfig:
    return SignalConfig(signal=Signal.TRACES, protocol=kwargs.pop("protocol", "http/protobuf"), endpoint=url, **kwargs)


# -- the request on the wire


async def test_the_request_on_the_wire_is_the_head_its_length_and_the_body(make_lane: MakeLane) -> None:
    big = bytes(range(256)) * 1200  # 307,200 bytes: written in several parts
    bodies = [b"", b"\x0a\x03abc", big, b"after"]
    async with Server(answering(OK)) as server:
        made = make_lane(server.port)
        for body in bodies:
            assert await made.roundtrip(body) is OK_REPLY
        made.lane.close()
        await server.wait_until(lambda: server.eofs == 1)
    assert len(server.requests[2]) == len(wire(big))
    assert server.requests == [wire(body) for body in bodies]
    assert server.leftovers == [b""]  # nothing after the last request: no stray bytes on the connection
    assert server.connections == 1


INFLATE: dict[str, Callable[[bytes], bytes]] = {
    "none": lambda body: body,
    "gzip": gzip.decompress,
    "deflate": zlib.decompress,
}


@pytest.mark.parametrize("compression", ["none", "gzip", "deflate"])
async def test_open_lane_sends_the_transports_own_head(monkeypatch: pytest.MonkeyPatch, compression: str) -> None:
    """The lane sends the transport's own head, with the content-encoding of the configured compression, and each
    body compressed by its worker thread (gzip, or deflate as a zlib stream)."""
    monkeypatch.delenv("AIOTLP_NO_EXTENSIONS", raising=False)
    loop = asyncio.get_running_loop()
    body = b"abc" + bytes(range(256)) * 40  # compressible, and over a few kilobytes
    async with Server(answering(OK)) as server:
        transport = HttpTransport(signal_config(server.url, headers={"x-tenant": "a"}, compression=compression))
        notifier = Notifier(loop)
        lane = open_lane(transport, workers=2, timeout=WAIT, notify=notifier)
        assert lane is not None
        try:
            assert lane.room == 2 and lane.in_flight == 0 and lane.connections_made == 0 and not lane.closed
            assert server.url in repr(lane)
            assert await roundtrip(lane, notifier, body) is OK_REPLY
        finally:
            lane.close()
            await transport.close()
    head = transport.head(IDENTITY if compression == "none" else compression)
    [request] = server.requests
    assert request.startswith(head)
    length, sent = request[len(head) :].split(b"\r\n\r\n", 1)
    assert length == b"Content-Length: %d" % len(sent)
    assert INFLATE[compression](sent) == body
    if compression != "none":
        assert len(sent) < len(body)
    assert b"\r\nx-tenant: a\r\n" in head.lower()
    assert (b"content-encoding: " + compression.encode() in head.lower()) == (compression != "none")
    assert notifier.threads and threading.get_ident() not in notifier.threads  # called on a worker thread


def test_the_lanes_compress_gzip_and_deflate_not_zstd() -> None:
    """zstd is not the lanes': the exporter's own stack sends it (gzip and deflate need zlib at build time, which the
    build here has: the lane's module says so)."""
    assert _lane.ZLIB == 1
    assert [lane_compresses(c) for c in ("none", "gzip", "deflate", "zstd")] == [True, True, True, False]


@pytest.mark.parametrize(
    ("url", "options"),
    [
        ("https://127.0.0.1:4318/v1/traces", {}),
        ("http://127.0.0.1:4318/v1/traces", {"protocol": "http/json"}),
    ],
    ids=["tls", "json"],
)
async def test_open_lane_says_none_where_there_can_be_no_lane(url: str, options: dict[str, Any]) -> None:
    transport = HttpTransport(signal_config(url, **options))
    try:
        assert open_lane(transport, workers=1, timeout=1.0, notify=lambda: None) is None
    finally:
        await transport.close()


async def test_open_lane_says_none_when_extensions_are_turned_off(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AIOTLP_NO_EXTENSIONS", "1")
    transport = HttpTransport(signal_config("http://127.0.0.1:4318/v1/traces"))
    try:
        assert open_lane(transport, workers=1, timeout=1.0, notify=lambda: None) is None
    finally:
        await transport.close()


# -- plain successes and keep-alive


@pytest.mark.parametrize(
    "answer",
    [
        OK,
        response("200 OK", "Content-Type: application/x-protobuf", body=b"\n\x00"),  # an empty partial success
        response("202 Accepted"),
        b"HTTP/1.1 204 No Content\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\n\n\x00\r\n0\r\n\r\n",
        b"HTTP/1.1 100 Continue\r\n\r\n" + OK,
        b"HTTP/1.1 200 OK\r\nCONTENT-LENGTH:   0  \r\nConnection: keep-alive\r\n\r\n",
        b"HTTP/1.1 200\r\nContent-Length: 0\r\n\r\n",  # no reason phrase
    ],
    ids=[
        "empty",
        "empty-partial-success",
        "202",
        "204",
        "chunked-empty",
        "chunked-partial",
        "100-continue",
        "case",
        "no-reason",
    ],
)
async def test_plain_successes_are_the_ok_reply_on_one_kept_alive_connection(
    make_lane: MakeLane, answer: bytes
) -> None:
    async with Server(answering(answer)) as server:
        made = make_lane(server.port)
        got = [await made.roundtrip(b"span %d" % i) for i in range(3)]
        assert got == [OK_REPLY] * 3 and all(outcome is OK_REPLY for outcome in got)
        assert made.lane.connections_made == 1
        assert server.connections == 1 and len(server.requests) == 3
        assert made.lane.in_flight == 0 and made.lane.room == 1


async def test_requests_on_several_workers_each_come_back_once(make_lane: MakeLane) -> None:
    async with Server(answering(OK)) as server:
        made = make_lane(server.port, workers=3)
        tokens = [f"request {i}" for i in range(40)]
        sent: list[str] = []
        done: list[tuple[object, LaneOutcome]] = []
        while len(done) < len(tokens):
            while len(sent) < len(tokens) and made.lane.room > 0:
                token = tokens[len(sent)]
                assert made.lane.submit(token.encode(), token)
                sent.append(token)
            done += await made.outcomes(1, exact=False)
        assert sorted(str(token) for token, _ in done) == sorted(tokens)
        assert {outcome for _, outcome in done} == {OK_REPLY}
        assert sorted(server.requests) == sorted(wire(token.encode()) for token in tokens)
        assert 1 <= made.lane.connections_made <= 3
        assert made.lane.connections_made == server.connections


# -- replies handed to Python, and whether the connection is kept


@pytest.mark.parametrize(
    ("answer", "close", "expected", "reused"),
    [
        (
            response("400 Bad Request", "Content-Type: application/x-protobuf", body=STATUS_BODY),
            False,
            Reply(400, STATUS_BODY, content_type="application/x-protobuf"),
            True,
        ),
        (
            response("503 Service Unavailable", "Retry-After: 7", "Content-Type: text/plain", body=b"busy"),
            False,
            Reply(503, b"busy", content_type="text/plain", retry_after="7"),
            True,
        ),
        (
            response("429 Too Many Requests", "Retry-After: Wed, 21 Oct 2026 07:28:00 GMT"),
            False,
            Reply(429, retry_after="Wed, 21 Oct 2026 07:28:00 GMT"),
            True,
        ),
        (
            response("200 OK", "Content-Type: application/x-protobuf", body=PARTIAL),
            False,
            Reply(200, PARTIAL, content_type="application/x-protobuf"),
            True,
        ),
        (
            response(
                "200 OK", "Content-Type: application/x-protobuf", "Content-Encoding: gzip", body=gzip.compress(PARTIAL)
            ),
            False,
            Reply(200, PARTIAL, content_type="application/x-protobuf"),
            True,
        ),
        (
            response("400 Bad Request", "Content-Encoding: gzip", body=gzip.compress(STATUS_BODY)),
            False,
            Reply(400, STATUS_BODY),
            True,
        ),
        (
            b"HTTP/1.1 400 Bad Request\r\nContent-Type: text/plain\r\nTransfer-Encoding: chunked\r\n\r\n"
            b"4;name=value\r\nbad \r\nA\r\nrequest!!!\r\n0\r\nX-Checksum: 1\r\nX-Other: 2\r\n\r\n",
            False,
            Reply(400, b"bad request!!!", content_type="text/plain"),
            True,
        ),
        (
            b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\n"
            + response("400 Bad Request", body=b"bad"),
            False,
            Reply(400, b"bad"),
            True,
        ),
        (
            response("500 Internal Server Error", "Content-Type: text/plain", body=b"it broke", length=False),
            True,  # read to close: the server closes
            Reply(500, b"it broke", content_type="text/plain"),
            False,
        ),
        (response("200 OK", "Connection: close"), False, OK_REPLY, False),
        (response("400 Bad Request", "Connection: close", body=b"no"), False, Reply(400, b"no"), False),
        (response("200 OK", version="1.0"), False, OK_REPLY, False),
        (response("200 OK", "Connection: keep-alive", version="1.0"), False, OK_REPLY, True),
        (response("200 OK", "Connection: Keep-Alive, close"), False, OK_REPLY, False),
        (  # both framings: chunked wins, and the connection is not reused (as the H1 client does)
            b"HTTP/1.1 400 Bad Request\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n",
            False,
            Reply(400, b"abc"),
            False,
        ),
    ],
    ids=[
        "400-protobuf",
        "503-retry-after",
        "429-retry-after-date",
        "partial-success",
        "gzip-partial-success",
        "gzip-400",
        "chunked-trailer",
        "interim-1xx",
        "read-to-close",
        "connection-close",
        "connection-close-400",
        "http-1.0",
        "http-1.0-keep-alive",
        "close-token-wins",
        "chunked-and-length",
    ],
)
async def test_replies_and_whether_the_connection_is_kept(
    make_lane: MakeLane, answer: bytes, close: bool, expected: LaneOutcome, reused: bool
) -> None:
    async with Server(answering(answer, close=close)) as server:
        made = make_lane(server.port)
        assert await made.roundtrip(b"first") == expected
        assert await made.roundtrip(b"second") == expected
        assert server.requests == [wire(b"first"), wire(b"second")]
        assert made.lane.connections_made == server.connections == (1 if reused else 2)
        if not reused and not close:  # the lane, not the server, closed the first connection
            await server.wait_until(lambda: server.eofs >= 1)


async def test_a_response_arriving_in_small_pieces_is_read_whole(make_lane: MakeLane) -> None:
    answer = (
        b"HTTP/1.1 100 Continue\r\n\r\n"
        b"HTTP/1.1 400 Bad Request\r\nContent-Type: text/plain\r\nTransfer-Encoding: chunked\r\n\r\n"
        b"5\r\nhello\r\n1;x=y\r\n \r\n5\r\nworld\r\n0\r\nX-T: 1\r\n\r\n"
    )

    async def dribble(conn: Conn) -> None:
        while await conn.read_request() is not None:
            for i in range(len(answer)):
                await conn.send(answer[i : i + 1])
                await asyncio.sleep(0)  # a turn of the loop between the pieces, not a wait

    async with Server(dribble) as server:
        made = make_lane(server.port)
        for _ in range(2):
            assert await made.roundtrip() == Reply(400, b"hello world", content_type="text/plain")
        assert made.lane.connections_made == 1


@pytest.mark.parametrize(
    ("answer", "close", "expected"),
    [
        (response("400 Bad Request", body=b"a" * 64), False, Reply(400, b"a" * 64)),
        (response("400 Bad Request", body=b"a" * 65), False, SEND_AGAIN),
        (
            b"HTTP/1.1 400 Bad Request\r\nTransfer-Encoding: chunked\r\n\r\n28\r\n"
            + b"a" * 40
            + b"\r\n18\r\n"
            + b"b" * 24
            + b"\r\n0\r\n\r\n",
            False,
            Reply(400, b"a" * 40 + b"b" * 24),
        ),
        (
            b"HTTP/1.1 400 Bad Request\r\nTransfer-Encoding: chunked\r\n\r\n28\r\n"
            + b"a" * 40
            + b"\r\n19\r\n"
            + b"b" * 25
            + b"\r\n0\r\n\r\n",
            False,
            SEND_AGAIN,
        ),
        (response("400 Bad Request", body=b"c" * 64, length=False), True, Reply(400, b"c" * 64)),
        (response("400 Bad Request", body=b"c" * 65, length=False), True, SEND_AGAIN),
        (response("400 Bad Request", "Content-Encoding: gzip", body=gzip.compress(b"d" * 65)), False, SEND_AGAIN),
        (response("200 OK", "Content-Encoding: gzip", body=gzip.compress(b"\0" * 100_000)), False, SEND_AGAIN),
        (response("400 Bad Request", "Content-Encoding: br", body=b"\x0b\x01\x80abc\x03"), False, SEND_AGAIN),
    ],
    ids=[
        "length-at-limit",
        "length-over",
        "chunked-at-limit",
        "chunked-over",
        "read-to-close-at-limit",
        "read-to-close-over",
        "gzip-inflates-over",
        "gzip-bomb",
        "unknown-encoding",
    ],
)
async def test_a_response_over_max_response_is_sent_again(
    make_lane: MakeLane, answer: bytes, close: bool, expected: LaneOutcome
) -> None:
    async with Server(answering(answer, close=close)) as server:
        made = make_lane(server.port, max_response=64)
        assert await made.roundtrip(b"big") == expected
        assert server.requests == [wire(b"big")]


# -- a connection the server closes


async def test_an_idle_connection_the_server_closed_is_not_reused(make_lane: MakeLane) -> None:
    async with Server(answering(OK, close=True)) as server:
        made = make_lane(server.port)
        assert await made.roundtrip(b"one") is OK_REPLY
        await server.wait_until(lambda: server.ended == 1)  # the server closed the idle connection
        assert await made.roundtrip(b"two") is OK_REPLY  # no error outcome
        assert server.requests == [wire(b"one"), wire(b"two")]
        assert made.lane.connections_made == server.connections == 2


async def test_a_connection_closed_as_it_is_reused_is_sent_once_more_on_a_new_one(make_lane: MakeLane) -> None:
    async def answer_then_drop(conn: Conn) -> None:
        assert await conn.read_request() is not None
        await conn.send(OK)
        await conn.read_request()  # the second request arrives on the kept-alive connection: closed unanswered

    async with Server(per_connection(answer_then_drop, answering(OK))) as server:
        made = make_lane(server.port)
        assert await made.roundtrip(b"one") is OK_REPLY
        assert await made.roundtrip(b"two") is OK_REPLY  # no error outcome: sent again, on a new connection
        assert server.requests == [wire(b"one"), wire(b"two"), wire(b"two")]
        assert made.lane.connections_made == server.connections == 2


async def test_a_reused_connection_that_broke_after_part_of_the_response_is_not_retried(
    make_lane: MakeLane,
) -> None:
    async def answer_then_half(conn: Conn) -> None:
        assert await conn.read_request() is not None
        await conn.send(OK)
        assert await conn.read_request() is not None
        await conn.send(b"HTTP/1.1 200 OK\r\nContent-Len")  # and closes: the server may have taken the request

    async with Server(per_connection(answer_then_half, answering(OK))) as server:
        made = make_lane(server.port)
        assert await made.roundtrip(b"one") is OK_REPLY
        assert await made.roundtrip(b"two", wake=False) == SEND_AGAIN  # notify: called without being asked
        assert server.requests == [wire(b"one"), wire(b"two")]
        assert server.connections == 1


async def test_a_new_connection_closed_without_an_answer_is_not_retried(make_lane: MakeLane) -> None:
    async def drop(conn: Conn) -> None:
        await conn.read_request()

    async with Server(drop) as server:
        made = make_lane(server.port)
        assert await made.roundtrip(b"one", wake=False) == SEND_AGAIN
        await made.notifier.reached(1)  # called unasked (maybe after the outcome was collected)
        assert made.notifier.count == 1
        assert server.requests == [wire(b"one")]
        assert made.lane.connections_made == server.connections == 1


async def test_a_connection_the_server_wrote_to_while_idle_is_not_reused(make_lane: MakeLane) -> None:
    wrote = asyncio.Event()

    async def answer_then_408(conn: Conn) -> None:
        assert await conn.read_request() is not None
        await conn.send(OK)
        await conn.send(response("408 Request Timeout", "Connection: close"))  # unasked, and left open
        wrote.set()
        await conn.until_eof()

    async with Server(per_connection(answer_then_408, answering(OK))) as server:
        made = make_lane(server.port)
        assert await made.roundtrip(b"one") is OK_REPLY
        await asyncio.wait_for(wrote.wait(), WAIT)
        assert await made.roundtrip(b"two") is OK_REPLY  # not the 408 left on the old connection
        assert server.requests == [wire(b"one"), wire(b"two")]
        assert made.lane.connections_made == server.connections == 2
        await server.wait_until(lambda: server.eofs >= 1)  # and the lane closed the old one


async def test_keepalive_zero_never_reuses_a_connection(make_lane: MakeLane) -> None:
    async with Server(answering(OK)) as server:
        made = make_lane(server.port, keepalive=0.0)
        for _ in range(3):
            assert await made.roundtrip() is OK_REPLY
        assert made.lane.connections_made == server.connections == 3


# -- what is handed back to the exporter's own stack


async def test_a_refused_connection_is_sent_again_and_notify_is_called(make_lane: MakeLane, refused_port: int) -> None:
    made = make_lane(refused_port)
    assert await made.roundtrip(b"x", wake=False) == SEND_AGAIN
    await made.notifier.reached(1)  # called unasked (maybe after the outcome was collected)
    assert made.notifier.count == 1
    assert made.lane.connections_made == 0
    assert made.lane.in_flight == 0 and made.lane.room == 1


async def test_a_server_that_never_answers_times_out_and_is_sent_again(make_lane: MakeLane) -> None:
    async with Server(per_connection(hold, answering(OK))) as server:
        made = make_lane(server.port, timeout=0.3)
        started = time.monotonic()
        assert await made.roundtrip(b"late", wake=False) == SEND_AGAIN
        assert time.monotonic() - started >= 0.25  # not before the timeout (loosely: the clocks are not one)
        await server.wait_until(lambda: server.eofs == 1)  # the lane gave that connection up
        assert await made.roundtrip(b"next") is OK_REPLY  # on a new one
        assert server.connections == 2


async def settings_then_goaway(conn: Conn) -> None:
    """What an HTTP/2-only (gRPC) server does with an HTTP/1.1 request: its SETTINGS, then GOAWAY, and close."""
    await conn.send(HTTP2_SETTINGS)
    await conn.reader.read(1)
    await conn.send(HTTP2_GOAWAY)


async def settings_then_nothing(conn: Conn) -> None:
    await conn.send(HTTP2_SETTINGS)
    await conn.until_eof()


async def not_http(conn: Conn) -> None:
    await conn.send(b"SSH-2.0-OpenSSH_9.2\r\n")
    await conn.reader.read(1)


async def bad_status_line(conn: Conn) -> None:
    await conn.read_request()
    await conn.send(b"HTTP/1.1 2x0 OK\r\nContent-Length: 0\r\n\r\n")
    await conn.until_eof()


async def four_digit_status(conn: Conn) -> None:
    await conn.read_request()
    await conn.send(b"HTTP/1.1 2000 OK\r\nContent-Length: 0\r\n\r\n")  # the H1 client: "not a 3-digit code"
    await conn.until_eof()


async def http2_status_line(conn: Conn) -> None:
    await conn.read_request()
    await conn.send(b"HTTP/2 200\r\ncontent-length: 0\r\n\r\n")
    await conn.until_eof()


async def huge_head(conn: Conn) -> None:
    await conn.read_request()
    # a header section of 100 KB, over the 64 KiB the lane (and the H1 client: MAX_HEADER_BYTES) takes
    await conn.send(b"HTTP/1.1 200 OK\r\n" + b"X-Filler: " + b"f" * 100_000 + b"\r\nContent-Length: 0\r\n\r\n")
    await conn.until_eof()


@pytest.mark.parametrize(
    "handler",
    [
        settings_then_goaway,
        settings_then_nothing,
        not_http,
        bad_status_line,
        four_digit_status,
        http2_status_line,
        huge_head,
    ],
)
async def test_an_answer_that_is_not_http_1_is_sent_again(make_lane: MakeLane, handler: Handler) -> None:
    async with Server(handler) as server:
        made = make_lane(server.port, timeout=0.5)
        assert await made.roundtrip(b"x") == SEND_AGAIN


@pytest.mark.parametrize(
    ("handler", "kind", "status", "received"),
    [
        (None, _lane.CONNECT, 0, 0),
        (settings_then_goaway, _lane.BAD_RESPONSE, 0, 1),
        (answering(response("400 Bad Request", body=b"a" * 65)), _lane.BAD_RESPONSE, 400, 1),
        (answering(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc", close=True), _lane.DISCONNECTED, 200, 1),
        (hold, _lane.TIMEOUT, 0, 0),
    ],
    ids=["refused", "http2", "too-large", "truncated", "timeout"],
)
async def test_the_native_outcome_says_what_went_wrong(
    make_lane: MakeLane, refused_port: int, handler: Handler | None, kind: int, status: int, received: int
) -> None:
    async with Server(handler or answering(OK)) as server:
        made = make_lane(refused_port if handler is None else server.port, timeout=0.3, max_response=64)
        assert made.raw.submit(b"x", "token")
        [(token, got_kind, got_status, head, body, sys_errno, elapsed, got_received)] = await made.raw_outcomes(1)
    assert (token, got_kind, got_status, got_received, head, body) == ("token", kind, status, received, None, None)
    if kind == _lane.CONNECT:
        assert sys_errno == errno.ECONNREFUSED
    if kind == _lane.TIMEOUT:
        assert elapsed >= 0.3
        assert sys_errno == errno.ETIMEDOUT
    assert elapsed >= 0.0


async def test_the_native_outcome_of_a_response_and_of_a_plain_success(make_lane: MakeLane) -> None:
    answer = response("503 Service Unavailable", "Retry-After: 2", body=b"later")
    async with Server(answering(OK, answer)) as server:
        made = make_lane(server.port)
        assert made.raw.submit(b"one", 1)
        [ok] = await made.raw_outcomes(1)
        assert made.raw.submit(b"two", 2)
        [reply] = await made.raw_outcomes(1)
    assert ok[:6] == (1, _lane.OK, 200, None, None, 0)
    assert reply[:6] == (2, _lane.RESPONSE, 503, answer[: answer.index(b"\r\n\r\n")], b"later", 0)
    assert ok[7] == reply[7] == 1


# -- room and in_flight


async def test_room_and_in_flight(make_lane: MakeLane) -> None:
    gates = {body: asyncio.Event() for body in (b"A", b"B", b"C")}

    async def gated(conn: Conn) -> None:
        while (raw := await conn.read_request()) is not None:
            await gates[raw[raw.index(b"\r\n\r\n") + 4 :]].wait()
            await conn.send(response("503 Service Unavailable"))

    async with Server(gated) as server:
        made = make_lane(server.port, workers=2)
        lane = made.lane
        assert (lane.room, lane.in_flight) == (2, 0)
        assert lane.submit(b"A", "A") and lane.submit(b"B", "B")
        assert not lane.submit(b"C", "C")  # both workers busy: nothing taken
        assert (lane.room, lane.in_flight) == (0, 2)
        await server.wait_until(lambda: len(server.requests) == 2)
        gates[b"A"].set()
        await made.notifier.reached(1)  # A is done (a 503 calls notify), not collected yet
        assert (lane.room, lane.in_flight) == (1, 2)
        assert lane.collect() == [("A", Reply(503))]
        assert (lane.room, lane.in_flight) == (1, 1)
        assert lane.submit(b"C", "C")
        assert (lane.room, lane.in_flight) == (0, 2)
        assert not lane.submit(b"D", "D")
        gates[b"B"].set()
        gates[b"C"].set()
        done = await made.outcomes(2, wake=False)
        assert sorted(done, key=lambda outcome: str(outcome[0])) == [("B", Reply(503)), ("C", Reply(503))]
        assert (lane.room, lane.in_flight) == (2, 0)
        assert sorted(server.requests) == [wire(b"A"), wire(b"B"), wire(b"C")]
        assert server.connections == 2


# -- close


async def test_close_cuts_a_request_in_flight_short(make_lane: MakeLane) -> None:
    async with Server(hold) as server:
        made = make_lane(server.port, workers=2)
        lane = made.lane
        assert lane.submit(b"held", "held")
        await server.wait_until(lambda: len(server.requests) == 1)  # the worker is waiting for the response
        lane.close()  # joins the workers: the one in flight returns at once
        assert lane.closed
        assert lane.collect() == [("held", CLOSED)]
        assert (lane.room, lane.in_flight) == (0, 0)
        assert not lane.submit(b"later", "later")
        assert lane.collect() == []
        lane.close()  # twice is fine
        assert lane.closed
        await server.wait_until(lambda: server.eofs == 1)  # the connection was closed
        assert server.requests == [wire(b"held")]


async def test_close_with_every_worker_in_flight(make_lane: MakeLane) -> None:
    async with Server(hold) as server:
        made = make_lane(server.port, workers=3)
        for i in range(3):
            assert made.lane.submit(b"%d" % i, i)
        await server.wait_until(lambda: len(server.requests) == 3)
        made.lane.close()
        done = sorted(made.lane.collect(), key=lambda outcome: str(outcome[0]))
        assert done == [(0, CLOSED), (1, CLOSED), (2, CLOSED)]
        await server.wait_until(lambda: server.eofs == 3)


async def test_close_before_any_request(make_lane: MakeLane, refused_port: int) -> None:
    made = make_lane(refused_port)
    made.lane.close()
    assert made.lane.closed
    assert (made.lane.room, made.lane.in_flight, made.lane.connections_made) == (0, 0, 0)
    assert not made.lane.submit(b"x", 1)
    assert made.lane.collect() == []
    made.lane.close()


async def test_close_inside_notify_is_refused_and_the_lane_goes_on(make_lane: MakeLane) -> None:
    refused: list[Exception] = []
    async with Server(answering(response("503 Service Unavailable"))) as server:
        made = make_lane(server.port)

        def close_from_notify() -> None:
            try:
                made.lane.close()  # on the worker's own thread: it cannot join itself
            except RuntimeError as error:
                refused.append(error)

        made.notifier.action = close_from_notify
        assert await made.roundtrip(b"one", wake=False) == Reply(503)
        assert len(refused) == 1 and "notify" in str(refused[0])
        assert not made.lane.closed
        made.notifier.action = None
        assert await made.roundtrip(b"two", wake=False) == Reply(503)
        assert made.lane.connections_made == 1


async def test_close_lets_go_of_notify(refused_port: int) -> None:
    """notify may refer back to the lane (a cycle the collector cannot see through the lane): close() drops it."""

    class Callback:
        lane: Lane | None = None

        def __call__(self) -> None:
            pass

    callback = Callback()
    ref = weakref.ref(callback)
    raw = Lane("127.0.0.1", refused_port, HEAD, **{**GOOD, "notify": callback})
    callback.lane = raw
    raw.close()
    del callback, raw
    assert ref() is None


async def test_preconnect_opens_each_workers_connection_ahead(make_lane: MakeLane) -> None:
    async def gated(conn: Conn) -> None:
        while await conn.read_request() is not None:
            await conn.server.wait_until(lambda: len(conn.server.requests) >= 3)  # so each worker takes one
            await conn.send(OK)

    async with Server(gated) as server:
        made = make_lane(server.port, workers=3)
        made.lane.preconnect()
        await server.wait_until(lambda: server.connections == 3)
        made.lane.preconnect()  # each worker has its connection: no more
        for i in range(3):
            assert made.lane.submit(b"%d" % i, i)
        done = await made.outcomes(3)
        assert {outcome for _, outcome in done} == {OK_REPLY}
        assert made.lane.connections_made == server.connections == 3
        assert len(server.requests) == 3


async def test_preconnect_reports_nothing_and_a_closed_lane_ignores_it(make_lane: MakeLane, refused_port: int) -> None:
    made = make_lane(refused_port)
    made.lane.preconnect()  # refused: seen only by the first request
    assert await made.roundtrip(b"x", wake=False) == SEND_AGAIN
    await made.notifier.reached(1)  # called unasked (maybe after the outcome was collected)
    assert made.notifier.count == 1
    made.lane.close()
    made.lane.preconnect()
    assert made.lane.connections_made == 0 and made.lane.closed


async def test_an_answer_before_the_whole_body_was_written_is_read(make_lane: MakeLane) -> None:
    """A server that answers (413) after the head, and never reads the body: the lane stops writing and reads the
    answer (the body is larger than the socket buffers of both sides), and does not reuse the connection."""

    async def refuse_early(conn: Conn) -> None:
        await conn.reader.readuntil(b"\r\n\r\n")
        await conn.send(response("413 Payload Too Large", "Connection: close", body=b"too big"))
        await asyncio.Event().wait()  # reads nothing more (cancelled when the server stops)

    async with Server(per_connection(refuse_early, answering(OK))) as server:
        made = make_lane(server.port)
        assert await made.roundtrip(bytes(16 * 1024 * 1024)) == Reply(413, b"too big")
        assert await made.roundtrip(b"small") is OK_REPLY
        assert made.lane.connections_made == server.connections == 2


async def test_close_all_closes_the_lanes_open_lane_made(monkeypatch: pytest.MonkeyPatch, refused_port: int) -> None:
    monkeypatch.delenv("AIOTLP_NO_EXTENSIONS", raising=False)
    transport = HttpTransport(signal_config(f"http://127.0.0.1:{refused_port}/v1/traces"))
    try:
        lanes = [open_lane(transport, workers=1, timeout=1.0, notify=lambda: None) for _ in range(2)]
        first, second = lanes
        assert first is not None and second is not None
        first.close()
        close_all()
        assert first.closed and second.closed
        close_all()  # nothing left
    finally:
        await transport.close()


async def test_a_request_queued_but_not_started_is_closed() -> None:
    """The one worker is kept inside ``notify`` (after A) while B waits in the queue; close() (on another thread)
    must hand B back as CLOSED, never sent, and return once the worker leaves notify."""
    in_notify = asyncio.Event()
    gate = threading.Event()
    async with Server(answering(OK)) as server:
        loop = asyncio.get_running_loop()
        first = True

        def notify() -> None:
            nonlocal first
            if first:
                first = False
                loop.call_soon_threadsafe(in_notify.set)
                gate.wait(WAIT)  # the worker stays here (the GIL released) until the test opens the gate

        raw = Lane(
            "127.0.0.1",
            server.port,
            HEAD,
            workers=1,
            timeout=WAIT,
            keepalive=30.0,
            max_response=64,
            compress=_lane.IDENTITY,
            notify=notify,
        )
        lane = NativeLane(raw, server.url, 64)
        closing: asyncio.Future[None] | None = None
        try:
            lane.wake_on_done()
            assert lane.submit(b"A", "A")
            await asyncio.wait_for(in_notify.wait(), WAIT)
            assert lane.room == 1  # the worker is free (it only has to return from notify)
            assert lane.submit(b"B", "B")
            assert (lane.room, lane.in_flight) == (0, 2)
            closing = asyncio.ensure_future(asyncio.to_thread(lane.close))
            await server.wait_until(lambda: server.eofs == 1)  # close() began: it shut the connection down
            assert lane.closed
            gate.set()
            await asyncio.wait_for(closing, WAIT)
            assert lane.collect() == [("A", OK_REPLY), ("B", CLOSED)]
            assert server.requests == [wire(b"A")]  # B never went out
        finally:
            gate.set()
            if closing is None:
                lane.close()
            else:
                await asyncio.wait_for(closing, WAIT)  # not a second close() while this one runs


CONCURRENT_CLOSE = textwrap.dedent(
    """
    import json, os, socket, sys, threading
    from aiotlp.transport._lane import Lane

    listener = socket.create_server(("127.0.0.1", 0))

    def serve():
        conn, _ = listener.accept()
        data = b""
        while b"\\r\\n\\r\\n" not in data:
            data += conn.recv(65536)
        conn.sendall(b"HTTP/1.1 503 Service Unavailable\\r\\nContent-Length: 0\\r\\n\\r\\n")
        conn.recv(1)

    threading.Thread(target=serve, daemon=True).start()
    in_notify, gate = threading.Event(), threading.Event()

    def notify():
        in_notify.set()
        gate.wait(10)  # the worker stays in notify: close() waits in its join until the gate opens

    lane = Lane("127.0.0.1", listener.getsockname()[1], b"POST / HTTP/1.1\\r\\nHost: x\\r\\n", workers=1,
                timeout=10.0, keepalive=30.0, max_response=1000, compress=0, notify=notify)
    assert lane.submit(b"x", "A")
    assert in_notify.wait(10)
    entered = [threading.Event(), threading.Event()]

    def closer(i):
        entered[i].set()
        lane.close()  # the GIL held from entered.set() until close() releases it to join the workers

    threads = [threading.Thread(target=closer, args=(i,), daemon=True) for i in range(2)]
    for thread, event in zip(threads, entered):
        thread.start()
        event.wait(10)
    gate.set()
    for thread in threads:
        thread.join(10)
    if any(thread.is_alive() for thread in threads):
        print(json.dumps({"hung": True}), flush=True)
        os._exit(1)
    outcomes = [(token, kind, status) for token, kind, status, *_ in lane.collect()]
    print(json.dumps({"hung": False, "closed": lane.closed, "outcomes": outcomes, "refs": sys.getrefcount(lane)}),
          flush=True)
    os._exit(0)
    """
)


def test_close_called_on_two_threads_at_once_returns_on_both() -> None:
    """NativeLane may be used from any thread: two close() calls that overlap (the second while the first waits
    for the workers) must both return, and the lane must keep its reference count (run in a child process: a
    close() that never returns would hang the test run)."""
    try:
        done = subprocess.run(
            [sys.executable, "-c", CONCURRENT_CLOSE], capture_output=True, text=True, timeout=60, check=False
        )
    except subprocess.TimeoutExpired as error:
        pytest.fail(f"the child process hung: {error}")
    assert done.returncode == 0, f"close() on two threads: {done.stdout!r} {done.stderr[-2000:]!r}"
    result = json.loads(done.stdout)
    assert result == {"hung": False, "closed": True, "outcomes": [["A", _lane.RESPONSE, 503]], "refs": 2}


# -- notify


async def test_notify_is_not_called_for_a_plain_success_unless_asked(make_lane: MakeLane) -> None:
    answers = [OK, OK, OK, response("400 Bad Request", body=b"bad")]
    async with Server(answering(*answers)) as server:
        made = make_lane(server.port)
        lane = made.lane

        async def polled(token: str) -> list[tuple[object, LaneOutcome]]:
            """The outcome, by polling collect() (no wake_on_done: notify must not be needed for it)."""

            async def until() -> list[tuple[object, LaneOutcome]]:
                # a plain success unasked has no event of its own (that is what is tested): poll, a loop turn each
                while not (done := lane.collect()):  # noqa: ASYNC110
                    await asyncio.sleep(0)
                return done

            done = await asyncio.wait_for(until(), WAIT)
            assert done == [(token, OK_REPLY)]
            return done

        assert lane.submit(b"1", "1")
        await polled("1")
        lane.wake_on_done()  # asked once: the next outcome (a plain success) calls notify, once
        assert lane.submit(b"2", "2")
        await made.notifier.reached(1)
        assert lane.collect() == [("2", OK_REPLY)]
        assert lane.submit(b"3", "3")
        await polled("3")
        assert lane.submit(b"4", "4")  # the failure calls notify unasked; on the one worker, after 3 was done
        await made.notifier.reached(2)
        assert lane.collect() == [("4", Reply(400, b"bad"))]
        assert made.notifier.count == 2  # 2 (asked) and 4 (a failure): not 1 nor 3
        assert threading.get_ident() not in made.notifier.threads
        assert len(server.requests) == 4


async def test_wake_on_done_says_whether_outcomes_wait_already(make_lane: MakeLane) -> None:
    async with Server(answering(response("503 Service Unavailable"), OK)) as server:
        made = make_lane(server.port)
        lane = made.lane
        assert lane.wake_on_done() is False  # nothing done yet: notify will tell
        assert lane.collect() == []
        assert lane.submit(b"one", "one")  # a 503: notify is called (asked, and unasked anyway)
        await made.notifier.reached(1)
        assert lane.wake_on_done() is True  # done before this was asked: no notify will tell of it
        assert lane.collect() == [("one", Reply(503))]
        assert lane.wake_on_done() is False
        assert lane.submit(b"two", "two")  # a plain success, asked for above: notify is called
        await made.notifier.reached(2)
        assert lane.collect() == [("two", OK_REPLY)]
        assert made.notifier.count == 2


async def test_a_notify_that_raises_is_reported_and_the_lane_goes_on(make_lane: MakeLane) -> None:
    reported: list[BaseException | None] = []

    def hook(unraisable: Any) -> None:
        reported.append(unraisable.exc_value)

    previous = sys.unraisablehook
    sys.unraisablehook = hook
    try:
        async with Server(answering(response("503 Service Unavailable"))) as server:
            made = make_lane(server.port)
            made.notifier.raise_with = RuntimeError("notify failed")
            assert await made.roundtrip(b"one", wake=False) == Reply(503)
            assert await made.roundtrip(b"two", wake=False) == Reply(503)
            made.lane.close()  # the workers are joined: every notify has returned
    finally:
        sys.unraisablehook = previous
    assert [str(error) for error in reported] == ["notify failed", "notify failed"]


# -- fork


def _checks_in_the_child(made: Made, port: int, report: int) -> int:
    """In the forked child: the parent's lane refuses everything; a lane made here works. 0 when all is well."""
    failures: list[str] = []
    lane = made.lane
    if lane.submit(b"child", "child") is not False:
        failures.append("submit() took a body")
    if lane.room != 0:
        failures.append(f"room is {lane.room}")
    if lane.closed is not True:
        failures.append("closed is not True")
    if (lane.in_flight, lane.connections_made) != (0, 0):
        failures.append(f"in_flight {lane.in_flight}, connections_made {lane.connections_made}")
    if lane.wake_on_done() is not False:
        failures.append("wake_on_done() said outcomes wait")
    lane.preconnect()
    lane.close()  # the parent's threads: nothing to join here
    try:
        lane.collect()
        failures.append("collect() did not refuse")
    except RuntimeError:
        pass
    done = threading.Event()
    own = Lane(
        "127.0.0.1", port, HEAD, workers=1, timeout=WAIT, keepalive=30.0, max_response=64, compress=0, notify=done.set
    )
    own.wake_on_done()
    if not own.submit(b"from the child", "own"):
        failures.append("the child's own lane took nothing")
    elif not done.wait(WAIT):
        failures.append("the child's own lane never finished")
    else:
        outcomes = own.collect()
        if [outcome[:2] for outcome in outcomes] != [("own", _lane.OK)]:
            failures.append(f"the child's own lane: {outcomes!r}")
    own.close()
    os.write(report, "; ".join(failures).encode())
    return 1 if failures else 0


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="fork: Linux only")
async def test_a_forked_child_cannot_use_the_parents_lane(make_lane: MakeLane) -> None:
    async with Server(answering(OK)) as server:
        made = make_lane(server.port)
        assert await made.roundtrip(b"before") is OK_REPLY  # the worker is running, its connection open
        read_end, write_end = os.pipe()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)  # Python 3.12+: fork() with threads
            pid = os.fork()
        if pid == 0:  # the child: never returns into the test run
            code = 70
            try:
                signal.alarm(int(WAIT) * 2)  # a deadlock here kills the child (the parent sees the signal)
                code = _checks_in_the_child(made, server.port, write_end)
            except BaseException:
                os.write(write_end, traceback.format_exc().encode())
            finally:
                os._exit(code)
        os.close(write_end)
        try:
            _, status = await asyncio.wait_for(asyncio.to_thread(os.waitpid, pid, 0), WAIT * 3)
            report = await asyncio.to_thread(os.read, read_end, 65536)
        finally:
            os.close(read_end)
        assert os.WIFEXITED(status), f"the child was killed by signal {os.WTERMSIG(status)} (a deadlock?)"
        assert os.WEXITSTATUS(status) == 0, report.decode()
        # the parent's lane is untouched: same connection, same workers
        assert not made.lane.closed and made.lane.room == 1
        assert await made.roundtrip(b"after") is OK_REPLY
        assert made.lane.connections_made == 1
        assert server.requests == [wire(b"before"), wire(b"from the child"), wire(b"after")]


# -- bad arguments

GOOD: dict[str, Any] = {
    "workers": 1,
    "timeout": 1.0,
    "keepalive": 30.0,
    "max_response": 1024,
    "compress": 0,
    "notify": lambda: None,
}


@pytest.mark.parametrize(
    ("port", "options", "error", "names"),
    [
        (4318, {"workers": 0}, ValueError, "workers"),
        (4318, {"workers": 17}, ValueError, "workers"),
        (0, {}, ValueError, "port"),
        (65536, {}, ValueError, "port"),
        (4318, {"timeout": 0.0}, ValueError, "timeout"),
        (4318, {"timeout": -1.0}, ValueError, "timeout"),
        (4318, {"timeout": math.nan}, ValueError, "timeout"),
        (4318, {"keepalive": -1.0}, ValueError, "keepalive"),
        (4318, {"max_response": -1}, ValueError, "max_response"),
        (4318, {"notify": 42}, (ValueError, TypeError), "notify"),
        (4318, {"notify": None}, (ValueError, TypeError), "notify"),
        (4318, {"compress": 3}, ValueError, "compress"),
        (4318, {"compress": -1}, ValueError, "compress"),
    ],
)
def test_the_lane_rejects_bad_values_and_names_them(
    port: int, options: dict[str, Any], error: type[Exception] | tuple[type[Exception], ...], names: str
) -> None:
    with pytest.raises(error, match=names):
        Lane("127.0.0.1", port, HEAD, **{**GOOD, **options})


@pytest.mark.parametrize(
    ("args", "options"),
    [
        (("127.0.0.1", 4318, "POST / HTTP/1.1\r\n"), GOOD),  # head as str
        (("127.0.0.1", "4318", HEAD), GOOD),  # port as str
        ((None, 4318, HEAD), GOOD),  # no host
        (("127.0.0.1", 4318, HEAD), {k: v for k, v in GOOD.items() if k != "workers"}),  # workers missing
        (("127.0.0.1", 4318, HEAD, 1), GOOD),  # workers given positionally
        (("127.0.0.1", 4318, HEAD), {**GOOD, "timeout": "1"}),
    ],
    ids=["head-str", "port-str", "host-none", "workers-missing", "positional", "timeout-str"],
)
def test_the_lane_rejects_arguments_of_the_wrong_type(args: tuple[Any, ...], options: dict[str, Any]) -> None:
    with pytest.raises(TypeError):
        Lane(*args, **options)


class Bytes(bytes):
    pass


@pytest.mark.parametrize(
    "body",
    ["text", bytearray(b"x"), memoryview(b"x"), Bytes(b"x"), None],
    ids=["str", "bytearray", "memoryview", "bytes-subclass", "none"],
)
def test_submit_takes_only_bytes(body: Any, refused_port: int) -> None:
    raw = Lane("127.0.0.1", refused_port, HEAD, **GOOD)
    lane = NativeLane(raw, "nowhere", 1024)
    try:
        with pytest.raises(TypeError):
            lane.submit(body, "token")
        assert (lane.room, lane.in_flight, lane.connections_made) == (1, 0, 0)
    finally:
        lane.close()


def test_submit_needs_a_token(refused_port: int) -> None:
    raw = Lane("127.0.0.1", refused_port, HEAD, **GOOD)
    try:
        with pytest.raises(TypeError):
            raw.submit(b"x")  # type: ignore[call-arg]
        assert raw.in_flight == 0
    finally:
        raw.close()


def test_init_twice_is_refused() -> None:
    raw = Lane("127.0.0.1", 4318, HEAD, **GOOD)
    try:
        with pytest.raises(RuntimeError):
            raw.__init__("127.0.0.1", 4319, HEAD, **GOOD)  # type: ignore[misc]
    finally:
        raw.close()
