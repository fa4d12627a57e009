"""A secret canary (an auth header, URL credentials) never shows in logs, reprs, results or exception texts."""

from __future__ import annotations

import base64
import logging

import pytest
from tests import samples

from aiotlp import ConfigurationError, ExporterConfig, OTLPExporter, RetryPolicy
from aiotlp.testing import FakeCollector, Reply, free_port

CANARY = "s3cr3t-canary-7f3a"
RETRY = RetryPolicy(initial_backoff=0.001, max_backoff=0.002, max_attempts=2)


def assert_clean(*texts: object) -> None:
    for text in texts:
        assert CANARY not in str(text)
        assert CANARY not in repr(text)


@pytest.mark.parametrize("protocol", ["grpc", "http/protobuf", "http/json"])
async def test_no_secret_in_logs_reprs_or_errors(protocol: str, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    headers = {"authorization": f"Bearer {CANARY}", "x-api-key": CANARY}
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
        exporter = OTLPExporter(endpoint=base, protocol=protocol, headers=headers, retry=RETRY, timeout=5)
        results = [await exporter.export_traces(samples.spans(2)) for _ in range(4)]
        assert collector.received[0].headers["x-api-key"] == CANARY  # it was sent
        if protocol != "grpc":
            expected = "Basic " + base64.b64encode(f"user:{CANARY}".encode()).decode()
            assert collector.received[0].headers["authorization"] == expected
        await collector.stop()
        results.append(await exporter.export_traces(samples.spans(1)))  # connection refused
        assert_clean(exporter, exporter.config, exporter.config.traces, *results, *(r.error for r in results))
        await exporter.shutdown()
    assert any(r.error is not None for r in results)
    assert CANARY not in caplog.text


def test_bad_header_errors_do_not_echo_the_value() -> None:
    for bad in (f"authorization=Bearer {CANARY}\r\nx: y", f"authorization={CANARY}\x00", f"k={CANARY}%0A"):
        with pytest.raises(ConfigurationError) as info:
            ExporterConfig.from_env({"OTEL_EXPORTER_OTLP_HEADERS": bad})
        assert "OTEL_EXPORTER_OTLP_HEADERS" in str(info.value)
        assert_clean(info.value)


async def test_connection_errors_name_the_endpoint_without_credentials() -> None:
    port = free_port()
    exporter = OTLPExporter(
        endpoint=f"http://user:{CANARY}@127.0.0.1:{port}", protocol="http/protobuf", retry=RETRY, timeout=2
    )
    result = await exporter.export_logs(samples.logs())
    assert result.error is not None and f"127.0.0.1:{port}" in str(result.error)
    assert_clean(result, result.error, exporter)
    await exporter.shutdown()


def test_url_credentials_and_an_authorization_header_conflict() -> None:
    with pytest.raises(ConfigurationError, match="only one") as info:
        OTLPExporter(
            endpoint=f"http://user:{CANARY}@127.0.0.1:4318",
            protocol="http/protobuf",
            headers={"authorization": CANARY},
        )
    assert_clean(info.value)
