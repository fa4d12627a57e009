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
import concurrent.futures
import contextlib
import dataclasses
import logging
import math
import threading
from collections.abc import Awaitable, Callable, Coroutine, Sequence
from types import MappingProxyType
from typing import Any, Final, Literal, TypeVar, cast, get_args

from .._exceptions import (
    AttemptTimeoutError,
    ConfigurationError,
    DeadlineExceededError,
    QueueFullError,
    QueueWriteError,
)
from ..config import BatchConfig
from ..export import Exporter, ExportResult
from ..export._ratelimit import RateLimitedLogger
from ..model import Signal
from ._binding import SHUTDOWN_GRACE, Batch, LoopBinding, _resolve
from ._queue import ADMITTED, NO_ROOM, READY, BoundedQueue, estimate_size
from ._selfmetrics import SelfMetrics
from ._stats import FlushOutcome, FlushStatus, ProcessorStatistics

__all__ = ["BatchProcessor", "Policy"]

T = TypeVar("T")

Policy = Literal["drop_newest", "drop_oldest", "block"]
_POLICIES: Final[tuple[str, ...]] = get_args(Policy)

logger = logging.getLogger("aiotlp.processing")

_EXPORT_METHOD: Final = {Signal.TRACES: "export_traces", Signal.METRICS: "export_metrics", Signal.LOGS: "export_logs"}
_NOUN: Final = {Signal.TRACES: "spans", Signal.METRICS: "metric data points", Signal.LOGS: "log records"}


_MAX_ERROR_LENGTH: Final = 300


