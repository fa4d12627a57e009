"""Checks of single argument values, in one place: Python's ``bool`` is an ``int``, and ``True`` is never a count,
a port or a number of seconds.

The predicates (:func:`is_int`, :func:`is_number`) say whether a value has the type, ``bool`` excluded, for callers
that phrase their own errors (the model raises ``TypeError``, the configuration names environment variables). The
checkers raise a :class:`~aiotlp.ConfigurationError` whose message names the parameter and the value refused
(never use them on a secret). Pure: no I/O, below every layer.
"""

from __future__ import annotations

import math
from typing import TypeGuard

from ._exceptions import ConfigurationError

__all__ = ["int_at_least", "is_int", "is_number", "optional_seconds", "positive_int", "seconds"]


def is_int(value: object) -> TypeGuard[int]:
    """An ``int`` that is not a ``bool``."""
    return isinstance(value, int) and not isinstance(value, bool)


def is_number(value: object) -> TypeGuard[int | float]:
    """An ``int`` (not a ``bool``) or a ``float``."""
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def int_at_least(value: object, name: str, minimum: int, *, what: str | None = None) -> int:
    """``value`` when it is an int ``>= minimum``; else ``"<name> must be <what>, got <value>"``."""
    if not is_int(value) or value < minimum:
        raise ConfigurationError(f"{name} must be {what or f'an int >= {minimum}'}, got {value!r}")
    return value


def positive_int(value: object, name: str) -> int:
    """``value`` when it is an int ``>= 1``; else ``"<name> must be a positive int, got <value>"``."""
    return int_at_least(value, name, 1, what="a positive int")


def seconds(value: object, name: str, *, finite: bool = True, zero: bool = False) -> float:
    """A duration in seconds, as a float: positive (or ``>= 0`` with ``zero``), finite unless ``finite=False``
    (NaN is always refused)."""
    if not (is_number(value) and (value >= 0 if zero else value > 0) and (not finite or value < math.inf)):
        raise ConfigurationError(f"{name} must be {_seconds_words(finite=finite, zero=zero)}, got {value!r}")
    return float(value)


def optional_seconds(value: object, name: str) -> float | None:
    """``None``, or a non-negative, finite number of seconds (a timeout: ``0`` means do not wait)."""
    if value is None:
        return None
    if not (is_number(value) and 0 <= value < math.inf):
        raise ConfigurationError(f"{name} must be None or {_seconds_words(finite=True, zero=True)}, got {value!r}")
    return float(value)


def _seconds_words(*, finite: bool, zero: bool) -> str:
    return f"a {'non-negative' if zero else 'positive'}{', finite' if finite else ''} number of seconds"
