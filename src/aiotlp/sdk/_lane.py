"""The native lane of aiotlp's SDK batch processors: batches encoded at the source, sent without the GIL.

An application on plain threads that makes spans (or log records) flat out holds the GIL nearly all the time, and
every export that runs Python on the bridge takes it from the application. Where the exporter allows it (aiotlp's
own, OTLP/HTTP protobuf or OTLP/gRPC over aiotlp's h2 client, plain TCP to one collector, uncompressed, no disk
queue, the default transports, the extension built: :func:`aiotlp.export.open_lane`), a processor exporting on the
bridge gets a :class:`SourceLane`: the thread whose span fills a batch frames it (one compiled call) and hands it
to a native thread that sends it and reads the reply, without Python and without the GIL
(:mod:`aiotlp.processing._shipping` says how the processor uses it, :mod:`aiotlp.transport._lanes` how it sends).
Each export is counted in the SDK exporter's statistics as any other; one that the lane could not deliver is sent
again through the exporter, which counts it then. ``AIOTLP_NO_EXTENSIONS=1`` turns the lane off with the other
compiled parts.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Sequence
from typing import Any, cast

from aiotlp._exceptions import DeadlineExceededError
from aiotlp.export import LANE_CLOSED, ExportLane, ExportResult, open_lane
from aiotlp.processing import Batch, BatchProcessor

from ._bridge import LANE_EXPORTS_IN_FLIGHT
from ._client import ExportClient
from ._stats import Ticket

__all__ = ["SourceLane"]


class SourceLane:
    """A processor's :class:`~aiotlp.processing._shipping.Lane` over the SDK exporter's :class:`ExportLane`: frames
    a batch encoded at the source, counts it in the exporter's ledger, and at exit (the bridge stops) waits for
    what it has in flight before it closes."""

    __slots__ = ("__weakref__", "_client", "_frame", "_lane", "_notify", "_waiters", "_workers", "sent")

    def __init__(
        self,
        client: ExportClient,
        frame: Callable[[Sequence[Any]], bytes],
        workers: int,
        notify: Callable[[], None],
    ) -> None:
        self._client = client
        self._frame = frame
        self._workers = workers
        self._notify = notify
        self._waiters: list[tuple[asyncio.AbstractEventLoop, asyncio.Future[None]]] = []
        self._lane: ExportLane | None = None
        self.sent = 0
        """Batches sent on the lane so far (one that was sent again through the exporter counts too)."""

    @classmethod
    def open(
        cls, client: ExportClient, frame: Callable[[Sequence[Any]], bytes], processor: BatchProcessor[Any]
    ) -> SourceLane | None:
        """The lane for ``processor`` (exporting through ``client`` on the bridge), or None where there is none."""
        if client.closed or client.queue_dir is not None or not client.default_transports:
            return None
        workers = LANE_EXPORTS_IN_FLIGHT
        lane = cls(client, frame, workers, processor.lane_notified)
        native = open_lane(client.config, client.signal, workers=workers, notify=lane._notified)
        if native is None:
            return None
        lane._lane = native
        processor.max_concurrent_exports = workers  # the lane's threads are its export slots
        return lane

    def __repr__(self) -> str:
        return f"SourceLane({self._lane!r})"

    @property
    def room(self) -> int:
        lane = self._lane
        return 0 if lane is None or self._client.closed else lane.room

    @property
    def connections_made(self) -> int:
        return 0 if self._lane is None else self._lane.connections_made

    def send(self, batch: Batch) -> bool:
        lane = self._lane
        client = self._client
        if lane is None or client.closed:
            return False
        items = batch.items
        try:
            body = self._frame(items)
        except Exception:  # items that cannot be encoded: the exporter leaves them out (and counts them)
            return False
        ticket = client.ledger.started(len(items))
        try:
            if lane.submit(body, len(items), (batch, ticket)):
                self.sent += 1
                return True
        except Exception:  # no thread could be started: the exporter sends it
            pass
        client.ledger.withdraw(ticket)
        return False

    def collect(self) -> list[tuple[Batch, ExportResult | str]]:
        lane = self._lane
        if lane is None:
            return []
        ledger = self._client.ledger
        ended: list[tuple[Batch, ExportResult | str]] = []
        for token, outcome in lane.collect():
            batch, ticket = cast("tuple[Batch, Ticket]", token)
            if isinstance(outcome, ExportResult):
                ledger.settled(ticket, outcome, durable=False)
            elif outcome == LANE_CLOSED:
                ledger.failed_now(ticket, DeadlineExceededError("the export was cancelled before it completed"))
            else:  # sent again through the exporter, which counts it then
                ledger.withdraw(ticket)
            ended.append((batch, outcome))
        return ended

    def preconnect(self) -> None:
        """Open the lane's connections now (the processor starts): not at the first full batch."""
        if self._lane is not None:
            self._lane.preconnect()

    def wake_on_done(self) -> bool:
        return self._lane is not None and self._lane.wake_on_done()

    def close(self) -> None:
        if self._lane is not None:
            self._lane.close()

    def _notified(self) -> None:
        """On a lane thread, holding the GIL: the processor's notify, and this lane's exit waiters."""
        self._notify()
        waiters, self._waiters = self._waiters, []
        for loop, waiter in waiters:
            with contextlib.suppress(RuntimeError):  # its loop is closed
                loop.call_soon_threadsafe(_resolve, waiter)

    async def shutdown(self, timeout: float | None = None) -> None:
        """The bridge stops (interpreter exit, the processor not shut down): wait up to ``timeout`` seconds for the
        requests in flight, then close the lane (the processor then exports through the exporter, if at all)."""
        lane = self._lane
        if lane is None:
            return
        loop = asyncio.get_running_loop()
        deadline = None if timeout is None else loop.time() + timeout
        while lane.room < self._workers and not lane.closed:
            waiter = loop.create_future()
            self._waiters.append((loop, waiter))
            lane.wake_on_done()
            if lane.room >= self._workers:  # the last one ended meanwhile
                break
            remaining = None if deadline is None else deadline - loop.time()
            if remaining is not None and remaining <= 0:
                break
            await asyncio.wait({waiter}, timeout=remaining)
        lane.close()


def _resolve(waiter: asyncio.Future[None]) -> None:
    if not waiter.done():
        waiter.set_result(None)
