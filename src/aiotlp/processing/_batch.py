"""The batch processor: a bounded queue in front of an exporter, one processor per signal.

Threading model
---------------
* A processor belongs to one asyncio event loop, its *loop*: :meth:`BatchProcessor.start` picks it (or the
  first ``put_nowait``/``put``/``force_flush``/``shutdown`` made from a running loop). The worker task, the
  export tasks, the timers and every ``await``-able method run there. With a ``fallback_loop`` it moves there
  when its loop can no longer export (:mod:`aiotlp.processing._binding`: the rules and their state diagram).
* :meth:`~BatchProcessor.put_nowait` may be called from any thread. It does O(1) work under a
  ``threading.Lock`` (append, count) and returns; it never blocks, awaits or raises. It wakes the worker only
  when a batch becomes full, once per batch (directly on the loop thread, with ``call_soon_threadsafe`` from
  others); anything else waits for the next ``schedule_delay`` tick.
* The lock is never held across an ``await``; the worker takes a whole batch (one chunk) in O(1) under it.
* From another thread use :meth:`~BatchProcessor.force_flush_threadsafe` / ``shutdown_threadsafe``; awaiting
  ``force_flush``/``shutdown`` on another loop also works (they hop to the processor's loop).
* :meth:`~BatchProcessor.statistics` is consistent from any thread (the whole ledger is under the lock).

Exports
-------
The worker exports the head batch when it is full (``max_export_batch_size`` items, or metric data points),
and everything queued at each periodic tick, every ``schedule_delay`` seconds (the tick is periodic, not
relative to the first item, so an item waits at most ``schedule_delay`` unless exports are the bottleneck),
and, for a ``force_flush``, everything put before the call. At most ``max_concurrent_exports`` export calls run
at once (default 1: the SDK specification forbids concurrent calls on one exporter), each cancelled after
``export_timeout`` seconds (its items count as failed). A metric with more data points than a batch is
exported alone, whole.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import threading
from collections.abc import Awaitable, Callable, Sequence
from types import MappingProxyType
from typing import Any, Final, Literal, TypeVar, cast, get_args

from .._exceptions import ConfigurationError
from .._ratelimit import RateLimitedLogger
from .._validate import positive_int, seconds
from ..config import BatchConfig
from ..export import Exporter, ExportResult
from ..model import Signal
from ._binding import Batch, LoopBinding, resolve
from ._flushing import Flushing, FlushWaiter
from ._hooks import Hooks
from ._hops import ThreadHops
from ._queue import ADMITTED, NO_ROOM, READY, BoundedQueue, estimate_size
from ._selfmetrics import SelfMetrics
from ._settle import Settlement, describe, settle
from ._shipping import LaneShipping
from ._stats import FlushOutcome, ProcessorStatistics

__all__ = ["BatchProcessor", "OverflowPolicy"]

T = TypeVar("T")

OverflowPolicy = Literal["drop_newest", "drop_oldest", "block"]
"""What a full queue does with a new item: drop it, evict the oldest queued ones for it, or (``await put()``)
wait for room."""
_POLICIES: Final[tuple[str, ...]] = get_args(OverflowPolicy)

logger = logging.getLogger("aiotlp.processing")

_EXPORT_METHOD: Final = {Signal.TRACES: "export_traces", Signal.METRICS: "export_metrics", Signal.LOGS: "export_logs"}
_NOUN: Final = {Signal.TRACES: "spans", Signal.METRICS: "metric data points", Signal.LOGS: "log records"}


def _metric_points(metric: Any) -> int:
    return len(metric.data.data_points)


class BatchProcessor(Flushing[T], ThreadHops[T], LoopBinding[T], LaneShipping[T]):
    """Batches items of one signal and exports them through ``exporter`` (see the module docstring).

    Producers call :meth:`put_nowait` (any thread; never blocks, never raises; False when the item was dropped)
    or, on the processor's loop, ``await`` :meth:`put` (which waits for room under the ``block`` policy).
    Everything is counted: :meth:`statistics` satisfies
    ``produced == exported + rejected + failed + sum(dropped) + queued + in_flight`` at every snapshot.

    Parameters (validated here; every error is a :class:`~aiotlp.ConfigurationError` naming the parameter):

    * ``exporter``: an :class:`~aiotlp.Exporter`; ``export_<signal>`` and ``shutdown`` are called, and when it has
      them, ``start()`` (on the processor's loop, when the worker starts) and ``async force_flush(timeout)`` (after
      a flush's exports: a :class:`~aiotlp.DurableExporter` then makes its queue durable);
    * ``signal``: which ``export_*`` method to call, and the unit: spans, log records, or metric data points;
    * ``max_queue_size``: items (data points for metrics) the queue holds; ``max_queue_bytes``: optional byte cap,
      measured by ``size_of`` (default :func:`~aiotlp.processing.estimate_size`); full when either is reached;
    * ``max_export_batch_size``: at most this many per export call (at most ``max_queue_size``);
    * ``schedule_delay``: seconds between periodic ticks that export whatever is queued;
    * ``export_timeout``: seconds one export call may take before it is cancelled;
    * ``max_concurrent_exports``: export calls in flight at once;
    * ``policy``: when full, ``drop_newest`` drops the new item, ``drop_oldest`` evicts the oldest queued ones to
      admit it, ``block`` makes ``await put()`` wait for room (``put_nowait`` then drops the new item);
    * ``meter_provider``: an OpenTelemetry ``MeterProvider`` for the self-metrics (see ``_selfmetrics``);
    * ``fallback_loop``: a callable returning another event loop (e.g. one running in a thread of its own) that
      the processor moves to when its loop goes away or stops while it still holds items (the rules and their
      state diagram: :mod:`aiotlp.processing._binding`); without it, what the loop held when it closed is
      dropped at shutdown, counted;

    The disk queue is not this layer's: :class:`aiotlp.BatchProcessor` (:mod:`aiotlp.pipeline`) adds
    ``queue_dir`` and puts the exporter behind it.
    """

    def __init__(
        self,
        exporter: Exporter,
        signal: Signal,
        *,
        max_queue_size: int = 2048,
        max_queue_bytes: int | None = None,
        max_export_batch_size: int = 512,
        schedule_delay: float = 5.0,
        export_timeout: float = 30.0,
        max_concurrent_exports: int = 1,
        policy: OverflowPolicy = "drop_newest",
        size_of: Callable[[T], int] | None = None,
        meter_provider: object | None = None,
        fallback_loop: Callable[[], asyncio.AbstractEventLoop] | None = None,
    ) -> None:
        try:
            signal = Signal(signal)
        except ValueError:
            raise ConfigurationError(
                f"signal must be one of {', '.join(repr(s.value) for s in Signal)}, got {signal!r}"
            ) from None
        method = getattr(exporter, _EXPORT_METHOD[signal], None)
        if not callable(method) or not callable(getattr(exporter, "shutdown", None)):
            raise ConfigurationError(
                f"exporter must have {_EXPORT_METHOD[signal]}() and shutdown() (an aiotlp Exporter), "
                f"got {type(exporter).__name__}"
            )
        max_queue_size = positive_int(max_queue_size, "max_queue_size")
        if max_queue_bytes is not None:
            max_queue_bytes = positive_int(max_queue_bytes, "max_queue_bytes")
        max_export_batch_size = positive_int(max_export_batch_size, "max_export_batch_size")
        if max_export_batch_size > max_queue_size:
            raise ConfigurationError(
                f"max_export_batch_size ({max_export_batch_size}) must not be larger than "
                f"max_queue_size ({max_queue_size})"
            )
        self._schedule_delay = seconds(schedule_delay, "schedule_delay")
        self._export_timeout = seconds(export_timeout, "export_timeout")
        self._max_concurrent = positive_int(max_concurrent_exports, "max_concurrent_exports")
        if policy not in _POLICIES:
            raise ConfigurationError(f"policy must be one of {', '.join(map(repr, _POLICIES))}, got {policy!r}")
        if fallback_loop is not None and not callable(fallback_loop):
            raise ConfigurationError(
                f"fallback_loop must be a callable returning an event loop, or None, got {type(fallback_loop).__name__}"
            )
        if size_of is not None and not callable(size_of):
            raise ConfigurationError(f"size_of must be a callable or None, got {type(size_of).__name__}")
        if max_queue_bytes is not None and size_of is None:
            size_of = estimate_size
        elif max_queue_bytes is None:
            size_of = None  # bytes are only measured under a byte cap

        self._exporter = exporter
        self._hooks = Hooks.of(exporter)
        self._signal = signal
        self._policy: OverflowPolicy = policy
        self._export = cast(Callable[[Sequence[T]], Awaitable[ExportResult]], method)
        self._queue: BoundedQueue[T] = BoundedQueue(
            max_size=max_queue_size,
            max_bytes=max_queue_bytes,
            batch_size=max_export_batch_size,
            drop_oldest=policy == "drop_oldest",
            weigh=_metric_points if signal is Signal.METRICS else None,
            size_of=size_of,
        )
        self._put = self._queue.put
        self._metrics = (
            None
            if meter_provider is None
            else SelfMetrics(meter_provider, signal=signal, exporter=exporter, queue=self._queue)
        )

        # The loop binding (what each means: LoopBinding's declarations in _binding.py).
        self._start_lock = threading.Lock()  # the bind lock: rebinding, and moving a batch queued -> in flight
        self._loop: asyncio.AbstractEventLoop | None = None  # the loop it exports on; None until started
        self._loop_thread: int | None = None  # the thread running the worker, once it runs
        self._fallback = fallback_loop
        self._orphans: list[Batch] = []  # in flight when their loop went away: exported again after the move
        self._lost = False  # the worker was cancelled from outside: the loop is shutting down
        # ... and the exporter has let go of that loop (detach_loop): move as soon as no export is in flight
        self._worker_gone = False
        # The worker.
        self._worker: asyncio.Task[None] | None = None
        self._waiter: asyncio.Future[None] | None = None  # what the idle worker awaits: resolved to wake it
        # Set by _wake and cleared by the worker before it looks at the queue: a wake-up that comes while the worker
        # is busy (not awaiting _waiter) makes it look again instead of sleeping until the next tick.
        self._wake_flag = False
        self._stopping = False  # shutdown has exported what it could: the worker ends on its next iteration
        # The loop whose worker is waiting for work (its exporter's start() done), or None: a full batch put from
        # another thread is launched straight from the loop's callback then (_ready), without waking the worker.
        self._worker_on: asyncio.AbstractEventLoop | None = None
        # Sequence number up to which queued entries are due now, whole batch or not: raised by each periodic tick
        # (to everything admitted by then) and by each flush (to its mark). Entries past it wait for a full batch.
        self._drain_to = 0
        self._running: dict[asyncio.Task[Any], Batch] = {}  # export tasks in flight on the current loop
        self._init_lane()  # the native lane, when one is attached (LaneShipping)
        # One timer for every export's export_timeout (not one per export): armed on the loop it watches for the
        # earliest deadline among the exports in flight there; when it fires it cancels those past theirs and
        # arms itself for the next (see _expire_overdue).
        self._watchdog: asyncio.TimerHandle | None = None
        self._watchdog_loop: asyncio.AbstractEventLoop | None = None
        # Flushing.
        self._flushes: list[FlushWaiter] = []  # flushes (and the shutdown) waiting for their mark to settle
        self._room: set[asyncio.Future[None]] = set()  # puts waiting for room under the block policy
        self._shutdown: asyncio.Future[FlushOutcome] | None = None  # set when shutdown begins; then its outcome
        # Logging. _drops_logged: the queue_full drops counted in the last "dropped ... so far" line, so that the
        # line is written again (rate-limited) only when there are new drops.
        self._drops_logged = 0
        self._failure_log = RateLimitedLogger(logger, logging.WARNING, interval=10.0)
        self._drop_log = RateLimitedLogger(logger, logging.WARNING, interval=60.0)

    @classmethod
    def from_config(cls, exporter: Exporter, signal: Signal, config: BatchConfig, **kwargs: Any) -> BatchProcessor[Any]:
        """A processor with ``config``'s settings (e.g. ``BatchConfig.from_env("span")``); ``kwargs`` add the rest."""
        if not isinstance(config, BatchConfig):
            raise ConfigurationError(f"config must be a BatchConfig, got {type(config).__name__}")
        return cls(
            exporter,
            signal,
            max_queue_size=config.max_queue_size,
            max_export_batch_size=config.max_export_batch_size,
            schedule_delay=config.schedule_delay,
            export_timeout=config.export_timeout,
            **kwargs,
        )

    def __repr__(self) -> str:
        state = "shut down" if self._shutdown is not None else "running" if self._loop is not None else "new"
        return (
            f"<BatchProcessor {self._signal.value} {state} queued={self._queue.queued}/{self._queue.max_size} "
            f"policy={self._policy}>"
        )

    async def __aenter__(self) -> BatchProcessor[T]:
        self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.shutdown()

    # ---------------------------------------------------------------------------------------------- properties

    @property
    def signal(self) -> Signal:
        return self._signal

    @property
    def exporter(self) -> Exporter:
        return self._exporter

    @property
    def policy(self) -> OverflowPolicy:
        return self._policy

    @property
    def max_concurrent_exports(self) -> int:
        """Export calls in flight at once. Settable (a positive int, validated), from the processor's loop or before
        it starts: a raise takes effect when the next batch is due or an export ends; a cut lets the exports in
        flight end."""
        return self._max_concurrent

    @max_concurrent_exports.setter
    def max_concurrent_exports(self, value: int) -> None:
        self._max_concurrent = positive_int(value, "max_concurrent_exports")

    @property
    def schedule_delay(self) -> float:
        """Seconds between the periodic ticks that export whatever is queued."""
        return self._schedule_delay

    @property
    def loop(self) -> asyncio.AbstractEventLoop | None:
        """The processor's event loop, once started."""
        return self._loop

    @property
    def is_shutdown(self) -> bool:
        """True once :meth:`shutdown` has begun (puts are then dropped as ``already_shutdown``)."""
        return self._queue.closed

    # ---------------------------------------------------------------------------------------------- produce

    def _autostart(self) -> None:
        running = asyncio._get_running_loop()
        if running is not None:
            # RuntimeError: lost a race with a start() on another loop; that one wins.
            with contextlib.suppress(RuntimeError):
                self.start(running)

    def put_nowait(self, item: T) -> bool:
        """Queue ``item`` for export; False if it was dropped (counted). Any thread; never blocks or raises."""
        if self._loop is None:
            self._autostart()
        code = self._put(item)
        if code == ADMITTED:
            return True
        if code == READY:
            self.batch_ready()
            return True
        return False

    def stop_accepting(self) -> None:
        """Refuse every item from now on (dropped, counted as ``already_shutdown``), exporting nothing and shutting
        nothing down: for a processor that must stay shut in a process where it cannot run (a forked child of a
        process that shut it down). :meth:`shutdown` does this first, then exports what is queued."""
        self._queue.close()

    async def put(self, item: T) -> bool:
        """Queue ``item``; under the ``block`` policy wait for room first. False if it was dropped (counted).

        It waits only on the processor's own loop; elsewhere, and under the other policies, it is
        :meth:`put_nowait`. A shutdown ends the wait (the item is then dropped as ``already_shutdown``).
        A ``put`` is counted in ``produced`` when it ends, not while it waits.
        """
        if self._policy != "block":
            return self.put_nowait(item)
        if self._loop is None:
            self._autostart()
        loop = asyncio.get_running_loop()
        if loop is not self._loop:
            return self.put_nowait(item)
        queue = self._queue
        while True:
            code = queue.put(item, wait=True)
            if code != NO_ROOM:
                break
            room = loop.create_future()
            self._room.add(room)
            try:
                await room
            finally:
                self._room.discard(room)
        if code == READY:
            self._wake()
        return code in (ADMITTED, READY)

    # -------------------------------------------------------------------------------------------- the worker

    def _wake(self) -> None:
        """Loop thread only: make the worker look at the queue again."""
        self._wake_flag = True
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    @property
    def queue(self) -> BoundedQueue[T]:
        """The queue, for a producer's hot path that puts into it directly (:func:`aiotlp.processing.put_sized`,
        ``BoundedQueue.put_sized``) once the processor is started; such a producer calls :meth:`batch_ready` when
        a put returns ``READY``. Everything else goes through :meth:`put_nowait`."""
        return self._queue

    def batch_ready(self) -> None:
        """After a direct put on :attr:`queue` returned ``READY``: wake the worker (any thread; never raises), or,
        with a lane attached, send the ready batches on it from this thread (:mod:`aiotlp.processing._shipping`)."""
        lane = self._lane
        if lane is not None and self._ship(lane):
            return
        self._wake_threadsafe()

    def _wake_threadsafe(self) -> None:
        if threading.get_ident() == self._loop_thread and asyncio._get_running_loop() is self._loop:
            self._wake()
            return
        loop = self._loop
        if loop is None:
            return  # not started: start() looks at the queue anyway
        if not loop.is_running() and self._move_from_stopped(loop):
            return  # stopped, closed or never run: moved to the fallback loop, which exports this batch
        with contextlib.suppress(RuntimeError):  # the loop is closed (and there is no fallback): shutdown counts these
            loop.call_soon_threadsafe(self._ready)

    def _ready(self) -> None:
        """Loop thread, called soon after another thread's put made a batch full: start its export here, one
        loop iteration sooner than the worker would (and without the worker's own iteration); wake the worker
        when nothing could start (every export slot busy: the export that ends starts the next one), or when
        the worker is not waiting on this loop (not started, stopping, moving)."""
        loop = self._loop
        if self._worker_on is loop and loop is asyncio._get_running_loop() and not self._stopping:
            running = len(self._running)
            self._pump()
            if len(self._running) > running:
                return
        self._wake()

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        try:
            await self._work(loop)
        except asyncio.CancelledError:
            # Not our doing (shutdown stops the worker without cancelling it): the loop is shutting down
            # (asyncio.run cancels every task before closing it), or the processor moved away from it.
            if self._loop is loop and not self._stopping and self._fallback is not None:
                await self._loop_lost()
            raise

    async def _work(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop_thread = threading.get_ident()
        start = self._hooks.start
        if start is not None:
            # e.g. a DurableExporter: its delivery task sends what an earlier run left on disk, before new exports
            try:
                start()
            except Exception as exc:  # the exports will fail (and be counted) if it cannot work at all
                logger.error("the %s exporter failed to start: %s", self._signal.value, describe(exc))
        delay = self._schedule_delay
        next_tick = loop.time() + delay
        # The tick's timer stays armed across wake-ups until it fires (or the tick moves): a batch that wakes the
        # worker does not cost a timer of its own. [the timer while armed, the waiter it wakes while one waits]
        ticking: list[Any] = [None, None]
        armed_for = next_tick

        def on_tick() -> None:
            ticking[0] = None
            if ticking[1] is not None:
                resolve(ticking[1])

        self._worker_on = loop
        try:
            while not self._stopping and self._loop is loop:
                self._wake_flag = False
                self._pump()
                now = loop.time()
                if now >= next_tick:
                    if self._lane is not None:
                        self._lane_on_loop()  # full successes no producer collected (it stopped making batches)
                    self._drain_to = max(self._drain_to, self._queue.admitted)
                    next_tick += delay
                    if next_tick <= now:
                        next_tick = now + delay
                    self._report_drops()
                    continue
                if self._wake_flag or self._stopping:
                    continue
                waiter = self._waiter = ticking[1] = loop.create_future()
                if ticking[0] is None or armed_for != next_tick:
                    if ticking[0] is not None:
                        ticking[0].cancel()
                    ticking[0] = loop.call_at(next_tick, on_tick)
                    armed_for = next_tick
                try:
                    await waiter
                finally:
                    ticking[1] = None
                    # only our own: a worker left behind on a closed loop is closed when it is collected, and must
                    # not clear the waiter of the worker that replaced it (that one would then never be woken)
                    if self._waiter is waiter:
                        self._waiter = None
        finally:
            if self._worker_on is loop:
                self._worker_on = None
            if ticking[0] is not None:
                ticking[0].cancel()
            if not self._running:
                self._disarm_watchdog(loop)

    def _pump(self) -> None:
        """Start exports while a slot is free and a batch is due; then wake whoever waits on progress."""
        took = False
        queue = self._queue
        loop = self._loop
        more = not queue.idle(self._drain_to)  # (the common end of an export: nothing is due, no lock taken)
        while more and self._exports_in_flight() < self._max_concurrent:
            # under the bind lock: a move from a stopped loop (another thread) sees a batch either queued or
            # registered in flight, never between the two
            with self._start_lock:
                if loop is not self._loop or asyncio._get_running_loop() is not loop:
                    return  # moved away: this loop's worker and callbacks no longer export
                taken = queue.take_batch(self._drain_to, self._exports_in_flight() + 1 < self._max_concurrent)
                if taken is None:
                    break
                items, weight, first, more = taken
                self._launch(items, weight, first)
            took = True
        lane_full = self._lane is not None and self._exports_in_flight() >= self._max_concurrent
        if lane_full and loop is not None and asyncio._get_running_loop() is loop:
            self._lane_full(loop)
        if took and self._room:
            for room in self._room:
                if not room.done():
                    room.set_result(None)
        if self._flushes:
            self._check_flushes()

    def _launch(self, items: list[T], weight: int, first: int) -> None:
        loop = self._loop
        assert loop is not None
        batch = Batch(items, weight, first, len(items), loop.time())
        lane = self._lane
        if lane is not None and lane.room > 0 and lane.send(batch):
            self._on_lane.add(batch)
            # a flush waits for it: the loop settles it as soon as it ends (or now, when it ended already)
            if self._flushes and lane.wake_on_done():
                loop.call_soon(self._lane_on_loop)
            return
        self._start_batch(loop, batch)

    def _start_batch(self, loop: asyncio.AbstractEventLoop, batch: Batch) -> None:
        task = loop.create_task(self._call_export(batch.items))
        self._running[task] = batch
        task.add_done_callback(self._on_done)
        if self._watchdog is None or self._watchdog_loop is not loop:
            # none armed on this loop; one that is is due no later than this export's deadline (armed for an
            # export that started earlier), and arms itself again for this one when it fires
            self._arm_watchdog(loop, batch.started + self._export_timeout)

    def _arm_watchdog(self, loop: asyncio.AbstractEventLoop, when: float) -> None:
        self._watchdog = loop.call_at(when, self._expire_overdue, loop)
        self._watchdog_loop = loop

    def _disarm_watchdog(self, loop: asyncio.AbstractEventLoop) -> None:
        """No export in flight on ``loop`` and none to come (the worker ended, or the shutdown): its timer goes."""
        if self._watchdog is not None and self._watchdog_loop is loop:
            self._watchdog.cancel()
            self._watchdog = self._watchdog_loop = None

    def _expire_overdue(self, loop: asyncio.AbstractEventLoop) -> None:
        """The export_timeout timer fired on ``loop``: cancel the exports in flight there past their deadline,
        and watch for the earliest of the others'."""
        if self._watchdog_loop is not loop:
            return  # the processor moved on: the timer of the loop it is on now watches its exports
        self._watchdog = self._watchdog_loop = None
        if self._loop is not loop:
            return
        now = loop.time()
        earliest: float | None = None
        for task, batch in list(self._running.items()):
            deadline = batch.started + self._export_timeout
            if deadline <= now:
                self._expire(task)
            elif earliest is None or deadline < earliest:
                earliest = deadline
        if earliest is not None:
            self._arm_watchdog(loop, earliest)

    async def _call_export(self, items: list[T]) -> ExportResult:
        task = asyncio.current_task()
        if task is None or task not in self._running:
            # the processor moved away from this loop before the export started: it is sent from the new loop
            return ExportResult()
        result = await self._export(items)
        # Returned: settled here, in the task's last step, rather than by _on_done in a loop iteration of its own
        # (its callback until now: it settles every other end, a cancellation before this coroutine ran included).
        # Not while the processor is leaving this loop (_on_done's moves).
        if not (self._lost or self._worker_gone) and task.remove_done_callback(self._on_done):
            self._ended(task, None, None, result)
        return result

    def _expire(self, task: asyncio.Task[Any]) -> None:
        batch = self._running.get(task)
        if batch is not None and not task.done():
            batch.cancel_reason = f"the export took longer than export_timeout ({self._export_timeout:g}s)"
            task.cancel()

    def _on_done(self, task: asyncio.Task[Any]) -> None:
        if task.cancelled():
            self._ended(task, True, None, None)
        elif (exc := task.exception()) is not None:
            self._ended(task, False, exc, None)
        else:
            self._ended(task, False, None, task.result())

    def _ended(
        self, task: asyncio.Task[Any], cancelled: bool | None, exc: BaseException | None, result: object
    ) -> None:
        """Settle the batch of the export ``task`` (cancelled, raised ``exc`` or returned ``result``), then start
        the next. ``cancelled=None``: called by the task itself as it returns ``result`` (not done yet)."""
        with self._start_lock:
            batch = self._running.pop(task, None)
        if batch is None:  # taken away by a move (exported again on the new loop), or never launched by _launch
            return
        if self._stopping and not self._running and self._loop is not None:
            self._disarm_watchdog(self._loop)
        if self._lost and cancelled and not batch.cancel_reason:
            self._orphans.append(batch)  # cancelled by the loop's shutdown: export it again after the move
            self._maybe_move()
            return
        batch.items = []
        if cancelled:
            self._account(batch, settle(batch.weight, cancelled=True, cancel_reason=batch.cancel_reason))
        elif exc is not None:
            self._account(batch, settle(batch.weight, exception=exc))
        elif type(result) is ExportResult and result.accepted >= batch.weight:
            self._accepted(batch)  # what settle and _account make of a full success
        else:
            self._account(batch, settle(batch.weight, result=result))
        if self._worker_gone:
            self._check_flushes()
            self._maybe_move()
            return
        # Start the next export from here rather than from the worker: one loop iteration sooner, which is
        # what an export on a busy application loop costs (a producer runs between any two iterations). The
        # worker waiting on this loop has nothing more to do for it (it wakes for its tick, a full batch that
        # could not start, a flush or the shutdown); one that is not waiting here is woken to look again.
        loop = self._loop
        self._pump()
        if self._loop is loop and self._worker_on is not loop:
            self._wake()

    def _accepted(self, batch: Batch) -> None:
        """:meth:`_account` of a batch all accepted (``Settlement(weight, accepted=weight)``), without the
        settlement unless a flush waits for it."""
        weight = batch.weight
        self._queue.settle_accepted(weight)
        if self._metrics is not None:
            loop = self._loop
            assert loop is not None
            self._metrics.record_export(loop.time() - batch.started, None)  # (any thread)
        if self._flushes:
            settled = Settlement(weight, accepted=weight)
            for waiter in self._flushes:
                if batch.first < waiter.mark:
                    waiter.count(settled)

    def _account(self, batch: Batch, settled: Settlement) -> None:
        """Count a settled batch: the ledger, the self-metrics, the failure's log line, the flushes waiting for
        it. On the loop; or on a producer's thread for a lane's full success while no flush waits."""
        if settled.accepted == settled.weight and settled.error is None:
            self._accepted(batch)
            return
        self._queue.settle(
            settled.weight,
            accepted=settled.accepted,
            rejected=settled.rejected,
            failed=settled.failed,
            too_large=settled.too_large,
            error=settled.error,
            outcomes=settled.outcomes,
            drop_reason=settled.drop_reason,
            invalid=settled.invalid,
        )
        loop = self._loop
        assert loop is not None
        if self._metrics is not None:
            self._metrics.record_export(loop.time() - batch.started, settled.error_type)  # (any thread)
        if settled.error is not None:
            self._failure_log.log(
                "export of %d %s did not fully succeed (%d accepted, %d rejected, %d failed, %d too large, "
                "%d invalid): %s",
                settled.weight,
                _NOUN[self._signal],
                settled.accepted,
                settled.rejected,
                settled.failed,
                settled.too_large,
                settled.invalid,
                settled.error,
            )
        for waiter in self._flushes:
            if batch.first < waiter.mark:
                waiter.count(settled)

    def _report_drops(self) -> None:
        queue = self._queue
        dropped = queue.dropped_full
        if dropped > self._drops_logged and self._drop_log.log(
            "dropped %d %s so far: the queue was full (max_queue_size=%d%s, policy %s)",
            dropped,
            _NOUN[self._signal],
            queue.max_size,
            "" if queue.max_bytes is None else f", max_queue_bytes={queue.max_bytes}",
            self._policy,
        ):
            self._drops_logged = dropped

    # ------------------------------------------------------------------------------------------- statistics

    def statistics(self) -> ProcessorStatistics:
        """A consistent snapshot of the ledger (any thread)."""
        self._settle_lane_now()  # what the native lane delivered since the last full batch counts now
        queue = self._queue
        with queue.lock:
            dropped = {
                "queue_full": queue.dropped_full,
                "already_shutdown": queue.dropped_closed,
                "too_large": queue.dropped_too_large,
                "invalid": queue.dropped_invalid,
                "disk_full": queue.dropped_disk_full,
                "disk_error": queue.dropped_disk_error,
                "shutdown": queue.dropped_shutdown,
            }
            stats = ProcessorStatistics(
                signal=self._signal,
                produced=queue.produced,
                queued=queue.queued,
                queued_bytes=queue.queued_bytes,
                in_flight=queue.in_flight,
                exported=queue.exported,
                rejected=queue.rejected,
                failed=queue.failed,
                dropped=MappingProxyType(dropped),
                batches=queue.batches,
                capacity=queue.max_size,
                byte_capacity=queue.max_bytes,
                last_error=queue.last_error,
            )
        retries = self._hooks.retries()
        if retries is not None:
            return dataclasses.replace(stats, retries=retries)
        return stats
