"""Fixtures of the user-path tests: a FakeCollector on the test's loop (the applications run in child processes)."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator

import pytest

from aiotlp.testing import FakeCollector


@pytest.fixture
async def collector() -> AsyncIterator[FakeCollector]:
    async with FakeCollector() as fake:
        yield fake


@pytest.fixture(autouse=True)
def _no_exporter_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """A clean environment: the tests set the OTEL_* and AIOTLP_QUEUE_DIR variables they mean to."""
    for name in list(os.environ):
        if name.startswith(("OTEL_", "AIOTLP_QUEUE", "AIOTLP_EXPORTER")):
            monkeypatch.delenv(name)
