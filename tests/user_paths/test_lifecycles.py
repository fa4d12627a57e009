"""The SDK batch processors under the event-loop lifecycles real programs have (issue 12, item 3).

Each case runs tests/user_paths/lifecycle_child.py in a child process: the application makes its provider and
aiotlp's processor (or, side by side, the SDK's own processor over the same aiotlp exporter), ends its spans or
log records under one lifecycle (``asyncio.run``, once or twice; ``run_until_complete`` with the loop left open,
or driven in turns with ``force_flush()`` / ``shutdown()`` between them; ``loop=`` a loop that never runs, a
closed one, or one running in another thread; plain threads; a loop in another thread, left running or stopped;
``os.fork()`` after the first export, the worker running its own ``asyncio.run``), and mostly exits without
``shutdown()`` (the provider's ``atexit`` handler does it, as ``shutdown_on_exit=True`` is the default). The
collector runs in the test process. Every case checks:

* nothing was raised into the application: exit code 0, no traceback (nor a pending task destroyed, a coroutine
  never awaited) on stderr;
* the collector got exactly the items the application ended (distinct; at-least-once allows duplicates);
* with aiotlp's processor, its ``statistics()`` ledger after the provider's shutdown balances, with everything
  exported and nothing dropped or failed; where the application called ``force_flush``, it returned True;
* from plain threads over OTLP/HTTP protobuf (the bridge), batches went on aiotlp's native lane where it is built.

The default run covers each lifecycle once, each protocol / gRPC client and each signal at least once, and the
official processor beside aiotlp's where it applies; ``-m slow`` runs the whole cross product.
"""

from __future__ import annotations

import contextlib
import itertools
import os
from typing import Any

import pytest
from tests.faults.summary import Figure
from tests.user_paths.helpers import (
    HERE,
    SIGNALS,
    TRANSPORTS,
    child_env,
    delivery_problems,
    fail_if,
    has,
    ledger_problems,
    names,
    run_child,
    stderr_problems,
    warnings_of,
)

from aiotlp.testing import FakeCollector
from aiotlp.transport import lane_available

CHILD = HERE / "lifecycle_child.py"

SCENARIOS = (
    "asyncio.run",
    "asyncio.run-twice",
    "run_until_complete-left-open",
    "run_until_complete-turns-force_flush",
    "run_until_complete-turns-shutdown",
    "loop=never-runs",
    "loop=never-runs-force_flush",
    "loop=closed",
    "plain-threads",
    "loop-in-thread",
    "loop-in-thread-stopped",
    "loop=running-in-thread",
    "thread-asyncio.run",
    "fork-after-first-export",
)
LOOP_ARGUMENT = {s for s in SCENARIOS if s.startswith("loop=")}  # aiotlp's processors only: loop=
COMBOS = list(itertools.product(TRANSPORTS, SIGNALS))
COUNT = 100
GRPC_CLIENT = {"grpc-h2": "aiotlp-h2", "grpc-grpcio": "grpc-c/"}  # in the user-agent of each gRPC client
NEVER_RUNS_DELAY_MS = 500  # loop=never-runs: delivery is expected within this schedule delay (+ 3 s)


def _case(scenario: str, transport: str, signal: str, processor: str, count: int, slow: bool) -> Any:
    ident = f"{scenario}-{transport}-{signal}" + ("-official" if processor == "official" else "")
    ident += f"-{count}" if count != COUNT else ""
    marks = [pytest.mark.slow] if slow else []
    if scenario.startswith("fork"):
        marks.append(pytest.mark.skipif(not hasattr(os, "fork"), reason="os.fork is POSIX only"))
    return pytest.param(scenario, transport, signal, processor, count, id=ident, marks=marks)


