"""What a batch processor reports: the statistics snapshot, and the outcome of a flush or a shutdown.

Every count is in the unit the OTLP specification counts for the signal: spans, log records, or metric *data
points*. The ledger behind :class:`ProcessorStatistics` is kept under the queue's lock, so every snapshot, taken
on any thread, satisfies exactly::

    produced == exported + persisted + rejected + failed + sum(dropped.values()) + queued + in_flight

``persisted`` is 0 unless the exporter is a disk queue that reports what it still holds (the :mod:`aiotlp.sdk`
processors with ``queue_dir=`` / ``AIOTLP_QUEUE_DIR``): written to disk, not delivered yet.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Final, Literal

from ..model import Signal

__all__ = ["DROP_REASONS", "DropReason", "FlushOutcome", "FlushStatus", "ProcessorStatistics"]

DropReason = Literal["queue_full", "already_shutdown", "too_large", "invalid", "shutdown", "disk_full", "disk_error"]
"""Why items were dropped (never handed to a collector):

* ``queue_full``: the queue was full when the item was put (``drop_newest``, and ``put_nowait`` under
  ``block``), or it was evicted to make room for a newer one (``drop_oldest``); also an item larger than the
  whole queue (``max_queue_size`` or ``max_queue_bytes``), which can never fit;
* ``already_shutdown``: put after :meth:`~aiotlp.processing.BatchProcessor.shutdown` began;
* ``too_large``: the exporter could not send it, alone over its request byte cap (``ExportResult.dropped``);
* ``invalid``: the exporter could not encode it at all (an :class:`~aiotlp.EncodeError`: a non-str attribute
  key, a value of an unsupported type, ...; ``ExportResult.invalid``). A value the encoders only leave out (an
  int outside int64, a value nested too deep) drops nothing: see :mod:`aiotlp.encoding`;
* ``shutdown``: still queued when the shutdown deadline passed;
* ``disk_full`` / ``disk_error``: the exporter's disk queue (:mod:`aiotlp.durable`) refused them: full (its byte
  cap, or no space left on the device), or another write error.
"""

DROP_REASONS: Final[tuple[DropReason, ...]] = (
    "queue_full",
    "already_shutdown",
    "too_large",
    "invalid",
    "shutdown",
    "disk_full",
    "disk_error",
)


@dataclass(frozen=True, slots=True)
class ProcessorStatistics:
    """A consistent snapshot of one processor's ledger (see the module docstring for the identity).

    * ``produced``: every put attempt (admitted or dropped); a ``put`` waiting for room is counted when it ends;
    * ``queued`` / ``queued_bytes``: waiting in the queue (bytes as ``size_of`` measured them; 0 without a byte
      cap); ``capacity`` / ``byte_capacity`` are the limits;
    * ``in_flight``: handed to the exporter, result not back yet;
    * ``exported``: accepted by the collector; ``rejected``: refused in a partial success; ``failed``: their
      export failed (error, ``export_timeout``, cancelled at the shutdown deadline);
    * ``persisted``: written to a disk queue that has not delivered them yet (see the module docstring);
    * ``dropped``: by :data:`DropReason`, every reason present (0 when none);
    * ``batches``: export calls made; ``retries``: the exporter's ``retries`` attribute, when it has one;
    * ``last_error``: the last export failure, as ``"ErrorClass: message"`` (aiotlp's messages hold no secrets).
    """

    signal: Signal
    produced: int
    queued: int
    queued_bytes: int
    in_flight: int
    exported: int
    rejected: int
    failed: int
    dropped: Mapping[str, int]
    batches: int
    capacity: int
    byte_capacity: int | None = None
    retries: int | None = None
    last_error: str | None = None
    persisted: int = 0

    @property
    def dropped_total(self) -> int:
        return sum(self.dropped.values())

    @property
    def balanced(self) -> bool:
        """Whether the accounting identity holds (it always should)."""
        settled = self.exported + self.persisted + self.rejected + self.failed + self.dropped_total
        return self.produced == settled + self.queued + self.in_flight


class FlushStatus(str, enum.Enum):
    """How a flush or a shutdown ended."""

    SUCCESS = "success"
    """Every item it waited for was accepted by the collector."""
    FAILURE = "failure"
    """Everything it waited for was settled before the deadline, but not all of it was accepted."""
    TIMEOUT = "timeout"
    """The deadline passed first; ``pending`` (and, for a shutdown, ``dropped``/``failed``) say what was left."""


@dataclass(frozen=True, slots=True)
class FlushOutcome:
    """What a :meth:`~aiotlp.processing.BatchProcessor.force_flush` or ``shutdown`` achieved.

    The counts cover only the items it waited for: those put before it was called, from the batches that
    settled while it waited. ``exported``, ``rejected`` and ``failed`` are as in :class:`ProcessorStatistics`;
    ``dropped`` counts items the exporter dropped as too large and, for a shutdown, the items still queued at
    the deadline; ``pending`` counts items still queued or in flight when it returned. Items evicted by the
    ``drop_oldest`` policy while it waited are reported by ``statistics()`` only.

    Truthy exactly when ``status`` is ``SUCCESS``.
    """

    status: FlushStatus
    exported: int = 0
    rejected: int = 0
    failed: int = 0
    dropped: int = 0
    pending: int = 0
    error: str = ""

    def __bool__(self) -> bool:
        return self.status is FlushStatus.SUCCESS

    @property
    def ok(self) -> bool:
        return self.status is FlushStatus.SUCCESS
