"""TLS and mTLS with certificates made by trustme: success with the right CA, fail closed otherwise."""

from __future__ import annotations

import pytest
from tests import samples

from aiotlp import OTLPExporter, PermanentError, RetryableError, RetryPolicy
from aiotlp.testing import FakeCollector

PROTOCOLS = ("grpc", "http/protobuf", "http/json")
NO_RETRY = RetryPolicy(max_attempts=1)


def _endpoint(collector: FakeCollector, protocol: str) -> str:
    return collector.grpc_endpoint if protocol == "grpc" else collector.http_endpoint


@pytest.mark.parametrize("protocol", PROTOCOLS)
async def test_tls_with_the_right_ca(pki: dict[str, object], protocol: str) -> None:
    async with FakeCollector(ssl_cert=pki["server_cert"], ssl_key=pki["server_key"]) as collector:  # type: ignore[arg-type]
        endpoint = _endpoint(collector, protocol)
        assert endpoint.startswith("https://")
        async with OTLPExporter(
            endpoint=endpoint,
            protocol=protocol,
            certificate_file=pki["ca"],
            retry=NO_RETRY,  # type: ignore[arg-type]
        ) as exporter:
            result = await exporter.export_traces(samples.spans(2))
        assert result.ok, result.error
        assert len(collector.spans()) == 2


@pytest.mark.parametrize("protocol", PROTOCOLS)
async def test_tls_with_a_wrong_ca_fails_closed(pki: dict[str, object], protocol: str) -> None:
    async with FakeCollector(ssl_cert=pki["server_cert"], ssl_key=pki["server_key"]) as collector:  # type: ignore[arg-type]
        async with OTLPExporter(
            endpoint=_endpoint(collector, protocol),
            protocol=protocol,
            certificate_file=pki["other_ca"],  # type: ignore[arg-type]
            retry=NO_RETRY,
            timeout=3,
        ) as exporter:
            result = await exporter.export_traces(samples.spans(1))
        assert result.failed == 1
        assert isinstance(result.error, (PermanentError, RetryableError))
        assert collector.received == []


@pytest.mark.parametrize("protocol", PROTOCOLS)
async def test_mtls(pki: dict[str, object], protocol: str) -> None:
    async with FakeCollector(
        ssl_cert=pki["server_cert"],
        ssl_key=pki["server_key"],
        client_ca=pki["ca_pem"],  # type: ignore[arg-type]
    ) as collector:
        endpoint = _endpoint(collector, protocol)
        async with OTLPExporter(
            endpoint=endpoint,
            protocol=protocol,
            certificate_file=pki["ca"],  # type: ignore[arg-type]
            client_certificate_file=pki["client_cert"],  # type: ignore[arg-type]
            client_key_file=pki["client_key"],  # type: ignore[arg-type]
            retry=NO_RETRY,
        ) as exporter:
            assert (await exporter.export_logs(samples.logs())).ok
        # without a client certificate the server refuses the handshake: nothing arrives
        async with OTLPExporter(
            endpoint=endpoint,
            protocol=protocol,
            certificate_file=pki["ca"],
            retry=NO_RETRY,
            timeout=3,  # type: ignore[arg-type]
        ) as exporter:
            result = await exporter.export_logs(samples.logs())
        assert result.failed == len(samples.logs())
        assert len(collector.received) == 1


@pytest.mark.parametrize("protocol", ["http/protobuf", "grpc"])
async def test_plaintext_to_a_tls_port_sends_no_payload_in_clear(pki: dict[str, object], protocol: str) -> None:
    async with FakeCollector(ssl_cert=pki["server_cert"], ssl_key=pki["server_key"]) as collector:  # type: ignore[arg-type]
        endpoint = _endpoint(collector, protocol).replace("https://", "http://")
        async with OTLPExporter(endpoint=endpoint, protocol=protocol, retry=NO_RETRY, timeout=3) as exporter:
            result = await exporter.export_traces(samples.spans(1))
        assert result.failed == 1
        assert collector.received == []
