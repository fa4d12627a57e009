"""Fixtures of the aiotlp.sdk tests: a clean OTEL_* environment (the official exporters read os.environ), a
FakeCollector, the encoders' choice restored after a test that switches it, and the pure-Python encoders for a
test's length."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Iterator

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


@pytest.fixture
def restore_implementation() -> Iterator[None]:
    """The encoders' choice (``aiotlp.encoding._compat.use``) as it was before the test."""
    from aiotlp.encoding import _compat

    previous = _compat.implementation()
    try:
        yield
    finally:
        _compat.use(previous)


@pytest.fixture
def pure(restore_implementation: None) -> None:
    """The pure-Python encoders (``aiotlp.encoding._compat.use("python")``) for the test; the choice restored after."""
    from aiotlp.encoding import _compat

    _compat.use("python")
