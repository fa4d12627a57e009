"""FakeCollector: a real OTLP receiver, driven by the official exporters and by raw gRPC / HTTP clients.

Private, on purpose: ``decode_rpc_status_json`` (``aiotlp.encoding._response``) reads the JSON status the
collector answers with.
"""

from __future__ import annotations

import asyncio
import base64
import gzip
import json
import ssl
import sys
import zlib
from collections.abc import AsyncIterator, Mapping
from typing import Any

import aiohttp
import grpc
import pytest
import trustme
from google.protobuf import json_format
from google.rpc import status_pb2
from opentelemetry.proto.collector.logs.v1 import logs_service_pb2
from opentelemetry.proto.collector.metrics.v1 import metrics_service_pb2
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2
from opentelemetry.proto.common.v1 import common_pb2
from opentelemetry.proto.logs.v1 import logs_pb2
from opentelemetry.proto.metrics.v1 import metrics_pb2
from opentelemetry.proto.trace.v1 import trace_pb2

from aiotlp import ConfigurationError, RejectedError, ServerBusyError
from aiotlp.config import ExporterConfig
from aiotlp.encoding import (
    PartialSuccess,
    classify_grpc_status,
    classify_http_response,
    decode_export_response,
    decode_export_response_json,
    decode_rpc_status,
)
from aiotlp.encoding._response import decode_rpc_status_json
from aiotlp.export import read_reply
from aiotlp.model import Signal
from aiotlp.testing import FakeCollector, Reply, message_to_otlp_json, otlp_json_to_message
from aiotlp.transport import H2GrpcTransport, grpc_method, zstd_compress

PROTOBUF = "application/x-protobuf"
JSON = "application/json"
TRACE_ID = bytes(range(1, 17))
SPAN_ID = bytes(range(0xA0, 0xA8))
PARENT_ID = bytes(range(0xB0, 0xB8))
LINK_TRACE_ID = bytes(range(0x10, 0x20))
LINK_SPAN_ID = bytes(range(0xC0, 0xC8))


# -- fixtures and helpers ------------------------------------------------------------------------------------


@pytest.fixture
async def collector() -> AsyncIterator[FakeCollector]:
    async with FakeCollector() as fake:
        yield fake


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as client:
        yield client


@pytest.fixture
async def channel(collector: FakeCollector) -> AsyncIterator[grpc.aio.Channel]:
    async with grpc.aio.insecure_channel(f"127.0.0.1:{collector.grpc_port}") as chan:
        yield chan


def trace_request(name: str = "work") -> trace_service_pb2.ExportTraceServiceRequest:
    request = trace_service_pb2.ExportTraceServiceRequest()
    resource_spans = request.resource_spans.add()
    resource_spans.resource.attributes.add(key="service.name", value=common_pb2.AnyValue(string_value="svc"))
    span = resource_spans.scope_spans.add().spans.add(
        name=name,
        trace_id=TRACE_ID,
        span_id=SPAN_ID,
        parent_span_id=PARENT_ID,
        kind=trace_pb2.Span.SPAN_KIND_SERVER,
        start_time_unix_nano=1_700_000_000_000_000_000,
        end_time_unix_nano=1_700_000_000_500_000_000,
    )
    span.attributes.add(key="blob", value=common_pb2.AnyValue(bytes_value=b"\x00\xffraw"))
    span.links.add(trace_id=LINK_TRACE_ID, span_id=LINK_SPAN_ID)
    span.links.add()  # a link with empty ids
    span.status.code = trace_pb2.Status.STATUS_CODE_ERROR
    return request


def logs_request() -> logs_service_pb2.ExportLogsServiceRequest:
    request = logs_service_pb2.ExportLogsServiceRequest()
    scope_logs = request.resource_logs.add().scope_logs.add()
    scope_logs.log_records.add(
        trace_id=TRACE_ID,
        span_id=SPAN_ID,
        severity_number=logs_pb2.SEVERITY_NUMBER_WARN,
        body=common_pb2.AnyValue(string_value="hello"),
    )
    scope_logs.log_records.add(body=common_pb2.AnyValue(string_value="no ids"))
    return request


def metrics_request() -> metrics_service_pb2.ExportMetricsServiceRequest:
    request = metrics_service_pb2.ExportMetricsServiceRequest()
    scope_metrics = request.resource_metrics.add().scope_metrics.add()
    exemplar = metrics_pb2.Exemplar(trace_id=TRACE_ID, span_id=SPAN_ID, as_double=1.5, time_unix_nano=7)
    gauge = scope_metrics.metrics.add(name="g")
    gauge.gauge.data_points.add(as_int=3).exemplars.append(exemplar)
    total = scope_metrics.metrics.add(name="s")
    total.sum.aggregation_temporality = metrics_pb2.AGGREGATION_TEMPORALITY_DELTA
    total.sum.data_points.add(as_double=2.0).exemplars.append(exemplar)
    histogram = scope_metrics.metrics.add(name="h")
    histogram.histogram.aggregation_temporality = metrics_pb2.AGGREGATION_TEMPORALITY_CUMULATIVE
    histogram.histogram.data_points.add(count=1, bucket_counts=[1, 0]).exemplars.append(exemplar)
    exponential = scope_metrics.metrics.add(name="e")
    exponential.exponential_histogram.data_points.add(count=1, scale=2).exemplars.append(exemplar)
    scope_metrics.metrics.add(name="q").summary.data_points.add(count=4, sum=10.0)
    return request


REQUESTS: dict[Signal, Any] = {
    Signal.TRACES: trace_request,
    Signal.METRICS: metrics_request,
    Signal.LOGS: logs_request,
}


def grpc_export(channel: grpc.aio.Channel, signal: Signal, body: bytes, **kwargs: Any) -> grpc.aio.UnaryUnaryCall:
    """Start one raw unary Export call (bytes in, bytes out); await it for the response bytes."""
    return channel.unary_unary(grpc_method(signal))(body, **kwargs)


async def http_post(
    session: aiohttp.ClientSession,
    collector: FakeCollector,
    signal: Signal,
    body: bytes,
    content_type: str = PROTOBUF,
    **kwargs: Any,
) -> tuple[int, Mapping[str, str], bytes]:
    headers = {"Content-Type": content_type, **kwargs.pop("headers", {})}
    url = collector.http_endpoint + signal.http_path
    async with session.post(url, data=body, headers=headers, **kwargs) as response:
        return response.status, response.headers, await response.read()


# -- recording -----------------------------------------------------------------------------------------------


async def test_endpoints_bind_loopback(collector: FakeCollector) -> None:
    assert collector.grpc_endpoint == f"http://127.0.0.1:{collector.grpc_port}"
    assert collector.http_endpoint == f"http://127.0.0.1:{collector.http_port}"
    assert collector.grpc_port != collector.http_port
    assert collector.running