def _positive_int(value: object, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ConfigurationError(f"{name} must be a positive int, got {value!r}")
    return value


def _positive_seconds(value: object, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not (0 < value < math.inf):
        raise ConfigurationError(f"{name} must be a positive, finite number of seconds, got {value!r}")
    return float(value)


def _check_timeout(value: object) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not (0 <= value < math.inf):
        raise ConfigurationError(f"timeout must be None or a non-negative, finite number of seconds, got {value!r}")
    return float(value)


def _describe(error: BaseException) -> str:
    text = f"{type(error).__name__}: {error}"
    return text if len(text) <= _MAX_ERROR_LENGTH else text[: _MAX_ERROR_LENGTH - 3] + "..."


def _error_type(error: BaseException | None) -> str:
    """The ``error.type`` of a failed export: ``timeout`` for deadlines, else the error's class name."""
    if error is None:
        return "_OTHER"
    if isinstance(error, (DeadlineExceededError, AttemptTimeoutError, asyncio.TimeoutError)):
        return "timeout"
    return type(error).__name__


def _drop_reason(error: BaseException | None) -> str:
    """Why the exporter dropped items (``ExportResult.dropped``): its disk queue was full or failed to write,
    or (otherwise) they were too large for a request."""
    if isinstance(error, QueueFullError):
        return "disk_full"
    if isinstance(error, QueueWriteError):
        return "disk_error"
    return "too_large"


def _metric_points(metric: Any) -> int:
    return len(metric.data.data_points)


class _Waiter:
    """A flush waiting until every entry admitted before ``mark`` is settled; sums their outcomes."""

    __slots__ = ("dropped", "error", "exported", "failed", "future", "mark", "rejected")

    def __init__(self, mark: int, future: asyncio.Future[None]) -> None:
        self.mark = mark
        self.future = future
        self.exported = 0
        self.rejected = 0
        self.failed = 0
        self.dropped = 0
        self.error = ""

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


class BatchProcessor(LoopBinding[T]):
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
        policy: Policy = "drop_newest",
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
        max_queue_size = _positive_int(max_queue_size, "max_queue_size")
        if max_queue_bytes is not None:
            max_queue_bytes = _positive_int(max_queue_bytes, "max_queue_bytes")
        max_export_batch_size = _positive_int(max_export_batch_size, "max_export_batch_size")
        if max_export_batch_size > max_queue_size:
            raise ConfigurationError(
                f"max_export_batch_size ({max_export_batch_size}) must not be larger than "
                f"max_queue_size ({max_queue_size})"
            )
        self._schedule_delay = _positive_seconds(schedule_delay, "schedule_delay")
        self._export_timeout = _positive_seconds(export_timeout, "export_timeout")
        self._max_concurrent = _positive_int(max_concurrent_exports, "max_concurrent_exports")
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
        self._signal = signal
        self._policy: Policy = policy
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

        self._start_lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._loop_thread: int | None = None
        self._worker: asyncio.Task[None] | None = None
        self._waiter: asyncio.Future[None] | None = None
        self._wake_flag = False
        self._stopping = False
        self._drain_to = 0
        self._running: dict[asyncio.Task[Any], Batch] = {}
        self._flushes: list[_Waiter] = []
        self._room: set[asyncio.Future[None]] = set()
        self._shutdown: asyncio.Future[FlushOutcome] | None = None
        self._fallback = fallback_loop
        self._orphans: list[Batch] = []  # in flight when their loop went away: exported again after the move
        self._lost = False  # the worker was cancelled from outside: the loop is shutting down
        self._worker_gone = False
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
    def policy(self) -> Policy:
        return self._policy

    @property
    def loop(self) -> asyncio.AbstractEventLoop | None:
        """The processor's event loop, once started."""
        return self._loop

    @property
    def is_shutdown(self) -> bool:
        """True once :meth:`shutdown` has begun (puts are then dropped as ``already_shutdown``)."""
        return self._queue.closed

    def refuse_items(self) -> None:
        """From now on drop every put as ``already_shutdown``, without exporting or shutting anything down (a
        processor made to replace one that was shut down, e.g. in a child process after ``os.fork``)."""
        self._queue.close()

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
            self._wake_threadsafe()
            return True
        return False

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
            loop.call_soon_threadsafe(self._wake)

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
        start = getattr(self._exporter, "start", None)
        if callable(start):
            # e.g. a DurableExporter: its delivery task sends what an earlier run left on disk, before new exports
            try:
                start()
            except Exception as exc:  # the exports will fail (and be counted) if it cannot work at all
                logger.error("the %s exporter failed to start: %s", self._signal.value, _describe(exc))
        delay = self._schedule_delay
        next_tick = loop.time() + delay
        while not self._stopping and self._loop is loop:
            self._wake_flag = False
            self._pump()
            now = loop.time()
            if now >= next_tick:
                self._drain_to = max(self._drain_to, self._queue.admitted)
                next_tick += delay
                if next_tick <= now:
                    next_tick = now + delay
                self._report_drops()
                continue
            if self._wake_flag or self._stopping:
                continue
            waiter = self._waiter = loop.create_future()
            timer = loop.call_at(next_tick, _resolve, waiter)
            try:
                await waiter
            finally:
                timer.cancel()
                # only our own: a worker left behind on a closed loop is closed when it is collected, and must not
                # clear the waiter of the worker that replaced it (that one would then never be woken)
                if self._waiter is waiter:
                    self._waiter = None

    def _pump(self) -> None:
        """Start exports while a slot is free and a batch is due; then wake whoever waits on progress."""
        took = False
        queue = self._queue
        loop = self._loop
        while len(self._running) < self._max_concurrent:
            # under the bind lock: a move from a stopped loop (another thread) sees a batch either queued or
            # registered in flight, never between the two
            with self._start_lock:
                if loop is not self._loop or asyncio._get_running_loop() is not loop:
                    return  # moved away: this loop's worker and callbacks no longer export
                taken = queue.take(self._drain_to)
                if taken is None:
                    break
                self._launch(*taken)
            took = True
        if took and self._room:
            for room in self._room:
                if not room.done():
                    room.set_result(None)
        if self._flushes:
            self._check_flushes()

    def _launch(self, items: list[T], weight: int, first: int) -> None:
        loop = self._loop
        assert loop is not None
        self._start_batch(loop, Batch(items, weight, first, len(items), loop.time()))

    def _start_batch(self, loop: asyncio.AbstractEventLoop, batch: Batch) -> None:
        task = loop.create_task(self._call_export(batch.items))
        batch.timer = loop.call_at(batch.started + self._export_timeout, self._expire, task)
        self._running[task] = batch
        task.add_done_callback(self._on_done)

    async def _call_export(self, items: list[T]) -> ExportResult:
        if asyncio.current_task() not in self._running:
            # the processor moved away from this loop before the export started: it is sent from the new loop
            return ExportResult()
        return await self._export(items)

    def _expire(self, task: asyncio.Task[Any]) -> None:
        batch = self._running.get(task)
        if batch is not None and not task.done():
            batch.cancel_reason = f"the export took longer than export_timeout ({self._export_timeout:g}s)"
            task.cancel()

    def _on_done(self, task: asyncio.Task[Any]) -> None:
        with self._start_lock:
            batch = self._running.pop(task, None)
        if batch is None:  # taken away by a move (exported again on the new loop), or never launched by _launch
            return
        if batch.timer is not None:
            batch.timer.cancel()
        if self._lost and task.cancelled() and not batch.cancel_reason:
            self._orphans.append(batch)  # cancelled by the loop's shutdown: export it again after the move
            self._maybe_move()
            return
        batch.items = []
        weight = batch.weight
        accepted = rejected = too_large = invalid = 0
        failed = weight
        error: str | None = None
        error_type: str | None = None
        drop_reason = "too_large"
        outcomes: dict[str, int] = {}
        if task.cancelled():
            error_type = "timeout" if batch.cancel_reason else "cancelled"
            error = f"TimeoutError: {batch.cancel_reason}" if batch.cancel_reason else "CancelledError: cancelled"
        elif (exc := task.exception()) is not None:
            error_type = type(exc).__name__
            error = _describe(exc)
        else:
            result = task.result()
            if not isinstance(result, ExportResult):
                error_type = "_OTHER"
                error = f"TypeError: the exporter returned {type(result).__name__}, not an ExportResult"
            else:
                accepted, rejected, failed, too_large = _reconcile(result, weight)
                # the exporter's drops that cannot be encoded at all: a reason of their own, not too_large
                invalid = min(max(result.invalid, 0), too_large)
                too_large -= invalid
                if rejected:
                    outcomes["rejected"] = rejected
                    error_type = "rejected"
                    error = f"partial success, {rejected} rejected: {result.error_message or '(no message)'}"
                    error = error[:_MAX_ERROR_LENGTH]
                if invalid:
                    outcomes["invalid"] = invalid
                    error_type = "invalid"
                if too_large:
                    drop_reason = _drop_reason(result.error)
                    outcomes[drop_reason] = too_large
                    error_type = drop_reason
                if failed:
                    error_type = _error_type(result.error)
                if too_large or failed or invalid:
                    if result.error is not None:
                        error = _describe(result.error)
                    else:
                        parts = []
                        if failed:
                            parts.append(f"{failed} items failed")
                        if too_large:
                            parts.append(f"{too_large} items dropped by the exporter ({drop_reason})")
                        if invalid:
                            parts.append(f"{invalid} items dropped by the exporter (invalid: cannot be encoded)")
                        error = ", ".join(parts)
        if failed:
            assert error_type is not None
            outcomes[error_type] = outcomes.get(error_type, 0) + failed
        self._queue.settle(
            weight,
            accepted=accepted,
            rejected=rejected,
            failed=failed,
            too_large=too_large,
            error=error,
            outcomes=outcomes,
            drop_reason=drop_reason,
            invalid=invalid,
        )
        loop = self._loop
        assert loop is not None
        if self._metrics is not None:
            self._metrics.record_export(loop.time() - batch.started, error_type)
        if error is not None:
            self._failure_log.log(
                "export of %d %s did not fully succeed (%d accepted, %d rejected, %d failed, %d too large, "
                "%d invalid): %s",
                weight,
                _NOUN[self._signal],
                accepted,
                rejected,
                failed,
                too_large,
                invalid,
                error,
            )
        for waiter in self._flushes:
            if batch.first < waiter.mark:
                waiter.exported += accepted
                waiter.rejected += rejected
                waiter.failed += failed
                waiter.dropped += too_large + invalid
                if error is not None:
                    waiter.error = error
        if self._worker_gone:
            self._check_flushes()
            self._maybe_move()
            return
        # Start the next export from here rather than from the worker: one loop iteration sooner, which is
        # what an export on a busy application loop costs (a producer runs between any two iterations).
        self._pump()
        if self._loop is loop:
            self._wake()

    def _check_flushes(self) -> None:
        if not self._flushes:
            return
        removed = self._queue.removed
        for waiter in list(self._flushes):
            if removed >= waiter.mark and not any(b.first < waiter.mark for b in self._running.values()):
                self._flushes.remove(waiter)
                if not waiter.future.done():
                    waiter.future.set_result(None)

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

    # ---------------------------------------------------------------------------------------- flush, shutdown

    async def force_flush(self, timeout: float | None = None) -> FlushOutcome:
        """Export everything put before this call and wait for it, at most ``timeout`` seconds.

        ``success``: all of it was accepted; ``failure``: all of it settled, not all accepted (or the
        processor is shut down); ``timeout``: the deadline came first (the exports go on; ``pending`` counts
        what was still queued or in flight). Items put after the call are not waited for.
        """
        timeout = _check_timeout(timeout)
        hop = self._elsewhere(self._force_flush, timeout, shutdown=False)
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
        flush = getattr(self._exporter, "force_flush", None)
        if not callable(flush) or not asyncio.iscoroutinefunction(flush):
            return True
        remaining = None if deadline is None else max(0.0, deadline - loop.time())
        try:
            return bool(await flush(remaining))
        except Exception as exc:
            logger.warning("the %s exporter failed to flush: %s", self._signal.value, _describe(exc))
            return False

    async def shutdown(self, timeout: float | None = None) -> FlushOutcome:
        """Stop accepting items, export what is queued, then shut the exporter down; all within ``timeout``.

        Puts made from now on are dropped (``already_shutdown``). At the deadline, items still queued are
        dropped (``shutdown``) and exports in flight are cancelled (their items count as failed); the exporter's
        ``shutdown`` gets the time left. It returns within ``timeout`` plus at most ``2 * SHUTDOWN_GRACE``.
        ``None`` sets no deadline beyond each export's ``export_timeout``. A second call returns at once: the
        first call's outcome, or a ``timeout`` outcome while the first is still running.
        """
        timeout = _check_timeout(timeout)
        if self._shutdown is not None:
            return self._repeated_shutdown()
        hop = self._elsewhere(self._shutdown_on_loop, timeout, shutdown=True)
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

    async def _abandon(self, waiter: _Waiter) -> FlushOutcome:
        """The shutdown deadline passed: drop what is queued, cancel what is in flight, report what is left."""
        first, weights = self._queue.drop_all()
        for flush in self._flushes:  # this shutdown's waiter, and any force_flush waiting alongside
            flush.dropped += sum(weights[: max(0, flush.mark - first)])
        self._check_flushes()  # a flush with nothing in flight is complete now
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
            logger.warning("the %s exporter failed to shut down: %s", self._signal.value, _describe(exc))
        return True

    def _flush_mark(self, loop: asyncio.AbstractEventLoop) -> _Waiter:
        """Register a flush of everything admitted so far, and make the worker export it now."""
        with self._queue.lock:
            mark = self._queue.admitted
        waiter = _Waiter(mark, loop.create_future())
        self._flushes.append(waiter)
        self._drain_to = max(self._drain_to, mark)
        if self._worker is None or self._worker.done():
            self._pump()  # not running (yet, or any more): export on this coroutine's behalf
        self._wake()
        self._check_flushes()
        return waiter

    async def _wait(self, waiter: _Waiter, deadline: float | None) -> bool:
        if not waiter.future.done():
            loop = asyncio.get_running_loop()
            timeout = None if deadline is None else max(0.0, deadline - loop.time())
            await asyncio.wait({waiter.future}, timeout=timeout)
        return waiter.future.done()

    def _discard(self, waiter: _Waiter) -> None:
        if waiter in self._flushes:
            self._flushes.remove(waiter)
        if not waiter.future.done():
            waiter.future.cancel()

    def _pending(self, mark: int) -> int:
        in_flight = sum(b.weight for b in self._running.values() if b.first < mark)
        return self._queue.weight_before(mark) + in_flight

    def _elsewhere(
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

    # ---------------------------------------------------------------------------------------- other threads

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
        timeout = _check_timeout(timeout)
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
        timeout = _check_timeout(timeout)
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

    # ------------------------------------------------------------------------------------------- statistics

    def statistics(self) -> ProcessorStatistics:
        """A consistent snapshot of the ledger (any thread)."""
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
        retries = getattr(self._exporter, "retries", None)
        if isinstance(retries, int) and not isinstance(retries, bool):
            return dataclasses.replace(stats, retries=retries)
        return stats


def _reconcile(result: ExportResult, weight: int) -> tuple[int, int, int, int]:
    """``(accepted, rejected, failed, too_large)`` adding up to exactly ``weight``.

    An exporter that accounts for fewer items than it was given gets the rest counted as failed; one that
    accounts for more is clamped (accepted first, then rejected, too large, failed).
    """
    left = weight
    parts = []
    for value in (result.accepted, result.rejected, result.dropped, result.failed):
        part = min(max(value, 0), left)
        parts.append(part)
        left -= part
    accepted, rejected, too_large, failed = parts
    return accepted, rejected, failed + left, too_large


async def _done(outcome: FlushOutcome) -> FlushOutcome:
    return outcome


async def _bounded(future: asyncio.Future[FlushOutcome], timeout: float | None) -> FlushOutcome:
    """Wait for an outcome computed on another loop; give up a little after its own deadline."""
    done, _ = await asyncio.wait({future}, timeout=None if timeout is None else timeout + 4 * SHUTDOWN_GRACE)
    if not done:
        future.cancel()
        return FlushOutcome(FlushStatus.TIMEOUT, error="the processor's loop did not answer in time")
    return future.result()
