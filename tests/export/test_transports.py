"""OTLPExporter over the real transports (grpc.aio, aiohttp) against the FakeCollector on 127.0.0.1.

Real time, kept short: backoffs of a few milliseconds.
"""

from __future__ import annotations

import asyncio
import email.utils
import time
from collections.abc import AsyncIterator

import grpc
import pytest
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import ExportMetricsServiceRequest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from tests import samples

from aiotlp import (
    ConnectError,
    DeadlineExceededError,
    OTLPExporter,
    RejectedError,
    ResponseError,
    RetriesExhaustedError,
    RetryPolicy,
    ServerBusyError,
    Signal,
)
from aiotlp.encoding import (
    encode_logs,
    encode_logs_json,
    encode_metrics,
    encode_metrics_json,
    encode_traces,
    encode_traces_json,
)
from aiotlp.testing import FakeCollector, Reply

PROTOCOLS = ("grpc", "http/protobuf", "http/json")
FAST_RETRY = RetryPolicy(initial_backoff=0.005, max_backoff=0.02, jitter=0.1, max_attempts=3)
MESSAGES = {
    Signal.TRACES: ExportTraceServiceRequest,
    Signal.METRICS: ExportMetricsServiceRequest,
    Signal.LOGS: ExportLogsServiceRequest,
}


@pytest.fixture
async def collector() -> AsyncIterator[FakeCollector]:
    async with FakeCollector() as c:
        yield c


def endpoint_for(collector: FakeCollector, protocol: str) -> str:
    return collector.grpc_endpoint if protocol == "grpc" else collector.http_endpoint


def exporter_for(collector: FakeCollector, protocol: str, **kwargs: object) -> OTLPExporter:
    kwargs.setdefault("retry", FAST_RETRY)
    kwargs.setdefault("timeout", 5.0)
    return OTLPExporter(endpoint=endpoint_for(collector, protocol), protocol=protocol, **kwargs)  # type: ignore[arg-type]


@pytest.mark.parametrize("compression", ["none", "gzip"])
@pytest.mark.parametrize("protocol", PROTOCOLS)
async def test_all_signals_arrive_complete_and_unchanged(
    collector: FakeCollector, protocol: str, compression: str
) -> None:
    spans, metrics, logs = samples.spans(), samples.metrics(), samples.logs()
    async with exporter_for(collector, protocol, compression=compression, headers={"x-tenant": "t1"}) as exporter:
        results = [
            await exporter.export_traces(spans),
            await exporter.export_metrics(metrics),
            await exporter.export_logs(logs),
        ]
    assert [r.ok for r in results] == [True, True, True], [r.error for r in results]
    assert [r.accepted for r in results] == [len(spans), sum(m.data_point_count for m in metrics), len(logs)]
    expected = {
        Signal.TRACES: ExportTraceServiceRequest.FromString(encode_traces(spans)),
        Signal.METRICS: ExportMetricsServiceRequest.FromString(encode_metrics(metrics)),
        Signal.LOGS: ExportLogsServiceRequest.FromString(encode_logs(logs)),
    }
    for request in collector.received:
        assert request.message == expected[request.signal]
        assert request.headers["x-tenant"] == "t1"
        assert "aiotlp/" in request.headers["user-agent"]
        assert "OTel-OTLP-Exporter-Python/" in request.headers["user-agent"]
        assert request.compression == ("gzip" if compression == "gzip" else None)
        if protocol == "http/json":
            assert request.content_type == "application/json"
        elif protocol == "http/protobuf":
            assert request.content_type == "application/x-protobuf"
            assert request.body == {
                Signal.TRACES: encode_traces,
                Signal.METRICS: encode_metrics,
                Signal.LOGS: encode_logs,
            }[request.signal]({Signal.TRACES: spans, Signal.METRICS: metrics, Signal.LOGS: logs}[request.signal])  # type: ignore[operator]
    assert sorted(r.signal.value for r in collector.received) == ["logs", "metrics", "traces"]


@pytest.mark.parametrize("protocol", PROTOCOLS)
async def test_partial_success_is_reported_and_not_retried(collector: FakeCollector, protocol: str) -> None:
    collector.script(Reply(rejected=2, error_message="spans too old"))
    async with exporter_for(collector, protocol) as exporter:
        result = await exporter.export_traces(samples.spans(5))
    assert (result.accepted, result.rejected, result.error_message) == (3, 2, "spans too old")
    assert len(collector.received) == 1


