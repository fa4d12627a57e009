"""Timeout: bound each attempt by ``attempt_timeout`` and by the export deadline, whichever comes first."""

from __future__ import annotations

import asyncio

from .._backports import timeout_at
from .._exceptions import AttemptTimeoutError, ConfigurationError
from .._validate import is_number
from ..encoding import PartialSuccess
from ._types import ExportRequest, Sender

__all__ = ["Timeout"]


class Timeout:
    """Wraps a :class:`Sender`; an attempt that runs too long is cancelled and raises :class:`AttemptTimeoutError`.

    The inner sender is given the earlier of the two deadlines, so a transport can also pass it on to the
    server (gRPC's ``grpc-timeout``). ``attempt_timeout=None`` bounds attempts by the export deadline only.
    """

    def __init__(self, inner: Sender, attempt_timeout: float | None = None) -> None:
        if attempt_timeout is not None and (not is_number(attempt_timeout) or not attempt_timeout > 0):
            raise ConfigurationError(f"attempt_timeout must be > 0 seconds or None, got {attempt_timeout!r}")
        self.inner = inner
        self.attempt_timeout = attempt_timeout

    async def send(self, request: ExportRequest, deadline: float) -> PartialSuccess:
        loop = asyncio.get_running_loop()
        by_attempt = self.attempt_timeout is not None and loop.time() + self.attempt_timeout < deadline
        if by_attempt:
            deadline = loop.time() + self.attempt_timeout  # type: ignore[operator]
        if deadline <= loop.time():
            raise AttemptTimeoutError("no time left for another attempt before the export deadline")
        try:
            async with timeout_at(deadline):
                return await self.inner.send(request, deadline)
        except asyncio.TimeoutError:
            limit = f"its {self.attempt_timeout:.3g}s timeout" if by_attempt else "the export deadline"
            raise AttemptTimeoutError(f"the attempt was cancelled at {limit}") from None

    async def shutdown(self) -> None:
        await self.inner.shutdown()