@pytest.mark.allow_slow_callbacks  # the official exporter's thread holds the GIL: that is why aiotlp exists
async def test_official_grpc_exporter(collector: FakeCollector) -> None:
    from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SpanExportResult

    tracer = TracerProvider().get_tracer("test")
    with tracer.start_as_current_span("parent"):
        child = tracer.start_span("child")
        child.end()
    exporter = OTLPSpanExporter(
        endpoint=collector.grpc_endpoint,
        insecure=True,
        headers={"x-tenant": "t1"},
        compression=grpc.Compression.Gzip,
    )
    try:
        # the official exporter blocks: run it off the loop that serves the collector
        result = await asyncio.to_thread(exporter.export, [child] * 20)
    finally:
        await asyncio.to_thread(exporter.shutdown)
    assert result is SpanExportResult.SUCCESS
    [received] = collector.received
    assert received.signal is Signal.TRACES
    assert received.transport == "grpc"
    assert received.content_type == "application/grpc"
    assert received.compression == "gzip"  # 20 equal spans compress well, so gRPC really did gzip them
    assert received.headers["x-tenant"] == "t1"
    assert received.headers["user-agent"].startswith("OTel-OTLP-Exporter-Python")
    assert received.message == trace_service_pb2.ExportTraceServiceRequest.FromString(received.body)
    spans = collector.spans()
    assert [span.name for span in spans] == ["child"] * 20
    assert spans[0].span_id == child.get_span_context().span_id.to_bytes(8, "big")
    assert spans[0].parent_span_id != b""


async def test_official_http_exporter(collector: FakeCollector) -> None:
    from opentelemetry.exporter.otlp.proto.http import Compression
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SpanExportResult

    span = TracerProvider().get_tracer("test").start_span("over-http")
    span.end()
    exporter = OTLPSpanExporter(
        endpoint=collector.http_endpoint + "/v1/traces",
        compression=Compression.Gzip,
        headers={"x-tenant": "t2"},
    )
    try:
        result = await asyncio.to_thread(exporter.export, [span])
    finally:
        await asyncio.to_thread(exporter.shutdown)
    assert result is SpanExportResult.SUCCESS
    [received] = collector.requests(Signal.TRACES)
    assert (received.transport, received.content_type, received.compression) == ("http", PROTOBUF, "gzip")
    assert received.headers["x-tenant"] == "t2"
    assert received.headers["content-encoding"] == "gzip"
    assert received.message == trace_service_pb2.ExportTraceServiceRequest.FromString(received.body)
    assert [s.name for s in collector.spans()] == ["over-http"]


@pytest.mark.parametrize("signal", list(Signal))
async def test_grpc_records_exact_bytes(collector: FakeCollector, channel: grpc.aio.Channel, signal: Signal) -> None:
    request = REQUESTS[signal]()
    body = request.SerializeToString()
    response = await grpc_export(
        channel, signal, body, metadata=(("x-a", "1"), ("x-a", "2"), ("x-trace-bin", b"\x00\x01\xff"))
    )
    assert decode_export_response(response) == PartialSuccess()
    [received] = collector.requests(signal)
    assert received.body == body
    assert received.message == request
    assert received.compression is None
    assert received.headers["x-a"] == "1, 2"
    assert base64.b64decode(received.headers["x-trace-bin"] + "==") == b"\x00\x01\xff"
    assert collector.requests(next(s for s in Signal if s is not signal)) == []


async def test_grpc_gzip_request_is_inflated_and_recorded(collector: FakeCollector, channel: grpc.aio.Channel) -> None:
    request = trace_request("z" * 5000)  # compressible, so gRPC really sends it gzipped
    body = request.SerializeToString()
    await grpc_export(channel, Signal.TRACES, body, compression=grpc.Compression.Gzip)
    [received] = collector.received
    assert received.compression == "gzip"
    assert received.body == body
    assert received.message == request


async def test_grpc_deflate_request_is_inflated_and_recorded(
    collector: FakeCollector, channel: grpc.aio.Channel
) -> None:
    request = trace_request("d" * 5000)  # compressible, so gRPC really sends it deflated (a zlib stream)
    body = request.SerializeToString()
    await grpc_export(channel, Signal.TRACES, body, compression=grpc.Compression.Deflate)
    [received] = collector.received
    assert received.compression == "deflate"
    assert received.body == body
    assert received.message == request


@pytest.mark.parametrize("signal", list(Signal))
async def test_http_deflate_request_is_inflated_and_recorded(
    collector: FakeCollector, session: aiohttp.ClientSession, signal: Signal
) -> None:
    body = REQUESTS[signal]().SerializeToString()
    status, _, _ = await http_post(
        session, collector, signal, zlib.compress(body), headers={"Content-Encoding": "deflate"}
    )
    assert status == 200
    [received] = collector.received
    assert (received.compression, received.body) == ("deflate", body)


async def test_official_http_exporter_with_deflate(collector: FakeCollector) -> None:
    from opentelemetry.exporter.otlp.proto.http import Compression
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SpanExportResult

    span = TracerProvider().get_tracer("test").start_span("deflated")
    span.end()
    exporter = OTLPSpanExporter(endpoint=collector.http_endpoint + "/v1/traces", compression=Compression.Deflate)
    try:
        assert await asyncio.to_thread(exporter.export, [span]) is SpanExportResult.SUCCESS
    finally:
        await asyncio.to_thread(exporter.shutdown)
    [received] = collector.received
    assert (received.compression, received.headers["content-encoding"]) == ("deflate", "deflate")
    assert [s.name for s in collector.spans()] == ["deflated"]


@pytest.mark.parametrize("signal", list(Signal))
@pytest.mark.parametrize("compress", [False, True])
async def test_http_protobuf_records(
    collector: FakeCollector, session: aiohttp.ClientSession, signal: Signal, compress: bool
) -> None:
    request = REQUESTS[signal]()
    body = request.SerializeToString()
    headers = {"Content-Encoding": "gzip"} if compress else {}
    status, response_headers, response = await http_post(
        session, collector, signal, gzip.compress(body) if compress else body, headers=headers
    )
    assert status == 200
    assert response_headers["Content-Type"] == PROTOBUF
    assert decode_export_response(response) == PartialSuccess()
    [received] = collector.received
    assert (received.signal, received.transport, received.content_type) == (signal, "http", PROTOBUF)
    assert received.compression == ("gzip" if compress else None)
    assert received.body == body
    assert received.message == request


