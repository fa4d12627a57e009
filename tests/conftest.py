"""Test-wide settings: asyncio debug mode catches a blocked event loop; looptime must not leak loops."""

from __future__ import annotations

import asyncio
import warnings
from collections.abc import Generator
from typing import Any

import pytest


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_pyfunc_call(pyfuncitem: pytest.Function) -> Generator[None, Any, Any]:
    if pyfuncitem.get_closest_marker("asyncio") is None:  # a sync test (pytest-asyncio marks async ones)
        # looptime's hook calls get_event_loop() for every test, which creates (and leaks) a loop in sync ones.
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            asyncio.set_event_loop(None)
    return (yield)
