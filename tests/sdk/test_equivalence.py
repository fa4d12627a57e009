"""Acceptance: swapping the official OTLP exporters for aiotlp.sdk's delivers equivalent telemetry.

The SAME SDK data (tests/sdk/sdk_data.py: two resources, several scopes, every span kind and status, events,
links to remote and local contexts, a remote parent with a trace state, dropped attributes/events/links, every
attribute value kind, log bodies of every kind, every metric kind with exemplars, delta and cumulative
temporality, exponential histograms with negative buckets) is exported through the official exporter and
through aiotlp's, over gRPC and over HTTP/protobuf, to a FakeCollector; the decoded official messages must be
equal. aiotlp's OTLP/HTTP JSON (which the official Python exporters do not offer) must decode to the same
message too.

Known deviation, documented and compared around: the official encoder drops ``Link.trace_state``; aiotlp sends
it. The test checks that aiotlp sent it, then clears it before the comparison.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import pytest
from opentelemetry.exporter.otlp.proto.grpc._log_exporter import OTLPLogExporter as GrpcLogExporter
from opentelemetry.exporter.otlp.proto.grpc.metric_exporter import OTLPMetricExporter as GrpcMetricExporter
from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter as GrpcSpanExporter
from opentelemetry.exporter.otlp.proto.http._log_exporter import OTLPLogExporter as HttpLogExporter
from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter as HttpMetricExporter
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter as HttpSpanExporter
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from tests.sdk import sdk_data

from aiotlp.model import Signal
from aiotlp.sdk import LogExporter, MetricExporter, SpanExporter
from aiotlp.testing import FakeCollector

# Every case runs with the pure-Python encoder and with the compiled accelerator (tests/conftest.py).
pytestmark = pytest.mark.usefixtures("encoder_implementation")

OFFICIAL: dict[tuple[str, Signal], Callable[..., Any]] = {
    ("grpc", Signal.TRACES): GrpcSpanExporter,
    ("grpc", Signal.LOGS): GrpcLogExporter,
    ("grpc", Signal.METRICS): GrpcMetricExporter,
    ("http/protobuf", Signal.TRACES): HttpSpanExporter,
    ("http/protobuf", Signal.LOGS): HttpLogExporter,
    ("http/protobuf", Signal.METRICS): HttpMetricExporter,
}
OURS: dict[Signal, Callable[..., Any]] = {
    Signal.TRACES: SpanExporter,
    Signal.LOGS: LogExporter,
    Signal.METRICS: MetricExporter,
}
DATA: dict[Signal, Callable[[], Any]] = {
    Signal.TRACES: sdk_data.spans,
    Signal.LOGS: sdk_data.log_records,
    Signal.METRICS: sdk_data.metrics_data,
}


def endpoint(collector: FakeCollector, protocol: str, signal: Signal) -> str:
    # Each exporter is given the endpoint as its official twin takes it: gRPC host:port (with a scheme for
    # plaintext), OTLP/HTTP the full URL of the signal.
    if protocol == "grpc":
        return collector.grpc_endpoint
    return f"{collector.http_endpoint}/v1/{signal.value}"


def clear_link_trace_states(message: ExportTraceServiceRequest) -> int:
    cleared = 0
    for resource_spans in message.resource_spans:
        for scope_spans in resource_spans.scope_spans:
            for span in scope_spans.spans:
                for link in span.links:
                    cleared += bool(link.trace_state)
                    link.trace_state = ""
    return cleared


async def export_through(exporter: Any, data: Any, collector: FakeCollector, signal: Signal) -> Any:
    before = len(collector.requests(signal))
    try:
        result = await asyncio.to_thread(exporter.export, data)
    finally:
        await asyncio.to_thread(exporter.shutdown)
    assert result.name == "SUCCESS"
    requests = collector.requests(signal)[before:]
    assert len(requests) == 1
    return requests[0]


@pytest.mark.parametrize("signal", list(Signal))
@pytest.mark.parametrize("protocol", ["grpc", "http/protobuf"])
async def test_official_and_aiotlp_exporters_deliver_the_same_telemetry(
    protocol: str, signal: Signal, collector: FakeCollector
) -> None:
    data = await asyncio.to_thread(DATA[signal])  # off the loop: building it takes a while
    url = endpoint(collector, protocol, signal)
    official = OFFICIAL[protocol, signal](endpoint=url, **({"insecure": True} if protocol == "grpc" else {}))
    theirs = await export_through(official, data, collector, signal)
    ours = await export_through(OURS[signal](url, protocol=protocol), data, collector, signal)
    assert ours.transport == theirs.transport == ("grpc" if protocol == "grpc" else "http")
    expected = theirs.message
    received = ours.message
    if signal is Signal.TRACES:
        assert clear_link_trace_states(received) == 2  # aiotlp keeps Link.trace_state (see the docstring)
    assert received == expected
    assert received.ByteSize() > 1000  # the comparison is over the whole data set, not an empty request


@pytest.mark.parametrize("signal", list(Signal))
async def test_aiotlp_json_decodes_to_the_same_message(signal: Signal, collector: FakeCollector) -> None:
    data = await asyncio.to_thread(DATA[signal])  # off the loop: building it takes a while
    url = endpoint(collector, "http/protobuf", signal)
    protobuf = await export_through(OURS[signal](url, protocol="http/protobuf"), data, collector, signal)
    json = await export_through(OURS[signal](url, protocol="http/json"), data, collector, signal)
    assert json.content_type == "application/json"
    assert json.message == protobuf.message