@pytest.mark.parametrize("signal", list(Signal))
async def test_http_json_records(collector: FakeCollector, session: aiohttp.ClientSession, signal: Signal) -> None:
    request = REQUESTS[signal]()
    body = json.dumps(message_to_otlp_json(request)).encode()
    status, headers, response = await http_post(session, collector, signal, body, JSON)
    assert status == 200
    assert headers["Content-Type"] == JSON
    assert json.loads(response) == {}
    assert decode_export_response_json(response) == PartialSuccess()
    [received] = collector.received
    assert received.content_type == JSON
    assert received.body == body
    assert received.message == request


async def test_flat_helpers(collector: FakeCollector, session: aiohttp.ClientSession) -> None:
    for signal, request in REQUESTS.items():
        await http_post(session, collector, signal, request().SerializeToString())
    assert [span.name for span in collector.spans()] == ["work"]
    assert [record.body.string_value for record in collector.log_records()] == ["hello", "no ids"]
    assert [metric.name for metric in collector.metrics()] == ["g", "s", "h", "e", "q"]
    assert [r.signal for r in collector.requests()] == [Signal.TRACES, Signal.METRICS, Signal.LOGS]
    collector.clear()
    assert collector.received == []
    assert collector.spans() == []


# -- waiting -------------------------------------------------------------------------------------------------


async def test_wait_for_count_and_predicate(collector: FakeCollector, channel: grpc.aio.Channel) -> None:
    waiter = asyncio.ensure_future(collector.wait_for(3))
    by_span = asyncio.ensure_future(collector.wait_for(lambda c: any(s.name == "two" for s in c.spans())))
    await asyncio.gather(
        *(grpc_export(channel, Signal.TRACES, trace_request(name).SerializeToString()) for name in "ab")
    )
    assert not waiter.done()
    assert not by_span.done()
    await grpc_export(channel, Signal.TRACES, trace_request("two").SerializeToString())
    received = await waiter
    assert len(received) == 3
    await by_span
    assert await collector.wait_for(1) == collector.received  # already true: returns at once


async def test_wait_for_times_out(collector: FakeCollector) -> None:
    with pytest.raises(TimeoutError, match=r"waited 0\.01s for 1 requests"):
        await collector.wait_for(1, timeout=0.01)
    with pytest.raises(TimeoutError, match="predicate"):
        await collector.wait_for(lambda c: False, timeout=0.01)


# -- refused requests ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "method", "content_type", "encoding", "body", "status", "grpc_code"),
    [
        ("/v1/spans", "POST", PROTOBUF, None, b"", 404, grpc.StatusCode.UNIMPLEMENTED),
        ("/", "POST", JSON, None, b"{}", 404, grpc.StatusCode.UNIMPLEMENTED),
        ("/v1/traces", "GET", PROTOBUF, None, b"", 405, grpc.StatusCode.UNIMPLEMENTED),
        ("/v1/traces", "POST", "text/plain", None, b"hi", 415, grpc.StatusCode.INVALID_ARGUMENT),
        ("/v1/logs", "POST", "application/protobuf", None, b"", 415, grpc.StatusCode.INVALID_ARGUMENT),
        ("/v1/traces", "POST", PROTOBUF, "br", b"", 415, grpc.StatusCode.INVALID_ARGUMENT),
        ("/v1/traces", "POST", PROTOBUF, None, b"\x0a\x05ab", 400, grpc.StatusCode.INVALID_ARGUMENT),
        ("/v1/metrics", "POST", PROTOBUF, "gzip", b"not gzip", 400, grpc.StatusCode.INVALID_ARGUMENT),
        (
            "/v1/metrics",
            "POST",
            PROTOBUF,
            "gzip",
            gzip.compress(b"abc")[:-4],
            400,
            grpc.StatusCode.INVALID_ARGUMENT,
        ),
        ("/v1/traces", "POST", PROTOBUF, "deflate", b"not zlib", 400, grpc.StatusCode.INVALID_ARGUMENT),
        ("/v1/traces", "POST", PROTOBUF, "deflate", zlib.compress(b"abc")[:-2], 400, grpc.StatusCode.INVALID_ARGUMENT),
        ("/v1/logs", "POST", JSON, None, b"{not json", 400, grpc.StatusCode.INVALID_ARGUMENT),
        ("/v1/logs", "POST", JSON, None, b'{"resource_logs": []}', 400, grpc.StatusCode.INVALID_ARGUMENT),
    ],
)
async def test_http_refusals(
    collector: FakeCollector,
    session: aiohttp.ClientSession,
    path: str,
    method: str,
    content_type: str,
    encoding: str | None,
    body: bytes,
    status: int,
    grpc_code: grpc.StatusCode,
) -> None:
    collector.script(Reply(http_status=500))  # refusals consume no scripted reply
    headers = {"Content-Type": content_type}
    if encoding:
        headers["Content-Encoding"] = encoding
    async with session.request(method, collector.http_endpoint + path, data=body, headers=headers) as response:
        assert response.status == status
        answer = await response.read()
        answer_type = response.content_type
    assert answer_type == (content_type if content_type in (PROTOBUF, JSON) else JSON)
    decoded = decode_rpc_status_json(answer) if answer_type == JSON else decode_rpc_status(answer)
    assert decoded.code == grpc_code.value[0]
    assert decoded.message
    [bad] = collector.bad_requests
    assert (bad.transport, bad.path, bad.status, bad.reason) == ("http", path, status, decoded.message)
    assert collector.received == []
    assert collector.pending() == 1


async def test_http_body_too_large(session: aiohttp.ClientSession) -> None:
    async with FakeCollector(max_request_size=1000) as collector:
        status, _, _ = await http_post(session, collector, Signal.TRACES, bytes(1001))
        assert status == 413
        status, _, _ = await http_post(
            session,
            collector,
            Signal.TRACES,
            gzip.compress(bytes(5000)),
            headers={"Content-Encoding": "gzip"},
        )
        assert status == 413
        assert [bad.status for bad in collector.bad_requests] == [413, 413]


async def test_grpc_refuses_undecodable_body(collector: FakeCollector, channel: grpc.aio.Channel) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await grpc_export(channel, Signal.LOGS, b"\x0a\x05ab")
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "cannot decode logs request" in (info.value.details() or "")
    [bad] = collector.bad_requests
    assert (bad.transport, bad.status, bad.body) == ("grpc", "INVALID_ARGUMENT", b"\x0a\x05ab")
    assert bad.path == grpc_method(Signal.LOGS)


# -- scripted replies ----------------------------------------------------------------------------------------


