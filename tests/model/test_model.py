"""The model validates once, at the constructor, with errors that name the field."""

from __future__ import annotations

import math

import pytest

from aiotlp.model import (
    MAX_NESTING_DEPTH,
    Buckets,
    Event,
    ExponentialHistogramDataPoint,
    Gauge,
    HistogramDataPoint,
    InstrumentationScope,
    Link,
    LogRecord,
    Metric,
    NumberDataPoint,
    Resource,
    SeverityNumber,
    Span,
    SpanKind,
    Status,
    Sum,
)

IDS = {"trace_id": b"\x01" * 16, "span_id": b"\x02" * 8}


def span(**kwargs: object) -> Span:
    fields: dict[str, object] = {**IDS, "name": "s", "start_time_unix_nano": 1, "end_time_unix_nano": 2, **kwargs}
    return Span(**fields)  # type: ignore[arg-type]


def test_every_attribute_kind_is_accepted_and_normalized() -> None:
    s = span(attributes={"l": [1, "a", [2.5, None]], "m": {"k": b"x"}, "b": bytearray(b"y"), "n": None, "f": math.inf})
    assert s.attributes == {"l": (1, "a", (2.5, None)), "m": {"k": b"x"}, "b": b"y", "n": None, "f": math.inf}


def test_ids_given_as_ints_become_bytes() -> None:
    s = span(trace_id=1, span_id=2, parent_span_id=3)
    assert s.trace_id == (1).to_bytes(16, "big") and s.span_id == (2).to_bytes(8, "big")
    assert s.parent_span_id == (3).to_bytes(8, "big")


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"trace_id": b"short"}, "Span.trace_id: must be 16 bytes"),
        ({"trace_id": bytes(16)}, "Span.trace_id: must not be all zeros"),
        ({"trace_id": 0}, "Span.trace_id: must not be all zeros"),
        ({"span_id": 2**64}, "Span.span_id"),
        ({"parent_span_id": b"\x01"}, "Span.parent_span_id"),
        ({"kind": 9}, "Span.kind: 9 is not a valid SpanKind"),
        ({"start_time_unix_nano": -1}, "Span.start_time_unix_nano"),
        ({"attributes": {"x": object()}}, "Span.attributes['x']: object is not an attribute value"),
        ({"attributes": {1: "x"}}, "Span.attributes: key 1 is not a str"),
        ({"attributes": "x=1"}, "Span.attributes: expected a mapping"),
        ({"events": [object()]}, "Span.events[0]: expected Event"),
        ({"links": "x"}, "Span.links: expected a sequence of Link"),
        ({"status": "ok"}, "Span.status: expected Status"),
        ({"resource": {}}, "Span.resource: expected Resource"),
        ({"flags": -1}, "Span.flags"),
        ({"name": None}, "Span.name: expected a str"),
    ],
)
def test_span_errors_name_the_field(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises((ValueError, TypeError)) as info:
        span(**kwargs)
    assert message in str(info.value)


def test_optional_all_zero_ids_mean_absent() -> None:
    assert span(parent_span_id=bytes(8)).parent_span_id == b""
    assert LogRecord(trace_id=bytes(16), span_id=bytes(8)).trace_id == b""


def test_ints_outside_int64_are_accepted_for_the_encoders_to_leave_out() -> None:
    # A uint64 id from another system: the encoders leave the attribute out (counted), see aiotlp.encoding.
    assert span(attributes={"id": 2**64 - 1, "low": -(2**63) - 1}).attributes == {"id": 2**64 - 1, "low": -(2**63) - 1}
    assert LogRecord(body=[2**64]).body == (2**64,)
    assert NumberDataPoint(2**64 - 1).value == 2**64 - 1


def test_self_referencing_and_too_deep_values_are_refused() -> None:
    loop: list[object] = []
    loop.append(loop)
    with pytest.raises(ValueError, match="nested deeper"):
        Resource({"loop": loop})
    deep: object = "leaf"
    for _ in range(MAX_NESTING_DEPTH + 1):
        deep = [deep]
    with pytest.raises(ValueError, match="nested deeper"):
        LogRecord(body=deep)  # type: ignore[arg-type]


def test_nested_parts_validate_too() -> None:
    with pytest.raises(ValueError, match=r"Link.span_id"):
        Link(b"\x01" * 16, b"\x01")
    with pytest.raises(TypeError, match=r"Event.name"):
        Event(None)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"Status.code"):
        Status(7)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match=r"InstrumentationScope.name"):
        InstrumentationScope(1)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"LogRecord.severity_number"):
        LogRecord(severity_number=99)  # type: ignore[arg-type]
    assert LogRecord(severity_number=9).severity_number is SeverityNumber.INFO  # type: ignore[arg-type]


def test_metric_validation() -> None:
    with pytest.raises(ValueError, match="expected len\\(explicit_bounds\\) \\+ 1 = 3"):
        HistogramDataPoint(count=1, bucket_counts=[1], explicit_bounds=[1.0, 2.0])
    with pytest.raises(TypeError, match=r"NumberDataPoint.value"):
        NumberDataPoint("1")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"Buckets.offset"):
        Buckets(2**31)
    with pytest.raises(ValueError, match=r"ExponentialHistogramDataPoint.scale"):
        ExponentialHistogramDataPoint(count=0, scale=2**40)
    with pytest.raises(TypeError, match=r"Metric.data"):
        Metric("m", [])  # type: ignore[arg-type]
    with pytest.raises(TypeError, match=r"Sum.is_monotonic"):
        Sum(is_monotonic=1)  # type: ignore[arg-type]
    metric = Metric("m", Gauge([NumberDataPoint(1), NumberDataPoint(2.5)]))
    assert metric.data_point_count == 2


def test_span_kind_values_are_the_wire_values() -> None:
    assert [k.value for k in SpanKind] == [0, 1, 2, 3, 4, 5]
