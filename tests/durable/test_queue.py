"""DurableQueue on the real file system: order, acknowledgement, restart, rotation, the byte cap, every kind of
damage, write errors, the lock, permissions and symlinks.

Private, on purpose: the record format's sizes (``HEADER``, ``MAGIC``, ``PAYLOAD_PREFIX`` of
``aiotlp.durable._record``) size the byte-cap cases exactly.
"""

from __future__ import annotations

import errno
import os
import stat
import struct
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from aiotlp import ConfigurationError, DurableQueueError, QueueFullError, QueueLockedError, QueueWriteError
from aiotlp.durable import DurableQueue, OsFileOps, QueuedRecord
from aiotlp.durable._record import HEADER, MAGIC, PAYLOAD_PREFIX
from aiotlp.model import Signal

CAP = 64 * 1024


def body(n: int, size: int = 100) -> bytes:
    return n.to_bytes(4, "big") + bytes([n % 251]) * (size - 4)


def ident(record: QueuedRecord) -> int:
    return int.from_bytes(record.body[:4], "big")


def open_queue(directory: Path, **kwargs: object) -> DurableQueue:
    kwargs.setdefault("max_record_bytes", CAP)
    return DurableQueue(directory, **kwargs)  # type: ignore[arg-type]


def fill(queue: DurableQueue, ids: range, size: int = 100) -> None:
    for n in ids:
        queue.append(Signal.TRACES, 0, 1, body(n, size))


def drain(queue: DurableQueue, *, ack: bool = True) -> list[int]:
    out = []
    while (record := queue.read()) is not None:
        out.append(ident(record))
        assert record.body == body(ident(record), len(record.body))
        if ack:
            queue.ack(record)
    return out


def segments(directory: Path, suffix: str = ".seg") -> list[Path]:
    return sorted(p for p in directory.iterdir() if p.name.endswith(suffix))


# -- order, acknowledgement, restart


def test_records_come_back_in_order_with_their_fields(tmp_path: Path) -> None:
    with open_queue(tmp_path / "q") as queue:
        queue.append(Signal.METRICS, 1, 7, b'{"json": true}')
        fill(queue, range(3))
        first = queue.read()
        assert first is not None
        assert (first.signal, first.format, first.items, first.body) == (Signal.METRICS, 1, 7, b'{"json": true}')
        queue.ack(first)
        assert drain(queue) == [0, 1, 2]
        assert queue.read() is None
        stats = queue.statistics()
        assert (stats.appended_records, stats.appended_items, stats.acked_records, stats.acked_items) == (4, 10, 4, 10)
        assert (stats.queued_records, stats.queued_items) == (0, 0)


def test_unacknowledged_records_are_read_again_after_a_restart(tmp_path: Path) -> None:
    directory = tmp_path / "q"
    with open_queue(directory) as queue:
        fill(queue, range(5))
        records = [queue.read() for _ in range(5)]
        for record in records[:2]:
            assert record is not None
            queue.ack(record)
        assert records[3] is not None
        queue.ack(records[3])  # out of order: the commit point stays after record 1
    with open_queue(directory) as queue:
        queue.scan()
        assert queue.statistics().queued_records == 3
        assert drain(queue) == [2, 3, 4]  # 3 again: at-least-once, a duplicate, never a loss


def test_acknowledged_segments_are_deleted_and_bytes_reclaimed(tmp_path: Path) -> None:
    directory = tmp_path / "q"
    with open_queue(directory, segment_bytes=1024) as queue:
        fill(queue, range(40))
        assert len(segments(directory)) >= 4
        assert queue.statistics().queued_bytes == sum(p.stat().st_size for p in segments(directory))
        assert drain(queue) == list(range(40))
        assert len(segments(directory)) <= 1
        assert queue.statistics().queued_bytes == sum(p.stat().st_size for p in segments(directory))
    with open_queue(directory) as queue:
        assert queue.read() is None
        assert segments(directory) == []


def test_a_new_run_never_appends_to_an_old_segment_and_ids_only_grow(tmp_path: Path) -> None:
    directory = tmp_path / "q"
    with open_queue(directory) as queue:
        fill(queue, range(2))
        drain(queue)
    first = segments(directory)
    with open_queue(directory) as queue:
        fill(queue, range(2, 4))
        assert drain(queue) == [2, 3]
        assert all(p.name > first[-1].name for p in segments(directory))


