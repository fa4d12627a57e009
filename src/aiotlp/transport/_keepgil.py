"""An event loop whose non-blocking socket calls keep the GIL: for a loop thread that shares the GIL with a busy
thread (the SDK bridge's, :mod:`aiotlp.sdk._bridge`).

CPython releases the GIL around every ``socket.send``, ``socket.recv`` and ``epoll.poll``, even when the call
cannot block: asyncio's sockets are non-blocking, and a loop with ready callbacks polls with a zero timeout. When
another thread is waiting for the GIL (an application thread ending spans flat out), each release lets it in, and
the loop thread gets the GIL back only when that thread's switch interval ends (``sys.getswitchinterval()``, 5 ms).
An export that is 0.7 ms of CPU then took 6 to 11 ms of wall time: one such wait for each write of a request (the
250 KB ``send`` spends ~0.4 ms in the kernel, long enough for the other thread to wake up), for some reads and
zero-timeout polls, and one for the reply (which cannot be helped: the loop has nothing to do until it comes).

:func:`new_event_loop` returns a :class:`asyncio.SelectorEventLoop` that makes those calls through the compiled
helper :mod:`aiotlp.transport._holdgil` (``send``/``recv`` with ``MSG_DONTWAIT``, ``epoll_wait`` with a zero
timeout, the GIL kept), so that an export waits for the GIL once, for its reply:

- the selector (an :class:`selectors.EpollSelector`) polls through the helper when the timeout is zero; a poll
  that may block releases the GIL as always;
- a plain TCP socket handed to a socket transport (``create_connection`` without TLS) becomes a
  :class:`KeepGilSocket` (the same object, its class changed: same fd, same state), whose ``send`` and ``recv``
  go through the helper. asyncio then handles partial writes and ``BlockingIOError`` as it does for the built-in
  calls (the helper raises the same ``OSError`` subclasses). A TLS connection keeps its socket as it is (asyncio's
  TLS writes through a transport made elsewhere); so do other socket classes and blocking sockets.

An application that installed another event loop policy (uvloop's) keeps that policy's loop. Without the helper
(not built: no C compiler, not Linux) or with ``AIOTLP_NO_EXTENSIONS`` set to anything but
``""`` or ``"0"``, :data:`AVAILABLE` is False and :func:`new_event_loop` is ``asyncio.new_event_loop()``: the
same behaviour, with the GIL waits. (Read here rather than in :mod:`aiotlp.config`, as
:mod:`aiotlp.encoding._compat` reads it: it is about the code, not the exporter's configuration.)
"""

from __future__ import annotations

import asyncio
import os
import selectors
import socket
from types import ModuleType
from typing import TYPE_CHECKING, Any, Final

__all__ = ["AVAILABLE", "KeepGilEventLoop", "KeepGilSelector", "KeepGilSocket", "adopt", "new_event_loop"]


def _load() -> ModuleType | None:
    if os.environ.get("AIOTLP_NO_EXTENSIONS", "") not in ("", "0"):
        return None
    if not hasattr(selectors, "EpollSelector"):  # pragma: no cover - not Linux
        return None
    try:
        from . import _holdgil
    except ImportError:
        return None
    return _holdgil


_helper: Final = _load()

AVAILABLE: Final = _helper is not None
"""True when the compiled helper is used (built, on Linux, and not turned off by ``AIOTLP_NO_EXTENSIONS``)."""

# the helper's polls are epoll's; without epoll (not Linux) the helper is not loaded, and this class is only
# defined (its module must import everywhere)
if TYPE_CHECKING or hasattr(selectors, "EpollSelector"):
    _SELECTOR = selectors.EpollSelector
else:  # pragma: no cover - not Linux (tests/transport/test_keepgil.py takes epoll away in a child)
    _SELECTOR = selectors.DefaultSelector

_EPOLLIN: Final = 0x001
_EPOLLOUT: Final = 0x004