RETRYABLE_HTTP = {429, 502, 503, 504}
HTTP_STATUSES = [400, 401, 403, 404, 405, 408, 409, 413, 415, 429, 500, 501, 502, 503, 504, 505]


@pytest.mark.parametrize("status", HTTP_STATUSES)
async def test_http_retry_matrix(collector: FakeCollector, status: int) -> None:
    collector.default = Reply(http_status=status, message="nope")
    async with exporter_for(collector, "http/protobuf") as exporter:
        result = await exporter.export_traces(samples.spans(2))
    attempts = len(collector.received)
    assert result.failed == 2 and result.error is not None and result.error.status == status
    if status in RETRYABLE_HTTP:
        assert attempts == 3
        assert isinstance(result.error, RetriesExhaustedError)
        assert isinstance(result.error.last, ServerBusyError)
    else:
        assert attempts == 1
        assert isinstance(result.error, RejectedError)


RETRYABLE_GRPC = {
    grpc.StatusCode.CANCELLED,
    grpc.StatusCode.DEADLINE_EXCEEDED,
    grpc.StatusCode.ABORTED,
    grpc.StatusCode.OUT_OF_RANGE,
    grpc.StatusCode.UNAVAILABLE,
    grpc.StatusCode.DATA_LOSS,
}


@pytest.mark.parametrize("code", [c for c in grpc.StatusCode if c is not grpc.StatusCode.OK], ids=lambda c: c.name)
@pytest.mark.parametrize("retry_info", [False, True], ids=["plain", "retryinfo"])
async def test_grpc_retry_matrix(collector: FakeCollector, code: grpc.StatusCode, retry_info: bool) -> None:
    collector.default = Reply(grpc_code=code, message="nope", retry_delay=0.001 if retry_info else None)
    async with exporter_for(collector, "grpc", timeout=10) as exporter:
        result = await exporter.export_traces(samples.spans(2))
    attempts = len(collector.received)
    assert result.failed == 2
    retryable = code in RETRYABLE_GRPC or (code is grpc.StatusCode.RESOURCE_EXHAUSTED and retry_info)
    if retryable:
        assert attempts == 3, result.error
        assert isinstance(result.error, RetriesExhaustedError)
    else:
        assert attempts == 1, result.error
        assert not isinstance(result.error, RetriesExhaustedError)


async def test_http_retry_after_seconds_is_honoured(collector: FakeCollector) -> None:
    collector.script(Reply(http_status=503, retry_after="1"))
    async with exporter_for(collector, "http/protobuf") as exporter:
        start = time.monotonic()
        result = await exporter.export_traces(samples.spans(1))
        elapsed = time.monotonic() - start
    assert result.ok and len(collector.received) == 2
    assert 1.0 <= elapsed < 2.5


async def test_http_retry_after_date_is_honoured(collector: FakeCollector) -> None:
    when = email.utils.formatdate(time.time() + 2, usegmt=True)  # whole seconds: waits 1 to 2 s
    collector.script(Reply(http_status=429, retry_after=when))
    async with exporter_for(collector, "http/protobuf") as exporter:
        start = time.monotonic()
        result = await exporter.export_traces(samples.spans(1))
        elapsed = time.monotonic() - start
    assert result.ok and len(collector.received) == 2
    assert 0.9 <= elapsed < 3.0


async def test_grpc_retry_info_delay_is_honoured(collector: FakeCollector) -> None:
    collector.script(Reply(grpc_code=grpc.StatusCode.RESOURCE_EXHAUSTED, retry_delay=0.6))
    async with exporter_for(collector, "grpc") as exporter:
        start = time.monotonic()
        result = await exporter.export_traces(samples.spans(1))
        elapsed = time.monotonic() - start
    assert result.ok and len(collector.received) == 2
    assert 0.6 <= elapsed < 2.0


@pytest.mark.parametrize("protocol", PROTOCOLS)
async def test_the_export_deadline_holds_against_a_hung_collector(collector: FakeCollector, protocol: str) -> None:
    collector.default = Reply(delay=30)
    retry = RetryPolicy(initial_backoff=0.05, jitter=0)
    async with exporter_for(collector, protocol, timeout=1.0, retry=retry, attempt_timeout=0.3) as exporter:
        start = time.monotonic()
        result = await exporter.export_traces(samples.spans(1))
        elapsed = time.monotonic() - start
        assert elapsed <= 1.0 * 1.15
        assert isinstance(result.error, DeadlineExceededError)
        assert result.failed == 1
        # a shutdown while attempts hang is bounded by its timeout
        pending = asyncio.create_task(exporter.export_traces(samples.spans(1)))
        await asyncio.sleep(0.05)
        start = time.monotonic()
        await exporter.shutdown(timeout=0.2)
        assert time.monotonic() - start < 0.5
        assert (await pending).failed == 1


