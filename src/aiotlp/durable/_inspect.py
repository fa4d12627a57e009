"""A read-only look at a queue directory, for people and tools (``aiotlp queue``, ``aiotlp check``).

:func:`inspect_queue` reads what a :class:`~aiotlp.durable.DurableQueue` would find there if it opened the
directory now, and changes nothing: it creates no file (not even ``lock``), takes no lock, never narrows a
permission, renames nothing. It works on the directory of a running process (whose lock it reports, with the pid
the holder wrote) and on one a crashed process left behind.

What it reports, and how it knows:

* waiting records, items and bytes, per signal: the segments' record headers and payload prefixes, walked from
  the saved cursor as a restart would (segments before the cursor were delivered: a restart deletes them); every
  record's CRC is checked, so ``damaged_*`` counts what the queue will skip and rename ``*.corrupt``;
* the age of the oldest waiting record, as a lower bound: records carry no timestamp, so it is the time since
  its segment file was last written (every record in it was written at or before that);
* quarantined segments (``*.corrupt`` files), kept for a human;
* the lock: held by a live process or not. On Linux ``/proc/locks`` says so without touching the lock; elsewhere a
  shared, non-blocking ``flock`` is tried and released at once (it fails while a process holds the queue, and it
  is never held across anything). The pid is the one the holder wrote in ``lock``.
"""

from __future__ import annotations

import fcntl
import os
import struct
import time
import zlib
from dataclasses import dataclass, field
from typing import Final, Literal

from .._exceptions import DurableQueueError
from ..model import Signal
from ._files import LOCK_NAME, directory_problem, open_directory
from ._queue import DEFAULT_MAX_RECORD_BYTES
from ._record import HEADER, MAGIC, PAYLOAD_PREFIX, CorruptRecord, check_header, decode_payload, parse_header
from ._segments import CORRUPT_SUFFIX, CURSOR_NAME, parse_segment_name

__all__ = ["LockState", "QueueInspection", "inspect_queue"]

LockState = Literal["held", "free", "none"]
"""``held``: a live process has the queue open; ``free``: a lock file, and nobody holds it (the process that
wrote it exited, or crashed); ``none``: no lock file (the queue was never opened here)."""

_CURSOR: Final = struct.Struct("<QQI")
_NOFOLLOW: Final = os.O_NOFOLLOW | os.O_CLOEXEC


@dataclass(frozen=True, slots=True)
class QueueInspection:
    """What :func:`inspect_queue` found in one queue directory.

    ``records``/``items``/``bytes``: waiting to be delivered (``bytes``: the segment files' size, what counts
    against ``max_bytes``); ``by_signal``: waiting items per signal; ``segments``: segment files holding them.
    ``oldest_age``: seconds since the oldest waiting record's segment was last written (a lower bound of the
    record's age), None when nothing waits. ``damaged_records``/``damaged_bytes``: records that fail a check (a
    torn tail after a crash, a bit flip) and the bytes from there to their segment's end: the queue skips them.
    ``corrupt_files``: quarantined ``*.corrupt`` segments, with ``corrupt_bytes`` their size. ``lock``: see
    :data:`LockState`; ``pid``: the pid the last holder wrote in the lock file (None if unreadable).
    ``problems``: files that could not be read, in words.
    """

    directory: str
    records: int = 0
    items: int = 0
    bytes: int = 0
    segments: int = 0
    by_signal: dict[Signal, int] = field(default_factory=dict)
    oldest_age: float | None = None
    damaged_records: int = 0
    damaged_bytes: int = 0
    corrupt_files: tuple[str, ...] = ()
    corrupt_bytes: int = 0
    lock: LockState = "none"
    pid: int | None = None
    problems: tuple[str, ...] = ()


def inspect_queue(
    directory: str | os.PathLike[str], *, max_record_bytes: int = DEFAULT_MAX_RECORD_BYTES
) -> QueueInspection:
    """Look at the queue in ``directory`` without changing anything (see the module docstring).

    Raises :class:`~aiotlp.DurableQueueError` when ``directory`` does not exist, is not a directory, is a
    symlink, or cannot be read. ``max_record_bytes`` is the queue's record cap (a longer length is damage).
    """
    path = os.path.abspath(os.fspath(directory))
    try:
        dir_fd = open_directory(path)
    except OSError as exc:
        reason = directory_problem(path, exc, symlink="a queue never follows symlinks")
        raise DurableQueueError(f"cannot read the queue directory {path}: {reason}", directory=path) from None
    try:
        return _inspect(path, dir_fd, max_record_bytes)
    except OSError as exc:
        raise DurableQueueError(
            f"cannot read the queue directory {path}: {exc.strerror or exc}", directory=path
        ) from None
    finally:
        os.close(dir_fd)