def test_byte_cap_refuses_appends_with_exact_counts(tmp_path: Path) -> None:
    record = HEADER + PAYLOAD_PREFIX + 100
    fits = 10
    with open_queue(tmp_path / "q", max_bytes=len(MAGIC) + fits * record, segment_bytes=1 << 20) as queue:
        fill(queue, range(fits))
        for n in range(fits, fits + 5):
            with pytest.raises(QueueFullError, match="full"):
                queue.append(Signal.TRACES, 0, 3, body(n))
        stats = queue.statistics()
        assert (stats.appended_records, stats.disk_full_records, stats.disk_full_items) == (fits, 5, 15)
        assert stats.queued_bytes == len(MAGIC) + fits * record
        assert drain(queue) == list(range(fits))
        fill(queue, range(100, 101))  # the acknowledged segment was reclaimed: room again
        assert drain(queue) == [100]


def test_bad_arguments_are_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match="max_bytes"):
        DurableQueue(tmp_path / "a", max_bytes=0)
    with pytest.raises(ConfigurationError, match="segment_bytes"):
        DurableQueue(tmp_path / "b", segment_bytes=True)  # type: ignore[arg-type]
    with open_queue(tmp_path / "c") as queue, pytest.raises(ValueError, match="max_record_bytes"):
        queue.append(Signal.TRACES, 0, 1, bytes(CAP))


# -- damage


def write_three_segments(directory: Path) -> list[Path]:
    """Three segments of 5 records each (ids 0-4, 5-9, 10-14), nothing acknowledged."""
    record = HEADER + PAYLOAD_PREFIX + 100
    with open_queue(directory, segment_bytes=len(MAGIC) + 5 * record) as queue:
        fill(queue, range(15))
    files = segments(directory)
    assert len(files) == 3
    return files


def reopen_and_drain(directory: Path) -> tuple[list[int], DurableQueue]:
    queue = open_queue(directory)
    queue.scan()
    ids = drain(queue)
    queue.close()
    return ids, queue


def offset_of(record: int) -> int:
    return len(MAGIC) + record * (HEADER + PAYLOAD_PREFIX + 100)


def flip(path: Path, offset: int, mask: int = 0x10) -> None:
    data = bytearray(path.read_bytes())
    data[offset] ^= mask
    path.write_bytes(bytes(data))


def assert_renamed_aside(directory: Path, damaged: Path) -> None:
    assert not damaged.exists()
    aside = directory / (damaged.name + ".corrupt")
    assert aside.exists(), "a damaged segment is renamed aside, never deleted"


@pytest.mark.parametrize(
    ("where", "what"),
    [
        (HEADER + PAYLOAD_PREFIX + 50, "payload"),
        (3, "length"),
        (9, "crc"),
        (HEADER + 1, "payload prefix"),
    ],
)
def test_a_bit_flip_skips_the_rest_of_its_segment_only(tmp_path: Path, where: int, what: str) -> None:
    directory = tmp_path / "q"
    files = write_three_segments(directory)
    flip(files[1], offset_of(2) + where)  # the third record of the middle segment
    ids, queue = reopen_and_drain(directory)
    assert ids == [0, 1, 2, 3, 4, 5, 6, 10, 11, 12, 13, 14], what
    stats = queue.statistics()
    assert stats.corrupt_records == 1
    assert stats.corrupt_bytes == offset_of(5) - offset_of(2)
    assert stats.corrupt_files == 1
    assert_renamed_aside(directory, files[1])
    ids, queue = reopen_and_drain(directory)
    assert ids == []
    assert queue.statistics().corrupt_files == 1  # still there, still reported, never deleted


@pytest.mark.parametrize("cut", [1, HEADER - 1, HEADER + 5, HEADER + PAYLOAD_PREFIX + 99])
def test_a_truncated_tail_is_skipped_and_counted(tmp_path: Path, cut: int) -> None:
    directory = tmp_path / "q"
    files = write_three_segments(directory)
    with files[2].open("r+b") as f:
        f.truncate(offset_of(4) + cut)  # the last record of the newest segment is torn
    ids, queue = reopen_and_drain(directory)
    assert ids == list(range(14))
    assert queue.statistics().corrupt_records == 1
    assert queue.statistics().corrupt_bytes == cut
    assert_renamed_aside(directory, files[2])


def test_a_garbage_segment_is_skipped_and_renamed_aside(tmp_path: Path) -> None:
    directory = tmp_path / "q"
    files = write_three_segments(directory)
    garbage = os.urandom(5000)
    files[0].write_bytes(garbage)
    ids, queue = reopen_and_drain(directory)
    assert ids == list(range(5, 15))
    assert queue.statistics().corrupt_records == 1
    assert queue.statistics().corrupt_bytes == 5000
    assert_renamed_aside(directory, files[0])
    assert (directory / (files[0].name + ".corrupt")).read_bytes() == garbage


