"""Timeout: bound each attempt by ``attempt_timeout`` and by the export deadline, whichever comes first."""

from __future__ import annotations

import asyncio
import sys
from typing import Any, Protocol, cast

from .._backports import timeout_at
from .._exceptions import AttemptTimeoutError, ConfigurationError
from .._validate import is_number
from ..encoding import PartialSuccess
from ..transport import Transport
from ._reply import read_reply
from ._types import ExportRequest, Sender

__all__ = ["Timeout", "TransportSender"]

# The attempt's task is cancelled when its deadline comes, as asyncio.timeout's handle does (with the same
# cancel-count bookkeeping), without its context manager object and its two coroutines; Python 3.10 has no
# Task.uncancel(): there the backport's context manager does it.
_ONE_HANDLE = sys.version_info >= (3, 11)


class _Task(Protocol):
    """What the timer uses of the attempt's task (``cancelling``/``uncancel``: Python 3.11+)."""

    def cancel(self, msg: Any = None) -> bool: ...
    def cancelling(self) -> int: ...
    def uncancel(self) -> int: ...


class _Attempt:
    """An attempt in flight: its task, its deadline, and whether the timer cancelled it."""

    __slots__ = ("deadline", "fired", "task")

    def __init__(self, task: _Task, deadline: float) -> None:
        self.task = task
        self.deadline = deadline
        self.fired = False


def _expire(attempt: _Attempt) -> None:
    """The attempt's deadline came: cancel its task, as ``asyncio.timeout`` does when it expires (once)."""
    if not attempt.fired:
        attempt.fired = True
        attempt.task.cancel()


class TransportSender:
    """The leaf of the stack: one attempt through the transport, and the reading of its reply."""

    def __init__(self, transport: Transport) -> None:
        self.transport = transport

    async def send(self, request: ExportRequest, deadline: float) -> PartialSuccess:
        timeout = deadline - asyncio.get_running_loop().time()
        transport = self.transport
        reply = await transport.send(request.body, content_encoding=request.content_encoding, timeout=timeout)
        return read_reply(reply, transport.content_type)

    async def shutdown(self) -> None:
        await self.transport.close()


class Timeout:
    """Wraps a :class:`Sender`; an attempt that runs too long is cancelled and raises :class:`AttemptTimeoutError`.

    The inner sender is given the earlier of the two deadlines, so a transport can also pass it on to the
    server (gRPC's ``grpc-timeout``). ``attempt_timeout=None`` bounds attempts by the export deadline only.

    The attempt is cancelled exactly as ``asyncio.timeout_at(deadline)`` would cancel it: its task is cancelled
    when the deadline comes, and that cancellation (and only that one: not one that came from elsewhere as well)
    becomes the :class:`AttemptTimeoutError`.
    """

    def __init__(self, inner: Sender, attempt_timeout: float | None = None) -> None:
        if attempt_timeout is not None and (not is_number(attempt_timeout) or not attempt_timeout > 0):
            raise ConfigurationError(f"attempt_timeout must be > 0 seconds or None, got {attempt_timeout!r}")
        self.inner = inner
        self.attempt_timeout = attempt_timeout
        # One timer for the attempts in flight on one loop (not a timer handle per attempt): armed for the earliest
        # deadline among them; when it fires it cancels those due and arms itself for the next (_fire). Deadlines
        # mostly come in increasing order (now + the export timeout), so an attempt only joins the set.
        self._attempts: set[_Attempt] = set()
        self._timer: asyncio.TimerHandle | None = None
        self._timer_at = 0.0
        self._timer_loop: asyncio.AbstractEventLoop | None = None

    def _watch(self, loop: asyncio.AbstractEventLoop, attempt: _Attempt) -> asyncio.TimerHandle | None:
        """Have ``attempt`` cancelled at its deadline: by the shared timer (None), or by a handle of its own
        while attempts on another loop hold the timer (a Timeout used on two loops at once)."""
        if self._timer_loop is not loop:
            if self._attempts:
                return loop.call_at(attempt.deadline, _expire, attempt)
            if self._timer is not None:
                self._timer.cancel()
                self._timer = None
            self._timer_loop = loop
        self._attempts.add(attempt)
        timer = self._timer
        if timer is None or attempt.deadline < self._timer_at:
            if timer is not None:
                timer.cancel()
            self._timer = loop.call_at(attempt.deadline, self._fire, loop)
            self._timer_at = attempt.deadline
        return None

    def _fire(self, loop: asyncio.AbstractEventLoop) -> None:
        """The shared timer: cancel the attempts whose deadline came, arm for the earliest of the others."""
        if self._timer_loop is not loop:
            return  # replaced by a timer on another loop
        due = max(self._timer_at, loop.time())  # (it fires within the clock's resolution of its time)
        self._timer = None
        earliest: float | None = None
        for attempt in list(self._attempts):
            if attempt.deadline <= due:
                _expire(attempt)  # it leaves the set when its send ends
            elif not attempt.fired and (earliest is None or attempt.deadline < earliest):
                earliest = attempt.deadline
        if earliest is not None:
            self._timer = loop.call_at(earliest, self._fire, loop)
            self._timer_at = earliest

    async def send(self, request: ExportRequest, deadline: float) -> PartialSuccess:
        loop = asyncio.get_running_loop()
        now = loop.time()
        by_attempt = self.attempt_timeout is not None and now + self.attempt_timeout < deadline
        if by_attempt:
            deadline = now + self.attempt_timeout  # type: ignore[operator]
        if deadline <= now:
            raise AttemptTimeoutError("no time left for another attempt before the export deadline")
        task = cast("_Task | None", asyncio.current_task()) if _ONE_HANDLE else None
        if task is None:  # Python 3.10 (or no task: the context manager raises its RuntimeError)
            try:
                async with timeout_at(deadline):
                    return await self.inner.send(request, deadline)
            except asyncio.TimeoutError:
                raise AttemptTimeoutError(self._message(by_attempt)) from None
        cancelling = task.cancelling()
        attempt = _Attempt(task, deadline)
        handle = self._watch(loop, attempt)
        try:
            inner = self.inner
            if type(inner) is not TransportSender:
                reply = await inner.send(request, deadline)
            else:  # over the stack's leaf, its attempt is made in this frame (TransportSender.send: one coroutine less)
                transport = inner.transport
                answer = await transport.send(
                    request.body, content_encoding=request.content_encoding, timeout=deadline - loop.time()
                )
                reply = read_reply(answer, transport.content_type)
        except BaseException as exc:
            if handle is None:
                self._attempts.discard(attempt)
            else:
                handle.cancel()
            # ours when the timer fired and no other cancellation was asked for since the attempt began
            if attempt.fired and task.uncancel() <= cancelling and type(exc) is asyncio.CancelledError:
                raise AttemptTimeoutError(self._message(by_attempt)) from None
            raise
        if handle is None:
            self._attempts.discard(attempt)
        else:
            handle.cancel()
        if attempt.fired:  # fired, but the attempt ended anyway: its cancellation request is withdrawn
            task.uncancel()
        return reply

    def _message(self, by_attempt: bool) -> str:
        limit = f"its {self.attempt_timeout:.3g}s timeout" if by_attempt else "the export deadline"
        return f"the attempt was cancelled at {limit}"

    async def shutdown(self) -> None:
        await self.inner.shutdown()
