"""receiver_ceiling: how many spans/s rotel ingests at all, the physical limit of every other scenario here.

One pre-encoded 512-span request is sent again and again, with a few requests in flight, over OTLP/HTTP and
over OTLP/gRPC: no exporter, no encoding, no retries. Two clients each: the common ones (aiohttp; grpc.aio with
raw bytes) and aiotlp's own transports (``aiotlp.transport``). On this 2-core machine the client's CPU bounds
what rotel gets, so the ceiling (``rotel``) is the faster client's rate: the one the other scenarios must reach.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable

import aiohttp
import grpc

from aiotlp.config import SignalConfig
from aiotlp.encoding import encode_traces
from aiotlp.model import Signal
from aiotlp.transport import make_transport

from ._common import BATCH, Context, Sample, aiotlp_batch

CONCURRENCY = 4
_METHOD = "/opentelemetry.proto.collector.trace.v1.TraceService/Export"


async def blast(send: Callable[[], Awaitable[None]], seconds: float) -> int:
    """Run ``CONCURRENCY`` senders for ``seconds``; the number of requests that completed."""
    done = 0
    end = time.perf_counter() + seconds

    async def worker() -> None:
        nonlocal done
        while time.perf_counter() < end:
            await send()
            done += 1

    await asyncio.gather(*(worker() for _ in range(CONCURRENCY)))
    return done


async def rate(send: Callable[[], Awaitable[None]], seconds: float) -> float:
    """Spans/s ingested: one request to warm up, then :func:`blast` for ``seconds``."""
    await send()
    start = time.perf_counter()
    requests = await blast(send, seconds)
    return requests * BATCH / (time.perf_counter() - start)


async def over_http(ctx: Context, body: bytes, seconds: float) -> float:
    headers = {"Content-Type": "application/x-protobuf"}
    async with aiohttp.ClientSession() as session:

        async def send() -> None:
            async with session.post(f"{ctx.http_endpoint}/v1/traces", data=body, headers=headers) as response:
                await response.read()
                response.raise_for_status()

        return await rate(send, seconds)


async def over_grpc(ctx: Context, body: bytes, seconds: float) -> float:
    async with grpc.aio.insecure_channel(ctx.grpc_endpoint.removeprefix("http://")) as channel:
        call = channel.unary_unary(_METHOD)  # no serializers: bytes in, bytes out

        async def send() -> None:
            await call(body, timeout=10)

        return await rate(send, seconds)


async def over_aiotlp(ctx: Context, body: bytes, seconds: float, protocol: str) -> float:
    endpoint = ctx.grpc_endpoint if protocol == "grpc" else f"{ctx.http_endpoint}/v1/traces"
    transport = make_transport(SignalConfig(signal=Signal.TRACES, protocol=protocol, endpoint=endpoint))  # type: ignore[arg-type]
    try:

        async def send() -> None:
            await transport.send(body, content_encoding="identity", timeout=10)

        return await rate(send, seconds)
    finally:
        await transport.close()


async def run(ctx: Context) -> list[Sample]:
    body = encode_traces(aiotlp_batch(BATCH))
    seconds = ctx.seconds(2.0, 0.3)
    samples = []
    for protocol, common in (("http/protobuf", over_http), ("grpc", over_grpc)):
        rates = {"common client": await common(ctx, body, seconds)}
        rates["aiotlp transport"] = await over_aiotlp(ctx, body, seconds, protocol)
        samples.append(Sample(f"spans/s ingested, {protocol}", "spans/s", {"rotel": max(rates.values()), **rates}))
    return samples
