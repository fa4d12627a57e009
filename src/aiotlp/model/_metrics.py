"""Metrics: Gauge, Sum, Histogram, ExponentialHistogram and Summary, with their data points and exemplars."""

from __future__ import annotations

import enum
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Union

from .._validate import is_int, is_number
from ._common import (
    EMPTY_RESOURCE,
    EMPTY_SCOPE,
    UINT64_MAX,
    Attributes,
    InstrumentationScope,
    Resource,
    check_float,
    check_id,
    check_str,
    check_time,
    check_uint,
    validate_attributes,
)
from ._trace import _enum, _instance, _items

__all__ = [
    "AggregationTemporality",
    "Buckets",
    "Exemplar",
    "ExponentialHistogram",
    "ExponentialHistogramDataPoint",
    "Gauge",
    "Histogram",
    "HistogramDataPoint",
    "Metric",
    "MetricData",
    "NumberDataPoint",
    "Sum",
    "Summary",
    "SummaryDataPoint",
    "ValueAtQuantile",
]


class AggregationTemporality(enum.IntEnum):
    UNSPECIFIED = 0
    DELTA = 1
    CUMULATIVE = 2


def _number(value: int | float, where: str) -> int | float:
    if not is_number(value):
        raise TypeError(f"{where}: expected an int or a float, got {type(value).__name__}")
    # An int outside int64 is accepted: the encoders send it as as_double (see aiotlp.encoding).
    return value


def _count(value: int, where: str) -> int:
    return check_uint(value, where, UINT64_MAX)


def _optional_float(value: float | None, where: str) -> float | None:
    return None if value is None else check_float(value, where)


@dataclass(frozen=True, slots=True)
class Exemplar:
    value: int | float
    time_unix_nano: int = 0
    filtered_attributes: Attributes = field(default_factory=dict)
    trace_id: bytes = b""
    span_id: bytes = b""

    def __post_init__(self) -> None:
        _number(self.value, "Exemplar.value")
        check_time(self.time_unix_nano, "Exemplar.time_unix_nano")
        object.__setattr__(
            self,
            "filtered_attributes",
            validate_attributes(self.filtered_attributes, "Exemplar.filtered_attributes"),
        )
        object.__setattr__(self, "trace_id", check_id(self.trace_id, 16, "Exemplar.trace_id", optional=True))
        object.__setattr__(self, "span_id", check_id(self.span_id, 8, "Exemplar.span_id", optional=True))


def _common_point(point: object, name: str) -> None:
    object.__setattr__(point, "attributes", validate_attributes(point.attributes, f"{name}.attributes"))  # type: ignore[attr-defined]
    check_time(point.start_time_unix_nano, f"{name}.start_time_unix_nano")  # type: ignore[attr-defined]
    check_time(point.time_unix_nano, f"{name}.time_unix_nano")  # type: ignore[attr-defined]
    check_uint(point.flags, f"{name}.flags")  # type: ignore[attr-defined]


@dataclass(frozen=True, slots=True)
class NumberDataPoint:
    """A Gauge or Sum point. An ``int`` value is sent as ``as_int``, a ``float`` as ``as_double`` (and an int
    outside int64 too: the point is kept, with a double's precision)."""

    value: int | float
    time_unix_nano: int = 0
    start_time_unix_nano: int = 0
    attributes: Attributes = field(default_factory=dict)
    exemplars: Sequence[Exemplar] = ()
    flags: int = 0

    def __post_init__(self) -> None:
        _number(self.value, "NumberDataPoint.value")
        _common_point(self, "NumberDataPoint")
        object.__setattr__(self, "exemplars", _items(self.exemplars, Exemplar, "NumberDataPoint.exemplars"))


