"""OpenTelemetry's "suppress instrumentation" around the exporter's own network calls, without depending on it.

An instrumented HTTP or gRPC client (opentelemetry-instrumentation-aiohttp-client, -grpc, ...) would trace the
exporter's requests, and export those spans through the exporter again. Instrumentations skip a call when the
current OpenTelemetry context carries the suppression keys. aiotlp does not need ``opentelemetry-api``: the keys
are set only when ``opentelemetry.context`` is already imported (no instrumentation can be active otherwise),
so a process without OpenTelemetry pays one dictionary lookup per export.
"""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable
from typing import Any

__all__ = ["suppress"]

_cache: tuple[Any, Any] | None = None  # (the opentelemetry.context module, its suppressing Context)


def _suppressing(module: Any) -> Any:
    """A fresh context (not the caller's current span) with the suppression keys set, made once per module."""
    global _cache
    cache = _cache
    if cache is not None and cache[0] is module:
        return cache[1]
    context = module.Context()
    for name in ("_SUPPRESS_INSTRUMENTATION_KEY", "_SUPPRESS_HTTP_INSTRUMENTATION_KEY"):
        key = getattr(module, name, None)
        if key is not None:
            context = module.set_value(key, True, context)
    _cache = (module, context)
    return context


def suppress() -> Callable[[], object] | None:
    """Suppress OpenTelemetry instrumentation in the current context, if the OpenTelemetry API is imported.

    Returns what restores the context (call it when the network call is over, in the same task), or None when
    there was nothing to do. A function rather than a context manager: this runs once per request.
    """
    module = sys.modules.get("opentelemetry.context")
    if module is None or not hasattr(module, "attach"):
        return None
    return functools.partial(module.detach, module.attach(_suppressing(module)))
