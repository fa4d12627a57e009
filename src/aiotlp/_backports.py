"""Backports: what newer Pythons have and the oldest supported one (3.10) lacks, in one place (asyncio.timeout)."""

from __future__ import annotations

import sys

if sys.version_info >= (3, 11):
    from asyncio import timeout, timeout_at
else:  # pragma: no cover - exercised on 3.10 only
    from async_timeout import timeout, timeout_at

__all__ = ["timeout", "timeout_at"]
