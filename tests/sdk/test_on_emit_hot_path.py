"""``BatchLogRecordProcessor.on_emit``'s hot path as one compiled call (issue 13): ``_log_item`` (compiled
``_speedups.sdk_log_item``, or its pure twin) and, once the processor has started, ``on_emit`` set on the instance
as the compiled ``aiotlp.processing.HotPut`` (``aiotlp.sdk._hot.install_hot``).

Checked here: both twins of ``_log_item`` return the same thing for every case (the last pair, a pair found by
identity, a pair not seen yet, no resource, a negative key, a record that cannot be encoded); records emitted
through the SDK's ``LoggerProvider`` from a thread take the compiled call while the processor runs and the
class's ``on_emit`` before its start and after its shutdown, with the ledger and the bytes of the Python path;
the first record of a new (resource, scope) is encoded too; a switch of the encoders is followed; a subclass's own
``on_emit`` is left alone; a forked child starts without the parent's.
"""

from __future__ import annotations

import asyncio
import os
import sys
from typing import Any

import pytest
from opentelemetry._logs import SeverityNumber
from opentelemetry.sdk._logs import LoggerProvider, LogRecordProcessor, ReadWriteLogRecord
from opentelemetry.sdk.resources import Resource

from aiotlp.encoding import _compat
from aiotlp.processing import HotPut
from aiotlp.sdk import BatchLogRecordProcessor, LogExporter
from aiotlp.sdk import _encode_source as source_module
from aiotlp.sdk._encode_logs import _SDK_LOG_TYPES, _log_field
from aiotlp.testing import FakeCollector


class Keep(LogRecordProcessor):
    """Keeps the records as ``on_emit`` gets them."""

    def __init__(self) -> None:
        self.records: list[ReadWriteLogRecord] = []

    def on_emit(self, log_record: ReadWriteLogRecord) -> None:
        self.records.append(log_record)

    def shutdown(self) -> None:
        pass

    def force_flush(self, timeout_millis: int = 30_000) -> bool:
        return True


def emitted(count: int, resource: Resource | None = None, scope: str = "hot") -> list[ReadWriteLogRecord]:
    keep = Keep()
    provider = LoggerProvider(resource=resource or Resource({"service.name": "hot"}), shutdown_on_exit=False)
    provider.add_log_record_processor(keep)
    logger = provider.get_logger(scope)
    for i in range(count):
        logger.emit(body=f"record {i}", severity_number=SeverityNumber.INFO, attributes={"i": i, "k": "v"})
    return keep.records


def twins() -> list[Any]:
    compiled = getattr(_compat.speedups, "sdk_log_item", None)
    return [source_module._log_item] if compiled is None else [source_module._log_item, compiled]


@pytest.mark.usefixtures("restore_implementation")
def test_both_twins_of_log_item_return_the_same() -> None:
    _compat.use("python")  # source_module._log_item: the pure twin
    records = emitted(3)
    other = emitted(1, Resource({"service.name": "other"}))[0]
    resource, scope = records[0].resource, records[0].instrumentation_scope
    memo = (resource, scope, 4)
    ids = {(id(other.resource), id(other.instrumentation_scope)): (other.resource, other.instrumentation_scope, 9)}
    no_resource = emitted(1)[0]
    no_resource.resource = None  # type: ignore[misc]
    broken = emitted(1)[0]
    broken.log_record.attributes = {b"bytes key": 1}  # type: ignore[dict-item]
    cases = [
        (memo, records[1]),  # the last pair
        ((None, None, -1), other),  # found by identity in ids
        (memo, emitted(1, Resource({"service.name": "unseen"}))[0]),  # a pair not seen yet
        (memo, no_resource),
        ((resource, scope, -1), records[2]),  # past the groups' cap
        (memo, broken),  # cannot be encoded
    ]
    for twin in twins():
        got = [twin(_SDK_LOG_TYPES, None, m, ids, record) for m, record in cases]
        assert got[0] == (4, _log_field(records[1])) and type(got[0]) is tuple
        assert got[1] == (9, _log_field(other))
        assert all(result is record for result, (_, record) in zip(got[2:], cases[2:], strict=True)), twin