async def test_script_order_per_signal_then_any_then_default(
    collector: FakeCollector, session: aiohttp.ClientSession
) -> None:
    collector.default = Reply(http_status=202)
    collector.script(Reply(http_status=201), Reply(http_status=203))
    collector.script(Reply(http_status=206), signal=Signal.LOGS)
    assert (collector.pending(), collector.pending(Signal.LOGS), collector.pending(Signal.TRACES)) == (
        2,
        1,
        0,
    )
    statuses = []
    for signal in (Signal.LOGS, Signal.LOGS, Signal.TRACES, Signal.METRICS, Signal.TRACES):
        status, _, _ = await http_post(session, collector, signal, b"")
        statuses.append(status)
    assert statuses == [206, 201, 203, 202, 202]
    assert collector.pending() == collector.pending(Signal.LOGS) == 0


async def test_clear_script_drops_the_unused_replies_of_one_queue(
    collector: FakeCollector, session: aiohttp.ClientSession
) -> None:
    collector.script(Reply(http_status=503), Reply(http_status=429))
    collector.script(Reply(http_status=400), signal=Signal.LOGS)
    assert collector.clear_script() == 2
    assert (collector.pending(), collector.pending(Signal.LOGS)) == (0, 1)
    status, _, _ = await http_post(session, collector, Signal.TRACES, b"")
    assert status == 200  # the default: the dropped replies are not used
    assert collector.clear_script(Signal.LOGS) == 1
    status, _, _ = await http_post(session, collector, Signal.LOGS, b"")
    assert status == 200


@pytest.mark.parametrize(
    ("http_status", "grpc_code"),
    [
        (200, grpc.StatusCode.OK),
        (204, grpc.StatusCode.OK),
        (429, grpc.StatusCode.RESOURCE_EXHAUSTED),
        (502, grpc.StatusCode.UNAVAILABLE),
        (503, grpc.StatusCode.UNAVAILABLE),
        (504, grpc.StatusCode.UNAVAILABLE),
        (400, grpc.StatusCode.INVALID_ARGUMENT),
        (401, grpc.StatusCode.INTERNAL),
        (500, grpc.StatusCode.INTERNAL),
    ],
)
async def test_grpc_code_derived_from_http_status(
    collector: FakeCollector, channel: grpc.aio.Channel, http_status: int, grpc_code: grpc.StatusCode
) -> None:
    reply = Reply(http_status=http_status, message="scripted")
    assert reply.effective_grpc_code == grpc_code
    collector.script(reply)
    call = grpc_export(channel, Signal.TRACES, b"")
    if grpc_code == grpc.StatusCode.OK:
        assert await call == b""
        return
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await call
    assert info.value.code() == grpc_code
    assert info.value.details() == "scripted"


async def test_grpc_code_wins_and_does_not_change_http(
    collector: FakeCollector, channel: grpc.aio.Channel, session: aiohttp.ClientSession
) -> None:
    collector.default = Reply(grpc_code=grpc.StatusCode.PERMISSION_DENIED, message="no")
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await grpc_export(channel, Signal.METRICS, b"")
    assert info.value.code() == grpc.StatusCode.PERMISSION_DENIED
    status, _, _ = await http_post(session, collector, Signal.METRICS, b"")
    assert status == 200


async def test_http_error_status_with_retry_after_and_retry_info(
    collector: FakeCollector, session: aiohttp.ClientSession
) -> None:
    collector.script(
        Reply(http_status=503, retry_after="7", retry_delay=2.5, message="overloaded"),
        Reply(http_status=429, retry_delay=1.25, message="slow down"),
    )
    status, headers, body = await http_post(session, collector, Signal.TRACES, b"")
    assert status == 503
    assert headers["Retry-After"] == "7"
    decoded = decode_rpc_status(body)
    assert (decoded.code, decoded.message, decoded.retry_delay) == (14, "overloaded", 2.5)
    error = classify_http_response(
        status, retry_after=headers["Retry-After"], body=body, content_type=headers["Content-Type"], now=0.0
    )
    assert isinstance(error, ServerBusyError)
    assert error.retry_after == 7.0
    assert error.message == "HTTP 503 Service Unavailable from collector: overloaded"

    status, headers, body = await http_post(session, collector, Signal.TRACES, b"{}", JSON)
    assert status == 429
    assert "Retry-After" not in headers
    assert decode_rpc_status_json(body).retry_delay == 1.25
    assert json.loads(body)["details"][0]["@type"] == "type.googleapis.com/google.rpc.RetryInfo"


async def test_http_permanent_error(collector: FakeCollector, session: aiohttp.ClientSession) -> None:
    collector.script(Reply(http_status=400, message="bad span"))
    status, _, body = await http_post(session, collector, Signal.TRACES, b"")
    error = classify_http_response(status, retry_after=None, body=body, content_type=PROTOBUF, now=0.0)
    assert type(error) is RejectedError
    assert error.message == "HTTP 400 Bad Request from collector: bad span"


@pytest.mark.parametrize(
    ("code", "retry_delay", "retryable"),
    [
        (grpc.StatusCode.UNAVAILABLE, 3.5, True),
        (grpc.StatusCode.UNAVAILABLE, None, True),
        (grpc.StatusCode.RESOURCE_EXHAUSTED, 0.5, True),
        (grpc.StatusCode.RESOURCE_EXHAUSTED, None, False),
        (grpc.StatusCode.INVALID_ARGUMENT, 1.0, False),
    ],
)
async def test_grpc_retry_info_in_trailers(
    collector: FakeCollector,
    channel: grpc.aio.Channel,
    code: grpc.StatusCode,
    retry_delay: float | None,
    retryable: bool,
) -> None:
    collector.script(Reply(grpc_code=code, retry_delay=retry_delay, message="busy"))
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await grpc_export(channel, Signal.TRACES, b"")
    assert info.value.code() == code
    trailers = dict(info.value.trailing_metadata() or ())
    details = trailers.get("grpc-status-details-bin")
    if retry_delay is None:
        assert details is None
    else:
        assert isinstance(details, bytes)
        decoded = decode_rpc_status(details)
        assert (decoded.code, decoded.message, decoded.retry_delay) == (code.value[0], "busy", retry_delay)
        assert status_pb2.Status.FromString(details).code == code.value[0]
    error = classify_grpc_status(code.value[0], message=info.value.details() or "", details=details)
    assert error.retryable is retryable
    assert error.status == code.name
    if retryable:
        assert isinstance(error, ServerBusyError)
        assert error.retry_after == retry_delay


