"""The Timeout layer's one timer handle per attempt (issue 13: the bridge's Python per export) behaves as the
``asyncio.timeout_at`` context manager it replaced: the same outcome and the same task cancel count for a
success, a slow attempt, an error, a cancellation from outside (alone, or at the moment the timer fires), an
attempt that swallows its cancellation; and its timer never outlives the attempt. On fast-forwarded loop time."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Awaitable, Callable

import pytest

from aiotlp import AttemptTimeoutError, ConnectError, DeadlineExceededError, OTLPExporter, RetryPolicy, Signal
from aiotlp._backports import timeout_at
from aiotlp.config import ExporterConfig
from aiotlp.encoding import PartialSuccess
from aiotlp.export import ExportRequest, Retry, Timeout, TransportSender
from aiotlp.model import Span
from aiotlp.testing import Outcome, ScriptedTransport

pytestmark = pytest.mark.looptime

needs_uncancel = pytest.mark.skipif(sys.version_info < (3, 11), reason="Task.cancelling() is Python 3.11+")


def request() -> ExportRequest:
    return ExportRequest(signal=Signal.TRACES, body=b"payload", items=1, size=7)


class Reference:
    """The Timeout layer as it was: ``async with timeout_at(deadline)`` around the inner sender."""

    def __init__(self, inner: TransportSender | Behaviour, attempt_timeout: float | None) -> None:
        self.inner = inner
        self.attempt_timeout = attempt_timeout

    async def send(self, request: ExportRequest, deadline: float) -> PartialSuccess:
        loop = asyncio.get_running_loop()
        by_attempt = self.attempt_timeout is not None and loop.time() + self.attempt_timeout < deadline
        if by_attempt:
            deadline = loop.time() + self.attempt_timeout  # type: ignore[operator]
        try:
            async with timeout_at(deadline):
                return await self.inner.send(request, deadline)
        except asyncio.TimeoutError:
            limit = f"its {self.attempt_timeout:.3g}s timeout" if by_attempt else "the export deadline"
            raise AttemptTimeoutError(f"the attempt was cancelled at {limit}") from None


class Behaviour:
    """An inner sender that waits ``delay`` seconds, then returns, raises, or (``swallow``) ignores one
    cancellation and returns after it."""

    def __init__(self, delay: float, *, error: Exception | None = None, swallow: bool = False) -> None:
        self.delay = delay
        self.error = error
        self.swallow = swallow

    async def send(self, request: ExportRequest, deadline: float) -> PartialSuccess:
        try:
            await asyncio.sleep(self.delay)
        except asyncio.CancelledError:
            if not self.swallow:
                raise
            return PartialSuccess(error_message="swallowed")
        if self.error is not None:
            raise self.error
        return PartialSuccess()

    async def shutdown(self) -> None:
        pass


async def outcome(
    sender: Timeout | Reference, outside: float | None, later: Callable[[], Awaitable[None]] | None = None
) -> tuple[str, int, bool]:
    """(what the attempt ended with, its task's cancel count after it, whether its task is still cancelled once
    the attempt is over: it awaits past the deadline). ``outside``: the task is also cancelled from outside at
    that time."""
    loop = asyncio.get_running_loop()
    start = loop.time()

    async def attempt() -> tuple[str, int, bool]:
        try:
            reply = await sender.send(request(), start + 5)
            ended = f"reply {reply.error_message}"
        except AttemptTimeoutError as exc:
            ended = f"AttemptTimeoutError {exc} at {loop.time() - start:g}"
        except asyncio.CancelledError:
            ended = f"CancelledError at {loop.time() - start:g}"
        except Exception as exc:
            ended = f"{type(exc).__name__} {exc}"
        task = asyncio.current_task()
        assert task is not None
        count = task.cancelling() if sys.version_info >= (3, 11) else 0
        try:
            await asyncio.sleep(30)  # past every deadline: a timer left behind would cancel this
            cancelled_after = False
        except asyncio.CancelledError:
            cancelled_after = True
        return ended, count, cancelled_after

    task = asyncio.ensure_future(attempt())
    if outside is not None:
        loop.call_at(start + outside, task.cancel)
    return await task


SCENARIOS = {
    "fast success": (Behaviour(1), None, None),
    "slow, cut by the attempt timeout": (Behaviour(60), 2.0, None),
    "slow, cut by the export deadline": (Behaviour(60), None, None),
    "an error": (Behaviour(1, error=ConnectError("refused")), None, None),
    "cancelled from outside first": (Behaviour(60), None, 1.0),
    "cancelled from outside as the timer fires": (Behaviour(60), 2.0, 2.0),
    "cancelled from outside after the timer fired": (Behaviour(60, swallow=True), 2.0, 3.0),
    "swallows the timer's cancellation": (Behaviour(60, swallow=True), 2.0, None),
}


@pytest.mark.parametrize("scenario", list(SCENARIOS))
async def test_the_one_handle_timeout_ends_every_attempt_as_the_context_manager(scenario: str) -> None:
    inner, attempt_timeout, outside = SCENARIOS[scenario]
    got = await outcome(Timeout(inner, attempt_timeout), outside)
    want = await outcome(Reference(inner, attempt_timeout), outside)
    assert got == want
    if scenario.startswith("slow"):
        assert got[0].startswith("AttemptTimeoutError") and got[1:] == (0, False)
    if scenario == "cancelled from outside first":
        assert got[0] == "CancelledError at 1"


@needs_uncancel
async def test_a_timed_out_attempt_leaves_its_task_uncancelled_for_the_retry() -> None:
    """The retry's backoff and next attempt run in the same task: the timer's cancellation must be withdrawn."""
    transport = ScriptedTransport([Outcome(delay=60), Outcome(delay=60)], default=Outcome())
    retry = Retry(Timeout(TransportSender(transport), 2), RetryPolicy(initial_backoff=1, jitter=0))
    start = asyncio.get_running_loop().time()
    assert await retry.send(request(), start + 100) == PartialSuccess()
    assert [round(a.started - start, 6) for a in transport.attempts] == [0, 3, 7]  # 2 s attempts, backoffs 1, 2
    task = asyncio.current_task()
    assert task is not None and task.cancelling() == 0
    await asyncio.sleep(200)  # no timer of any attempt is left to cancel us


async def test_an_export_cancelled_from_outside_is_counted_failed_not_timed_out() -> None:
    """Through the whole exporter: a cancellation from outside is not turned into an attempt timeout (it ends
    the export call), and a timed-out export still reports the deadline with its last attempt's timeout."""
    transport = ScriptedTransport(default=Outcome(delay=3600))
    config = ExporterConfig.from_env({}, timeout=10)
    exporter = OTLPExporter(
        config, transport_factory=lambda _: transport, attempt_timeout=2, retry=RetryPolicy(initial_backoff=0.5)
    )
    spans = [Span(trace_id=1, span_id=1, name="s", start_time_unix_nano=1, end_time_unix_nano=2)]
    call = asyncio.ensure_future(exporter.export_traces(spans))
    await asyncio.sleep(1)
    call.cancel()
    with pytest.raises(asyncio.CancelledError):
        await call
    result = await exporter.export_traces(spans)
    assert isinstance(result.error, DeadlineExceededError)
    assert isinstance(result.error.last, AttemptTimeoutError)
    assert result.failed == 1 and exporter.in_flight == 0
    await exporter.shutdown()