def test_the_compiled_log_item_leaks_no_reference() -> None:
    compiled = getattr(_compat.speedups, "sdk_log_item", None)
    if compiled is None:
        pytest.skip("the compiled accelerator is not available")
    record, other = emitted(1)[0], emitted(1, Resource({"service.name": "other"}))[0]
    resource, scope = record.resource, record.instrumentation_scope
    broken = emitted(1)[0]
    broken.log_record.attributes = {b"bytes key": 1}  # type: ignore[dict-item]
    no_resource = emitted(1)[0]
    no_resource.resource = None  # type: ignore[misc]
    memo = (resource, scope, 3)
    ids = {(id(other.resource), id(other.instrumentation_scope)): (other.resource, other.instrumentation_scope, 4)}
    cases = [(memo, record), ((None, None, -1), other), (memo, broken), (memo, no_resource), (memo, object())]
    watched = [record, other, resource, scope, broken, no_resource, memo, ids, other.resource]
    for m, item in cases:
        before = [sys.getrefcount(o) for o in watched]
        for _ in range(1000):
            compiled(_SDK_LOG_TYPES, None, m, ids, item)
        assert [sys.getrefcount(o) for o in watched] == before, item


def test_a_hot_put_leaks_no_reference() -> None:
    if HotPut is None:
        pytest.skip("aiotlp.processing._putfast is not built")
    from aiotlp.processing import BoundedQueue

    class Source:
        _memo = ("r", "s", 1)

    queue: BoundedQueue[Any] = BoundedQueue(
        max_size=4, max_bytes=1 << 20, batch_size=2, drop_oldest=False, weigh=None, size_of=len
    )
    field = b"x" * 40
    pair = (1, field)
    outcomes: list[Any] = [pair, None, "other"]

    def encode(*args: Any) -> Any:
        return outcomes[0]

    namespace = {"encode": encode}
    hot = HotPut(namespace, "encode", encode, (), None, Source(), {}, queue, lambda: None, len, len)
    watched = [encode, field, pair, queue, namespace]
    for outcome in list(outcomes):
        outcomes[0] = outcome
        for _ in range(10):  # the queue full first (it keeps what it admitted)
            hot("item")
        before = [sys.getrefcount(o) for o in watched]
        for _ in range(1000):  # past the queue's room: the queue's own put drops them
            hot("item")
        assert [sys.getrefcount(o) for o in watched] == before, outcome


def installed(processor: BatchLogRecordProcessor) -> bool:
    hot = processor.__dict__.get("on_emit")
    assert hot is None or type(hot) is HotPut
    return hot is not None


async def emit_through(
    processor: BatchLogRecordProcessor, count: int, scopes: int = 1
) -> tuple[LoggerProvider, list[bool]]:
    """``count`` records per scope through a LoggerProvider from a plain thread; whether on_emit was installed
    after each scope's records."""
    provider = LoggerProvider(resource=Resource({"service.name": "emit"}), shutdown_on_exit=False)
    provider.add_log_record_processor(processor)
    seen: list[bool] = []

    def emit() -> None:
        for s in range(scopes):
            logger = provider.get_logger(f"scope-{s}")
            for i in range(count):
                logger.emit(body=f"record {s}-{i}", attributes={"i": i})
            seen.append(installed(processor))

    await asyncio.to_thread(emit)
    return provider, seen


