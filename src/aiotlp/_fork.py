"""What a process must never touch again: objects bound to an event loop that is gone, or inherited across a fork.

A connection made by the parent process shares its socket (and TLS or HTTP/2 state) with the parent: closing it
in a forked child would send a FIN, a TLS close_notify or a GOAWAY on the parent's stream, and grpc core's objects
cannot be called at all in the child. A connection made on an event loop that was closed without
``shutdown_asyncgens()`` cannot be closed either: closing an asyncio transport schedules a callback on its loop,
and a closed loop raises ``RuntimeError('Event loop is closed')``.

:func:`abandon` keeps such an object referenced for the life of the process, so that nothing finalizes it: no
``__del__`` runs (asyncio's "unclosed transport" ResourceWarning, grpc's channel close), not even at interpreter
exit. Its file descriptors stay open until the process exits.
"""

from __future__ import annotations

__all__ = ["abandon"]

_abandoned: list[object] = []


def abandon(obj: object) -> None:
    """Keep ``obj`` alive, untouched and never finalized, until the process exits."""
    _abandoned.append(obj)
    try:
        import ctypes

        # An extra reference that nothing releases: interpreter finalization clears this module's list, and
        # the objects in it would then be deallocated (and their __del__ run) without it.
        ctypes.pythonapi.Py_IncRef(ctypes.py_object(obj))
    except (ImportError, AttributeError):  # pragma: no cover - not CPython: the list keeps it until exit
        pass
