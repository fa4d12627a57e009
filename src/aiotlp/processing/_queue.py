"""The bounded, thread-safe queue of a batch processor, and the ledger that counts every item it ever saw.

Layout: a deque of *chunks*, each a list of at most one export batch (``max_export_batch_size`` items, or
metric data points). Producers append to the tail chunk and open a new one when it is full; the worker takes the
head chunk whole. So a put and a take are both O(1) under the lock, and a batch is never copied.

Units: the queue counts items in the signal's OTLP unit through ``weigh`` (1 per span or log record, the number
of data points of a metric), and bytes through ``size_of`` (only when a byte cap is set). Every change to the
queue and to the ledger (``produced``, ``queued``, ``in_flight``, outcomes, drops) happens in one critical
section, so a snapshot always satisfies the accounting identity of :mod:`aiotlp.processing._stats`.

Sequence numbers: ``admitted`` counts entries ever admitted and ``removed`` entries ever taken off the front
(taken for export, evicted by ``drop_oldest``, dropped at the shutdown deadline). The queue is FIFO and only
ever loses entries at the front, so "every entry admitted before the mark ``m`` has left the queue" is exactly
``removed >= m``. That is how a flush waits only for what was put before it.
"""

from __future__ import annotations

import sys
import threading
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from typing import Final, Generic, Protocol, TypeVar

from ..model import LogRecord, Metric, Span

__all__ = ["ADMITTED", "CLOSED", "DROPPED", "NO_ROOM", "READY", "BoundedQueue", "estimate_size"]

T = TypeVar("T")
T_contra = TypeVar("T_contra", contravariant=True)


class Put(Protocol[T_contra]):
    def __call__(self, item: T_contra, wait: bool = False) -> int: ...


# What BoundedQueue.put did (plain ints: this is the producers' hot path).
ADMITTED: Final = 0
"""Admitted."""
READY: Final = 1
"""Admitted, and a full batch is now waiting: wake the worker (reported once until the worker takes it)."""
DROPPED: Final = 2
"""Dropped (``queue_full``), and counted."""
CLOSED: Final = 3
"""Dropped (``already_shutdown``), and counted."""
NO_ROOM: Final = 4
"""Only with ``wait=True``: full; nothing was counted; wait for room and try again."""

_FALLBACK_SIZE: Final = 1024  # bytes assumed for an item whose size_of raised


class _Chunk(list[T]):
    """Up to one export batch of queued entries (the list itself), with their weights and sizes when those vary.

    ``weight`` and ``nbytes`` are kept only when the queue measures items (``weigh``/``size_of``); for unit
    weights the weight is ``len(chunk)``.
    """

    __slots__ = ("nbytes", "sizes", "weight", "weights")

    def __init__(self, *, sizes: bool, weights: bool) -> None:
        super().__init__()
        self.sizes: list[int] | None = [] if sizes else None
        self.weights: list[int] | None = [] if weights else None
        self.weight = 0
        self.nbytes = 0