def test_a_short_segment_header_is_damage_and_an_empty_segment_is_nothing(tmp_path: Path) -> None:
    directory = tmp_path / "q"
    files = write_three_segments(directory)
    files[0].write_bytes(MAGIC[:5])
    files[1].write_bytes(b"")
    ids, queue = reopen_and_drain(directory)
    assert ids == list(range(10, 15))
    assert queue.statistics().corrupt_records == 1
    assert_renamed_aside(directory, files[0])
    assert not files[1].exists()  # created and never written: held nothing


def test_a_segment_removed_behind_the_queues_back_is_skipped_counted(tmp_path: Path) -> None:
    directory = tmp_path / "q"
    record = HEADER + PAYLOAD_PREFIX + 100
    queue = open_queue(directory, segment_bytes=len(MAGIC) + 5 * record)
    fill(queue, range(15))
    files = segments(directory)
    assert len(files) == 3
    files[1].unlink()
    assert drain(queue) == [0, 1, 2, 3, 4, 10, 11, 12, 13, 14]
    stats = queue.statistics()
    assert stats.corrupt_records == 1
    assert stats.io_errors >= 1
    queue.close()


class RecordingOps(OsFileOps):
    """Real file operations that remember the largest read."""

    largest_read = 0

    def pread(self, fd: int, size: int, offset: int) -> bytes:
        RecordingOps.largest_read = max(RecordingOps.largest_read, size)
        return super().pread(fd, size, offset)


@pytest.mark.parametrize("length", [2**62, 2**64 - 1, CAP + 1, 2**31])
def test_a_huge_length_prefix_allocates_nothing_beyond_the_cap(tmp_path: Path, length: int) -> None:
    directory = tmp_path / "q"
    files = write_three_segments(directory)
    with files[1].open("r+b") as f:
        f.seek(offset_of(1))
        f.write(struct.pack("<Q", length))
    RecordingOps.largest_read = 0
    queue = DurableQueue(directory, max_record_bytes=CAP, file_ops=RecordingOps)
    assert drain(queue) == [0, 1, 2, 3, 4, 5, 10, 11, 12, 13, 14]
    queue.close()
    assert queue.statistics().corrupt_records == 1
    assert 0 < RecordingOps.largest_read <= CAP


def test_a_length_inside_the_cap_but_past_the_end_of_file_is_a_torn_record(tmp_path: Path) -> None:
    directory = tmp_path / "q"
    files = write_three_segments(directory)
    with files[2].open("r+b") as f:
        f.seek(offset_of(3))
        f.write(struct.pack("<Q", CAP - 1))
    ids, queue = reopen_and_drain(directory)
    assert ids == list(range(13))
    assert queue.statistics().corrupt_records == 1


def test_a_damaged_cursor_means_replay_from_the_start(tmp_path: Path) -> None:
    directory = tmp_path / "q"
    with open_queue(directory, segment_bytes=1 << 20) as queue:
        fill(queue, range(4))
        for _ in range(2):
            record = queue.read()
            assert record is not None
            queue.ack(record)
    cursor = directory / "cursor"
    flip(cursor, 2)
    ids, _ = reopen_and_drain(directory)
    assert ids == [0, 1, 2, 3]


def test_records_of_a_damaged_segment_before_the_damage_are_delivered_once_acked(tmp_path: Path) -> None:
    directory = tmp_path / "q"
    files = write_three_segments(directory)
    flip(files[0], offset_of(3) + HEADER + 20)
    queue = open_queue(directory)
    held = [queue.read() for _ in range(3)]  # 0, 1, 2, not yet acknowledged
    assert [ident(r) for r in held if r is not None] == [0, 1, 2]
    assert drain(queue) == list(range(5, 15))
    assert files[0].exists(), "not renamed while its good records are still out"
    for record in held:
        assert record is not None
        queue.ack(record)
    assert_renamed_aside(directory, files[0])
    queue.close()


# -- write errors


class FaultyOps(OsFileOps):
    """Real file operations whose writes fail on demand after writing part of the data."""

    fail: tuple[int, int] | None = None  # (errno, bytes written first)

    def write(self, fd: int, data: bytes | memoryview) -> int:
        if FaultyOps.fail is not None:
            error, partial = FaultyOps.fail
            if partial:
                os.write(fd, data[:partial])
            raise OSError(error, os.strerror(error))
        return super().write(fd, data)


