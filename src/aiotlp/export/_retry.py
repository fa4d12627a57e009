"""Retry: exponential backoff with jitter, as the OTLP specification asks.

A retryable error (see :mod:`aiotlp.encoding` for the HTTP and gRPC tables) is retried after
``max(backoff with jitter, the server's delay)``; any other error ends at once. A sleep that would end past the
deadline is not started: the export fails with :class:`DeadlineExceededError` straight away. ``shutdown()``
interrupts a sleep, and the request fails with :class:`ExporterShutdownError`.
"""

from __future__ import annotations

import asyncio
import random
from dataclasses import dataclass

from .._backports import timeout
from .._exceptions import (
    ConfigurationError,
    DeadlineExceededError,
    ExporterShutdownError,
    RetriesExhaustedError,
    RetryableError,
)
from .._validate import is_int, is_number
from ..encoding import PartialSuccess
from ._types import ExportRequest, Sender

__all__ = ["Retry", "RetryPolicy"]


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """How to retry. Delays are in seconds.

    The n-th retry waits ``min(initial_backoff * multiplier**(n-1), max_backoff)``, scaled by a random factor in
    ``[1 - jitter, 1 + jitter]``, or the server's delay if that is longer. ``max_attempts=None`` retries until
    the deadline; ``max_attempts=1`` disables retries.
    """

    initial_backoff: float = 1.0
    max_backoff: float = 32.0
    multiplier: float = 2.0
    jitter: float = 0.2
    max_attempts: int | None = None

    def __post_init__(self) -> None:
        for name in ("initial_backoff", "max_backoff", "multiplier", "jitter"):
            value = getattr(self, name)
            if not is_number(value):
                raise ConfigurationError(f"{name} must be a number, got {type(value).__name__}")
        if not self.initial_backoff >= 0:
            raise ConfigurationError(f"initial_backoff must be >= 0 seconds, got {self.initial_backoff!r}")
        if not self.max_backoff >= self.initial_backoff:
            raise ConfigurationError(
                f"max_backoff ({self.max_backoff!r}) must be >= initial_backoff ({self.initial_backoff!r})"
            )
        if not self.multiplier >= 1:
            raise ConfigurationError(f"multiplier must be >= 1, got {self.multiplier!r}")
        if not 0 <= self.jitter <= 1:
            raise ConfigurationError(f"jitter must be between 0 and 1, got {self.jitter!r}")
        if self.max_attempts is not None and (not is_int(self.max_attempts) or self.max_attempts < 1):
            raise ConfigurationError(f"max_attempts must be a positive int or None, got {self.max_attempts!r}")

    def backoff(self, retry: int, rng: random.Random) -> float:
        """The delay before retry number ``retry`` (1-based), jitter included."""
        base = min(self.initial_backoff * self.multiplier ** (retry - 1), self.max_backoff)
        if self.jitter:
            base *= 1 + rng.uniform(-self.jitter, self.jitter)
        return base


class Retry:
    """Wraps a :class:`Sender`; retries retryable errors per ``policy`` until success or the deadline."""

    def __init__(self, inner: Sender, policy: RetryPolicy | None = None, *, rng: random.Random | None = None) -> None:
        self.inner = inner
        self.policy = policy if policy is not None else RetryPolicy()
        self._rng = rng if rng is not None else random.Random()
        self._closed = asyncio.Event()  # asyncio >= 3.10 binds the loop on first wait, not here
        self.retries = 0
        """Retries made so far (attempts beyond the first), for statistics."""

    @property
    def closed(self) -> bool:
        """Whether :meth:`interrupt` (or :meth:`shutdown`) was called: no attempt starts any more."""
        return self._closed.is_set()

    async def send(self, request: ExportRequest, deadline: float) -> PartialSuccess:
        if self._closed.is_set():
            raise ExporterShutdownError("the exporter was shut down before the request was sent")
        try:
            return await self.inner.send(request, deadline)
        except RetryableError as exc:
            last = exc
        return await self.after(request, deadline, last)

    async def after(self, request: ExportRequest, deadline: float, last: RetryableError) -> PartialSuccess:
        """The rest of :meth:`send` once its first attempt failed with ``last``: wait, try again, until success, the
        last attempt allowed or the deadline. (The sender stack's one-frame path makes the first attempt itself.)"""
        loop = asyncio.get_running_loop()
        policy = self.policy
        attempt = 1
        while True:
            if policy.max_attempts is not None and attempt >= policy.max_attempts:
                raise RetriesExhaustedError(
                    f"gave up after {attempt} attempts: {last.message}", last=last, attempts=attempt
                ) from last
            delay = policy.backoff(attempt, self._rng)
            if last.retry_after is not None:
                delay = max(delay, last.retry_after)
            remaining = deadline - loop.time()
            if delay >= remaining:
                raise DeadlineExceededError(
                    f"export deadline reached after {attempt} attempts "
                    f"(next retry in {delay:.3g}s, {max(remaining, 0.0):.3g}s left): {last.message}",
                    last=last,
                    attempts=attempt,
                ) from last
            self.retries += 1
            if await _wait_closed(self._closed, delay):
                raise ExporterShutdownError(
                    f"the exporter was shut down while waiting to retry: {last.message}"
                ) from last
            attempt += 1
            try:
                return await self.inner.send(request, deadline)
            except RetryableError as exc:
                last = exc

    def interrupt(self) -> None:
        """End every backoff sleep now; requests waiting to retry fail with ExporterShutdownError."""
        self._closed.set()

    async def shutdown(self) -> None:
        self._closed.set()
        await self.inner.shutdown()


async def _wait_closed(closed: asyncio.Event, delay: float) -> bool:
    """Sleep ``delay`` seconds, or less if ``closed`` is set; return whether it was set."""
    if closed.is_set():
        return True
    try:
        async with timeout(delay):
            await closed.wait()
    except asyncio.TimeoutError:
        return False
    return True
