"""What an SDK exporter reports: :class:`ExporterStatistics`, and the ledger behind it.

Every count is in the unit the OTLP specification counts for the signal: spans, log records, or metric *data
points*. The ledger is kept under one lock, updated as each export settles, so every snapshot satisfies::

    items == delivered_now + kept_on_disk + rejected + failed + sum(dropped.values()) + in_flight

where ``delivered_now`` is ``accepted`` (the collector took them during the export call). With the disk queue
(``queue_dir=`` / ``AIOTLP_QUEUE_DIR``) an export ends when the batch is written to disk: those items are
``kept_on_disk``, never ``accepted``; ``delivered`` and ``on_disk`` then say what the queue has sent since and what
waits in it now (read from the queue at the same moment, not under the ledger's lock).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Final

from aiotlp._exceptions import AttemptTimeoutError, DeadlineExceededError, ExportError, QueueFullError, QueueWriteError
from aiotlp.export import ExportResult
from aiotlp.model import Signal

__all__ = ["EXPORTER_DROP_REASONS", "ExporterStatistics"]

EXPORTER_DROP_REASONS: Final = ("invalid", "too_large", "disk_full", "disk_error", "too_many_in_flight")
"""Why an SDK exporter dropped items (never sent, never to be sent):

* ``invalid``: they cannot be encoded (the rest of the batch is sent);
* ``too_large``: one item alone is over the request byte cap;
* ``disk_full`` / ``disk_error``: the disk queue refused them (its byte cap or a full disk; another write error);
* ``too_many_in_flight``: ``export`` was called on a running event loop with
  :data:`~aiotlp.sdk._exporters.MAX_DETACHED` exports already in flight.
