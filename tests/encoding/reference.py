"""Reference requests: the same model objects turned into official generated messages, the obvious way.

This is the oracle of the conformance tests. It is written independently of aiotlp's encoders (plain
isinstance dispatch, plain list grouping with ``is``), and follows the documented presence decisions:
resource, scope, span status and exponential histogram buckets are always set; the metric data kind,
``as_int`` / ``as_double`` and every AnyValue kind are oneof members (set even at their default); histogram
``sum``/``min``/``max`` are ``optional`` (set unless ``None``); a ``None`` attribute value is an empty
AnyValue; a ``None`` log body is no body.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import ExportMetricsServiceRequest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1 import common_pb2
from opentelemetry.proto.logs.v1 import logs_pb2
from opentelemetry.proto.metrics.v1 import metrics_pb2
from opentelemetry.proto.resource.v1 import resource_pb2
from opentelemetry.proto.trace.v1 import trace_pb2

from aiotlp import model

__all__ = ["any_value", "logs_request", "metrics_request", "reference_request", "traces_request"]


def any_value(value: Any) -> common_pb2.AnyValue:
    if value is None:
        return common_pb2.AnyValue()
    if isinstance(value, bool):
        return common_pb2.AnyValue(bool_value=value)
    if isinstance(value, int):
        return common_pb2.AnyValue(int_value=value)
    if isinstance(value, float):
        return common_pb2.AnyValue(double_value=value)
    if isinstance(value, str):
        return common_pb2.AnyValue(string_value=value)
    if isinstance(value, bytes):
        return common_pb2.AnyValue(bytes_value=value)
    if isinstance(value, Mapping):
        return common_pb2.AnyValue(kvlist_value=common_pb2.KeyValueList(values=key_values(value)))
    if isinstance(value, Sequence):
        return common_pb2.AnyValue(array_value=common_pb2.ArrayValue(values=[any_value(v) for v in value]))
    raise TypeError(type(value))


def key_values(attributes: Mapping[str, Any]) -> list[common_pb2.KeyValue]:
    return [common_pb2.KeyValue(key=k, value=any_value(v)) for k, v in attributes.items()]


def _resource(resource: model.Resource) -> resource_pb2.Resource:
    return resource_pb2.Resource(
        attributes=key_values(resource.attributes),
        dropped_attributes_count=resource.dropped_attributes_count,
    )


def _scope(scope: model.InstrumentationScope) -> common_pb2.InstrumentationScope:
    return common_pb2.InstrumentationScope(
        name=scope.name,
        version=scope.version,
        attributes=key_values(scope.attributes),
        dropped_attributes_count=scope.dropped_attributes_count,
    )


def _group(items: Sequence[Any]) -> list[tuple[Any, list[tuple[Any, list[Any]]]]]:
    """Group by resource identity, then scope identity, in first-seen order (linear scans with ``is``)."""
    groups: list[tuple[Any, list[tuple[Any, list[Any]]]]] = []
    for item in items:
        for resource, found in groups:
            if resource is item.resource:
                scope_groups = found
                break
        else:
            scope_groups = []
            groups.append((item.resource, scope_groups))
        for scope, members in scope_groups:
            if scope is item.scope:
                members.append(item)
                break
        else:
            scope_groups.append((item.scope, [item]))
    return groups


# --- traces
# ---------------------------------------------------------------------------------------------------


def _span(span: model.Span) -> trace_pb2.Span:
    return trace_pb2.Span(
        trace_id=span.trace_id,
        span_id=span.span_id,
        trace_state=span.trace_state,
        parent_span_id=span.parent_span_id,
        flags=span.flags,
        name=span.name,
        kind=int(span.kind),
        start_time_unix_nano=span.start_time_unix_nano,
        end_time_unix_nano=span.end_time_unix_nano,
        attributes=key_values(span.attributes),
        dropped_attributes_count=span.dropped_attributes_count,
        events=[
            trace_pb2.Span.Event(
                time_unix_nano=e.time_unix_nano,
                name=e.name,
                attributes=key_values(e.attributes),
                dropped_attributes_count=e.dropped_attributes_count,
            )
            for e in span.events
        ],
        dropped_events_count=span.dropped_events_count,
        links=[
            trace_pb2.Span.Link(
                trace_id=link.trace_id,
                span_id=link.span_id,
                trace_state=link.trace_state,
                attributes=key_values(link.attributes),
                dropped_attributes_count=link.dropped_attributes_count,
                flags=link.flags,
            )
            for link in span.links
        ],
        dropped_links_count=span.dropped_links_count,
        status=trace_pb2.Status(code=int(span.status.code), message=span.status.message),
    )


def traces_request(spans: Sequence[model.Span]) -> ExportTraceServiceRequest:
    return ExportTraceServiceRequest(
        resource_spans=[
            trace_pb2.ResourceSpans(
                resource=_resource(resource),
                scope_spans=[
                    trace_pb2.ScopeSpans(
                        scope=_scope(scope), spans=[_span(s) for s in members], schema_url=scope.schema_url
                    )
                    for scope, members in scope_groups
                ],
                schema_url=resource.schema_url,
            )
            for resource, scope_groups in _group(spans)
        ]
    )


# --- logs
# -----------------------------------------------------------------------------------------------------


def _log_record(record: model.LogRecord) -> logs_pb2.LogRecord:
    out = logs_pb2.LogRecord(
        time_unix_nano=record.time_unix_nano,
        observed_time_unix_nano=record.observed_time_unix_nano,
        severity_number=int(record.severity_number),
        severity_text=record.severity_text,
        attributes=key_values(record.attributes),
        dropped_attributes_count=record.dropped_attributes_count,
        flags=record.flags,
        trace_id=record.trace_id,
        span_id=record.span_id,
        event_name=record.event_name,
    )
    if record.body is not None:
        out.body.SetInParent()
        out.body.CopyFrom(any_value(record.body))
    return out


def logs_request(records: Sequence[model.LogRecord]) -> ExportLogsServiceRequest:
    return ExportLogsServiceRequest(
        resource_logs=[
            logs_pb2.ResourceLogs(
                resource=_resource(resource),
                scope_logs=[
                    logs_pb2.ScopeLogs(
                        scope=_scope(scope),
                        log_records=[_log_record(r) for r in members],
                        schema_url=scope.schema_url,
                    )
                    for scope, members in scope_groups
                ],
                schema_url=resource.schema_url,
            )
            for resource, scope_groups in _group(records)
        ]
    )


# --- metrics
# --------------------------------------------------------------------------------------------------


def _value_kwargs(value: int | float) -> dict[str, Any]:
    return {"as_int": value} if isinstance(value, int) else {"as_double": value}


def _optionals(point: Any) -> dict[str, float]:
    return {name: getattr(point, name) for name in ("sum", "min", "max") if getattr(point, name) is not None}


def _exemplar(e: model.Exemplar) -> metrics_pb2.Exemplar:
    return metrics_pb2.Exemplar(
        filtered_attributes=key_values(e.filtered_attributes),
        time_unix_nano=e.time_unix_nano,
        span_id=e.span_id,
        trace_id=e.trace_id,
        **_value_kwargs(e.value),
    )


def _common(point: Any) -> dict[str, Any]:
    return {
        "attributes": key_values(point.attributes),
        "start_time_unix_nano": point.start_time_unix_nano,
        "time_unix_nano": point.time_unix_nano,
        "flags": point.flags,
    }


def _number_point(p: model.NumberDataPoint) -> metrics_pb2.NumberDataPoint:
    return metrics_pb2.NumberDataPoint(
        exemplars=[_exemplar(e) for e in p.exemplars], **_common(p), **_value_kwargs(p.value)
    )


def _histogram_point(p: model.HistogramDataPoint) -> metrics_pb2.HistogramDataPoint:
    return metrics_pb2.HistogramDataPoint(
        count=p.count,
        bucket_counts=p.bucket_counts,
        explicit_bounds=p.explicit_bounds,
        exemplars=[_exemplar(e) for e in p.exemplars],
        **_common(p),
        **_optionals(p),
    )


def _buckets(b: model.Buckets) -> metrics_pb2.ExponentialHistogramDataPoint.Buckets:
    return metrics_pb2.ExponentialHistogramDataPoint.Buckets(offset=b.offset, bucket_counts=b.bucket_counts)


def _exponential_point(p: model.ExponentialHistogramDataPoint) -> metrics_pb2.ExponentialHistogramDataPoint:
    return metrics_pb2.ExponentialHistogramDataPoint(
        count=p.count,
        scale=p.scale,
        zero_count=p.zero_count,
        positive=_buckets(p.positive),
        negative=_buckets(p.negative),
        zero_threshold=p.zero_threshold,
        exemplars=[_exemplar(e) for e in p.exemplars],
        **_common(p),
        **_optionals(p),
    )


def _summary_point(p: model.SummaryDataPoint) -> metrics_pb2.SummaryDataPoint:
    return metrics_pb2.SummaryDataPoint(
        count=p.count,
        sum=p.sum,
        quantile_values=[
            metrics_pb2.SummaryDataPoint.ValueAtQuantile(quantile=q.quantile, value=q.value) for q in p.quantile_values
        ],
        **_common(p),
    )


def _metric(m: model.Metric) -> metrics_pb2.Metric:
    out = metrics_pb2.Metric(name=m.name, description=m.description, unit=m.unit, metadata=key_values(m.metadata))
    data = m.data
    if isinstance(data, model.Gauge):
        out.gauge.SetInParent()
        out.gauge.CopyFrom(metrics_pb2.Gauge(data_points=[_number_point(p) for p in data.data_points]))
    elif isinstance(data, model.Sum):
        out.sum.SetInParent()
        out.sum.CopyFrom(
            metrics_pb2.Sum(
                data_points=[_number_point(p) for p in data.data_points],
                aggregation_temporality=int(data.aggregation_temporality),
                is_monotonic=data.is_monotonic,
            )
        )
    elif isinstance(data, model.Histogram):
        out.histogram.SetInParent()
        out.histogram.CopyFrom(
            metrics_pb2.Histogram(
                data_points=[_histogram_point(p) for p in data.data_points],
                aggregation_temporality=int(data.aggregation_temporality),
            )
        )
    elif isinstance(data, model.ExponentialHistogram):
        out.exponential_histogram.SetInParent()
        out.exponential_histogram.CopyFrom(
            metrics_pb2.ExponentialHistogram(
                data_points=[_exponential_point(p) for p in data.data_points],
                aggregation_temporality=int(data.aggregation_temporality),
            )
        )
    elif isinstance(data, model.Summary):
        out.summary.SetInParent()
        out.summary.CopyFrom(metrics_pb2.Summary(data_points=[_summary_point(p) for p in data.data_points]))
    else:
        raise TypeError(type(data))
    return out


def metrics_request(metrics: Sequence[model.Metric]) -> ExportMetricsServiceRequest:
    return ExportMetricsServiceRequest(
        resource_metrics=[
            metrics_pb2.ResourceMetrics(
                resource=_resource(resource),
                scope_metrics=[
                    metrics_pb2.ScopeMetrics(
                        scope=_scope(scope),
                        metrics=[_metric(m) for m in members],
                        schema_url=scope.schema_url,
                    )
                    for scope, members in scope_groups
                ],
                schema_url=resource.schema_url,
            )
            for resource, scope_groups in _group(metrics)
        ]
    )


def reference_request(signal: model.Signal, items: Sequence[Any]) -> Any:
    """The official request message for a batch of ``signal`` items."""
    builders = {
        model.Signal.TRACES: traces_request,
        model.Signal.METRICS: metrics_request,
        model.Signal.LOGS: logs_request,
    }
    return builders[signal](items)
