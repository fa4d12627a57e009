"""The sender stack, assembled in one place. Before it, a request is compressed once (:func:`compress_request`,
with the transport's ``compression``), so every attempt sends the same bytes. Then, from the outside in::

    ConcurrencyLimit      at most N requests in flight; waiting for a slot counts against the deadline
      -> Retry            retryable errors are retried with backoff until the export deadline
        -> Timeout        each attempt is cancelled at min(attempt timeout, export deadline)
          -> TransportSender   hands the same bytes to the transport on every attempt, and reads its reply
                               (:func:`~aiotlp.export.read_reply`: a partial success, or a classified error)

The limit sits outside the retry, so a request waiting to retry keeps its slot: a struggling collector sees
at most N requests from this exporter, retries included (like the Collector's queue consumers).
"""

from __future__ import annotations

import asyncio
import dataclasses
from dataclasses import dataclass

from ..encoding import PartialSuccess
from ..transport import IDENTITY, Transport, compress
from ._limit import ConcurrencyLimit
from ._reply import read_reply
from ._retry import Retry, RetryPolicy
from ._timeout import Timeout
from ._types import ExportRequest, Sender

__all__ = ["SenderStack", "TransportSender", "build_stack", "compress_request"]


def compress_request(request: ExportRequest, compression: str) -> ExportRequest:
    """``request`` with its body compressed by ``compression`` (``"none"``: as it is). A request compressed
    already (its ``content_encoding`` is not ``"identity"``) is returned as it is: never compressed twice."""
    if compression == "none" or request.content_encoding != IDENTITY:
        return request
    return dataclasses.replace(request, body=compress(request.body, compression), content_encoding=compression)


class TransportSender:
    """The leaf of the stack: one attempt through the transport, and the reading of its reply."""

    def __init__(self, transport: Transport) -> None:
        self.transport = transport

    async def send(self, request: ExportRequest, deadline: float) -> PartialSuccess:
        timeout = deadline - asyncio.get_running_loop().time()
        transport = self.transport
        reply = await transport.send(request.body, content_encoding=request.content_encoding, timeout=timeout)
        return read_reply(reply, transport.content_type)

    async def shutdown(self) -> None:
        await self.transport.close()


@dataclass(frozen=True, slots=True)
class SenderStack:
    """The assembled stack, with handles on the layers the exporter reports on."""

    top: Sender
    limit: ConcurrencyLimit
    retry: Retry
    transport: Transport


def build_stack(
    transport: Transport,
    *,
    retry: RetryPolicy | None = None,
    max_concurrent: int = 4,
    attempt_timeout: float | None = None,
) -> SenderStack:
    """Assemble ``ConcurrencyLimit -> Retry -> Timeout -> TransportSender`` around ``transport``."""
    retry_layer = Retry(Timeout(TransportSender(transport), attempt_timeout), retry)
    limit = ConcurrencyLimit(retry_layer, max_concurrent)
    return SenderStack(top=limit, limit=limit, retry=retry_layer, transport=transport)