"""


@dataclass(frozen=True, slots=True)
class ExporterStatistics:
    """A snapshot of one SDK exporter's ledger since it was made (see the module docstring for the identity).

    * ``exports``: ``export`` calls that had something to send; ``items``: what they carried;
    * ``accepted``: the collector took them (without the disk queue); ``kept_on_disk``: written to the disk queue,
      to be delivered by it (by this process, or the next one that opens the directory);
    * ``rejected``: refused by the collector in a partial success; ``failed``: their export failed (an error,
      the timeout, a shutdown; ``last_error`` says the last one);
    * ``dropped``: by reason (:data:`EXPORTER_DROP_REASONS`, only those that happened);
    * ``in_flight``: handed over, outcome not known yet;
    * ``retries``: retries the exporter made (the disk queue's re-sends included);
    * ``delivered``: taken by the collector: ``accepted``, or with the disk queue what it delivered so far;
      ``on_disk``: items waiting in the disk queue now (0 without one); ``queue_dir``: the queue's directory.
    """

    signal: Signal
    exports: int
    items: int
    accepted: int
    kept_on_disk: int
    rejected: int
    failed: int
    dropped: Mapping[str, int]
    in_flight: int
    retries: int
    delivered: int
    on_disk: int
    queue_dir: str | None = None
    last_error: str | None = None

    @property
    def dropped_total(self) -> int:
        return sum(self.dropped.values())

    @property
    def balanced(self) -> bool:
        """Whether the accounting identity holds (it always should)."""
        settled = self.accepted + self.kept_on_disk + self.rejected + self.failed + self.dropped_total
        return self.items == settled + self.in_flight


def _describe(error: BaseException) -> str:
    return f"{type(error).__name__}: {error}"


def _error_type(error: BaseException | None) -> str:
    """The ``error.type`` of failed items in the self-metrics: ``timeout`` for deadlines, else the class name."""
    if isinstance(error, (DeadlineExceededError, AttemptTimeoutError)):
        return "timeout"
    return "_OTHER" if error is None else type(error).__name__


class Ticket:
    """One export in flight: settled once, by whichever of its outcomes comes first."""

    __slots__ = ("items", "open", "started")

    def __init__(self, items: int) -> None:
        self.items = items
        self.open = True
        self.started = time.monotonic()


class Ledger:
    """The counts behind :class:`ExporterStatistics`; every method may be called from any thread."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.exports = 0
        self.items = 0
        self.accepted = 0
        self.kept_on_disk = 0
        self.rejected = 0
        self.failed = 0
        self.dropped: dict[str, int] = {}
        self.in_flight = 0
        self.last_error: str | None = None
        self.failed_by: dict[str, int] = {}
        """Failed items by ``error.type`` (for the self-metrics)."""
        self.on_settled: Callable[[float, str | None], None] | None = None
        """Called (outside the lock) with each export's seconds and ``error.type`` (None: full success): the
        self-metrics' ``operation.duration``, when they are on."""

    def started(self, items: int) -> Ticket:
        """An export of ``items`` begins: in flight until its ticket is :meth:`settled` or :meth:`failed_now`."""
        with self._lock:
            self.exports += 1
            self.items += items
            self.in_flight += items
        return Ticket(items)

    def drop(self, reason: str, items: int, *, counted: bool = False) -> None:
        """``items`` dropped for ``reason``; ``counted``: they were already counted by :meth:`started`."""
        if items <= 0:
            return
        with self._lock:
            if counted:
                self.in_flight -= items
            else:
                self.items += items
            self.dropped[reason] = self.dropped.get(reason, 0) + items

    def settled(self, ticket: Ticket, result: ExportResult, *, durable: bool) -> None:
        """An export came back with ``result``; ``durable``: it went into the disk queue. Ignored if the ticket was
        settled already."""
        with self._lock:
            if not ticket.open:
                return
            ticket.open = False
            items = ticket.items
            self.in_flight -= items
            # whatever the result does not account for (never expected) counts as failed
            failed = result.failed + max(
                0, items - (result.accepted + result.rejected + result.failed + result.dropped)
            )
            if durable:
                self.kept_on_disk += result.accepted
            else:
                self.accepted += result.accepted
            self.rejected += result.rejected
            self.failed += failed
            if result.dropped:
                reason = _drop_reason(result)
                self.dropped[reason] = self.dropped.get(reason, 0) + result.dropped - result.invalid
                if result.invalid:
                    self.dropped["invalid"] = self.dropped.get("invalid", 0) + result.invalid
                self.dropped = {key: value for key, value in self.dropped.items() if value}
            if result.error is not None and (result.failed or result.dropped):
                self.last_error = _describe(result.error)
            error_type = _outcome_type(result)
            if failed:
                key = _error_type(result.error)
                self.failed_by[key] = self.failed_by.get(key, 0) + failed
                error_type = error_type or key
        if self.on_settled is not None:
            self.on_settled(time.monotonic() - ticket.started, error_type)

    def withdraw(self, ticket: Ticket) -> None:
        """An export counted by :meth:`started` that did not go out after all: it is sent through another path,
        which counts it (the native lane hands a request it could not deliver back to the exporter). Ignored if
        the ticket was settled already."""
        with self._lock:
            if not ticket.open:
                return
            ticket.open = False
            self.exports -= 1
            self.items -= ticket.items
            self.in_flight -= ticket.items

    def failed_now(self, ticket: Ticket, error: BaseException) -> None:
        """An export failed without a result (cancelled, timed out, an unexpected error). Ignored if the ticket
        was settled already."""
        with self._lock:
            if not ticket.open:
                return
            ticket.open = False
            self.in_flight -= ticket.items
            self.failed += ticket.items
            self.last_error = _describe(error)
            error_type = _error_type(error)
            self.failed_by[error_type] = self.failed_by.get(error_type, 0) + ticket.items
        if self.on_settled is not None:
            self.on_settled(time.monotonic() - ticket.started, error_type)

    def failures(self) -> dict[str, int]:
        """Items that did not reach the collector, by ``error.type`` (rejected, dropped by reason, failed by
        error), for the self-metrics."""
        with self._lock:
            return {**({"rejected": self.rejected} if self.rejected else {}), **self.dropped, **self.failed_by}

    def snapshot(
        self, signal: Signal, *, retries: int, delivered: int | None, on_disk: int, queue_dir: str | None
    ) -> ExporterStatistics:
        with self._lock:
            return ExporterStatistics(
                signal=signal,
                exports=self.exports,
                items=self.items,
                accepted=self.accepted,
                kept_on_disk=self.kept_on_disk,
                rejected=self.rejected,
                failed=self.failed,
                dropped=dict(self.dropped),
                in_flight=self.in_flight,
                retries=retries,
                delivered=self.accepted if delivered is None else delivered,
                on_disk=on_disk,
                queue_dir=queue_dir,
                last_error=self.last_error,
            )


def _outcome_type(result: ExportResult) -> str | None:
    """The ``error.type`` of an export that was not a full success but failed nothing (None: full success)."""
    if result.rejected:
        return "rejected"
    if result.invalid:
        return "invalid"
    return _drop_reason(result) if result.dropped else None


def _drop_reason(result: ExportResult) -> str:
    error: ExportError | None = result.error
    if isinstance(error, QueueFullError):
        return "disk_full"
    if isinstance(error, QueueWriteError):
        return "disk_error"
    return "too_large"
