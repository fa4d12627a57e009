"""``aiotlp.processing.HotPut`` (compiled only): a producer's whole hot path in one callable (issue 13).

It stands for ``BatchSpanProcessor.on_end``'s hot path: the encoder's call, the put with the field's length as the
size, the wake-up of a ready batch, and the hand-over of anything else. Checked here against a real
``BoundedQueue`` and a scripted encoder: each outcome of the encoder goes where the Python path sends it, the
ledger is the one ``put_sized`` keeps, a full or closed queue is left to the queue's own put (and counted there),
a switch of the encoders sends everything to ``full``, errors reach the caller, and the object is collected.
"""

from __future__ import annotations

import gc
import weakref
from typing import Any

import pytest

from aiotlp.processing import READY, BoundedQueue, HotPut

pytestmark = pytest.mark.skipif(HotPut is None, reason="aiotlp.processing._putfast is not built")

MEMO = ("resource", "scope", 7)


class Source:
    """The source encoder's part that HotPut reads: its last (resource, scope, key)."""

    def __init__(self) -> None:
        self._memo: Any = MEMO


class Script:
    """An encoder returning what the test says, recording its arguments."""

    def __init__(self) -> None:
        self.returns: Any = None
        self.calls: list[tuple[Any, ...]] = []

    def __call__(self, *args: Any) -> Any:
        self.calls.append(args)
        if isinstance(self.returns, BaseException):
            raise self.returns
        return self.returns


def queue(max_size: int = 8, batch_size: int = 4) -> BoundedQueue[Any]:
    return BoundedQueue(
        max_size=max_size, max_bytes=1 << 20, batch_size=batch_size, drop_oldest=False, weigh=None, size_of=len
    )


def hot_put(encode: Script, q: BoundedQueue[Any], namespace: dict[str, Any] | None = None) -> tuple[Any, list[Any]]:
    """A HotPut over ``q`` and its record of what reached ready / slow / full."""
    seen: list[Any] = []
    namespace = {"encode": encode} if namespace is None else namespace
    assert HotPut is not None
    hot = HotPut(
        namespace,
        "encode",
        encode,
        "types",
        "direct",
        Source(),
        {"ids": 1},
        q,
        lambda: seen.append("ready"),
        lambda item: seen.append(("slow", item)),
        lambda item: seen.append(("full", item)),
    )
    return hot, seen


def items(q: BoundedQueue[Any]) -> list[Any]:
    with q.lock:
        return [item for chunk in q._chunks for item in chunk]


def test_an_encoded_item_is_put_with_its_field_length_and_a_ready_batch_wakes_once() -> None:
    encode, q = Script(), queue()
    hot, seen = hot_put(encode, q)
    for i in range(6):
        encode.returns = (7, b"x" * (10 + i))
        assert hot(f"span-{i}") is None
    assert [call[4] for call in encode.calls] == [f"span-{i}" for i in range(6)]
    assert encode.calls[0][:4] == ("types", "direct", MEMO, {"ids": 1})
    assert items(q) == [(7, b"x" * (10 + i)) for i in range(6)]
    assert (q.produced, q.admitted, q.queued, q.queued_bytes) == (6, 6, 6, sum(10 + i for i in range(6)))
    assert seen == ["ready"]  # the 4th put made the first batch ready; the worker takes the rest with it


def test_the_ledger_is_the_one_the_queue_keeps_itself() -> None:
    encode, by_hot, by_queue = Script(), queue(max_size=5), queue(max_size=5)
    hot, seen = hot_put(encode, by_hot)
    codes = []
    for i in range(7):
        field = b"y" * (3 + i)
        encode.returns = (0, field)
        hot(i)
        codes.append(by_queue.put_sized((0, field), len(field)))
    assert items(by_hot) == items(by_queue)
    assert [s for s in seen if s == "ready"] == ["ready"] * codes.count(READY)
    for name in ("produced", "admitted", "queued", "queued_bytes", "dropped_full"):
        assert getattr(by_hot, name) == getattr(by_queue, name), name
    assert by_hot.dropped_full == 2  # the full queue's own put dropped and counted them


def test_a_closed_queue_counts_what_comes_after() -> None:
    encode, q = Script(), queue()
    hot, seen = hot_put(encode, q)
    q.close()
    encode.returns = (0, b"abc")
    assert hot("late") is None
    assert (q.produced, q.queued, q.dropped_closed) == (1, 0, 1)
    assert seen == []


def test_none_ends_there_and_anything_else_goes_to_slow() -> None:
    encode, q = Script(), queue()
    hot, seen = hot_put(encode, q)
    encode.returns = None  # not sampled
    assert hot("unsampled") is None
    encode.returns = "the span itself"  # the encoder could not: the caller's other path
    hot("other")
    encode.returns = [0, b"a list is not the encoder's tuple"]
    hot("listed")
    assert seen == [("slow", "other"), ("slow", "listed")]
    assert q.produced == 0


def test_after_the_encoders_are_switched_everything_goes_to_full() -> None:
    encode, q = Script(), queue()
    namespace: dict[str, Any] = {"encode": encode}
    hot, seen = hot_put(encode, q, namespace)
    namespace["encode"] = Script()  # aiotlp.encoding.use rebinds the module's name
    hot("a")
    del namespace["encode"]
    hot("b")
    assert seen == [("full", "a"), ("full", "b")]
    assert encode.calls == [] and q.produced == 0


def test_errors_reach_the_caller() -> None:
    encode, q = Script(), queue()
    hot, _ = hot_put(encode, q)
    encode.returns = ValueError("boom")
    with pytest.raises(ValueError, match="boom"):
        hot("x")
    encode.returns = (0,)
    with pytest.raises(IndexError, match="fewer than 2"):
        hot("x")
    encode.returns = (0, 12)
    with pytest.raises(TypeError):
        hot("x")  # len() of an int
    assert q.produced == 0


def test_a_call_of_another_form_is_the_methods_own() -> None:
    """``on_end(span=...)`` and the like go to ``full``, the Python method, which takes them or says what is
    wrong."""
    encode, q = Script(), queue()
    got: list[Any] = []

    def full(item: Any) -> None:
        got.append(item)

    assert HotPut is not None
    hot = HotPut({"encode": encode}, "encode", encode, 0, 0, Source(), {}, q, print, print, full)
    hot(item="by keyword")
    with pytest.raises(TypeError):
        hot()
    with pytest.raises(TypeError):
        hot("x", "y")
    assert got == ["by keyword"] and encode.calls == [] and q.produced == 0


def test_its_arguments_are_checked() -> None:
    assert HotPut is not None
    with pytest.raises(TypeError, match="ready must be callable"):
        HotPut({}, "n", len, 0, 0, Source(), {}, queue(), None, print, print)
    with pytest.raises(TypeError):
        HotPut([], "n", len, 0, 0, Source(), {}, queue(), print, print, print)  # namespace: a dict
    with pytest.raises(TypeError):
        HotPut({}, b"n", len, 0, 0, Source(), {}, queue(), print, print, print)  # name: a str


def test_a_hot_put_in_a_cycle_is_collected() -> None:
    class Owner:
        def ready(self) -> None:
            pass

    owner = Owner()
    encode, q = Script(), queue()
    assert HotPut is not None
    # owner -> its on_end -> its bound method -> owner, as a processor and its HotPut
    owner.on_end = HotPut(  # type: ignore[attr-defined]
        {"encode": encode}, "encode", encode, 0, 0, Source(), {}, q, owner.ready, print, print
    )
    gone = weakref.ref(owner)
    del owner
    gc.collect()
    assert gone() is None
