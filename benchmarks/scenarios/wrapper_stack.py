"""wrapper_stack: what each layer of the sender stack costs per ``send`` call, over a no-op transport.

The bare leaf (``TransportSender`` over a transport whose ``send`` returns at once), then one layer at a time
(Timeout, Retry, ConcurrencyLimit: the stack of :func:`aiotlp.export.build_stack`), and a hand-inlined
coroutine doing the same checks in one frame: the price of composing objects (Python's "dynamic dispatch")
against writing it all out once. ns per call, lower is better; there is no official counterpart.
"""

from __future__ import annotations

import asyncio
import time

from aiotlp._backports import timeout_at
from aiotlp._exceptions import AttemptTimeoutError, DeadlineExceededError, RetryableError
from aiotlp.encoding import PartialSuccess
from aiotlp.export import (
    ConcurrencyLimit,
    ExportRequest,
    Retry,
    RetryPolicy,
    Sender,
    Timeout,
    TransportSender,
    read_reply,
)
from aiotlp.model import Signal
from aiotlp.transport import Reply

from ._common import Context, Sample

_DONE = Reply(200)


class NoopTransport:
    """A transport whose ``send`` returns a success at once (no I/O, no suspension)."""

    content_type = "application/x-protobuf"
    compression = "none"

    async def send(self, body: bytes, *, content_encoding: str, timeout: float) -> Reply:
        return _DONE

    async def close(self) -> None:
        pass


class Inlined:
    """The whole stack as one coroutine: slot, deadline checks, one attempt under a timeout, retry loop."""

    def __init__(self, transport: NoopTransport, max_concurrent: int = 4) -> None:
        self.transport = transport
        self._semaphore = asyncio.Semaphore(max_concurrent)
        self.in_flight = 0
        self.closed = False

    async def send(self, request: ExportRequest, deadline: float) -> PartialSuccess:
        loop = asyncio.get_running_loop()
        try:
            async with timeout_at(deadline):
                await self._semaphore.acquire()
        except asyncio.TimeoutError:
            raise DeadlineExceededError("no export slot before the deadline") from None
        self.in_flight += 1
        try:
            while True:
                if self.closed:
                    raise DeadlineExceededError("shut down")
                if deadline <= loop.time():
                    raise AttemptTimeoutError("no time left")
                try:
                    async with timeout_at(deadline):
                        reply = await self.transport.send(
                            request.body, content_encoding=request.content_encoding, timeout=deadline - loop.time()
                        )
                        return read_reply(reply, self.transport.content_type)
                except asyncio.TimeoutError:
                    raise AttemptTimeoutError("the attempt was cancelled at the deadline") from None
                except RetryableError:
                    raise  # a no-op transport never fails: the loop only has to exist
        finally:
            self.in_flight -= 1
            self._semaphore.release()


def stacks() -> dict[str, Sender]:
    transport = NoopTransport()
    leaf = TransportSender(transport)
    timeout = Timeout(leaf)
    retry = Retry(timeout, RetryPolicy(max_attempts=1))
    return {
        "leaf (TransportSender)": leaf,
        "+ Timeout": timeout,
        "+ Retry": retry,
        "+ ConcurrencyLimit (full stack)": ConcurrencyLimit(retry),
        "hand-inlined single coroutine": Inlined(transport),  # type: ignore[dict-item]
    }


async def ns_per_call(sender: Sender, request: ExportRequest, calls: int) -> float:
    deadline = asyncio.get_running_loop().time() + 3600
    send = sender.send
    for _ in range(100):
        await send(request, deadline)
    start = time.perf_counter_ns()
    for _ in range(calls):
        await send(request, deadline)
    return (time.perf_counter_ns() - start) / calls


async def run(ctx: Context) -> list[Sample]:
    request = ExportRequest(Signal.TRACES, b"x" * 64, items=1, size=64)
    calls = ctx.count(50_000, 5_000)
    per_call = Sample("ns per send", "ns", higher_is_better=False)
    per_layer = Sample("ns added by the layer", "ns", higher_is_better=False)
    previous = None
    for name, sender in stacks().items():
        per_call.values[name] = await ns_per_call(sender, request, calls)
        if name.startswith("+") and previous is not None:
            per_layer.values[name] = per_call.values[name] - per_call.values[previous]
        previous = name
    return [per_call, per_layer]
