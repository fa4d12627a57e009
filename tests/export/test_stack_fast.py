"""The sender stack's one-frame path (``SenderStack.send``: the limit and the retry's first attempt in one frame, the
transport's attempt in the Timeout's) gives what the layers give (``top.send``): the same answer or error, at the
same (loop) times, with the same retries and slots, for every way an attempt can end; and the limit hands its slots
over in arrival order. On fast-forwarded loop time (looptime)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from typing import Any

import pytest

from aiotlp import ConnectError, DeadlineExceededError, RejectedError, RetryPolicy, ServerBusyError, Signal
from aiotlp.encoding import PartialSuccess
from aiotlp.export import ExportRequest, SenderStack, build_stack
from aiotlp.testing import Outcome, ScriptedTransport

pytestmark = pytest.mark.looptime

REQUEST = ExportRequest(signal=Signal.TRACES, body=b"payload", items=3, size=7)

# name -> (script, stack arguments, deadline in seconds, what the test does to the stack while the send runs)
Poke = Callable[[SenderStack], Coroutine[Any, Any, None]] | None


async def _interrupt_after(seconds: float, stack: SenderStack) -> None:
    await asyncio.sleep(seconds)
    stack.retry.interrupt()


async def _interrupt_now(stack: SenderStack) -> None:
    stack.retry.interrupt()


def _busy() -> Outcome:
    return Outcome(ServerBusyError("busy", retry_after=None))


SCENARIOS: dict[str, tuple[list[Outcome], dict[str, Any], float, Poke]] = {
    "success": ([], {}, 10, None),
    "partial success": ([Outcome(response=PartialSuccess(rejected=2, error_message="too old"))], {}, 10, None),
    "retried, then success": ([_busy(), Outcome(ConnectError("refused"))], {}, 10, None),
    "a final error": ([Outcome(RejectedError("bad request", status=400))], {}, 10, None),
    "retries exhausted": ([_busy(), _busy()], {"retry": RetryPolicy(jitter=0, max_attempts=2)}, 10, None),
    "the deadline comes before the next retry": (
        [_busy()],
        {"retry": RetryPolicy(initial_backoff=5, jitter=0)},
        3,
        None,
    ),
    "the server's delay": ([Outcome(ServerBusyError("busy", retry_after=4))], {}, 10, None),
    "an attempt timed out, then success": ([Outcome(delay=60)], {"attempt_timeout": 2}, 10, None),
    "every attempt times out until the deadline": ([], {"attempt_timeout": 2}, 7, None),
    "shut down while waiting to retry": ([_busy()], {}, 10, lambda stack: _interrupt_after(0.5, stack)),
    "shut down before the request was sent": ([], {}, 10, _interrupt_now),
}


async def _run(
    transport: ScriptedTransport,
    stack: SenderStack,
    send: Callable[[ExportRequest, float], Any],
    deadline: float,
    poke: Poke,
) -> tuple[Any, ...]:
    """What one send did: its answer (or error), how long it took, the attempts' start times (from its start) and
    bodies, the retries counted, the slots still held."""
    loop = asyncio.get_running_loop()
    start = loop.time()
    if poke is _interrupt_now:
        await _interrupt_now(stack)
    poking = asyncio.ensure_future(poke(stack)) if poke is not None and poke is not _interrupt_now else None
    try:
        outcome: Any = await send(REQUEST, start + deadline)
    except Exception as exc:  # the error, as a value to compare
        outcome = (type(exc).__name__, str(exc), type(getattr(exc, "last", None)).__name__)
    if poking is not None:
        await poking
    attempts = [(round(a.started - start, 6), a.body, round(a.timeout, 6)) for a in transport.attempts]
    return outcome, round(loop.time() - start, 6), attempts, stack.retry.retries, stack.limit.in_flight


@pytest.mark.parametrize("name", list(SCENARIOS))
async def test_one_frame_path_ends_as_the_layers(name: str) -> None:
    script, arguments, deadline, poke = SCENARIOS[name]
    arguments = {"retry": RetryPolicy(jitter=0), **arguments}  # no jitter: both sides wait the same
    hang = Outcome(delay=3600) if name.startswith("every") else None
    fast_transport, layered_transport = ScriptedTransport(script, default=hang), ScriptedTransport(script, default=hang)
    fast, layered = build_stack(fast_transport, **arguments), build_stack(layered_transport, **arguments)
    assert fast.timeout is not None  # build_stack's layers: SenderStack.send takes its one-frame path
    got = await _run(fast_transport, fast, fast.send, deadline, poke)
    expected = await _run(layered_transport, layered, layered.top.send, deadline, poke)
    assert got == expected
    assert got[-1] == 0  # every slot given back


async def test_a_cancelled_send_gives_its_slot_back() -> None:
    stack = build_stack(ScriptedTransport([Outcome(delay=60)]), max_concurrent=1)
    task = asyncio.ensure_future(stack.send(REQUEST, asyncio.get_running_loop().time() + 100))
    await asyncio.sleep(1)
    assert stack.limit.in_flight == 1
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert stack.limit.in_flight == 0
    assert await stack.send(REQUEST, asyncio.get_running_loop().time() + 100) == PartialSuccess()


async def test_the_limit_hands_its_slots_over_in_arrival_order() -> None:
    transport = ScriptedTransport(default=Outcome(delay=1))
    stack = build_stack(transport, max_concurrent=2)
    loop = asyncio.get_running_loop()
    order: list[int] = []

    async def send(i: int) -> None:
        await stack.send(ExportRequest(signal=Signal.TRACES, body=bytes([i]), items=1, size=1), loop.time() + 100)
        order.append(i)

    await asyncio.gather(*(send(i) for i in range(7)))
    assert [a.body[0] for a in transport.attempts] == list(range(7))  # the waiters went in the order they came
    assert transport.max_active == 2
    assert stack.limit.in_flight == 0


async def test_a_waiter_whose_deadline_passes_leaves_the_slot_to_the_next() -> None:
    transport = ScriptedTransport([Outcome(delay=10)], default=Outcome())
    stack = build_stack(transport, max_concurrent=1)
    loop = asyncio.get_running_loop()
    first = asyncio.ensure_future(stack.send(REQUEST, loop.time() + 100))
    await asyncio.sleep(0)
    short = asyncio.ensure_future(stack.send(REQUEST, loop.time() + 5))  # gives up waiting at 5 s
    late = asyncio.ensure_future(stack.send(REQUEST, loop.time() + 100))
    with pytest.raises(DeadlineExceededError, match="export slots"):
        await short
    assert await first == PartialSuccess()
    assert await late == PartialSuccess()
    assert len(transport.attempts) == 2
    assert stack.limit.in_flight == 0


async def test_a_waiter_given_a_slot_as_it_is_cancelled_passes_it_on() -> None:
    transport = ScriptedTransport()
    stack = build_stack(transport, max_concurrent=1)
    loop = asyncio.get_running_loop()
    assert stack.limit.enter_now()  # the one slot, held here
    second = asyncio.ensure_future(stack.send(REQUEST, loop.time() + 100))
    third = asyncio.ensure_future(stack.send(REQUEST, loop.time() + 100))
    await asyncio.sleep(0)  # both wait for it
    stack.limit.leave()  # the slot goes to the second...
    second.cancel()  # ... cancelled before it runs: the slot goes on to the third
    with pytest.raises(asyncio.CancelledError):
        await second
    assert await third == PartialSuccess()
    assert len(transport.attempts) == 1
    assert stack.limit.in_flight == 0