@needs_uncancel
async def test_attempts_in_flight_together_are_each_cut_at_their_own_deadline() -> None:
    """One timer watches every attempt in flight on the loop: each is cut exactly at its deadline, in any order of
    arrival (an earlier deadline than the one the timer is armed for re-arms it), and one that ends before its
    deadline leaves nothing behind for the others or for its task."""
    sender = Timeout(Behaviour(60), None)
    loop = asyncio.get_running_loop()
    start = loop.time()
    ends: dict[str, str] = {}

    async def attempt(name: str, deadline: float, inner: Behaviour | None = None) -> None:
        if inner is not None:
            sender.inner = inner
        try:
            await sender.send(request(), start + deadline)
            ends[name] = f"reply at {loop.time() - start:g}"
        except AttemptTimeoutError:
            ends[name] = f"timeout at {loop.time() - start:g}"
        task = asyncio.current_task()
        assert task is not None and task.cancelling() == 0
        await asyncio.sleep(100)  # nothing cancels it afterwards

    tasks = [asyncio.ensure_future(attempt("late", 9)), asyncio.ensure_future(attempt("early", 3))]
    await asyncio.sleep(1)
    tasks.append(asyncio.ensure_future(attempt("middle", 6)))
    await asyncio.sleep(0)
    tasks.append(asyncio.ensure_future(attempt("quick", 4, Behaviour(1))))  # answers at 2, before its deadline
    await asyncio.gather(*tasks)
    assert ends == {"early": "timeout at 3", "middle": "timeout at 6", "late": "timeout at 9", "quick": "reply at 2"}


@pytest.mark.slow
def test_a_timeout_used_on_two_loops_at_once_cuts_each_attempt() -> None:
    """The timer belongs to one loop: an attempt on another loop while the first one's attempts are in flight gets
    a timer of its own; both are cut at their deadlines."""
    import threading

    sender = Timeout(Behaviour(60), None)
    results: list[tuple[float, float]] = []
    started = threading.Event()

    async def attempt(deadline: float) -> tuple[float, float]:
        loop = asyncio.get_running_loop()
        start = loop.time()
        started.set()
        with pytest.raises(AttemptTimeoutError):
            await sender.send(request(), start + deadline)
        return deadline, loop.time() - start

    other = threading.Thread(target=lambda: results.append(asyncio.run(attempt(0.4))))
    other.start()
    started.wait(10)
    results.append(asyncio.run(attempt(0.2)))
    other.join(10)
    assert sorted(deadline for deadline, _ in results) == [0.2, 0.4]
    assert all(deadline <= took < deadline + 10 for deadline, took in results)
