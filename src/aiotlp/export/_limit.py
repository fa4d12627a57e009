"""Concurrency limit: at most ``max_concurrent`` requests inside the wrapped sender at once."""

from __future__ import annotations

import asyncio

from .._backports import timeout_at
from .._exceptions import DeadlineExceededError
from .._validate import positive_int
from ..encoding import PartialSuccess
from ._types import ExportRequest, Sender

__all__ = ["ConcurrencyLimit"]


class ConcurrencyLimit:
    """Wraps a :class:`Sender` with a semaphore. Waiting for a slot counts against the request's deadline."""

    def __init__(self, inner: Sender, max_concurrent: int = 4) -> None:
        positive_int(max_concurrent, "max_concurrent")
        self.inner = inner
        self.max_concurrent = max_concurrent
        self._semaphore = asyncio.Semaphore(max_concurrent)
        self.in_flight = 0

    async def send(self, request: ExportRequest, deadline: float) -> PartialSuccess:
        semaphore = self._semaphore
        try:
            if semaphore.locked():  # only a wait needs a timer: the free-slot path stays cheap (no timeout scope)
                async with timeout_at(deadline):
                    await semaphore.acquire()
            else:
                await semaphore.acquire()
        except asyncio.TimeoutError:
            raise DeadlineExceededError(
                f"export deadline reached while waiting for one of {self.max_concurrent} export slots"
            ) from None
        self.in_flight += 1
        try:
            return await self.inner.send(request, deadline)
        finally:
            self.in_flight -= 1
            self._semaphore.release()

    async def shutdown(self) -> None:
        await self.inner.shutdown()
