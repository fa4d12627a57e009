"""Fixtures of the user-path tests: a FakeCollector on the test's loop (the applications run in child processes)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from aiotlp.testing import FakeCollector


@pytest.fixture
async def collector() -> AsyncIterator[FakeCollector]:
    async with FakeCollector() as fake:
        yield fake
