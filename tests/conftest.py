"""Test-wide settings: asyncio debug mode catches a blocked event loop; looptime must not leak loops; the fault
and user-path suites' summary table.

Private, on purpose: the ``encoder_implementation`` fixture switches the encoders between the pure-Python and the
compiled twins through ``aiotlp.encoding._compat``, as the house rule asks (every encoding test on both).
"""

from __future__ import annotations

import asyncio
import datetime
import json
import logging
import os
import warnings
from collections.abc import AsyncIterator, Generator
from dataclasses import asdict
from typing import Any

import pytest
from tests.faults.summary import Figure, render


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_pyfunc_call(pyfuncitem: pytest.Function) -> Generator[None, Any, Any]:
    if pyfuncitem.get_closest_marker("asyncio") is None:  # a sync test (pytest-asyncio marks async ones)
        # looptime's hook calls get_event_loop() for every test, which creates (and leaks) a loop in sync ones.
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            asyncio.set_event_loop(None)
    return (yield)


class _SlowCallbacks(logging.Handler):
    """Collects asyncio debug mode's "Executing <callback> took N seconds" reports."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.reports: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        message = record.getMessage()
        if _IN_TEST_CALL and message.startswith("Executing ") and " took " in message:
            self.reports.append(message)


# Only the test body counts: fixtures that start servers (grpc binds synchronously) may block their loop.
_IN_TEST_CALL = False


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item: pytest.Item) -> Generator[None, Any, Any]:
    global _IN_TEST_CALL
    _IN_TEST_CALL = True
    try:
        return (yield)
    finally:
        _IN_TEST_CALL = False


SLOW_CALLBACK_SECONDS = 0.5


@pytest.fixture(autouse=True)
async def _event_loop_debug(request: pytest.FixtureRequest) -> AsyncIterator[None]:
    """Every async test runs its loop in debug mode: a callback that blocks the loop fails the test."""
    loop = asyncio.get_running_loop()
    loop.set_debug(True)
    loop.slow_callback_duration = SLOW_CALLBACK_SECONDS
    handler = _SlowCallbacks()
    logger = logging.getLogger("asyncio")
    logger.addHandler(handler)
    try:
        yield
    finally:
        logger.removeHandler(handler)
    if handler.reports and request.node.get_closest_marker("allow_slow_callbacks") is None:
        pytest.fail("the event loop was blocked:\n" + "\n".join(handler.reports[:5]), pytrace=False)


@pytest.fixture(scope="session")
def pki(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """Certificates made by trustme: a server certificate for 127.0.0.1 and localhost, a client certificate, their
    CA (PEM bytes and a file), and an unrelated CA (a file) for the wrong-CA cases."""
    import trustme

    ca = trustme.CA()
    directory = tmp_path_factory.mktemp("pki")
    server = ca.issue_cert("127.0.0.1", "localhost")
    client = ca.issue_cert("client.example")
    paths = {
        "ca": directory / "ca.pem",
        "other_ca": directory / "other-ca.pem",
        "client_cert": directory / "client.pem",
        "client_key": directory / "client.key",
    }
    ca.cert_pem.write_to_path(str(paths["ca"]))
    trustme.CA().cert_pem.write_to_path(str(paths["other_ca"]))
    client.cert_chain_pems[0].write_to_path(str(paths["client_cert"]))
    client.private_key_pem.write_to_path(str(paths["client_key"]))
    # bad server certificates from the same CA, each wrong in one way only (the fault suite's TLS cases)
    expired = ca.issue_cert(
        "127.0.0.1",
        "localhost",
        not_before=datetime.datetime(2000, 1, 1, tzinfo=datetime.timezone.utc),
        not_after=datetime.datetime(2001, 1, 1, tzinfo=datetime.timezone.utc),
    )
    wrong_host = ca.issue_cert("wrong.example")
    return {
        "server_cert": b"".join(p.bytes() for p in server.cert_chain_pems),
        "server_key": server.private_key_pem.bytes(),
        "ca_pem": ca.cert_pem.bytes(),
        "expired_cert": b"".join(p.bytes() for p in expired.cert_chain_pems),
        "expired_key": expired.private_key_pem.bytes(),
        "wrong_host_cert": b"".join(p.bytes() for p in wrong_host.cert_chain_pems),
        "wrong_host_key": wrong_host.private_key_pem.bytes(),
        **{name: str(path) for name, path in paths.items()},
    }


@pytest.fixture(params=["python", "c"])
def encoder_implementation(request: pytest.FixtureRequest) -> Generator[str, None, None]:
    """Run the test with the pure-Python protobuf encoder, then with the compiled accelerator (``"c"``; skipped,
    with the reason, when it is not built or ``AIOTLP_NO_EXTENSIONS`` is set). See aiotlp.encoding._compat."""
    from aiotlp.encoding import _compat

    choice = request.param
    if choice == "c" and _compat.speedups is None:
        pytest.skip("the compiled accelerator is not available" + (" (AIOTLP_NO_EXTENSIONS)" * _compat.NO_EXTENSIONS))
    previous = _compat.implementation()
    _compat.use(choice)
    try:
        yield choice
    finally:
        _compat.use(previous)


# -- the summary table of the fault and user-path suites (tests/faults/summary.py) ---------------------------

_FIGURES: dict[str, Figure] = {}


_SUITES = ("tests/faults/", "tests/user_paths/")


def _in_suite(nodeid: str) -> bool:
    return nodeid.replace("\\", "/").startswith(_SUITES)


def _family(item: Any) -> str:
    """The module's name without ``test_``; user-path rows say so (``user path: lifecycles``)."""
    name = item.module.__name__.rpartition(".")[2].removeprefix("test_")
    return f"user path: {name}" if ".user_paths." in item.module.__name__ else name


@pytest.fixture
def figure(request: pytest.FixtureRequest) -> Figure:
    """The row of the summary table for this test; its outcome is filled in from the test's report."""
    node = request.node
    row = Figure(scenario=node.name, family=_family(node))
    _FIGURES[node.nodeid] = row
    return row


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Generator[None, Any, Any]:
    report = yield
    if not _in_suite(item.nodeid):
        return report
    row = _FIGURES.get(item.nodeid)
    if report.skipped and (row is None or not row.outcome):
        row = row or Figure(scenario=item.name, family=_family(item))
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
    terminalreporter.write_sep("=", "fault and user-path suite summary")
    terminalreporter.write_line(render(rows))
    target = os.environ.get("AIOTLP_FAULTS_REPORT")
    if target:
        with open(target, "w") as out:
            json.dump([asdict(row) for row in rows], out, indent=1)
