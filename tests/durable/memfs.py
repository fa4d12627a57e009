"""An in-memory FileOps with a model of the page cache, for the crash tests of the disk queue.

Each file holds what the process sees (``data``) and what would survive a crash (``durable``): ``fsync`` makes
``data`` durable; a new file's *name* is durable only after ``fsync_dir``. :meth:`MemoryFS.crash` does what a
power cut does: every file goes back to its durable bytes plus a prefix, chosen by the test, of the bytes written
after (the kernel may have written back part of them: a torn tail), and files whose name was never made durable
may vanish. Renames, removals and the small atomic writes (the cursor) are durable at once: losing them could only
cause duplicates, which the queue allows.

Faults: :attr:`MemoryFS.fail_writes` makes the next writes fail (after writing ``partial`` bytes) with an errno.
"""

from __future__ import annotations

import errno
import os
from collections.abc import Callable
from dataclasses import dataclass, field

from aiotlp import QueueLockedError


@dataclass
class MemFile:
    data: bytearray = field(default_factory=bytearray)
    durable: bytearray = field(default_factory=bytearray)
    entry_durable: bool = False


@dataclass
class WriteFault:
    error: int
    partial: int = 0
    count: int = 1


class MemoryFS:
    """Directories of in-memory files, shared by every :class:`MemoryFileOps` opened on them (one "disk")."""

    def __init__(self) -> None:
        self.dirs: dict[str, dict[str, MemFile]] = {}
        self.locked: set[str] = set()
        self.fds: dict[int, tuple[MemFile, bool]] = {}
        self._next_fd = 100
        self.fail_writes: WriteFault | None = None
        self.fsyncs = 0

    def ops(self, path: str) -> MemoryFileOps:
        """The ``file_ops`` factory to give a DurableQueue."""
        return MemoryFileOps(self, path)

    def new_fd(self, file: MemFile, writable: bool) -> int:
        self._next_fd += 1
        self.fds[self._next_fd] = (file, writable)
        return self._next_fd

    def crash(self, choose: Callable[[str, int], int], keep_entry: Callable[[str], bool]) -> None:
        """A power cut: ``choose(name, pending)`` is how many unsynced bytes of ``name`` made it to disk (0..pending);
        ``keep_entry(name)`` whether a file whose name was never fsynced survives."""
        for files in self.dirs.values():
            for name in sorted(files):
                file = files[name]
                if not file.entry_durable and not keep_entry(name):
                    del files[name]
                    continue
                durable = bytes(file.durable)
                assert bytes(file.data[: len(durable)]) == durable, "append-only files only"
                pending = len(file.data) - len(durable)
                kept = choose(name, pending) if pending else 0
                file.data = bytearray(durable + bytes(file.data[len(durable) : len(durable) + kept]))
                file.durable = bytearray(file.data)
                file.entry_durable = True
        self.fds.clear()
        self.locked.clear()


class MemoryFileOps:
    """FileOps over a :class:`MemoryFS` directory."""

    def __init__(self, fs: MemoryFS, path: str) -> None:
        if path in fs.locked:
            raise QueueLockedError(f"the queue directory {path} is in use (memory fs)", directory=path)
        fs.locked.add(path)
        self.fs = fs
        self.path = path
        self.files = fs.dirs.setdefault(path, {})
        self.released = False

    @property
    def directory(self) -> str:
        return self.path

    def _fd(self, fd: int, *, write: bool = False) -> MemFile:
        try:
            file, writable = self.fs.fds[fd]
        except KeyError:
            raise OSError(errno.EBADF, os.strerror(errno.EBADF)) from None
        if write and not writable:
            raise OSError(errno.EBADF, "not open for writing")
        return file

    def listdir(self) -> list[str]:
        return list(self.files)

    def is_symlink(self, name: str) -> bool:
        return False

    def create(self, name: str) -> int:
        if name in self.files:
            raise FileExistsError(errno.EEXIST, name)
        file = self.files[name] = MemFile()
        return self.fs.new_fd(file, True)

    def open_read(self, name: str) -> int:
        try:
            return self.fs.new_fd(self.files[name], False)
        except KeyError:
            raise FileNotFoundError(errno.ENOENT, name) from None

    def write(self, fd: int, data: bytes | memoryview) -> int:
        file = self._fd(fd, write=True)
        fault = self.fs.fail_writes
        if fault is not None:
            fault.count -= 1
            if fault.count <= 0:
                self.fs.fail_writes = None
            partial = min(fault.partial, len(data) - 1)
            file.data += bytes(data[:partial])
            raise OSError(fault.error, os.strerror(fault.error))
        file.data += bytes(data)
        return len(data)

    def pread(self, fd: int, size: int, offset: int) -> bytes:
        return bytes(self._fd(fd).data[offset : offset + size])

    def size(self, fd: int) -> int:
        return len(self._fd(fd).data)

    def truncate(self, fd: int, size: int) -> None:
        file = self._fd(fd, write=True)
        del file.data[size:]
        del file.durable[size:]

    def fsync(self, fd: int) -> None:
        file = self._fd(fd)
        file.durable = bytearray(file.data)
        self.fs.fsyncs += 1

    def fsync_dir(self) -> None:
        for file in self.files.values():
            file.entry_durable = True

    def close(self, fd: int) -> None:
        self._fd(fd)
        del self.fs.fds[fd]

    def rename(self, old: str, new: str) -> None:
        self.files[new] = self.files.pop(old)
        self.files[new].entry_durable = True

    def unlink(self, name: str) -> None:
        try:
            del self.files[name]
        except KeyError:
            raise FileNotFoundError(errno.ENOENT, name) from None

    def write_small(self, name: str, data: bytes) -> None:
        self.files[name] = MemFile(bytearray(data), bytearray(data), True)

    def read_small(self, name: str, limit: int) -> bytes | None:
        file = self.files.get(name)
        return None if file is None else bytes(file.data[:limit])

    def release(self) -> None:
        assert not self.released, "released twice"
        self.released = True
        self.fs.locked.discard(self.path)
