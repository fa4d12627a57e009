"""aiotlp.sdk.BatchSpanProcessor under any sequence of event-loop lifecycle steps (issue 12, item 4).

A hypothesis state machine drives one ``aiotlp.sdk.BatchSpanProcessor`` over ``aiotlp.sdk.SpanExporter`` to a
FakeCollector running in a thread of its own (CollectorThread: it does not depend on the loops under test). The
steps are what applications do: make a loop; run one for a short while (``run_until_complete`` of a coroutine
that ends spans, then the loop is stopped again); run one in a thread, end spans on it, stop it; close one (as
``loop.close()`` does, or as ``asyncio.run`` does: cancel its tasks first); ``asyncio.run``; end spans in the main
thread with no loop running, or in a plain thread; ``provider.force_flush()``; ``await processor.aforce_flush()``
on one of the loops; ``provider.shutdown()`` (after which ended spans must be dropped as ``already_shutdown``).
The processor is made with or without ``loop=`` (a new loop, which the steps may then run or close, or a loop
closed already).

After every step: nothing raised, every ended span is in the ledger (``produced``), and the ledger balances
(``produced == exported + rejected + failed + sum(dropped) + queued + in_flight``). A flush returns True (the
collector is up and answers at once). At the end (after the shutdown): every span ended before the shutdown
arrived at the collector (distinct span ids), nothing was dropped but the spans ended after the shutdown, and no
coroutine of the processor was left never awaited.

The default run is kept under a minute; ``-m slow`` runs a longer profile.
"""

from __future__ import annotations

import asyncio
import gc
import itertools
import threading
import warnings
from collections.abc import Iterator
from typing import Any, ClassVar

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from tests.faults.summary import Figure
from tests.user_paths.helpers import fail_if

import aiotlp.sdk
from aiotlp.processing import FlushStatus
from aiotlp.testing import CollectorThread

RESOURCE = Resource({"service.name": "user-paths-machine"})
MAX_LOOPS = 4
FLUSH_MILLIS = 5_000
_examples = itertools.count()

counts = st.integers(0, 40)
which = st.integers(0, MAX_LOOPS - 1)


