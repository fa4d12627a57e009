"""The bounded queue against a model (hypothesis state machine): FIFO order, both caps, both drop policies,
the wake-up flag, and the ledger identity after every step; ``put`` and, for unit weights under a byte cap,
``put_sized`` (the size given by the caller) mixed, and its compiled twin (``_putfast.queue_put_sized``, which
leaves all but the plain case to it) when built."""

from __future__ import annotations

import threading
from collections import deque

import pytest
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

from aiotlp.processing import _putfast_module as speedups
from aiotlp.processing._queue import ADMITTED, CLOSED, DROPPED, NO_ROOM, READY, BoundedQueue, _Chunk

COMPILED_PUT = speedups is not None and hasattr(speedups, "queue_put_sized")
if COMPILED_PUT:
    speedups.queue_slots(BoundedQueue, _Chunk)  # as aiotlp.processing does at import


class QueueMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.weights: dict[int, int] = {}
        self.sizes: dict[int, int] = {}
        self.next_id = 0
        self.model: deque[int] = deque()  # ids, oldest first
        self.in_flight: list[tuple[list[int], int]] = []
        self.settled = 0
        self.dropped = 0
        self.produced = 0

    @initialize(
        max_size=st.integers(1, 12),
        batch=st.integers(1, 12),
        max_bytes=st.none() | st.integers(1, 40),
        weighed=st.booleans(),
        drop_oldest=st.booleans(),
        compiled=st.booleans(),
    )
    def setup(
        self, max_size: int, batch: int, max_bytes: int | None, weighed: bool, drop_oldest: bool, compiled: bool
    ) -> None:
        self.compiled = compiled and COMPILED_PUT
        self.compiled_puts = 0
        self.max_size = max_size
        self.batch = min(batch, max_size)
        self.max_bytes = max_bytes
        self.weighed = weighed
        self.drop_oldest = drop_oldest
        self.queue: BoundedQueue[int] = BoundedQueue(
            max_size=max_size,
            max_bytes=max_bytes,
            batch_size=self.batch,
            drop_oldest=drop_oldest,
            weigh=self.weights.__getitem__ if weighed else None,
            size_of=self.sizes.__getitem__ if max_bytes is not None else None,
        )

    def weight(self, item: int) -> int:
        return self.weights[item] if self.weighed else 1

    def size(self, item: int) -> int:
        return self.sizes[item] if self.max_bytes is not None else 0

    def queued(self) -> tuple[int, int]:
        return sum(map(self.weight, self.model)), sum(map(self.size, self.model))

    @rule(weight=st.integers(0, 5), size=st.integers(0, 15), wait=st.booleans(), known=st.booleans())
    def put(self, weight: int, size: int, wait: bool, known: bool) -> None:
        item = self.next_id
        self.next_id += 1
        self.weights[item] = weight
        self.sizes[item] = size
        w, s = self.weight(item), self.size(item)
        byte_cap = self.max_bytes if self.max_bytes is not None else 10**9
        sized_units = not self.weighed and self.max_bytes is not None
        if sized_units and self.compiled and not wait:
            # on_end's hot path, compiled: the plain case there, the rest (-1) left to put_sized
            code = speedups.queue_put_sized(self.queue, item, s)
            self.compiled_puts += code >= 0
            if code < 0:
                code = self.queue.put_sized(item, s)
        elif sized_units and known:
            code = self.queue.put_sized(item, s, wait)  # on_end's hot path: the caller knows the size
        else:
            code = self.queue.put(item, wait)
        if self.queue.closed:
            assert code == CLOSED
        elif w > self.max_size or s > byte_cap:
            assert code == DROPPED
        else:
            queued, nbytes = self.queued()
            if queued + w > self.max_size or nbytes + s > byte_cap:
                if wait:
                    assert code == NO_ROOM
                    return  # nothing counted
                if not self.drop_oldest:
                    assert code == DROPPED
                else:
                    while queued + w > self.max_size or nbytes + s > byte_cap:
                        evicted = self.model.popleft()
                        self.dropped += self.weight(evicted)
                        queued, nbytes = self.queued()
                    self.model.append(item)
                    assert code in (ADMITTED, READY)
            else:
                self.model.append(item)
                assert code in (ADMITTED, READY)
        self.produced += w
        if code in (DROPPED, CLOSED):
            self.dropped += w
        if code == READY:
            assert self.queue.wake_pending

    @rule(drain=st.booleans())
    def take(self, drain: bool) -> None:
        taken = self.queue.take(self.queue.admitted if drain else 0)
        if taken is None:
            assert not self.queue.wake_pending
            if drain:
                assert not self.model
            return
        items, weight, first = taken
        assert items, "never an empty batch"
        assert items == [self.model.popleft() for _ in items]  # FIFO, whole
        assert weight == sum(map(self.weight, items))
        assert weight <= self.batch or len(items) == 1
        assert first == self.queue.removed - len(items)
        self.in_flight.append((items, weight))

    @rule(drain=st.booleans(), room=st.booleans())
    def take_batch(self, drain: bool, room: bool) -> None:
        """The processor's take: the batch (as take gives it), and whether another may be due after it."""
        mark = self.queue.admitted if drain else 0
        pending = self.queue.wake_pending
        taken = self.queue.take_batch(mark, room)
        if taken is None:
            assert not self.queue.wake_pending
            if drain:
                assert not self.model
            return
        items, weight, first, more = taken
        assert items, "never an empty batch"
        assert items == [self.model.popleft() for _ in items]  # FIFO, whole
        assert weight == sum(map(self.weight, items))
        assert first == self.queue.removed - len(items)
        self.in_flight.append((items, weight))
        if more:
            assert self.queue.wake_pending == pending
            return
        # nothing else due: a take now finds nothing (and clears the flag, as take_batch did with room)
        assert self.queue.wake_pending == (pending and not room)
        assert self.queue.take(mark) is None
        if drain:
            assert not self.model

    @rule(drain=st.booleans())
    def idle(self, drain: bool) -> None:
        """Idle (read without the lock) means a take would find nothing and clear nothing."""
        mark = self.queue.admitted if drain else 0
        if self.queue.idle(mark):
            assert not self.queue.wake_pending
            assert self.queue.take(mark) is None

    @precondition(lambda self: bool(self.in_flight))
    @rule(data=st.data())
    def settle_accepted(self, data: st.DataObject) -> None:
        """A full success: the same counts as settle(weight, accepted=weight)."""
        _items, weight = self.in_flight.pop(data.draw(st.integers(0, len(self.in_flight) - 1)))
        exported = self.queue.exported
        self.queue.settle_accepted(weight)
        assert self.queue.exported == exported + weight
        self.settled += weight

    @precondition(lambda self: bool(self.in_flight))
    @rule(data=st.data())
    def settle(self, data: st.DataObject) -> None:
        _items, weight = self.in_flight.pop(data.draw(st.integers(0, len(self.in_flight) - 1)))
        accepted = data.draw(st.integers(0, weight))
        rejected = data.draw(st.integers(0, weight - accepted))
        too_large = data.draw(st.integers(0, weight - accepted - rejected))
        failed = weight - accepted - rejected - too_large
        self.queue.settle(
            weight,
            accepted=accepted,
            rejected=rejected,
            failed=failed,
            too_large=too_large,
            error=None,
            outcomes={},
        )
        self.settled += weight

    @rule()
    def close(self) -> None:
        self.queue.close()

    @rule()
    def drop_all(self) -> None:
        _first, weights = self.queue.drop_all()
        assert weights == [self.weight(item) for item in self.model]
        self.dropped += sum(weights)
        self.model.clear()

    @invariant()
    def ledger(self) -> None:
        q = self.queue
        with q.lock:
            queued, nbytes = self.queued()
            assert (q.queued, q.queued_bytes) == (queued, nbytes)
            assert q.queued <= q.max_size
            assert q.admitted - q.removed == len(self.model)
            assert q.in_flight == sum(weight for _, weight in self.in_flight)
            assert q.produced == self.produced
            dropped = q.dropped_full + q.dropped_closed + q.dropped_shutdown + q.dropped_too_large
            settled = q.exported + q.rejected + q.failed + dropped
            assert q.produced == settled + q.queued + q.in_flight
        assert q.weight_before(q.admitted) == queued
        assert q.weight_before(q.removed) == 0