class KeepGilSocket(socket.socket):
    """A non-blocking TCP socket whose ``send`` and ``recv`` keep the GIL (see the module)."""

    __slots__ = ()

    def send(self, data: Any, flags: int = 0) -> int:
        if flags or _helper is None:
            return super().send(data, flags)
        return _helper.send(self.fileno(), data)  # type: ignore[no-any-return]

    def recv(self, bufsize: int, flags: int = 0) -> bytes:
        if flags or _helper is None:
            return super().recv(bufsize, flags)
        return _helper.recv(self.fileno(), bufsize)  # type: ignore[no-any-return]


def adopt(sock: Any) -> bool:
    """Make ``sock`` a :class:`KeepGilSocket` when it is a plain, non-blocking TCP socket; True if it was."""
    if _helper is None or type(sock) is not socket.socket:  # an SSLSocket, a subclass of someone else's, ...
        return False
    if sock.type != socket.SOCK_STREAM or sock.family not in (socket.AF_INET, socket.AF_INET6, socket.AF_UNIX):
        return False
    if sock.gettimeout() != 0.0:  # only calls that cannot block may keep the GIL
        return False
    sock.__class__ = KeepGilSocket
    return True


class KeepGilSelector(_SELECTOR):
    """An epoll selector whose zero-timeout polls keep the GIL."""

    def select(self, timeout: float | None = None) -> list[tuple[selectors.SelectorKey, int]]:
        if _helper is None or timeout is None or timeout > 0:
            return super().select(timeout)
        fds = self.get_map()
        ready = []
        for fd, event in _helper.poll0(self.fileno(), max(len(fds), 1)):
            key = fds.get(fd)
            if key is None:
                continue
            events = 0
            if event & ~_EPOLLIN:  # as EpollSelector: an error or hang-up wakes both directions
                events |= selectors.EVENT_WRITE
            if event & ~_EPOLLOUT:
                events |= selectors.EVENT_READ
            ready.append((key, events & key.events))
        return ready


class KeepGilEventLoop(asyncio.SelectorEventLoop):
    """A selector event loop with :class:`KeepGilSelector` whose plain TCP transports use :class:`KeepGilSocket`."""

    def __init__(self) -> None:
        super().__init__(KeepGilSelector())

    def _read_from_self(self) -> None:
        """Drain the self-pipe (written by ``call_soon_threadsafe`` from another thread) keeping the GIL, with one
        read per wake-up: a short read has drained it (bytes written after it leave the fd readable, and epoll
        reports it again), so not asyncio's second ``recv``, which releases the GIL and ends in
        ``BlockingIOError``."""
        if _helper is None:  # pragma: no cover - this loop is made only with the helper
            super()._read_from_self()  # type: ignore[misc]
            return
        fd = self._ssock.fileno()  # type: ignore[attr-defined]
        while True:
            try:
                data = _helper.recv(fd, 4096)
            except InterruptedError:
                continue
            except BlockingIOError:
                return
            if data:
                self._process_self_data(data)  # type: ignore[attr-defined]
            if len(data) < 4096:
                return

    def _make_socket_transport(self, sock: Any, *args: Any, **kwargs: Any) -> Any:
        adopt(sock)
        return super()._make_socket_transport(sock, *args, **kwargs)  # type: ignore[misc]


def new_event_loop() -> asyncio.AbstractEventLoop:
    """A :class:`KeepGilEventLoop` when the helper is available and the event loop policy makes asyncio's default
    loop, else ``asyncio.new_event_loop()`` (the policy's loop: uvloop's, for one, when the application installed
    it)."""
    loop = asyncio.new_event_loop()
    if _helper is None or type(loop) is not asyncio.SelectorEventLoop:  # no helper, or the policy's own loop
        return loop
    loop.close()  # asyncio's default: replaced (asked of the policy, not of its API, deprecated in Python 3.14)
    return KeepGilEventLoop()
