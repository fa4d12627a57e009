"""Log lines that may repeat at request rate are rate-limited: one line per interval, with a count of the rest.

Below every layer (export, processing and durable all log at request rate), so any of them may import it."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

__all__ = ["RateLimitedLogger"]


class RateLimitedLogger:
    """Logs at most one record per ``interval`` seconds; the next one says how many were suppressed."""

    def __init__(
        self,
        logger: logging.Logger,
        level: int,
        *,
        interval: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.logger = logger
        self.level = level
        self.interval = interval
        self._clock = clock
        self._next = 0.0
        self.suppressed = 0

    def log(self, message: str, *args: object) -> bool:
        """Log ``message % args`` unless one was logged less than ``interval`` ago; return whether it was."""
        now = self._clock()
        if now < self._next:
            self.suppressed += 1
            return False
        self._next = now + self.interval
        if self.suppressed:
            message += " (%d similar messages suppressed)"
            args = (*args, self.suppressed)
            self.suppressed = 0
        self.logger.log(self.level, message, *args)
        return True
