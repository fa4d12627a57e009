"""A secret canary (an auth header, URL credentials) never shows in DEBUG logs, reprs, results, exception
texts, statistics or self-metrics: over OTLP/HTTP (protobuf and JSON) and OTLP/gRPC (both clients), through the
exporter, the batch processor and the SDK drop-in, on success, on refusals, on retries and on connection errors.
"""

from __future__ import annotations

import base64
import logging
import os
import traceback

import pytest
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from tests import samples
from tests.faults._support import accounted, balanced
from tests.faults.summary import Figure

from aiotlp import ConfigurationError, ExporterConfig, OTLPExporter, RetryPolicy
from aiotlp.model import Signal, Span
from aiotlp.processing import BatchProcessor
from aiotlp.testing import FakeCollector, Reply, free_port

CANARY = "s3cr3t-canary-7f3a"
RETRY = RetryPolicy(initial_backoff=0.001, max_backoff=0.002, max_attempts=2)
CLIENTS = [
    pytest.param("grpc", "h2", id="grpc-h2"),
    pytest.param("grpc", "grpcio", id="grpc-grpcio"),
    pytest.param("http/protobuf", None, id="http"),
    pytest.param("http/json", None, id="json"),
]


def assert_clean(*texts: object) -> None:
    for text in texts:
        assert CANARY not in str(text)
        assert CANARY not in repr(text)


@pytest.mark.parametrize(("protocol", "implementation"), CLIENTS)
async def test_no_secret_in_logs_reprs_errors_statistics_or_metrics(
    protocol: str, implementation: str | None, caplog: pytest.LogCaptureFixture, figure: Figure
) -> None:
    figure.criterion = "the canary is sent, and appears in no log line, repr, error, statistic or metric"
    caplog.set_level(logging.DEBUG)
    headers = {"authorization": f"Bearer {CANARY}", "x-api-key": CANARY}
    reader = InMemoryMetricReader()
    async with FakeCollector() as collector:
        base = collector.grpc_endpoint if protocol == "grpc" else collector.http_endpoint
        if protocol != "grpc":  # the URL's credentials become the authorization header
            base = base.replace("http://", f"http://user:{CANARY}@")
            del headers["authorization"]
        collector.script(
            Reply(http_status=401, message="unauthorized"),
            Reply(http_status=503, retry_after="0"),
            Reply(http_status=503, retry_after="0"),
            Reply(rejected=1, error_message="partial"),
        )
        exporter = OTLPExporter(
            endpoint=base,
            protocol=protocol,
            headers=headers,
            retry=RETRY,
            timeout=5,
            grpc_implementation=implementation,  # type: ignore[arg-type]
        )
        processor: BatchProcessor[Span] = BatchProcessor(
            exporter, Signal.TRACES, max_export_batch_size=2, meter_provider=MeterProvider(metric_readers=[reader])
        )
        results = []
        for _ in range(3):  # refused (401); retried twice (503) and given up; partly rejected
            for span in samples.spans(2):
                processor.put_nowait(span)
            await processor.force_flush(timeout=5)
        assert collector.received[0].headers["x-api-key"] == CANARY  # it was sent
        if protocol != "grpc":
            expected = "Basic " + base64.b64encode(f"user:{CANARY}".encode()).decode()
            assert collector.received[0].headers["authorization"] == expected
        await collector.stop()
        results.append(accounted(await exporter.export_traces(samples.spans(1))))  # connection refused
        stats = balanced(processor.statistics())
        assert_clean(exporter, exporter.config, exporter.config.traces, processor, stats, *results)
        assert_clean(*(r.error for r in results), stats.last_error)
        await processor.shutdown(timeout=2)
    assert stats.failed and stats.rejected and stats.exported  # every path was taken
    metrics = reader.get_metrics_data()
    assert metrics is not None and metrics.resource_metrics
    assert CANARY not in metrics.to_json()
    assert CANARY not in caplog.text
    figure.load = 6 + 1
    figure.faults = 4
    figure.bad_inputs = 0
    figure.lost = 6 - stats.exported - stats.rejected - stats.failed - stats.dropped_total
    figure.count({"rejected": stats.rejected, "failed": stats.failed + results[-1].failed})
    figure.measured = f"{len(caplog.records)} log records, {len(metrics.to_json())} bytes of metrics: canary 0x"


