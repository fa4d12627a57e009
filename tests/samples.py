"""Hand-made telemetry that uses every field and every attribute value kind, for end-to-end tests."""

from __future__ import annotations

import math

from aiotlp.model import (
    AggregationTemporality,
    Buckets,
    Event,
    Exemplar,
    ExponentialHistogram,
    ExponentialHistogramDataPoint,
    Gauge,
    Histogram,
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
    StatusCode,
    Sum,
    Summary,
    SummaryDataPoint,
    ValueAtQuantile,
)

T0 = 1_700_000_000_000_000_000

EVERY_VALUE = {
    "str": "héllo wörld ✓ 𝄞",
    "empty": "",
    "bool": True,
    "false": False,
    "int": -(2**63),
    "int_max": 2**63 - 1,
    "zero": 0,
    "float": 3.25,
    "neg_zero": -0.0,
    "inf": math.inf,
    "bytes": b"\x00\xff\x10",
    "ints": [1, 2, 3],
    "strs": ["a", "", "c"],
    "mixed": [1, "two", 3.0, True, None, b"\x01", [4, [5]], {"k": "v"}],
    "empty_list": [],
    "map": {"nested": {"deeper": [1, {"x": None}]}, "empty_map": {}},
    "none": None,
}

#: rotel's OTLP/JSON decoder refuses two things that proto3 JSON requires and aiotlp writes: the spelling of an
#: infinite double ("Infinity", the only one JSON has) and an empty AnyValue (``{}``, aiotlp's ``None``): "no
#: known keys found". Interoperability runs over JSON use these values without either.
FINITE_VALUE = {
    **{k: v for k, v in EVERY_VALUE.items() if k not in ("inf", "none")},
    "mixed": [1, "two", 3.0, True, b"\x01", [4, [5]], {"k": "v"}],
    "map": {"nested": {"deeper": [1, {"x": "y"}]}, "empty_map": {}},
}

RESOURCE = Resource({"service.name": "e2e", **EVERY_VALUE}, dropped_attributes_count=2, schema_url="https://s/1")
FINITE_RESOURCE = Resource(
    {"service.name": "e2e", **FINITE_VALUE}, dropped_attributes_count=2, schema_url="https://s/1"
)
RESOURCE2 = Resource({"service.name": "other"})
SCOPE = InstrumentationScope("lib.one", "1.2.3", {"scope.attr": [True, False]}, 1, "https://s/scope")
SCOPE2 = InstrumentationScope("lib.two")


def spans(n: int = 6, *, finite: bool = False) -> list[Span]:
    resource = FINITE_RESOURCE if finite else RESOURCE
    values = FINITE_VALUE if finite else EVERY_VALUE
    out = []
    for i in range(n):
        out.append(
            Span(
                trace_id=bytes(range(1, 17)),
                span_id=(i + 1).to_bytes(8, "big"),
                parent_span_id=b"" if i == 0 else (1).to_bytes(8, "big"),
                name=f"span {i} ✓",
                kind=SpanKind(i % 6),
                start_time_unix_nano=T0 + i,
                end_time_unix_nano=T0 + 1000 + i,
                trace_state="vendor=a,other=b",
                flags=0x301,
                attributes=values if i == 0 else {"i": i},
                dropped_attributes_count=i,
                events=[Event("ev", T0 + 5, {"a": 1}, 3), Event("", 0)],
                dropped_events_count=7,
                links=[Link(bytes(16 * [9]), bytes(8 * [8]), "k=v", {"l": "x"}, 1, 0x100)],
                dropped_links_count=1,
                status=Status(StatusCode(i % 3), "boom" if i % 3 == 2 else ""),
                resource=resource if i % 2 == 0 else RESOURCE2,
                scope=SCOPE if i % 3 else SCOPE2,
            )
        )
    return out


def logs(*, finite: bool = False) -> list[LogRecord]:
    resource = FINITE_RESOURCE if finite else RESOURCE
    bodies: list[object] = [
        "plain",
        "",
        42,
        -1.5,
        True,
        b"\x00bin",
        ["a", 1, {"k": [None]}],
        {"msg": "structured", "n": {"m": []}},
        None,
    ]
    if finite:
        bodies = [b for b in bodies if b is not None and b != ["a", 1, {"k": [None]}]]
    return [
        LogRecord(
            time_unix_nano=T0 + i,
            observed_time_unix_nano=T0 + 10 + i,
            severity_number=SeverityNumber((i * 3) % 25),
            severity_text="INFO" if i else "",
            body=body,  # type: ignore[arg-type]
            attributes={"i": i, "list": [1.5, 2.5]},
            dropped_attributes_count=i,
            flags=1,
            trace_id=bytes(range(1, 17)) if i % 2 else b"",
            span_id=(i + 1).to_bytes(8, "big") if i % 2 else b"",
            event_name="app.event" if i == 3 else "",
            resource=resource if i % 2 else RESOURCE2,
            scope=SCOPE,
        )
        for i, body in enumerate(bodies)
    ]


