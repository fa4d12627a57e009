"""Flush and shutdown from elsewhere: awaited on another loop, or called from synchronous code on another thread.

Both run the work on the processor's own loop (:mod:`aiotlp.processing._flushing`) and wait for it there, a
little past its own deadline; a loop that is not running any more is first left for the fallback loop, if any
(:mod:`aiotlp.processing._binding`), and otherwise answers at once: nothing can be exported there.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
from collections.abc import Awaitable, Callable, Coroutine
from typing import TYPE_CHECKING, Any, Generic, TypeVar

from .._validate import optional_seconds
from ._binding import SHUTDOWN_GRACE
from ._queue import BoundedQueue
from ._stats import FlushOutcome, FlushStatus

__all__ = ["ThreadHops"]

T = TypeVar("T")

logger = logging.getLogger("aiotlp.processing")


class ThreadHops(Generic[T]):
    """The cross-loop and cross-thread part of :class:`~aiotlp.processing.BatchProcessor`."""

    _loop: asyncio.AbstractEventLoop | None
    _queue: BoundedQueue[T]
    _shutdown: asyncio.Future[FlushOutcome] | None

    if TYPE_CHECKING:

        def _move_from_stopped(self, old: asyncio.AbstractEventLoop) -> bool: ...

        async def _force_flush(self, timeout: float | None) -> FlushOutcome: ...

        async def _shutdown_on_loop(self, timeout: float | None) -> FlushOutcome: ...

        def _repeated_shutdown(self) -> FlushOutcome: ...

        async def shutdown(self, timeout: float | None = None) -> FlushOutcome: ...

    def _hop_to_own_loop(
        self,
        method: Callable[[float | None], Coroutine[Any, Any, FlushOutcome]],
        timeout: float | None,
        *,
        shutdown: bool,
    ) -> Awaitable[FlushOutcome] | None:
        """When awaited on another loop than the processor's, run ``method`` on the processor's loop (after a move
        to the fallback loop if the processor's loop is not running)."""
        own = self._loop
        running = asyncio.get_running_loop()
        if own is not None and own is not running and not own.is_running() and self._move_from_stopped(own):
            own = self._loop
        if own is None or own is running:
            return None
        if not own.is_running():
            return _done(self._without_loop(shutdown=shutdown))
        future = asyncio.run_coroutine_threadsafe(method(timeout), own)
        return _bounded(asyncio.wrap_future(future), timeout)

    def _without_loop(self, *, shutdown: bool) -> FlushOutcome:
        """The processor's loop is not running (stopped, closed): nothing can be exported any more.

        A shutdown still closes the queue and drops what it holds (as ``shutdown``), so that nothing is
        admitted and left behind unseen.
        """
        error = "the processor's event loop is not running"
        if not shutdown:
            return FlushOutcome(FlushStatus.FAILURE, error=error)
        self._queue.close()
        _, weights = self._queue.drop_all()
        return FlushOutcome(FlushStatus.FAILURE, dropped=sum(weights), error=error)

    def force_flush_threadsafe(self, timeout: float | None = None) -> FlushOutcome:
        """:meth:`force_flush` for synchronous code on another thread than the processor's loop.

        Runs it on the processor's loop and waits. On the loop's own thread it would deadlock: it returns a
        ``failure`` outcome at once (and logs a warning) instead. Truthy exactly on success.
        """
        return self._threadsafe(self._force_flush, timeout, "force_flush")

    def shutdown_threadsafe(self, timeout: float | None = None) -> FlushOutcome:
        """:meth:`shutdown` for synchronous code on another thread; same rules as :meth:`force_flush_threadsafe`.

        A processor that was never started is shut down on a private event loop in this thread.
        """
        timeout = optional_seconds(timeout, "timeout")
        if self._shutdown is not None:
            return self._repeated_shutdown()
        if self._loop is None and asyncio._get_running_loop() is None:
            return asyncio.run(self.shutdown(timeout))
        return self._threadsafe(self._shutdown_on_loop, timeout, "shutdown")

    def _threadsafe(
        self,
        method: Callable[[float | None], Coroutine[Any, Any, FlushOutcome]],
        timeout: float | None,
        name: str,
    ) -> FlushOutcome:
        timeout = optional_seconds(timeout, "timeout")
        own = self._loop
        if own is not None and not own.is_running() and self._move_from_stopped(own):
            own = self._loop
        if own is None:
            if self._queue.queued == 0:
                return FlushOutcome(FlushStatus.SUCCESS)
            return FlushOutcome(FlushStatus.FAILURE, error="the processor was never started")
        if asyncio._get_running_loop() is own:
            logger.warning("%s_threadsafe() was called on the processor's own loop; await %s() instead", name, name)
            return FlushOutcome(
                FlushStatus.FAILURE, error=f"{name}_threadsafe() called on the processor's loop: await {name}()"
            )
        if own.is_closed() or not own.is_running():
            return self._without_loop(shutdown=name == "shutdown")
        future = asyncio.run_coroutine_threadsafe(method(timeout), own)
        try:
            return future.result(None if timeout is None else timeout + 4 * SHUTDOWN_GRACE)
        except concurrent.futures.TimeoutError:
            future.cancel()
            return FlushOutcome(FlushStatus.TIMEOUT, error=f"{name} did not finish in time")
        except concurrent.futures.CancelledError:  # the loop shut down under it
            return FlushOutcome(FlushStatus.FAILURE, error=f"{name} was cancelled: its event loop shut down")


async def _done(outcome: FlushOutcome) -> FlushOutcome:
    return outcome


async def _bounded(future: asyncio.Future[FlushOutcome], timeout: float | None) -> FlushOutcome:
    """Wait for an outcome computed on another loop; give up a little after its own deadline."""
    done, _ = await asyncio.wait({future}, timeout=None if timeout is None else timeout + 4 * SHUTDOWN_GRACE)
    if not done:
        future.cancel()
        return FlushOutcome(FlushStatus.TIMEOUT, error="the processor's loop did not answer in time")
    return future.result()
