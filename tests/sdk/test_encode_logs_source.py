"""Log records encoded at the source: the compiled one-record writer (``_speedups.sdk_log_field``) and its pure
twin (``aiotlp.sdk._encode_logs._log_field``), which ``BatchLogRecordProcessor.on_emit`` calls through
``SourceEncoder.item``.

Differential: for every record shape a writer meets (the ``ReadWriteLogRecord`` that ``on_emit`` gets, the
``ReadableLogRecord`` an exporter gets, what ``on_emit`` queues on the object path, a record of another class,
one without ``event_name``), the compiled and the pure writer write the same bytes, and the frame of the items is
the batch encoder's request for the records, with either implementation; where the official encoder can encode
the records, the request decodes (official protobuf classes) to its message. Hypothesis does the same over
bodies of any kind (mappings with non-str keys, tuples, bytearrays, enums, ints outside int64), attributes,
ids, flags, severities and times, including values neither writer accepts (both refuse). Then the rules: an
attribute int outside int64 left out and counted, a body replaced by ``BODY_INT_OUT_OF_RANGE`` or
``BODY_TOO_DEEP`` (the depth first, as ``_coerce`` checks it first), and end to end: records emitted through a
``LoggerProvider`` (and Python ``logging``) from a plain thread reach a FakeCollector over HTTP/protobuf and gRPC
(both gRPC clients) with the bytes of the object path, a record that cannot be encoded counted as ``invalid``.
"""

from __future__ import annotations

import asyncio
import copy
import enum
import gc
import logging
import os
import sys
import threading
import types
import warnings
import weakref
from collections.abc import Callable, Iterator, Mapping
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from opentelemetry._logs import LogRecord as ApiLogRecord
from opentelemetry._logs import SeverityNumber
from opentelemetry.attributes import BoundedAttributes
from opentelemetry.context import Context
from opentelemetry.exporter.otlp.proto.common._log_encoder import encode_logs as official_encode_logs
from opentelemetry.instrumentation.logging.handler import LoggingHandler
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.sdk._logs import (
    LoggerProvider,
    LogRecordDroppedAttributesWarning,
    LogRecordProcessor,
    ReadableLogRecord,
    ReadWriteLogRecord,
)
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.util.instrumentation import InstrumentationScope
from opentelemetry.trace import TraceFlags
from tests import strategies
from tests.sdk import sdk_data

from aiotlp.encoding import _compat
from aiotlp.model import MAX_NESTING_DEPTH, Signal
from aiotlp.sdk import BatchLogRecordProcessor, LogExporter
from aiotlp.sdk import _encode_logs as encode_logs_module
from aiotlp.sdk._encode import BODY_INT_OUT_OF_RANGE, BODY_TOO_DEEP, SourceEncoder, encode_log_records
from aiotlp.sdk._queued_logs import _EMPTY_CONTEXT, _queue_other, _queued_class
from aiotlp.testing import FakeCollector
from aiotlp.transport import make_transport

pytestmark = pytest.mark.filterwarnings("ignore::opentelemetry.sdk._logs.LogRecordDroppedAttributesWarning")

T0 = sdk_data.T0


def need_compiled() -> None:
    """Skip the test, with the reason, when the compiled writer is not available."""
    if _compat.speedups is None:
        pytest.skip("the compiled accelerator is not available" + (" (AIOTLP_NO_EXTENSIONS)" * _compat.NO_EXTENSIONS))
    assert hasattr(_compat.speedups, "sdk_log_field"), "an extension built before sdk_log_field: rebuild it"


def implementations() -> list[str]:
    """The writers available: the pure one, and the compiled one unless it is not built or switched off."""
    return ["python"] if _compat.speedups is None else ["python", "c"]


def alike(results: dict[str, Any]) -> Any:
    """The one result every implementation gave (asserted)."""
    first = results["python"]
    assert all(result == first for result in results.values()), results
    return first