def metrics(*, finite: bool = False) -> list[Metric]:
    resource = FINITE_RESOURCE if finite else RESOURCE
    exemplar = Exemplar(2.5, T0, {"f": "x"}, bytes(range(1, 17)), bytes(range(1, 9)))
    int_exemplar = Exemplar(-7, T0)
    return [
        Metric(
            "gauge",
            Gauge(
                [
                    NumberDataPoint(1.5, T0, T0 - 1, {"a": 1}, [exemplar]),
                    NumberDataPoint(-(2**63), T0, flags=1),
                ]
            ),
            "a gauge",
            "1",
            metadata={"meta": "data"},
            resource=resource,
            scope=SCOPE,
        ),
        Metric(
            "sum",
            Sum(
                [NumberDataPoint(10, T0, T0 - 5, exemplars=[int_exemplar])],
                AggregationTemporality.DELTA,
                True,
            ),
            unit="By",
            resource=resource,
            scope=SCOPE,
        ),
        Metric(
            "histogram",
            Histogram(
                [
                    HistogramDataPoint(
                        count=6,
                        bucket_counts=[1, 2, 3],
                        explicit_bounds=[0.5, 10.0],
                        sum=0.0,
                        min=-1.0,
                        max=99.5,
                        time_unix_nano=T0,
                        attributes={"h": True},
                        exemplars=[exemplar],
                    ),
                    HistogramDataPoint(count=0),
                ],
                AggregationTemporality.CUMULATIVE,
            ),
            resource=RESOURCE2,
            scope=SCOPE2,
        ),
        Metric(
            "exp_histogram",
            ExponentialHistogram(
                [
                    ExponentialHistogramDataPoint(
                        count=9,
                        scale=-3,
                        zero_count=2,
                        positive=Buckets(-2, [1, 2, 3]),
                        negative=Buckets(5, [1]),
                        sum=12.5,
                        min=-3.0,
                        max=8.0,
                        zero_threshold=1e-9,
                        time_unix_nano=T0,
                        start_time_unix_nano=T0 - 9,
                        attributes={"e": "x"},
                        exemplars=[exemplar],
                        flags=1,
                    )
                ],
                AggregationTemporality.DELTA,
            ),
            "exponential",
            "ms",
            resource=RESOURCE2,
            scope=SCOPE,
        ),
        Metric(
            "summary",
            Summary(
                [
                    SummaryDataPoint(
                        count=4,
                        sum=10.0,
                        quantile_values=[ValueAtQuantile(0.0, 1.0), ValueAtQuantile(0.99, 4.0)],
                        time_unix_nano=T0,
                        attributes={"s": 1},
                    )
                ]
            ),
            resource=RESOURCE2,
            scope=SCOPE,
        ),
    ]


def rotel_json_metrics() -> list[Metric]:
    """The metrics rotel's OTLP/JSON decoder can carry.

    rotel (0.0.1a15) answers 200 but silently drops a metric's data when a data point has exemplars, or when a
    fixed64 field (count, bucketCounts, zeroCount) is a JSON string, which is how proto3 JSON writes it: so
    Histogram, ExponentialHistogram and Summary never survive its JSON receiver. It also drops a point's
    ``asInt`` (a string, as proto3 JSON writes int64) whenever the point has any other field. Over gRPC and
    HTTP/protobuf every kind arrives (see tests/integration/test_rotel.py).
    """
    return [
        Metric(
            "gauge",
            Gauge([NumberDataPoint(1.5, T0, T0 - 1, {"a": 1}), NumberDataPoint(-0.0, T0, flags=1)]),
            "a gauge",
            "1",
            metadata={"meta": "data"},
            resource=FINITE_RESOURCE,
            scope=SCOPE,
        ),
        Metric(
            "sum",
            Sum([NumberDataPoint(10.0, T0, T0 - 5)], AggregationTemporality.DELTA, True),
            unit="By",
            resource=RESOURCE2,
            scope=SCOPE2,
        ),
    ]
