"""Fixtures of the fault suite, and the summary table it prints at the end of a run.

Each scenario test takes the ``figure`` fixture and fills in what it held, survived, tried and lost; a skipped
scenario gets a row with its reason. The table is printed after the run (``pytest tests/faults``), and written
as JSON to ``$AIOTLP_FAULTS_REPORT`` when that is set (``python -m tests.faults.summary`` does it).
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import AsyncIterator, Generator, Iterator
from dataclasses import asdict
from typing import Any

import pytest
from tests.faults._support import Namespace, namespace_unavailable
from tests.faults.summary import Figure, render

from aiotlp.testing import FakeCollector, Rotel

_FIGURES: dict[str, Figure] = {}
_NAMESPACE_PROBLEM: list[str | None] = []


def _in_suite(nodeid: str) -> bool:
    return nodeid.replace("\\", "/").startswith("tests/faults/")


@pytest.fixture
def figure(request: pytest.FixtureRequest) -> Figure:
    """The row of the summary table for this test; its outcome is filled in from the test's report."""
    node = request.node
    family = node.module.__name__.rpartition(".")[2].removeprefix("test_")
    row = Figure(scenario=node.name, family=family)
    _FIGURES[node.nodeid] = row
    return row


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Generator[None, Any, Any]:
    report = yield
    if not _in_suite(item.nodeid):
        return report
    row = _FIGURES.get(item.nodeid)
    if report.skipped and (row is None or not row.outcome):
        family = item.module.__name__.rpartition(".")[2].removeprefix("test_")  # type: ignore[attr-defined]
        row = row or Figure(scenario=item.name, family=family)
        if hasattr(report, "wasxfail"):
            row.outcome = "xfail (known bug): " + report.wasxfail.removeprefix("reason: ")
        else:
            reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else str(report.longrepr)
            row.outcome = "skipped: " + reason.removeprefix("Skipped: ")
        _FIGURES[item.nodeid] = row
    elif row is not None and report.when == "call":
        row.outcome = "passed" if report.passed else "FAILED"
    elif row is not None and report.failed and not row.outcome:
        row.outcome = "FAILED"
    return report


def pytest_terminal_summary(terminalreporter: Any) -> None:
    rows = [row for row in _FIGURES.values() if row.outcome]
    if not rows:
        return
    terminalreporter.write_sep("=", "fault suite summary")
    terminalreporter.write_line(render(rows))
    target = os.environ.get("AIOTLP_FAULTS_REPORT")
    if target:
        with open(target, "w") as out:
            json.dump([asdict(row) for row in rows], out, indent=1)


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
