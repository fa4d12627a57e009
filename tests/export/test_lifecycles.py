"""One standalone OTLPExporter through the lifecycles real programs give it, over every protocol and gRPC client.

``asyncio.run`` twice, threads that each run a loop (in turn, and at once), a loop closed without
``shutdown_asyncgens()``, a loop driven in turns, a loop left open at exit, and ``os.fork()`` after the first export
(gunicorn ``--preload``), with the parent's loop closed or still open, and a child that exits without ``shutdown()``; a
fleet (a dead collector listed first, so every export fails over); the disk queue in front (its delivery moves to the
next loop; a forked child may not use the parent's queue: its export fails, counted). Each runs in a child Python
process (``lifecycle_child.py``; asyncio debug mode, warnings as errors) that exports to a FakeCollector served by the
test's loop. The test checks every export's :class:`~aiotlp.ExportResult`, the spans the collector received, a fast
shutdown, a clean exit, and that the child printed nothing else: no traceback, no ResourceWarning, no "Event loop is
closed".
"""

from __future__ import annotations

import asyncio
import os
import re
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from aiotlp.testing import FakeCollector, free_port

CHILD = Path(__file__).with_name("lifecycle_child.py")
EXIT_BOUND = 60.0  # seconds a child process may take, start-up included
SHUTDOWN_BOUND = 2.0  # seconds a shutdown may take (a hung grpc channel took 10)
#: fork scenarios run this many times per variant (AIOTLP_FORK_RUNS=20 for a local soak; 20 were clean)
FORK_RUNS = int(os.environ.get("AIOTLP_FORK_RUNS", "2"))

VARIANTS = {
    "http-protobuf": ("http/protobuf", "h2"),
    "http-json": ("http/json", "h2"),
    "grpc-h2": ("grpc", "h2"),
    "grpc-grpcio": ("grpc", "grpcio"),
}

#: scenario -> the exports it makes (each one span named after its step), in any order
SCENARIOS = {
    "run_twice": ["run-1", "run-2", "run-3"],
    "threads_in_turn": ["thread-1", "thread-2", "main"],
    "threads_at_once": [*(f"a-{i}" for i in range(5)), *(f"b-{i}" for i in range(5)), "main"],
    "loop_closed": ["closed-loop", "after"],
    "loop_in_turns": ["turn-1", "other-loop", "turn-2", "turn-3"],
    "loop_left_open": ["open-1", "open-2"],
    "shutdown_elsewhere": ["left-open", "main"],
    "fork": ["parent-before", "child", "parent-after"],
    "fork_open_loop": ["parent-before", "child", "parent-after"],
    "fork_child_exits": ["parent-before", "child", "parent-after"],
    "fleet_run_twice": ["run-1", "run-2", "run-3"],
    "fleet_fork": ["parent-before", "child", "parent-after"],
    "durable_run_twice": ["run-1", "run-2", "run-3"],
    "durable_loop_closed": ["closed-loop", "after"],
    "durable_other_loop": ["delivery-loop", "other-loop", "delivery-loop-again"],
    "durable_fork": ["parent-before", "child", "parent-after"],
}
#: exports expected to fail (as "accepted failed error"); they send nothing
FAILING = {
    ("durable_fork", "child"): "0 1 PermanentError",
    ("durable_other_loop", "other-loop"): "0 1 PermanentError",
}

_LINE = re.compile(r"(RESULT \S+ \d+ \d+ \S+|SHUTDOWN \S+ [\d.]+|CHILD -?\d+|OK)")
#: grpc core's own notice when the parent forks with a grpc.aio channel open (not an error)
_GRPC_FORK_NOTICE = re.compile(r"^I\d{4} [\d:.]+ +\d+ fork_posix\.cc:\d+\] Other threads are currently calling into")
#: the fleet's warning when it finds the dead collector down (once per event loop: each has its own fleet)
_FLEET_DOWN = re.compile(r"^collector http://127\.0\.0\.1:\d+(/v1/traces)? is down \(cannot connect to ")
#: the disk queue's warning when it refuses an export (logging's last-resort handler prints it)
_QUEUE_REFUSAL = re.compile(
    r"^the disk queue \S+ (belongs to process \d+, which this one was forked from|delivers on another event loop)"
)


@pytest.fixture
async def collector() -> AsyncIterator[FakeCollector]:
    async with FakeCollector() as collector:
        yield collector


async def run_child(scenario: str, endpoint: str, protocol: str, implementation: str) -> tuple[int, str]:
    # Debug mode and warnings as errors, as in a careful developer's run; a loop left open at exit is the
    # application's own ResourceWarning, so that one runs as programs usually do.
    flags = [] if scenario in ("loop_left_open", "shutdown_elsewhere") else ["-X", "dev", "-W", "error"]
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        *flags,
        str(CHILD),
        scenario,
        endpoint,
        protocol,
        implementation,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
        env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)},
    )
    try:
        output, _ = await asyncio.wait_for(process.communicate(), EXIT_BOUND)
    except asyncio.TimeoutError:
        process.kill()
        await process.wait()
        raise
    return process.returncode if process.returncode is not None else -1, output.decode(errors="replace")


def check_output(text: str, scenario: str) -> None:
    steps = SCENARIOS[scenario]
    results: dict[str, str] = {}
    for line in text.splitlines():
        if (
            _GRPC_FORK_NOTICE.match(line)
            or (scenario in ("durable_fork", "durable_other_loop") and _QUEUE_REFUSAL.match(line))
            or (scenario.startswith("fleet") and _FLEET_DOWN.match(line))
        ):
            continue
        assert _LINE.fullmatch(line), f"unexpected output {line!r} in:\n{text}"
        if line.startswith("RESULT "):
            _, step, accepted, failed, error = line.split()
            results[step] = f"{accepted} {failed} {error}"
        elif line.startswith("SHUTDOWN "):
            assert float(line.split()[2]) < SHUTDOWN_BOUND, text
        elif line.startswith("CHILD "):
            assert line == "CHILD 0", text
    # every export accepted (one span each), but those that must fail
    assert results == {step: FAILING.get((scenario, step), "1 0 -") for step in steps}, text
    assert text.rstrip().endswith("OK"), text


@pytest.mark.parametrize("variant", list(VARIANTS))
@pytest.mark.parametrize("scenario", list(SCENARIOS))
async def test_one_exporter_through_a_lifecycle(scenario: str, variant: str, collector: FakeCollector) -> None:
    if scenario.startswith("fork") and not hasattr(os, "fork"):
        pytest.skip("os.fork is POSIX only")
    protocol, implementation = VARIANTS[variant]
    endpoint = collector.grpc_endpoint if protocol == "grpc" else collector.http_endpoint
    if scenario.startswith("fleet"):  # a collector that is down (nothing listens there), then the live one
        endpoint = f"http://127.0.0.1:{free_port()}," + endpoint
    sent = sorted(step for step in SCENARIOS[scenario] if (scenario, step) not in FAILING)
    for _ in range(FORK_RUNS if "fork" in scenario else 1):
        collector.clear()
        returncode, output = await run_child(scenario, endpoint, protocol, implementation)
        assert returncode == 0, output
        check_output(output, scenario)
        assert sorted(span.name for span in collector.spans()) == sent
        if "fork" in scenario and "durable" not in scenario:  # the child's span came from the child's process
            pids = {
                request.message.resource_spans[0].resource.attributes[0].value.int_value: [
                    span.name for scope in request.message.resource_spans[0].scope_spans for span in scope.spans
                ]
                for request in collector.requests()
            }
            assert len(pids) == 2 and ["child"] in pids.values(), pids