@pytest.mark.parametrize("signal", list(Signal))
async def test_partial_success(
    collector: FakeCollector, channel: grpc.aio.Channel, session: aiohttp.ClientSession, signal: Signal
) -> None:
    collector.default = Reply(rejected=3, error_message="3 dropped")
    expected = PartialSuccess(3, "3 dropped")
    assert decode_export_response(await grpc_export(channel, signal, b"")) == expected
    _, _, body = await http_post(session, collector, signal, b"")
    assert decode_export_response(body) == expected
    _, _, body = await http_post(session, collector, signal, b"{}", JSON)
    assert decode_export_response_json(body) == expected
    response_class = {
        Signal.TRACES: trace_service_pb2.ExportTraceServiceResponse,
        Signal.METRICS: metrics_service_pb2.ExportMetricsServiceResponse,
        Signal.LOGS: logs_service_pb2.ExportLogsServiceResponse,
    }[signal]
    assert json_format.ParseDict(json.loads(body), response_class()).partial_success.error_message == "3 dropped"


async def test_raw_body_override(
    collector: FakeCollector, channel: grpc.aio.Channel, session: aiohttp.ClientSession
) -> None:
    collector.default = Reply(body=b"\xde\xad")
    assert await grpc_export(channel, Signal.TRACES, b"") == b"\xde\xad"
    status, _, body = await http_post(session, collector, Signal.TRACES, b"")
    assert (status, body) == (200, b"\xde\xad")


async def test_delay_holds_the_answer_after_recording(
    collector: FakeCollector, channel: grpc.aio.Channel, session: aiohttp.ClientSession
) -> None:
    collector.default = Reply(delay=30.0)
    # gRPC: the client's deadline passes while the collector waits
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await grpc_export(channel, Signal.TRACES, b"", timeout=0.2)
    assert info.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
    # both transports: recorded at once, answered only later
    post = asyncio.ensure_future(http_post(session, collector, Signal.TRACES, b""))
    call = grpc_export(channel, Signal.LOGS, b"")
    await collector.wait_for(3)
    assert not post.done()
    assert not call.done()
    loop = asyncio.get_running_loop()
    started = loop.time()
    await collector.stop()  # prompt, with two answers pending for 30 s
    assert loop.time() - started < 5.0
    with pytest.raises(aiohttp.ClientError):
        await post
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await call
    assert info.value.code() in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.CANCELLED)


async def test_short_delay(collector: FakeCollector, session: aiohttp.ClientSession) -> None:
    collector.script(Reply(delay=0.1))
    loop = asyncio.get_running_loop()
    started = loop.time()
    status, _, _ = await http_post(session, collector, Signal.LOGS, b"")
    assert status == 200
    assert loop.time() - started >= 0.09  # timers may fire a hair early


async def test_huge_http_body_is_streamed(collector: FakeCollector, session: aiohttp.ClientSession) -> None:
    size = 256 * 1024 * 1024
    collector.script(Reply(body_size=size))
    url = collector.http_endpoint + "/v1/traces"
    async with session.post(url, data=b"", headers={"Content-Type": PROTOBUF}) as response:
        assert response.status == 200
        assert response.content_length == size
        first = await response.content.readexactly(64 * 1024)
        assert len(first) == 64 * 1024
        response.close()  # hang up after the first bytes: the collector just stops writing


async def test_large_body_is_a_well_formed_response(
    collector: FakeCollector, channel: grpc.aio.Channel, session: aiohttp.ClientSession
) -> None:
    sizes = (300_001, 1, 0, 2, 130, 16_386)  # 130 and 16386 need a padded length varint
    collector.script(*(Reply(body_size=size) for size in sizes))
    for size in sizes:
        _, _, body = await http_post(session, collector, Signal.TRACES, b"")
        assert len(body) == size
        if size != 1:  # one byte cannot hold a field
            assert decode_export_response(body) == PartialSuccess()
            trace_service_pb2.ExportTraceServiceResponse.FromString(body)
    collector.script(Reply(body_size=200_000))
    response = await grpc_export(channel, Signal.TRACES, b"")
    assert len(response) == 200_000
    assert decode_export_response(response) == PartialSuccess()


async def test_large_json_body_is_a_well_formed_response(
    collector: FakeCollector, session: aiohttp.ClientSession
) -> None:
    sizes = (100_000, 0, 5, 13)
    collector.script(*(Reply(body_size=size) for size in sizes))
    for size in sizes:
        _, headers, body = await http_post(session, collector, Signal.METRICS, b"{}", JSON)
        assert headers["Content-Type"] == JSON
        assert len(body) == size
        assert decode_export_response_json(body) == PartialSuccess()


async def test_grpc_body_over_client_limit(collector: FakeCollector, channel: grpc.aio.Channel) -> None:
    collector.script(Reply(body_size=5 * 1024 * 1024))  # the gRPC client's default receive limit is 4 MiB
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await grpc_export(channel, Signal.TRACES, b"")
    assert info.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED


async def test_http_gzip_bomb(collector: FakeCollector, session: aiohttp.ClientSession) -> None:
    size = 1024 * 1024 * 1024
    collector.script(Reply(gzip_bomb=size))
    url = collector.http_endpoint + "/v1/traces"
    async with session.post(url, data=b"", headers={"Content-Type": PROTOBUF}, auto_decompress=False) as response:
        assert response.status == 200
        assert response.headers["Content-Encoding"] == "gzip"
        assert response.content_length is not None
        assert response.content_length < 2 * 1024 * 1024  # about 1 KiB per inflated MiB
        head = await response.content.readexactly(16 * 1024)
        response.close()
    inflater = zlib.decompressobj(16 + zlib.MAX_WBITS)
    inflated = inflater.decompress(head, 8 * 1024 * 1024)
    assert len(inflated) == 8 * 1024 * 1024  # 16 KiB in: already 8 MiB out, and more to come
    assert inflated[0] == 0x7A  # a length-delimited unknown field that holds the rest


async def test_http_gzip_bomb_is_valid_gzip(collector: FakeCollector, session: aiohttp.ClientSession) -> None:
    size = 3 * 1024 * 1024 + 5
    collector.script(Reply(gzip_bomb=size))
    _, headers, body = await http_post(session, collector, Signal.LOGS, b"", auto_decompress=False)
    assert headers["Content-Encoding"] == "gzip"
    inflated = gzip.decompress(body)  # checks the CRC and length trailer
    assert len(inflated) == size
    assert decode_export_response(inflated) == PartialSuccess()


async def test_http_gzip_bomb_json(collector: FakeCollector, session: aiohttp.ClientSession) -> None:
    collector.script(Reply(gzip_bomb=2 * 1024 * 1024))
    _, headers, body = await http_post(session, collector, Signal.LOGS, b"{}", JSON)  # aiohttp inflates it
    assert headers["Content-Type"] == JSON
    assert len(body) == 2 * 1024 * 1024
    assert decode_export_response_json(body) == PartialSuccess()