def _inspect(path: str, dir_fd: int, max_payload: int) -> QueueInspection:
    names = sorted(os.listdir(dir_fd))
    problems: list[str] = []
    lock, pid = _lock_state(dir_fd, problems)
    cursor_id, cursor_off = _read_cursor(dir_fd, problems)
    corrupt = tuple(name for name in names if name.endswith(CORRUPT_SUFFIX))
    corrupt_bytes = sum(_size(dir_fd, name) for name in corrupt)
    records = items = total_bytes = segments = damaged_records = damaged_bytes = 0
    by_signal: dict[Signal, int] = {}
    oldest_mtime: float | None = None
    for name in names:
        segment_id = parse_segment_name(name)
        if segment_id is None or segment_id < cursor_id:  # before the cursor: delivered, deleted at the next open
            continue
        try:
            fd = os.open(name, os.O_RDONLY | _NOFOLLOW, dir_fd=dir_fd)
        except OSError as exc:
            problems.append(f"cannot read the segment {name}: {exc.strerror or exc}")
            continue
        try:
            info = os.fstat(fd)
            if info.st_size == 0:
                continue
            start = cursor_off if segment_id == cursor_id else 0
            walked = _walk(fd, info.st_size, start, max_payload)
        finally:
            os.close(fd)
        total_bytes += info.st_size
        segments += 1
        seg_records, seg_by_signal, damage = walked
        if seg_records:
            records += seg_records
            for signal, count in seg_by_signal.items():
                by_signal[signal] = by_signal.get(signal, 0) + count
                items += count
            if oldest_mtime is None:
                oldest_mtime = info.st_mtime
        if damage:
            damaged_records += 1
            damaged_bytes += damage
    return QueueInspection(
        directory=path,
        records=records,
        items=items,
        bytes=total_bytes,
        segments=segments,
        by_signal=by_signal,
        oldest_age=None if oldest_mtime is None else max(time.time() - oldest_mtime, 0.0),
        damaged_records=damaged_records,
        damaged_bytes=damaged_bytes,
        corrupt_files=corrupt,
        corrupt_bytes=corrupt_bytes,
        lock=lock,
        pid=pid,
        problems=tuple(problems),
    )


def _walk(fd: int, size: int, start: int, max_payload: int) -> tuple[int, dict[Signal, int], int]:
    """``(records, items by signal, damaged bytes)`` of one segment from ``start``, every record checked as
    :meth:`DurableQueue.read` checks it (the walk stops at the first damage, as the reader does)."""
    by_signal: dict[Signal, int] = {}
    records = 0
    if os.pread(fd, len(MAGIC), 0) != MAGIC:
        return 0, by_signal, size
    offset = max(start, len(MAGIC))
    while offset < size:
        try:
            header = os.pread(fd, HEADER, offset)
            length, crc = parse_header(header, max_payload)
            if offset + HEADER + length > size:
                raise CorruptRecord("truncated record")
            payload = os.pread(fd, length, offset + HEADER)
            check_header(header, payload, crc)
            decoded = decode_payload(payload[:PAYLOAD_PREFIX])
        except CorruptRecord:
            return records, by_signal, size - offset
        records += 1
        by_signal[decoded.signal] = by_signal.get(decoded.signal, 0) + decoded.items
        offset += HEADER + length
    return records, by_signal, 0


def _size(dir_fd: int, name: str) -> int:
    try:
        return os.stat(name, dir_fd=dir_fd, follow_symlinks=False).st_size
    except OSError:
        return 0


def _read_cursor(dir_fd: int, problems: list[str]) -> tuple[int, int]:
    try:
        fd = os.open(CURSOR_NAME, os.O_RDONLY | _NOFOLLOW, dir_fd=dir_fd)
    except FileNotFoundError:
        return 0, 0
    except OSError as exc:
        problems.append(f"cannot read the cursor: {exc.strerror or exc}")
        return 0, 0
    try:
        data = os.read(fd, _CURSOR.size + 1)
    finally:
        os.close(fd)
    if len(data) == _CURSOR.size:
        segment_id, offset, crc = _CURSOR.unpack(data)
        if zlib.crc32(data[:16]) == crc:
            return segment_id, offset
    problems.append("the cursor is damaged: a restart sends every record on disk again (duplicates, no loss)")
    return 0, 0


def _lock_state(dir_fd: int, problems: list[str]) -> tuple[LockState, int | None]:
    try:
        fd = os.open(LOCK_NAME, os.O_RDONLY | _NOFOLLOW, dir_fd=dir_fd)
    except FileNotFoundError:
        return "none", None
    except OSError as exc:
        problems.append(f"cannot read the lock file: {exc.strerror or exc}")
        return "none", None
    try:
        text = os.read(fd, 32).decode("ascii", "replace").strip()
        pid = int(text) if text.isdigit() else None
        info = os.fstat(fd)
        held = _held_per_proc(info, pid)
        if held is None:  # no /proc/locks: a shared lock fails while the queue holds its exclusive one
            try:
                fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
            except BlockingIOError:
                held = True
            else:
                fcntl.flock(fd, fcntl.LOCK_UN)
                held = False
    finally:
        os.close(fd)
    return ("held" if held else "free"), pid


def _held_per_proc(info: os.stat_result, pid: int | None) -> bool | None:
    """Whether ``/proc/locks`` lists a flock on the file ``info`` describes (None: no ``/proc/locks``).

    The device and inode identify the file; on a file system whose device number differs there (overlayfs), the
    inode and the pid the holder wrote do."""
    try:
        with open("/proc/locks", encoding="ascii", errors="replace") as locks:
            lines = locks.read().splitlines()
    except OSError:
        return None
    wanted = (os.major(info.st_dev), os.minor(info.st_dev), info.st_ino)
    for line in lines:
        fields = line.split()
        if len(fields) < 6 or fields[1] == "->" or fields[1] != "FLOCK":
            continue
        try:
            major, minor, inode = fields[5].split(":")
            found = (int(major, 16), int(minor, 16), int(inode))
            if found == wanted or (found[2] == wanted[2] and pid is not None and fields[4] == str(pid)):
                return True
        except ValueError:
            continue
    return False
