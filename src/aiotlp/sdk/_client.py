"""The client: one SDK exporter's link to aiotlp's exporter, on the bridge loop and on application loops.

:class:`ExportClient` owns the :class:`~aiotlp.export.OTLPExporter` (or the
:class:`~aiotlp.durable.DurableExporter` in front of one, with the disk queue) of one SDK exporter on the bridge
loop (rebuilt after a fork or a bridge restart), one on each application loop a batch processor exports from, the
exports handed over without waiting (at most :data:`MAX_DETACHED`), the ledger and the shutdown state. Its
public methods are what the SDK exporters (:mod:`._exporters`) and aiotlp's batch processors (:mod:`._processors`)
use; nothing outside reads its attributes.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import functools
import logging
import os
import sys
import time
import weakref
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Final, TypeAlias, TypeVar

from opentelemetry.context import (
    _SUPPRESS_HTTP_INSTRUMENTATION_KEY,
    _SUPPRESS_INSTRUMENTATION_KEY,
    Context,
    set_value,
)

from aiotlp._exceptions import ConfigurationError, DeadlineExceededError
from aiotlp.config import ExporterConfig
from aiotlp.export import Codec, ExportResult, OTLPExporter, RetryPolicy, TransportFactory
from aiotlp.model import Signal
from aiotlp.transport import require_client

from ._bridge import abandon, get_bridge, is_bridge_loop, on_running_loop
from ._stats import ExporterStatistics, Ledger, Ticket

if TYPE_CHECKING:
    from typing import TypeGuard

    from aiotlp.durable import DurableExporter

__all__ = ["MAX_DETACHED", "SUPPRESSED", "ClientExporter", "ExportClient", "encode_batch", "is_durable"]

logger = logging.getLogger("aiotlp.sdk")

MAX_DETACHED: Final = 64
"""Exports handed over without waiting (see :mod:`._exporters`) that one exporter keeps in flight at most."""

_GRACE: Final = 1.0
"""Seconds a caller waits beyond the export's own deadline before it gives up on the bridge loop."""

_I = TypeVar("_I")

SUPPRESSED: Final = set_value(
    _SUPPRESS_HTTP_INSTRUMENTATION_KEY, True, set_value(_SUPPRESS_INSTRUMENTATION_KEY, True, Context())
)
"""The context every export runs in on the bridge loop: a fresh one (not the caller's current span), with the
keys instrumentations check (HTTP clients also check the HTTP one) set."""


ClientExporter: TypeAlias = "OTLPExporter | DurableExporter"
"""What a client sends through: aiotlp's exporter, or the disk queue in front of it when ``queue_dir`` is on."""


def is_durable(exporter: object) -> TypeGuard[DurableExporter]:
    """Whether ``exporter`` is a disk queue, without importing :mod:`aiotlp.durable` (imported only with one)."""
    # another thread may be importing it right now: until the class exists, no instance of it does
    durable = getattr(sys.modules.get("aiotlp.durable"), "DurableExporter", None)
    return durable is not None and isinstance(exporter, durable)