class BoundedQueue(Generic[T]):
    """A FIFO bounded by ``max_size`` (in weight) and ``max_bytes``, with the processor's whole ledger.

    ``weigh=None`` means every item weighs 1; ``size_of=None`` means bytes are not tracked. Every method is
    thread-safe; none blocks for longer than O(1) work (except the rare, shutdown-only :meth:`drop_all` and
    the flush-timeout-only :meth:`weight_before`, which are O(number of chunks)). :attr:`put` is the fastest
    of two implementations: one for unit weights without a byte cap (spans, log records), one for the rest.

    Its state is in ``__slots__``: :meth:`put_sized` has a compiled twin (``aiotlp.processing._putfast``, chosen as
    ``aiotlp.processing.put_sized``, for ``on_end``) that reads and writes them in place, under the same lock.
    """

    __slots__ = (
        "__weakref__",  # the self-metrics hold the queue by a weak reference
        "_batch_size",
        "_chunks",
        "_drop_oldest",
        "_limit",
        "_max_bytes",
        "_size_of",
        "_tail",
        "_unit",
        "_weigh",
        "admitted",
        "batches",
        "closed",
        "dropped_closed",
        "dropped_disk_error",
        "dropped_disk_full",
        "dropped_full",
        "dropped_invalid",
        "dropped_shutdown",
        "dropped_too_large",
        "exported",
        "failed",
        "handed",
        "in_flight",
        "last_error",
        "lock",
        "max_bytes",
        "max_size",
        "outcomes",
        "produced",
        "put",
        "queued",
        "queued_bytes",
        "rejected",
        "removed",
        "wake_pending",
    )

    def __init__(
        self,
        *,
        max_size: int,
        max_bytes: int | None,
        batch_size: int,
        drop_oldest: bool,
        weigh: Callable[[T], int] | None,
        size_of: Callable[[T], int] | None,
    ) -> None:
        self.lock = threading.Lock()
        self.max_size = max_size
        self.max_bytes = max_bytes
        self._max_bytes = sys.maxsize if max_bytes is None else max_bytes
        self._limit = max_size  # -1 once closed, so that the fast path's one comparison also catches that
        self._batch_size = batch_size
        self._drop_oldest = drop_oldest
        self._weigh = weigh
        self._size_of = size_of
        self._unit = weigh is None and size_of is None
        self.put: Put[T] = self._put_unit if self._unit else self._put_sized if weigh is None else self._put_measured
        self._chunks: deque[_Chunk[T]] = deque()
        self._tail: _Chunk[T] | None = None
        self.closed = False
        # True from the put that made a batch ready until the worker finds nothing ready: one wake-up per batch.
        self.wake_pending = False
        # The ledger (all in the signal's unit, except admitted/removed which count entries).
        self.produced = 0
        self.queued = 0
        self.queued_bytes = 0
        self.in_flight = 0
        self.handed = 0
        self.exported = 0
        self.rejected = 0
        self.failed = 0
        self.dropped_full = 0
        self.dropped_closed = 0
        self.dropped_too_large = 0
        self.dropped_invalid = 0
        self.dropped_disk_full = 0
        self.dropped_disk_error = 0
        self.dropped_shutdown = 0
        self.batches = 0
        self.admitted = 0
        self.removed = 0
        self.last_error: str | None = None
        # Exporter outcomes other than success, by ``error.type`` (for the self-metrics).
        self.outcomes: dict[str, int] = {}

    # ------------------------------------------------------------------------------------------- producers

    def _put_unit(self, item: T, wait: bool = False) -> int:
        """``put`` for unit weights and no byte cap: the producers' hot path, kept short."""
        with self.lock:
            if self.queued >= self._limit:
                code = self._overflow(1, 0, wait)
                if code != ADMITTED:
                    return code
            tail = self._tail
            if tail is None or len(tail) >= self._batch_size:
                tail = self._tail = _Chunk(sizes=False, weights=False)
                self._chunks.append(tail)
            tail.append(item)
            self.queued += 1
            self.produced += 1
            self.admitted += 1
            # A unit chunk is only ever closed by filling it, so "a batch is ready" is "the tail just filled".
            if len(tail) >= self._batch_size and not self.wake_pending:
                self.wake_pending = True
                return READY
            return ADMITTED

    def _put_sized(self, item: T, wait: bool = False) -> int:
        """``put`` for unit weights under a byte cap (spans and log records encoded at the source): what
        :meth:`_put_measured` does for a weight of 1, kept short."""
        try:
            size = max(int(self._size_of(item)), 0)  # type: ignore[misc]
        except Exception:
            size = _FALLBACK_SIZE
        return self.put_sized(item, size, wait)

    def put_sized(self, item: T, size: int, wait: bool = False) -> int:
        """:meth:`put` of an item of weight 1 whose size in bytes the caller knows (``size >= 0``; an item
        encoded at the source: its field's length), without calling ``size_of``: ``on_end``'s hot path. Only
        for a queue of unit weights that tracks bytes (``weigh=None``, a ``size_of``)."""
        lock = self.lock
        lock.acquire()  # not `with`: its __enter__/__exit__ calls cost more, and nothing below raises
        try:
            queued = self.queued
            if queued >= self._limit or self.queued_bytes + size > self._max_bytes:
                code = self._overflow(1, size, wait)
                if code != ADMITTED:
                    return code
                queued = self.queued
            tail = self._tail
            if tail is None or (tail and tail.weight >= self._batch_size):
                tail = self._tail = _Chunk(sizes=True, weights=False)
                self._chunks.append(tail)
            tail.append(item)
            tail.weight += 1
            tail.sizes.append(size)  # type: ignore[union-attr]
            tail.nbytes += size
            self.produced += 1
            self.queued = queued + 1
            self.queued_bytes += size
            self.admitted += 1
            if not self.wake_pending and (tail.weight >= self._batch_size or len(self._chunks) > 1):
                self.wake_pending = True
                return READY
            return ADMITTED
        finally:
            lock.release()

    def _put_measured(self, item: T, wait: bool = False) -> int:
        """``put`` for weighed (metric data points) or sized (byte cap) items."""
        weight, size = self._measure(item)
        with self.lock:
            if self.queued + weight > self._limit or self.queued_bytes + size > self._max_bytes:
                code = self._overflow(weight, size, wait)
                if code != ADMITTED:
                    return code
            tail = self._tail
            if tail is None or (tail and tail.weight + weight > self._batch_size):
                tail = self._tail = _Chunk(sizes=self._size_of is not None, weights=self._weigh is not None)
                self._chunks.append(tail)
            tail.append(item)
            tail.weight += weight
            if tail.sizes is not None:
                tail.sizes.append(size)
                tail.nbytes += size
            if tail.weights is not None:
                tail.weights.append(weight)
            self.produced += weight
            self.queued += weight
            self.queued_bytes += size
            self.admitted += 1
            if not self.wake_pending and (tail.weight >= self._batch_size or len(self._chunks) > 1):
                self.wake_pending = True
                return READY
            return ADMITTED

    def _overflow(self, weight: int, size: int, wait: bool) -> int:
        """Under the lock, the queue is closed or has no room: drop (counted), evict, or say NO_ROOM.

        Returns ADMITTED when ``drop_oldest`` made room (the caller then admits the item).
        """
        if self.closed:
            self.produced += weight
            self.dropped_closed += weight
            return CLOSED
        if weight > self.max_size or size > self._max_bytes:  # it can never fit
            self.produced += weight
            self.dropped_full += weight
            return DROPPED
        if wait:
            return NO_ROOM
        if not self._drop_oldest:
            self.produced += weight
            self.dropped_full += weight
            return DROPPED
        while self.queued + weight > self.max_size or self.queued_bytes + size > self._max_bytes:
            self._evict_oldest()
        return ADMITTED

    def _measure(self, item: T) -> tuple[int, int]:
        # Producers never see an exception: a failing weigh/size_of gets a fallback value.
        try:
            weight = 1 if self._weigh is None else max(int(self._weigh(item)), 0)
        except Exception:
            weight = 1
        try:
            size = 0 if self._size_of is None else max(int(self._size_of(item)), 0)
        except Exception:
            size = _FALLBACK_SIZE
        return weight, size

    def _evict_oldest(self) -> None:
        # Under the lock. O(chunk length) memmove in C for list.pop(0), at most one batch.
        head = self._chunks[0]
        head.pop(0)
        weight = 1 if head.weights is None else head.weights.pop(0)
        size = 0 if head.sizes is None else head.sizes.pop(0)
        head.weight -= weight
        head.nbytes -= size
        if not head:
            self._chunks.popleft()
            if head is self._tail:
                self._tail = None
        self.queued -= weight
        self.queued_bytes -= size
        self.removed += 1
        self.dropped_full += weight

    def close(self) -> None:
        """From now on every put is dropped as ``already_shutdown``."""
        with self.lock:
            self.closed = True
            self._limit = -1

    # ---------------------------------------------------------------------------------------------- worker

    def take(self, drain_to: int) -> tuple[list[T], int, int] | None:
        """Take the head batch if it is full, or if it holds entries admitted before the mark ``drain_to``.

        Returns ``(items, weight, first sequence number)``, the items counted as in flight; or None, and then
        clears ``wake_pending`` so that the next put that fills a batch wakes the worker.
        """
        with self.lock:
            return self._take(drain_to)

    def take_batch(self, drain_to: int, room: bool) -> tuple[list[T], int, int, bool] | None:
        """:meth:`take`, and whether another batch may be due after it: one lock where the caller would take twice.
        When nothing else is due and the caller has ``room`` for another export after this one (so it would
        :meth:`take` again and find nothing), ``wake_pending`` is cleared as that :meth:`take` would clear it."""
        with self.lock:
            taken = self._take(drain_to)
            if taken is None:
                return None
            chunks = self._chunks
            more = bool(chunks)
            if more:
                after = chunks[0]
                more = (
                    after is not self._tail
                    or (len(after) if self._unit else after.weight) >= self._batch_size
                    or self.removed < drain_to
                )
            if not more and room:
                self.wake_pending = False
            return (*taken, more)

    def _take(self, drain_to: int) -> tuple[list[T], int, int] | None:
        """:meth:`take`'s work, under the lock."""
        chunks = self._chunks
        if not chunks:
            self.wake_pending = False
            return None
        head = chunks[0]
        weight = len(head) if self._unit else head.weight
        if head is self._tail and weight < self._batch_size and self.removed >= drain_to:
            self.wake_pending = False
            return None
        chunks.popleft()
        if head is self._tail:
            self._tail = None
        first = self.removed
        self.removed += len(head)
        self.queued -= weight
        self.queued_bytes -= head.nbytes
        self.in_flight += weight
        self.handed += weight
        self.batches += 1
        return head, weight, first

    def idle(self, drain_to: int) -> bool:
        """True when a :meth:`take` would find nothing and clear nothing: no batch is due and no wake-up is pending.
        Read without the lock (the loop thread, before taking it): a put that makes a batch ready after this
        finds ``wake_pending`` clear and reports ``READY``, which wakes the worker."""
        if self.wake_pending:
            return False
        chunks = self._chunks
        if not chunks:
            return True
        head = chunks[0]
        return (
            head is self._tail
            and (len(head) if self._unit else head.weight) < self._batch_size
            and self.removed >= drain_to
        )

    def settle(
        self,
        weight: int,
        *,
        accepted: int,
        rejected: int,
        failed: int,
        too_large: int,
        error: str | None,
        outcomes: Mapping[str, int],
        drop_reason: str = "too_large",
        invalid: int = 0,
    ) -> None:
        """Move a finished batch of ``weight`` from in flight to its outcomes (which must add up to it); the
        exporter's drops (``too_large``) are counted under ``drop_reason`` (``too_large``, ``disk_full``,
        ``disk_error``), those it could not encode (``invalid``) under ``invalid``."""
        with self.lock:
            self.in_flight -= weight
            self.dropped_invalid += invalid
            self.exported += accepted
            self.rejected += rejected
            self.failed += failed
            if drop_reason == "disk_full":
                self.dropped_disk_full += too_large
            elif drop_reason == "disk_error":
                self.dropped_disk_error += too_large
            else:
                self.dropped_too_large += too_large
            if error is not None:
                self.last_error = error
            for key, count in outcomes.items():
                self.outcomes[key] = self.outcomes.get(key, 0) + count

    def settle_accepted(self, weight: int) -> None:
        """:meth:`settle` of a batch of ``weight`` that was all accepted (the common end of an export)."""
        with self.lock:
            self.in_flight -= weight
            self.exported += weight

    def drop_all(self) -> tuple[int, list[int]]:
        """Drop everything queued as ``shutdown``; return the first sequence number and each entry's weight."""
        with self.lock:
            chunks, self._chunks, self._tail = self._chunks, deque(), None
            first = self.removed
            weights: list[int] = []
            for chunk in chunks:
                weights.extend(chunk.weights if chunk.weights is not None else [1] * len(chunk))
            self.removed += len(weights)
            self.dropped_shutdown += self.queued
            self.queued = 0
            self.queued_bytes = 0
            return first, weights

    def weight_before(self, mark: int) -> int:
        """The weight of the queued entries admitted before the mark ``mark``."""
        with self.lock:
            left = mark - self.removed
            total = 0
            for chunk in self._chunks:
                if left <= 0:
                    break
                n = min(left, len(chunk))
                total += n if chunk.weights is None else sum(chunk.weights[:n])
                left -= n
            return total


