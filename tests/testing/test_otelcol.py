"""OtelCollector's configuration and binary lookup (no Collector needed; tests/integration/test_otelcol.py runs it)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from aiotlp.testing import OtelCollector, OtelCollectorTLS, find_otelcol


def test_the_configuration_forwards_over_grpc_through_the_configured_processors() -> None:
    collector = OtelCollector(
        forward_to="http://127.0.0.1:4317",
        tls=OtelCollectorTLS("c.pem", "k.pem", client_ca_file="ca.pem"),
        grpc={"keepalive": OtelCollector.keepalive(min_time=300, max_connection_age=1.5)},
        http={"max_request_body_size": 1024},
        memory_limiter={"check_interval": "1s", "limit_mib": 100},
        batch={},
        exporter={"sending_queue": {"enabled": False}, "tls": {"insecure_skip_verify": True}},
    )
    collector.grpc_port, collector.http_port = 1, 2
    config = json.loads(json.dumps(collector.config()))  # what is written is plain JSON (YAML reads it)
    grpc = config["receivers"]["otlp"]["protocols"]["grpc"]
    assert grpc["endpoint"] == "127.0.0.1:1"
    assert grpc["tls"] == {"cert_file": "c.pem", "key_file": "k.pem", "client_ca_file": "ca.pem"}
    assert grpc["keepalive"] == {
        "enforcement_policy": {"min_time": "300000ms"},
        "server_parameters": {"max_connection_age": "1500ms"},
    }
    assert config["receivers"]["otlp"]["protocols"]["http"]["max_request_body_size"] == 1024
    exporter = config["exporters"]["otlp_grpc"]
    assert exporter == {
        "endpoint": "127.0.0.1:4317",
        "tls": {"insecure": True, "insecure_skip_verify": True},
        "sending_queue": {"enabled": False},
    }
    for signal in ("traces", "metrics", "logs"):
        pipeline = config["service"]["pipelines"][signal]
        assert pipeline == {
            "receivers": ["otlp"],
            "processors": ["memory_limiter", "batch"],
            "exporters": ["otlp_grpc"],
        }
    assert collector.grpc_endpoint == "https://127.0.0.1:1"
    assert collector.http_endpoint == "https://127.0.0.1:2"


def test_without_forward_to_the_debug_exporter_takes_everything() -> None:
    config = OtelCollector().config()
    assert config["exporters"] == {"debug": {"verbosity": "basic"}}
    assert config["processors"] == {}
    assert config["service"]["telemetry"]["metrics"] == {"level": "none"}  # no fixed :8888 listener


def test_find_otelcol(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("AIOTLP_OTELCOL", raising=False)
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(FileNotFoundError, match="build-otelcol"):
        find_otelcol()
    binary = tmp_path / "otelcol"
    binary.write_text("#!/bin/sh\n")
    monkeypatch.setenv("AIOTLP_OTELCOL", str(binary))
    with pytest.raises(FileNotFoundError, match="not an executable"):
        find_otelcol()
    binary.chmod(0o755)
    assert find_otelcol() == str(binary)
    monkeypatch.delenv("AIOTLP_OTELCOL")
    assert find_otelcol() == str(binary)  # on PATH