def _cases() -> list[Any]:
    default: set[tuple[str, str, str, str, int]] = set()
    for n, scenario in enumerate(SCENARIOS):  # each lifecycle once, the transports and signals in turn
        transport, signal = COMBOS[n % len(COMBOS)]
        default.add((scenario, transport, signal, "aiotlp", COUNT))
        if scenario not in LOOP_ARGUMENT:
            default.add((scenario, transport, signal, "official", COUNT))
    default.add(("asyncio.run", "grpc-grpcio", "logs", "aiotlp", COUNT))  # grpcio where the rest works today
    default.add(("fork-after-first-export", "grpc-grpcio", "traces", "aiotlp", COUNT))  # gunicorn --preload
    # the reported figures: 0 of 100 and 512 of 1,000 delivered
    default.add(("run_until_complete-left-open", "grpc-h2", "traces", "aiotlp", COUNT))
    default.add(("run_until_complete-left-open", "http-protobuf", "traces", "aiotlp", 1000))
    # full batches from plain threads: sent on the native lane as they fill (issue 13)
    default.add(("plain-threads", "http-protobuf", "logs", "aiotlp", 1000))
    cases = []
    for scenario in SCENARIOS:
        for transport, signal in COMBOS:
            for processor in ("aiotlp", "official"):
                if processor == "official" and scenario in LOOP_ARGUMENT:
                    continue
                counts = (COUNT, 1000) if scenario in ("run_until_complete-left-open", "plain-threads") else (COUNT,)
                for count in counts:
                    key = (scenario, transport, signal, processor, count)
                    cases.append(_case(*key, slow=key not in default))
    return cases


@pytest.mark.parametrize(("scenario", "transport", "signal", "processor", "count"), _cases())
async def test_lifecycle_delivers_everything(
    collector: FakeCollector, figure: Figure, scenario: str, transport: str, signal: str, processor: str, count: int
) -> None:
    delay = NEVER_RUNS_DELAY_MS if scenario == "loop=never-runs" else 5000
    env = child_env(
        {
            "UP_HTTP": collector.http_endpoint,
            "UP_GRPC": collector.grpc_endpoint,
            "UP_TRANSPORT": transport,
            "UP_SIGNAL": signal,
            "UP_PROCESSOR": processor,
            "UP_COUNT": str(count),
            "UP_DELAY_MS": str(delay),
        }
    )

    async def on_hold() -> int:  # loop=never-runs: nothing flushes; the schedule delay must deliver
        with contextlib.suppress(TimeoutError):
            await collector.wait_for(has(count, signal), timeout=delay / 1000 + 3)
        return len(set(names(collector, signal)))

    run = await run_child(CHILD, [scenario], env, on_hold=on_hold)
    problems = stderr_problems(run)
    if run.held is not None and run.held < count:
        problems.append(f"{run.held} of {count} delivered within the schedule delay ({delay} ms) + 3 s")
    problems += delivery_problems(collector, signal, count)
    client = GRPC_CLIENT.get(transport)
    agents = {request.headers.get("user-agent", "") for request in collector.received}
    if client is not None and not any(client in agent for agent in agents):
        problems.append(f"not sent by the {transport} client: {agents}")
    # grpc.aio cannot be used in a process forked after it was used: there aiotlp sends through its h2 client
    allowed = {client} | (
        {GRPC_CLIENT["grpc-h2"]} if transport == "grpc-grpcio" and scenario.startswith("fork") else set()
    )
    if client is not None and any(not any(a in agent for a in allowed) for agent in agents):
        problems.append(f"sent by another client than {sorted(allowed)}: {agents}")
    if run.result is not None and not all(run.result["flush"]):
        problems.append(f"force_flush() returned {run.result['flush']}")
    if processor == "aiotlp":
        problems += ledger_problems(None if run.result is None else run.result["ledger"], count)
        # plain threads export on the bridge: OTLP/HTTP protobuf goes on the native lane where it is built
        lane = None if run.result is None else run.result.get("lane")
        if scenario == "plain-threads" and transport == "http-protobuf" and lane_available() and not lane:
            problems.append(f"no batch went on the native lane ({lane!r})")
    delivered = len(set(names(collector, signal)) & {f"s{n}" for n in range(count)})
    ledger = None if run.result is None else run.result["ledger"]
    counted = {} if ledger is None else {**ledger["dropped"], "failed": ledger["failed"]}
    figure.criterion = f"{processor} processor: nothing raised, every item delivered, the ledger exact"
    figure.load = count
    figure.lost = max(0, count - delivered - sum(counted.values()))
    figure.count(counted)
    figure.measured = f"delivered {delivered} of {count}" + (
        "" if ledger is None else f", exported {ledger['exported']}"
    )
    said = warnings_of(run)
    fail_if([*problems, f"the library said: {said}"] if problems and said else problems)