@pytest.mark.usefixtures("encoder_implementation")
async def test_records_through_the_provider_take_the_compiled_call_while_it_runs() -> None:
    async with FakeCollector() as collector:
        processor = BatchLogRecordProcessor(
            LogExporter(endpoint=f"{collector.http_endpoint}/v1/logs"), schedule_delay_millis=60_000
        )
        assert not installed(processor)
        provider, seen = await emit_through(processor, 20, scopes=3)
        assert seen == [HotPut is not None] * 3  # the second and third scopes: new pairs, encoded through it too
        queue = processor._processor._queue
        with queue.lock:
            items = [item for chunk in queue._chunks for item in chunk]
        assert len(items) == 60 and all(type(item) is tuple for item in items)
        assert len({item[0] for item in items}) == 3
        assert queue.queued_bytes == sum(len(item[1]) for item in items)
        assert await asyncio.to_thread(provider.force_flush) is True
        await asyncio.to_thread(provider.shutdown)
        assert not installed(processor)
        stats = processor.statistics()
        assert stats.balanced and stats.exported == 60 and stats.dropped_total == 0
        bodies = sorted(record.body.string_value for record in collector.log_records())
        assert bodies == sorted(f"record {s}-{i}" for s in range(3) for i in range(20))


@pytest.mark.usefixtures("restore_implementation")
async def test_a_switch_of_the_encoders_is_followed_and_the_bytes_are_the_same() -> None:
    records = emitted(9)
    async with FakeCollector() as collector:
        processor = BatchLogRecordProcessor(
            LogExporter(endpoint=f"{collector.http_endpoint}/v1/logs"), schedule_delay_millis=60_000
        )
        for record in records[:3]:
            await asyncio.to_thread(processor.on_emit, record)  # started on the bridge, from a thread
        for choice, part in zip(["python", "c"], [records[3:6], records[6:]], strict=True):
            if choice == "c" and _compat.speedups is None:
                continue
            _compat.use(choice)  # type: ignore[arg-type]
            for record in part:
                processor.on_emit(record)
        queue = processor._processor._queue
        with queue.lock:
            fields = [item[1] for chunk in queue._chunks for item in chunk]
        _compat.use("python")
        assert fields == [_log_field(record) for record in records[: len(fields)]]
        assert len(fields) == (9 if _compat.speedups is not None else 6)
        await asyncio.to_thread(processor.shutdown)
        assert processor.statistics().exported == len(fields)


async def test_a_subclass_with_its_own_on_emit_keeps_it() -> None:
    seen: list[str] = []

    class Counting(BatchLogRecordProcessor):
        def on_emit(self, log_record: ReadWriteLogRecord) -> None:
            seen.append(str(log_record.log_record.body))
            super().on_emit(log_record)

    async with FakeCollector() as collector:
        processor = Counting(LogExporter(endpoint=f"{collector.http_endpoint}/v1/logs"), schedule_delay_millis=60_000)
        provider, installs = await emit_through(processor, 5)
        assert installs == [False] and processor._hot is not None
        assert seen == [f"record 0-{i}" for i in range(5)]
        await asyncio.to_thread(provider.shutdown)
        assert processor.statistics().exported == 5


@pytest.mark.filterwarnings("ignore::DeprecationWarning")  # fork() of a multi-threaded process
@pytest.mark.skipif(not hasattr(os, "fork"), reason="POSIX only")
async def test_a_forked_child_starts_without_the_parents_compiled_call() -> None:
    records = emitted(6)
    async with FakeCollector() as collector:
        processor = BatchLogRecordProcessor(
            LogExporter(endpoint=f"{collector.http_endpoint}/v1/logs"), schedule_delay_millis=60_000
        )
        for record in records[:3]:
            await asyncio.to_thread(processor.on_emit, record)
        assert installed(processor) == (HotPut is not None)
        pid = os.fork()
        if pid == 0:  # the child: never returns into pytest
            code = 1
            try:
                if not installed(processor) and processor.statistics().produced == 0:
                    for record in records[3:]:
                        processor.on_emit(record)
                    if (
                        installed(processor) == (HotPut is not None)
                        and processor.force_flush(10_000)
                        and processor.statistics().exported == 3
                    ):
                        code = 0
            finally:
                os._exit(code)
        _, status = await asyncio.to_thread(os.waitpid, pid, 0)
        assert os.waitstatus_to_exitcode(status) == 0
        assert await asyncio.to_thread(processor.force_flush) is True
        await asyncio.to_thread(processor.shutdown)
        assert sorted(r.body.string_value for r in collector.log_records()) == [f"record {i}" for i in range(6)]
