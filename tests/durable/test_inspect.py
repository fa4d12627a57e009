"""inspect_queue: what waits in a queue directory, its damage and its lock, read without changing anything."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from aiotlp import DurableQueueError
from aiotlp.durable import DurableQueue, inspect_queue
from aiotlp.model import Signal


def snapshot(directory: Path) -> dict[str, tuple[int, float, int]]:
    """Every file's size, mtime and mode: what an inspection must leave as it was."""
    return {
        entry.name: (entry.stat().st_size, entry.stat().st_mtime, entry.stat().st_mode) for entry in directory.iterdir()
    }


def test_counts_what_waits_per_signal_and_changes_nothing(tmp_path: Path) -> None:
    with DurableQueue(tmp_path, segment_bytes=4096) as queue:
        for n in range(30):
            queue.append(Signal.TRACES if n % 3 else Signal.LOGS, 0, 2, bytes(200))
        held = inspect_queue(tmp_path)
        assert held.lock == "held" and held.pid == os.getpid()
        delivered = [queue.read() for _ in range(5)]
        for record in delivered:
            assert record is not None
            queue.ack(record)
        stats = queue.statistics()
    before = snapshot(tmp_path)
    found = inspect_queue(tmp_path)
    assert snapshot(tmp_path) == before
    assert found.lock == "free" and found.pid == os.getpid()
    assert found.records == 25 == stats.queued_records
    assert found.items == 50
    assert sum(found.by_signal.values()) == 50 and set(found.by_signal) == {Signal.TRACES, Signal.LOGS}
    assert found.bytes == sum(p.stat().st_size for p in tmp_path.glob("*.seg")) > 0
    assert found.oldest_age is not None and 0 <= found.oldest_age < 60
    assert (found.damaged_records, found.corrupt_files, found.problems) == (0, (), ())
    # what inspection says is what the queue finds when it opens
    with DurableQueue(tmp_path) as reopened:
        reopened.scan()
        assert reopened.statistics().queued_records == found.records


def test_damage_a_crash_left_and_quarantined_segments(tmp_path: Path) -> None:
    with DurableQueue(tmp_path) as queue:
        for _ in range(3):
            queue.append(Signal.METRICS, 0, 1, bytes(100))
    segment = next(tmp_path.glob("*.seg"))
    with segment.open("r+b") as file:  # a torn tail: the last record cut in half
        file.truncate(segment.stat().st_size - 50)
    (tmp_path / "0000000000000001.seg.corrupt").write_bytes(b"garbage" * 10)
    found = inspect_queue(tmp_path)
    assert found.records == 2 and found.by_signal == {Signal.METRICS: 2}
    assert found.damaged_records == 1 and 0 < found.damaged_bytes < 200
    assert found.corrupt_files == ("0000000000000001.seg.corrupt",) and found.corrupt_bytes == 70


def test_an_empty_or_missing_directory(tmp_path: Path) -> None:
    found = inspect_queue(tmp_path)
    assert (found.records, found.bytes, found.lock, found.pid, found.oldest_age) == (0, 0, "none", None, None)
    assert list(tmp_path.iterdir()) == []  # no lock file created
    with pytest.raises(DurableQueueError, match="cannot read the queue directory"):
        inspect_queue(tmp_path / "missing")
    (tmp_path / "file").write_text("x")
    with pytest.raises(DurableQueueError, match="not a directory"):
        inspect_queue(tmp_path / "file")