async def test_grpc_gzip_bomb_sends_compressed(collector: FakeCollector, channel: grpc.aio.Channel) -> None:
    collector.script(Reply(gzip_bomb=1024 * 1024))
    response = await grpc_export(channel, Signal.TRACES, b"")
    assert len(response) == 1024 * 1024


async def test_drop_connection(
    collector: FakeCollector, channel: grpc.aio.Channel, session: aiohttp.ClientSession
) -> None:
    collector.default = Reply(drop_connection=True)
    with pytest.raises(aiohttp.ServerDisconnectedError):
        await http_post(session, collector, Signal.TRACES, b"")
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await grpc_export(channel, Signal.TRACES, b"")
    assert info.value.code() == grpc.StatusCode.UNAVAILABLE
    assert len(collector.received) == 2  # both were received before the drop


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"http_status": 99}, "http_status"),
        ({"http_status": 600}, "http_status"),
        ({"grpc_code": 14}, "grpc_code"),
        ({"delay": -1.0}, "delay"),
        ({"delay": float("nan")}, "delay"),
        ({"retry_delay": -0.5}, "retry_delay"),
        ({"body_size": -1}, "body_size"),
        ({"gzip_bomb": -1}, "gzip_bomb"),
        ({"retry_after": "1\r\nX-Evil: 1"}, "retry_after"),
        ({"body": b"", "body_size": 3}, "exclusive"),
    ],
)
def test_reply_validation(kwargs: dict[str, Any], match: str) -> None:
    with pytest.raises(ConfigurationError, match=match):
        Reply(**kwargs)


def test_collector_validation() -> None:
    with pytest.raises(ConfigurationError, match="together"):
        FakeCollector(ssl_cert=b"x")
    with pytest.raises(ConfigurationError, match="client_ca"):
        FakeCollector(client_ca=b"x")
    with pytest.raises(ConfigurationError, match="max_request_size"):
        FakeCollector(max_request_size=0)
    with pytest.raises(ConfigurationError, match="Reply"):
        FakeCollector().script(200)  # type: ignore[arg-type]
    with pytest.raises(RuntimeError, match="not been started"):
        _ = FakeCollector().grpc_endpoint


# -- lifecycle -----------------------------------------------------------------------------------------------


async def test_restart_reuses_ports(session: aiohttp.ClientSession) -> None:
    collector = FakeCollector()
    await collector.start()
    try:
        ports = (collector.grpc_port, collector.http_port)
        with pytest.raises(RuntimeError, match="already running"):
            await collector.start()
        async with grpc.aio.insecure_channel(f"127.0.0.1:{collector.grpc_port}") as channel:
            await grpc_export(channel, Signal.TRACES, b"")
            await collector.stop()
            await collector.stop()  # idempotent
            assert not collector.running
            assert (collector.grpc_port, collector.http_port) == ports
            with pytest.raises(aiohttp.ClientConnectionError):
                await http_post(session, collector, Signal.TRACES, b"")

            await collector.start()
            assert (collector.grpc_port, collector.http_port) == ports
            # the same channel reconnects to the restarted server
            await grpc_export(channel, Signal.TRACES, b"", wait_for_ready=True, timeout=10)
        status, _, _ = await http_post(session, collector, Signal.TRACES, b"")
        assert status == 200
        assert [r.transport for r in collector.received] == ["grpc", "grpc", "http"]
    finally:
        await collector.stop()


# -- TLS -----------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def ca() -> trustme.CA:
    return trustme.CA()


def _tls_collector(ca: trustme.CA, *, mtls: bool) -> FakeCollector:
    server = ca.issue_cert("127.0.0.1", "localhost")
    return FakeCollector(
        ssl_cert=b"".join(blob.bytes() for blob in server.cert_chain_pems),
        ssl_key=server.private_key_pem.bytes(),
        client_ca=ca.cert_pem.bytes() if mtls else None,
    )


def _client_context(ca: trustme.CA, client: trustme.LeafCert | None) -> ssl.SSLContext:
    context = ssl.create_default_context(cadata=ca.cert_pem.bytes().decode())
    if client is not None:
        client.configure_cert(context)
    return context


def _grpc_credentials(ca: trustme.CA, client: trustme.LeafCert | None) -> grpc.ChannelCredentials:
    if client is None:
        return grpc.ssl_channel_credentials(root_certificates=ca.cert_pem.bytes())
    return grpc.ssl_channel_credentials(
        root_certificates=ca.cert_pem.bytes(),
        private_key=client.private_key_pem.bytes(),
        certificate_chain=b"".join(blob.bytes() for blob in client.cert_chain_pems),
    )


# CPython 3.10's asyncio leaks the SSL transport of a server connection whose handshake fails (the old sslproto,
# rewritten in 3.11): the refused handshakes below leave one to the garbage collector there
_PY310_SSL_LEAK = pytest.mark.filterwarnings(
    "ignore:Exception ignored in. <function _SSLProtocolTransport.__del__:pytest.PytestUnraisableExceptionWarning"
    if sys.version_info < (3, 11)
    else "default::pytest.PytestUnraisableExceptionWarning:nowhere"
)


@_PY310_SSL_LEAK
async def test_tls(ca: trustme.CA, session: aiohttp.ClientSession) -> None:
    async with _tls_collector(ca, mtls=False) as collector:
        assert collector.http_endpoint.startswith("https://127.0.0.1:")
        assert collector.grpc_endpoint.startswith("https://127.0.0.1:")
        status, _, _ = await http_post(session, collector, Signal.TRACES, b"", ssl=_client_context(ca, None))
        assert status == 200
        with pytest.raises(aiohttp.ClientConnectorCertificateError):
            await http_post(session, collector, Signal.TRACES, b"")  # the system CAs do not trust it
        target = f"127.0.0.1:{collector.grpc_port}"
        async with grpc.aio.secure_channel(target, _grpc_credentials(ca, None)) as channel:
            await grpc_export(channel, Signal.TRACES, b"", timeout=10)
        assert [r.transport for r in collector.received] == ["http", "grpc"]


@_PY310_SSL_LEAK
async def test_mtls(ca: trustme.CA, session: aiohttp.ClientSession) -> None:
    client = ca.issue_cert("client.example")
    async with _tls_collector(ca, mtls=True) as collector:
        status, _, _ = await http_post(session, collector, Signal.LOGS, b"", ssl=_client_context(ca, client))
        assert status == 200
        with pytest.raises(aiohttp.ClientError):
            await http_post(session, collector, Signal.LOGS, b"", ssl=_client_context(ca, None))
        target = f"127.0.0.1:{collector.grpc_port}"
        async with grpc.aio.secure_channel(target, _grpc_credentials(ca, client)) as channel:
            await grpc_export(channel, Signal.LOGS, b"", timeout=10)
        async with grpc.aio.secure_channel(target, _grpc_credentials(ca, None)) as channel:
            with pytest.raises(grpc.aio.AioRpcError) as info:
                await grpc_export(channel, Signal.LOGS, b"", timeout=10)
            assert info.value.code() == grpc.StatusCode.UNAVAILABLE
        assert [r.transport for r in collector.received] == ["http", "grpc"]


