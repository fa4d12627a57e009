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

from hypothesis import HealthCheck, given, settings
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import ExportMetricsServiceRequest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.metrics.v1 import metrics_pb2
from tests.encoding.reference import logs_request, metrics_request, traces_request
from tests.strategies import log_batches, metric_batches, span_batches

from aiotlp.encoding import encode_logs, encode_metrics, encode_traces
from aiotlp.model import LogRecord, Metric, Span

# Every case runs with the pure-Python encoder and with the compiled accelerator (tests/conftest.py). The compiled
# half runs fewer examples: tests/encoding/test_speedups.py also compares its bytes with the pure encoder's.
EXAMPLES = {"python": 300, "c": 100}


def conformance(implementation: str) -> settings:
    return settings(
        max_examples=EXAMPLES[implementation],
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


def test_traces(encoder_implementation: str) -> None:
    @conformance(encoder_implementation)
    @given(span_batches())
    def run(spans: list[Span]) -> None:
        check(spans, encode_traces, traces_request, ExportTraceServiceRequest)

    run()


def test_logs(encoder_implementation: str) -> None:
    @conformance(encoder_implementation)
    @given(log_batches())
    def run(records: list[LogRecord]) -> None:
        check(records, encode_logs, logs_request, ExportLogsServiceRequest)

    run()


def test_metrics(encoder_implementation: str) -> None:
    @conformance(encoder_implementation)
    @given(metric_batches())
    def run(metrics: list[Metric]) -> None:
        check(metrics, encode_metrics, metrics_request, ExportMetricsServiceRequest)

    run()


def test_message_equality_sees_presence() -> None:
    """The ``==`` used above tells a oneof/optional member set to its default from an unset one."""
    assert metrics_pb2.NumberDataPoint(as_int=0) != metrics_pb2.NumberDataPoint()
    assert metrics_pb2.NumberDataPoint(as_int=0) != metrics_pb2.NumberDataPoint(as_double=0.0)
    assert metrics_pb2.HistogramDataPoint(sum=0.0) != metrics_pb2.HistogramDataPoint()
