"""A hypothesis state machine over the disk queue: write, write failing, fsync, read, ack, save the cursor, a clean
restart, and a crash that drops whatever was not yet fsync-ed (tests/durable/memfs.py models the page cache: a
crash keeps a random prefix of the unsynced bytes of each file, a torn tail, and may lose files whose directory
entry was never synced).

The properties, checked at every step:

* nothing corrupt is ever read: every record read is, byte for byte, one that was appended;
* order: within one run, records come out in the order they were appended;
* no loss: every record that must still be there is read in this run before any later one, and before the
  reader says it has nothing more: those appended in this run, and those from earlier runs that were fsync-ed
  (or written before a clean close) and not acknowledged;
* damage only after a crash (a torn tail); the segment files never exceed the byte cap.
"""

from __future__ import annotations

import errno

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule
from tests.durable.memfs import MemoryFS, WriteFault

from aiotlp import QueueFullError, QueueWriteError
from aiotlp.durable import DurableQueue, QueuedRecord
from aiotlp.model import Signal

DIRECTORY = "/mem/queue"
MAX_BYTES = 6000


class QueueMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.fs = MemoryFS()
        self.queue = self._open()
        self.payloads: dict[int, bytes] = {}
        self.next_id = 0
        self.durable: set[int] = set()  # would survive a crash (synced, or written before a clean close)
        self.unsynced: set[int] = set()
        self.acked: set[int] = set()
        self.outstanding: list[tuple[int, QueuedRecord]] = []
        self.must_read: set[int] = set()
        self.last_read = -1
        self.crashed = False

    def _open(self) -> DurableQueue:
        return DurableQueue(
            DIRECTORY, max_bytes=MAX_BYTES, segment_bytes=700, max_record_bytes=1024, file_ops=self.fs.ops
        )

    def _restarted(self) -> None:
        self.queue = self._open()
        self.queue.scan()
        self.outstanding = []
        self.last_read = -1
        self.unsynced = set()
        self.must_read = self.durable - self.acked

    @rule(size=st.integers(0, 400), signal=st.sampled_from(Signal))
    def write(self, size: int, signal: Signal) -> None:
        n = self.next_id
        self.next_id += 1
        body = n.to_bytes(4, "big") + bytes([n % 256]) * size
        try:
            self.queue.append(signal, 0, n % 5, body)
        except QueueFullError:
            assert self.queue.statistics().queued_bytes + size > MAX_BYTES - 1200
            return
        self.payloads[n] = body
        self.unsynced.add(n)
        self.must_read.add(n)

    @rule(partial=st.integers(0, 100), error=st.sampled_from([errno.ENOSPC, errno.EIO]))
    def write_fails(self, partial: int, error: int) -> None:
        self.fs.fail_writes = WriteFault(error, partial)
        n = self.next_id
        self.next_id += 1
        with pytest.raises((QueueFullError, QueueWriteError)):
            self.queue.append(Signal.TRACES, 0, 1, n.to_bytes(4, "big") + b"x" * 50)
        self.fs.fail_writes = None

    @rule()
    def fsync(self) -> None:
        self.queue.sync()
        self.durable |= self.unsynced
        self.unsynced = set()

    @rule()
    def read(self) -> None:
        record = self.queue.read()
        if record is None:
            assert not self.must_read, f"lost: {sorted(self.must_read)}"
            return
        n = int.from_bytes(record.body[:4], "big")
        assert self.payloads.get(n) == record.body, "a corrupt or unknown payload was read"
        assert record.items == n % 5
        assert n > self.last_read, "out of order"
        skipped = [m for m in self.must_read if m < n]
        assert not skipped, f"lost: {skipped} (skipped on the way to {n})"
        self.last_read = n
        self.must_read.discard(n)
        self.outstanding.append((n, record))

    @rule(ack=st.booleans())
    def drain(self, ack: bool) -> None:
        while True:
            before = len(self.outstanding)
            self.read()
            if len(self.outstanding) == before:
                return
            if ack:
                n, record = self.outstanding.pop()
                self.queue.ack(record)
                self.acked.add(n)

    @precondition(lambda self: self.outstanding)
    @rule(data=st.data())
    def ack(self, data: st.DataObject) -> None:
        n, record = self.outstanding.pop(data.draw(st.integers(0, len(self.outstanding) - 1)))
        self.queue.ack(record)
        self.acked.add(n)

    @rule()
    def save_cursor(self) -> None:
        self.queue.save_cursor()

    @rule()
    def restart(self) -> None:
        self.queue.close()
        self.durable |= self.unsynced
        self._restarted()

    @rule(data=st.data())
    def crash(self, data: st.DataObject) -> None:
        # the old queue object is abandoned, as in a kill -9 or a power cut
        self.fs.crash(
            lambda name, pending: data.draw(st.integers(0, pending), label=f"kept of {name}"),
            lambda name: data.draw(st.booleans(), label=f"entry {name} survives"),
        )
        self.crashed = True
        self._restarted()

    @invariant()
    def bounded_and_clean(self) -> None:
        stats = self.queue.statistics()
        assert stats.queued_bytes <= MAX_BYTES
        if not self.crashed:
            assert stats.corrupt_records == 0

    def teardown(self) -> None:
        if not self.queue.closed:
            self.queue.close()


QueueMachine.TestCase.settings = settings(
    max_examples=150,
    stateful_step_count=60,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
test_queue_state_machine = QueueMachine.TestCase