# ---------------------------------------------------------------------------------------------- size estimate


_SCALARS: Final = frozenset({int, float, bool, type(None)})
_CONTAINERS: Final = frozenset({tuple, list, dict})


def _value_size(value: object) -> int:
    """Shallow: a string or bytes costs its length, a scalar 9, a list or mapping 16 per element."""
    kind = type(value)
    if kind is str or kind is bytes:
        return len(value) + 3  # type: ignore[arg-type]
    if kind in _SCALARS:
        return 9
    if kind in _CONTAINERS:
        return 4 + 16 * len(value)  # type: ignore[arg-type]
    if isinstance(value, (str, bytes)):
        return len(value) + 3
    if isinstance(value, (Sequence, Mapping)):
        return 4 + 16 * len(value)
    return 9


def _attributes_size(attributes: object) -> int:
    # Model objects hold plain dicts: the exact type check avoids a slow ABC isinstance on the hot path.
    if type(attributes) is not dict and not isinstance(attributes, Mapping):
        return 0
    total = 0
    for key, value in attributes.items():
        if type(value) is str:
            total += 9 + len(key) + len(value)
        else:
            total += 6 + len(key) + _value_size(value)
    return total


def _span_size(span: Span) -> int:
    size = 80 + len(span.name) + len(span.trace_state) + len(span.status.message)
    size += _attributes_size(span.attributes)
    for event in span.events:
        size += 20 + len(event.name) + _attributes_size(event.attributes)
    for link in span.links:
        size += 40 + len(link.trace_state) + _attributes_size(link.attributes)
    return size