TestQueueMachine = QueueMachine.TestCase


def test_the_compiled_put_admits_in_the_plain_case() -> None:
    """The machine above can fail on the compiled put: it admits items itself (not only -1)."""
    if not COMPILED_PUT:
        pytest.skip("the compiled accelerator is not available")
    assert speedups is not None
    sizes: dict[int, int] = {}
    queue: BoundedQueue[int] = BoundedQueue(
        max_size=10, max_bytes=40, batch_size=3, drop_oldest=False, weigh=None, size_of=sizes.__getitem__
    )
    codes = []
    for item in range(8):
        sizes[item] = 2
        code = speedups.queue_put_sized(queue, item, 2)
        codes.append(code)
        if code < 0:
            assert queue.put_sized(item, 2) in (ADMITTED, READY)
    assert codes == [-1, ADMITTED, READY, -1, ADMITTED, ADMITTED, -1, ADMITTED]
    assert (queue.queued, queue.queued_bytes, queue.produced, queue.admitted) == (8, 16, 8, 8)
    assert [list(chunk) for chunk in queue._chunks] == [[0, 1, 2], [3, 4, 5], [6, 7]]
    assert [chunk.sizes for chunk in queue._chunks] == [[2] * 3, [2] * 3, [2] * 2]


TestQueueMachine.settings = settings(max_examples=300, stateful_step_count=40, deadline=None)


def test_the_compiled_put_waits_for_the_queues_lock() -> None:
    """Another thread in the queue (holding its lock): the compiled put waits for it, then admits under it."""
    if not COMPILED_PUT:
        pytest.skip("the compiled accelerator is not available")
    assert speedups is not None
    queue: BoundedQueue[bytes] = BoundedQueue(
        max_size=10, max_bytes=100, batch_size=4, drop_oldest=False, weigh=None, size_of=len
    )
    assert queue.put_sized(b"a", 1) == ADMITTED  # the tail exists: the compiled put's plain case next
    done = threading.Event()
    codes: list[int] = []

    def put() -> None:
        codes.append(speedups.queue_put_sized(queue, b"b", 1))
        done.set()

    thread = threading.Thread(target=put)
    with queue.lock:
        thread.start()
        assert not done.wait(0.2)  # it waits for the lock...
        assert (queue.queued, queue.admitted) == (1, 1)  # ...having changed nothing
    thread.join(10)
    assert codes == [ADMITTED] and not queue.lock.locked()
    assert (queue.queued, queue.queued_bytes, queue.produced, queue.admitted) == (2, 2, 2, 2)
    assert list(queue._chunks[0]) == [b"a", b"b"]