def each(func: Callable[[], Any]) -> dict[str, Any]:
    """``func()`` with each implementation: its result, or the type of what it raised."""
    out: dict[str, Any] = {}
    previous = _compat.implementation()
    try:
        for choice in implementations():
            _compat.use(choice)
            try:
                out[choice] = func()
            except Exception as exc:
                out[choice] = type(exc)
    finally:
        _compat.use(previous)
    return out


def field(record: Any) -> bytes:
    return encode_logs_module._log_field(record)


def frame(records: list[Any]) -> bytes:
    """The request a processor encoding at the source sends for ``records`` (each encoded alone, then framed)."""
    source = SourceEncoder("logs")
    items = [source.item(record) for record in records]
    assert all(type(item) is tuple for item in items), "a record was not encoded at the source"
    return source.frame(items)


# ------------------------------------------------------------------------------------------------------------
# Every record shape


class Capture(LogRecordProcessor):
    """Keeps the records as ``on_emit`` gets them (``ReadWriteLogRecord``), and what aiotlp's ``on_emit`` queues
    for each on the object path (a ``_QueuedLog``, or a ``_QueuedOther`` for a record of another class)."""

    def __init__(self) -> None:
        self.emitted: list[ReadWriteLogRecord] = []
        self.queued: list[Any] = []
        self.others: list[Any] = []

    def on_emit(self, log_record: ReadWriteLogRecord) -> None:
        self.emitted.append(log_record)
        assert log_record.resource is not None
        cls = _queued_class(log_record.resource, log_record.instrumentation_scope, log_record.limits)
        assert cls is not None and type(log_record.log_record) is ApiLogRecord
        queued: Any = object.__new__(cls)
        queued.__dict__ = log_record.log_record.__dict__.copy()
        queued.__dict__["context"] = _EMPTY_CONTEXT
        self.queued.append(queued)
        self.others.append(_queue_other(log_record, log_record.resource))

    def shutdown(self) -> None:
        pass

    def force_flush(self, timeout_millis: int = 30_000) -> bool:
        return True


class Color(enum.IntEnum):
    RED = 1


class Key(str, enum.Enum):
    A = "a"


FIVE_DEEP: list[Any] = [[[[["five"]]]]]

#: Bodies the official encoder cannot take (ints outside int64, too deep) or that only aiotlp's rules cover.
EXOTIC_BODIES: list[Any] = [
    2**64,
    -(2**63) - 1,
    [1, [2**70]],
    {"deep": {"er": 2**64}},
    FIVE_DEEP,
    [[2**70], FIVE_DEEP, FIVE_DEEP],
    bytearray(b"\x01\x02"),
    Color.RED,
    {Key.A: "str-enum key", 1: "int key", "1": "same str"},
    {(1, 2): "tuple key"},
    types.MappingProxyType({"proxy": 1}),
    range(3),
]


@pytest.fixture(scope="module")
def every_kind() -> tuple[list[ReadableLogRecord], Capture]:
    capture = Capture()
    return sdk_data.log_records(capture), capture


def test_every_record_shape_is_written_alike_by_both_writers(every_kind: tuple[list[Any], Capture]) -> None:
    readables, capture = every_kind
    assert len(readables) == len(capture.emitted) == len(capture.queued) == 2 * (len(sdk_data.BODIES) + 3)
    expected = official_encode_logs(readables)
    shapes = {
        "ReadableLogRecord": readables,
        "ReadWriteLogRecord": capture.emitted,
        "_QueuedLog": capture.queued,
        "_QueuedOther": capture.others,
    }
    batch = each(lambda: encode_log_records(readables))
    batch_bytes = alike(batch)
    assert ExportLogsServiceRequest.FromString(batch_bytes) == expected
    assert expected.SerializeToString(deterministic=True) == batch_bytes
    for name, records in shapes.items():
        fields = each(lambda records=records: [field(record) for record in records])
        alike(fields)
        assert alike(each(lambda records=records: frame(records))) == batch_bytes, name
        assert each(lambda records=records: encode_log_records(records)) == batch, name
    # the data covers what it claims to: dropped counts, trace context, event names, severities, every body kind
    decoded = [r for rl in expected.resource_logs for sl in rl.scope_logs for r in sl.log_records]
    assert any(r.dropped_attributes_count for r in decoded)
    assert any(r.trace_id and r.span_id and r.flags for r in decoded)
    assert {r.event_name for r in decoded} >= {"app.error", "just.an.event"}
    assert len({r.severity_number for r in decoded}) > 10 and any(r.severity_text for r in decoded)
    assert len({r.body.WhichOneof("value") for r in decoded}) == 8


