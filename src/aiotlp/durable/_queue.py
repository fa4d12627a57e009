"""DurableQueue: an append-only queue of encoded export requests in segment files, with at-least-once reads.

Life of a record::

    append(signal, format, items, body)      framed (see _record.py) and written to the newest segment
    sync()                                   fsync: the record survives power loss (may run in a worker thread)
    read() -> QueuedRecord                   the oldest record not yet handed out, in append order
    ack(record)                              delivered, or failed for good: it may go

Acknowledgements may arrive in any order. The *commit point* is the end of the longest run of acknowledged records
from the start of the queue; it is saved in the ``cursor`` file (lazily: :meth:`save_cursor`), and a restart
reads again from there. A segment is deleted once the reader is past its end and all its records were
acknowledged. So a crash loses no record that was not acknowledged (the queue is at-least-once), and may send
again records acknowledged after the last saved cursor: duplicates after a crash are possible, loss is not.

Appends never wait: when the segments would outgrow ``max_bytes``, or the disk is full (``ENOSPC``/``EDQUOT``),
:meth:`append` raises :class:`~aiotlp.QueueFullError`, and any other write error
:class:`~aiotlp.QueueWriteError`; a half-written record is cut off again, so the next append starts clean. A new
run never appends to an old segment: it starts a new one, so a torn tail left by a crash stays where it is.

Damage (a bit flip, a torn tail, a garbage file, an impossible length) is found by :meth:`read`: the record and
the rest of its segment are skipped and counted (``corrupt_records``, ``corrupt_bytes``), and once the valid
records before the damage were acknowledged the segment is renamed ``*.corrupt``, never deleted. Reading checks
every length against the record cap before it reads, so nothing larger than the cap is ever allocated.
``.corrupt`` files do not count against ``max_bytes`` (they are reported in :attr:`QueueStatistics.corrupt_files`).

Threads: everything runs on one thread, except :meth:`sync`, which may run in a worker thread at the same time
(it takes a short lock; the fsync itself runs outside it).
"""

from __future__ import annotations

import errno
import logging
import os
import struct
import threading
import zlib
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Final

from .._exceptions import DurableQueueError, QueueFullError, QueueWriteError
from .._ratelimit import RateLimitedLogger
from .._validate import int_at_least
from ..model import Signal
from ._files import FileOps, OsFileOps
from ._record import (
    HEADER,
    MAGIC,
    PAYLOAD_PREFIX,
    CorruptRecord,
    check_header,
    decode_payload,
    encode_payload,
    frame,
    parse_header,
)
from ._segments import CORRUPT_SUFFIX, CURSOR_NAME, Segment, parse_segment_name

__all__ = ["DEFAULT_MAX_BYTES", "DurableQueue", "QueueStatistics", "QueuedRecord"]

logger = logging.getLogger("aiotlp.durable")

#: Default byte cap of the whole queue (its segment files).
DEFAULT_MAX_BYTES: Final = 256 * 1024 * 1024
#: Default cap of one record's payload: the default request cap (4 MiB) and room to spare.
DEFAULT_MAX_RECORD_BYTES: Final = 4 * 1024 * 1024 + 4096
_MAX_SEGMENT_BYTES: Final = 16 * 1024 * 1024
_MIN_SEGMENT_BYTES: Final = 4096
_CURSOR: Final = struct.Struct("<QQI")
_NO_SPACE: Final = (errno.ENOSPC, errno.EDQUOT)


@dataclass(frozen=True, slots=True)
class QueuedRecord:
    """One encoded export request read back from the queue: hand it to :meth:`DurableQueue.ack` when done."""

    signal: Signal
    format: int
    items: int
    body: bytes
    segment: int
    offset: int
    _entry: _Unacked = field(repr=False, compare=False)


class _Unacked:
    """A record handed out and not yet acknowledged (the commit point moves over acknowledged ones)."""

    __slots__ = ("acked", "end", "items", "segment")

    def __init__(self, segment: Segment, end: int, items: int) -> None:
        self.segment = segment
        self.end = end
        self.items = items
        self.acked = False


