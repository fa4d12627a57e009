"""Metrics as protobuf: the one writer of metric data, for aiotlp's model and for the SDK drop-in.

:class:`MetricWriter` writes a metric's data (``Sum``, ``Gauge``, ``Histogram``, ``ExponentialHistogram``,
``Summary``) and its data points, exemplars and exponential buckets; every field tag of those messages is written
here and only here (the tag table, commented with each field's message, number and type). Its instances differ in
what the objects they read look like:

- :data:`MODEL_WRITER`: aiotlp's model (:mod:`aiotlp.model`), validated at construction; ids are bytes;
- the SDK drop-in's (:mod:`aiotlp.sdk`): OpenTelemetry SDK points, whose attributes may be a
  ``BoundedAttributes`` (``plain`` unwraps it), whose exemplar ids are ints (``exemplar_ids``), whose gauges carry
  no start time and whose empty exponential buckets are left out, as the official encoder writes them.

A point without ``flags`` or ``zero_threshold`` (the SDK's) writes none. Counts are uint64: one outside
``[0, 2**64 - 1]`` raises :class:`~aiotlp.EncodeError` naming it (:func:`count_error`).
"""

from __future__ import annotations

import math
import struct
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Final

from aiotlp._exceptions import EncodeError
from aiotlp.model import (
    ExponentialHistogram,
    Gauge,
    Histogram,
    Metric,
    Sum,
    Summary,
)

from . import _compat
from ._protobuf import (
    _INT64_MAX,
    _INT64_MIN,
    _LP,
    _UINT64_MAX,
    _lp_str,
    _patch,
    _write_attributes,
    _write_request,
)
from ._wire import VARINT, VARINT_TABLE_SIZE, varint, zigzag32

__all__ = [
    "MODEL_WRITER",
    "MetricWriter",
    "as_double",
    "count_error",
    "encode_metrics",
    "uint64_varint",
    "write_metric_names",
    "write_times",
]

_V: Final = VARINT
_VN: Final = VARINT_TABLE_SIZE

_pack_q: Final = struct.Struct("<Q").pack  # fixed64
_pack_sq: Final = struct.Struct("<q").pack  # sfixed64
_pack_d: Final = struct.Struct("<d").pack  # double
_pack_two_fixed64: Final = struct.Struct("<BQBQ").pack  # tag, fixed64, tag, fixed64 (one-byte tags)
_NEG_ZERO: Final = _pack_d(-0.0)

_NO_IDS: Final = (b"", b"")


def as_double(value: int) -> float:
    """An int metric value outside int64 (``as_int`` is an sfixed64), for ``as_double``: the nearest double;
    beyond the double range, an infinity of its sign. The point is kept, with a double's precision."""
    try:
        return float(value)
    except OverflowError:
        return math.inf if value > 0 else -math.inf


def uint64_varint(value: int) -> bytes:
    """The varint of a ``uint64`` count; :class:`EncodeError` outside ``[0, 2**64 - 1]``."""
    if not 0 <= value <= _UINT64_MAX:
        raise EncodeError(f"cannot encode the count {value}: it is outside the uint64 range")
    return varint(value)


def count_error(point: Any) -> EncodeError:
    """The error for a histogram point with a count outside uint64."""
    counts = [point.count, *getattr(point, "bucket_counts", ()), getattr(point, "zero_count", 0)]
    for buckets in (getattr(point, "positive", None), getattr(point, "negative", None)):
        if buckets is not None:
            counts += buckets.bucket_counts
    bad = next((c for c in counts if not 0 <= c <= _UINT64_MAX), None)
    return EncodeError(f"cannot encode the count {bad}: it is outside the uint64 range")


def _write_double(buf: bytearray, field_tag: bytes, value: float) -> None:
    """An implicit-presence ``double``: left out at +0.0 only (``-0.0`` is written, as protobuf does)."""
    if value or _pack_d(value) == _NEG_ZERO:
        buf += field_tag
        buf += _pack_d(value)


def write_times(buf: bytearray, start_time: int, time: int) -> None:
    """``start_time_unix_nano`` (2) and ``time_unix_nano`` (3), both fixed64, in every data point."""
    if start_time and time:
        buf += _pack_two_fixed64(0x11, start_time, 0x19, time)
    else:
        if start_time:
            buf += b"\x11"
            buf += _pack_q(start_time)
        if time:
            buf += b"\x19"
            buf += _pack_q(time)