@dataclass(frozen=True, slots=True)
class HistogramDataPoint:
    count: int
    bucket_counts: Sequence[int] = ()
    explicit_bounds: Sequence[float] = ()
    sum: float | None = None
    min: float | None = None
    max: float | None = None
    time_unix_nano: int = 0
    start_time_unix_nano: int = 0
    attributes: Attributes = field(default_factory=dict)
    exemplars: Sequence[Exemplar] = ()
    flags: int = 0

    def __post_init__(self) -> None:
        name = "HistogramDataPoint"
        _count(self.count, f"{name}.count")
        object.__setattr__(self, "bucket_counts", tuple(_count(c, f"{name}.bucket_counts") for c in self.bucket_counts))
        object.__setattr__(
            self,
            "explicit_bounds",
            tuple(check_float(b, f"{name}.explicit_bounds") for b in self.explicit_bounds),
        )
        if self.bucket_counts and len(self.bucket_counts) != len(self.explicit_bounds) + 1:
            raise ValueError(
                f"{name}.bucket_counts: expected len(explicit_bounds) + 1 = {len(self.explicit_bounds) + 1} "
                f"counts, got {len(self.bucket_counts)}"
            )
        for attr in ("sum", "min", "max"):
            object.__setattr__(self, attr, _optional_float(getattr(self, attr), f"{name}.{attr}"))
        _common_point(self, name)
        object.__setattr__(self, "exemplars", _items(self.exemplars, Exemplar, f"{name}.exemplars"))


@dataclass(frozen=True, slots=True)
class Buckets:
    offset: int = 0
    bucket_counts: Sequence[int] = ()

    def __post_init__(self) -> None:
        if not is_int(self.offset):
            raise TypeError(f"Buckets.offset: expected an int, got {type(self.offset).__name__}")
        if not -(2**31) <= self.offset < 2**31:
            raise ValueError(f"Buckets.offset: {self.offset} is outside the int32 range")
        object.__setattr__(self, "bucket_counts", tuple(_count(c, "Buckets.bucket_counts") for c in self.bucket_counts))


@dataclass(frozen=True, slots=True)
class ExponentialHistogramDataPoint:
    count: int
    scale: int = 0
    zero_count: int = 0
    positive: Buckets = field(default_factory=Buckets)
    negative: Buckets = field(default_factory=Buckets)
    sum: float | None = None
    min: float | None = None
    max: float | None = None
    zero_threshold: float = 0.0
    time_unix_nano: int = 0
    start_time_unix_nano: int = 0
    attributes: Attributes = field(default_factory=dict)
    exemplars: Sequence[Exemplar] = ()
    flags: int = 0

    def __post_init__(self) -> None:
        name = "ExponentialHistogramDataPoint"
        _count(self.count, f"{name}.count")
        if not is_int(self.scale) or not -(2**31) <= self.scale < 2**31:
            raise ValueError(f"{name}.scale: expected an int32, got {self.scale!r}")
        _count(self.zero_count, f"{name}.zero_count")
        _instance(self.positive, Buckets, f"{name}.positive")
        _instance(self.negative, Buckets, f"{name}.negative")
        for attr in ("sum", "min", "max"):
            object.__setattr__(self, attr, _optional_float(getattr(self, attr), f"{name}.{attr}"))
        object.__setattr__(self, "zero_threshold", check_float(self.zero_threshold, f"{name}.zero_threshold"))
        _common_point(self, name)
        object.__setattr__(self, "exemplars", _items(self.exemplars, Exemplar, f"{name}.exemplars"))


@dataclass(frozen=True, slots=True)
class ValueAtQuantile:
    quantile: float
    value: float

    def __post_init__(self) -> None:
        object.__setattr__(self, "quantile", check_float(self.quantile, "ValueAtQuantile.quantile"))
        object.__setattr__(self, "value", check_float(self.value, "ValueAtQuantile.value"))


@dataclass(frozen=True, slots=True)
class SummaryDataPoint:
    count: int
    sum: float = 0.0
    quantile_values: Sequence[ValueAtQuantile] = ()
    time_unix_nano: int = 0
    start_time_unix_nano: int = 0
    attributes: Attributes = field(default_factory=dict)
    flags: int = 0

    def __post_init__(self) -> None:
        name = "SummaryDataPoint"
        _count(self.count, f"{name}.count")
        object.__setattr__(self, "sum", check_float(self.sum, f"{name}.sum"))
        object.__setattr__(
            self, "quantile_values", _items(self.quantile_values, ValueAtQuantile, f"{name}.quantile_values")
        )
        _common_point(self, name)