class ExportClient:
    """Owns an :class:`OTLPExporter` on the bridge loop (rebuilt after a fork or a bridge restart), one on
    each application loop a batch processor exports from (closed when that loop goes away), the exports handed
    over without waiting, and the shutdown state."""

    def __init__(
        self,
        signal: Signal,
        config: ExporterConfig,
        *,
        retry: RetryPolicy | None,
        max_concurrent: int,
        transport_factory: TransportFactory | None,
        queue_dir: str | None = None,
        queue_dir_explicit: bool = False,
    ) -> None:
        self.signal = signal
        self.queue_dir = queue_dir
        self.config = config
        self.json = config.for_signal(signal).protocol == "http/json"
        self.timeout = config.for_signal(signal).timeout
        self._retry = retry
        self._max_concurrent = max_concurrent
        self._transport_factory = transport_factory
        self._on_bridge: ClientExporter | None = None
        self._bridge_loop: asyncio.AbstractEventLoop | None = None
        # exporters on application loops (batch processors exporting there), by loop
        self._local: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, ClientExporter] = weakref.WeakKeyDictionary()
        self._pid = os.getpid()
        self._pending: set[concurrent.futures.Future[ExportResult]] = set()
        self.ledger = Ledger()
        self.closed = False
        self._warned_closed = False
        self._queue_dir_explicit = queue_dir_explicit
        if queue_dir is not None:
            self._open_queue_soon()

    def _new_exporter(self) -> ClientExporter:
        otlp = OTLPExporter(
            self.config,
            retry=self._retry,
            max_concurrent=self._max_concurrent,
            transport_factory=self._transport_factory,
        )
        if self.queue_dir is None:
            return otlp
        # the disk queue: only ever on the bridge loop (one process may hold the directory once); it sends what an
        # earlier run left behind at once
        from aiotlp.durable import DurableExporter  # only with the disk queue

        durable = DurableExporter(otlp, self.queue_dir)
        durable.start()
        return durable

    def exporter_here(self) -> ClientExporter:
        """This client's OTLPExporter for the running loop (the bridge's, or an application loop's)."""
        loop = asyncio.get_running_loop()
        if self._on_bridge is not None and self._bridge_loop is loop:
            return self._on_bridge
        if is_bridge_loop(loop):
            self._on_bridge = self._new_exporter()
            self._bridge_loop = loop
            get_bridge().track(self._on_bridge)
            return self._on_bridge
        local = self._local.get(loop)
        if local is None:
            local = self._local[loop] = self._new_exporter()
        return local

    async def detach_loop(self) -> None:
        """The running application loop is going away: close this client's exporter on it."""
        local = self._local.pop(asyncio.get_running_loop(), None)
        if local is not None:
            await local.shutdown(0)

    def release_loop(self, loop: asyncio.AbstractEventLoop) -> None:
        """A batch processor left ``loop``, which is not running: its exporter there is let go without closing
        (see :meth:`OTLPExporter.leave_loop`). Any thread."""
        local = self._local.pop(loop, None)
        if isinstance(local, OTLPExporter):
            local.leave_loop(loop)
        elif local is not None:  # a DurableExporter: only ever on the bridge loop (never here)
            local.inner.leave_loop(loop)

    async def _run(
        self,
        parts: list[tuple[Sequence[_I], bytes]],
        encode: Callable[[Sequence[_I]], bytes],
        count: Callable[[Sequence[_I]], int],
        split_item: Callable[[_I], Sequence[_I]] | None,
        timeout: float | None,
        ticket: Ticket,
    ) -> ExportResult:
        exporter = self.exporter_here()  # it suppresses instrumentation around its own requests
        result = ExportResult()
        for items, body in parts:
            result = result + await exporter.export_encoded(
                self.signal, items, encode, body=body, count=count, split_item=split_item, timeout=timeout
            )
        # counted here, or by _settle if it is cancelled or fails before (whichever comes first counts)
        self.ledger.settled(ticket, result, durable=is_durable(exporter))
        return result

    def check_fork(self) -> None:
        if os.getpid() != self._pid:  # a child after os.fork: nothing of the parent's is usable or sendable
            self._pid = os.getpid()
            if self._on_bridge is not None:
                abandon(self._on_bridge)
            for local in self._local.values():
                abandon(local)
            self._on_bridge = self._bridge_loop = None
            self._local = weakref.WeakKeyDictionary()
            self._pending = set()

    def export(
        self,
        parts: list[tuple[Sequence[_I], bytes]],
        encode: Callable[[Sequence[_I]], bytes],
        count: Callable[[Sequence[_I]], int],
        split_item: Callable[[_I], Sequence[_I]] | None = None,
        timeout: float | None = None,
    ) -> bool:
        """Send the encoded ``parts`` one after the other; True when nothing failed or was dropped."""
        self.check_fork()
        total = sum(count(items) for items, _ in parts)
        if on_running_loop() and len(self._pending) >= MAX_DETACHED:
            self.ledger.drop("too_many_in_flight", total)
            logger.warning(
                "dropped %d %s: export was called on a running event loop and %d exports are already in flight",
                total,
                self.signal.value,
                MAX_DETACHED,
            )
            return False
        ticket = self.ledger.started(total)
        coro = self._run(parts, encode, count, split_item, timeout, ticket)
        if on_running_loop():
            future = get_bridge().submit(coro)
            future.add_done_callback(functools.partial(self._settle, ticket))
            self._pending.add(future)
            future.add_done_callback(self._detached_done)
            return True
        future = get_bridge().submit(coro)
        future.add_done_callback(functools.partial(self._settle, ticket))
        # each part has its own export deadline; the parts are sent one after the other
        wait = (self.timeout if timeout is None else min(self.timeout, timeout)) * len(parts) + _GRACE
        try:
            result = future.result(wait)
        except concurrent.futures.TimeoutError:
            future.cancel()
            error = DeadlineExceededError(f"the export did not complete within {wait:.3g}s")
            result = ExportResult(items=total, failed=total, error=error)
            logger.warning("failed to export %d %s: %s", total, self.signal.value, error)
        except Exception:
            logger.exception("failed to export %d %s", total, self.signal.value)
            return False
        return result.failed == 0 and result.dropped == 0

    async def connect_ahead(self) -> None:
        """On the running loop: make this client's exporter there and open its connection now (aiotlp's batch
        processors, when they start on the bridge: the first batch is then not held back by it). Not with the disk
        queue, whose exporter opens itself; a failure is only logged at debug level (the first export connects
        again, and reports)."""
        self.check_fork()
        if self.closed or self.queue_dir is not None:
            return
        exporter = self.exporter_here()
        if isinstance(exporter, OTLPExporter):
            await exporter.connect(self.signal)

    @property
    def default_transports(self) -> bool:
        """Whether the exporters send through aiotlp's own transports (no ``transport_factory`` of the user's)."""
        return self._transport_factory is None

    def load_client(self) -> None:
        """Import the transport's client now (aiotlp's processors, before they export on an application's loop)."""
        if self._transport_factory is None:
            require_client(self.config.for_signal(self.signal).protocol, load=True)

    def codec(self, encode: Callable[[Sequence[_I]], bytes]) -> Codec:
        """The :class:`~aiotlp.export.Codec` of batches of this client's signal encoded by ``encode`` (items
        counted one each), for :meth:`export_here`: made once by a processor's adapter."""
        return Codec(self.signal, encode, len, None)

    async def export_here(self, items: Sequence[_I], codec: Codec, body: bytes) -> ExportResult:
        """Send one batch, encoded as ``body`` (by ``codec``), through this client's exporter for the running loop,
        counted in the ledger (aiotlp's processors, exporting on their loop)."""
        ledger = self.ledger
        ticket = ledger.started(len(items))
        try:
            exporter = self.exporter_here()  # it suppresses instrumentation around its own requests
            result = await exporter.export_codec(codec, items, body=body)
        except BaseException as exc:
            ledger.failed_now(ticket, exc)
            raise
        ledger.settled(ticket, result, durable=type(exporter) is not OTLPExporter and is_durable(exporter))
        return result

    def _settle(self, ticket: Ticket, future: concurrent.futures.Future[ExportResult]) -> None:
        """Count an export that ended without reaching the end of :meth:`_run` (cancelled, or an error)."""
        if future.cancelled():
            self.ledger.failed_now(ticket, DeadlineExceededError("the export was cancelled before it completed"))
        elif (error := future.exception()) is not None:
            self.ledger.failed_now(ticket, error)

    def durable_here(self) -> DurableExporter | None:
        """The disk queue, when it is on and this client's exporter for the running loop (the bridge's)."""
        exporter = self._on_bridge if self._bridge_loop is asyncio.get_running_loop() else None
        return exporter if is_durable(exporter) else None

    def still_on_disk(self, taken: int) -> int:
        """How many of the last ``taken`` items this client wrote to its disk queue wait there still (0 without
        one). The queue delivers in order, so what waits on disk is the newest: at most ``taken`` of it. Any
        thread."""
        durable = self._on_bridge
        if taken <= 0 or not is_durable(durable):
            return 0
        return min(taken, durable.statistics().queued_items)

    async def shutdown_here(self, timeout: float | None) -> None:
        """Close the client, from the running loop (a batch processor's shutdown there): its exporter on this
        loop is shut down and awaited, those on other application loops are closed without waiting."""
        if self.closed:
            return
        self.closed = True
        running = asyncio.get_running_loop()
        local = self._local.pop(running, None)
        self.close_local(0 if timeout is None else timeout)
        exporter = self._on_bridge if self._bridge_loop is running else local
        if exporter is not None:
            await exporter.shutdown(timeout)

    def statistics(self) -> ExporterStatistics:
        """A snapshot of this exporter's ledger, with the retries and the disk queue's figures of this process."""
        exporters = [self._on_bridge, *self._local.values()]
        retries = sum(exporter.retries for exporter in exporters if exporter is not None)
        durable = self._on_bridge if is_durable(self._on_bridge) else None
        delivered = on_disk = None
        if durable is not None:
            queue = durable.statistics()
            delivered, on_disk = queue.delivered_items, queue.queued_items
        return self.ledger.snapshot(
            self.signal, retries=retries, delivered=delivered, on_disk=on_disk or 0, queue_dir=self.queue_dir
        )

    def _detached_done(self, future: concurrent.futures.Future[ExportResult]) -> None:
        self._pending.discard(future)
        if future.cancelled():
            return
        error = future.exception()
        if error is not None:
            logger.error("failed to export %s", self.signal.value, exc_info=error)

    def refuse_closed(self) -> bool:
        """True (and a warning, once) if the exporter is shut down: the caller then returns FAILURE."""
        if self.closed and not self._warned_closed:
            self._warned_closed = True
            logger.warning("the aiotlp %s exporter is shut down: export ignored", self.signal.value)
        return self.closed

    def _open_queue_soon(self) -> None:
        """Open the disk queue on the bridge now: what an earlier run left there is sent at once, before (and
        without) any new export. Exports handed to the bridge later run after this (its loop is FIFO)."""
        get_bridge().submit(self._open_queue()).add_done_callback(_log_open_failure)

    async def _open_queue(self) -> None:
        """On the bridge: open the disk queue in ``queue_dir`` (closing one opened in another directory)."""
        self.check_fork()
        if self.closed or self.queue_dir is None:
            return
        current = self._on_bridge if self._bridge_loop is asyncio.get_running_loop() else None
        if is_durable(current) and current.directory != self.queue_dir:
            self._on_bridge = self._bridge_loop = None
            await current.shutdown(0)  # what it holds stays on disk, for the next process to send
        self.exporter_here()

    def use_queue_dir(self, directory: str, *, explicit: bool) -> None:
        """Turn the disk queue on (a processor's ``queue_dir=``, ``explicit``, or ``AIOTLP_QUEUE_DIR``).

        An explicit directory wins over one that came from ``AIOTLP_QUEUE_DIR``; two explicit ones must agree.
        An exporter already used without a disk queue cannot get one.
        """
        if directory == self.queue_dir:
            return
        if self.queue_dir is not None:
            if not explicit:
                return
            if self._queue_dir_explicit:
                raise ConfigurationError(
                    "queue_dir= was given to both the processor and its exporter, with different directories: "
                    "give it to one of them"
                )
        elif self._on_bridge is not None or self._local:
            raise ConfigurationError("queue_dir= must be given before the exporter is first used")
        self.queue_dir = directory
        self._queue_dir_explicit = explicit
        self._open_queue_soon()

    def force_flush(self, timeout: float) -> bool:
        """Wait (up to ``timeout`` seconds) for the exports handed over without waiting; with the disk queue,
        then for its fsync."""
        self.check_fork()
        deadline = time.monotonic() + timeout
        pending = list(self._pending)
        if pending:
            if on_running_loop():
                return False
            _, not_done = concurrent.futures.wait(pending, timeout)
            if not_done:
                return False
        durable, loop = self._on_bridge, self._bridge_loop
        if not is_durable(durable) or loop is None or loop is not get_bridge().running_loop:
            return True
        if on_running_loop():
            return False
        remaining = max(0.0, deadline - time.monotonic())
        future = get_bridge().submit(durable.force_flush(remaining))  # on ``loop``, the bridge's
        try:
            return future.result(remaining + _GRACE)
        except concurrent.futures.TimeoutError:
            future.cancel()
            return False

    def release(self) -> None:
        """The SDK exporter was garbage collected: shut the OTLPExporter down on the bridge, without waiting."""
        exporter, loop = self._on_bridge, self._bridge_loop
        if self.closed or exporter is None or loop is None or os.getpid() != self._pid:
            return
        if loop is get_bridge().running_loop and not get_bridge().inline:  # (never run a loop from a finalizer)
            with contextlib.suppress(RuntimeError):  # the loop closed meanwhile
                asyncio.run_coroutine_threadsafe(exporter.shutdown(self.timeout), loop)

    def close_local(self, timeout: float) -> None:
        """Shut the exporters on application loops down, on their loops, without waiting (the running loop's
        own at once when called there)."""
        running = asyncio._get_running_loop()
        for loop, local in list(self._local.items()):
            del self._local[loop]
            if loop is running:
                task = loop.create_task(local.shutdown(timeout))
                _background.add(task)
                task.add_done_callback(_background.discard)
            elif loop.is_running():
                with contextlib.suppress(RuntimeError):  # it closed meanwhile
                    asyncio.run_coroutine_threadsafe(local.shutdown(timeout), loop)

    def shutdown(self, timeout: float) -> None:
        """Refuse new exports; let in-flight ones end (up to ``timeout`` seconds); close the connections."""
        if self.closed:
            return
        self.closed = True
        self.check_fork()
        self.close_local(timeout)
        exporter, loop = self._on_bridge, self._bridge_loop
        if exporter is None or loop is None or loop is not get_bridge().running_loop:
            return  # never used, or its loop is gone (the bridge stopped and closed it already)
        future = get_bridge().submit(exporter.shutdown(timeout))  # on ``loop``, the bridge's
        if on_running_loop():
            return
        try:
            future.result(timeout + _GRACE)
        except concurrent.futures.TimeoutError:
            future.cancel()
            logger.warning("the aiotlp %s exporter did not shut down within %.3gs", self.signal.value, timeout)
        except Exception:
            logger.exception("error while shutting down the aiotlp %s exporter", self.signal.value)


_background: set[asyncio.Task[None]] = set()


def _log_open_failure(future: concurrent.futures.Future[None]) -> None:
    if not future.cancelled() and (error := future.exception()) is not None:
        logger.error("cannot open the disk queue: %s", error)


def encode_batch(
    items: Sequence[_I], encode: Callable[[Sequence[_I]], bytes], what: str
) -> tuple[Sequence[_I], bytes, int]:
    """``(items, encode(items), 0)``; if that fails, leave out the items that cannot be encoded (counted)."""
    try:
        return items, encode(items), 0
    except Exception as exc:
        first_error: Exception = exc
    good: list[_I] = []
    for item in items:
        try:
            encode([item])
        except Exception:
            continue
        good.append(item)
    dropped = len(items) - len(good)
    logger.error("dropped %d of %d %s that cannot be encoded: %r", dropped, len(items), what, first_error)
    return good, encode(good), dropped
