"""Interoperability with a real collector: aiotlp -> rotel (Rust, from PyPI) -> FakeCollector.

rotel decodes what aiotlp sent (gRPC, HTTP/protobuf, HTTP/JSON; with and without gzip) and re-emits it over
OTLP/gRPC; the FakeCollector decodes that with the official opentelemetry-proto classes. Every span, log record
and metric data point must arrive exactly as built, with its resource and scope.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from google.protobuf.message import Message
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import ExportMetricsServiceRequest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from tests import samples

from aiotlp import OTLPExporter, RejectedError, RetryPolicy, Signal
from aiotlp.encoding import encode_logs, encode_metrics, encode_traces
from aiotlp.testing import FakeCollector, Rotel

pytestmark = pytest.mark.integration


def flatten(messages: list[Message], signal: Signal) -> list[tuple[bytes, bytes, bytes]]:
    """(resource, scope, item) triples, each serialized deterministically, sorted: order-free comparison."""
    out = []
    for message in messages:
        resources = {
            Signal.TRACES: "resource_spans",
            Signal.METRICS: "resource_metrics",
            Signal.LOGS: "resource_logs",
        }[signal]
        scopes = {Signal.TRACES: "scope_spans", Signal.METRICS: "scope_metrics", Signal.LOGS: "scope_logs"}[signal]
        items = {Signal.TRACES: "spans", Signal.METRICS: "metrics", Signal.LOGS: "log_records"}[signal]
        for resource_x in getattr(message, resources):
            resource = resource_x.resource.SerializeToString(deterministic=True) + resource_x.schema_url.encode()
            for scope_x in getattr(resource_x, scopes):
                scope = scope_x.scope.SerializeToString(deterministic=True) + scope_x.schema_url.encode()
                for item in getattr(scope_x, items):
                    out.append((resource, scope, item.SerializeToString(deterministic=True)))
    return sorted(out)


@pytest.fixture
async def sink() -> AsyncIterator[FakeCollector]:
    async with FakeCollector() as collector:
        yield collector


@pytest.fixture
async def rotel(sink: FakeCollector) -> AsyncIterator[Rotel]:
    async with Rotel(forward_to=sink.grpc_endpoint) as collector:
        yield collector


@pytest.mark.parametrize("compression", ["none", "gzip"])
@pytest.mark.parametrize("protocol", ["grpc", "http/protobuf", "http/json"])
async def test_every_signal_arrives_unchanged_through_rotel(
    rotel: Rotel, sink: FakeCollector, protocol: str, compression: str
) -> None:
    if protocol == "http/json":  # rotel's JSON decoder: see samples.FINITE_VALUE and samples.rotel_json_metrics
        spans, metrics, logs = (
            samples.spans(finite=True),
            samples.rotel_json_metrics(),
            samples.logs(finite=True),
        )
    else:
        spans, metrics, logs = samples.spans(), samples.metrics(), samples.logs()
    endpoint = rotel.grpc_endpoint if protocol == "grpc" else rotel.http_endpoint
    retry = RetryPolicy(initial_backoff=0.05, max_attempts=3)
    async with OTLPExporter(endpoint=endpoint, protocol=protocol, compression=compression, retry=retry) as exporter:
        results = [
            await exporter.export_traces(spans),
            await exporter.export_metrics(metrics),
            await exporter.export_logs(logs),
        ]
    assert all(r.ok for r in results), [(r.error, rotel.log_text()) for r in results if not r.ok]

    expected = {
        Signal.TRACES: flatten([ExportTraceServiceRequest.FromString(encode_traces(spans))], Signal.TRACES),
        Signal.METRICS: flatten([ExportMetricsServiceRequest.FromString(encode_metrics(metrics))], Signal.METRICS),
        Signal.LOGS: flatten([ExportLogsServiceRequest.FromString(encode_logs(logs))], Signal.LOGS),
    }

    def complete(collector: FakeCollector) -> bool:
        return all(
            len(flatten([r.message for r in collector.requests(signal)], signal)) >= len(expected[signal])
            for signal in Signal
        )

    await sink.wait_for(complete, timeout=20)
    for signal in Signal:
        got = flatten([r.message for r in sink.requests(signal)], signal)
        assert got == expected[signal], f"{signal.value} changed on the way through rotel"


@pytest.mark.parametrize("protocol", ["grpc", "http/protobuf", "http/json"])
async def test_rotel_does_not_take_zstd(rotel: Rotel, sink: FakeCollector, protocol: str) -> None:
    """rotel 0.0.1a15 has no zstd (nor deflate): gRPC answers UNIMPLEMENTED ("Content is compressed with `zstd`
    which isn't supported"), HTTP reads the body as if uncompressed and answers 400. Both are final, not retried.
    When this fails, rotel has learnt zstd: add "zstd" to the matrix above (and see docs/configuration.md)."""
    endpoint = rotel.grpc_endpoint if protocol == "grpc" else rotel.http_endpoint
    retry = RetryPolicy(initial_backoff=0.05, max_attempts=3)
    async with OTLPExporter(endpoint=endpoint, protocol=protocol, compression="zstd", retry=retry) as exporter:
        result = await exporter.export_traces(samples.spans(finite=True))
    assert not result.ok
    assert isinstance(result.error, RejectedError)  # final: not retried
    assert str(result.error).endswith(
        "gRPC UNIMPLEMENTED from collector: Content is compressed with `zstd` which isn't supported"
        if protocol == "grpc"
        else "HTTP 400 Bad Request from collector"
    )
    assert sink.received == []
