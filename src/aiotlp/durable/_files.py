"""The file operations the disk queue needs, behind one small interface.

:class:`OsFileOps` is the real thing. The interface exists so a test can put a model of the page cache underneath
the queue (bytes written but not yet ``fsync``-ed vanish in a simulated crash) or inject I/O errors, and so the
queue's logic never touches ``os`` directly.

Safety of the real implementation:

* the directory is created ``0700`` (an existing one owned by us is narrowed to ``0700``; one owned by another
  user is refused), opened with ``O_NOFOLLOW`` and every file is opened relative to that directory descriptor, so
  swapping the directory for a symlink after the check changes nothing;
* every file is opened with ``O_NOFOLLOW`` and created ``0600``: a symlink planted in the queue directory is
  never followed (the open fails with ``ELOOP``, reported as a :class:`~aiotlp.DurableQueueError`);
* an exclusive ``flock`` on ``<dir>/lock``, held while the queue is open: a second queue, in this process or in
  another one, gets :class:`~aiotlp.QueueLockedError`. The kernel drops the lock when the process dies, so a
  ``kill -9`` never leaves a stale lock behind.
"""

from __future__ import annotations

import errno
import fcntl
import os
import stat
from typing import Protocol

from .._exceptions import DurableQueueError, QueueLockedError

__all__ = ["LOCK_NAME", "FileOps", "OsFileOps"]

LOCK_NAME = "lock"

_NOFOLLOW = os.O_NOFOLLOW | os.O_CLOEXEC
_FILE_MODE = 0o600
_DIR_MODE = 0o700


def open_directory(path: str) -> int:
    """A descriptor of the directory ``path``, never through a symlink (``OSError`` otherwise)."""
    return os.open(path, os.O_RDONLY | os.O_DIRECTORY | _NOFOLLOW)


def directory_problem(path: str, exc: OSError, *, symlink: str) -> str:
    """Why :func:`open_directory` failed, in words; ``symlink`` says why a symlink is refused."""
    if os.path.islink(path) or exc.errno == errno.ELOOP:
        return f"it is a symlink ({symlink})"
    if exc.errno == errno.ENOTDIR:
        return "it is not a directory"
    return exc.strerror or str(exc)


class FileOps(Protocol):
    """File operations on the names of one directory (which the implementation opened and locked).

    Descriptors are plain ints. Errors are ``OSError``. ``write`` may write less than asked (the caller loops).
    """

    @property
    def directory(self) -> str: ...

    def listdir(self) -> list[str]: ...

    def is_symlink(self, name: str) -> bool: ...

    def create(self, name: str) -> int:
        """Create ``name`` (it must not exist), open for appending."""
        ...

    def open_read(self, name: str) -> int: ...

    def write(self, fd: int, data: bytes | memoryview) -> int: ...

    def pread(self, fd: int, size: int, offset: int) -> bytes: ...

    def size(self, fd: int) -> int: ...

    def truncate(self, fd: int, size: int) -> None: ...

    def fsync(self, fd: int) -> None: ...

    def fsync_dir(self) -> None:
        """Make the directory's entries (files created, renamed, removed) durable."""
        ...

    def close(self, fd: int) -> None: ...

    def rename(self, old: str, new: str) -> None: ...

    def unlink(self, name: str) -> None: ...

    def write_small(self, name: str, data: bytes) -> None:
        """Replace ``name`` with ``data`` atomically (a temporary file renamed over it)."""
        ...

    def read_small(self, name: str, limit: int) -> bytes | None:
        """At most ``limit`` bytes of ``name``, or None if it does not exist."""
        ...

    def release(self) -> None:
        """Unlock and close the directory. Called once, last."""
        ...


