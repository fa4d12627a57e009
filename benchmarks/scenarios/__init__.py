"""The harness's scenarios, one module each; every module has ``async def run(ctx: Context) -> list[Sample]``."""

from __future__ import annotations

import importlib
from collections.abc import Awaitable, Callable

from ._common import Context, Sample

__all__ = ["NAMES", "Context", "Sample", "load"]

NAMES = (
    "encode",
    "receiver_ceiling",
    "sync_single",
    "async_loop",
    "batched_pipeline",
    "instrumented_app",
    "multiprocess",
    "wrapper_stack",
    "span_cost",
)


def load(name: str) -> Callable[[Context], Awaitable[list[Sample]]]:
    if name not in NAMES:
        raise ValueError(f"unknown scenario {name!r}; choose from {', '.join(NAMES)}")
    module = importlib.import_module(f"{__name__}.{name}")
    run: Callable[[Context], Awaitable[list[Sample]]] = module.run
    return run