class _Loop:
    """A loop of the application's: idle (new or stopped), running in a thread, or closed."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread: threading.Thread | None = None

    @property
    def idle(self) -> bool:
        return self.thread is None and not self.loop.is_closed()

    @property
    def in_thread(self) -> bool:
        return self.thread is not None

    def start_thread(self) -> None:
        self.thread = threading.Thread(target=self.loop.run_forever, name="app-loop", daemon=True)
        self.thread.start()

    def stop_thread(self) -> None:
        assert self.thread is not None
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(30)
        assert not self.thread.is_alive(), "the application's loop did not stop"
        self.thread = None

    def close_like_asyncio_run(self) -> None:
        """What asyncio.run does at the end: cancel the remaining tasks, let them finish, then close."""
        tasks = asyncio.all_tasks(self.loop)
        for task in tasks:
            task.cancel()
        if tasks:
            self.loop.run_until_complete(asyncio.gather(*tasks, return_exceptions=True))
        self.loop.run_until_complete(self.loop.shutdown_asyncgens())
        self.loop.close()


class ProcessorMachine(RuleBasedStateMachine):
    collector: CollectorThread  # set by the test
    tally: ClassVar[dict[str, int]] = {"ended": 0, "examples": 0}  # over one test run, for the summary table

    def __init__(self) -> None:
        super().__init__()
        self.prefix = f"m{next(_examples)}-"
        self.numbers = itertools.count()
        self.loops: list[_Loop] = []
        self.ended_before_shutdown: set[str] = set()
        self.ended_after_shutdown = 0
        self.shut_down = False
        self.provider: TracerProvider | None = None
        self.processor: Any = None

    @initialize(
        batch=st.sampled_from([8, 64, 512]),
        delay=st.sampled_from([20, 500, 60_000]),
        loop_argument=st.sampled_from([None, "a new loop", "a closed loop"]),
    )
    def make_pipeline(self, batch: int, delay: int, loop_argument: str | None) -> None:
        loop = None
        if loop_argument is not None:  # loop=: one of the application's loops (the rules may run or close it)
            self.loops.append(_Loop())
            loop = self.loops[0].loop
            if loop_argument == "a closed loop":
                loop.close()
        exporter = aiotlp.sdk.SpanExporter(self.collector.http_endpoint + "/v1/traces", timeout=5)
        self.processor = aiotlp.sdk.BatchSpanProcessor(
            exporter, max_queue_size=4096, max_export_batch_size=batch, schedule_delay_millis=delay, loop=loop
        )
        self.provider = TracerProvider(resource=RESOURCE, shutdown_on_exit=False)
        self.provider.add_span_processor(self.processor)

    # ---------------------------------------------------------------------------------------------- helpers

    def end(self, count: int) -> None:
        assert self.provider is not None
        tracer = self.provider.get_tracer("machine")
        for _ in range(count):
            name = f"{self.prefix}{next(self.numbers)}"
            with tracer.start_as_current_span(name):
                pass
            if self.shut_down:
                self.ended_after_shutdown += 1
            else:
                self.ended_before_shutdown.add(name)

    async def app(self, count: int, linger: float) -> None:
        self.end(count)
        await asyncio.sleep(linger)

    def pick(self, index: int, *, state: str) -> _Loop | None:
        candidates = [loop for loop in self.loops if getattr(loop, state)]
        return candidates[index % len(candidates)] if candidates else None

    def has(self, state: str) -> bool:
        return any(getattr(loop, state) for loop in self.loops)

    # ------------------------------------------------------------------------------------------------ loops

    @precondition(lambda self: len(self.loops) < MAX_LOOPS)
    @rule()
    def new_loop(self) -> None:
        self.loops.append(_Loop())

    @precondition(lambda self: self.has("idle"))
    @rule(index=which, count=counts, linger=st.sampled_from([0, 0.01, 0.05]))
    def run_until_complete(self, index: int, count: int, linger: float) -> None:
        loop = self.pick(index, state="idle")
        assert loop is not None
        loop.loop.run_until_complete(self.app(count, linger))  # then the loop is stopped again

    @precondition(lambda self: self.has("idle"))
    @rule(index=which)
    def start_loop_in_a_thread(self, index: int) -> None:
        loop = self.pick(index, state="idle")
        assert loop is not None
        loop.start_thread()

    @precondition(lambda self: self.has("in_thread"))
    @rule(index=which, count=counts)
    def end_spans_on_the_loop_in_a_thread(self, index: int, count: int) -> None:
        loop = self.pick(index, state="in_thread")
        assert loop is not None
        asyncio.run_coroutine_threadsafe(self.app(count, 0), loop.loop).result(30)

    @precondition(lambda self: self.has("in_thread"))
    @rule(index=which)
    def stop_the_loop_in_a_thread(self, index: int) -> None:
        loop = self.pick(index, state="in_thread")
        assert loop is not None
        loop.stop_thread()

    @precondition(lambda self: self.has("idle"))
    @rule(index=which, like_asyncio_run=st.booleans())
    def close_loop(self, index: int, like_asyncio_run: bool) -> None:
        loop = self.pick(index, state="idle")
        assert loop is not None
        if like_asyncio_run:
            loop.close_like_asyncio_run()
        else:
            loop.loop.close()

    @rule(count=counts)
    def asyncio_run(self, count: int) -> None:
        asyncio.run(self.app(count, 0))

    # ------------------------------------------------------------------------------------------------ spans

    @rule(count=counts)
    def end_spans_in_the_main_thread(self, count: int) -> None:
        self.end(count)

    @rule(count=counts)
    def end_spans_in_a_plain_thread(self, count: int) -> None:
        thread = threading.Thread(target=self.end, args=(count,))
        thread.start()
        thread.join(30)

    # ------------------------------------------------------------------------------------- flush, shutdown

    @precondition(lambda self: not self.shut_down)
    @rule()
    def force_flush(self) -> None:
        assert self.provider is not None
        assert self.provider.force_flush(FLUSH_MILLIS) is True, f"force_flush() returned False ({self.ledger()})"

    @precondition(lambda self: not self.shut_down and (self.has("idle") or self.has("in_thread")))
    @rule(index=which)
    def aforce_flush(self, index: int) -> None:
        loop = self.pick(index, state="idle") or self.pick(index, state="in_thread")
        assert loop is not None
        flush = self.processor.aforce_flush(FLUSH_MILLIS)
        if loop.in_thread:
            outcome = asyncio.run_coroutine_threadsafe(flush, loop.loop).result(FLUSH_MILLIS / 1000 + 5)
        else:
            outcome = loop.loop.run_until_complete(flush)
        assert outcome.status is FlushStatus.SUCCESS, f"aforce_flush() -> {outcome}"

    @precondition(lambda self: not self.shut_down)
    @rule()
    def shutdown(self) -> None:
        assert self.provider is not None
        self.shut_down = True
        self.provider.shutdown()

    # ---------------------------------------------------------------------------------------------- checks

    def stats(self) -> Any:
        return self.processor.statistics()

    def ledger(self) -> str:
        """The ledger in short: its non-zero counts."""
        stats = self.stats()
        counts = {k: getattr(stats, k) for k in ("produced", "exported", "rejected", "failed", "queued", "in_flight")}
        dropped = {reason: count for reason, count in stats.dropped.items() if count}
        return " ".join(f"{k}={v}" for k, v in counts.items() if v) + (f" dropped={dropped}" if dropped else "")

    @invariant()
    def the_ledger_balances_and_counts_every_span(self) -> None:
        if self.processor is None:
            return
        stats = self.stats()
        ended = len(self.ended_before_shutdown) + self.ended_after_shutdown
        assert stats.balanced, f"the ledger does not balance: {self.ledger()}"
        assert stats.produced == ended, f"{ended} spans ended, the ledger counts {stats.produced}: {self.ledger()}"

    def teardown(self) -> None:
        try:
            if self.provider is not None:
                if not self.shut_down:
                    self.shut_down = True
                    self.provider.shutdown()
                self.final_checks()
        finally:
            for loop in self.loops:
                if loop.in_thread:
                    loop.stop_thread()
                if not loop.loop.is_closed():
                    loop.loop.close()
            self.collector.clear()
            # a failure's traceback keeps this machine alive: not what it made (collected, and checked, by _run)
            self.loops, self.processor, self.provider = [], None, None

    def final_checks(self) -> None:
        type(self).tally["ended"] += len(self.ended_before_shutdown) + self.ended_after_shutdown
        type(self).tally["examples"] += 1
        spans = [s for s in self.collector.spans() if s.name.startswith(self.prefix)]
        got = {s.name for s in spans}
        missing = self.ended_before_shutdown - got
        assert not missing, f"{len(missing)} of {len(self.ended_before_shutdown)} spans never arrived ({self.ledger()})"
        assert got <= self.ended_before_shutdown, (
            f"spans ended after the shutdown arrived: {got - self.ended_before_shutdown}"
        )
        assert len({s.span_id for s in spans}) == len(got)
        stats = self.stats()
        dropped = {reason: count for reason, count in stats.dropped.items() if count}
        expected = {"already_shutdown": self.ended_after_shutdown} if self.ended_after_shutdown else {}
        assert dropped == expected, f"dropped {dropped}, expected {expected} ({self.ledger()})"
        settled = stats.failed == 0 and stats.queued == 0 and stats.in_flight == 0
        assert settled and stats.exported == len(self.ended_before_shutdown), self.ledger()


QUICK = settings(
    max_examples=40,
    stateful_step_count=15,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)
LONG = settings(QUICK, max_examples=300, stateful_step_count=30)


@pytest.fixture(scope="module")
def collector() -> Iterator[CollectorThread]:
    with CollectorThread() as collector:
        yield collector


def _one_line(error: BaseException) -> str:
    """A failure and the steps that led to it (hypothesis's notes), in one line."""
    first = error.__context__ if isinstance(error.__context__, AssertionError) else None
    messages = [f"{type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}" for e in (first, error) if e]
    notes = [line.strip() for note in getattr(error, "__notes__", ()) for line in note.splitlines()]
    steps = [
        line.removeprefix("state.")
        for line in notes
        if line.startswith("state.") and not line.startswith(("state.the_ledger", "state.teardown"))
    ]
    return " then ".join(messages) + " <- " + "; ".join(steps)


def _run(collector: CollectorThread, profile: settings, figure: Figure) -> None:
    ProcessorMachine.collector = collector
    ProcessorMachine.tally = {"ended": 0, "examples": 0}
    problems = []
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            run_state_machine_as_test(ProcessorMachine, settings=profile)
        except Exception as error:  # one failure, or an ExceptionGroup of distinct ones
            found = getattr(error, "exceptions", None) or [error]
            problems += [f"[{n}] {_one_line(e)}" for n, e in enumerate(found, 1)]
            del found  # its tracebacks hold the machines: let them go before the collection below
        gc.collect()  # a coroutine never awaited warns when it is collected
    left = sorted({str(w.message) for w in caught if "never awaited" in str(w.message)})
    tally = ProcessorMachine.tally
    figure.criterion = "any sequence of loop lifecycles, flushes and a shutdown: ledger exact after each step"
    figure.load = tally["ended"]
    figure.measured = f"{tally['examples']} sequences, {tally['ended']} spans, {len(problems)} distinct failures"
    if left:
        problems.append(f"coroutines left never awaited: {left}")
    fail_if(problems)


def test_any_sequence_of_loop_lifecycles(collector: CollectorThread, figure: Figure) -> None:
    _run(collector, QUICK, figure)


@pytest.mark.slow
def test_any_sequence_of_loop_lifecycles_long(collector: CollectorThread, figure: Figure) -> None:
    _run(collector, LONG, figure)
