"""The direct SDK encoders against the official encoder (opentelemetry-exporter-otlp-proto-common), in process.

Equality is checked on the decoded official messages. The one deliberate deviation, a link's trace_state (the
official encoder drops it, aiotlp writes it), is asserted and then cleared before comparing.

Private names, on purpose: the exporters' metric helpers (``count_data_points``, ``encode_metric_items``,
``metric_items``, ``split_metric_item`` of ``aiotlp.sdk._encode``) are tested directly; and two cases write an SDK
object's private state (``BoundedAttributes._dict``, ``InstrumentationScope._attributes``) to build what the SDK's
own checks would refuse, as a hand-made object may carry.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

import pytest
from opentelemetry.exporter.otlp.proto.common._log_encoder import encode_logs as official_encode_logs
from opentelemetry.exporter.otlp.proto.common.metrics_encoder import encode_metrics as official_encode_metrics
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans as official_encode_spans
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import ExportMetricsServiceRequest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.sdk.metrics.export import (
    AggregationTemporality,
    Metric,
    MetricsData,
    NumberDataPoint,
    ResourceMetrics,
    ScopeMetrics,
    Sum,
)
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.util.instrumentation import InstrumentationScope
from opentelemetry.trace import SpanContext, TraceFlags, TraceState
from tests.sdk import sdk_data

from aiotlp.model import Signal
from aiotlp.sdk import (
    encode_log_records,
    encode_log_records_json,
    encode_metrics_data,
    encode_metrics_data_json,
    encode_spans,
    encode_spans_json,
)
from aiotlp.sdk._encode import (
    count_data_points,
    encode_metric_items,
    metric_items,
    split_metric_item,
)
from aiotlp.testing import otlp_json_to_message

# Every case runs with the pure-Python encoder and with the compiled accelerator (tests/conftest.py).
pytestmark = pytest.mark.usefixtures("encoder_implementation")


def clear_link_trace_states(message: ExportTraceServiceRequest) -> int:
    """Clear every link's trace_state (the official encoder leaves it out); return how many were set."""
    cleared = 0
    for resource_spans in message.resource_spans:
        for scope_spans in resource_spans.scope_spans:
            for span in scope_spans.spans:
                for link in span.links:
                    cleared += bool(link.trace_state)
                    link.trace_state = ""
    return cleared


@pytest.fixture(scope="module")
def spans() -> list[ReadableSpan]:
    return sdk_data.spans()


def test_spans_decode_like_the_official_encoder(spans: list[ReadableSpan]) -> None:
    expected = official_encode_spans(spans)
    ours = ExportTraceServiceRequest.FromString(encode_spans(spans))
    # Deviation: aiotlp writes Link.trace_state, which the official encoder drops.
    assert clear_link_trace_states(ours) == 2
    assert ours == expected
    # the data really covers what it claims to
    flags = {span.flags for rs in ours.resource_spans for ss in rs.scope_spans for span in ss.spans}
    assert flags == {0x100, 0x300}
    kinds = {span.kind for rs in ours.resource_spans for ss in rs.scope_spans for span in ss.spans}
    assert kinds == {1, 2, 3, 4, 5}
    assert any(
        span.dropped_attributes_count and span.dropped_events_count and span.dropped_links_count
        for rs in ours.resource_spans
        for ss in rs.scope_spans
        for span in ss.spans
    )


def test_spans_bytes_are_the_deterministic_serialization(spans: list[ReadableSpan]) -> None:
    body = encode_spans(spans)
    assert ExportTraceServiceRequest.FromString(body).SerializeToString(deterministic=True) == body


def test_spans_json_decodes_to_the_same_message(spans: list[ReadableSpan]) -> None:
    ours = otlp_json_to_message(Signal.TRACES, encode_spans_json(spans))
    assert ours == ExportTraceServiceRequest.FromString(encode_spans(spans))


