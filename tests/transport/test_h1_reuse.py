"""The HTTP/1.1 client reads each response head once per distinct head (``_h1._read_head`` remembers what it
decided: the body's framing, whether the connection is reused): every decision must be the same the first time a
head is read and every time after, with a real server on 127.0.0.1:0 answering each request as scripted."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from aiotlp.transport import BoundedInflater
from aiotlp.transport._h1 import BadResponse, H1Client, Response, Sink


class Scripted:
    """Reads each request (head and Content-Length body) and writes the next scripted response; ``then_close``
    closes the connection after each response (a body read to close)."""

    def __init__(self, responses: list[bytes], *, then_close: bool = False) -> None:
        self.responses = responses
        self.then_close = then_close
        self.connections = 0
        self.answered = 0
        self.handlers: set[asyncio.Task[None]] = set()
        self.server: asyncio.Server | None = None

    async def serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        task = asyncio.current_task()
        assert task is not None
        self.handlers.add(task)
        try:
            while True:
                try:
                    head = await reader.readuntil(b"\r\n\r\n")
                except asyncio.IncompleteReadError:
                    return
                length = next(
                    int(line.split(b":", 1)[1])
                    for line in head.split(b"\r\n")
                    if line.lower().startswith(b"content-length:")
                )
                await reader.readexactly(length)
                writer.write(self.responses[self.answered % len(self.responses)])
                self.answered += 1
                await writer.drain()
                if self.then_close:
                    return
        except ConnectionError:
            return
        finally:
            writer.close()
            self.handlers.discard(task)


@pytest.fixture
async def serve() -> AsyncIterator[list[tuple[Scripted, H1Client]]]:
    made: list[tuple[Scripted, H1Client]] = []
    yield made
    for script, client in made:
        await client.close()
        await asyncio.gather(*script.handlers, return_exceptions=True)
        assert script.server is not None
        script.server.close()
        await script.server.wait_closed()


async def start(made: list[tuple[Scripted, H1Client]], script: Scripted) -> H1Client:
    server = script.server = await asyncio.start_server(script.serve, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    client = H1Client("127.0.0.1", port)
    made.append((script, client))
    return client


def sink(status: int, headers: object) -> Sink:
    return BoundedInflater("identity")


async def post(client: H1Client) -> Response:
    head = client.request_head("/v1/traces", {"content-type": "application/x-protobuf"})
    return await client.post(head, b"\x0a\x00", sink)


CHUNKED = b"Transfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n"


@pytest.mark.parametrize(
    ("response", "body", "reused"),
    [
        (b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello", b"hello", True),
        (b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\nDate: Mon, 07 Dec 2026 15:50:32 GMT\r\n\r\n", b"", True),
        (b"HTTP/1.1 200 OK\r\n" + CHUNKED, b"hello", True),
        (b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n" + CHUNKED, b"hello", False),  # both: chunked wins, not reused
        (b"HTTP/1.1 200 OK\r\nConnection: Keep-Alive, close\r\nContent-Length: 0\r\n\r\n", b"", False),
        (b"HTTP/1.0 200 OK\r\nContent-Length: 0\r\n\r\n", b"", False),
        (b"HTTP/1.0 200 OK\r\nConnection: keep-alive\r\nContent-Length: 0\r\n\r\n", b"", True),
        (b"HTTP/1.1 204 No Content\r\nContent-Length: nope\r\n\r\n", b"", True),  # no body: the length is not read
        (b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok", b"ok", True),
    ],
)
async def test_each_head_decides_the_same_every_time_it_is_read(
    serve: list[tuple[Scripted, H1Client]], response: bytes, body: bytes, reused: bool
) -> None:
    script = Scripted([response])
    client = await start(serve, script)
    for _ in range(3):
        reply = await post(client)
        assert (reply.status, reply.body) == (int(response.rsplit(b"HTTP/1.", 1)[1][2:5]), body)
    assert script.connections == (1 if reused else 3)


@pytest.mark.parametrize(
    "response",
    [b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\nraw bytes", b"HTTP/1.1 200 OK\r\n\r\nraw bytes"],
    ids=["another-coding", "no-length"],
)
async def test_a_body_read_to_close_every_time(serve: list[tuple[Scripted, H1Client]], response: bytes) -> None:
    script = Scripted([response], then_close=True)
    client = await start(serve, script)
    for _ in range(3):
        reply = await post(client)
        assert reply.body == b"raw bytes"
    assert script.connections == 3


@pytest.mark.parametrize(
    ("response", "message"),
    [
        (b"HTTP/1.1 200 OK\r\nContent-Length: 1, 2\r\n\r\n", "conflicting Content-Length"),
        (b"HTTP/1.1 200 OK\r\nContent-Length: +5\r\n\r\nhello", "not a number"),
    ],
)
async def test_an_invalid_length_fails_every_time(
    serve: list[tuple[Scripted, H1Client]], response: bytes, message: str
) -> None:
    client = await start(serve, Scripted([response]))
    for _ in range(3):
        with pytest.raises(BadResponse, match=message):
            await post(client)


async def test_heads_alternating_on_one_connection(serve: list[tuple[Scripted, H1Client]]) -> None:
    # kept-alive, then chunked, then one that closes: the third is not reused, the next goes on a new connection
    script = Scripted(
        [
            b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok",
            b"HTTP/1.1 503 Busy\r\nRetry-After: 3\r\n" + CHUNKED,
            b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 0\r\n\r\n",
        ]
    )
    client = await start(serve, script)
    seen = [await post(client) for _ in range(6)]
    assert [r.status for r in seen] == [200, 503, 200] * 2
    assert seen[1].headers["retry-after"] == "3" and seen[4].headers["retry-after"] == "3"
    seen[1].headers["retry-after"] = "changed"  # each response's headers are its own
    assert (await post(client)).headers.get("retry-after") is None
    assert script.connections == 3