def test_bodies_only_aiotlps_rules_cover_are_written_alike(every_kind: tuple[list[Any], Capture]) -> None:
    readables, _ = every_kind
    records = [with_body(readables[0], body) for body in EXOTIC_BODIES]
    alike(each(lambda: [field(record) for record in records]))
    framed = alike(each(lambda: frame(records)))
    assert framed == encode_log_records(records)
    bodies = [
        r.body
        for rl in ExportLogsServiceRequest.FromString(framed).resource_logs
        for sl in rl.scope_logs
        for r in sl.log_records
    ]
    assert [b.string_value for b in bodies[:4]] == [BODY_INT_OUT_OF_RANGE] * 4
    assert bodies[4].WhichOneof("value") == "array_value"
    assert bodies[5].string_value == BODY_INT_OUT_OF_RANGE  # not too deep: 2 + 5 levels
    assert [v.int_value for v in bodies[6].array_value.values] == [1, 2]  # a bytearray is a sequence of ints
    assert bodies[7].int_value == 1
    assert [(kv.key, kv.value.string_value) for kv in bodies[8].kvlist_value.values] == [
        (str(Key.A), "str-enum key"),
        ("1", "same str"),  # str(1) == "1": one key, the last value, as _coerce's dict keeps it
    ]
    assert bodies[9].kvlist_value.values[0].key == "(1, 2)"
    assert bodies[10].kvlist_value.values[0].key == "proxy"
    assert [v.int_value for v in bodies[11].array_value.values] == [0, 1, 2]


def with_body(readable: Any, body: Any) -> ReadableLogRecord:
    """A copy of a ReadableLogRecord with another body."""
    api = copy.copy(readable.log_record)
    api.body = body
    return ReadableLogRecord(
        log_record=api,
        resource=readable.resource,
        instrumentation_scope=readable.instrumentation_scope,
        limits=readable.limits,
    )


def test_a_record_of_another_class_and_one_without_event_name() -> None:
    """A subclass of the API record with a field of its own (on_emit queues it as a ``_QueuedOther``), and a
    record without ``event_name`` (a record of an older API, or any duck-typed one): no event name."""

    class Custom(ApiLogRecord):
        def __init__(self, **fields: Any) -> None:
            super().__init__(**fields)
            self.extra = "mine"

    resource = Resource({"service.name": "shapes"})
    custom = Custom(timestamp=T0, body="custom", attributes={"a": 1}, event_name="custom.event")
    bare = types.SimpleNamespace(
        timestamp=T0,
        observed_timestamp=T0 + 1,
        severity_number=SeverityNumber.INFO,
        severity_text="INFO",
        body={"duck": True},
        attributes={"b": 2},
        trace_flags=TraceFlags(1),
        trace_id=0x1234,
        span_id=0x56,
    )
    records = [
        _queue_other(ReadWriteLogRecord(log_record=custom, resource=resource), resource),
        ReadableLogRecord(log_record=bare, resource=resource),  # type: ignore[arg-type]
    ]
    alike(each(lambda: [field(record) for record in records]))
    framed = alike(each(lambda: frame(records)))
    assert framed == encode_log_records(records)
    first, second = ExportLogsServiceRequest.FromString(framed).resource_logs[0].scope_logs[0].log_records
    assert (first.body.string_value, first.event_name) == ("custom", "custom.event")
    assert (second.event_name, second.trace_id, second.flags) == ("", (0x1234).to_bytes(16, "big"), 1)


# ------------------------------------------------------------------------------------------------------------
# Hypothesis: any record


