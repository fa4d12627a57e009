"""``ExporterConfig.from_env(signal_endpoints=...)``: explicit per-signal endpoints (added for aiotlp.sdk, whose
exporters take the official exporters' ``endpoint=``, a full per-signal URL for OTLP/HTTP)."""

from __future__ import annotations

import pytest

from aiotlp import ConfigurationError
from aiotlp.config import ExporterConfig
from aiotlp.model import Signal


def test_a_signal_endpoint_is_used_verbatim_for_http() -> None:
    config = ExporterConfig.from_env({}, signal_endpoints={Signal.TRACES: "http://h:4318/custom"})
    assert config.traces.endpoint == "http://h:4318/custom"
    assert config.metrics.endpoint == "http://localhost:4318/v1/metrics"  # other signals: unchanged
    assert ExporterConfig.from_env({}, signal_endpoints={"logs": "http://h"}).logs.endpoint == "http://h/"


def test_a_signal_endpoint_wins_over_the_base_endpoint_and_every_variable() -> None:
    environ = {
        "OTEL_EXPORTER_OTLP_ENDPOINT": "http://generic:1",
        "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://per-signal:2/x",
    }
    config = ExporterConfig.from_env(
        environ, endpoint="http://base:3", signal_endpoints={Signal.TRACES: " http://explicit:4/y "}
    )
    assert config.traces.endpoint == "http://explicit:4/y"
    assert config.logs.endpoint == "http://base:3/v1/logs"


def test_a_signal_endpoint_for_grpc_is_host_and_port() -> None:
    config = ExporterConfig.from_env(
        {}, protocol="grpc", insecure=True, signal_endpoints={Signal.METRICS: "collector:4317"}
    )
    assert config.metrics.endpoint == "http://collector:4317"
    config = ExporterConfig.from_env({}, protocol="grpc", signal_endpoints={Signal.METRICS: "https://c:1/path"})
    assert config.metrics.endpoint == "https://c:1"


@pytest.mark.parametrize(
    ("signal_endpoints", "message"),
    [
        ({"spans": "http://h"}, "signal_endpoints: keys must be signals"),
        ({Signal.TRACES: 4318}, r"signal_endpoints\['traces'\]: must be a str"),
        ({Signal.TRACES: "ftp://h"}, r"signal_endpoints\['traces'\]: unsupported URL scheme"),
        ({Signal.TRACES: "http://user:secret@h:99999"}, r"signal_endpoints\['traces'\]: the endpoint port"),
        (["http://h"], "signal_endpoints: must be a Mapping"),
    ],
)
def test_invalid_signal_endpoints_name_the_argument(signal_endpoints: object, message: str) -> None:
    with pytest.raises(ConfigurationError, match=message) as info:
        ExporterConfig.from_env({}, signal_endpoints=signal_endpoints)  # type: ignore[arg-type]
    assert "secret" not in str(info.value)