def write_metric_names(buf: bytearray, metric: Any) -> None:
    """A ``Metric``'s name (1), description (2) and unit (3), each when not empty."""
    lp_get = _LP.get
    for field_tag, text in ((b"\x0a", metric.name), (b"\x12", metric.description), (b"\x1a", metric.unit)):
        if text:
            buf += field_tag
            buf += lp_get(text) or _lp_str(text)


def _model_ids(exemplar: Any) -> tuple[bytes, bytes]:
    return exemplar.span_id, exemplar.trace_id


class MetricWriter:
    """Writes metric data of one kind of object (see the module docstring).

    ``plain(attributes)``: the mapping to write (None: as it is); ``exemplar_ids(exemplar)``: its span and trace id
    as bytes (``b""``: left out); ``gauge_start_time``: a gauge point's start time is written;
    ``empty_buckets``: exponential ``positive`` / ``negative`` buckets without counts are written.
    """

    __slots__ = ("_plain", "empty_buckets", "exemplar_ids", "gauge_start_time")

    def __init__(
        self,
        *,
        plain: Callable[[Any], Mapping[str, Any]] | None = None,
        exemplar_ids: Callable[[Any], tuple[bytes, bytes]] = _model_ids,
        gauge_start_time: bool = True,
        empty_buckets: bool = True,
    ) -> None:
        self._plain = plain
        self.exemplar_ids = exemplar_ids
        self.gauge_start_time = gauge_start_time
        self.empty_buckets = empty_buckets

    def _attributes(self, buf: bytearray, field_tag: bytes, attributes: Any) -> None:
        if self._plain is not None:
            attributes = self._plain(attributes)
        if attributes:
            _write_attributes(buf, field_tag, attributes)

    def data(self, buf: bytearray, metric: Metric | Any, kind: type) -> None:
        """The data field of ``metric`` (a oneof member: written even without points), ``kind`` being the model
        class of its data: ``Sum``, ``Gauge``, ``Histogram``, ``ExponentialHistogram`` or ``Summary``."""
        data: Any = metric.data
        points = data.data_points
        if kind is Sum:
            buf += b"\x3a\x00"  # Metric 7 sum
            start = len(buf)
            self.number_points(buf, points, True)  # Sum 1 data_points
            if data.aggregation_temporality:
                buf += b"\x10"  # Sum 2 aggregation_temporality
                buf += _V[data.aggregation_temporality]
            if data.is_monotonic:
                buf += b"\x18\x01"  # Sum 3 is_monotonic
        elif kind is Gauge:
            buf += b"\x2a\x00"  # Metric 5 gauge
            start = len(buf)
            self.number_points(buf, points, self.gauge_start_time)  # Gauge 1 data_points
        elif kind is Histogram:
            buf += b"\x4a\x00"  # Metric 9 histogram
            start = len(buf)
            self.histogram_points(buf, points)  # Histogram 1 data_points
            if data.aggregation_temporality:
                buf += b"\x10"  # Histogram 2 aggregation_temporality
                buf += _V[data.aggregation_temporality]
        elif kind is ExponentialHistogram:
            buf += b"\x52\x00"  # Metric 10 exponential_histogram
            start = len(buf)
            self.exponential_points(buf, points)  # ExponentialHistogram 1 data_points
            if data.aggregation_temporality:
                buf += b"\x10"  # ExponentialHistogram 2 aggregation_temporality
                buf += _V[data.aggregation_temporality]
        else:
            buf += b"\x5a\x00"  # Metric 11 summary
            start = len(buf)
            self.summary_points(buf, points)  # Summary 1 data_points
        _patch(buf, start)

    def exemplars(self, buf: bytearray, field_tag: bytes, exemplars: Sequence[Any]) -> None:
        for exemplar in exemplars:
            buf += field_tag
            buf.append(0)
            start = len(buf)
            if exemplar.time_unix_nano:
                buf += b"\x11"  # Exemplar 2 time_unix_nano
                buf += _pack_q(exemplar.time_unix_nano)
            value = exemplar.value
            if isinstance(value, int) and not _INT64_MIN <= value <= _INT64_MAX:
                value = as_double(value)  # as_int is an sfixed64
            if isinstance(value, float):
                buf += b"\x19"  # Exemplar 3 as_double
                buf += _pack_d(value)
            elif not isinstance(value, int):
                raise EncodeError(f"an exemplar value must be an int or a float, got {type(value).__name__}")
            span_id, trace_id = self.exemplar_ids(exemplar)
            if span_id:
                buf += b"\x22\x08"  # Exemplar 4 span_id, len 8
                buf += span_id
            if trace_id:
                buf += b"\x2a\x10"  # Exemplar 5 trace_id, len 16
                buf += trace_id
            if not isinstance(value, float):
                buf += b"\x31"  # Exemplar 6 as_int (sfixed64)
                buf += _pack_sq(value)
            self._attributes(buf, b"\x3a", exemplar.filtered_attributes)  # Exemplar 7 filtered_attributes
            _patch(buf, start)

    def number_points(self, buf: bytearray, points: Sequence[Any], with_start: bool) -> None:
        plain, write_attributes = self._plain, _write_attributes
        flagged = bool(points) and hasattr(points[0], "flags")  # the points of a metric are of one class
        for point in points:
            buf += b"\x0a\x00"  # Gauge/Sum 1 data_points
            start = len(buf)
            # NumberDataPoint 2 start_time_unix_nano, 3 time_unix_nano
            write_times(buf, point.start_time_unix_nano if with_start else 0, point.time_unix_nano)
            value = point.value
            is_int = isinstance(value, int)
            if is_int and not _INT64_MIN <= value <= _INT64_MAX:
                value, is_int = as_double(value), False  # as_int is an sfixed64
            if not is_int:
                buf += b"\x21"  # NumberDataPoint 4 as_double
                buf += _pack_d(value)
            if point.exemplars:
                self.exemplars(buf, b"\x2a", point.exemplars)  # NumberDataPoint 5 exemplars
            if is_int:
                buf += b"\x31"  # NumberDataPoint 6 as_int (sfixed64)
                buf += _pack_sq(value)
            attributes = point.attributes if plain is None else plain(point.attributes)
            if attributes:
                write_attributes(buf, b"\x3a", attributes)  # NumberDataPoint 7 attributes
            if flagged and point.flags:
                buf += b"\x40"  # NumberDataPoint 8 flags
                buf += varint(point.flags)
            _patch(buf, start)

    def histogram_points(self, buf: bytearray, points: Sequence[Any]) -> None:
        try:
            self._histogram_points(buf, points)
        except struct.error:  # a count outside uint64 (fixed64): the error names it
            for point in points:
                if not all(0 <= c <= _UINT64_MAX for c in (point.count, *point.bucket_counts)):
                    raise count_error(point) from None
            raise

    def _histogram_points(self, buf: bytearray, points: Sequence[Any]) -> None:
        plain, write_attributes = self._plain, _write_attributes
        flagged = bool(points) and hasattr(points[0], "flags")  # the points of a metric are of one class
        for point in points:
            buf += b"\x0a\x00"  # Histogram 1 data_points
            start = len(buf)
            write_times(buf, point.start_time_unix_nano, point.time_unix_nano)  # HistogramDataPoint 2, 3
            if point.count:
                buf += b"\x21"  # HistogramDataPoint 4 count (fixed64)
                buf += _pack_q(point.count)
            if point.sum is not None:
                buf += b"\x29"  # HistogramDataPoint 5 sum (optional double)
                buf += _pack_d(point.sum)
            counts = point.bucket_counts
            if counts:
                buf += b"\x32"  # HistogramDataPoint 6 bucket_counts (packed fixed64)
                buf += varint(8 * len(counts))
                buf += struct.pack(f"<{len(counts)}Q", *counts)
            bounds = point.explicit_bounds
            if bounds:
                buf += b"\x3a"  # HistogramDataPoint 7 explicit_bounds (packed double)
                buf += varint(8 * len(bounds))
                buf += struct.pack(f"<{len(bounds)}d", *bounds)
            if point.exemplars:
                self.exemplars(buf, b"\x42", point.exemplars)  # HistogramDataPoint 8 exemplars
            attributes = point.attributes if plain is None else plain(point.attributes)
            if attributes:
                write_attributes(buf, b"\x4a", attributes)  # HistogramDataPoint 9 attributes
            if flagged and point.flags:
                buf += b"\x50"  # HistogramDataPoint 10 flags
                buf += varint(point.flags)
            if point.min is not None:
                buf += b"\x59"  # HistogramDataPoint 11 min (optional double)
                buf += _pack_d(point.min)
            if point.max is not None:
                buf += b"\x61"  # HistogramDataPoint 12 max (optional double)
                buf += _pack_d(point.max)
            _patch(buf, start)

    def buckets(self, buf: bytearray, field_tag: bytes, buckets: Any) -> None:
        counts = buckets.bucket_counts
        if not counts and not self.empty_buckets:
            return
        buf += field_tag
        buf.append(0)
        start = len(buf)
        if buckets.offset:
            buf += b"\x08"  # Buckets 1 offset (sint32)
            buf += varint(zigzag32(buckets.offset))
        if counts:
            V = _V
            data = b"".join([V[c] if 0 <= c < _VN else uint64_varint(c) for c in counts])
            buf += b"\x12"  # Buckets 2 bucket_counts (packed uint64)
            buf += varint(len(data))
            buf += data
        _patch(buf, start)

    def exponential_points(self, buf: bytearray, points: Sequence[Any]) -> None:
        for point in points:
            buf += b"\x0a\x00"  # ExponentialHistogram 1 data_points
            start = len(buf)
            self._attributes(buf, b"\x0a", point.attributes)  # ExponentialHistogramDataPoint 1 attributes
            write_times(buf, point.start_time_unix_nano, point.time_unix_nano)  # 2, 3
            count, zero_count = point.count, point.zero_count
            if not (0 <= count <= _UINT64_MAX and 0 <= zero_count <= _UINT64_MAX):
                raise count_error(point)
            if count:
                buf += b"\x21"  # 4 count (fixed64)
                buf += _pack_q(count)
            if point.sum is not None:
                buf += b"\x29"  # 5 sum (optional double)
                buf += _pack_d(point.sum)
            if point.scale:
                buf += b"\x30"  # 6 scale (sint32)
                buf += varint(zigzag32(point.scale))
            if zero_count:
                buf += b"\x39"  # 7 zero_count (fixed64)
                buf += _pack_q(zero_count)
            self.buckets(buf, b"\x42", point.positive)  # 8 positive
            self.buckets(buf, b"\x4a", point.negative)  # 9 negative
            if point.flags:
                buf += b"\x50"  # 10 flags
                buf += varint(point.flags)
            if point.exemplars:
                self.exemplars(buf, b"\x5a", point.exemplars)  # 11 exemplars
            if point.min is not None:
                buf += b"\x61"  # 12 min (optional double)
                buf += _pack_d(point.min)
            if point.max is not None:
                buf += b"\x69"  # 13 max (optional double)
                buf += _pack_d(point.max)
            _write_double(buf, b"\x71", getattr(point, "zero_threshold", 0.0))  # 14 zero_threshold
            _patch(buf, start)

    def summary_points(self, buf: bytearray, points: Sequence[Any]) -> None:
        for point in points:
            buf += b"\x0a\x00"  # Summary 1 data_points
            start = len(buf)
            write_times(buf, point.start_time_unix_nano, point.time_unix_nano)  # SummaryDataPoint 2, 3
            if point.count:
                buf += b"\x21"  # SummaryDataPoint 4 count (fixed64)
                buf += _pack_q(point.count)
            _write_double(buf, b"\x29", point.sum)  # SummaryDataPoint 5 sum
            for quantile in point.quantile_values:
                buf += b"\x32\x00"  # SummaryDataPoint 6 quantile_values
                quantile_start = len(buf)
                _write_double(buf, b"\x09", quantile.quantile)  # ValueAtQuantile 1 quantile
                _write_double(buf, b"\x11", quantile.value)  # ValueAtQuantile 2 value
                _patch(buf, quantile_start)
            self._attributes(buf, b"\x3a", point.attributes)  # SummaryDataPoint 7 attributes
            if point.flags:
                buf += b"\x40"  # SummaryDataPoint 8 flags
                buf += varint(point.flags)
            _patch(buf, start)


