"""Fixtures of the fault suite. Its summary table (the ``figure`` fixture, shared with the user-path suite) is
kept by ``tests/conftest.py``."""

from __future__ import annotations

import shutil
from collections.abc import AsyncIterator, Iterator

import pytest
from tests.faults._support import Namespace, namespace_unavailable

from aiotlp.testing import FakeCollector, Rotel

_NAMESPACE_PROBLEM: list[str | None] = []


# -- environments the scenarios need --------------------------------------------------------------------------


@pytest.fixture
def netns() -> Iterator[Namespace]:
    """A fresh network namespace with a veth to this one; skipped (reason printed) when the machine cannot."""
    if not _NAMESPACE_PROBLEM:
        _NAMESPACE_PROBLEM.append(namespace_unavailable())
    if _NAMESPACE_PROBLEM[0] is not None:
        pytest.skip(_NAMESPACE_PROBLEM[0])
    with Namespace() as namespace:
        yield namespace


@pytest.fixture
def nft(netns: Namespace) -> Namespace:
    """``netns``, where the ``nft`` command exists (``scripts/system-deps`` installs nftables)."""
    if shutil.which("nft") is None:
        pytest.skip("nftables is not installed (run scripts/system-deps as root)")
    return netns


@pytest.fixture
async def rotel() -> AsyncIterator[Rotel]:
    """The real rotel collector, dropping what it receives (blackhole), as a child process of this one."""
    async with Rotel() as collector:
        yield collector


@pytest.fixture
async def collector() -> AsyncIterator[FakeCollector]:
    async with FakeCollector() as fake:
        yield fake
