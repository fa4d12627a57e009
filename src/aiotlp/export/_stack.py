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

import dataclasses
from dataclasses import dataclass

from .._exceptions import ExporterShutdownError, RetryableError
from ..encoding import PartialSuccess
from ..transport import IDENTITY, Transport, compress
from ._limit import ConcurrencyLimit
from ._retry import Retry, RetryPolicy
from ._timeout import Timeout, TransportSender
from ._types import ExportRequest, Sender

__all__ = ["SenderStack", "TransportSender", "build_stack", "compress_request"]


def compress_request(request: ExportRequest, compression: str) -> ExportRequest:
    """``request`` with its body compressed by ``compression`` (``"none"``: as it is). A request compressed
    already (its ``content_encoding`` is not ``"identity"``) is returned as it is: never compressed twice."""
    if compression == "none" or request.content_encoding != IDENTITY:
        return request
    return dataclasses.replace(request, body=compress(request.body, compression), content_encoding=compression)


@dataclass(frozen=True, slots=True)
class SenderStack:
    """The assembled stack, with handles on the layers the exporter reports on.

    :meth:`send` is ``top.send``; with the layers :func:`build_stack` assembles (``timeout`` given), the limit and
    the retry's first attempt run in its own frame when a slot is free (the common request: two coroutines less),
    exactly as the layers would run them.
    """

    top: Sender
    limit: ConcurrencyLimit
    retry: Retry
    transport: Transport
    timeout: Timeout | None = None
    """The Timeout layer under ``retry``, when the stack is ``limit -> retry -> timeout`` (:func:`build_stack`)."""

    async def send(self, request: ExportRequest, deadline: float) -> PartialSuccess:
        """Send ``request`` through the stack (as ``top.send``)."""
        timeout = self.timeout
        limit = self.limit
        if timeout is None or not limit.enter_now():  # no slot free: the limit waits for one, with the deadline
            return await self.top.send(request, deadline)
        try:  # ConcurrencyLimit.send, holding a slot
            retry = self.retry  # Retry.send: the first attempt, then Retry.after
            if retry.closed:
                raise ExporterShutdownError("the exporter was shut down before the request was sent")
            try:
                return await timeout.send(request, deadline)
            except RetryableError as exc:
                last = exc
            return await retry.after(request, deadline, last)
        finally:
            limit.leave()


def build_stack(
    transport: Transport,
    *,
    retry: RetryPolicy | None = None,
    max_concurrent: int = 4,
    attempt_timeout: float | None = None,
) -> SenderStack:
    """Assemble ``ConcurrencyLimit -> Retry -> Timeout -> TransportSender`` around ``transport``."""
    timeout = Timeout(TransportSender(transport), attempt_timeout)
    retry_layer = Retry(timeout, retry)
    limit = ConcurrencyLimit(retry_layer, max_concurrent)
    return SenderStack(top=limit, limit=limit, retry=retry_layer, transport=transport, timeout=timeout)
