"""Concurrency limit: at most ``max_concurrent`` requests inside the wrapped sender at once."""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque

from .._backports import timeout_at
from .._exceptions import DeadlineExceededError
from .._validate import positive_int
from ..encoding import PartialSuccess
from ._types import ExportRequest, Sender

__all__ = ["ConcurrencyLimit"]


class ConcurrencyLimit:
    """Wraps a :class:`Sender` with a limit of ``max_concurrent`` requests in flight; the others wait for a slot in
    arrival order. Waiting for a slot counts against the request's deadline.

    A plain count and a queue of waiters rather than an :class:`asyncio.Semaphore`: taking a free slot is a
    synchronous call (:meth:`enter_now`, which the sender stack's one-frame path uses), and a slot given back goes
    straight to the first waiter (:meth:`leave`), counted in flight from then on.
    """

    def __init__(self, inner: Sender, max_concurrent: int = 4) -> None:
        positive_int(max_concurrent, "max_concurrent")
        self.inner = inner
        self.max_concurrent = max_concurrent
        self.in_flight = 0
        """Requests holding a slot (being sent, or waiting to retry)."""
        self._waiters: deque[asyncio.Future[None]] = deque()

    def enter_now(self) -> bool:
        """Take a slot if one is free and nobody waits for one; False otherwise (then wait: :meth:`send`)."""
        if self.in_flight < self.max_concurrent and not self._waiters:
            self.in_flight += 1
            return True
        return False

    def leave(self) -> None:
        """Give a slot back: to the first request still waiting for one, else it is free."""
        waiters = self._waiters
        while waiters:
            waiter = waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)  # the slot passes to it: still in flight
                return
        self.in_flight -= 1

    async def _wait(self, deadline: float) -> None:
        """Wait for a slot (given by :meth:`leave`) until ``deadline``."""
        waiter = asyncio.get_running_loop().create_future()
        self._waiters.append(waiter)
        try:
            async with timeout_at(deadline):
                await waiter
        except BaseException as exc:
            if waiter.done() and not waiter.cancelled():
                self.leave()  # given a slot as this wait ended otherwise: it passes on
            else:
                waiter.cancel()
                with contextlib.suppress(ValueError):
                    self._waiters.remove(waiter)
            if isinstance(exc, asyncio.TimeoutError):
                raise DeadlineExceededError(
                    f"export deadline reached while waiting for one of {self.max_concurrent} export slots"
                ) from None
            raise

    async def send(self, request: ExportRequest, deadline: float) -> PartialSuccess:
        if not self.enter_now():
            await self._wait(deadline)
        try:
            return await self.inner.send(request, deadline)
        finally:
            self.leave()

    async def shutdown(self) -> None:
        await self.inner.shutdown()
