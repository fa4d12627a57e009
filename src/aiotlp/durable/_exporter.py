"""DurableExporter: an OTLPExporter with a crash-safe disk queue in front of the network.

::

    export_traces(spans) --encode, split--> DurableQueue.append --(fsync per policy)--> ExportResult (queued)
                                                 |
          delivery task: read in order --> inner.send_request (limit -> retry -> timeout -> transport)
                         accepted / rejected / failed for good --> ack (the record may go)
                         collector down or busy (retryable)    --> keep it, back off, send again

**What an ExportResult means here.** ``export_*`` returns once the batch is *in the queue*: ``accepted`` counts
the items written to disk (and fsync-ed, with ``fsync="always"``), not items the collector took; the collector's
answers are counted in :meth:`DurableExporter.statistics` (``delivered_items``, ``rejected_items``,
``failed_items``). ``dropped`` counts items refused by the queue: ``disk_full`` (the byte cap, or ENOSPC/EDQUOT,
error :class:`~aiotlp.QueueFullError`), another write error (:class:`~aiotlp.QueueWriteError`), or a single item
over the request cap (:class:`~aiotlp.RequestTooLargeError`). Nothing raises, nothing blocks on a full disk.

**Durability policies** (``fsync=``), and what an item survives once ``export_*`` (or ``force_flush``) returned:

* ``"always"``: every ``export_*`` waits for an fsync (appends waiting together share one): power loss;
* ``"interval"`` (default): an fsync every ``fsync_interval`` (0.5 s) in a worker thread, and on
  ``force_flush``: a process crash (``kill -9``) loses nothing that was written; power loss loses at most the
  last interval, and nothing that ``force_flush`` returned True for;
* ``"never"``: the kernel decides when to write: a process crash loses nothing written, power loss may lose
  anything not yet written back.

**Delivery** is at-least-once: a record is removed only after the collector accepted it (or refused it for good,
counted), so after a crash the records sent since the last cursor save are sent again (duplicates, never loss).
A retryable failure (connection refused, 503, deadline reached while retrying) keeps the record and sends it
again after a backoff of ``retry_initial`` doubling to ``retry_max`` seconds, for as long as it takes: a
collector outage never drops anything. A record written in another wire format than the inner exporter's current
one (OTLP/JSON vs protobuf: the configuration changed between runs) cannot be sent; it is counted as failed.

**Event loops and fork.** Delivery runs on one event loop: the one of the first export (or :meth:`start`). Used
from another loop once that one is closed (``asyncio.run`` called twice, a thread's loop that ended), it starts
delivering on the caller's loop; the records the closed loop was sending stay on disk and are sent at the next
start (at-least-once). While the first loop is still open, exports from another loop fail (counted, not raised):
use one DurableExporter per loop. In a process forked from the one that opened the queue, exports fail the same
way and nothing of the parent's (files, tasks, connections) is touched: the directory is the parent's.

**Drop-in.** The same verbs as :class:`~aiotlp.export.OTLPExporter`: ``export_traces/metrics/logs``,
``export_encoded`` (same signature), ``shutdown(timeout)``, ``async with``, plus ``force_flush(timeout)`` and
:meth:`~DurableExporter.statistics`. Headers and credentials stay in the inner exporter: only request bodies
reach the disk.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Final, Literal, TypeVar

from .._backports import timeout as async_timeout
from .._exceptions import (
    ConfigurationError,
    DeadlineExceededError,
    ExportError,
    ExporterShutdownError,
    PermanentError,
    QueueFullError,
    QueueWriteError,
    RejectedError,
    RetriesExhaustedError,
    RetryableError,
)
from .._fork import abandon
from .._ratelimit import RateLimitedLogger
from .._validate import positive_int, seconds
from ..config import ExporterConfig
from ..export import Codec, CodecExporter, ExportRequest, ExportResult, OTLPExporter
from ..model import Signal
from ._files import FileOps
from ._queue import DEFAULT_MAX_BYTES, DurableQueue, QueuedRecord
from ._record import FORMAT_JSON, FORMAT_PROTOBUF, PAYLOAD_PREFIX

__all__ = ["DurableExporter", "DurableStatistics", "FsyncPolicy"]

logger = logging.getLogger("aiotlp.durable")

FsyncPolicy = Literal["always", "interval", "never"]
_POLICIES: Final = ("always", "interval", "never")
_T = TypeVar("_T")
#: How long ``shutdown()`` without a timeout lets the delivery task drain the queue (the rest stays on disk).
DEFAULT_SHUTDOWN_DRAIN: Final = 5.0


@dataclass(frozen=True, slots=True)
class DurableStatistics:
    """Counters of a :class:`DurableExporter` since it was created.

    On disk now: ``queued_records``, ``queued_items`` (records found at start count once the start scan walked
    them), ``queued_bytes`` (segment files; capped by ``max_bytes``). Into the queue: ``accepted_items``
    (written), ``disk_full_items`` / ``disk_full_batches`` (dropped: byte cap or full disk),
    ``write_error_items`` (dropped: another I/O error), ``too_large_items`` (dropped: one item over the request
    cap). Out of it: ``delivered_items`` (the collector took them), ``rejected_items`` (refused in a partial
    success), ``failed_items`` (refused for good, or in the wrong wire format), ``delivery_retries``
    (sends of a record after a retryable failure), ``in_flight`` (records being sent now). Health:
    ``io_errors`` (failed file operations), ``corrupt_records`` and ``corrupt_bytes`` (damage skipped),
    ``corrupt_files`` (``*.corrupt`` files in the directory).
    """

    queued_records: int
    queued_items: int
    queued_bytes: int
    accepted_items: int
    disk_full_items: int
    disk_full_batches: int
    write_error_items: int
    too_large_items: int
    delivered_items: int
    rejected_items: int
    failed_items: int
    delivery_retries: int
    in_flight: int
    io_errors: int
    corrupt_records: int
    corrupt_bytes: int
    corrupt_files: int


_UNITS: Final = {Signal.TRACES: "spans", Signal.LOGS: "log records", Signal.METRICS: "metric data points"}


class DurableExporter(CodecExporter):
    """Queues encoded export requests on disk and delivers them through ``inner`` (see the module docstring).

    * ``inner``: the :class:`~aiotlp.export.OTLPExporter` that sends (its retries, timeouts, wire format and
      request cap apply); shut down with this exporter.
    * ``directory``: the queue directory (see :class:`~aiotlp.durable.DurableQueue`: locked, ``0700``, no
      symlinks). Opening it raises :class:`~aiotlp.DurableQueueError` / :class:`~aiotlp.QueueLockedError`.
    * ``fsync``: ``"always"``, ``"interval"`` (default) or ``"never"``; ``fsync_interval`` in seconds.
    * ``max_bytes``, ``segment_bytes``: the queue's byte cap and segment size.
    * ``max_in_flight``: records being sent at once (their acknowledgements may come back in any order).
    * ``retry_initial``, ``retry_max``: the backoff, in seconds, between sends of a record that failed
      retryably (each send already retried inside ``inner`` until its export timeout).
    * ``file_ops``: for tests, see :class:`~aiotlp.durable.FileOps`.

    The delivery task starts with ``async with``, :meth:`start`, or the first export, on the running loop; it
    first counts what a previous run left on disk (in a worker thread), then sends it, oldest first.
    """

    def __init__(
        self,
        inner: OTLPExporter,
        directory: str | os.PathLike[str],
        *,
        fsync: FsyncPolicy = "interval",
        fsync_interval: float = 0.5,
        max_bytes: int = DEFAULT_MAX_BYTES,
        segment_bytes: int | None = None,
        max_in_flight: int = 4,
        retry_initial: float = 0.5,
        retry_max: float = 5.0,
        file_ops: Callable[[str], FileOps] | None = None,
    ) -> None:
        if not (callable(getattr(inner, "encode_batch", None)) and callable(getattr(inner, "send_request", None))):
            raise ConfigurationError(f"inner must be an aiotlp OTLPExporter, got {type(inner).__name__}")
        if fsync not in _POLICIES:
            raise ConfigurationError(f"fsync must be one of {', '.join(_POLICIES)}, got {fsync!r}")
        self._interval = seconds(fsync_interval, "fsync_interval", finite=False)
        self._retry_initial = seconds(retry_initial, "retry_initial", finite=False)
        self._retry_max = seconds(retry_max, "retry_max", finite=False)
        if self._retry_max < self._retry_initial:
            raise ConfigurationError(f"retry_max ({retry_max!r}) must be >= retry_initial ({retry_initial!r})")
        positive_int(max_in_flight, "max_in_flight")
        self._inner = inner
        self._policy: FsyncPolicy = fsync
        self._max_in_flight = max_in_flight
        record_cap = max(inner.config.for_signal(s).max_request_bytes for s in Signal) + PAYLOAD_PREFIX
        self._queue = DurableQueue(
            directory,
            max_bytes=max_bytes,
            segment_bytes=segment_bytes,
            max_record_bytes=record_cap,
            fsync=fsync != "never",
            file_ops=file_ops,
        )
        self._closed = False
        self._stopping = False
        self._pid = os.getpid()
        self._rebind_lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._wake: asyncio.Event | None = None
        self._stop: asyncio.Event | None = None
        self._idle: asyncio.Event | None = None
        self._down: asyncio.Event | None = None  # set while deliveries back off (the collector is unreachable)
        self._tasks: list[asyncio.Task[None]] = []
        self._sending: set[asyncio.Task[None]] = set()
        self._sync_task: asyncio.Future[bool] | None = None
        self._accepted = 0
        self._disk_full_items = 0
        self._disk_full_batches = 0
        self._write_error_items = 0
        self._too_large = 0
        self._delivered = 0
        self._rejected = 0
        self._failed = 0
        self._retries = 0
        self._drop_log = RateLimitedLogger(logger, logging.WARNING, interval=10.0)
        self._fail_log = RateLimitedLogger(logger, logging.WARNING, interval=10.0)
        self._signals: set[Signal] = set()  # exported into the queue by this process (for the shutdown's wording)
        self._kept_log = RateLimitedLogger(logger, logging.WARNING, interval=10.0)  # delivery postponed, not failed

    def __repr__(self) -> str:
        return f"<DurableExporter {self._queue.directory} fsync={self._policy} inner={self._inner!r}>"

    @property
    def inner(self) -> OTLPExporter:
        return self._inner

    @property
    def config(self) -> ExporterConfig:
        """The inner exporter's configuration (where the queued requests go)."""
        return self._inner.config

    @property
    def queue(self) -> DurableQueue:
        return self._queue

    @property
    def directory(self) -> str:
        return self._queue.directory

    @property
    def retries(self) -> int:
        """Retries so far: the inner exporter's, and this layer's re-sends of queued records."""
        return self._inner.retries + self._retries

    @property
    def in_flight(self) -> int:
        return len(self._sending)

    # -- lifecycle

    async def __aenter__(self) -> DurableExporter:
        self.start()
        return self

    def start(self) -> None:
        """Start the delivery and fsync tasks on the running loop (done by the first export otherwise)."""
        if self._closed or self._pid != os.getpid():
            return
        loop = asyncio.get_running_loop()
        old = self._loop
        if old is not None and (old is loop or not old.is_closed()):
            return
        if old is not None:
            self._leave_loop()
        self._loop = loop
        self._wake = asyncio.Event()
        self._stop = asyncio.Event()
        self._idle = asyncio.Event()
        self._down = asyncio.Event()
        self._tasks = [
            loop.create_task(self._deliver_loop(), name="aiotlp-durable-delivery"),
            loop.create_task(self._tick_loop(), name="aiotlp-durable-fsync"),
        ]

    def _leave_loop(self) -> None:
        """Stop delivering on the current loop from outside it: closed (its tasks can never run again: dropped
        untouched), or open but not running (its tasks are cancelled when it runs next). The records they were
        sending stay on disk for the next start."""
        loop = self._loop
        tasks = [*self._tasks, *self._sending]
        if loop is not None and not loop.is_closed():
            for task in tasks:
                with contextlib.suppress(RuntimeError):  # closed meanwhile
                    loop.call_soon_threadsafe(task.cancel)
        abandon([*tasks, self._sync_task])
        self._loop = None
        self._tasks = []
        self._sending = set()
        self._sync_task = None
        self._wake = self._stop = self._idle = self._down = None

    def _refusal(self) -> ExportError | None:
        """Why this process or loop cannot use the queue now (see the module docstring), or None."""
        if self._pid != os.getpid():
            return PermanentError(
                f"the disk queue {self.directory} belongs to process {self._pid}, which this one was forked from: "
                "open a queue directory per process"
            )
        loop = self._loop
        if loop is not None and loop is not asyncio.get_running_loop() and not loop.is_closed():
            return PermanentError(
                f"the disk queue {self.directory} delivers on another event loop, still open: "
                "use one DurableExporter per event loop"
            )
        return None

    async def shutdown(self, timeout: float | None = None) -> None:
        """Stop taking exports; let delivery drain the queue for up to ``timeout`` seconds (default 5 s), or until
        a delivery has to back off (the collector is unreachable: waiting would only delay the exit); then stop
        sending (what is left stays on disk for the next start), fsync, save the cursor, release the directory and
        shut ``inner`` down. A second call returns at once."""
        if self._closed:
            return
        self._closed = True
        if self._pid != os.getpid():  # a forked child: the files and tasks are the parent's
            abandon(self._queue)
            await self._inner.shutdown(timeout)
            return
        loop = asyncio.get_running_loop()
        if self._loop is not None and self._loop is not loop:
            if self._loop.is_running():
                # delivery runs on another thread's loop: shut down there
                future = asyncio.run_coroutine_threadsafe(self._shutdown(timeout), self._loop)
                await asyncio.wrap_future(future)
                return
            self._leave_loop()  # closed, or open but not running
        await self._shutdown(timeout)

    async def _shutdown(self, timeout: float | None) -> None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + (DEFAULT_SHUTDOWN_DRAIN if timeout is None else max(timeout, 0.0))
        if self._idle is not None and self._wake is not None and self._down is not None:
            self._wake.set()
            if not self._down.is_set():
                waits = {loop.create_task(self._idle.wait()), loop.create_task(self._down.wait())}
                await asyncio.wait(waits, timeout=max(deadline - loop.time(), 0.0), return_when=asyncio.FIRST_COMPLETED)
                for wait in waits:
                    wait.cancel()
        self._stopping = True
        if self._stop is not None and self._wake is not None:
            self._stop.set()
            self._wake.set()
        pending = [*self._tasks, *self._sending]
        for task in self._sending:
            task.cancel()
        if pending:
            await asyncio.gather(*pending, return_exceptions=True)
        if self._policy != "never":
            await self._sync_to(self._queue.appended_seq)
        while self._sync_task is not None:  # never close the files under an fsync still running in its thread
            await asyncio.wait([self._sync_task])
        left = self._queue.statistics().queued_items
        await asyncio.to_thread(self._queue.close)
        if left:
            units = {_UNITS[signal] for signal in self._signals} if self._signals else {"items"}
            logger.warning(
                "disk queue %s: %d %s kept on disk for the next start",
                self.directory,
                left,
                units.pop() if len(units) == 1 else "items",
            )
        await self._inner.shutdown(max(deadline - loop.time(), 0.0) if timeout is not None else None)

    # -- the export verbs (export_traces/metrics/logs, export_encoded: CodecExporter's) write to the queue

    async def _export_codec(
        self, codec: Codec, items: Sequence[Any], body: bytes | None, timeout: float | None
    ) -> ExportResult:
        """Encode and split ``items`` as the inner exporter would send them, and append the requests to the queue.

        ``timeout`` bounds the wait for the fsync under ``fsync="always"`` (the items are written either way).
        """
        signal = codec.signal
        if self._closed:
            total = codec.count(items)
            error = ExporterShutdownError("the exporter is shut down")
            return ExportResult(items=total, failed=total, error=error)
        if not items:
            return ExportResult()
        with self._rebind_lock:
            refusal = self._refusal()
            if refusal is None:
                self.start()
        if refusal is not None:
            total = codec.count(items)
            self._fail_log.log("%s", refusal.message)
            return ExportResult(items=total, failed=total, error=refusal)
        requests, result = self._inner.encode_batch(codec, items, body=body)
        self._too_large += result.dropped
        fmt = FORMAT_JSON if self._inner.config.for_signal(signal).protocol == "http/json" else FORMAT_PROTOBUF
        self._signals.add(signal)
        written: int | None = None
        for request in requests:
            try:
                written = self._queue.append(signal, fmt, request.items, request.body)
            except (QueueFullError, QueueWriteError) as exc:
                if isinstance(exc, QueueFullError):
                    self._disk_full_items += request.items
                    self._disk_full_batches += 1
                else:
                    self._write_error_items += request.items
                self._drop_log.log("dropped %d %s: %s", request.items, signal.value, exc.message)
                result = result + ExportResult(items=request.items, dropped=request.items, error=exc)
                continue
            self._accepted += request.items
            result = result + ExportResult(items=request.items, accepted=request.items)
        if written is not None:
            assert self._wake is not None and self._idle is not None
            self._idle.clear()
            self._wake.set()
            if self._policy == "always":
                await self._bounded_sync(written, timeout)
        return result

    async def _bounded_sync(self, target: int, timeout: float | None) -> bool:
        try:
            return await asyncio.wait_for(self._sync_to(target), timeout)
        except asyncio.TimeoutError:
            self._fail_log.log("disk queue %s: fsync did not finish within %.3gs", self.directory, timeout)
            return False

    async def force_flush(self, timeout: float | None = None) -> bool:
        """True once everything exported before the call is durable per the policy: written (``"never"``), or
        fsync-ed (``"interval"`` and ``"always"``: this call starts an fsync). False on timeout or an fsync
        error. Items the queue dropped (disk full) were reported by their export and are not waited for."""
        if self._policy == "never" or (self._closed and self._queue.closed):
            return True
        return await self._bounded_sync(self._queue.appended_seq, timeout)

    async def _sync_to(self, target: int) -> bool:
        """Wait until an fsync covered ``target`` (one fsync at a time, shared by every waiter)."""
        queue = self._queue
        while queue.synced_seq < target:
            if queue.closed:
                return queue.synced_seq >= target
            task = self._sync_task
            if task is None:
                task = self._sync_task = asyncio.ensure_future(self._run_sync())
            if not await asyncio.shield(task):
                return False
        return True

    async def _run_sync(self) -> bool:
        try:
            await asyncio.to_thread(self._queue.sync)
        except OSError as exc:
            self._fail_log.log("disk queue %s: fsync failed: %s", self.directory, exc)
            return False
        finally:
            self._sync_task = None
        return True

    # -- background tasks

    async def _tick_loop(self) -> None:
        """Every ``fsync_interval``: fsync what was appended (``"interval"``), save the cursor."""
        assert self._stop is not None
        queue = self._queue
        while not await _wait(self._stop, self._interval):
            if self._policy == "interval" and queue.synced_seq < queue.appended_seq:
                await self._sync_to(queue.appended_seq)
            queue.save_cursor()

    async def _deliver_loop(self) -> None:
        assert self._wake is not None and self._idle is not None and self._stop is not None
        queue = self._queue
        try:
            queue.apply_scan(await asyncio.to_thread(queue.scan_backlog))
        except OSError as exc:
            self._fail_log.log("disk queue %s: cannot count the records left on disk: %s", self.directory, exc)
        loop = asyncio.get_running_loop()
        while not self._stopping:
            self._wake.clear()
            while len(self._sending) < self._max_in_flight and not self._stopping:
                try:
                    record = queue.read()
                except Exception as exc:  # an I/O error (counted by the queue): try again later, never give up
                    self._fail_log.log("disk queue %s: cannot read: %s", self.directory, exc)
                    await _wait(self._stop, self._retry_max)
                    break
                if record is None:
                    break
                task = loop.create_task(self._deliver(record))
                self._sending.add(task)
                task.add_done_callback(self._sent)
            if not self._sending and queue.is_empty():
                self._idle.set()
            await self._wake.wait()

    def _sent(self, task: asyncio.Task[None]) -> None:
        self._sending.discard(task)
        if not task.cancelled() and task.exception() is not None:
            logger.error("disk queue %s: delivery failed", self.directory, exc_info=task.exception())
        if self._wake is not None:
            self._wake.set()

    async def _deliver(self, record: QueuedRecord) -> None:
        """Send one record until it is accepted or fails for good, then acknowledge it."""
        assert self._stop is not None
        signal = record.signal
        expected = FORMAT_JSON if self._inner.config.for_signal(signal).protocol == "http/json" else FORMAT_PROTOBUF
        if record.format != expected:
            self._failed += record.items
            self._fail_log.log(
                "disk queue %s: a queued %s request is in %s but the exporter now sends %s: %d items failed",
                self.directory,
                signal.value,
                "OTLP/JSON" if record.format == FORMAT_JSON else "protobuf",
                "OTLP/JSON" if expected == FORMAT_JSON else "protobuf",
                record.items,
            )
            self._queue.ack(record)
            return
        request = ExportRequest(signal=signal, body=record.body, items=record.items, size=len(record.body))
        delay = self._retry_initial
        while True:
            result = await self._inner.send_request(request, log_failure=False)
            if result.failed == 0 or not _keep(result.error):
                break
            if isinstance(result.error, ExporterShutdownError) or self._stopping:
                return  # stays on disk for the next start (the shutdown says how much: not a failure)
            self._kept_log.log(
                "disk queue %s: %d %s not delivered yet, kept on disk and retried in %.3gs: %s",
                self.directory,
                record.items,
                _UNITS[signal],
                delay,
                result.error,
            )
            self._retries += 1
            if self._down is not None:
                self._down.set()
            if await _wait(self._stop, delay):
                return
            if self._down is not None:  # the next attempt starts: backing off no more (shutdown lets it finish)
                self._down.clear()
            delay = min(delay * 2, self._retry_max)
        if self._down is not None:
            self._down.clear()
        self._delivered += result.accepted
        self._rejected += result.rejected
        self._failed += result.failed + result.dropped
        if result.failed or result.dropped:
            self._fail_log.log(
                "disk queue %s: %d %s failed for good: %s", self.directory, record.items, signal.value, result.error
            )
        self._queue.ack(record)

    def statistics(self) -> DurableStatistics:
        q = self._queue.statistics()
        return DurableStatistics(
            queued_records=q.queued_records,
            queued_items=q.queued_items,
            queued_bytes=q.queued_bytes,
            accepted_items=self._accepted,
            disk_full_items=self._disk_full_items,
            disk_full_batches=self._disk_full_batches,
            write_error_items=self._write_error_items,
            too_large_items=self._too_large,
            delivered_items=self._delivered,
            rejected_items=self._rejected,
            failed_items=self._failed,
            delivery_retries=self._retries,
            in_flight=len(self._sending),
            io_errors=q.io_errors,
            corrupt_records=q.corrupt_records,
            corrupt_bytes=q.corrupt_bytes,
            corrupt_files=q.corrupt_files,
        )


def _keep(error: ExportError | None) -> bool:
    """Whether a failed send should be tried again later: the collector was unreachable, busy or too slow.

    Deadline and retries-exhausted errors end the inner exporter's retries, not this queue's: the record stays.
    A refusal (4xx, INVALID_ARGUMENT, ...) or an unreadable response is final.
    """
    if isinstance(error, RejectedError):
        return False
    return isinstance(error, (RetryableError, DeadlineExceededError, RetriesExhaustedError, ExporterShutdownError))


async def _wait(event: asyncio.Event, delay: float) -> bool:
    """Sleep ``delay`` seconds unless ``event`` is set first; return whether it is set."""
    if event.is_set():
        return True
    with contextlib.suppress(asyncio.TimeoutError):
        async with async_timeout(delay):
            await event.wait()
    return event.is_set()
