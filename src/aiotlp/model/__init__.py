"""aiotlp's own telemetry data model: plain, validated, immutable objects. No I/O."""

from ._common import MAX_NESTING_DEPTH, AnyValue, Attributes, InstrumentationScope, Resource
from ._logs import LogRecord, SeverityNumber
from ._metrics import (
    AggregationTemporality,
    Buckets,
    Exemplar,
    ExponentialHistogram,
    ExponentialHistogramDataPoint,
    Gauge,
    Histogram,
    HistogramDataPoint,
    Metric,
    MetricData,
    NumberDataPoint,
    Sum,
    Summary,
    SummaryDataPoint,
    ValueAtQuantile,
)
from ._signal import Signal
from ._trace import Event, Link, Span, SpanKind, Status, StatusCode

__all__ = [
    "MAX_NESTING_DEPTH",
    "AggregationTemporality",
    "AnyValue",
    "Attributes",
    "Buckets",
    "Event",
    "Exemplar",
    "ExponentialHistogram",
    "ExponentialHistogramDataPoint",
    "Gauge",
    "Histogram",
    "HistogramDataPoint",
    "InstrumentationScope",
    "Link",
    "LogRecord",
    "Metric",
    "MetricData",
    "NumberDataPoint",
    "Resource",
    "SeverityNumber",
    "Signal",
    "Span",
    "SpanKind",
    "Status",
    "StatusCode",
    "Sum",
    "Summary",
    "SummaryDataPoint",
    "ValueAtQuantile",
]
