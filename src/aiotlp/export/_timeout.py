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

# One timer handle per attempt that cancels the task, as asyncio.timeout's does (with the same cancel-count
# bookkeeping), without its context manager object and its two coroutines; Python 3.10 has no Task.uncancel():
# there the backport's context manager does it.
_ONE_HANDLE = sys.version_info >= (3, 11)


class _Task(Protocol):
    """What the timer uses of the attempt's task (``cancelling``/``uncancel``: Python 3.11+)."""

    def cancel(self, msg: Any = None) -> bool: ...
    def cancelling(self) -> int: ...
    def uncancel(self) -> int: ...


def _expire(task: _Task, fired: list[bool]) -> None:
    """The attempt's timer: cancel its task, as ``asyncio.timeout`` does when it expires."""
    task.cancel()
    fired.append(True)


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
        fired: list[bool] = []
        handle = loop.call_at(deadline, _expire, task, fired)
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
            handle.cancel()
            # ours when the timer fired and no other cancellation was asked for since the attempt began
            if fired and task.uncancel() <= cancelling and type(exc) is asyncio.CancelledError:
                raise AttemptTimeoutError(self._message(by_attempt)) from None
            raise
        handle.cancel()
        if fired:  # fired, but the attempt ended anyway: its cancellation request is withdrawn
            task.uncancel()
        return reply

    def _message(self, by_attempt: bool) -> str:
        limit = f"its {self.attempt_timeout:.3g}s timeout" if by_attempt else "the export deadline"
        return f"the attempt was cancelled at {limit}"

    async def shutdown(self) -> None:
        await self.inner.shutdown()
