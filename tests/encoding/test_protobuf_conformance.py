"""aiotlp's protobuf encoders against the official generated classes, on random model data.

For every batch: parse aiotlp's bytes with the official ``FromString`` and compare with a reference message
built from the same model objects (``==`` on upb messages compares field presence too, so a oneof or
``optional`` member written or left out wrongly fails), and compare the bytes with the official deterministic
serialization (fields in field-number order, minimal varints, -0.0 kept): aiotlp must be byte-for-byte
identical.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import ExportMetricsServiceRequest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.metrics.v1 import metrics_pb2
from tests.encoding.reference import logs_request, metrics_request, traces_request
from tests.strategies import log_batches, metric_batches, span_batches

from aiotlp.encoding import encode_logs, encode_metrics, encode_traces
from aiotlp.model import LogRecord, Metric, Span

# Every case runs with the pure-Python encoder and with the compiled accelerator (tests/conftest.py).
pytestmark = pytest.mark.usefixtures("encoder_implementation")

CONFORMANCE = settings(
    max_examples=300,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


def check(
    items: Sequence[Any],
    encode: Callable[[Sequence[Any]], bytes],
    reference: Callable[[Sequence[Any]], Any],
    request_class: Any,
) -> None:
    data = encode(items)
    expected = reference(items)
    parsed = request_class.FromString(data)
    assert parsed == expected
    assert data == expected.SerializeToString(deterministic=True)


@CONFORMANCE
@given(span_batches())
def test_traces(spans: list[Span]) -> None:
    check(spans, encode_traces, traces_request, ExportTraceServiceRequest)


@CONFORMANCE
@given(log_batches())
def test_logs(records: list[LogRecord]) -> None:
    check(records, encode_logs, logs_request, ExportLogsServiceRequest)


@CONFORMANCE
@given(metric_batches())
def test_metrics(metrics: list[Metric]) -> None:
    check(metrics, encode_metrics, metrics_request, ExportMetricsServiceRequest)


def test_message_equality_sees_presence() -> None:
    """The ``==`` used above tells a oneof/optional member set to its default from an unset one."""
    assert metrics_pb2.NumberDataPoint(as_int=0) != metrics_pb2.NumberDataPoint()
    assert metrics_pb2.NumberDataPoint(as_int=0) != metrics_pb2.NumberDataPoint(as_double=0.0)
    assert metrics_pb2.HistogramDataPoint(sum=0.0) != metrics_pb2.HistogramDataPoint()