def fits(value: Any) -> bool:
    """Every int in ``value`` fits in int64 (else the official encoder cannot encode it)."""
    if isinstance(value, int) and not isinstance(value, bool):
        return -(2**63) <= value < 2**63
    if isinstance(value, dict):
        return all(fits(item) for item in value.values())
    if isinstance(value, (list, tuple)):
        return all(fits(item) for item in value)
    return True


_scalars = st.one_of(
    st.none(),
    strategies.texts(),
    st.booleans(),
    strategies.wide_ints(),
    strategies.doubles(),
    st.binary(max_size=8),
    st.sampled_from([Color.RED, Key.A]),
)
bodies = st.recursive(
    _scalars,
    lambda children: st.one_of(
        st.lists(children, max_size=3),
        st.lists(children, max_size=3).map(tuple),
        st.dictionaries(st.one_of(strategies.texts(6), st.integers(-3, 3)), children, max_size=3),
    ),
    max_leaves=8,
)


@st.composite
def records(draw: st.DrawFn) -> ReadableLogRecord:
    api = ApiLogRecord(
        timestamp=draw(st.none() | st.integers(0, 2**64 - 1)),
        observed_timestamp=draw(st.integers(0, 2**64 - 1)),
        severity_number=draw(st.none() | st.sampled_from(SeverityNumber)),
        severity_text=draw(st.none() | strategies.texts()),
        body=draw(bodies),
        event_name=draw(st.none() | strategies.texts()),
        context=Context(),
    )
    attributes = draw(strategies.attributes(wide=True))
    if draw(st.booleans()):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", LogRecordDroppedAttributesWarning)
            attributes = BoundedAttributes(maxlen=2, attributes=attributes, immutable=False)  # type: ignore[assignment]
    api.attributes = attributes
    api.trace_id = draw(st.sampled_from([0, 1, 2**128 - 1]) | st.integers(0, 2**128 - 1))
    api.span_id = draw(st.sampled_from([0, 1, 2**64 - 1]) | st.integers(0, 2**64 - 1))
    api.trace_flags = draw(st.sampled_from([TraceFlags(0), TraceFlags(1), TraceFlags(0xFF), None]))
    scope = draw(st.sampled_from([None, InstrumentationScope("h", "1", "https://s")]))
    return ReadableLogRecord(log_record=api, resource=RESOURCE, instrumentation_scope=scope)


RESOURCE = Resource({"service.name": "hypothesis"})


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(batch=st.lists(records(), min_size=1, max_size=4))
def test_any_records_are_written_alike_and_as_the_official_encoder_decodes_them(batch: list[Any]) -> None:
    alike(each(lambda: [field(record) for record in batch]))
    framed = alike(each(lambda: frame(batch)))
    assert framed == encode_log_records(batch)
    official = [r for r in batch if r.log_record.trace_flags is not None]  # the official encoder: int(flags)
    if official == batch and all(fits(r.log_record.body) and fits(dict(r.log_record.attributes)) for r in batch):
        assert ExportLogsServiceRequest.FromString(framed) == official_encode_logs(batch)


BAD_FIELDS: list[tuple[str, Any]] = [
    ("timestamp", -1),
    ("timestamp", 2**64),
    ("timestamp", 1.5),
    ("observed_timestamp", "now"),
    ("trace_id", 2**128),
    ("trace_id", -5),
    ("trace_id", b"\x01"),
    ("span_id", 2**64),
    ("span_id", -1),
    ("trace_flags", 2**32),
    ("trace_flags", -1),
    ("severity_text", 7),
    ("event_name", b"name"),
    ("body", {1, 2}),
    ("body", [object()]),
    ("attributes", {b"key": 1}),
]


@pytest.mark.parametrize(("name", "value"), BAD_FIELDS)
def test_what_neither_writer_can_encode_both_refuse(name: str, value: Any) -> None:
    api = ApiLogRecord(timestamp=T0, body="ok", context=Context())
    setattr(api, name, value)
    record = ReadableLogRecord(log_record=api, resource=RESOURCE)
    outcome = each(lambda: field(record))
    assert all(isinstance(result, type) and issubclass(result, Exception) for result in outcome.values()), outcome
    # at the source: the object itself is queued (framed from it at export, where it is dropped as invalid)
    source = SourceEncoder("logs")
    assert alike(each(lambda: source.item(record))) is record