def _log_size(record: LogRecord) -> int:
    size = 40 + len(record.severity_text) + len(record.event_name) + _attributes_size(record.attributes)
    if record.body is not None:
        size += _value_size(record.body)
    if record.trace_id:
        size += 28
    return size


def _metric_size(metric: Metric) -> int:
    size = 24 + len(metric.name) + len(metric.description) + len(metric.unit)
    for point in metric.data.data_points:
        size += 32 + _attributes_size(point.attributes)
        size += 9 * (
            len(getattr(point, "bucket_counts", ()))
            + len(getattr(point, "explicit_bounds", ()))
            + 2 * len(getattr(point, "quantile_values", ()))
        )
        for side in ("positive", "negative"):
            buckets = getattr(point, side, None)
            if buckets is not None:
                size += 9 * len(buckets.bucket_counts)
        size += 40 * len(getattr(point, "exemplars", ()))
    return size


def _other_size(item: object) -> int:
    """Duck-typed, for foreign objects (an OpenTelemetry SDK ``ReadableSpan`` or ``LogRecord``, ...)."""
    size = 64
    name = getattr(item, "name", None)
    if isinstance(name, str):
        size += len(name)
    size += _attributes_size(getattr(item, "attributes", None))
    for many, each in (("events", 24), ("links", 40)):
        values = getattr(item, many, None)
        if isinstance(values, Sequence):
            size += each * len(values)
    body = getattr(item, "body", None)
    if body is not None:
        size += _value_size(body)
    return size


