"""OpenTelemetry SDK objects -> OTLP request bytes, directly: no copy into aiotlp's model, no google.protobuf.

- :func:`encode_spans` / :func:`encode_spans_json`: ``ReadableSpan`` batches (what ``SpanExporter.export`` gets);
- :func:`encode_log_records` / :func:`encode_log_records_json`: ``ReadableLogRecord`` batches (what the 1.45
  ``LogRecordExporter.export`` gets);
- :func:`encode_metrics_data` / :func:`encode_metrics_data_json`: a ``MetricsData``; the exporter works on its
  flat form, :func:`metric_items` (one ``(resource, scope, metric)`` per metric), with
  :func:`encode_metric_items` / :func:`encode_metric_items_json`, so that an oversized batch can be halved.

The SDK's semantics are mapped exactly as the official encoder (``opentelemetry.exporter.otlp.proto.common``)
maps them, so both decode to the same message:

- spans and log records are grouped by resource, then by scope, by *equality* (as the official dictionaries
  do), in first-seen order; ``resource`` and ``scope`` are always written (an absent scope as an empty one),
  with the resource's and the scope's ``schema_url``; neither carries a dropped-attributes count;
- span kind is the SDK value + 1; the status (always written) carries the code and the description; the
  trace state is written as ``k=v,k2=v2``; the parent span id is written whenever there is a parent;
- ``Span.flags`` and ``Link.flags`` are ``SPAN_FLAGS_CONTEXT_HAS_IS_REMOTE`` (0x100), plus
  ``SPAN_FLAGS_CONTEXT_IS_REMOTE`` (0x200) when the parent's (the linked) context is remote; like the
  official encoder, the W3C trace flags (bits 0-7) are not copied in;
- dropped counts come from the SDK's ``BoundedAttributes`` / ``BoundedList``;
- a log record always has a ``body`` (an empty ``AnyValue`` for ``None``); a zero trace or span id is left out;
  ``flags`` are the record's trace flags; ``severity_number``, ``severity_text`` and ``event_name`` when set;
- metrics: gauges carry no start time; sums carry temporality and monotonicity; a metric without data points
  has no data field at all; histogram ``sum``/``min``/``max`` are written when not ``None``; exponential
  histogram ``positive``/``negative`` only when they have bucket counts; exemplars carry span and trace ids
  only when both are set, ``as_double`` for a float value and ``as_int`` for an int.

Deviations from the official encoder, each deliberate: a link's ``trace_state`` is written (the official
encoder drops it); the metrics of two ``ResourceMetrics`` (or ``ScopeMetrics``) entries that compare equal are
all kept (the official encoder keeps only the last entry's); an empty ``ScopeMetrics`` is not sent.

Values that cannot be sent, the rules of :mod:`aiotlp.encoding` (the SDK limits neither the depth of log bodies
and extended attributes nor the size of ints; a collector refuses a whole request that breaks either):

- depth: lists and mappings nest at most ``aiotlp.model.MAX_NESTING_DEPTH`` deep;
- ints: ``AnyValue.int_value`` is an int64; an int outside ``[-2**63, 2**63 - 1]`` (a uint64 id from another
  system) at any depth of a value cannot be sent as an int.

An attribute whose value breaks either is left out and counted in its item's ``dropped_attributes_count``
(spans, events, links, log records, and the resource's and scope's, written when not 0); a log body that does
is replaced by the string :data:`BODY_TOO_DEEP` (nested too deep, or referring to itself) or
:data:`BODY_INT_OUT_OF_RANGE` (the record is kept; OTLP has no count for it). Metric data points and exemplars
have no dropped count: such an attribute is left out uncounted. A Sum or Gauge int value (or an exemplar's)
outside int64 is sent as ``as_double`` (the point is kept, with a double's precision; beyond the double range, an
infinity). Histogram counts are uint64: one outside ``[0, 2**64 - 1]`` raises :class:`~aiotlp.EncodeError` (the
exporters drop that metric and count it as ``invalid``).

How it is fast: ``ReadableSpan``'s own fields (``_context``, ``_attributes``, ...) are read directly, skipping
the properties that copy (``attributes`` wraps a ``MappingProxyType``, ``events`` builds a tuple); a class that
overrides any of those properties is read through its public API instead (checked once per class). Attributes
are written by aiotlp's protobuf encoder from the ``BoundedAttributes``' inner dict, with its caches. Span and
trace ids are packed with their tags by one ``struct`` call; encoded resources and scopes are cached per
object (they are immutable). All tags are ``bytes`` constants.

The modules, by concern: :mod:`._encode_common` (grouping, resources and scopes, the request), :mod:`._encode_spans`,
:mod:`._encode_logs`, :mod:`._encode_metrics` (protobuf; metric data through :class:`aiotlp.encoding.MetricWriter`),
:mod:`._encode_json`, :mod:`._encode_json_logs`, :mod:`._encode_json_metrics` (the JSON forms; apart, so that a
span exporter imports neither the logs nor the metrics SDK) and :mod:`._encode_source` (encoding at the source,
:class:`SourceEncoder`).
This module is their public surface. The writers come from :mod:`aiotlp.encoding`'s package-level building blocks.
"""

from __future__ import annotations

from aiotlp.encoding import BODY_INT_OUT_OF_RANGE, BODY_TOO_DEEP

from ._encode_common import MetricItem
from ._encode_json import encode_spans_json
from ._encode_json_logs import encode_log_records_json
from ._encode_json_metrics import encode_metric_items_json, encode_metrics_data_json
from ._encode_logs import encode_log_records
from ._encode_metrics import (
    count_data_points,
    encode_metric_items,
    encode_metrics_data,
    metric_items,
    split_metric_item,
)
from ._encode_source import MAX_SOURCE_GROUPS, SourceEncoder, SourceItem
from ._encode_spans import encode_spans

__all__ = [
    "BODY_INT_OUT_OF_RANGE",
    "BODY_TOO_DEEP",
    "MAX_SOURCE_GROUPS",
    "MetricItem",
    "SourceEncoder",
    "SourceItem",
    "count_data_points",
    "encode_log_records",
    "encode_log_records_json",
    "encode_metric_items",
    "encode_metric_items_json",
    "encode_metrics_data",
    "encode_metrics_data_json",
    "encode_spans",
    "encode_spans_json",
    "metric_items",
    "split_metric_item",
]