# ------------------------------------------------------------------------------------------------------------
# Values left out: counted, or the body replaced


def nested(depth: int) -> Any:
    value: Any = "leaf"
    for i in range(depth):
        value = {"k": value} if i % 2 else [value]
    return value


def test_ints_outside_int64_and_bodies_too_deep_are_left_out_or_replaced() -> None:
    provider = LoggerProvider(resource=RESOURCE, shutdown_on_exit=False)
    capture = Capture()
    provider.add_log_record_processor(capture)
    logger = provider.get_logger("rules")
    loop: list[Any] = ["x"]
    loop.append(loop)
    cases: list[tuple[Any, str]] = [
        (2**63, BODY_INT_OUT_OF_RANGE),
        (-(2**63) - 1, BODY_INT_OUT_OF_RANGE),
        ({"n": [1, 2**64]}, BODY_INT_OUT_OF_RANGE),
        (nested(MAX_NESTING_DEPTH + 1), BODY_TOO_DEEP),
        ([2**70, nested(MAX_NESTING_DEPTH + 1)], BODY_TOO_DEEP),  # too deep is found first, as _coerce does
        ([nested(MAX_NESTING_DEPTH + 1), 2**70], BODY_TOO_DEEP),
        (loop, BODY_TOO_DEEP),  # a body that holds itself
    ]
    for body, _ in cases:
        logger.emit(body=body, attributes={"ok": 1, "big": 2**64, "small": -(2**63) - 1, "deep": nested(30)})
    logger.emit(body=nested(MAX_NESTING_DEPTH), attributes={"ok": 2})  # the limit itself: sent whole
    provider.shutdown()
    records = capture.emitted
    framed = alike(each(lambda: frame(records)))
    assert framed == encode_log_records(records)
    decoded = ExportLogsServiceRequest.FromString(framed).resource_logs[0].scope_logs[0].log_records
    for (_, text), record in zip(cases, decoded, strict=False):
        assert record.body.string_value == text
        assert [kv.key for kv in record.attributes] == ["ok"]
        assert record.dropped_attributes_count == 3  # left out, and counted
    last = decoded[-1]
    assert last.body.WhichOneof("value") == "kvlist_value" and last.dropped_attributes_count == 0
    assert last == official_encode_logs([records[-1]]).resource_logs[0].scope_logs[0].log_records[0]


# ------------------------------------------------------------------------------------------------------------
# What is queued


def test_a_queued_record_is_bytes_under_600_and_its_record_is_freed() -> None:
    provider = LoggerProvider(resource=Resource({"service.name": "bytes"}), shutdown_on_exit=False)
    capture = Capture()
    provider.add_log_record_processor(capture)
    provider.get_logger("bytes").emit(body="request handled", attributes=sdk_data.ATTRIBUTES)
    record = capture.emitted.pop()
    capture.queued.clear()
    capture.others.clear()
    alive = weakref.ref(record)
    for item in each(lambda record=record: SourceEncoder("logs").item(record)).values():
        gc.collect()
        assert type(item) is tuple and gc.is_tracked(item) is False  # after its first collection: an int and bytes
        assert sys.getsizeof(item) + sys.getsizeof(item[1]) <= 600
    del record
    gc.collect()
    assert alive() is None  # the queued item keeps no reference to the record


# ------------------------------------------------------------------------------------------------------------
# End to end: a LoggerProvider, a plain thread, a FakeCollector


CLIENTS = ["http/protobuf", "grpc-h2", "grpc-grpcio"]


def exporter_for(collector: FakeCollector, client: str) -> LogExporter:
    if client == "http/protobuf":
        return LogExporter(endpoint=f"{collector.http_endpoint}/v1/logs", protocol="http/protobuf")
    implementation: Any = client.removeprefix("grpc-")
    return LogExporter(
        endpoint=collector.grpc_endpoint,
        protocol="grpc",
        transport_factory=lambda config: make_transport(config, grpc_implementation=implementation),
    )


