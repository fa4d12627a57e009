"""Full batches sent on a native lane, from the thread whose put filled them: the lane part of
:class:`~aiotlp.processing.BatchProcessor`.

A producer on a plain thread holds the GIL nearly all the time; every export that runs Python on the processor's
loop (another thread: the SDK bridge's) takes it from the producer. With a :class:`Lane` attached
(:meth:`~LaneShipping.attach_lane`; aiotlp's SDK processors attach one where they can), a put that makes a batch
ready sends it from the producer's own thread, at once: the batch is taken from the queue, the lane frames it and
hands it to a native thread (no Python there, and no GIL), and the loop is not woken. The lane's outcomes are
collected at the next full batch (or by the loop):

* a full success is settled where it is collected, on the producer's thread, as the loop would settle it
  (:meth:`~aiotlp.processing.BatchProcessor` ``_account``: the ledger, the self-metrics) unless a flush waits
  (then the loop settles it, and counts it for the flush);
* anything else goes to the loop: a result (a partial success, a final error) is settled there, with the export's
  log line; :data:`SEND_AGAIN` (no response, or a retryable one) is exported again through the exporter, whose
  stack retries it; :data:`CLOSED` (the lane was closed first: shutdown) counts as cancelled.

The lane's batches count towards ``max_concurrent_exports`` with the exports on the loop, and the loop uses the
lane too (for the batches its worker takes: ticks, flushes) whenever it has room. When the lane is full the
producer leaves the ready batches queued and asks the lane to wake the loop when one of its requests ends; the loop
then sends the next. A flush or the shutdown waits for the lane's batches as for any other export; the shutdown
closes the lane (what it had not finished by the deadline counts as cancelled).
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from typing import TYPE_CHECKING, Any, Generic, Protocol, TypeVar

from ..export import LANE_CLOSED as CLOSED
from ..export import SEND_AGAIN, ExportResult
from ._binding import Batch
from ._settle import Settlement, settle

if TYPE_CHECKING:
    from ._flushing import FlushWaiter
    from ._queue import BoundedQueue

__all__ = ["CLOSED", "SEND_AGAIN", "Lane", "LaneShipping"]

T = TypeVar("T")


class Lane(Protocol):
    """A native sender of whole batches (aiotlp's SDK makes one over :class:`aiotlp.export.ExportLane`)."""

    @property
    def room(self) -> int:
        """How many more batches :meth:`send` takes now."""
        ...

    def send(self, batch: Batch) -> bool:
        """Encode and send ``batch`` (any thread); False when it was not taken (the exporter sends it then)."""
        ...

    def collect(self) -> list[tuple[Batch, ExportResult | str]]:
        """The batches whose requests ended, each with its result, :data:`SEND_AGAIN` or :data:`CLOSED`."""
        ...

    def wake_on_done(self) -> bool:
        """Call the processor's ``lane_notified`` (through its notify) after the next request ends. True when
        outcomes wait to be collected already (they ended before this was asked, and tell nobody)."""
        ...

    def close(self) -> None:
        """Stop; what was not finished is collected as :data:`CLOSED`."""
        ...


class LaneShipping(Generic[T]):
    """The lane part of :class:`~aiotlp.processing.BatchProcessor` (see the module docstring). The processor
    provides the state below, ``_start_batch``, ``_account``, ``_check_flushes`` and ``_pump``."""

    if TYPE_CHECKING:
        _queue: BoundedQueue[T]
        _start_lock: threading.Lock
        _loop: asyncio.AbstractEventLoop | None
        _worker_on: asyncio.AbstractEventLoop | None
        _running: dict[asyncio.Task[Any], Batch]
        _max_concurrent: int
        _drain_to: int
        _stopping: bool
        _flushes: list[FlushWaiter]

        def _start_batch(self, loop: asyncio.AbstractEventLoop, batch: Batch) -> None: ...
        def _account(self, batch: Batch, settled: Settlement) -> None: ...
        def _check_flushes(self) -> None: ...
        def _pump(self) -> None: ...

    _lane: Lane | None = None

    def _init_lane(self) -> None:
        self._lane = None
        self._on_lane: set[Batch] = set()  # sent on the lane, not collected yet
        self._lane_ended: list[tuple[Batch, ExportResult | str]] = []  # collected, for the loop to settle

    def attach_lane(self, lane: Lane | None) -> None:
        """Send ready batches on ``lane`` from now on (see the module docstring); None detaches it."""
        self._lane = lane

    @property
    def lane(self) -> Lane | None:
        return self._lane

    def _exports_in_flight(self) -> int:
        return len(self._running) + len(self._on_lane) + len(self._lane_ended)

    def _batches_in_flight(self) -> list[Batch]:
        """Every batch taken from the queue and not settled: exports on the loop, and the lane's."""
        return [*self._running.values(), *self._on_lane, *(batch for batch, _ in self._lane_ended)]

    def lane_notified(self) -> None:
        """The lane's ``notify`` (on a lane thread, holding the GIL briefly): settle its outcomes on the loop."""
        loop = self._loop
        if loop is not None:
            with contextlib.suppress(RuntimeError):  # the loop is closed: the shutdown settles what is left
                loop.call_soon_threadsafe(self._lane_on_loop)

    def _ship(self, lane: Lane) -> bool:
        """A put on another thread than the loop's made a batch ready: send what is ready on the lane from here.
        True when nothing is left for the loop's worker (a full lane wakes the loop when it has room again);
        False when the worker must be woken as without a lane (not started, stopping, moving)."""
        loop = self._loop
        if loop is None or self._stopping or self._worker_on is not loop:
            return False
        to_loop = False
        shipped = True
        with self._start_lock:
            if self._loop is not loop:
                return False
            queue = self._queue
            while True:
                to_loop |= self._collect_lane(lane, on_loop=False) > 1
                if self._exports_in_flight() >= self._max_concurrent or lane.room <= 0:
                    if not self._on_lane:
                        # the loop's own exports, or what it has to settle, end with a _pump there; a lane that
                        # takes nothing (closed) leaves the batch to the worker, woken as without a lane
                        shipped = lane.room > 0
                        break
                    # the next request to end wakes the loop; those that ended before this are collected now
                    if lane.wake_on_done():
                        continue
                    break
                taken = queue.take(self._drain_to)
                if taken is None:
                    break  # nothing more is ready (and the next full batch says so again)
                items, weight, first = taken
                batch = Batch(items, weight, first, len(items), loop.time())
                if lane.send(batch):
                    self._on_lane.add(batch)
                    # a flush waits for it: the loop settles it as soon as it ends (or now, when it ended already)
                    if self._flushes and lane.wake_on_done():
                        to_loop = True
                    continue
                self._lane_ended.append((batch, SEND_AGAIN))  # refused: the loop exports it
                to_loop = True
                break
        if to_loop:
            self.lane_notified()
        return shipped

    def _lane_full(self, loop: asyncio.AbstractEventLoop) -> None:
        """On the loop, after a _pump that filled every export slot while batches may wait: the lane wakes the
        loop when one of its requests ends (those that ended already are settled on the next turn)."""
        lane = self._lane
        if lane is not None and self._on_lane and lane.wake_on_done():
            loop.call_soon(self._lane_on_loop)

    def _settle_lane_now(self) -> None:
        """Any thread (a read of the statistics): settle the lane's full successes now, not at the next full
        batch or tick; what needs the loop is handed to it."""
        lane = self._lane
        if lane is None:
            return
        with self._start_lock:
            left = self._collect_lane(lane, on_loop=False) > 1
        if left:
            self.lane_notified()

    def _collect_lane(self, lane: Lane, *, on_loop: bool) -> int:
        """Under the bind lock: take the lane's outcomes; off the loop, a full success is settled here unless a
        flush waits (the loop counts it for the flush). 0: none; 1: all settled; 2: some left for the loop."""
        ended = lane.collect()
        if not ended:
            return 0
        left = 1
        for batch, outcome in ended:
            self._on_lane.discard(batch)
            if (
                not on_loop
                and not self._flushes
                and type(outcome) is ExportResult
                and outcome.accepted >= batch.weight
                and not outcome.failed
            ):
                batch.items = []
                self._account(batch, Settlement(batch.weight, accepted=batch.weight))
            else:
                self._lane_ended.append((batch, outcome))
                left = 2
        return left

    def _lane_on_loop(self) -> None:
        """On the loop: settle what the lane (or a producer) left for it, export again what must be, then pump.
        While a flush waits for batches on the lane, the lane is asked to wake the loop at each request's end."""
        lane = self._lane
        loop = self._loop
        if loop is None or asyncio._get_running_loop() is not loop:
            return
        while True:
            with self._start_lock:
                if lane is not None:
                    self._collect_lane(lane, on_loop=True)
                ended, self._lane_ended = self._lane_ended, []
                for batch, outcome in ended:
                    if outcome == SEND_AGAIN:
                        self._start_batch(loop, batch)  # through the exporter, with its retries
            for batch, outcome in ended:
                if isinstance(outcome, ExportResult):
                    batch.items = []
                    self._account(batch, settle(batch.weight, result=outcome))
                elif outcome == CLOSED:
                    batch.items = []
                    reason = batch.cancel_reason or "the lane was closed (shutdown) before the export ended"
                    self._account(batch, settle(batch.weight, cancelled=True, cancel_reason=reason))
            if lane is None or not (self._flushes and self._on_lane):
                break
            # a flush waits for batches on the lane: the next request to end wakes the loop, and those that ended
            # before this are collected now
            if not lane.wake_on_done():
                break
        self._check_flushes()
        self._pump()

    def _close_lane(self, reason: str) -> None:
        """On the loop (the shutdown): close the lane, and settle what it had not finished (cancelled, ``reason``)."""
        lane = self._lane
        if lane is None:
            return
        for batch in list(self._on_lane):
            batch.cancel_reason = reason
        lane.close()  # kept attached, closed: it takes nothing more (and says what it sent)
        with self._start_lock:
            self._collect_lane(lane, on_loop=True)
        self._lane_on_loop()