def _temporality(value: object, where: str) -> AggregationTemporality:
    return _enum(AggregationTemporality, value, where)  # type: ignore[return-value]


@dataclass(frozen=True, slots=True)
class Gauge:
    data_points: Sequence[NumberDataPoint] = ()

    def __post_init__(self) -> None:
        object.__setattr__(self, "data_points", _items(self.data_points, NumberDataPoint, "Gauge.data_points"))


@dataclass(frozen=True, slots=True)
class Sum:
    data_points: Sequence[NumberDataPoint] = ()
    aggregation_temporality: AggregationTemporality = AggregationTemporality.CUMULATIVE
    is_monotonic: bool = False

    def __post_init__(self) -> None:
        object.__setattr__(self, "data_points", _items(self.data_points, NumberDataPoint, "Sum.data_points"))
        object.__setattr__(
            self,
            "aggregation_temporality",
            _temporality(self.aggregation_temporality, "Sum.aggregation_temporality"),
        )
        if not isinstance(self.is_monotonic, bool):
            raise TypeError(f"Sum.is_monotonic: expected a bool, got {type(self.is_monotonic).__name__}")


@dataclass(frozen=True, slots=True)
class Histogram:
    data_points: Sequence[HistogramDataPoint] = ()
    aggregation_temporality: AggregationTemporality = AggregationTemporality.CUMULATIVE

    def __post_init__(self) -> None:
        object.__setattr__(self, "data_points", _items(self.data_points, HistogramDataPoint, "Histogram.data_points"))
        object.__setattr__(
            self,
            "aggregation_temporality",
            _temporality(self.aggregation_temporality, "Histogram.aggregation_temporality"),
        )


@dataclass(frozen=True, slots=True)
class ExponentialHistogram:
    data_points: Sequence[ExponentialHistogramDataPoint] = ()
    aggregation_temporality: AggregationTemporality = AggregationTemporality.CUMULATIVE

    def __post_init__(self) -> None:
        object.__setattr__(
            self,
            "data_points",
            _items(self.data_points, ExponentialHistogramDataPoint, "ExponentialHistogram.data_points"),
        )
        object.__setattr__(
            self,
            "aggregation_temporality",
            _temporality(self.aggregation_temporality, "ExponentialHistogram.aggregation_temporality"),
        )


@dataclass(frozen=True, slots=True)
class Summary:
    data_points: Sequence[SummaryDataPoint] = ()

    def __post_init__(self) -> None:
        object.__setattr__(self, "data_points", _items(self.data_points, SummaryDataPoint, "Summary.data_points"))


MetricData = Union[Gauge, Sum, Histogram, ExponentialHistogram, Summary]
_DATA_TYPES = (Gauge, Sum, Histogram, ExponentialHistogram, Summary)


@dataclass(frozen=True, slots=True)
class Metric:
    """One metric stream and its points. The unit of batching and counting is the data point."""

    name: str
    data: MetricData
    description: str = ""
    unit: str = ""
    metadata: Attributes = field(default_factory=dict)
    resource: Resource = EMPTY_RESOURCE
    scope: InstrumentationScope = EMPTY_SCOPE

    def __post_init__(self) -> None:
        check_str(self.name, "Metric.name")
        if not isinstance(self.data, _DATA_TYPES):
            raise TypeError(
                "Metric.data: expected Gauge, Sum, Histogram, ExponentialHistogram or Summary, "
                f"got {type(self.data).__name__}"
            )
        check_str(self.description, "Metric.description")
        check_str(self.unit, "Metric.unit")
        object.__setattr__(self, "metadata", validate_attributes(self.metadata, "Metric.metadata"))
        _instance(self.resource, Resource, "Metric.resource")
        _instance(self.scope, InstrumentationScope, "Metric.scope")

    @property
    def data_point_count(self) -> int:
        return len(self.data.data_points)