def test_log_records_decode_like_the_official_encoder() -> None:
    records = sdk_data.log_records()
    expected = official_encode_logs(records)
    body = encode_log_records(records)
    assert ExportLogsServiceRequest.FromString(body) == expected
    assert expected.SerializeToString(deterministic=True) == body
    assert otlp_json_to_message(Signal.LOGS, encode_log_records_json(records)) == expected
    bodies = [r.body for rl in expected.resource_logs for sl in rl.scope_logs for r in sl.log_records]
    assert {body.WhichOneof("value") for body in bodies} == {
        "string_value",
        "int_value",
        "double_value",
        "bool_value",
        "bytes_value",
        "array_value",
        "kvlist_value",
        None,  # a None body: present, an empty AnyValue, as the official encoder writes it
    }


def test_metrics_decode_like_the_official_encoder() -> None:
    data = sdk_data.metrics_data()
    expected = official_encode_metrics(data)
    body = encode_metrics_data(data)
    assert ExportMetricsServiceRequest.FromString(body) == expected
    assert expected.SerializeToString(deterministic=True) == body
    assert otlp_json_to_message(Signal.METRICS, encode_metrics_data_json(data)) == expected
    kinds = {m.WhichOneof("data") for rm in expected.resource_metrics for sm in rm.scope_metrics for m in sm.metrics}
    assert kinds == {"sum", "gauge", "histogram", "exponential_histogram"}


def test_empty_batches() -> None:
    assert encode_spans([]) == b""
    assert encode_spans_json([]) == b"{}"
    assert encode_log_records([]) == b""
    assert encode_log_records_json([]) == b"{}"
    assert encode_metrics_data(MetricsData([])) == b""
    assert encode_metrics_data_json(MetricsData([])) == b"{}"


class _RenamingSpan(ReadableSpan):
    """A ReadableSpan subclass that overrides an accessor: the encoder must use the public API for it."""

    @property
    def name(self) -> str:
        return "renamed " + self._name


def test_a_span_class_that_overrides_accessors_is_read_through_them(spans: list[ReadableSpan]) -> None:
    original = spans[0]
    renamed = _RenamingSpan(
        name=original.name,
        context=original.context,
        parent=original.parent,
        resource=original.resource,
        attributes=original.attributes,
        events=original.events,
        links=original.links,
        kind=original.kind,
        status=original.status,
        start_time=original.start_time,
        end_time=original.end_time,
        instrumentation_scope=original.instrumentation_scope,
    )
    ours = ExportTraceServiceRequest.FromString(encode_spans([renamed, original]))
    clear_link_trace_states(ours)
    assert ours == official_encode_spans([renamed, original])
    names = [span.name for span in ours.resource_spans[0].scope_spans[0].spans]
    assert names == ["renamed " + original.name, original.name]


def _plain_span(name: str, resource: Resource, scope: InstrumentationScope | None, **kwargs: Any) -> ReadableSpan:
    return ReadableSpan(
        name=name,
        context=SpanContext(0xA1, 0xB2, is_remote=False, trace_flags=TraceFlags(1)),
        resource=resource,
        instrumentation_scope=scope,
        start_time=1,
        end_time=2,
        **kwargs,
    )


def test_equal_resources_and_scopes_are_grouped_by_equality_as_officially() -> None:
    # Distinct but equal resource and scope objects, interleaved: the official encoder merges them (dict keys).
    r1, r2, r3 = Resource({"a": 1}), Resource({"a": 1}), Resource({"a": 2})
    s1, s2 = InstrumentationScope("s", "1"), InstrumentationScope("s", "1")
    batch = [
        _plain_span("1", r1, s1),
        _plain_span("2", r3, s1),
        _plain_span("3", r2, s2),
        _plain_span("4", r1, None),
        _plain_span("5", r2, s1),
    ]
    ours = ExportTraceServiceRequest.FromString(encode_spans(batch))
    assert ours == official_encode_spans(batch)
    assert [[[s.name for s in ss.spans] for ss in rs.scope_spans] for rs in ours.resource_spans] == [
        [["1", "3", "5"], ["4"]],
        [["2"]],
    ]


def test_span_without_scope_or_attributes_and_trace_state_without_parent() -> None:
    span = ReadableSpan(
        name="",
        context=SpanContext(5, 6, is_remote=False, trace_state=TraceState([("k", "v")])),
        attributes={"plain": "dict"},
        start_time=0,
        end_time=None,
    )
    assert ExportTraceServiceRequest.FromString(encode_spans([span])) == official_encode_spans([span])
    assert otlp_json_to_message(Signal.TRACES, encode_spans_json([span])) == official_encode_spans([span])


