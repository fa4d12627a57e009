"""Fixtures of the aiotlp.sdk tests: a clean OTEL_* environment (the official exporters read os.environ), and a
FakeCollector."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator

import pytest

from aiotlp.testing import FakeCollector


@pytest.fixture(autouse=True)
def _no_otel_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.startswith("OTEL_"):
            monkeypatch.delenv(name)


@pytest.fixture
async def collector() -> AsyncIterator[FakeCollector]:
    async with FakeCollector() as fake:
        yield fake