@pytest.mark.parametrize("protocol", PROTOCOLS)
async def test_shutdown_during_a_backoff_returns_at_once(collector: FakeCollector, protocol: str) -> None:
    collector.default = Reply(http_status=503, grpc_code=grpc.StatusCode.UNAVAILABLE)
    retry = RetryPolicy(initial_backoff=30, max_backoff=30, jitter=0)
    exporter = exporter_for(collector, protocol, timeout=60, retry=retry)
    task = asyncio.create_task(exporter.export_traces(samples.spans(1)))
    await collector.wait_for(1)
    start = time.monotonic()
    await exporter.shutdown(timeout=5)
    assert time.monotonic() - start < 0.5
    assert (await task).failed == 1


@pytest.mark.parametrize("protocol", PROTOCOLS)
async def test_reconnects_after_the_collector_restarts(collector: FakeCollector, protocol: str) -> None:
    retry = RetryPolicy(initial_backoff=0.05, max_backoff=0.5, jitter=0.1)  # until the deadline
    async with exporter_for(collector, protocol, retry=retry, timeout=1.0) as exporter:
        assert (await exporter.export_traces(samples.spans(1))).ok
        await collector.stop()
        down = await exporter.export_traces(samples.spans(1))
        assert down.failed == 1
        assert isinstance(down.error, DeadlineExceededError)
        assert isinstance(down.error.last, (ConnectError, ServerBusyError))
        await collector.start()
        up = await exporter.export_traces(samples.spans(1))
        assert up.ok, up.error


async def test_connection_refused_is_retryable_and_counted() -> None:
    from aiotlp.testing import free_port

    port = free_port()
    for protocol in PROTOCOLS:
        async with OTLPExporter(
            endpoint=f"http://127.0.0.1:{port}", protocol=protocol, retry=FAST_RETRY, timeout=5
        ) as exporter:
            result = await exporter.export_logs(samples.logs())
        assert isinstance(result.error, RetriesExhaustedError), protocol
        assert result.failed == len(samples.logs())


@pytest.mark.parametrize("protocol", ["http/protobuf", "http/json"])
async def test_a_huge_response_is_a_counted_non_retryable_error(collector: FakeCollector, protocol: str) -> None:
    collector.default = Reply(body_size=100 * 1024 * 1024)
    async with exporter_for(collector, protocol) as exporter:
        result = await exporter.export_traces(samples.spans(1))
    assert isinstance(result.error, ResponseError), result.error
    assert result.failed == 1 and len(collector.received) == 1


async def test_a_gzip_bomb_is_a_counted_non_retryable_error(collector: FakeCollector) -> None:
    collector.default = Reply(gzip_bomb=200 * 1024 * 1024)
    async with exporter_for(collector, "http/protobuf") as exporter:
        result = await exporter.export_traces(samples.spans(1))
    assert isinstance(result.error, ResponseError), result.error
    assert "larger than" in str(result.error)
    assert result.failed == 1 and len(collector.received) == 1


async def test_a_huge_grpc_response_is_a_counted_non_retryable_error(collector: FakeCollector) -> None:
    collector.default = Reply(body_size=5 * 1024 * 1024)
    async with exporter_for(collector, "grpc") as exporter:
        result = await exporter.export_traces(samples.spans(1))
    assert isinstance(result.error, ResponseError), result.error
    assert result.failed == 1 and len(collector.received) == 1


async def test_redirects_are_not_followed(collector: FakeCollector) -> None:
    collector.default = Reply(http_status=307)
    async with exporter_for(collector, "http/protobuf") as exporter:
        result = await exporter.export_traces(samples.spans(1))
    assert isinstance(result.error, RejectedError) and result.error.status == 307
    assert len(collector.received) == 1


@pytest.mark.parametrize("protocol", PROTOCOLS)
async def test_connections_are_kept_alive(collector: FakeCollector, protocol: str) -> None:
    async with exporter_for(collector, protocol) as exporter:
        for _ in range(5):
            assert (await exporter.export_traces(samples.spans(1))).ok
    peers = {request.peer for request in collector.received}
    assert len(collector.received) == 5
    assert len(peers) == 1 and peers != {""}, peers


# --- the grpcio alternative: the same contract as the default (h2) gRPC client -----------------------------