def test_metric_items_count_and_split() -> None:
    data = sdk_data.metrics_data()
    items = metric_items(data)
    assert count_data_points(items) == sum(
        len(m.data.data_points) for rm in data.resource_metrics for sm in rm.scope_metrics for m in sm.metrics
    )
    big = max(items, key=lambda item: len(item[2].data.data_points))
    halves = split_metric_item(big)
    assert count_data_points(halves) == count_data_points([big]) >= 2
    assert all(half[0] is big[0] and half[1] is big[1] for half in halves)
    # Halves encode to one metric each with the points in order.
    request = ExportMetricsServiceRequest.FromString(encode_metric_items(halves))
    metrics = request.resource_metrics[0].scope_metrics[0].metrics
    assert [m.name for m in metrics] == [big[2].name, big[2].name]


def _sum_metric(points: Sequence[NumberDataPoint]) -> MetricsData:
    metric = Metric("m", None, None, Sum(points, AggregationTemporality.CUMULATIVE, True))
    scope = InstrumentationScope("s")
    return MetricsData([ResourceMetrics(Resource({}), [ScopeMetrics(scope, [metric], "")], "")])


def test_a_metric_without_data_points_has_no_data_as_officially() -> None:
    data = _sum_metric([])
    ours = ExportMetricsServiceRequest.FromString(encode_metrics_data(data))
    assert ours == official_encode_metrics(data)
    assert ours.resource_metrics[0].scope_metrics[0].metrics[0].WhichOneof("data") is None
    assert otlp_json_to_message(Signal.METRICS, encode_metrics_data_json(data)) == ours


def test_an_unknown_metric_data_type_is_sent_without_data(caplog: pytest.LogCaptureFixture) -> None:
    class Strange:
        data_points = (NumberDataPoint({}, 1, 2, 3),)

    data = _sum_metric([NumberDataPoint({}, 1, 2, 3)])
    metric = data.resource_metrics[0].scope_metrics[0].metrics[0]
    object.__setattr__(metric, "data", Strange())
    with caplog.at_level(logging.WARNING, logger="aiotlp.sdk"):
        ours = ExportMetricsServiceRequest.FromString(encode_metrics_data(data))
    assert ours.resource_metrics[0].scope_metrics[0].metrics[0].name == "m"
    assert ours.resource_metrics[0].scope_metrics[0].metrics[0].WhichOneof("data") is None
    assert "unsupported data type Strange" in caplog.text


def test_an_unencodable_attribute_value_raises() -> None:
    # The SDK cleans attribute values; a hand-made span can still carry anything. The exporter drops such
    # items (see test_exporters); the encoder raises.
    span = _plain_span("bad", Resource({}), None, attributes={"bad": object()})
    with pytest.raises(ValueError, match="cannot encode"):
        encode_spans([span])


# -- depth: nothing is ever sent nested deeper than a collector's decoder accepts --------------------------------


def _nested(depth: int) -> Any:
    value: Any = "leaf"
    for i in range(depth):
        value = {"k": value} if i % 2 else [value]
    return value


def _self_referencing() -> list[Any]:
    value: list[Any] = ["x"]
    value.append(value)
    return value


def _depth_of(value: Any) -> int:
    """Lists and mappings around the deepest leaf of a decoded AnyValue."""
    kind = value.WhichOneof("value")
    if kind == "array_value":
        return 1 + max((_depth_of(v) for v in value.array_value.values), default=0)
    if kind == "kvlist_value":
        return 1 + max((_depth_of(kv.value) for kv in value.kvlist_value.values), default=0)
    return 0


