"""Flush and shutdown of a batch processor, on its own loop: marks, waiting, the deadline, the exporter's turn.

A flush registers a :class:`FlushWaiter` with a *mark*, the sequence number of the next entry to be admitted:
it is done when every entry before the mark has settled (exported, rejected, failed or dropped), and it sums
their settlements. A shutdown is a flush that closes the queue first, drops what is left at its deadline, and
then shuts the exporter down in the time left (plus at most ``2 * SHUTDOWN_GRACE``).
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Generic, TypeVar

from .._validate import optional_seconds
from ..export import Exporter
from ..model import Signal
from ._binding import SHUTDOWN_GRACE, Batch
from ._hooks import Hooks
from ._queue import BoundedQueue
from ._settle import Settlement, describe
from ._stats import FlushOutcome, FlushStatus

if TYPE_CHECKING:
    from ._shipping import Lane

__all__ = ["FlushWaiter", "Flushing"]

T = TypeVar("T")

logger = logging.getLogger("aiotlp.processing")


@dataclass(slots=True, eq=False)  # compared by identity: it is looked up in the processor's list of flushes
class FlushWaiter:
    """A flush waiting until every entry admitted before ``mark`` is settled; sums their outcomes.

    ``future`` is resolved when the last of them settles (or the flush is abandoned); the counts and the last
    ``error`` are those of the batches that held them."""

    mark: int
    future: asyncio.Future[None]
    exported: int = 0
    rejected: int = 0
    failed: int = 0
    dropped: int = 0
    error: str = ""

    def count(self, settled: Settlement) -> None:
        """Add the settlement of a batch admitted before :attr:`mark`."""
        self.exported += settled.accepted
        self.rejected += settled.rejected
        self.failed += settled.failed
        self.dropped += settled.too_large + settled.invalid
        if settled.error is not None:
            self.error = settled.error

    def outcome(self, status: FlushStatus | None, pending: int = 0) -> FlushOutcome:
        if status is None:
            bad = self.rejected or self.failed or self.dropped
            status = FlushStatus.FAILURE if bad else FlushStatus.SUCCESS
        return FlushOutcome(
            status=status,
            exported=self.exported,
            rejected=self.rejected,
            failed=self.failed,
            dropped=self.dropped,
            pending=pending,
            error=self.error,
        )


class Flushing(Generic[T]):
    """The flush and shutdown part of :class:`~aiotlp.processing.BatchProcessor` (see the module docstring).
    The processor provides the state below, the worker's ``_pump`` and ``_wake``, and the hop to its loop."""

    # What each means: BatchProcessor.__init__, where they are set.
    _loop: asyncio.AbstractEventLoop | None
    _worker: asyncio.Task[None] | None
    _stopping: bool  # the shutdown has exported what it could: the worker ends
    _drain_to: int  # entries before this sequence number are due now, whole batch or not (a flush raises it)
    _running: dict[asyncio.Task[Any], Batch]  # exports in flight on the current loop
    _flushes: list[FlushWaiter]  # flushes (and the shutdown) waiting on the current loop, in mark order
    _room: set[asyncio.Future[None]]  # puts waiting for room (block policy): woken at shutdown
    _shutdown: asyncio.Future[FlushOutcome] | None  # set when shutdown begins; its outcome once it has ended
    _queue: BoundedQueue[T]
    _signal: Signal
    _exporter: Exporter
    _hooks: Hooks  # the exporter's optional hooks (force_flush)

    _lane: Lane | None  # the native lane (LaneShipping), if one is attached

    if TYPE_CHECKING:

        def start(self, loop: asyncio.AbstractEventLoop | None = None) -> None: ...

        def _batches_in_flight(self) -> list[Batch]: ...

        def _lane_on_loop(self) -> None: ...

        def _close_lane(self, reason: str) -> None: ...

        def _pump(self) -> None: ...

        def _wake(self) -> None: ...

        def _hop_to_own_loop(
            self,
            method: Callable[[float | None], Coroutine[Any, Any, FlushOutcome]],
            timeout: float | None,
            *,
            shutdown: bool,
        ) -> Awaitable[FlushOutcome] | None: ...

    def _check_flushes(self) -> None:
        if not self._flushes:
            return
        removed = self._queue.removed
        for waiter in list(self._flushes):
            if removed >= waiter.mark and not any(b.first < waiter.mark for b in self._batches_in_flight()):
                self._flushes.remove(waiter)
                if not waiter.future.done():
                    waiter.future.set_result(None)

    async def force_flush(self, timeout: float | None = None) -> FlushOutcome:
        """Export everything put before this call and wait for it, at most ``timeout`` seconds.

        ``success``: all of it was accepted; ``failure``: all of it settled, not all accepted (or the
        processor is shut down); ``timeout``: the deadline came first (the exports go on; ``pending`` counts
        what was still queued or in flight). Items put after the call are not waited for.
        """
        timeout = optional_seconds(timeout, "timeout")
        hop = self._hop_to_own_loop(self._force_flush, timeout, shutdown=False)
        if hop is not None:
            return await hop
        return await self._force_flush(timeout)

    async def _force_flush(self, timeout: float | None) -> FlushOutcome:
        if self._shutdown is not None and self._shutdown.done():
            return FlushOutcome(FlushStatus.FAILURE, error="the processor is shut down")
        loop = asyncio.get_running_loop()
        if self._loop is None:
            self.start(loop)
        deadline = None if timeout is None else loop.time() + timeout
        waiter = self._flush_mark(loop)
        try:
            if not await self._wait(waiter, deadline):
                return waiter.outcome(FlushStatus.TIMEOUT, pending=self._pending(waiter.mark))
        finally:
            self._discard(waiter)
        if self._loop is not loop:  # the processor moved away meanwhile: the flush goes on where it went
            remaining = None if deadline is None else max(0.0, deadline - loop.time())
            return await self.force_flush(remaining)
        outcome = waiter.outcome(None)
        if not await self._flush_exporter(loop, deadline):
            return dataclasses.replace(
                outcome,
                status=FlushStatus.FAILURE if outcome.status is FlushStatus.SUCCESS else outcome.status,
                error=outcome.error or "the exporter did not flush (its disk queue could not be made durable)",
            )
        return outcome

    async def _flush_exporter(self, loop: asyncio.AbstractEventLoop, deadline: float | None) -> bool:
        """The exporter's own ``force_flush`` when it has one (a DurableExporter's: an fsync); True otherwise."""
        flush = self._hooks.force_flush
        if flush is None:
            return True
        remaining = None if deadline is None else max(0.0, deadline - loop.time())
        try:
            return bool(await flush(remaining))
        except Exception as exc:
            logger.warning("the %s exporter failed to flush: %s", self._signal.value, describe(exc))
            return False

    async def shutdown(self, timeout: float | None = None) -> FlushOutcome:
        """Stop accepting items, export what is queued, then shut the exporter down; all within ``timeout``.

        Puts made from now on are dropped (``already_shutdown``). At the deadline, items still queued are
        dropped (``shutdown``) and exports in flight are cancelled (their items count as failed); the exporter's
        ``shutdown`` gets the time left. It returns within ``timeout`` plus at most ``2 * SHUTDOWN_GRACE``.
        ``None`` sets no deadline beyond each export's ``export_timeout``. A second call returns at once: the
        first call's outcome, or a ``timeout`` outcome while the first is still running.
        """
        timeout = optional_seconds(timeout, "timeout")
        if self._shutdown is not None:
            return self._repeated_shutdown()
        hop = self._hop_to_own_loop(self._shutdown_on_loop, timeout, shutdown=True)
        if hop is not None:
            return await hop
        return await self._shutdown_on_loop(timeout)

    def _repeated_shutdown(self) -> FlushOutcome:
        assert self._shutdown is not None
        if self._shutdown.done() and not self._shutdown.cancelled():
            return self._shutdown.result()
        return FlushOutcome(FlushStatus.TIMEOUT, error="shutdown is already in progress")

    async def _shutdown_on_loop(self, timeout: float | None) -> FlushOutcome:
        if self._shutdown is not None:
            return self._repeated_shutdown()
        loop = asyncio.get_running_loop()
        self._shutdown = done = loop.create_future()
        outcome = FlushOutcome(FlushStatus.TIMEOUT, error="shutdown was cancelled")
        try:
            outcome = await self._shutdown_steps(loop, timeout)
            return outcome
        finally:
            done.set_result(outcome)

    async def _shutdown_steps(self, loop: asyncio.AbstractEventLoop, timeout: float | None) -> FlushOutcome:
        deadline = None if timeout is None else loop.time() + timeout
        self._queue.close()
        for room in self._room:
            if not room.done():
                room.set_result(None)
        if self._loop is None:
            self.start(loop)
        waiter = self._flush_mark(loop)
        try:
            if await self._wait(waiter, deadline):
                outcome = waiter.outcome(None)
            else:
                outcome = await self._abandon(waiter)
        finally:
            self._discard(waiter)
        self._stopping = True
        self._wake()
        # A hard limit for what is left: the exporter gets the time to the deadline (its argument), and we wait
        # for it until the deadline plus the grace periods not used yet: 2 * SHUTDOWN_GRACE past it in all.
        limit = None if deadline is None else deadline + 2 * SHUTDOWN_GRACE
        if self._worker is not None:
            await asyncio.wait({self._worker}, timeout=SHUTDOWN_GRACE)  # it ends on its next iteration
        self._close_lane("the processor shut down before the export ended")
        remaining = None if deadline is None else max(0.0, deadline - loop.time())
        wait = None if limit is None else max(0.0, limit - loop.time())
        closed = await self._shutdown_exporter(remaining, wait)
        if not closed and outcome.status is FlushStatus.SUCCESS:
            outcome = FlushOutcome(
                FlushStatus.TIMEOUT,
                exported=outcome.exported,
                error="the exporter did not shut down in time",
            )
        return outcome

    async def _abandon(self, waiter: FlushWaiter) -> FlushOutcome:
        """The shutdown deadline passed: drop what is queued, cancel what is in flight, report what is left."""
        first, weights = self._queue.drop_all()
        for flush in self._flushes:  # this shutdown's waiter, and any force_flush waiting alongside
            flush.dropped += sum(weights[: max(0, flush.mark - first)])
        self._check_flushes()  # a flush with nothing in flight is complete now
        self._close_lane("the shutdown deadline passed")
        tasks = list(self._running)
        for task in tasks:
            self._running[task].cancel_reason = "the shutdown deadline passed"
            task.cancel()
        if tasks:
            await asyncio.wait(tasks, timeout=SHUTDOWN_GRACE)
        waiter.error = waiter.error or "the shutdown deadline passed"
        return waiter.outcome(FlushStatus.TIMEOUT, pending=self._pending(waiter.mark))

    async def _shutdown_exporter(self, remaining: float | None, wait: float | None) -> bool:
        task = asyncio.ensure_future(self._exporter.shutdown(timeout=remaining))
        done, _ = await asyncio.wait({task}, timeout=wait)
        if not done:
            task.cancel()
            logger.warning("the %s exporter did not shut down within %.3gs", self._signal.value, remaining)
            return False
        if task.cancelled():  # pragma: no cover - an exporter that cancels itself
            return False
        exc = task.exception()
        if exc is not None:
            logger.warning("the %s exporter failed to shut down: %s", self._signal.value, describe(exc))
        return True

    def _flush_mark(self, loop: asyncio.AbstractEventLoop) -> FlushWaiter:
        """Register a flush of everything admitted so far, and make the worker export it now."""
        with self._queue.lock:
            mark = self._queue.admitted
        waiter = FlushWaiter(mark, loop.create_future())
        self._flushes.append(waiter)
        self._drain_to = max(self._drain_to, mark)
        if self._worker is None or self._worker.done():
            self._pump()  # not running (yet, or any more): export on this coroutine's behalf
        self._wake()
        if self._lane is not None:
            self._lane_on_loop()  # settles what the lane finished, and has it wake the loop while the flush waits
        self._check_flushes()
        return waiter

    async def _wait(self, waiter: FlushWaiter, deadline: float | None) -> bool:
        if not waiter.future.done():
            loop = asyncio.get_running_loop()
            timeout = None if deadline is None else max(0.0, deadline - loop.time())
            await asyncio.wait({waiter.future}, timeout=timeout)
        return waiter.future.done()

    def _discard(self, waiter: FlushWaiter) -> None:
        if waiter in self._flushes:
            self._flushes.remove(waiter)
        if not waiter.future.done():
            waiter.future.cancel()

    def _pending(self, mark: int) -> int:
        in_flight = sum(b.weight for b in self._batches_in_flight() if b.first < mark)
        return self._queue.weight_before(mark) + in_flight