# -- OTLP/JSON -----------------------------------------------------------------------------------------------


def test_json_ids_are_hex_everywhere() -> None:
    traces = message_to_otlp_json(trace_request())
    span = traces["resourceSpans"][0]["scopeSpans"][0]["spans"][0]
    assert (span["traceId"], span["spanId"], span["parentSpanId"]) == (
        TRACE_ID.hex(),
        SPAN_ID.hex(),
        PARENT_ID.hex(),
    )
    assert span["links"][0] == {"traceId": LINK_TRACE_ID.hex(), "spanId": LINK_SPAN_ID.hex()}
    assert span["links"][1] == {}
    assert span["kind"] == 2  # enums are integers
    assert span["status"] == {"code": 2}
    assert span["startTimeUnixNano"] == "1700000000000000000"  # 64-bit integers are strings
    # other bytes stay base64
    assert span["attributes"][0]["value"] == {"bytesValue": base64.b64encode(b"\x00\xffraw").decode()}

    logs = message_to_otlp_json(logs_request())
    first, second = logs["resourceLogs"][0]["scopeLogs"][0]["logRecords"]
    assert (first["traceId"], first["spanId"], first["severityNumber"]) == (TRACE_ID.hex(), SPAN_ID.hex(), 13)
    assert "traceId" not in second

    metrics = message_to_otlp_json(metrics_request())
    by_name = {m["name"]: m for m in metrics["resourceMetrics"][0]["scopeMetrics"][0]["metrics"]}
    for name, kind in (("g", "gauge"), ("s", "sum"), ("h", "histogram"), ("e", "exponentialHistogram")):
        exemplar = by_name[name][kind]["dataPoints"][0]["exemplars"][0]
        assert (exemplar["traceId"], exemplar["spanId"]) == (TRACE_ID.hex(), SPAN_ID.hex())
    assert by_name["s"]["sum"]["aggregationTemporality"] == 1


@pytest.mark.parametrize("signal", list(Signal))
def test_json_round_trip(signal: Signal) -> None:
    request = REQUESTS[signal]()
    data = message_to_otlp_json(request)
    assert otlp_json_to_message(signal, data) == request
    assert otlp_json_to_message(signal, json.dumps(data)) == request
    assert otlp_json_to_message(signal, json.dumps(data).encode()) == request
    assert message_to_otlp_json(request) == data  # the input dict was not modified


def test_json_accepts_upper_case_hex_and_empty_ids() -> None:
    data = {
        "resourceSpans": [{"scopeSpans": [{"spans": [{"traceId": TRACE_ID.hex().upper(), "spanId": "", "name": "x"}]}]}]
    }
    message = otlp_json_to_message(Signal.TRACES, data)
    span = message.resource_spans[0].scope_spans[0].spans[0]
    assert (span.trace_id, span.span_id, span.name) == (TRACE_ID, b"", "x")


def _span_json(**span: Any) -> dict[str, Any]:
    return {"resourceSpans": [{"scopeSpans": [{"spans": [span]}]}]}