MODEL_WRITER: Final = MetricWriter()
"""The writer of aiotlp's model metrics."""

_MODEL_KINDS: Final = (Sum, Gauge, Histogram, ExponentialHistogram, Summary)


def _write_metrics(buf: bytearray, metrics: Sequence[Metric]) -> None:
    for metric in metrics:
        buf += b"\x12\x00"  # ScopeMetrics 2 metrics
        start = len(buf)
        write_metric_names(buf, metric)
        kind = next((kind for kind in _MODEL_KINDS if isinstance(metric.data, kind)), None)
        if kind is None:
            raise EncodeError(f"Metric.data: cannot encode a {type(metric.data).__name__}")
        MODEL_WRITER.data(buf, metric, kind)
        if metric.metadata:
            _write_attributes(buf, b"\x62", metric.metadata)  # Metric 12 metadata
        _patch(buf, start)


def encode_metrics(metrics: Sequence[Metric]) -> bytes:
    """Serialize ``metrics`` as an ``ExportMetricsServiceRequest``. An empty sequence gives ``b""``."""
    return _write_request(metrics, _write_metrics)


# The compiled attribute writer, when aiotlp.encoding._compat chose it (same bytes, see there).
if _compat.speedups is not None:
    _compat.accelerate(globals(), _write_attributes=_compat.speedups.write_attributes)