def test_log_attributes_and_bodies_nested_too_deep_are_counted_or_replaced() -> None:
    from opentelemetry.sdk._logs import LoggerProvider
    from opentelemetry.sdk._logs.export import InMemoryLogRecordExporter, SimpleLogRecordProcessor

    from aiotlp.encoding import BODY_TOO_DEEP
    from aiotlp.model import MAX_NESTING_DEPTH

    memory = InMemoryLogRecordExporter()
    provider = LoggerProvider()
    provider.add_log_record_processor(SimpleLogRecordProcessor(memory))
    logger = provider.get_logger("depth")
    deepest, too_deep = _nested(MAX_NESTING_DEPTH), _nested(MAX_NESTING_DEPTH + 1)
    logger.emit(body=deepest, attributes={"deepest": deepest, "ok": 1})  # the limit itself: sent whole
    logger.emit(body=too_deep, attributes={"too_deep": too_deep, "ok": 2})  # the SDK takes it; we must not send it
    records = [*memory.get_finished_logs()]
    records.append(_with_body(records[0], _self_referencing()))
    provider.shutdown()
    for encoded in (
        ExportLogsServiceRequest.FromString(encode_log_records(records)),
        otlp_json_to_message(Signal.LOGS, encode_log_records_json(records)),
    ):
        first, second, third = encoded.resource_logs[0].scope_logs[0].log_records
        assert first == official_encode_logs(records[:1]).resource_logs[0].scope_logs[0].log_records[0]
        assert _depth_of(first.body) == MAX_NESTING_DEPTH
        assert {kv.key: _depth_of(kv.value) for kv in first.attributes} == {"deepest": MAX_NESTING_DEPTH, "ok": 0}
        assert [kv.key for kv in second.attributes] == ["ok"]
        assert second.dropped_attributes_count == 1  # left out, and counted
        assert second.body.string_value == BODY_TOO_DEEP
        assert third.body.string_value == BODY_TOO_DEEP  # a body that contains itself: too deep, not a crash
        assert f"{MAX_NESTING_DEPTH} levels" in BODY_TOO_DEEP


def _with_body(readable: Any, body: Any) -> Any:
    """A copy of an SDK ReadableLogRecord with another body (a self-referencing one: see the test)."""
    import copy
    import dataclasses

    record = copy.copy(readable.log_record)
    record.body = body
    return dataclasses.replace(readable, log_record=record)


def test_span_event_link_resource_and_scope_attributes_nested_too_deep_are_left_out_and_counted() -> None:
    from opentelemetry.attributes import BoundedAttributes
    from opentelemetry.sdk.trace import Event
    from opentelemetry.trace import Link

    from aiotlp.model import MAX_NESTING_DEPTH

    too_deep = {"deep": _nested(MAX_NESTING_DEPTH + 1), "self": _self_referencing(), "ok": "kept"}
    bounded = BoundedAttributes(maxlen=None, attributes={"ok": "kept"})
    bounded._dict.update(deep=_nested(10_000))  # past the SDK's own cleaning, as a hand-made span may be
    bounded.dropped = 5
    link = Link(SpanContext(0xC3, 0xD4, is_remote=True), attributes=dict(too_deep))
    scope = InstrumentationScope("s", "1")
    scope._attributes = dict(too_deep)  # type: ignore[assignment]  # the SDK would refuse it (RecursionError)
    spans = [
        _plain_span(
            "deep",
            Resource({"ok": "kept"}),
            scope,
            attributes=dict(too_deep),
            events=[Event("e", attributes=dict(too_deep), timestamp=3)],
            links=[link],
        ),
        _plain_span("bounded", Resource({"ok": "kept"}), None, attributes=bounded),
    ]
    for encoded in (
        ExportTraceServiceRequest.FromString(encode_spans(spans)),
        otlp_json_to_message(Signal.TRACES, encode_spans_json(spans)),
    ):
        scopes = encoded.resource_spans[0].scope_spans
        scope = scopes[0].scope
        assert ([kv.key for kv in scope.attributes], scope.dropped_attributes_count) == (["ok"], 2)
        deep, bounded_span = scopes[0].spans[0], scopes[1].spans[0]
        for item in (deep, deep.events[0], deep.links[0]):
            assert [kv.key for kv in item.attributes] == ["ok"]
            assert item.dropped_attributes_count == 2
        assert [kv.key for kv in bounded_span.attributes] == ["ok"]
        assert bounded_span.dropped_attributes_count == 5 + 1  # the SDK's count, and ours