@pytest.mark.parametrize(
    ("data", "match"),
    [
        (b"{", "invalid OTLP/JSON"),
        (b"[]", "expected an object"),
        (_span_json(traceId=base64.b64encode(TRACE_ID).decode()), "32 hex digits"),
        (_span_json(spanId="zz" * 8), "not hex"),
        (_span_json(spanId=7), "hex string"),
        (_span_json(parentSpanId="ab"), "16 hex digits"),
        (_span_json(links=[{"traceId": "00"}]), "links"),
        (_span_json(trace_id=TRACE_ID.hex()), "lowerCamelCase"),
        ({"resource_spans": []}, "lowerCamelCase"),
        (_span_json(kind="SPAN_KIND_SERVER"), "enums are integers"),
        (_span_json(status={"code": "STATUS_CODE_OK"}), "enums are integers"),
        (_span_json(unknownField=1), "unknownField"),
        (_span_json(name=3), "invalid OTLP/JSON traces request"),
    ],
)
def test_json_strictness(data: Any, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        otlp_json_to_message(Signal.TRACES, data)


def test_json_exemplar_and_log_ids_are_checked() -> None:
    logs = {"resourceLogs": [{"scopeLogs": [{"logRecords": [{"spanId": "00" * 16}]}]}]}
    with pytest.raises(ValueError, match=r"^OTLP/JSON resourceLogs\[0\]\.scopeLogs\[0\]\.logRecords\[0\]\.spanId must"):
        otlp_json_to_message(Signal.LOGS, logs)
    metric = {"name": "g", "gauge": {"dataPoints": [{"exemplars": [{"traceId": "0" * 31}]}]}}
    metrics = {"resourceMetrics": [{"scopeMetrics": [{"metrics": [metric]}]}]}
    with pytest.raises(ValueError, match="exemplars"):
        otlp_json_to_message(Signal.METRICS, metrics)


# -- zstd, and the h2 gRPC server (grpc core refuses grpc-encoding zstd) ---------------------------------------


@pytest.mark.parametrize("signal", list(Signal))
async def test_http_zstd_request_is_decoded_and_recorded(
    collector: FakeCollector, session: aiohttp.ClientSession, signal: Signal
) -> None:
    body = REQUESTS[signal]().SerializeToString()
    status, _, _ = await http_post(
        session, collector, signal, zstd_compress(body), headers={"Content-Encoding": "zstd"}
    )
    assert status == 200
    [received] = collector.received
    assert (received.compression, received.body) == ("zstd", body)


@pytest.mark.parametrize(
    ("body", "status"),
    [
        (b"not zstd", 400),
        (b"\x28\xb5\x2f\xfd truncated", 400),
        (None, 413),  # a bomb: more than max_request_size once decoded
    ],
    ids=["garbage", "truncated", "bomb"],
)
async def test_http_zstd_refusals(session: aiohttp.ClientSession, body: bytes | None, status: int) -> None:
    async with FakeCollector(max_request_size=1024 * 1024) as collector:
        data = zstd_compress(bytes(64 * 1024 * 1024)) if body is None else body
        got, _, _ = await http_post(session, collector, Signal.TRACES, data, headers={"Content-Encoding": "zstd"})
        assert got == status
        [bad] = collector.bad_requests
        assert "zstd" in bad.reason
        assert collector.received == []


async def test_grpcio_server_cannot_take_zstd_and_the_h2_server_can() -> None:
    spans = trace_request("zstd " * 1000).SerializeToString()
    for kind, ok in (("grpcio", False), ("h2", True)):
        async with FakeCollector(grpc_server=kind) as collector:  # type: ignore[arg-type]
            config = ExporterConfig.from_env(endpoint=collector.grpc_endpoint, protocol="grpc", compression="zstd")
            transport = H2GrpcTransport(config.traces)
            try:
                reply = await transport.send(zstd_compress(spans), content_encoding="zstd", timeout=5)
                if ok:
                    assert read_reply(reply, transport.content_type) == PartialSuccess()
                    [received] = collector.received
                    assert (received.compression, received.body) == ("zstd", spans)
                else:
                    with pytest.raises(RejectedError, match="grpc-encoding"):
                        read_reply(reply, transport.content_type)
            finally:
                await transport.close()


@pytest.fixture
async def h2_collector() -> AsyncIterator[FakeCollector]:
    async with FakeCollector(grpc_server="h2") as fake:
        yield fake


@pytest.fixture
async def h2_channel(h2_collector: FakeCollector) -> AsyncIterator[grpc.aio.Channel]:
    async with grpc.aio.insecure_channel(f"127.0.0.1:{h2_collector.grpc_port}") as chan:
        yield chan


@pytest.mark.parametrize(
    "compression", [grpc.Compression.NoCompression, grpc.Compression.Gzip, grpc.Compression.Deflate]
)
@pytest.mark.parametrize("signal", list(Signal))
async def test_h2_server_takes_grpcio_calls(
    h2_collector: FakeCollector, h2_channel: grpc.aio.Channel, signal: Signal, compression: grpc.Compression
) -> None:
    request = REQUESTS[signal]()
    request_body = request.SerializeToString()
    response = await grpc_export(
        h2_channel, signal, request_body, compression=compression, metadata=(("x-a", "1"), ("x-t-bin", b"\x00\xff"))
    )
    assert decode_export_response(response) == PartialSuccess()
    [received] = h2_collector.received
    assert (received.transport, received.body, received.message) == ("grpc", request_body, request)
    assert received.headers["x-a"] == "1"
    assert base64.b64decode(received.headers["x-t-bin"] + "==") == b"\x00\xff"
    assert "grpc-encoding" not in received.headers
    assert received.peer.startswith("127.0.0.1:")


async def test_h2_server_answers_scripted_replies(h2_collector: FakeCollector, h2_channel: grpc.aio.Channel) -> None:
    h2_collector.script(
        Reply(grpc_code=grpc.StatusCode.RESOURCE_EXHAUSTED, message="slow down", retry_delay=1.5),
        Reply(rejected=3, error_message="three were bad"),
        Reply(gzip_bomb=8 * 1024 * 1024),
        Reply(body_size=3 * 1024 * 1024),
    )
    body = trace_request().SerializeToString()
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await grpc_export(h2_channel, Signal.TRACES, body)
    assert (info.value.code(), info.value.details()) == (grpc.StatusCode.RESOURCE_EXHAUSTED, "slow down")
    trailers = dict(info.value.trailing_metadata() or ())
    error = classify_grpc_status(8, message="slow down", details=trailers["grpc-status-details-bin"])
    assert isinstance(error, ServerBusyError)
    assert error.retry_after == 1.5
    partial = decode_export_response(await grpc_export(h2_channel, Signal.TRACES, body))
    assert (partial.rejected, partial.error_message) == (3, "three were bad")
    with pytest.raises(grpc.aio.AioRpcError):  # the client's 4 MiB limit, after decompression
        await grpc_export(h2_channel, Signal.TRACES, body)
    assert len(await grpc_export(h2_channel, Signal.TRACES, body, timeout=10)) == 3 * 1024 * 1024
    assert len(h2_collector.received) == 4


async def test_h2_server_refusals(h2_channel: grpc.aio.Channel, h2_collector: FakeCollector) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await h2_channel.unary_unary("/opentelemetry.proto.collector.trace.v1.TraceService/Nope")(b"")
    assert info.value.code() == grpc.StatusCode.UNIMPLEMENTED
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await grpc_export(h2_channel, Signal.TRACES, b"\xff\xff")
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    [bad] = h2_collector.bad_requests
    assert (bad.transport, bad.status) == ("grpc", "INVALID_ARGUMENT")
    assert h2_collector.received == []


async def test_h2_server_size_limit_and_zstd_bomb() -> None:
    async with FakeCollector(grpc_server="h2", max_request_size=1024 * 1024) as collector:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{collector.grpc_port}") as channel:
            with pytest.raises(grpc.aio.AioRpcError) as info:
                await grpc_export(channel, Signal.TRACES, bytes(2 * 1024 * 1024))
            assert info.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        config = ExporterConfig.from_env(endpoint=collector.grpc_endpoint, protocol="grpc", compression="zstd")
        transport = H2GrpcTransport(config.traces)
        try:
            body = zstd_compress(bytes(64 * 1024 * 1024))
            with pytest.raises(RejectedError, match="RESOURCE_EXHAUSTED"):
                read_reply(await transport.send(body, content_encoding="zstd", timeout=5), transport.content_type)
        finally:
            await transport.close()
        [bad] = collector.bad_requests
        assert "zstd body decompresses to more than" in bad.reason
        assert collector.received == []


async def test_h2_server_tls_and_restart(ca: trustme.CA) -> None:
    server = ca.issue_cert("127.0.0.1", "localhost")
    collector = FakeCollector(
        grpc_server="h2",
        ssl_cert=b"".join(blob.bytes() for blob in server.cert_chain_pems),
        ssl_key=server.private_key_pem.bytes(),
    )
    async with collector:
        port = collector.grpc_port
        target = f"127.0.0.1:{port}"
        async with grpc.aio.secure_channel(target, _grpc_credentials(ca, None)) as channel:
            await grpc_export(channel, Signal.TRACES, b"", timeout=10)
    await collector.start()
    try:
        assert collector.grpc_port == port
        async with grpc.aio.secure_channel(target, _grpc_credentials(ca, None)) as channel:
            await grpc_export(channel, Signal.TRACES, b"", timeout=10)
    finally:
        await collector.stop()
    assert [r.transport for r in collector.received] == ["grpc", "grpc"]


def test_grpc_server_choice_is_validated() -> None:
    with pytest.raises(ConfigurationError, match="grpc_server"):
        FakeCollector(grpc_server="grpc-go")  # type: ignore[arg-type]