def in_thread(func: Callable[[], None]) -> None:
    failures: list[BaseException] = []

    def run() -> None:
        try:
            func()
        except BaseException as exc:  # pragma: no cover - reported below
            failures.append(exc)

    thread = threading.Thread(target=run)
    thread.start()
    thread.join()
    assert not failures, failures


async def emit_through_a_provider(collector: FakeCollector, client: str, encode: bool) -> tuple[list[bytes], Any]:
    """The same records (fixed times, no trace context) emitted from a plain thread; the request bodies as
    received, and the processor's statistics."""
    collector.clear()
    processor = BatchLogRecordProcessor(
        exporter_for(collector, client),
        max_queue_size=4096,
        max_export_batch_size=4096,
        schedule_delay_millis=60_000,
        encode_at_source=encode,
    )
    assert processor.encodes_at_source is encode
    provider = LoggerProvider(resource=sdk_data.RESOURCE_A, shutdown_on_exit=False)
    provider.add_log_record_processor(processor)
    loggers = [provider.get_logger("one", "1.0", schema_url="https://schema/l/1"), provider.get_logger("two")]

    def emit() -> None:
        for index, body in enumerate([*sdk_data.BODIES, *EXOTIC_BODIES]):
            loggers[index % 2].emit(
                timestamp=T0 + index,
                observed_timestamp=T0 + 1000 + index,
                severity_number=SeverityNumber.WARN if index % 3 else None,
                severity_text="WARN",
                body=body,
                attributes={"i": index, "big": 2**64, "map": {"a": [1, {"b": b"\x02"}]}},
                event_name="ev" if index % 4 else None,
            )

    await asyncio.to_thread(in_thread, emit)
    assert await asyncio.to_thread(provider.force_flush) is True
    await asyncio.to_thread(provider.shutdown)
    assert not collector.bad_requests
    return [request.body for request in collector.requests(Signal.LOGS)], processor.statistics()