@dataclass(frozen=True, slots=True)
class QueueStatistics:
    """What the queue holds and what happened to it since it was opened.

    ``queued_*`` count what is on disk and not yet acknowledged (records found at start are counted once the
    start scan walked them, see :meth:`DurableQueue.scan`); ``queued_bytes`` is the size of the segment files,
    the number checked against ``max_bytes``. ``disk_full_*`` count appends refused for the byte cap or a full
    disk, ``write_error_*`` those refused for another I/O error; ``io_errors`` counts every failed file
    operation (writes, fsyncs, reads, removals). ``corrupt_records`` counts damage found (each time a record
    failed a check; the rest of its segment is skipped), ``corrupt_bytes`` the bytes skipped.
    """

    queued_records: int
    queued_items: int
    queued_bytes: int
    segments: int
    appended_records: int
    appended_items: int
    acked_records: int
    acked_items: int
    disk_full_records: int
    disk_full_items: int
    write_error_records: int
    write_error_items: int
    io_errors: int
    corrupt_records: int
    corrupt_bytes: int
    corrupt_files: int


class DurableQueue:
    """The on-disk queue (see the module docstring).

    * ``directory``: created ``0700`` if missing; locked while open (:class:`~aiotlp.QueueLockedError` if another
      queue holds it); see :mod:`aiotlp.durable._files` for the symlink and permission rules.
    * ``max_bytes``: cap of the segment files together; appends beyond it raise :class:`~aiotlp.QueueFullError`.
    * ``segment_bytes``: a new segment is started when the next record would take the current one past this
      (default: an eighth of ``max_bytes``, between 4 KiB and 16 MiB); a record larger than that gets a segment
      of its own.
    * ``max_record_bytes``: the largest payload that may be written, and so the most the reader will ever
      allocate for one record; a longer length read from disk is corruption.
    * ``fsync``: False when nothing will ever be synced (the ``"never"`` policy): finished segments are closed at
      once instead of waiting for the next :meth:`sync`.
    * ``file_ops``: a factory of :class:`~aiotlp.durable.FileOps` for the directory (tests inject faults and a
      page-cache model here); default :class:`~aiotlp.durable.OsFileOps`.
    """

    def __init__(
        self,
        directory: str | os.PathLike[str],
        *,
        max_bytes: int = DEFAULT_MAX_BYTES,
        segment_bytes: int | None = None,
        max_record_bytes: int = DEFAULT_MAX_RECORD_BYTES,
        fsync: bool = True,
        file_ops: Callable[[str], FileOps] | None = None,
    ) -> None:
        int_at_least(max_bytes, "max_bytes", len(MAGIC) + HEADER + PAYLOAD_PREFIX)
        int_at_least(max_record_bytes, "max_record_bytes", PAYLOAD_PREFIX)
        if segment_bytes is None:
            segment_bytes = min(_MAX_SEGMENT_BYTES, max(max_bytes // 8, _MIN_SEGMENT_BYTES))
        int_at_least(segment_bytes, "segment_bytes", len(MAGIC) + HEADER + PAYLOAD_PREFIX)
        path = os.path.abspath(os.fspath(directory))
        self._max_bytes = max_bytes
        self._segment_bytes = segment_bytes
        self._reclaim_bytes = max(segment_bytes // 4, len(MAGIC) + 1)
        self._max_payload = max_record_bytes
        self._fsync = fsync
        self._ops: FileOps = (file_ops or OsFileOps)(path)
        self.directory = self._ops.directory
        self._lock = threading.Lock()
        self._segments: list[Segment] = []
        self._writer: Segment | None = None
        self._sealed_fds: list[int] = []  # finished segments' write descriptors, closed by the next sync
        self._dir_dirty = False
        self._inflight: deque[_Unacked] = deque()
        self._commit: tuple[int, int] | None = None
        self._cursor_dirty = False
        self._appended_seq = 0
        self._synced_seq = 0
        self._bytes = 0
        self._closed = False
        self._scanned = False
        self._unread_records = 0
        self._unread_items = 0
        self._inflight_items = 0
        self._appended_records = 0
        self._appended_items = 0
        self._acked_records = 0
        self._acked_items = 0
        self._disk_full_records = 0
        self._disk_full_items = 0
        self._write_error_records = 0
        self._write_error_items = 0
        self._io_errors = 0
        self._corrupt_records = 0
        self._corrupt_bytes = 0
        self._corrupt_files = 0
        self._io_log = RateLimitedLogger(logger, logging.WARNING, interval=10.0)
        self._corrupt_log = RateLimitedLogger(logger, logging.WARNING, interval=10.0)
        try:
            self._open()
        except BaseException:
            self._close_fds()
            self._ops.release()
            raise

    # -- opening

    def _open(self) -> None:
        ops = self._ops
        cursor = self._read_cursor()
        ids: list[int] = []
        for name in ops.listdir():
            segment_id = parse_segment_name(name)
            if name.endswith(CORRUPT_SUFFIX):
                self._corrupt_files += 1
            elif name == CURSOR_NAME + ".tmp":
                self._counting_errors(ops.unlink, name)
            if segment_id is None:
                continue
            if ops.is_symlink(name):
                raise DurableQueueError(
                    f"refusing to open the queue in {self.directory}: the segment {name} is a symlink",
                    directory=self.directory,
                )
            ids.append(segment_id)
        ids.sort()
        if self._corrupt_files:
            logger.warning(
                "the queue directory %s holds %d damaged segment(s) (*%s): kept for inspection, remove them when done",
                self.directory,
                self._corrupt_files,
                CORRUPT_SUFFIX,
            )
        cursor_id, cursor_off = cursor if cursor is not None else (0, 0)
        self._next_id = max([*ids, cursor_id]) + 1
        for segment_id in ids:
            segment = Segment(segment_id, 0, sealed=True, checked=False)
            if segment_id < cursor_id:  # every record in it was acknowledged before the last stop
                self._counting_errors(ops.unlink, segment.name)
                continue
            fd = self._open_read(segment.name)
            segment.read_fd = fd
            segment.size = ops.size(fd)
            if segment.size == 0:  # created, then a crash before its header was written: nothing in it
                ops.close(fd)
                self._counting_errors(ops.unlink, segment.name)
                continue
            if segment_id == cursor_id:
                segment.read_off = min(cursor_off, segment.size)
            self._segments.append(segment)
            self._bytes += segment.size

    def _open_read(self, name: str) -> int:
        try:
            return self._ops.open_read(name)
        except OSError as exc:
            raise DurableQueueError(
                f"cannot open the segment {os.path.join(self.directory, name)}: {exc.strerror or exc}",
                directory=self.directory,
            ) from exc

    def _read_cursor(self) -> tuple[int, int] | None:
        try:
            data = self._ops.read_small(CURSOR_NAME, _CURSOR.size + 1)
        except OSError as exc:
            raise DurableQueueError(
                f"cannot read {os.path.join(self.directory, CURSOR_NAME)}: {exc.strerror or exc}",
                directory=self.directory,
            ) from exc
        if data is None:
            return None
        if len(data) == _CURSOR.size:
            segment_id, offset, crc = _CURSOR.unpack(data)
            if zlib.crc32(data[:16]) == crc:
                return segment_id, offset
        logger.warning(
            "the queue cursor %s is damaged: every record on disk will be sent again (duplicates, no loss)",
            os.path.join(self.directory, CURSOR_NAME),
        )
        return None

    def scan_backlog(self) -> list[tuple[int, int, int]]:
        """Walk the record headers of the segments found at start: ``[(segment id, records, items)]``.

        Only reads (it may run in a worker thread while the queue is in use on its own thread); checks
        lengths, not checksums (:meth:`read` does). Apply the result with :meth:`apply_scan`.
        """
        found = []
        for segment in [s for s in self._segments if not s.checked and s.read_fd is not None]:
            fd = segment.read_fd
            assert fd is not None
            records = items = 0
            offset = max(segment.read_off, len(MAGIC))
            while offset + HEADER + PAYLOAD_PREFIX <= segment.size:
                head = self._ops.pread(fd, HEADER + PAYLOAD_PREFIX, offset)
                try:
                    length, _ = parse_header(head, self._max_payload)
                except CorruptRecord:
                    break
                if offset + HEADER + length > segment.size:
                    break
                records += 1
                items += int.from_bytes(head[HEADER + 4 : HEADER + 8], "little")
                offset += HEADER + length
            found.append((segment.id, records, items))
        return found

    def apply_scan(self, found: list[tuple[int, int, int]]) -> None:
        """Count what :meth:`scan_backlog` found, for segments the reader has not started yet."""
        by_id = {segment.id: segment for segment in self._segments}
        for segment_id, records, items in found:
            segment = by_id.get(segment_id)
            if segment is None or segment.checked:
                continue
            segment.unread_records, segment.unread_items = records, items
            self._unread_records += records
            self._unread_items += items
        self._scanned = True

    def scan(self) -> None:
        """:meth:`scan_backlog` and :meth:`apply_scan` in one go, on this thread."""
        self.apply_scan(self.scan_backlog())

    # -- writing

    @property
    def appended_seq(self) -> int:
        """Bytes appended since the queue was opened: :meth:`sync` makes everything up to here durable."""
        return self._appended_seq

    @property
    def synced_seq(self) -> int:
        """How much of :attr:`appended_seq` the last completed :meth:`sync` covered."""
        return self._synced_seq

    def append(self, signal: Signal, fmt: int, items: int, body: bytes) -> int:
        """Write one encoded request; return :attr:`appended_seq` after it (pass it to a sync waiter).

        Raises :class:`~aiotlp.QueueFullError` (byte cap, or a full disk) or :class:`~aiotlp.QueueWriteError`
        (another I/O error); both are counted, and the queue stays usable.
        """
        if self._closed:
            raise QueueWriteError("the disk queue is closed")
        payload = encode_payload(signal, fmt, items, body)
        if len(payload) > self._max_payload:
            raise ValueError(f"a record of {len(payload)} bytes is over max_record_bytes ({self._max_payload})")
        record = frame(payload)
        writer = self._writer
        rotate = (
            writer is None
            or writer.sealed
            or (writer.size > len(MAGIC) and writer.size + len(record) > self._segment_bytes)
        )
        need = len(record) + (len(MAGIC) if rotate else 0)
        if (
            self._bytes + need > self._max_bytes
            and writer is not None
            and not rotate
            and not writer.unacked
            and writer.read_off >= writer.size
        ):
            # everything in the segment being written went out: free it now rather than report a full queue
            self._seal(writer)
            self._maybe_finish(writer)
            rotate, need = True, len(record) + len(MAGIC)
        if self._bytes + need > self._max_bytes:
            self._disk_full_records += 1
            self._disk_full_items += items
            raise QueueFullError(
                f"the disk queue in {self.directory} is full: {self._bytes} of {self._max_bytes} bytes used, "
                f"{need} more needed; {items} items dropped"
            )
        try:
            if rotate:
                writer = self._rotate()
            assert writer is not None and writer.write_fd is not None
            self._write_record(writer, writer.write_fd, record)
        except OSError as exc:
            self._io_errors += 1
            self._io_log.log("disk queue %s: cannot write %d items: %s", self.directory, items, exc)
            if exc.errno in _NO_SPACE:
                self._disk_full_records += 1
                self._disk_full_items += items
                raise QueueFullError(f"the disk is full ({exc.strerror}): {items} items dropped") from exc
            self._write_error_records += 1
            self._write_error_items += items
            raise QueueWriteError(
                f"cannot write to the disk queue ({exc.strerror or exc}): {items} items dropped"
            ) from exc
        with self._lock:
            writer.size += len(record)
            self._appended_seq += len(record)
        self._bytes += len(record)
        writer.unread_records += 1
        writer.unread_items += items
        self._unread_records += 1
        self._unread_items += items
        self._appended_records += 1
        self._appended_items += items
        return self._appended_seq

    def _write_record(self, segment: Segment, fd: int, data: bytes) -> None:
        view = memoryview(data)
        try:
            while view:
                view = view[self._ops.write(fd, view) :]
        except OSError:
            try:  # cut the torn record off, so the next append starts at a record boundary
                self._ops.truncate(fd, segment.size)
            except OSError:
                self._io_errors += 1
                self._seal(segment)  # leave the torn tail behind (found and counted as damage after a restart)
            raise

    def _rotate(self) -> Segment:
        if self._writer is not None:
            self._seal(self._writer)
        ops = self._ops
        segment = Segment(self._next_id, len(MAGIC), sealed=False, checked=True)
        self._next_id += 1
        fd = ops.create(segment.name)
        try:
            view = memoryview(MAGIC)
            while view:
                view = view[ops.write(fd, view) :]
        except OSError:
            ops.close(fd)
            self._counting_errors(ops.unlink, segment.name)
            raise
        segment.write_fd = fd
        segment.read_off = len(MAGIC)
        with self._lock:
            self._writer = segment
            self._dir_dirty = True
            self._appended_seq += len(MAGIC)
        self._segments.append(segment)
        self._bytes += len(MAGIC)
        return segment

    def _seal(self, segment: Segment) -> None:
        """The segment gets no more appends; its descriptor waits for the next sync (or closes now)."""
        with self._lock:
            segment.sealed = True
            if self._writer is segment:
                self._writer = None
            fd, segment.write_fd = segment.write_fd, None
            if fd is not None and self._fsync:
                self._sealed_fds.append(fd)
                fd = None
        if fd is not None:
            self._counting_errors(self._ops.close, fd)

    def sync(self) -> None:
        """fsync everything appended so far (and the directory, if segments were created). Thread-safe.

        Raises ``OSError`` (counted) if an fsync fails; the data stays queued and a later sync tries again.
        """
        if not self._fsync:
            self._synced_seq = self._appended_seq
            return
        with self._lock:
            target = self._appended_seq
            sealed = list(self._sealed_fds)
            writer = self._writer
            fds = sealed + ([writer.write_fd] if writer is not None and writer.write_fd is not None else [])
            dir_dirty, self._dir_dirty = self._dir_dirty, False
        try:
            for fd in fds:
                self._ops.fsync(fd)
            if dir_dirty:
                self._ops.fsync_dir()
        except OSError:
            with self._lock:
                self._dir_dirty = self._dir_dirty or dir_dirty
                self._io_errors += 1
            raise
        with self._lock:
            for fd in sealed:
                self._sealed_fds.remove(fd)
            self._synced_seq = max(self._synced_seq, target)
        for fd in sealed:
            self._counting_errors(self._ops.close, fd)

    # -- reading

    def read(self) -> QueuedRecord | None:
        """The next record in append order, or None when everything was handed out. Damage is skipped, counted."""
        if self._closed:
            return None
        for segment in list(self._segments):
            while segment.read_off < segment.size:
                record = self._read_one(segment)
                if record is not None:
                    return record
            if not segment.sealed:
                return None  # the segment being written: caught up with the writer
            self._maybe_finish(segment)
        return None

    def _read_one(self, segment: Segment) -> QueuedRecord | None:
        ops = self._ops
        if segment.read_fd is None:
            try:
                segment.read_fd = ops.open_read(segment.name)
            except OSError as exc:  # removed or made unreadable behind the queue's back: skip it, counted
                self._io_errors += 1
                self._damage(segment, segment.read_off, f"cannot open it: {exc.strerror or exc}")
                return None
        fd = segment.read_fd
        try:
            if not segment.checked:
                segment.checked = True
                head = ops.pread(fd, len(MAGIC), 0)
                if head != MAGIC:
                    self._damage(segment, 0, "not a queue segment (bad magic)")
                    return None
                segment.read_off = max(segment.read_off, len(MAGIC))
                return None
            offset = segment.read_off
            header = ops.pread(fd, HEADER, offset)
            length, crc = parse_header(header, self._max_payload)
            if offset + HEADER + length > segment.size:
                raise CorruptRecord(
                    f"truncated record: {length} bytes announced, {segment.size - offset - HEADER} in the file"
                )
            payload = ops.pread(fd, length, offset + HEADER)
            if len(payload) != length:
                raise CorruptRecord(f"truncated record: {length} bytes announced, {len(payload)} read")
            check_header(header, payload, crc)
            decoded = decode_payload(payload)
        except CorruptRecord as exc:
            self._damage(segment, segment.read_off, exc.reason)
            return None
        except OSError as exc:
            self._io_errors += 1
            self._io_log.log("disk queue %s: cannot read %s: %s", self.directory, segment.name, exc)
            raise
        end = offset + HEADER + length
        segment.read_off = end
        segment.unacked += 1
        if segment.unread_records:
            segment.unread_records -= 1
            segment.unread_items = max(segment.unread_items - decoded.items, 0)
            self._unread_records -= 1
            self._unread_items = max(self._unread_items - decoded.items, 0)
        entry = _Unacked(segment, end, decoded.items)
        self._inflight.append(entry)
        self._inflight_items += decoded.items
        return QueuedRecord(decoded.signal, decoded.format, decoded.items, decoded.body, segment.id, offset, entry)

    def _damage(self, segment: Segment, offset: int, reason: str) -> None:
        skipped = max(segment.size - offset, 0)
        self._corrupt_records += 1
        self._corrupt_bytes += skipped
        self._corrupt_log.log(
            "disk queue %s: damaged record in %s at offset %d (%s): skipped the %d bytes to its end; the file "
            "will be renamed *%s",
            self.directory,
            segment.name,
            offset,
            reason,
            skipped,
            CORRUPT_SUFFIX,
        )
        segment.damaged = True
        segment.read_off = segment.size
        self._unread_records -= segment.unread_records
        self._unread_items -= segment.unread_items
        segment.unread_records = segment.unread_items = 0
        if not segment.sealed:
            self._seal(segment)

    # -- acknowledging

    def ack(self, record: QueuedRecord) -> None:
        """The record was delivered, or failed for good: it may go. Idempotent."""
        entry = record._entry
        if entry.acked:
            return
        entry.acked = True
        segment = entry.segment
        segment.unacked -= 1
        self._acked_records += 1
        self._acked_items += entry.items
        self._inflight_items -= entry.items
        inflight = self._inflight
        while inflight and inflight[0].acked:
            done = inflight.popleft()
            self._commit = (done.segment.id, done.end)
            self._cursor_dirty = True
        if (
            self._writer is segment
            and segment.unacked == 0
            and segment.read_off >= segment.size
            and segment.size >= self._reclaim_bytes
        ):
            self._seal(segment)  # everything in it went out: start a new segment so this one can go now
        self._maybe_finish(segment)

    def _maybe_finish(self, segment: Segment) -> None:
        """Remove a sealed, fully read and fully acknowledged segment (rename it aside if damaged)."""
        if not segment.sealed or segment.unacked or segment.read_off < segment.size or self._closed:
            return
        if segment not in self._segments:
            return
        self._segments.remove(segment)
        if segment.read_fd is not None:
            self._counting_errors(self._ops.close, segment.read_fd)
            segment.read_fd = None
        self._bytes -= segment.size
        if segment.damaged:
            if self._counting_errors(self._ops.rename, segment.name, segment.name + CORRUPT_SUFFIX):
                self._corrupt_files += 1
        else:
            self._counting_errors(self._ops.unlink, segment.name)

    def save_cursor(self) -> None:
        """Write the commit point to the cursor file if it moved (an I/O error is counted and logged)."""
        if not self._cursor_dirty or self._commit is None:
            return
        segment_id, offset = self._commit
        data = struct.pack("<QQ", segment_id, offset)
        if self._counting_errors(self._ops.write_small, CURSOR_NAME, data + struct.pack("<I", zlib.crc32(data))):
            self._cursor_dirty = False

    # -- the rest

    def _counting_errors(self, operation: Callable[..., object], *args: object) -> bool:
        """``operation(*args)``; an ``OSError`` is counted and logged (rate-limited), not raised. True if it worked."""
        try:
            operation(*args)
        except OSError as exc:
            self._io_errors += 1
            self._io_log.log("disk queue %s: %s%r failed: %s", self.directory, operation.__name__, args, exc)
            return False
        return True

    @property
    def closed(self) -> bool:
        return self._closed

    @property
    def scanned(self) -> bool:
        """True once the records found at start were counted (:meth:`scan`)."""
        return self._scanned

    def is_empty(self) -> bool:
        """True when every record on disk was handed out and acknowledged (damaged ones skipped)."""
        return not self._inflight and all(s.read_off >= s.size for s in self._segments)

    def statistics(self) -> QueueStatistics:
        return QueueStatistics(
            queued_records=self._unread_records + len(self._inflight),
            queued_items=self._unread_items + self._inflight_items,
            queued_bytes=self._bytes,
            segments=len(self._segments),
            appended_records=self._appended_records,
            appended_items=self._appended_items,
            acked_records=self._acked_records,
            acked_items=self._acked_items,
            disk_full_records=self._disk_full_records,
            disk_full_items=self._disk_full_items,
            write_error_records=self._write_error_records,
            write_error_items=self._write_error_items,
            io_errors=self._io_errors,
            corrupt_records=self._corrupt_records,
            corrupt_bytes=self._corrupt_bytes,
            corrupt_files=self._corrupt_files,
        )

    def close(self) -> None:
        """Sync (unless ``fsync=False``), save the cursor, close every file and release the lock. Idempotent."""
        if self._closed:
            return
        if self._fsync:
            try:
                self.sync()
            except OSError as exc:
                self._io_log.log("disk queue %s: final fsync failed: %s", self.directory, exc)
        self.save_cursor()
        self._closed = True
        self._close_fds()
        self._ops.release()

    def _close_fds(self) -> None:
        with self._lock:
            fds = list(self._sealed_fds)
            self._sealed_fds.clear()
            if self._writer is not None and self._writer.write_fd is not None:
                fds.append(self._writer.write_fd)
                self._writer.write_fd = None
        for segment in self._segments:
            if segment.read_fd is not None:
                fds.append(segment.read_fd)
                segment.read_fd = None
        for fd in fds:
            self._counting_errors(self._ops.close, fd)

    def __enter__(self) -> DurableQueue:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<DurableQueue {self.directory} segments={len(self._segments)} bytes={self._bytes}>"