@pytest.mark.parametrize(("error", "exception"), [(errno.ENOSPC, QueueFullError), (errno.EIO, QueueWriteError)])
def test_a_failed_write_is_cut_off_counted_and_the_queue_goes_on(
    tmp_path: Path, error: int, exception: type[Exception]
) -> None:
    directory = tmp_path / "q"
    queue = DurableQueue(directory, max_record_bytes=CAP, file_ops=FaultyOps)
    fill(queue, range(3))
    FaultyOps.fail = (error, 37)
    try:
        for n in range(3, 6):
            with pytest.raises(exception):
                queue.append(Signal.TRACES, 0, 2, body(n))
    finally:
        FaultyOps.fail = None
    fill(queue, range(6, 8))
    stats = queue.statistics()
    assert stats.io_errors == 3
    if error == errno.ENOSPC:
        assert (stats.disk_full_records, stats.disk_full_items, stats.write_error_records) == (3, 6, 0)
    else:
        assert (stats.write_error_records, stats.write_error_items, stats.disk_full_records) == (3, 6, 0)
    queue.close()
    ids, queue = reopen_and_drain(directory)
    assert ids == [0, 1, 2, 6, 7]
    assert queue.statistics().corrupt_records == 0


# -- lock, permissions, symlinks


def test_a_second_queue_on_the_directory_is_refused_by_name(tmp_path: Path) -> None:
    directory = tmp_path / "q"
    with open_queue(directory):
        with pytest.raises(QueueLockedError, match=str(directory)) as info:
            open_queue(directory)
        assert info.value.directory == str(directory)
        assert f"pid {os.getpid()}" in str(info.value)
    with open_queue(directory):  # released on close
        pass


def test_another_process_is_refused_while_the_queue_is_open(tmp_path: Path) -> None:
    directory = tmp_path / "q"
    script = (
        "import sys\nfrom aiotlp import QueueLockedError\nfrom aiotlp.durable import DurableQueue\n"
        "try:\n    DurableQueue(sys.argv[1])\nexcept QueueLockedError as e:\n    print('LOCKED', e)\n"
        "else:\n    print('OPENED')\n"
    )
    with open_queue(directory):
        out = subprocess.run([sys.executable, "-c", script, str(directory)], capture_output=True, text=True, check=True)
        assert out.stdout.startswith("LOCKED"), out
        assert str(directory) in out.stdout
    out = subprocess.run([sys.executable, "-c", script, str(directory)], capture_output=True, text=True, check=True)
    assert out.stdout.startswith("OPENED"), out


@pytest.fixture
def umask_zero() -> Iterator[None]:
    old = os.umask(0)
    try:
        yield
    finally:
        os.umask(old)


@pytest.mark.usefixtures("umask_zero")
def test_directory_is_0700_and_files_0600(tmp_path: Path) -> None:
    directory = tmp_path / "q"
    with open_queue(directory) as queue:
        fill(queue, range(2))
        record = queue.read()
        assert record is not None
        queue.ack(record)
        queue.save_cursor()
        assert stat.S_IMODE(directory.stat().st_mode) == 0o700
        names = {p.name for p in directory.iterdir()}
        assert {"lock", "cursor"} <= names
        for path in directory.iterdir():
            assert stat.S_IMODE(path.stat().st_mode) == 0o600, path


def test_an_existing_open_directory_is_narrowed_to_0700(tmp_path: Path) -> None:
    directory = tmp_path / "q"
    directory.mkdir(mode=0o755)
    directory.chmod(0o777)
    with open_queue(directory):
        assert stat.S_IMODE(directory.stat().st_mode) == 0o700


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to give the directory to another user")
def test_a_directory_owned_by_another_user_is_refused(tmp_path: Path) -> None:
    directory = tmp_path / "q"
    directory.mkdir()
    os.chown(directory, 65534, 65534)
    with pytest.raises(DurableQueueError, match="belongs to uid 65534"):
        open_queue(directory)


def test_a_symlinked_directory_is_refused(tmp_path: Path) -> None:
    real = tmp_path / "real"
    real.mkdir()
    link = tmp_path / "link"
    link.symlink_to(real)
    with pytest.raises(DurableQueueError, match="symlink"):
        open_queue(link)
    assert list(real.iterdir()) == []


@pytest.mark.parametrize("name", ["lock", "0000000000000001.seg", "cursor"])
def test_a_symlink_inside_the_directory_is_never_followed(tmp_path: Path, name: str) -> None:
    directory = tmp_path / "q"
    directory.mkdir(mode=0o700)
    target = tmp_path / "victim"
    target.write_bytes(b"precious")
    mode = target.stat().st_mode
    (directory / name).symlink_to(target)
    with pytest.raises(DurableQueueError, match=r"symlink|Too many levels"):
        open_queue(directory)
    assert target.read_bytes() == b"precious"
    assert target.stat().st_mode == mode
