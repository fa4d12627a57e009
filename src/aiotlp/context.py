"""Trace context across asyncio tasks, executors and threads, and W3C ``traceparent`` / ``tracestate``.

OpenTelemetry's current span lives in a :mod:`contextvars` variable. asyncio copies the context into every task
(``create_task``, ``TaskGroup``, ``gather``) and ``asyncio.to_thread`` copies it into the worker thread, so the
current span follows on its own there. Two boundaries lose it:

* ``loop.run_in_executor(executor, fn)`` runs ``fn`` in the executor thread's own (empty) context;
* a plain ``threading.Thread(target=fn)`` starts with an empty context.

:func:`run_in_executor`, :func:`wrap` and :class:`ContextThread` carry the caller's context across them::

    with tracer.start_as_current_span("handler"):
        await aiotlp.context.run_in_executor(pool, blocking_io)   # blocking_io sees "handler" as its parent
        aiotlp.context.ContextThread(target=work).start()         # so does work

The W3C Trace Context header codec (:func:`format_traceparent`, :func:`parse_traceparent`) needs no
OpenTelemetry package; with the OpenTelemetry API installed, :func:`inject` and :func:`extract` use the globally
configured propagator, exactly as instrumentations do.
"""

from __future__ import annotations

import asyncio
import contextvars
import functools
import re
import threading
from collections.abc import Callable, Mapping, MutableMapping
from concurrent.futures import Executor
from dataclasses import dataclass
from typing import Any, ParamSpec, TypeVar

from ._exceptions import MissingExtraError

__all__ = [
    "ContextThread",
    "TraceParent",
    "extract",
    "format_traceparent",
    "inject",
    "parse_traceparent",
    "run_in_executor",
    "wrap",
]

P = ParamSpec("P")
R = TypeVar("R")


def wrap(fn: Callable[P, R]) -> Callable[P, R]:
    """Bind ``fn`` to a copy of the *current* context: wherever it runs later, it sees today's current span."""
    context = contextvars.copy_context()

    @functools.wraps(fn)
    def run(*args: P.args, **kwargs: P.kwargs) -> R:
        return context.run(fn, *args, **kwargs)

    return run


async def run_in_executor(executor: Executor | None, fn: Callable[..., R], *args: Any) -> R:
    """``loop.run_in_executor`` that keeps the caller's context (and so its current span)."""
    loop = asyncio.get_running_loop()
    context = contextvars.copy_context()
    return await loop.run_in_executor(executor, context.run, fn, *args)


class ContextThread(threading.Thread):
    """A :class:`threading.Thread` whose target runs in a copy of the context of the code that created it."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._context = contextvars.copy_context()

    def run(self) -> None:
        self._context.run(super().run)


# --- W3C Trace Context (https://www.w3.org/TR/trace-context/) ---------------------------------------------------

_TRACEPARENT = re.compile(r"^([0-9a-f]{2})-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})(-.*)?$")


@dataclass(frozen=True, slots=True)
class TraceParent:
    """A parsed ``traceparent`` header."""

    trace_id: bytes
    span_id: bytes
    flags: int
    version: int = 0

    @property
    def sampled(self) -> bool:
        return bool(self.flags & 0x01)


def format_traceparent(trace_id: bytes, span_id: bytes, flags: int = 0x01) -> str:
    """``00-<trace id>-<span id>-<flags>``; ids are 16 and 8 bytes, not all zero."""
    if len(trace_id) != 16 or not any(trace_id):
        raise ValueError("trace_id: must be 16 bytes, not all zero")
    if len(span_id) != 8 or not any(span_id):
        raise ValueError("span_id: must be 8 bytes, not all zero")
    if not 0 <= flags <= 0xFF:
        raise ValueError(f"flags: {flags} is outside 0..255")
    return f"00-{trace_id.hex()}-{span_id.hex()}-{flags:02x}"


def parse_traceparent(value: str) -> TraceParent | None:
    """Parse a ``traceparent`` header; ``None`` when it is invalid (the spec says: then start a new trace).

    Follows the spec's rules: lowercase hex only, version ``ff`` is invalid, version ``00`` has exactly four
    fields, a higher version may carry more after a ``-``, and all-zero ids are invalid.
    """
    match = _TRACEPARENT.match(value.strip())
    if match is None:
        return None
    version_hex, trace_hex, span_hex, flags_hex, rest = match.groups()
    version = int(version_hex, 16)
    if version == 0xFF or (version == 0 and rest is not None):
        return None
    trace_id, span_id = bytes.fromhex(trace_hex), bytes.fromhex(span_hex)
    if not any(trace_id) or not any(span_id):
        return None
    return TraceParent(trace_id=trace_id, span_id=span_id, flags=int(flags_hex, 16), version=version)


def _propagate() -> Any:
    try:
        from opentelemetry import propagate
    except ImportError:  # pragma: no cover - depends on the installed extras
        raise MissingExtraError("sdk", "opentelemetry-api") from None
    return propagate


def inject(carrier: MutableMapping[str, str], context: Any = None) -> MutableMapping[str, str]:
    """Write the current (or given) OpenTelemetry context into ``carrier`` (``traceparent``, ``tracestate``,
    ``baggage``: whatever the global propagator writes). Returns ``carrier``."""
    _propagate().inject(carrier, context=context)
    return carrier


def extract(carrier: Mapping[str, str], context: Any = None) -> Any:
    """Read an OpenTelemetry context from ``carrier``; use it with ``tracer.start_as_current_span(...,
    context=...)`` or ``opentelemetry.context.attach``."""
    return _propagate().extract(carrier, context=context)