class OsFileOps:
    """The real file operations: see the module docstring for the safety rules."""

    def __init__(self, directory: str | os.PathLike[str]) -> None:
        path = os.path.abspath(os.fspath(directory))
        self._path = path
        try:
            os.makedirs(path, mode=_DIR_MODE, exist_ok=True)
        except FileExistsError:
            pass  # a dangling symlink, or a file: reported below
        except OSError as exc:
            raise DurableQueueError(
                f"cannot create the queue directory {path}: {exc.strerror}", directory=path
            ) from exc
        try:
            dir_fd = open_directory(path)
        except OSError as exc:
            reason = directory_problem(path, exc, symlink="refused: the queue never follows symlinks")
            raise DurableQueueError(f"cannot open the queue directory {path}: {reason}", directory=path) from exc
        self._dir_fd = dir_fd
        self._lock_fd = -1
        try:
            info = os.fstat(dir_fd)
            if info.st_uid != os.geteuid():
                raise DurableQueueError(
                    f"the queue directory {path} belongs to uid {info.st_uid}, not to this process (uid "
                    f"{os.geteuid()}): refused",
                    directory=path,
                )
            if stat.S_IMODE(info.st_mode) != _DIR_MODE:
                os.fchmod(dir_fd, _DIR_MODE)
            self._lock()
        except BaseException:
            os.close(dir_fd)
            if self._lock_fd >= 0:
                os.close(self._lock_fd)
            raise

    def _lock(self) -> None:
        path = self._path
        try:
            fd = os.open(LOCK_NAME, os.O_RDWR | os.O_CREAT | _NOFOLLOW, _FILE_MODE, dir_fd=self._dir_fd)
        except OSError as exc:
            reason = "it is a symlink (refused)" if exc.errno == errno.ELOOP else exc.strerror
            raise DurableQueueError(
                f"cannot open the lock file {os.path.join(path, LOCK_NAME)}: {reason}", directory=path
            ) from exc
        self._lock_fd = fd
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError as exc:
            holder = os.pread(fd, 32, 0).decode("ascii", "replace").strip() or "unknown"
            raise QueueLockedError(
                f"the queue directory {path} is in use by another aiotlp disk queue (pid {holder}); "
                "give each process its own queue_dir",
                directory=path,
            ) from exc
        os.fchmod(fd, _FILE_MODE)
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)

    @property
    def directory(self) -> str:
        return self._path

    def listdir(self) -> list[str]:
        return os.listdir(self._dir_fd)

    def is_symlink(self, name: str) -> bool:
        return stat.S_ISLNK(os.stat(name, dir_fd=self._dir_fd, follow_symlinks=False).st_mode)

    def create(self, name: str) -> int:
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_APPEND | _NOFOLLOW
        return os.open(name, flags, _FILE_MODE, dir_fd=self._dir_fd)

    def open_read(self, name: str) -> int:
        return os.open(name, os.O_RDONLY | _NOFOLLOW, dir_fd=self._dir_fd)

    def write(self, fd: int, data: bytes | memoryview) -> int:
        return os.write(fd, data)

    def pread(self, fd: int, size: int, offset: int) -> bytes:
        return os.pread(fd, size, offset)

    def size(self, fd: int) -> int:
        return os.fstat(fd).st_size

    def truncate(self, fd: int, size: int) -> None:
        os.ftruncate(fd, size)

    def fsync(self, fd: int) -> None:
        os.fsync(fd)

    def fsync_dir(self) -> None:
        os.fsync(self._dir_fd)

    def close(self, fd: int) -> None:
        os.close(fd)

    def rename(self, old: str, new: str) -> None:
        os.rename(old, new, src_dir_fd=self._dir_fd, dst_dir_fd=self._dir_fd)

    def unlink(self, name: str) -> None:
        os.unlink(name, dir_fd=self._dir_fd)

    def write_small(self, name: str, data: bytes) -> None:
        temporary = name + ".tmp"
        flags = os.O_WRONLY | os.O_CREAT | os.O_TRUNC | _NOFOLLOW
        fd = os.open(temporary, flags, _FILE_MODE, dir_fd=self._dir_fd)
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view) :]
        finally:
            os.close(fd)
        os.replace(temporary, name, src_dir_fd=self._dir_fd, dst_dir_fd=self._dir_fd)

    def read_small(self, name: str, limit: int) -> bytes | None:
        try:
            fd = os.open(name, os.O_RDONLY | _NOFOLLOW, dir_fd=self._dir_fd)
        except FileNotFoundError:
            return None
        try:
            return os.read(fd, limit)
        finally:
            os.close(fd)

    def release(self) -> None:
        if self._lock_fd >= 0:
            try:
                fcntl.flock(self._lock_fd, fcntl.LOCK_UN)
            finally:
                os.close(self._lock_fd)
                self._lock_fd = -1
        if self._dir_fd >= 0:
            os.close(self._dir_fd)
            self._dir_fd = -1