@pytest.mark.parametrize("protocol", ["grpc", "http/protobuf"])
async def test_no_secret_from_the_sdk_drop_in(protocol: str, caplog: pytest.LogCaptureFixture) -> None:
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SpanExportResult

    from aiotlp.sdk import BatchSpanProcessor, SpanExporter

    caplog.set_level(logging.DEBUG)
    port = free_port()  # nothing listens: every export fails with a connection error
    endpoint = f"http://127.0.0.1:{port}" if protocol == "grpc" else f"http://user:{CANARY}@127.0.0.1:{port}/v1/traces"
    exporter = SpanExporter(endpoint, protocol=protocol, headers={"x-api-key": CANARY}, timeout=1, retry=RETRY)  # type: ignore[arg-type]
    processor = BatchSpanProcessor(exporter)
    tracer = TracerProvider().get_tracer("secrets")
    span = tracer.start_span("s")
    span.end()
    processor.on_end(span)
    await processor.aforce_flush(2000)
    await processor.ashutdown()
    assert_clean(exporter, processor, exporter.config, balanced(processor.statistics()))
    assert processor.statistics().failed == 1
    assert exporter.export([span]) is SpanExportResult.FAILURE  # after shutdown
    assert CANARY not in caplog.text


def test_bad_header_errors_do_not_echo_the_value() -> None:
    for bad in (f"authorization=Bearer {CANARY}\r\nx: y", f"authorization={CANARY}\x00", f"k={CANARY}%0A"):
        with pytest.raises(ConfigurationError) as info:
            ExporterConfig.from_env({"OTEL_EXPORTER_OTLP_HEADERS": bad})
        assert "OTEL_EXPORTER_OTLP_HEADERS" in str(info.value)
        assert_clean(info.value)


@pytest.mark.parametrize("scheme", ["http", "https"])
async def test_connection_and_tls_errors_name_the_endpoint_without_credentials(
    pki: dict[str, str], scheme: str
) -> None:
    async with FakeCollector(ssl_cert=pki["server_cert"], ssl_key=pki["server_key"]) as collector:  # type: ignore[arg-type]
        port = collector.http_port if scheme == "https" else free_port()  # https: the wrong CA; http: refused
        exporter = OTLPExporter(
            endpoint=f"{scheme}://user:{CANARY}@127.0.0.1:{port}",
            protocol="http/protobuf",
            retry=RETRY,
            timeout=2,
            certificate_file=pki["other_ca"] if scheme == "https" else None,
        )
        result = accounted(await exporter.export_logs(samples.logs()))
        await exporter.shutdown()
    assert result.error is not None and f"127.0.0.1:{port}" in str(result.error)
    assert_clean(result, result.error, exporter)


def test_url_credentials_and_an_authorization_header_conflict() -> None:
    with pytest.raises(ConfigurationError, match="only one") as info:
        OTLPExporter(
            endpoint=f"http://user:{CANARY}@127.0.0.1:4318",
            protocol="http/protobuf",
            headers={"authorization": CANARY},
        )
    assert_clean(info.value)


BAD_CONFIGURATIONS = [
    pytest.param({"OTEL_EXPORTER_OTLP_HEADERS": f"Authorization: Basic {CANARY}="}, id="colon-header"),
    pytest.param({"OTEL_EXPORTER_OTLP_TRACES_HEADERS": f"a=1,{CANARY}"}, id="entry-without-equals"),
    pytest.param({"OTEL_EXPORTER_OTLP_HEADERS": f"k={CANARY}%0A"}, id="lf-in-value"),
    pytest.param({"OTEL_EXPORTER_OTLP_ENDPOINT": f"{CANARY}:{CANARY}@collector:4318"}, id="schemeless-credentials"),
    pytest.param(
        {"OTEL_EXPORTER_OTLP_CLIENT_KEY": f"-----BEGIN PRIVATE KEY-----\n{CANARY}\n-----END PRIVATE KEY-----"},
        id="pasted-key",
    ),
]


@pytest.mark.parametrize("environ", BAD_CONFIGURATIONS)
def test_bad_configuration_never_echoes_the_canary(
    environ: dict[str, str], monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """The standalone API refuses it, the SDK drop-in refuses (endpoints) or warns; neither the error, its
    traceback (with its context), its repr, nor any log line holds the canary."""
    from aiotlp.sdk import SpanExporter

    caplog.set_level(logging.DEBUG)
    for name in [name for name in os.environ if name.startswith(("OTEL_", "AIOTLP_"))]:
        monkeypatch.delenv(name)
    for name, value in environ.items():
        monkeypatch.setenv(name, value)
    with pytest.raises(ConfigurationError) as info:
        OTLPExporter()
    assert_clean(info.value, "".join(traceback.format_exception(info.value)))
    if "OTEL_EXPORTER_OTLP_ENDPOINT" in environ:  # an endpoint has no default to fall back to
        with pytest.raises(ConfigurationError, match="OTEL_EXPORTER_OTLP_ENDPOINT") as info:
            SpanExporter()
        assert_clean(info.value, "".join(traceback.format_exception(info.value)))
    else:
        exporter = SpanExporter()
        assert_clean(exporter, exporter.config)
        exporter.shutdown()
        assert any(next(iter(environ)) in record.getMessage() for record in caplog.records)  # warned
    assert CANARY not in caplog.text
