"""TLS and mTLS with certificates made by trustme (the ``pki`` fixture): success with the right CA, and fail
closed otherwise, over OTLP/HTTP and OTLP/gRPC (both clients: aiotlp's own ``h2`` and ``grpcio``).

Fail closed, proven: the exporter talks to the collector through a TCP proxy that records every byte the
client sent. In every failure case (wrong CA, wrong host name, expired certificate, missing client
certificate) the items are counted as failed, the collector decoded nothing, and the payload's marker never
appears in the recorded bytes. Plaintext to a TLS port fails too, and the collector decodes nothing. The
positive control: the same proxy *does* see the marker when the export is sent in plaintext to a plaintext
collector.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import pytest
from tests import samples
from tests.faults._support import TcpProxy, accounted
from tests.faults.summary import Figure

from aiotlp import ExportError, OTLPExporter, RetryPolicy
from aiotlp.model import Span
from aiotlp.testing import FakeCollector

MARKER = "payload-marker-5b1d0c"
NO_RETRY = RetryPolicy(max_attempts=1)
CLIENTS = [
    pytest.param("http/protobuf", None, id="http"),
    pytest.param("grpc", "h2", id="grpc-h2"),
    pytest.param("grpc", "grpcio", id="grpc-grpcio"),
]


def marked_spans(n: int = 3) -> list[Span]:
    return [Span(i + 1, i + 1, MARKER, 1, 2, attributes={"note": MARKER}) for i in range(n)]


@asynccontextmanager
async def behind_proxy(protocol: str, **collector: Any) -> AsyncIterator[tuple[FakeCollector, TcpProxy]]:
    async with FakeCollector(**collector) as fake:
        port = fake.grpc_port if protocol == "grpc" else fake.http_port
        async with TcpProxy("127.0.0.1", port) as proxy:
            yield fake, proxy


def _exporter(protocol: str, implementation: str | None, endpoint: str, **tls: Any) -> OTLPExporter:
    return OTLPExporter(
        endpoint=endpoint,
        protocol=protocol,
        retry=NO_RETRY,
        timeout=3,
        grpc_implementation=implementation,  # type: ignore[arg-type]
        **tls,
    )


@pytest.mark.parametrize(("protocol", "implementation"), CLIENTS)
async def test_tls_with_the_right_ca_and_mtls(pki: dict[str, Any], protocol: str, implementation: str | None) -> None:
    server = {"ssl_cert": pki["server_cert"], "ssl_key": pki["server_key"]}
    async with behind_proxy(protocol, **server) as (collector, proxy):
        endpoint = f"https://127.0.0.1:{proxy.port}"
        async with _exporter(protocol, implementation, endpoint, certificate_file=pki["ca"]) as exporter:
            assert (await exporter.export_traces(marked_spans())).ok
        assert len(collector.spans()) == 3
        assert MARKER.encode() not in proxy.upstream  # encrypted on the wire
    client = {"client_certificate_file": pki["client_cert"], "client_key_file": pki["client_key"]}
    async with behind_proxy(protocol, **server, client_ca=pki["ca_pem"]) as (collector, proxy):
        endpoint = f"https://127.0.0.1:{proxy.port}"
        async with _exporter(protocol, implementation, endpoint, certificate_file=pki["ca"], **client) as exporter:
            assert (await exporter.export_logs(samples.logs())).ok
        assert len(collector.log_records()) == len(samples.logs())


@pytest.mark.parametrize("secure", [True, False], ids=["tls", "plaintext"])
@pytest.mark.parametrize(("protocol", "implementation"), CLIENTS)
async def test_a_distant_collector_is_reached(
    pki: dict[str, Any], protocol: str, implementation: str | None, secure: bool
) -> None:
    """160 ms round trips: connecting (TCP, TLS, HTTP/2 SETTINGS) takes several of them, and must not be cut
    short by anything but the export's own timeout (grpcio once gave each connection attempt 100 ms)."""
    server = {"ssl_cert": pki["server_cert"], "ssl_key": pki["server_key"]} if secure else {}
    async with FakeCollector(**server) as collector:
        port = collector.grpc_port if protocol == "grpc" else collector.http_port
        async with TcpProxy("127.0.0.1", port, delay=0.08) as proxy:
            scheme, tls = ("https", {"certificate_file": pki["ca"]}) if secure else ("http", {})
            exporter = OTLPExporter(
                endpoint=f"{scheme}://127.0.0.1:{proxy.port}",
                protocol=protocol,
                retry=NO_RETRY,
                timeout=8,
                grpc_implementation=implementation,  # type: ignore[arg-type]
                **tls,
            )
            async with exporter:
                result = await exporter.export_traces(marked_spans())
            assert result.ok, result.error
    assert len(collector.spans()) == 3
    assert proxy.connections == 1


@pytest.mark.parametrize(("protocol", "implementation"), CLIENTS)
async def test_the_proxy_sees_plaintext_payload(protocol: str, implementation: str | None) -> None:
    """The control: without TLS the recorder does see the marker, so its absence below means something."""
    async with behind_proxy(protocol) as (collector, proxy):
        exporter = _exporter(protocol, implementation, f"http://127.0.0.1:{proxy.port}")
        assert (await exporter.export_traces(marked_spans())).ok
        await exporter.shutdown()
    assert MARKER.encode() in proxy.upstream
    assert len(collector.spans()) == 3


FAILURES = {
    # case: (server certificate, server key, client CA (mTLS) or None, exporter TLS settings, scheme)
    "wrong-ca": ("server_cert", "server_key", None, {"certificate_file": "other_ca"}, "https"),
    "wrong-host-name": ("wrong_host_cert", "wrong_host_key", None, {"certificate_file": "ca"}, "https"),
    "expired-certificate": ("expired_cert", "expired_key", None, {"certificate_file": "ca"}, "https"),
    "missing-client-certificate": ("server_cert", "server_key", "ca_pem", {"certificate_file": "ca"}, "https"),
    "plaintext-to-tls-port": ("server_cert", "server_key", None, {}, "http"),
}


@pytest.mark.parametrize("case", list(FAILURES))
@pytest.mark.parametrize(("protocol", "implementation"), CLIENTS)
async def test_tls_fails_closed_and_sends_no_payload_in_clear(
    pki: dict[str, Any], protocol: str, implementation: str | None, case: str, figure: Figure
) -> None:
    figure.criterion = "export fails, counted; collector decodes nothing; payload marker never on the wire"
    cert, key, client_ca, tls, scheme = FAILURES[case]
    server = {"ssl_cert": pki[cert], "ssl_key": pki[key], "client_ca": pki[client_ca] if client_ca else None}
    settings = {name: pki[value] for name, value in tls.items()}
    async with behind_proxy(protocol, **server) as (collector, proxy):
        exporter = _exporter(protocol, implementation, f"{scheme}://127.0.0.1:{proxy.port}", **settings)
        results = [accounted(await exporter.export_traces(marked_spans())) for _ in range(2)]
        await exporter.shutdown()
    for result in results:
        assert result.failed == 3
        assert isinstance(result.error, ExportError)
    assert collector.received == []
    assert proxy.connections >= 1  # the client did try
    if scheme == "https":  # (plaintext was asked for: the collector refuses it, but the client spoke in clear)
        assert MARKER.encode() not in proxy.upstream
    figure.load = 6
    figure.faults = figure.bad_inputs = 2
    figure.count({type(r.error).__name__: r.failed for r in results})
    seen = proxy.upstream.count(MARKER.encode())
    figure.measured = f"{len(proxy.upstream)} bytes sent, marker seen {seen}x; error: {type(results[0].error).__name__}"
