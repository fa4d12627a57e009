"""Which event loop a batch processor exports on, and when it moves: the one place for these rules.

A :class:`~aiotlp.processing.BatchProcessor` belongs to one event loop at a time. Without a ``fallback_loop`` that
is the loop it was started on, for good. With one (the ``aiotlp.sdk`` processors give aiotlp's bridge thread),
it leaves a loop that cannot export any more for the fallback, taking everything it holds along:

```
                  start(loop)                          the loop shuts down (asyncio.run cancels the worker),
   new ---------------------------> on the loop ----- is closed, or is found not running while items wait ----+
    |                                   |   |                                                                  |
    |   start(a closed loop)            |   +-- move_to_fallback() (a sync flush/shutdown on its own thread) --+
    +-----------------------------------|------------------------------------------------------------------+   |
                                        |                                                                  v   v
                                        +--- shutdown() ---> shut down <---- shutdown() ---- on the fallback loop
```

"Found not running" is checked where it costs nothing on the hot path: at a full batch put from a thread that
is not the loop's (``_wake_threadsafe``), at every flush and shutdown made from elsewhere, and by the fallback
loop itself every ``schedule_delay`` (:meth:`LoopBinding._watch`). That covers a loop left open at exit after
``run_until_complete``, a loop driven in turns, a ``loop=`` that never runs, and one closed without ``asyncio.run``.

A move takes the batches in flight on the old loop and exports them again on the new one (at-least-once: the
collector may see such a batch twice; the ledger counts it once). It rebinds under the bind lock
(``_start_lock``), which the old loop's thread also takes to start a batch (queue -> in flight) and to settle
one: a batch is always either queued or in flight on the current loop, never lost between the two, even when the
old loop starts running again during the move. On the old loop, if it ever runs again, the worker and the
leftover export tasks are cancelled and flushes waiting there are woken (they go on where the processor went).
The exporter's connections there: a loop that ends while the processor is on it (``asyncio.run``), or that the
processor leaves from its own thread (``move_to_fallback``), has the exporter's ``detach_loop()`` called there; a
loop found not running has ``release_loop(loop)`` called (the connections are let go, never closed nor
finalized). An export task left on the old loop that had not started yet never starts its export.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import weakref
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Final, Generic, TypeVar

from ..model import Signal
from ._hooks import Hooks
from ._queue import BoundedQueue

__all__ = ["SHUTDOWN_GRACE", "Batch", "LoopBinding"]

#: After the shutdown deadline: how long to wait for cancelled exports to end, and (separately) for the
#: exporter's own shutdown to close its connections; also what the exporter gets to let go of a loop going away.
SHUTDOWN_GRACE: Final = 0.05

T = TypeVar("T")

logger = logging.getLogger("aiotlp.processing")


class Batch:
    """A batch handed to the exporter: kept until it settles, so that it can be sent again elsewhere."""

    __slots__ = ("cancel_reason", "count", "first", "items", "started", "weight")

    def __init__(self, items: list[Any], weight: int, first: int, count: int, started: float) -> None:
        self.items = items  # kept until it settles: a batch whose loop went away is exported again elsewhere
        self.weight = weight
        self.first = first  # sequence number of its first entry
        self.count = count  # entries
        self.started = started
        self.cancel_reason: str | None = None


class LoopBinding(Generic[T]):
    """The loop part of :class:`~aiotlp.processing.BatchProcessor` (see the module docstring): binding, watching,
    moving. The processor provides the state below and the worker (``_run``), ``_start_batch`` and ``_wake``."""

    _fallback: Callable[[], asyncio.AbstractEventLoop] | None
    _start_lock: threading.Lock
    _loop: asyncio.AbstractEventLoop | None
    _loop_thread: int | None  # the thread running the worker, once it runs
    _worker: asyncio.Task[None] | None
    _waiter: asyncio.Future[None] | None  # what the idle worker awaits
    _stopping: bool
    _running: dict[asyncio.Task[Any], Batch]  # exports in flight on the current loop
    _orphans: list[Batch]  # in flight when their loop went away: exported again after the move
    _lost: bool  # the worker was cancelled from outside: the loop is shutting down
    _worker_gone: bool  # ... and it has let go of the loop: move once the exports in flight have ended
    _flushes: list[Any]  # waiters with a ``future`` on the current loop
    _room: set[asyncio.Future[None]]  # blocked puts
    _queue: BoundedQueue[T]
    _schedule_delay: float
    _hooks: Hooks  # the exporter's optional hooks (detach_loop, release_loop)
    _signal: Signal

    if TYPE_CHECKING:

        async def _run(self) -> None: ...

        def _start_batch(self, loop: asyncio.AbstractEventLoop, batch: Batch) -> None: ...

        def _wake(self) -> None: ...

    # ------------------------------------------------------------------------------------------------ start

    def start(self, loop: asyncio.AbstractEventLoop | None = None) -> None:
        """Bind the processor to ``loop`` (default: the running loop) and start its worker there.

        ``loop`` may run in another thread, or not run yet. Starting again on the same loop does nothing;
        on another loop it raises ``RuntimeError``, as does a call without ``loop`` and without a running loop.
        Without an explicit ``start``, the first use from a running loop starts the processor on that loop.
        With a ``fallback_loop``, a closed ``loop`` binds the processor to the fallback instead, and the fallback
        watches ``loop`` (see the module docstring).
        """
        running = asyncio._get_running_loop()
        if loop is None:
            if running is None:
                raise RuntimeError("BatchProcessor.start() needs a running event loop, or loop=")
            loop = running
        if loop.is_closed() and self._fallback is not None:
            loop = self._fallback()
        with self._start_lock:
            if self._loop is not None:
                if self._loop is loop:
                    return
                raise RuntimeError("this BatchProcessor is already bound to another event loop")
            self._loop = loop
            if loop is running:
                self._loop_thread = threading.get_ident()
                self._spawn_worker(loop)
            else:  # the worker is made when the loop runs (a loop that never runs holds no coroutine of ours)
                loop.call_soon_threadsafe(self._spawn_worker, loop)
        self._watch(loop)

    def _spawn_worker(self, loop: asyncio.AbstractEventLoop) -> None:
        if self._loop is loop and self._worker is None and not self._stopping:
            self._worker = loop.create_task(self._run(), name=f"aiotlp-batch-processor-{self._signal.value}")
            self._worker.add_done_callback(_log_crash)

    def _watch(self, loop: asyncio.AbstractEventLoop) -> None:
        """With a fallback loop: look at ``loop`` every ``schedule_delay`` from the fallback, and move there when
        ``loop`` holds items but is not running (stopped between ``run_until_complete`` calls, never run, closed
        without ``asyncio.run``). Not for the fallback loop itself."""
        fallback = self._fallback
        if fallback is None or self._stopping:
            return
        watcher = fallback()
        if watcher is loop:
            return
        ref = weakref.ref(self)
        delay = self._schedule_delay

        def check() -> None:
            processor = ref()
            if processor is None or processor._loop is not loop or processor._stopping:
                return
            if not loop.is_running() and (processor._queue.queued or processor._running):
                processor._move_from_stopped(loop)
                return
            watcher.call_later(delay, check)

        with contextlib.suppress(RuntimeError):  # the fallback loop is closing (interpreter exit)
            watcher.call_soon_threadsafe(watcher.call_later, delay, check)

    async def _loop_lost(self) -> None:
        """The worker was cancelled from outside while its loop is shutting down: let the exporter let go of
        the loop (close its connections there), then move once the cancelled exports have ended."""
        self._lost = True
        detach = self._hooks.detach_loop
        if detach is not None:
            try:
                await asyncio.wait_for(detach(), SHUTDOWN_GRACE)
            except Exception as exc:  # its connections stay behind; nothing queued is lost
                logger.debug("the %s exporter did not let go of the loop: %r", self._signal.value, exc)
        self._worker_gone = True
        self._maybe_move()

    def _maybe_move(self) -> None:
        if self._worker_gone and not self._running:
            self._move(self._loop)

    def _move(self, old: asyncio.AbstractEventLoop | None, *, take_running: bool = False) -> bool:
        """Rebind to the fallback loop and resume there: the worker, then the orphaned batches, exported again.

        ``take_running``: the batches in flight on ``old`` become orphans too (``old`` is stopped or closed, or
        this is its own thread). False if there is no fallback, or another thread moved first.
        """
        fallback = self._fallback
        if fallback is None or self._stopping:
            return False
        new = fallback()
        with self._start_lock:
            if self._loop is not old or new is old:
                return False
            worker = self._worker
            left = [*self._running, *([worker] if worker is not None else [])]
            if take_running:
                self._orphans.extend(self._running.values())
                self._running.clear()
            self._loop = new
            self._loop_thread = None
            self._worker = None
            self._waiter = None
            self._lost = self._worker_gone = False
            orphans, self._orphans = self._orphans, []
            # Flushes and blocked puts waiting on the old loop: woken there (if it ever runs again), they notice
            # the move and continue on the new loop.
            flushes, self._flushes = self._flushes, []
            rooms, self._room = self._room, set()
        if old is not None and take_running:
            self._let_go(old, left, [waiter.future for waiter in flushes] + list(rooms))
        logger.debug("the %s processor's event loop went away; moved to %r", self._signal.value, new)
        new.call_soon_threadsafe(self._resume, orphans)
        self._watch(new)
        return True

    def _let_go(
        self, old: asyncio.AbstractEventLoop, tasks: list[asyncio.Task[Any]], futures: list[asyncio.Future[None]]
    ) -> None:
        """After a move that took the batches in flight: the old loop's worker and leftover export tasks are
        cancelled and its waiters woken when that loop next runs (at once if this is its thread; if it never runs
        again, they stay there quietly). The exporter's connections there: on a loop that runs (this is its
        thread), its ``detach_loop()`` closes them there when the loop gets control back; an old loop that is not
        running gets ``release_loop(loop)``: the exporter lets go of them without closing them (closing them from
        here could stop half-way on a loop run in turns; left to the garbage collector they would warn)."""
        for task in tasks:  # pending for good on a closed loop: not an error of the application's to report
            with contextlib.suppress(AttributeError):
                task._log_destroy_pending = False  # type: ignore[attr-defined]

        running = old.is_running()  # only on its own thread (move_to_fallback): it gets control back soon
        detach = self._hooks.detach_loop if running else None

        def on_old_loop() -> None:
            for task in tasks:
                task.cancel()
            for future in futures:
                resolve(future)
            if detach is not None:
                old.create_task(detach()).add_done_callback(_ignore_result)

        with contextlib.suppress(RuntimeError):  # closed: nothing of it will run again
            old.call_soon_threadsafe(on_old_loop)
        release = self._hooks.release_loop
        if release is not None and not running:
            try:
                release(old)
            except Exception as exc:  # its connections stay there: nothing queued is lost
                logger.debug("release_loop() failed: %r", exc)

    def _resume(self, orphans: list[Batch]) -> None:
        loop = self._loop
        assert loop is not None
        self._loop_thread = threading.get_ident()
        self._spawn_worker(loop)
        for batch in orphans:
            batch.started = loop.time()
            batch.cancel_reason = None
            self._start_batch(loop, batch)
        self._wake()

    def _move_from_stopped(self, old: asyncio.AbstractEventLoop) -> bool:
        """``old`` is not running (stopped, closed, or never run): move what it held to the fallback loop now.
        Any thread. False without a fallback, or when ``old`` runs (again) or another thread moved first."""
        if self._fallback is None or old.is_running():
            return False
        return self._move(old, take_running=True)

    def move_to_fallback(self) -> bool:
        """Leave the current loop for the fallback loop now; call it on the current loop's own thread.

        For synchronous code on the loop's thread that must wait for exports (an SDK ``force_flush`` from a
        coroutine): it blocks the loop, so the exports must run elsewhere. Exports in flight are cancelled here
        and sent again from the fallback loop (at-least-once: the collector may see them twice).
        False without a fallback loop or when not on the current loop's thread.
        """
        old = self._loop
        if old is None or self._fallback is None or asyncio._get_running_loop() is not old:
            return False
        return self._move(old, take_running=True)


def resolve(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)


def _ignore_result(task: asyncio.Task[Any]) -> None:
    if not task.cancelled() and (exc := task.exception()) is not None:
        logger.debug("detach_loop() failed: %r", exc)


def _log_crash(task: asyncio.Task[None]) -> None:
    if not task.cancelled() and (exc := task.exception()) is not None:  # pragma: no cover - a bug
        logger.error("the batch processor's worker crashed", exc_info=exc)
