"""The optional hooks of the exporter (:class:`~aiotlp.export.ExporterHooks`), found once, called through one type.

A ``Protocol`` cannot say "this method may be missing", so the hooks an exporter has are looked up here, once,
when the processor is built (the one place that looks), and the rest of the processor calls them through
:class:`Hooks`, where a missing hook is ``None``.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from typing import Any, cast

from .._validate import is_int
from ..export import Exporter, ExporterHooks

__all__ = ["Hooks"]


@dataclass(frozen=True, slots=True)
class Hooks:
    """The :class:`~aiotlp.export.ExporterHooks` an exporter has; ``None`` for each it lacks."""

    start: Callable[[], None] | None = None
    detach_loop: Callable[[], Coroutine[Any, Any, None]] | None = None
    release_loop: Callable[[asyncio.AbstractEventLoop], None] | None = None
    force_flush: Callable[[float | None], Coroutine[Any, Any, bool]] | None = None
    exporter: object = None

    @classmethod
    def of(cls, exporter: Exporter) -> Hooks:
        """The hooks ``exporter`` has. ``force_flush`` counts only as a coroutine function (an SDK exporter's
        synchronous ``force_flush`` is not this hook)."""
        hooks = cast(ExporterHooks, exporter)
        flush = _callable(hooks, "force_flush")
        return cls(
            start=_callable(hooks, "start"),
            detach_loop=_callable(hooks, "detach_loop"),
            release_loop=_callable(hooks, "release_loop"),
            force_flush=flush if flush is not None and asyncio.iscoroutinefunction(flush) else None,
            exporter=exporter,
        )

    def retries(self) -> int | None:
        """The exporter's ``retries`` now, or None when it counts none (the attribute is read at each call)."""
        retries = getattr(self.exporter, "retries", None)
        return retries if is_int(retries) else None


def _callable(hooks: ExporterHooks, name: str) -> Callable[..., Any] | None:
    hook = getattr(hooks, name, None)
    return hook if callable(hook) else None