@pytest.mark.usefixtures("encoder_implementation")
@pytest.mark.parametrize("client", CLIENTS)
async def test_records_emitted_from_a_thread_arrive_with_the_object_paths_bytes(
    collector: FakeCollector, client: str
) -> None:
    by_object, stats_object = await emit_through_a_provider(collector, client, False)
    at_source, stats_source = await emit_through_a_provider(collector, client, True)
    count = len(sdk_data.BODIES) + len(EXOTIC_BODIES)
    assert len(at_source) == 1 and at_source == by_object
    assert stats_source.exported == stats_object.exported == count
    assert stats_source.balanced and stats_source.dropped_total == 0
    request = ExportLogsServiceRequest.FromString(at_source[0])
    assert [len(sl.log_records) for sl in request.resource_logs[0].scope_logs] == [(count + 1) // 2, count // 2]


@pytest.mark.usefixtures("encoder_implementation")
@pytest.mark.parametrize("client", ["http/protobuf", "grpc-h2"])
async def test_a_record_that_cannot_be_encoded_is_counted_as_invalid(collector: FakeCollector, client: str) -> None:
    processor = BatchLogRecordProcessor(exporter_for(collector, client), schedule_delay_millis=60_000)
    assert processor.encodes_at_source
    provider = LoggerProvider(resource=RESOURCE, shutdown_on_exit=False)
    provider.add_log_record_processor(processor)
    logger = provider.get_logger("invalid")

    def emit() -> None:
        for i in range(10):
            if i == 3:
                logger.emit(body={"a set", "cannot be sent"})
            elif i == 7:
                logger.emit(body="a negative time", timestamp=-1)
            else:
                logger.emit(body=f"record {i}")

    await asyncio.to_thread(in_thread, emit)
    await asyncio.to_thread(provider.force_flush)
    stats = processor.statistics()
    assert (stats.exported, stats.dropped["invalid"]) == (8, 2)
    assert stats.balanced
    assert [r.body.string_value for r in collector.log_records()] == [
        f"record {i}" for i in range(10) if i not in (3, 7)
    ]
    await asyncio.to_thread(provider.shutdown)


@pytest.fixture
def handler_logger() -> Iterator[logging.Logger]:
    logger = logging.getLogger("tests.encode_logs_source")
    logger.propagate = False
    logger.setLevel(logging.INFO)
    yield logger
    for handler in list(logger.handlers):
        logger.removeHandler(handler)
    logger.propagate = True


@pytest.mark.usefixtures("encoder_implementation")
@pytest.mark.parametrize("client", ["http/protobuf", "grpc-h2"])
async def test_python_logging_through_the_sdks_handler(
    collector: FakeCollector, client: str, handler_logger: logging.Logger
) -> None:
    """How most applications emit: ``logging`` calls, opentelemetry-instrumentation-logging's handler (the SDK's
    own is deprecated), from a plain thread."""
    processor = BatchLogRecordProcessor(exporter_for(collector, client), schedule_delay_millis=60_000)
    provider = LoggerProvider(resource=RESOURCE, shutdown_on_exit=False)
    provider.add_log_record_processor(processor)
    handler_logger.addHandler(LoggingHandler(logger_provider=provider))

    def emit() -> None:
        handler_logger.info("user %s logged in", "ada", extra={"user.id": 7, "huge": 2**64})
        try:
            raise ValueError("boom")
        except ValueError:
            handler_logger.exception("it failed")

    await asyncio.to_thread(in_thread, emit)
    assert await asyncio.to_thread(provider.force_flush) is True
    first, second = collector.log_records()
    assert (first.body.string_value, first.severity_text, first.severity_number) == ("user ada logged in", "INFO", 9)
    attributes = {kv.key: kv.value for kv in first.attributes}
    assert attributes["user.id"].int_value == 7 and "huge" not in attributes and first.dropped_attributes_count == 1
    assert second.body.string_value == "it failed" and second.severity_number == 17
    assert {kv.key for kv in second.attributes} >= {"exception.type", "exception.message", "exception.stacktrace"}
    stats = processor.statistics()
    assert stats.exported == 2 and stats.balanced
    await asyncio.to_thread(provider.shutdown)


def test_the_compiled_writers_leave_the_buffer_as_it_was_on_an_error() -> None:
    need_compiled()
    speedups: Any = _compat.speedups
    good = ReadableLogRecord(log_record=ApiLogRecord(timestamp=T0, body="ok", context=Context()), resource=RESOURCE)
    bad = ReadableLogRecord(log_record=ApiLogRecord(timestamp=-1, body="bad", context=Context()), resource=RESOURCE)
    buf = bytearray(b"kept")
    with pytest.raises(Exception, match="timestamp"):
        speedups.write_sdk_logs(buf, [good, bad], (BoundedAttributes,))
    assert buf == b"kept"
    speedups.write_sdk_logs(buf, iter([good, good]), (BoundedAttributes,))  # any iterable
    assert buf == b"kept" + speedups.sdk_log_field((BoundedAttributes,), good) * 2
    with pytest.raises(TypeError, match="BoundedAttributes"):
        speedups.sdk_log_field((), good)
    with pytest.raises(TypeError, match="2 arguments"):
        speedups.sdk_log_field((BoundedAttributes,))
    with pytest.raises(AttributeError):
        speedups.sdk_log_field((BoundedAttributes,), object())  # no log_record


EXIT_WITHOUT_SHUTDOWN = """
import sys, threading
from opentelemetry.sdk._logs import LoggerProvider
from opentelemetry.sdk.resources import Resource
from aiotlp.encoding import _compat
from aiotlp.sdk import BatchLogRecordProcessor, LogExporter

provider = LoggerProvider(resource=Resource({"service.name": "exit"}))
processor = BatchLogRecordProcessor(LogExporter(endpoint=sys.argv[1]), schedule_delay_millis=60_000)
provider.add_log_record_processor(processor)
logger = provider.get_logger("exit")

def emit():
    for i in range(100):
        logger.emit(body={"i": i, "big": 2**64} if i % 10 == 0 else {"i": i}, attributes={"i": i})

thread = threading.Thread(target=emit)
thread.start()
thread.join()
print(_compat.implementation(), processor.encodes_at_source)
# no shutdown: the SDK's atexit handler shuts the provider down, and the records go then
"""


@pytest.mark.parametrize(("no_extensions", "implementation"), [("", "c"), ("1", "python")])
async def test_a_program_that_exits_without_shutdown_delivers_its_records(
    collector: FakeCollector, no_extensions: str, implementation: str
) -> None:
    """A program run the way users run it (the writer chosen by AIOTLP_NO_EXTENSIONS, records emitted from a
    thread, no shutdown call): every record arrives, encoded at the source by that writer."""
    if implementation == "c":
        need_compiled()
    environment = {**os.environ, "AIOTLP_NO_EXTENSIONS": no_extensions}
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        EXIT_WITHOUT_SHUTDOWN,
        f"{collector.http_endpoint}/v1/logs",
        env=environment,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(process.communicate(), timeout=60)
    assert process.returncode == 0, err.decode()
    assert out.decode().split() == [implementation, "True"]
    records = collector.log_records()
    assert len(records) == 100
    for i, record in enumerate(records):
        if i % 10 == 0:
            assert record.body.string_value == BODY_INT_OUT_OF_RANGE
        else:
            assert [(kv.key, kv.value.int_value) for kv in record.body.kvlist_value.values] == [("i", i)]


class Pausing(Mapping[str, Any]):
    """A mapping body that, as the writer reads it, lets another thread write a whole record first."""

    def __init__(self, entered: threading.Event, done: threading.Event, **items: Any) -> None:
        self._items = items
        self._entered = entered
        self._done = done

    def __getitem__(self, key: str) -> Any:
        return self._items[key]

    def __iter__(self) -> Iterator[str]:
        self._entered.set()
        assert self._done.wait(30)
        return iter(self._items)

    def __len__(self) -> int:
        return len(self._items)


def test_a_thread_that_writes_while_another_is_inside_a_record_gets_its_own_bytes() -> None:
    """The compiled writer keeps one reusable buffer: a thread that enters while another is inside a record (its
    body runs Python code that lets go of the GIL) writes into a buffer of its own."""
    need_compiled()
    entered, done = threading.Event(), threading.Event()
    base = ReadableLogRecord(log_record=ApiLogRecord(timestamp=T0, context=Context()), resource=RESOURCE)
    paused = with_body(base, Pausing(entered, done, first="x" * 40, second=2))
    other_record = ApiLogRecord(timestamp=T0 + 1, severity_text="OTHER", context=Context())
    other = with_body(ReadableLogRecord(log_record=other_record, resource=RESOURCE), ["y" * 300, 1, 2, 3])
    done.set()
    expected = alike(each(lambda: [field(paused), field(other)]))
    done.clear()
    results: dict[str, bytes] = {}

    def write_paused() -> None:
        results["paused"] = field(paused)

    def write_other() -> None:
        assert entered.wait(30)
        results["other"] = field(other)
        done.set()

    previous = _compat.implementation()
    _compat.use("c")
    try:
        threads = [threading.Thread(target=write_paused), threading.Thread(target=write_other)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    finally:
        _compat.use(previous)
    assert [results["paused"], results["other"]] == expected


def test_each_choice_binds_its_log_writers_everywhere() -> None:
    """``_compat.use`` rebinds both log writers where they are read: the source encoder's and the batch encoder's."""
    from aiotlp.sdk import _encode_source

    need_compiled()
    speedups: Any = _compat.speedups
    previous = _compat.implementation()
    try:
        _compat.use("c")
        compiled = encode_logs_module._log_field
        assert getattr(compiled, "func", None) is speedups.sdk_log_field
        assert _encode_source._log_field is compiled
        assert encode_logs_module._write_log_records.__name__ == "_write_log_records_compiled"
        _compat.use("python")
        pure = encode_logs_module._log_field
        assert pure.__module__ == "aiotlp.sdk._encode_logs" and pure.__name__ == "_log_field"
        assert _encode_source._log_field is pure
        assert encode_logs_module._write_log_records.__name__ == "_write_log_records"
    finally:
        _compat.use(previous)