@pytest.mark.parametrize("compression", ["none", "gzip"])
async def test_grpcio_client_delivers_every_signal(collector: FakeCollector, compression: str) -> None:
    spans, metrics, logs = samples.spans(), samples.metrics(), samples.logs()
    async with exporter_for(collector, "grpc", compression=compression, grpc_implementation="grpcio") as exporter:
        results = [
            await exporter.export_traces(spans),
            await exporter.export_metrics(metrics),
            await exporter.export_logs(logs),
        ]
    assert all(r.ok for r in results), [r.error for r in results]
    assert collector.requests(Signal.TRACES)[0].message == ExportTraceServiceRequest.FromString(encode_traces(spans))


@pytest.mark.parametrize("code", [c for c in grpc.StatusCode if c is not grpc.StatusCode.OK], ids=lambda c: c.name)
async def test_grpcio_client_retry_matrix(collector: FakeCollector, code: grpc.StatusCode) -> None:
    collector.default = Reply(grpc_code=code, message="nope")
    async with exporter_for(collector, "grpc", timeout=10, grpc_implementation="grpcio") as exporter:
        result = await exporter.export_traces(samples.spans(2))
    assert result.failed == 2
    assert len(collector.received) == (3 if code in RETRYABLE_GRPC else 1), result.error


# -- zstd (aiotlp's extension of gzip/none): gRPC through the FakeCollector's h2 server, which grpc core is not


@pytest.fixture
async def h2_collector() -> AsyncIterator[FakeCollector]:
    async with FakeCollector(grpc_server="h2") as c:
        yield c


def _assert_zstd_byte_for_byte(collector: FakeCollector, protocol: str, results: list[object]) -> None:
    spans, metrics, logs = samples.spans(), samples.metrics(), samples.logs()
    assert [r.ok for r in results] == [True, True, True], [r.error for r in results]  # type: ignore[attr-defined]
    json = protocol == "http/json"
    expected = {
        Signal.TRACES: encode_traces_json(spans) if json else encode_traces(spans),
        Signal.METRICS: encode_metrics_json(metrics) if json else encode_metrics(metrics),
        Signal.LOGS: encode_logs_json(logs) if json else encode_logs(logs),
    }
    assert [(r.signal, r.compression) for r in collector.received] == [
        (Signal.TRACES, "zstd"),
        (Signal.METRICS, "zstd"),
        (Signal.LOGS, "zstd"),
    ]
    for request in collector.received:
        assert request.body == expected[request.signal]


@pytest.mark.parametrize("protocol", PROTOCOLS)
async def test_zstd_every_signal_arrives_byte_for_byte(h2_collector: FakeCollector, protocol: str) -> None:
    spans, metrics, logs = samples.spans(), samples.metrics(), samples.logs()
    async with exporter_for(h2_collector, protocol, compression="zstd") as exporter:
        results = [
            await exporter.export_traces(spans),
            await exporter.export_metrics(metrics),
            await exporter.export_logs(logs),
        ]
    _assert_zstd_byte_for_byte(h2_collector, protocol, results)


@pytest.mark.parametrize("protocol", PROTOCOLS)
@pytest.mark.parametrize("per_signal", [False, True])
async def test_zstd_from_the_environment(
    h2_collector: FakeCollector, protocol: str, per_signal: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    if per_signal:  # the per-signal variables win over the generic one
        monkeypatch.setenv("OTEL_EXPORTER_OTLP_COMPRESSION", "gzip")
        for signal in ("TRACES", "METRICS", "LOGS"):
            monkeypatch.setenv(f"OTEL_EXPORTER_OTLP_{signal}_COMPRESSION", "zstd")
    else:
        monkeypatch.setenv("OTEL_EXPORTER_OTLP_COMPRESSION", "ZSTD")
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_PROTOCOL", protocol)
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", endpoint_for(h2_collector, protocol))
    spans, metrics, logs = samples.spans(), samples.metrics(), samples.logs()
    async with OTLPExporter(retry=FAST_RETRY, timeout=5.0) as exporter:
        results = [
            await exporter.export_traces(spans),
            await exporter.export_metrics(metrics),
            await exporter.export_logs(logs),
        ]
    _assert_zstd_byte_for_byte(h2_collector, protocol, results)


async def test_zstd_large_batch_over_h2_grpc(h2_collector: FakeCollector) -> None:
    """A batch whose zstd message spans many DATA frames and windows."""
    spans = samples.spans() * 400
    async with exporter_for(h2_collector, "grpc", compression="zstd") as exporter:
        result = await exporter.export_traces(spans)
    assert result.ok, result.error
    (request,) = h2_collector.received
    assert request.body == encode_traces(spans)
