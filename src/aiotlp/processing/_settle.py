"""How an ended export settles its batch: what the exporter said (or how the call ended) -> counts and reasons.

Pure: no event loop, no lock, no logging. :func:`settle` turns the end of one export call of ``weight`` items
into a :class:`Settlement` whose ``accepted + rejected + failed + too_large + invalid == weight``, whatever the
exporter returned: nothing given to the exporter goes uncounted, and nothing is counted twice.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Final

from .._exceptions import AttemptTimeoutError, DeadlineExceededError, QueueFullError, QueueWriteError
from ..export import ExportResult

__all__ = ["MAX_ERROR_LENGTH", "Settlement", "describe", "drop_reason", "error_type", "reconcile", "settle"]

#: Error texts kept in the ledger and in log lines are cut to this many characters.
MAX_ERROR_LENGTH: Final = 300


def describe(error: BaseException) -> str:
    """``"<class>: <message>"``, cut to :data:`MAX_ERROR_LENGTH`."""
    text = f"{type(error).__name__}: {error}"
    return text if len(text) <= MAX_ERROR_LENGTH else text[: MAX_ERROR_LENGTH - 3] + "..."


def error_type(error: BaseException | None) -> str:
    """The ``error.type`` of a failed export: ``timeout`` for deadlines, else the error's class name."""
    if error is None:
        return "_OTHER"
    if isinstance(error, (DeadlineExceededError, AttemptTimeoutError, asyncio.TimeoutError)):
        return "timeout"
    return type(error).__name__


def drop_reason(error: BaseException | None) -> str:
    """Why the exporter dropped items (``ExportResult.dropped``): its disk queue was full or failed to write,
    or (otherwise) they were too large for a request."""
    if isinstance(error, QueueFullError):
        return "disk_full"
    if isinstance(error, QueueWriteError):
        return "disk_error"
    return "too_large"


def reconcile(result: ExportResult, weight: int) -> tuple[int, int, int, int]:
    """``(accepted, rejected, failed, too_large)`` adding up to exactly ``weight``.

    An exporter that accounts for fewer items than it was given gets the rest counted as failed; one that
    accounts for more is clamped (accepted first, then rejected, too large, failed).
    """
    left = weight
    parts = []
    for value in (result.accepted, result.rejected, result.dropped, result.failed):
        part = min(max(value, 0), left)
        parts.append(part)
        left -= part
    accepted, rejected, too_large, failed = parts
    return accepted, rejected, failed + left, too_large


@dataclass(slots=True)
class Settlement:
    """The settled counts of one batch of ``weight`` items, and what to report about it.

    ``outcomes`` maps each ``error.type`` (and ``rejected``, ``invalid`` and the drop reason) to its items, for
    the self-metrics; ``error`` is the line for the ledger and the log (None when all was accepted);
    ``drop_reason`` names what ``too_large`` counts (``too_large``, ``disk_full`` or ``disk_error``).
    """

    weight: int
    accepted: int = 0
    rejected: int = 0
    failed: int = 0
    too_large: int = 0
    invalid: int = 0
    error: str | None = None
    error_type: str | None = None
    drop_reason: str = "too_large"
    outcomes: dict[str, int] = field(default_factory=dict)


def settle(
    weight: int,
    *,
    cancelled: bool = False,
    cancel_reason: str | None = None,
    exception: BaseException | None = None,
    result: object = None,
) -> Settlement:
    """The settlement of an export call of ``weight`` items that was ``cancelled`` (by the processor when it
    gave a ``cancel_reason``: a timeout), raised ``exception``, or returned ``result``."""
    if type(result) is ExportResult and result.accepted >= weight and not cancelled and exception is None:
        # the common end, every item accepted: what the general path below makes of it (nothing to reconcile);
        # any other result, a subclass of ExportResult included, takes that path
        return Settlement(weight, accepted=weight)
    s = Settlement(weight, failed=weight)
    if cancelled:
        s.error_type = "timeout" if cancel_reason else "cancelled"
        s.error = f"TimeoutError: {cancel_reason}" if cancel_reason else "CancelledError: cancelled"
    elif exception is not None:
        s.error_type = type(exception).__name__
        s.error = describe(exception)
    elif not isinstance(result, ExportResult):
        s.error_type = "_OTHER"
        s.error = f"TypeError: the exporter returned {type(result).__name__}, not an ExportResult"
    else:
        _from_result(s, result)
    if s.failed:
        assert s.error_type is not None
        s.outcomes[s.error_type] = s.outcomes.get(s.error_type, 0) + s.failed
    return s


def _from_result(s: Settlement, result: ExportResult) -> None:
    s.accepted, s.rejected, s.failed, too_large = reconcile(result, s.weight)
    # the exporter's drops that cannot be encoded at all: a reason of their own, not too_large
    s.invalid = invalid = min(max(result.invalid, 0), too_large)
    s.too_large = too_large = too_large - invalid
    failed = s.failed
    if s.rejected:
        s.outcomes["rejected"] = s.rejected
        s.error_type = "rejected"
        error = f"partial success, {s.rejected} rejected: {result.error_message or '(no message)'}"
        s.error = error[:MAX_ERROR_LENGTH]
    if invalid:
        s.outcomes["invalid"] = invalid
        s.error_type = "invalid"
    if too_large:
        s.drop_reason = drop_reason(result.error)
        s.outcomes[s.drop_reason] = too_large
        s.error_type = s.drop_reason
    if failed:
        s.error_type = error_type(result.error)
    if too_large or failed or invalid:
        if result.error is not None:
            s.error = describe(result.error)
        else:
            parts = []
            if failed:
                parts.append(f"{failed} items failed")
            if too_large:
                parts.append(f"{too_large} items dropped by the exporter ({s.drop_reason})")
            if invalid:
                parts.append(f"{invalid} items dropped by the exporter (invalid: cannot be encoded)")
            s.error = ", ".join(parts)