_SIZERS: dict[type, Callable[[object], int]] = {
    Span: _span_size,  # type: ignore[dict-item]
    LogRecord: _log_size,  # type: ignore[dict-item]
    Metric: _metric_size,  # type: ignore[dict-item]
}


def estimate_size(item: object) -> int:
    """A cheap estimate, in bytes, of what ``item`` adds to an OTLP protobuf request.

    The default ``size_of`` of :class:`~aiotlp.processing.BatchProcessor`. It is shallow and linear in the
    number of attributes, events, links and data points; nested attribute values are not walked:

    * strings and bytes count their length (characters, not UTF-8 bytes) plus 3, scalars 9 bytes, a list or
      mapping value 16 bytes per element; an attribute adds its key's length plus 6;
    * a :class:`~aiotlp.model.Span` is 80 bytes (ids, times, kind, flags) plus its name, trace state, status
      message and attributes, plus 20 per event and 40 per link with their names and attributes;
    * a :class:`~aiotlp.model.LogRecord` is 40 bytes plus its body, severity text, event name and attributes
      (and 28 with a trace context);
    * a :class:`~aiotlp.model.Metric` is 24 bytes plus its name, description and unit, plus 32 per data point
      with its attributes, 9 per bucket, bound and quantile field, and 40 per exemplar;
    * anything else (an OpenTelemetry SDK span or log record, ...) is 64 bytes plus its ``name``,
      ``attributes``, ``body``, and 24 per ``events`` and 40 per ``links`` element, found by duck typing.

    The resource and the scope are not counted: the encoder writes them once per batch.
    """
    sizer = _SIZERS.get(type(item))
    if sizer is None:
        return _other_size(item)
    return sizer(item)
