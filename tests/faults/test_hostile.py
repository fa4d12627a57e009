"""A hostile collector: huge bodies, gzip bombs, a 5 MiB gRPC reply, lying Content-Lengths, a trickle, redirects.

Criteria: bounded memory (the exporter runs in a fresh process, ``rss_probe``, so that its peak RSS measures
only this: at most 16 MiB over the baseline), bounded time (an export never outlives its deadline by more than
15 %), bounded attempts, every item counted as failed with a final (non-retryable) error, and a redirect is
never followed.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
import time
from pathlib import Path

import pytest
from tests import samples
from tests.faults._support import Answer, RawHttpServer, accounted
from tests.faults.summary import Figure

from aiotlp import OTLPExporter, PermanentError, RejectedError, ResponseError, RetryPolicy
from aiotlp.testing import FakeCollector, Reply

ROOT = Path(__file__).resolve().parents[2]
LIMIT_KIB = 16 * 1024
MiB = 1024 * 1024
ROUNDS = 3


async def probe(endpoint: str, protocol: str, implementation: str | None) -> dict[str, object]:
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "tests.faults.rss_probe",
        endpoint,
        protocol,
        str(ROUNDS),
        *([implementation] if implementation else []),
        cwd=ROOT,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    out, err = await asyncio.wait_for(process.communicate(), 120)
    assert process.returncode == 0, err.decode()
    return json.loads(out.decode().strip().splitlines()[-1])  # type: ignore[no-any-return]


SLOW_SERVER = [pytest.mark.slow, pytest.mark.allow_slow_callbacks]
BIG = [
    pytest.param("http/protobuf", None, Reply(body_size=100 * MiB), id="http-100MiB"),
    pytest.param("http/json", None, Reply(body_size=100 * MiB), id="json-100MiB"),
    pytest.param("http/protobuf", None, Reply(gzip_bomb=200 * MiB), id="http-gzip-bomb-200MiB"),
    pytest.param("grpc", "h2", Reply(body_size=5 * MiB), id="grpc-h2-5MiB"),
    pytest.param("grpc", "grpcio", Reply(body_size=5 * MiB), id="grpc-grpcio-5MiB"),
    # the FakeCollector builds a gRPC reply whole, on its loop (this process's): slow, and it blocks that loop
    pytest.param("grpc", "h2", Reply(gzip_bomb=64 * MiB), id="grpc-h2-gzip-bomb-64MiB", marks=SLOW_SERVER),
    pytest.param("grpc", "grpcio", Reply(gzip_bomb=64 * MiB), id="grpc-grpcio-gzip-bomb-64MiB", marks=SLOW_SERVER),
]


@pytest.mark.parametrize(("protocol", "implementation", "reply"), BIG)
async def test_huge_answers_cost_bounded_memory(
    protocol: str, implementation: str | None, reply: Reply, figure: Figure
) -> None:
    figure.criterion = "peak RSS +<=16 MiB; one attempt each, ResponseError (non-retryable), counted"
    async with FakeCollector(default=reply) as collector:
        collector.script(Reply())  # the warm-up export is answered normally
        endpoint = collector.grpc_endpoint if protocol == "grpc" else collector.http_endpoint
        report = await probe(endpoint, protocol, implementation)
    assert report["warm_ok"] is True
    assert report["errors"] == ["ResponseError"] * ROUNDS  # non-retryable: one attempt each, counted as failed
    assert report["failed"] == 2 * ROUNDS
    assert len(collector.received) == 1 + ROUNDS
    assert report["growth_kib"] <= LIMIT_KIB, report  # type: ignore[operator]
    figure.load = 2 * (1 + ROUNDS)
    figure.faults = figure.bad_inputs = ROUNDS
    figure.count({"ResponseError": report["failed"]})  # type: ignore[dict-item]
    figure.measured = f"peak RSS +{report['growth_kib']} KiB"


# -- lying and slow answers, from a raw HTTP server ----------------------------------------------------------

HEAD = b"HTTP/1.1 200 OK\r\nContent-Type: application/x-protobuf\r\n"


def _fixed(data: bytes, *, close: bool = False) -> Answer:
    async def answer(writer: asyncio.StreamWriter) -> None:
        writer.write(data)
        await writer.drain()
        if close:
            writer.close()

    return answer


async def _trickle(writer: asyncio.StreamWriter) -> None:
    """A valid 100-byte body, one byte every 100 ms."""
    writer.write(HEAD + b"Content-Length: 100\r\n\r\n")
    for _ in range(100):
        writer.write(b"\x00")
        await writer.drain()
        await asyncio.sleep(0.1)


LIARS = {
    "content-length-too-long-then-close": _fixed(HEAD + b"Content-Length: 1000\r\n\r\n" + bytes(10), close=True),
    "content-length-too-long-then-silence": _fixed(HEAD + b"Content-Length: 1000\r\n\r\n" + bytes(10)),
    "content-length-too-short-then-garbage": _fixed(HEAD + b"Content-Length: 0\r\n\r\n" + b"garbage\r\n" * 1000),
    "content-length-1-TB": _fixed(HEAD + b"Content-Length: 1000000000000\r\n\r\n"),
    "chunk-size-256-TB": _fixed(HEAD + b"Transfer-Encoding: chunked\r\n\r\nFFFFFFFFFFFF\r\n" + bytes(100)),
    "trickle-1-byte-per-100ms": _trickle,
}
TIMEOUT = 1.0
ATTEMPTS = 3


@pytest.mark.parametrize("answer", list(LIARS.values()), ids=list(LIARS))
async def test_lying_and_trickling_answers_end_in_bounded_time_and_are_counted(answer: Answer, figure: Figure) -> None:
    figure.criterion = f"export ends by its {TIMEOUT}s deadline +15%; <= {ATTEMPTS} attempts; final error, counted"
    async with (
        RawHttpServer(answer) as server,
        OTLPExporter(
            endpoint=server.url,
            protocol="http/protobuf",
            timeout=TIMEOUT,
            attempt_timeout=0.4,
            retry=RetryPolicy(initial_backoff=0.01, max_backoff=0.02, max_attempts=ATTEMPTS),
        ) as exporter,
    ):
        results = []
        worst = 0.0
        for _ in range(2):
            start = time.perf_counter()
            results.append(accounted(await exporter.export_traces(samples.spans(3))))
            worst = max(worst, time.perf_counter() - start)
    assert worst <= TIMEOUT * 1.15, worst
    assert server.requests <= 2 * ATTEMPTS
    for result in results:
        assert result.failed == 3
        assert isinstance(result.error, PermanentError)
        text = str(result.error)
        assert len(text) <= 1024 and text.isprintable(), text
    figure.load = 6
    figure.faults = figure.bad_inputs = server.requests
    figure.count({type(r.error).__name__: r.failed for r in results})
    figure.measured = f"slowest export {worst:.2f}s; {server.requests} requests for 2 exports"


@pytest.mark.parametrize("status", [301, 302, 303, 307, 308])
async def test_redirects_are_never_followed(collector: FakeCollector, status: int, figure: Figure) -> None:
    figure.criterion = "nothing reaches the redirect target; one attempt; RejectedError, counted"
    location = f"{collector.http_endpoint}/v1/traces".encode()
    redirect = _fixed(b"HTTP/1.1 %d Moved\r\nLocation: %s\r\nContent-Length: 0\r\n\r\n" % (status, location))
    async with (
        RawHttpServer(redirect) as server,
        OTLPExporter(endpoint=server.url, protocol="http/protobuf", timeout=2) as exporter,
    ):
        result = accounted(await exporter.export_traces(samples.spans(4)))
    assert isinstance(result.error, RejectedError) and result.error.status == status
    assert not isinstance(result.error, ResponseError)
    assert result.failed == 4 and server.requests == 1
    assert collector.received == [] and collector.bad_requests == []
    figure.load = 4
    figure.faults = figure.bad_inputs = 1
    figure.count({"RejectedError": result.failed})
    figure.measured = f"HTTP {status}: 1 request, 0 at the target"
