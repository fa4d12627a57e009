"""receiver_ceiling: how many spans/s rotel ingests at all, the physical limit of every other scenario here.

One pre-encoded 512-span request is sent again and again, with a few requests in flight, over OTLP/HTTP
(aiohttp) and over OTLP/gRPC (grpc.aio, raw bytes): no exporter, no encoding, no retries. The values are
listed under ``rotel``: there is nothing to compare them with.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable

import aiohttp
import grpc

from aiotlp.encoding import encode_traces

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


async def over_http(ctx: Context, body: bytes, seconds: float) -> float:
    headers = {"Content-Type": "application/x-protobuf"}
    async with aiohttp.ClientSession() as session:

        async def send() -> None:
            async with session.post(f"{ctx.http_endpoint}/v1/traces", data=body, headers=headers) as response:
                await response.read()
                response.raise_for_status()

        await send()
        start = time.perf_counter()
        requests = await blast(send, seconds)
        return requests * BATCH / (time.perf_counter() - start)


async def over_grpc(ctx: Context, body: bytes, seconds: float) -> float:
    async with grpc.aio.insecure_channel(ctx.grpc_endpoint.removeprefix("http://")) as channel:
        call = channel.unary_unary(_METHOD)  # no serializers: bytes in, bytes out

        async def send() -> None:
            await call(body, timeout=10)

        await send()
        start = time.perf_counter()
        requests = await blast(send, seconds)
        return requests * BATCH / (time.perf_counter() - start)


async def run(ctx: Context) -> list[Sample]:
    body = encode_traces(aiotlp_batch(BATCH))
    seconds = ctx.seconds(2.0, 0.3)
    return [
        Sample("spans/s ingested, http/protobuf", "spans/s", {"rotel": await over_http(ctx, body, seconds)}),
        Sample("spans/s ingested, grpc", "spans/s", {"rotel": await over_grpc(ctx, body, seconds)}),
    ]
