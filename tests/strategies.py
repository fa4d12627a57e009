"""Hypothesis strategies for the whole aiotlp data model, shared by every test package.

- :func:`any_values`: every AnyValue kind, nested lists (mixed) and mappings of bounded depth, unicode with
  astral characters and empty strings, int64 extremes, floats with +-inf and -0.0 (NaN only when asked: NaN is
  not equal to itself, so it breaks message equality), bytes, ``None``; with ``wide=True`` also ints outside
  int64 (:func:`wide_ints`: the encoders leave those out; for comparing implementations, not the reference).
- :func:`resources`, :func:`scopes`, :func:`spans`, :func:`log_records`, :func:`metrics`: single items.
- :func:`span_batches`, :func:`log_batches`, :func:`metric_batches`: lists of items that share a few Resource
  and InstrumentationScope objects, so that grouping by identity is exercised.

Strings never contain surrogate code points (they cannot be sent as UTF-8; tests for them are targeted).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from hypothesis import strategies as st

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

__all__ = [
    "INT64_MAX",
    "INT64_MIN",
    "UINT32_MAX",
    "UINT64_MAX",
    "any_values",
    "attributes",
    "doubles",
    "int64s",
    "log_batches",
    "log_records",
    "metric_batches",
    "metrics",
    "resources",
    "scopes",
    "span_batches",
    "span_ids",
    "spans",
    "texts",
    "trace_ids",
    "uint32s",
    "uint64s",
    "wide_ints",
]

INT64_MIN = -(2**63)
INT64_MAX = 2**63 - 1
UINT32_MAX = 2**32 - 1
UINT64_MAX = 2**64 - 1

T = TypeVar("T")

# Any code point but the surrogates (``codec="utf-8"`` leaves those out): ASCII, accents, CJK, emoji, NUL, ...
_chars = st.characters(codec="utf-8")

#: Keys and names that recur, so caches keyed by strings get hits and the same key appears in many places.
COMMON_KEYS = ("", "http.method", "http.status_code", "service.name", "k", "ключ", "😀")


def texts(max_size: int = 20) -> st.SearchStrategy[str]:
    """Unicode text (astral characters included), often empty, sometimes a common key."""
    return st.one_of(
        st.just(""),
        st.sampled_from(COMMON_KEYS),
        st.text(_chars, max_size=max_size),
    )


def int64s() -> st.SearchStrategy[int]:
    return st.one_of(
        st.sampled_from([INT64_MIN, INT64_MIN + 1, -1, 0, 1, 127, 128, 2**31, INT64_MAX]),
        st.integers(INT64_MIN, INT64_MAX),
    )


def wide_ints() -> st.SearchStrategy[int]:
    """int64s, and ints outside int64 (which the encoders leave out: see aiotlp.encoding), bounds made likely."""
    outside = st.one_of(
        st.sampled_from([INT64_MAX + 1, INT64_MIN - 1, UINT64_MAX, 2**64, -(2**64), 10**30]),
        st.integers(INT64_MAX + 1, 2**70),
        st.integers(-(2**70), INT64_MIN - 1),
    )
    return st.one_of(int64s(), outside)


def uint32s() -> st.SearchStrategy[int]:
    return st.one_of(st.just(0), st.sampled_from([1, 127, 128, 2**31, UINT32_MAX]), st.integers(0, UINT32_MAX))


def uint64s() -> st.SearchStrategy[int]:
    return st.one_of(
        st.just(0),
        st.sampled_from([1, 1_700_000_000_123_456_789, 2**63, UINT64_MAX]),
        st.integers(0, UINT64_MAX),
    )


def doubles(*, allow_nan: bool = False) -> st.SearchStrategy[float]:
    """Any double, with 0.0, -0.0, +-inf and the extremes made likely; NaN only when ``allow_nan``."""
    special = [0.0, -0.0, float("inf"), float("-inf"), 5e-324, 1.7976931348623157e308, 1.5]
    if allow_nan:
        special.append(float("nan"))
    return st.one_of(st.sampled_from(special), st.floats(allow_nan=allow_nan))


def trace_ids() -> st.SearchStrategy[bytes]:
    return st.binary(min_size=16, max_size=16).filter(any)  # all-zero ids are invalid


def span_ids() -> st.SearchStrategy[bytes]:
    return st.binary(min_size=8, max_size=8).filter(any)


def _optional(strategy: st.SearchStrategy[bytes]) -> st.SearchStrategy[bytes]:
    return st.one_of(st.just(b""), strategy)


def any_values(*, allow_nan: bool = False, max_leaves: int = 6, wide: bool = False) -> st.SearchStrategy[Any]:
    """Every AnyValue kind; lists may mix kinds; lists and mappings nest a few levels deep. ``wide``: ints
    outside int64 too (values the encoders leave out; the reference decoder cannot hold them)."""
    scalars = st.one_of(
        st.none(),
        texts(),
        st.booleans(),
        wide_ints() if wide else int64s(),
        doubles(allow_nan=allow_nan),
        st.binary(max_size=12),
    )
    return st.recursive(
        scalars,
        lambda children: st.one_of(
            st.lists(children, max_size=4),
            st.dictionaries(texts(8), children, max_size=4),
        ),
        max_leaves=max_leaves,
    )


def attributes(*, allow_nan: bool = False, max_size: int = 4, wide: bool = False) -> st.SearchStrategy[dict[str, Any]]:
    return st.dictionaries(texts(12), any_values(allow_nan=allow_nan, wide=wide), max_size=max_size)


def resources() -> st.SearchStrategy[Resource]:
    return st.builds(
        Resource,
        attributes=attributes(),
        dropped_attributes_count=uint32s(),
        schema_url=texts(),
    )


def scopes() -> st.SearchStrategy[InstrumentationScope]:
    return st.builds(
        InstrumentationScope,
        name=texts(),
        version=texts(),
        attributes=attributes(max_size=2),
        dropped_attributes_count=uint32s(),
        schema_url=texts(),
    )


def _events() -> st.SearchStrategy[Event]:
    return st.builds(
        Event,
        name=texts(),
        time_unix_nano=uint64s(),
        attributes=attributes(max_size=2),
        dropped_attributes_count=uint32s(),
    )


def _links() -> st.SearchStrategy[Link]:
    return st.builds(
        Link,
        trace_id=trace_ids(),
        span_id=span_ids(),
        trace_state=texts(),
        attributes=attributes(max_size=2),
        dropped_attributes_count=uint32s(),
        flags=uint32s(),
    )


def _statuses() -> st.SearchStrategy[Status]:
    return st.builds(Status, code=st.sampled_from(StatusCode), message=texts())


def spans(
    resource: st.SearchStrategy[Resource] | None = None,
    scope: st.SearchStrategy[InstrumentationScope] | None = None,
) -> st.SearchStrategy[Span]:
    return st.builds(
        Span,
        trace_id=trace_ids(),
        span_id=span_ids(),
        name=texts(),
        start_time_unix_nano=uint64s(),
        end_time_unix_nano=uint64s(),
        kind=st.sampled_from(SpanKind),
        parent_span_id=_optional(span_ids()),
        trace_state=texts(),
        flags=uint32s(),
        attributes=attributes(),
        dropped_attributes_count=uint32s(),
        events=st.lists(_events(), max_size=2),
        dropped_events_count=uint32s(),
        links=st.lists(_links(), max_size=2),
        dropped_links_count=uint32s(),
        status=_statuses(),
        resource=resource if resource is not None else resources(),
        scope=scope if scope is not None else scopes(),
    )


def log_records(
    resource: st.SearchStrategy[Resource] | None = None,
    scope: st.SearchStrategy[InstrumentationScope] | None = None,
) -> st.SearchStrategy[LogRecord]:
    return st.builds(
        LogRecord,
        time_unix_nano=uint64s(),
        observed_time_unix_nano=uint64s(),
        severity_number=st.sampled_from(SeverityNumber),
        severity_text=texts(),
        body=any_values(),
        attributes=attributes(),
        dropped_attributes_count=uint32s(),
        flags=uint32s(),
        trace_id=_optional(trace_ids()),
        span_id=_optional(span_ids()),
        event_name=texts(),
        resource=resource if resource is not None else resources(),
        scope=scope if scope is not None else scopes(),
    )


def _numbers() -> st.SearchStrategy[int | float]:
    return st.one_of(int64s(), doubles())


def _exemplars() -> st.SearchStrategy[Exemplar]:
    return st.builds(
        Exemplar,
        value=_numbers(),
        time_unix_nano=uint64s(),
        filtered_attributes=attributes(max_size=2),
        trace_id=_optional(trace_ids()),
        span_id=_optional(span_ids()),
    )


def _point_fields() -> dict[str, st.SearchStrategy[Any]]:
    return {
        "time_unix_nano": uint64s(),
        "start_time_unix_nano": uint64s(),
        "attributes": attributes(max_size=3),
        "flags": uint32s(),
    }


def _number_points() -> st.SearchStrategy[NumberDataPoint]:
    return st.builds(NumberDataPoint, value=_numbers(), exemplars=st.lists(_exemplars(), max_size=2), **_point_fields())


def _optional_doubles() -> st.SearchStrategy[float | None]:
    return st.one_of(st.none(), doubles())


@st.composite
def _histogram_points(draw: st.DrawFn) -> HistogramDataPoint:
    bounds = draw(st.lists(doubles(), max_size=5))
    counts = draw(st.one_of(st.just([]), st.lists(uint64s(), min_size=len(bounds) + 1, max_size=len(bounds) + 1)))
    return draw(
        st.builds(
            HistogramDataPoint,
            count=uint64s(),
            bucket_counts=st.just(counts),
            explicit_bounds=st.just(bounds),
            sum=_optional_doubles(),
            min=_optional_doubles(),
            max=_optional_doubles(),
            exemplars=st.lists(_exemplars(), max_size=2),
            **_point_fields(),
        )
    )


def _buckets() -> st.SearchStrategy[Buckets]:
    return st.builds(
        Buckets,
        offset=st.one_of(st.sampled_from([0, -1, 1, -(2**31), 2**31 - 1]), st.integers(-(2**31), 2**31 - 1)),
        bucket_counts=st.lists(uint64s(), max_size=6),
    )


def _exponential_points() -> st.SearchStrategy[ExponentialHistogramDataPoint]:
    return st.builds(
        ExponentialHistogramDataPoint,
        count=uint64s(),
        scale=st.one_of(st.sampled_from([0, -1, 20, -10, -(2**31), 2**31 - 1]), st.integers(-(2**31), 2**31 - 1)),
        zero_count=uint64s(),
        positive=_buckets(),
        negative=_buckets(),
        sum=_optional_doubles(),
        min=_optional_doubles(),
        max=_optional_doubles(),
        zero_threshold=doubles(),
        exemplars=st.lists(_exemplars(), max_size=2),
        **_point_fields(),
    )


def _summary_points() -> st.SearchStrategy[SummaryDataPoint]:
    return st.builds(
        SummaryDataPoint,
        count=uint64s(),
        sum=doubles(),
        quantile_values=st.lists(st.builds(ValueAtQuantile, quantile=doubles(), value=doubles()), max_size=3),
        **_point_fields(),
    )


def _temporalities() -> st.SearchStrategy[AggregationTemporality]:
    return st.sampled_from(AggregationTemporality)


def _metric_data() -> st.SearchStrategy[Any]:
    return st.one_of(
        st.builds(Gauge, data_points=st.lists(_number_points(), max_size=3)),
        st.builds(
            Sum,
            data_points=st.lists(_number_points(), max_size=3),
            aggregation_temporality=_temporalities(),
            is_monotonic=st.booleans(),
        ),
        st.builds(
            Histogram,
            data_points=st.lists(_histogram_points(), max_size=3),
            aggregation_temporality=_temporalities(),
        ),
        st.builds(
            ExponentialHistogram,
            data_points=st.lists(_exponential_points(), max_size=3),
            aggregation_temporality=_temporalities(),
        ),
        st.builds(Summary, data_points=st.lists(_summary_points(), max_size=3)),
    )


def metrics(
    resource: st.SearchStrategy[Resource] | None = None,
    scope: st.SearchStrategy[InstrumentationScope] | None = None,
) -> st.SearchStrategy[Metric]:
    return st.builds(
        Metric,
        name=texts(),
        data=_metric_data(),
        description=texts(),
        unit=texts(),
        metadata=attributes(max_size=3),
        resource=resource if resource is not None else resources(),
        scope=scope if scope is not None else scopes(),
    )


def _batches(
    item: Callable[[st.SearchStrategy[Resource], st.SearchStrategy[InstrumentationScope]], st.SearchStrategy[T]],
    max_size: int,
) -> st.SearchStrategy[list[T]]:
    @st.composite
    def batch(draw: st.DrawFn) -> list[T]:
        shared_resources = draw(st.lists(resources(), min_size=1, max_size=3))
        shared_scopes = draw(st.lists(scopes(), min_size=1, max_size=3))
        return draw(
            st.lists(item(st.sampled_from(shared_resources), st.sampled_from(shared_scopes)), max_size=max_size)
        )

    return batch()


def span_batches(max_size: int = 5) -> st.SearchStrategy[list[Span]]:
    """Spans sharing one to three Resource and InstrumentationScope objects, in any order."""
    return _batches(spans, max_size)


def log_batches(max_size: int = 5) -> st.SearchStrategy[list[LogRecord]]:
    """Log records sharing one to three Resource and InstrumentationScope objects, in any order."""
    return _batches(log_records, max_size)


def metric_batches(max_size: int = 4) -> st.SearchStrategy[list[Metric]]:
    """Metrics of every kind sharing one to three Resource and InstrumentationScope objects, in any order."""
    return _batches(metrics, max_size)
