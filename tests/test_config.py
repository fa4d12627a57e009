"""Tests for aiotlp.config: every variable, precedence, endpoint rules, errors and redaction.

No test touches the process environment: each passes ``environ={...}``.

White-box, on purpose (no public surface can show these): ``test_headers_are_immutable`` tries to replace and
delete ``Headers``' private storage (``_data``), to show that even it is read-only; the ``unit_warnings`` fixture
resets ``aiotlp.config._values._unit_warned``, the process-wide record of the once-per-variable warning, so that
each test sees the warning afresh.
"""

from __future__ import annotations

import copy
import dataclasses
import logging
import math
import os
import pickle
import re
from collections.abc import Mapping
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from aiotlp import ConfigurationError, Signal
from aiotlp.config import (
    DEFAULT_MAX_REQUEST_BYTES,
    BatchConfig,
    ExporterConfig,
    Headers,
    MetricReaderConfig,
    SignalConfig,
    metric_preferences_from_env,
)

CANARY = "s3cr3t-canary"
SIGNALS = list(Signal)
KIB = 1024
MIB = 1024 * 1024


def raises_config_error(*fragments: str, absent: tuple[str, ...] = (CANARY,)) -> _ErrorCheck:
    """Context manager: a ConfigurationError (also a ValueError) whose message has every fragment."""
    return _ErrorCheck(fragments, absent)


class _ErrorCheck:
    def __init__(self, fragments: tuple[str, ...], absent: tuple[str, ...]) -> None:
        self.fragments = fragments
        self.absent = absent
        self._ctx = pytest.raises(ConfigurationError)
        self.message = ""
        self.error: BaseException | None = None  # the error raised, once the block has ended

    def __enter__(self) -> _ErrorCheck:
        self._ctx.__enter__()
        return self

    def __exit__(self, *exc_info: object) -> bool:
        suppressed = self._ctx.__exit__(*exc_info)  # type: ignore[arg-type]
        assert self._ctx.excinfo is not None
        error = self.error = self._ctx.excinfo.value
        assert isinstance(error, ValueError)
        self.message = str(error)
        for fragment in self.fragments:
            assert fragment in self.message, (fragment, self.message)
        for secret in self.absent:
            assert secret not in self.message, self.message
        return bool(suppressed)


def env_for(signal: Signal, key: str) -> str:
    return f"OTEL_EXPORTER_OTLP_{signal.value.upper()}_{key}"


@pytest.fixture
def pem_files(tmp_path: Path) -> dict[str, str]:
    files = {}
    for name in ("ca", "key", "cert", "other"):
        path = tmp_path / f"{name}.pem"
        path.write_text(f"-----BEGIN {name.upper()}-----\n")
        files[name] = str(path)
    return files


# ----------------------------------------------------------------------------------------------- defaults


def test_defaults() -> None:
    config = ExporterConfig.from_env({})
    for signal in SIGNALS:
        sc = config.for_signal(signal)
        assert sc.signal is signal
        assert sc.protocol == "http/protobuf"
        assert sc.endpoint == f"http://localhost:4318/v1/{signal.value}"
        assert sc.headers == Headers()
        assert len(sc.headers) == 0
        assert sc.timeout == 10.0
        assert isinstance(sc.timeout, float)
        assert sc.compression == "none"
        assert sc.certificate_file is None
        assert sc.client_key_file is None
        assert sc.client_certificate_file is None
        assert sc.insecure is True
        assert sc.use_tls is False
        assert sc.host == "localhost"
        assert sc.port == 4318
        assert sc.max_request_bytes == DEFAULT_MAX_REQUEST_BYTES == 4 * MIB
    assert config.traces is config.for_signal("traces")
    assert config.metrics is config.for_signal(Signal.METRICS)
    assert config.logs is config.for_signal("logs")


def test_grpc_defaults() -> None:
    config = ExporterConfig.from_env({"OTEL_EXPORTER_OTLP_PROTOCOL": "grpc"})
    for signal in SIGNALS:
        sc = config.for_signal(signal)
        assert sc.protocol == "grpc"
        assert sc.endpoint == "http://localhost:4317"
        assert sc.insecure is True
        assert (sc.host, sc.port) == ("localhost", 4317)


def test_for_signal_rejects_unknown() -> None:
    config = ExporterConfig.from_env({})
    with raises_config_error("signal"):
        config.for_signal("spans")


def test_environ_none_reads_os_environ() -> None:
    otel = {k: v for k, v in os.environ.items() if k.startswith("OTEL_")}
    try:
        expected = ExporterConfig.from_env(dict(os.environ))
    except ConfigurationError:  # pragma: no cover - a broken OTEL_* in the developer's shell
        pytest.skip(f"the process environment has invalid OTEL variables: {sorted(otel)}")
    assert ExporterConfig.from_env() == expected
    assert ExporterConfig.from_env(None) == expected


@pytest.mark.parametrize("value", ["", "   ", "\t"])
def test_empty_variables_are_unset(value: str) -> None:
    keys = [
        "ENDPOINT",
        "PROTOCOL",
        "HEADERS",
        "TIMEOUT",
        "COMPRESSION",
        "CERTIFICATE",
        "CLIENT_KEY",
        "CLIENT_CERTIFICATE",
        "INSECURE",
    ]
    environ = {f"OTEL_EXPORTER_OTLP_{k}": value for k in keys}
    environ |= {env_for(s, k): value for s in SIGNALS for k in keys}
    assert ExporterConfig.from_env(environ) == ExporterConfig.from_env({})


def test_values_are_stripped() -> None:
    config = ExporterConfig.from_env(
        {
            "OTEL_EXPORTER_OTLP_PROTOCOL": " http/json ",
            "OTEL_EXPORTER_OTLP_TIMEOUT": " 250\n",
            "OTEL_EXPORTER_OTLP_ENDPOINT": "  http://h:1  ",
        }
    )
    assert config.traces.protocol == "http/json"
    assert config.traces.timeout == 0.25
    assert config.traces.endpoint == "http://h:1/v1/traces"


# ------------------------------------------------------------------------------------- precedence


@pytest.mark.parametrize("signal", SIGNALS)
def test_per_signal_variables_win(signal: Signal, pem_files: dict[str, str]) -> None:
    environ = {
        "OTEL_EXPORTER_OTLP_ENDPOINT": "http://generic:4318",
        "OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf",
        "OTEL_EXPORTER_OTLP_HEADERS": "a=generic",
        "OTEL_EXPORTER_OTLP_TIMEOUT": "1000",
        "OTEL_EXPORTER_OTLP_COMPRESSION": "none",
        "OTEL_EXPORTER_OTLP_CERTIFICATE": pem_files["other"],
        "OTEL_EXPORTER_OTLP_CLIENT_KEY": pem_files["other"],
        "OTEL_EXPORTER_OTLP_CLIENT_CERTIFICATE": pem_files["other"],
        env_for(signal, "ENDPOINT"): "https://special:9999/custom/path",
        env_for(signal, "PROTOCOL"): "http/json",
        env_for(signal, "HEADERS"): "b=special",
        env_for(signal, "TIMEOUT"): "2500",
        env_for(signal, "COMPRESSION"): "gzip",
        env_for(signal, "CERTIFICATE"): pem_files["ca"],
        env_for(signal, "CLIENT_KEY"): pem_files["key"],
        env_for(signal, "CLIENT_CERTIFICATE"): pem_files["cert"],
    }
    config = ExporterConfig.from_env(environ)
    sc = config.for_signal(signal)
    assert sc.endpoint == "https://special:9999/custom/path"
    assert sc.protocol == "http/json"
    assert dict(sc.headers) == {"b": "special"}  # replaced, not merged
    assert sc.timeout == 2.5
    assert sc.compression == "gzip"
    assert sc.certificate_file == pem_files["ca"]
    assert sc.client_key_file == pem_files["key"]
    assert sc.client_certificate_file == pem_files["cert"]
    assert sc.use_tls
    for other in SIGNALS:
        if other is signal:
            continue
        oc = config.for_signal(other)
        assert oc.endpoint == f"http://generic:4318/v1/{other.value}"
        assert oc.protocol == "http/protobuf"
        assert dict(oc.headers) == {"a": "generic"}
        assert oc.timeout == 1.0
        assert oc.compression == "none"
        assert oc.certificate_file == oc.client_key_file == oc.client_certificate_file == pem_files["other"]


@pytest.mark.parametrize("signal", SIGNALS)
def test_per_signal_insecure_wins(signal: Signal) -> None:
    environ = {
        "OTEL_EXPORTER_OTLP_PROTOCOL": "grpc",
        "OTEL_EXPORTER_OTLP_ENDPOINT": "collector:4317",
        "OTEL_EXPORTER_OTLP_INSECURE": "false",
        env_for(signal, "INSECURE"): "true",
    }
    config = ExporterConfig.from_env(environ)
    for other in SIGNALS:
        sc = config.for_signal(other)
        assert sc.insecure is (other is signal)
        assert sc.endpoint == ("http" if other is signal else "https") + "://collector:4317"


def test_explicit_arguments_win(pem_files: dict[str, str]) -> None:
    environ = {"OTEL_EXPORTER_OTLP_" + k: "garbage" for k in ("PROTOCOL", "HEADERS", "TIMEOUT", "COMPRESSION")}
    environ |= {"OTEL_EXPORTER_OTLP_" + k: "/does/not/exist" for k in ("CERTIFICATE", "CLIENT_KEY")}
    environ |= {env_for(s, "ENDPOINT"): "ftp://nope" for s in SIGNALS}
    environ |= {env_for(s, "TIMEOUT"): "-5" for s in SIGNALS}
    environ["OTEL_EXPORTER_OTLP_INSECURE"] = "false"
    config = ExporterConfig.from_env(
        environ,
        endpoint="collector.example:4317",
        protocol="grpc",
        headers={"X-Api-Key": "k"},
        timeout=2.5,
        compression="gzip",
        certificate_file=pem_files["ca"],
        client_key_file=Path(pem_files["key"]),
        client_certificate_file=pem_files["cert"],
        insecure=True,
        max_request_bytes=8 * MIB,
    )
    for sc in (config.traces, config.metrics, config.logs):
        assert sc.protocol == "grpc"
        assert sc.endpoint == "http://collector.example:4317"
        assert sc.insecure is True
        assert dict(sc.headers) == {"x-api-key": "k"}
        assert sc.timeout == 2.5
        assert sc.compression == "gzip"
        assert sc.certificate_file == pem_files["ca"]
        assert sc.client_key_file == pem_files["key"]
        assert isinstance(sc.client_key_file, str)
        assert sc.client_certificate_file == pem_files["cert"]
        assert sc.max_request_bytes == 8 * MIB


def test_explicit_headers_instance_is_used() -> None:
    headers = Headers({"a": "1"})
    config = ExporterConfig.from_env({"OTEL_EXPORTER_OTLP_HEADERS": "b=2"}, headers=headers)
    assert config.traces.headers is headers


def test_explicit_zero_is_not_unset() -> None:
    with raises_config_error("timeout"):
        ExporterConfig.from_env({"OTEL_EXPORTER_OTLP_TIMEOUT": "5000"}, timeout=0)
    with raises_config_error("max_request_bytes"):
        ExporterConfig.from_env({}, max_request_bytes=0)
    config = ExporterConfig.from_env({"OTEL_EXPORTER_OTLP_HEADERS": "a=1"}, headers={})
    assert len(config.traces.headers) == 0


def test_explicit_insecure_false_beats_env() -> None:
    config = ExporterConfig.from_env(
        {"OTEL_EXPORTER_OTLP_INSECURE": "true", "OTEL_EXPORTER_OTLP_ENDPOINT": "h:4317"},
        protocol="grpc",
        insecure=False,
    )
    assert config.traces.endpoint == "https://h:4317"


# ----------------------------------------------------------------------------------------- HTTP paths


@pytest.mark.parametrize(
    ("base", "expected"),
    [
        ("http://h:4318", "http://h:4318/v1/traces"),
        ("http://h:4318/", "http://h:4318/v1/traces"),
        ("http://h:4318//", "http://h:4318/v1/traces"),
        ("http://h/otlp", "http://h/otlp/v1/traces"),
        ("http://h/otlp/", "http://h/otlp/v1/traces"),
        ("https://h:443/a/b", "https://h:443/a/b/v1/traces"),
        ("http://h:4318?tenant=1", "http://h:4318/v1/traces?tenant=1"),
        ("HTTP://h:4318", "http://h:4318/v1/traces"),
        ("http://[::1]:4318", "http://[::1]:4318/v1/traces"),
    ],
)
def test_http_base_endpoint_gets_signal_path(base: str, expected: str) -> None:
    config = ExporterConfig.from_env({"OTEL_EXPORTER_OTLP_ENDPOINT": base})
    assert config.traces.endpoint == expected
    assert config.logs.endpoint == expected.replace("/v1/traces", "/v1/logs")
    # The explicit argument follows the same rule.
    assert ExporterConfig.from_env({}, endpoint=base).traces.endpoint == expected


@pytest.mark.parametrize(
    ("endpoint", "expected"),
    [
        ("http://h:4318", "http://h:4318/"),
        ("http://h:4318/", "http://h:4318/"),
        ("http://h:4318/custom", "http://h:4318/custom"),
        ("http://h:4318/v1/traces", "http://h:4318/v1/traces"),
        ("https://h/x/y/?q=1", "https://h/x/y/?q=1"),
    ],
)
def test_http_per_signal_endpoint_is_verbatim(endpoint: str, expected: str) -> None:
    config = ExporterConfig.from_env(
        {"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": endpoint, "OTEL_EXPORTER_OTLP_ENDPOINT": "http://base:1"}
    )
    assert config.traces.endpoint == expected
    assert config.metrics.endpoint == "http://base:1/v1/metrics"


@pytest.mark.parametrize(
    ("endpoint", "host", "port", "tls"),
    [
        ("http://h", "h", 80, False),
        ("https://h", "h", 443, True),
        ("https://h:8443/x", "h", 8443, True),
        ("http://[2001:db8::1]:9/x", "2001:db8::1", 9, False),
        ("http://user:pw@h:5/x", "h", 5, False),
        ("http://127.0.0.1:4318", "127.0.0.1", 4318, False),
    ],
)
def test_http_host_port_tls(endpoint: str, host: str, port: int, tls: bool) -> None:
    sc = ExporterConfig.from_env({"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": endpoint}).traces
    assert (sc.host, sc.port, sc.use_tls, sc.insecure) == (host, port, tls, not tls)


def test_http_insecure_flag_is_ignored() -> None:
    sc = ExporterConfig.from_env(
        {"OTEL_EXPORTER_OTLP_ENDPOINT": "https://h", "OTEL_EXPORTER_OTLP_INSECURE": "true"}
    ).traces
    assert sc.use_tls
    assert ExporterConfig.from_env({}, insecure=True, endpoint="https://h").traces.use_tls


def test_idn_host_is_punycoded() -> None:
    sc = ExporterConfig.from_env({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://bücher.example:4318"}).traces
    assert sc.host == "xn--bcher-kva.example"


# ----------------------------------------------------------------------------------------------- gRPC


@pytest.mark.parametrize(
    ("endpoint", "insecure", "expected", "expected_insecure"),
    [
        ("http://h:4317", None, "http://h:4317", True),
        ("http://h:4317", "false", "http://h:4317", True),
        ("https://h:4317", None, "https://h:4317", False),
        ("https://h:4317", "true", "https://h:4317", False),
        ("h:4317", None, "https://h:4317", False),
        ("h:4317", "false", "https://h:4317", False),
        ("h:4317", "true", "http://h:4317", True),
        ("h:4317", "TRUE", "http://h:4317", True),
        ("h:4317", "True", "http://h:4317", True),
        ("h:4317", "1", "https://h:4317", False),
        ("h:4317", "yes", "https://h:4317", False),
        ("h:4317", "on", "https://h:4317", False),
        ("h", "true", "http://h:80", True),
        ("h", None, "https://h:443", False),
        ("https://h", None, "https://h:443", False),
        ("http://h:4317/ignored/path?q=1", None, "http://h:4317", True),
        ("[::1]:4317", "true", "http://[::1]:4317", True),
        ("10.0.0.1:4317", None, "https://10.0.0.1:4317", False),
    ],
)
def test_grpc_scheme_insecure_matrix(
    endpoint: str, insecure: str | None, expected: str, expected_insecure: bool
) -> None:
    environ = {"OTEL_EXPORTER_OTLP_PROTOCOL": "grpc", "OTEL_EXPORTER_OTLP_ENDPOINT": endpoint}
    if insecure is not None:
        environ["OTEL_EXPORTER_OTLP_INSECURE"] = insecure
    sc = ExporterConfig.from_env(environ).traces
    assert sc.endpoint == expected
    assert sc.insecure is expected_insecure
    assert sc.use_tls is (not expected_insecure)
    # Per-signal endpoints follow the same rules for gRPC (no verbatim path).
    environ = {"OTEL_EXPORTER_OTLP_PROTOCOL": "grpc", "OTEL_EXPORTER_OTLP_METRICS_ENDPOINT": endpoint}
    if insecure is not None:
        environ["OTEL_EXPORTER_OTLP_INSECURE"] = insecure
    assert ExporterConfig.from_env(environ).metrics.endpoint == expected


def test_grpc_explicit_insecure_argument() -> None:
    config = ExporterConfig.from_env({}, protocol="grpc", endpoint="h:4317", insecure=True)
    assert config.traces.endpoint == "http://h:4317"
    config = ExporterConfig.from_env({}, protocol="grpc", endpoint="h:4317")
    assert config.traces.endpoint == "https://h:4317"


def test_grpc_rejects_credentials_in_url() -> None:
    with raises_config_error("OTEL_EXPORTER_OTLP_ENDPOINT", "headers"):
        ExporterConfig.from_env(
            {"OTEL_EXPORTER_OTLP_PROTOCOL": "grpc", "OTEL_EXPORTER_OTLP_ENDPOINT": f"https://u:{CANARY}@h"}
        )


def test_insecure_must_be_bool() -> None:
    with raises_config_error("insecure"):
        ExporterConfig.from_env({}, insecure="true")  # type: ignore[arg-type]


# ---------------------------------------------------------------------------------------- endpoint errors


@pytest.mark.parametrize(
    "endpoint",
    [
        "ftp://h:21",
        "unix:/tmp/otel.sock",
        "unix:///tmp/otel.sock",
        "localhost:",
        "http:h:4318",
        "http:/h",
        "http://",
        "http:///path",
        "http://:4318",
        "http://h:0",
        "http://h:65536",
        "http://h:70000",
        "http://h:abc",
        "http://h:-1",
        "http://h:+80",
        "http://h:4318:1",
        "http://h :4318",
        "http://h\n:4318",
        "http://h\x00",
        "http://h\\x",
        "http://[::1",
        "http://[not-ipv6]:1",
        "http://[::1]x",
        "http://h%41",
        "http://h_é!/",
    ],
)
@pytest.mark.parametrize("protocol", ["grpc", "http/protobuf"])
def test_invalid_endpoints(endpoint: str, protocol: str) -> None:
    environ = {"OTEL_EXPORTER_OTLP_PROTOCOL": protocol, "OTEL_EXPORTER_OTLP_LOGS_ENDPOINT": endpoint}
    with raises_config_error("OTEL_EXPORTER_OTLP_LOGS_ENDPOINT"):
        ExporterConfig.from_env(environ)
    with raises_config_error("endpoint"):
        ExporterConfig.from_env({}, protocol=protocol, endpoint=endpoint)  # type: ignore[arg-type]


@pytest.mark.parametrize("value", ["", "   "])
def test_explicit_empty_endpoint_is_an_error(value: str) -> None:
    with raises_config_error("endpoint", "empty"):
        ExporterConfig.from_env({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://h:1"}, endpoint=value)


@pytest.mark.parametrize("scheme", ["ftp", "unix", "grpc", "ws"])
def test_unsupported_scheme_message(scheme: str) -> None:
    with raises_config_error("OTEL_EXPORTER_OTLP_ENDPOINT", "unsupported URL scheme", "http://"):
        ExporterConfig.from_env({"OTEL_EXPORTER_OTLP_ENDPOINT": f"{scheme}://h:1"})


def test_scheme_less_endpoint_is_grpc_only() -> None:
    with raises_config_error("OTEL_EXPORTER_OTLP_ENDPOINT", "http://"):
        ExporterConfig.from_env({"OTEL_EXPORTER_OTLP_ENDPOINT": "localhost:4318"})
    with raises_config_error("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"):
        ExporterConfig.from_env({"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "localhost:4318"})


@pytest.mark.parametrize("port", ["0", "65536", "70000", "99999999", "abc"])
def test_port_range(port: str) -> None:
    with raises_config_error("OTEL_EXPORTER_OTLP_ENDPOINT", "port", "65535"):
        ExporterConfig.from_env({"OTEL_EXPORTER_OTLP_ENDPOINT": f"http://h:{port}"})


@pytest.mark.parametrize("port", [1, 65535])
def test_port_bounds_accepted(port: int) -> None:
    assert ExporterConfig.from_env({"OTEL_EXPORTER_OTLP_ENDPOINT": f"http://h:{port}"}).traces.port == port


@pytest.mark.parametrize(
    "endpoint",
    [
        f"http://user:{CANARY}@h:0/",
        f"http://user:{CANARY}@h:abc/",
        f"ftp://user:{CANARY}@h/",
        f"http://user:{CANARY}@/",
        f"http://user:{CANARY}@h x/",
        f"http://user:{CANARY}/x@h/",
        f"http://:{CANARY}/@h",
        f"http://u:{CANARY}?@h",
        f"http://u:{CANARY}#@h",
        f"http://u:{CANARY}@[::1",
        f"user:{CANARY}@h:4317",
        f"{CANARY}:99999",
    ],
)
@pytest.mark.parametrize("protocol", ["grpc", "http/protobuf", "http/json"])
def test_errors_never_contain_url_password(endpoint: str, protocol: str) -> None:
    with raises_config_error("OTEL_EXPORTER_OTLP_ENDPOINT"):
        ExporterConfig.from_env({"OTEL_EXPORTER_OTLP_PROTOCOL": protocol, "OTEL_EXPORTER_OTLP_ENDPOINT": endpoint})


def test_repr_redacts_url_userinfo() -> None:
    config = ExporterConfig.from_env({"OTEL_EXPORTER_OTLP_ENDPOINT": f"https://user:{CANARY}@h:4318/p"})
    sc = config.traces
    assert sc.endpoint == f"https://user:{CANARY}@h:4318/p/v1/traces"  # the real value is kept
    for text in (repr(sc), str(sc), repr(config), str(config)):
        assert CANARY not in text
        assert "user" not in text
        assert "https://***@h:4318/p/v1/traces" in text


def test_repr_without_userinfo_is_unchanged() -> None:
    sc = ExporterConfig.from_env({"OTEL_EXPORTER_OTLP_ENDPOINT": "https://h:4318"}).traces
    assert "'https://h:4318/v1/traces'" in repr(sc)


def test_repr_redacts_headers() -> None:
    config = ExporterConfig.from_env({"OTEL_EXPORTER_OTLP_HEADERS": f"Authorization=Bearer {CANARY}"})
    for text in (repr(config), str(config), repr(config.traces), str(config.logs)):
        assert CANARY not in text
        assert "Headers({'authorization': '***'})" in text


# --------------------------------------------------------------------------------------------- protocol


@pytest.mark.parametrize(
    ("value", "expected"),
    [("grpc", "grpc"), ("http/protobuf", "http/protobuf"), ("http/json", "http/json"), ("GRPC", "grpc")],
)
def test_protocol_values(value: str, expected: str) -> None:
    assert ExporterConfig.from_env({"OTEL_EXPORTER_OTLP_PROTOCOL": value}).traces.protocol == expected


@pytest.mark.parametrize("value", ["http", "grpc/json", "json", "http/proto"])
def test_protocol_invalid(value: str) -> None:
    with raises_config_error("OTEL_EXPORTER_OTLP_PROTOCOL", "'grpc'", "'http/protobuf'", "'http/json'"):
        ExporterConfig.from_env({"OTEL_EXPORTER_OTLP_PROTOCOL": value})
    with raises_config_error("OTEL_EXPORTER_OTLP_METRICS_PROTOCOL"):
        ExporterConfig.from_env({"OTEL_EXPORTER_OTLP_METRICS_PROTOCOL": value})
    with raises_config_error("protocol", "'grpc'"):
        ExporterConfig.from_env({}, protocol=value)  # type: ignore[arg-type]


# ----------------------------------------------------------------------------------------------- headers


def test_headers_parse_basic() -> None:
    headers = Headers.parse(" Api-Key = abc , X-Other=1,b=c=d ")
    assert dict(headers) == {"api-key": "abc", "x-other": "1", "b": "c=d"}


def test_headers_percent_decoding() -> None:
    headers = Headers.parse("Authorization=Basic%20dXNlcjpwYXNz%3D%3D,x%2Dkey=a%2Cb%25c,k=%E2%9C%93")
    assert headers["authorization"] == "Basic dXNlcjpwYXNz=="
    assert headers["x-key"] == "a,b%c"
    assert headers["k"] == "\u2713"


def test_headers_strip_before_decoding() -> None:
    assert Headers.parse("k= %20v%20 ")["k"] == " v "


@pytest.mark.parametrize("text", ["", "   ", ",", " , ,"])
def test_headers_parse_empty(text: str) -> None:
    assert Headers.parse(text) == Headers()


def test_headers_parse_skips_empty_entries_and_last_wins() -> None:
    assert dict(Headers.parse("a=1,,b=2,A=3,")) == {"a": "3", "b": "2"}


def test_headers_parse_empty_value_allowed() -> None:
    assert dict(Headers.parse("a=")) == {"a": ""}


@pytest.mark.parametrize(
    "text",
    [f"Authorization Bearer {CANARY}", f"a=1,{CANARY}", f"a=1, {CANARY} ,b=2"],
)
def test_headers_entry_without_equals(text: str) -> None:
    with raises_config_error("OTEL_EXPORTER_OTLP_HEADERS", "'='"):
        Headers.parse(text)
    with raises_config_error("OTEL_EXPORTER_OTLP_LOGS_HEADERS", "'='"):
        ExporterConfig.from_env({"OTEL_EXPORTER_OTLP_LOGS_HEADERS": text})


@pytest.mark.parametrize("text", [f"={CANARY}", f" = {CANARY}", f"a=1,%20={CANARY}"])
def test_headers_empty_key(text: str) -> None:
    with raises_config_error("OTEL_EXPORTER_OTLP_HEADERS"):
        ExporterConfig.from_env({"OTEL_EXPORTER_OTLP_HEADERS": text})


@pytest.mark.parametrize(
    ("text", "key"),
    [
        (f"bad key={CANARY}", "bad key"),
        (f"bad%0Akey={CANARY}", "bad\nkey"),
        (f"k\u00e9y={CANARY}", "k\u00e9y"),
        (f":authority={CANARY}", ":authority"),
        (f"a(b)={CANARY}", "a(b)"),
    ],
)
def test_headers_invalid_key(text: str, key: str) -> None:
    """The entry's position and what is wrong, never the name (``Authorization: Basic <token>=`` written with
    ``:`` puts the token in what would be the name)."""
    with raises_config_error("OTEL_EXPORTER_OTLP_HEADERS: entry 2 ", "not a valid HTTP token", absent=(CANARY, key)):
        ExporterConfig.from_env({"OTEL_EXPORTER_OTLP_HEADERS": "ok=1," + text})


@pytest.mark.parametrize("encoded", ["%0D", "%0A", "%00", "%0D%0AX-Injected:%201"])
def test_headers_value_control_characters(encoded: str) -> None:
    text = f"Authorization=Bearer {CANARY}{encoded}"
    with raises_config_error(
        "OTEL_EXPORTER_OTLP_TRACES_HEADERS: entry 1 ", "CR, LF or NUL", absent=(CANARY, "uthorization")
    ):
        ExporterConfig.from_env({"OTEL_EXPORTER_OTLP_TRACES_HEADERS": text})


@pytest.mark.parametrize("bad", ["\r", "\n", "\x00", "a\r\nb"])
def test_headers_constructor_rejects_control_characters(bad: str) -> None:
    absent = (CANARY, "key")
    with raises_config_error("headers: header 2 (in the order given)", "CR, LF or NUL", absent=absent):
        Headers({"a": "1", "X-Key": CANARY + bad})
    with raises_config_error("headers: header 1 ", absent=absent):
        ExporterConfig.from_env({}, headers={"X-Key": CANARY + bad})
    with raises_config_error("my-source: header 1 ", absent=absent):
        Headers([("X-Key", CANARY + bad)], source="my-source")


def test_headers_constructor_type_errors() -> None:
    with raises_config_error("headers"):
        Headers({1: "x"})  # type: ignore[arg-type]
    with raises_config_error("headers: header 1 ", "the value must be a str, got int"):
        Headers({"k": 1})  # type: ignore[arg-type]
    with raises_config_error("headers"):
        Headers({"": "x"})
    with raises_config_error("headers"):
        ExporterConfig.from_env({}, headers=[("a", "b")])  # type: ignore[arg-type]
    with raises_config_error("headers", "Headers.parse"):
        Headers("a=b")  # type: ignore[arg-type]
    with raises_config_error("headers", "pairs"):
        Headers([("a", "b", "c")])  # type: ignore[list-item]
    with raises_config_error("headers", "pairs"):
        Headers(["ab"])  # type: ignore[list-item]
    with raises_config_error("headers", "int"):
        Headers(5)  # type: ignore[arg-type]


def test_headers_mapping_behaviour() -> None:
    headers = Headers({"Authorization": "Bearer x", "X-B": "2"})
    assert list(headers) == ["authorization", "x-b"]
    assert len(headers) == 2
    assert headers["authorization"] == "Bearer x"
    assert headers["AUTHORIZATION"] == "Bearer x"
    assert "Authorization" in headers
    assert "x-b" in headers
    assert 1 not in headers  # type: ignore[comparison-overlap]
    assert headers.get("missing") is None
    assert headers.get("X-B") == "2"
    with pytest.raises(KeyError):
        headers["missing"]
    with pytest.raises(KeyError):
        headers[1]  # type: ignore[index]
    assert isinstance(headers, Mapping)
    assert Headers(headers) == headers
    assert Headers([("A", "1")]) == Headers({"a": "1"})


def test_headers_equality_and_hash() -> None:
    a = Headers({"A": "1", "b": "2"})
    b = Headers([("b", "2"), ("a", "1")])
    assert a == b
    assert hash(a) == hash(b)
    assert a != Headers({"a": "1"})
    assert a != Headers({"a": "1", "b": "3"})
    assert a == {"a": "1", "b": "2"}
    assert a != "a=1,b=2"
    assert len({a, b}) == 1


def test_headers_are_immutable() -> None:
    headers = Headers({"a": "1"})
    with pytest.raises(TypeError):
        headers["a"] = "2"  # type: ignore[index]
    with pytest.raises(TypeError):
        del headers["a"]  # type: ignore[attr-defined]
    with pytest.raises(AttributeError):
        headers._data = {}
    with pytest.raises(AttributeError):
        headers.extra = 1
    with pytest.raises(AttributeError):
        del headers._data
    for name in ("update", "pop", "clear", "setdefault", "popitem"):
        assert not hasattr(headers, name)
    source = {"a": "1"}
    copied = Headers(source)
    source["a"] = "2"
    assert copied["a"] == "1"


def test_headers_repr_redacts_values() -> None:
    headers = Headers({"Authorization": CANARY, "X-Key": CANARY})
    assert repr(headers) == "Headers({'authorization': '***', 'x-key': '***'})"
    assert str(headers) == repr(headers)
    assert f"{headers}" == repr(headers)
    assert repr(Headers()) == "Headers({})"


def test_headers_pickle_and_copy() -> None:
    headers = Headers({"a": "1"})
    assert pickle.loads(pickle.dumps(headers)) == headers
    assert copy.copy(headers) == headers
    assert copy.deepcopy(headers) == headers


# ------------------------------------------------------------------------------------------------ timeout


@pytest.mark.parametrize(("text", "seconds"), [("1", 0.001), ("250", 0.25), ("10000", 10.0), ("007", 0.007)])
def test_timeout_milliseconds(text: str, seconds: float) -> None:
    sc = ExporterConfig.from_env({"OTEL_EXPORTER_OTLP_TIMEOUT": text}).traces
    assert sc.timeout == pytest.approx(seconds)


@pytest.mark.parametrize(
    "text", ["0", "-1", "1.5", "abc", "1e3", "+5", "1_000", "\uff15", "10s", "0x10", "9" * 19, "00"]
)
def test_timeout_invalid(text: str) -> None:
    with raises_config_error("OTEL_EXPORTER_OTLP_TIMEOUT", "must be a positive integer number of milliseconds"):
        ExporterConfig.from_env({"OTEL_EXPORTER_OTLP_TIMEOUT": text})
    with raises_config_error("OTEL_EXPORTER_OTLP_LOGS_TIMEOUT"):
        ExporterConfig.from_env({"OTEL_EXPORTER_OTLP_LOGS_TIMEOUT": text})


@pytest.mark.parametrize("value", [0, -1, 0.0, math.nan, math.inf, -math.inf, True, "5", 10**400])
def test_timeout_argument_invalid(value: object) -> None:
    with raises_config_error("timeout"):
        ExporterConfig.from_env({}, timeout=value)  # type: ignore[arg-type]


def test_timeout_argument_int_becomes_float() -> None:
    sc = ExporterConfig.from_env({}, timeout=3).traces
    assert sc.timeout == 3.0
    assert isinstance(sc.timeout, float)


# ------------------------------------------------------------------------------------------- compression


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("gzip", "gzip"),
        ("GZIP", "gzip"),
        ("deflate", "deflate"),
        (" Deflate ", "deflate"),
        ("zstd", "zstd"),
        (" ZSTD", "zstd"),
        ("none", "none"),
        ("", "none"),
    ],
)
def test_compression(text: str, expected: str) -> None:
    assert ExporterConfig.from_env({"OTEL_EXPORTER_OTLP_COMPRESSION": text}).traces.compression == expected
    if text:  # an empty variable is unset; an empty argument is not a compression
        assert ExporterConfig.from_env({}, compression=text).traces.compression == expected  # type: ignore[arg-type]


def test_compression_per_signal_zstd_wins_over_the_generic_variable() -> None:
    config = ExporterConfig.from_env(
        {"OTEL_EXPORTER_OTLP_COMPRESSION": "gzip", "OTEL_EXPORTER_OTLP_LOGS_COMPRESSION": "zstd"}
    )
    assert (config.traces.compression, config.metrics.compression, config.logs.compression) == ("gzip", "gzip", "zstd")
    assert ExporterConfig.from_env({"OTEL_EXPORTER_OTLP_COMPRESSION": "zstd"}, compression="none").logs.compression == (
        "none"
    )


@pytest.mark.parametrize("text", ["br", "zstandard", "true", "zlib", "snappy"])
def test_compression_invalid(text: str) -> None:
    with raises_config_error("OTEL_EXPORTER_OTLP_COMPRESSION", "'gzip'", "'none'"):
        ExporterConfig.from_env({"OTEL_EXPORTER_OTLP_COMPRESSION": text})
    with raises_config_error("compression"):
        ExporterConfig.from_env({}, compression=text)  # type: ignore[arg-type]


# ----------------------------------------------------------------------------------------- certificates


@pytest.mark.parametrize("key", ["CERTIFICATE", "CLIENT_KEY", "CLIENT_CERTIFICATE"])
def test_missing_certificate_file(key: str, tmp_path: Path, pem_files: dict[str, str]) -> None:
    missing = str(tmp_path / "missing.pem")
    environ = {
        "OTEL_EXPORTER_OTLP_CLIENT_KEY": pem_files["key"],
        "OTEL_EXPORTER_OTLP_CLIENT_CERTIFICATE": pem_files["cert"],
        f"OTEL_EXPORTER_OTLP_{key}": missing,
    }
    with raises_config_error(f"OTEL_EXPORTER_OTLP_{key}", missing):
        ExporterConfig.from_env(environ)
    environ = {
        "OTEL_EXPORTER_OTLP_CLIENT_KEY": pem_files["key"],
        "OTEL_EXPORTER_OTLP_CLIENT_CERTIFICATE": pem_files["cert"],
        env_for(Signal.METRICS, key): missing,
    }
    with raises_config_error(env_for(Signal.METRICS, key), missing):
        ExporterConfig.from_env(environ)


def test_certificate_directory_is_rejected(tmp_path: Path) -> None:
    with raises_config_error("OTEL_EXPORTER_OTLP_CERTIFICATE", str(tmp_path), "not a regular file"):
        ExporterConfig.from_env({"OTEL_EXPORTER_OTLP_CERTIFICATE": str(tmp_path)})


def test_certificate_fifo_is_rejected_without_blocking(tmp_path: Path) -> None:
    fifo = tmp_path / "ca.fifo"
    os.mkfifo(fifo)
    with raises_config_error("OTEL_EXPORTER_OTLP_CERTIFICATE", "not a regular file"):
        ExporterConfig.from_env({"OTEL_EXPORTER_OTLP_CERTIFICATE": str(fifo)})


def test_unreadable_certificate(pem_files: dict[str, str]) -> None:
    os.chmod(pem_files["ca"], 0)
    if os.geteuid() != 0:
        with raises_config_error("OTEL_EXPORTER_OTLP_CERTIFICATE", "permission denied"):
            ExporterConfig.from_env({"OTEL_EXPORTER_OTLP_CERTIFICATE": pem_files["ca"]})
        return
    # root reads any file: check as an unprivileged user (nobody) in a forked child instead
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - runs in the child
        os.close(read_end)
        message = "no error"
        try:
            os.setgid(65534)
            os.setuid(65534)
            ExporterConfig.from_env({"OTEL_EXPORTER_OTLP_CERTIFICATE": pem_files["ca"]})
        except ValueError as exc:
            message = f"{type(exc).__name__}: {exc}"
        finally:
            os.write(write_end, message.encode())
            os._exit(0)
    os.close(write_end)
    with os.fdopen(read_end) as pipe:
        message = pipe.read()
    os.waitpid(pid, 0)
    assert message.startswith("ConfigurationError"), message
    assert "OTEL_EXPORTER_OTLP_CERTIFICATE" in message
    assert "permission denied" in message.lower()


def test_certificate_path_with_nul() -> None:
    with raises_config_error("OTEL_EXPORTER_OTLP_CERTIFICATE"):
        ExporterConfig.from_env({"OTEL_EXPORTER_OTLP_CERTIFICATE": "/tmp/a\x00b"})


@pytest.mark.parametrize("arg", ["certificate_file", "client_key_file", "client_certificate_file"])
def test_missing_certificate_argument(arg: str, tmp_path: Path, pem_files: dict[str, str]) -> None:
    kwargs: dict[str, object] = {
        "client_key_file": pem_files["key"],
        "client_certificate_file": pem_files["cert"],
        arg: tmp_path / "nope.pem",
    }
    with raises_config_error(arg, "nope.pem"):
        ExporterConfig.from_env({}, **kwargs)  # type: ignore[arg-type]


def test_client_key_without_certificate(pem_files: dict[str, str]) -> None:
    with raises_config_error("OTEL_EXPORTER_OTLP_CLIENT_KEY", "CLIENT_CERTIFICATE"):
        ExporterConfig.from_env({"OTEL_EXPORTER_OTLP_CLIENT_KEY": pem_files["key"]})
    with raises_config_error("OTEL_EXPORTER_OTLP_CLIENT_CERTIFICATE", "CLIENT_KEY"):
        ExporterConfig.from_env({"OTEL_EXPORTER_OTLP_CLIENT_CERTIFICATE": pem_files["cert"]})
    with raises_config_error("OTEL_EXPORTER_OTLP_LOGS_CLIENT_KEY"):
        ExporterConfig.from_env({"OTEL_EXPORTER_OTLP_LOGS_CLIENT_KEY": pem_files["key"]})
    with raises_config_error("client_key_file"):
        ExporterConfig.from_env({}, client_key_file=pem_files["key"])
    with raises_config_error("client_certificate_file"):
        ExporterConfig.from_env({}, client_certificate_file=pem_files["cert"])


def test_certificates_accepted(pem_files: dict[str, str]) -> None:
    sc = ExporterConfig.from_env(
        {
            "OTEL_EXPORTER_OTLP_ENDPOINT": "https://h:4318",
            "OTEL_EXPORTER_OTLP_CERTIFICATE": pem_files["ca"],
            "OTEL_EXPORTER_OTLP_CLIENT_KEY": pem_files["key"],
            "OTEL_EXPORTER_OTLP_CLIENT_CERTIFICATE": pem_files["cert"],
        }
    ).traces
    assert (sc.certificate_file, sc.client_key_file, sc.client_certificate_file) == (
        pem_files["ca"],
        pem_files["key"],
        pem_files["cert"],
    )


# ------------------------------------------------------------------------------------- max_request_bytes


@pytest.mark.parametrize("value", [KIB, 4 * MIB, 64 * MIB])
def test_max_request_bytes_bounds(value: int) -> None:
    assert ExporterConfig.from_env({}, max_request_bytes=value).logs.max_request_bytes == value


@pytest.mark.parametrize("value", [0, -1, KIB - 1, 64 * MIB + 1, True, 1.5e6, "4096"])
def test_max_request_bytes_invalid(value: object) -> None:
    with raises_config_error("max_request_bytes"):
        ExporterConfig.from_env({}, max_request_bytes=value)  # type: ignore[arg-type]


# ------------------------------------------------------------------------------ SignalConfig, directly


def test_signal_config_direct_construction() -> None:
    sc = SignalConfig(signal=Signal.TRACES, protocol="http/json", endpoint="https://h/v1/traces")
    assert sc.endpoint == "https://h/v1/traces"
    assert (sc.host, sc.port, sc.use_tls) == ("h", 443, True)
    assert sc.timeout == 10.0
    assert sc.headers == Headers()
    assert sc.compression == "none"


def test_signal_config_direct_grpc_is_normalized() -> None:
    sc = SignalConfig(signal=Signal.LOGS, protocol="grpc", endpoint="collector:4317")
    assert sc.endpoint == "https://collector:4317"  # scheme-less means TLS unless from_env(insecure=True)
    assert sc.use_tls
    sc = SignalConfig(signal=Signal.LOGS, protocol="grpc", endpoint="http://collector:4317/x")
    assert sc.endpoint == "http://collector:4317"
    assert sc.insecure


def test_signal_config_direct_accepts_str_signal_and_mapping_headers() -> None:
    sc = SignalConfig(
        signal="metrics",  # type: ignore[arg-type]
        protocol="http/protobuf",
        endpoint="http://h:1",
        headers={"A": "b"},  # type: ignore[arg-type]
    )
    assert sc.signal is Signal.METRICS
    assert isinstance(sc.headers, Headers)
    assert sc.headers == Headers({"a": "b"})
    assert sc.endpoint == "http://h:1/"


@pytest.mark.parametrize(
    ("kwargs", "name"),
    [
        ({"signal": "spans"}, "signal"),
        ({"protocol": "udp"}, "protocol"),
        ({"endpoint": "ftp://h"}, "endpoint"),
        ({"endpoint": 5}, "endpoint"),
        ({"timeout": 0}, "timeout"),
        ({"timeout": -1.0}, "timeout"),
        ({"compression": "lz4"}, "compression"),
        ({"certificate_file": "/nonexistent/ca.pem"}, "certificate_file"),
        ({"max_request_bytes": 10}, "max_request_bytes"),
        ({"headers": "a=b"}, "headers"),
    ],
)
def test_signal_config_direct_validation(kwargs: dict[str, object], name: str) -> None:
    base: dict[str, object] = {"signal": Signal.TRACES, "protocol": "http/protobuf", "endpoint": "http://h"}
    with raises_config_error(name):
        SignalConfig(**(base | kwargs))  # type: ignore[arg-type]


def test_signal_config_key_and_cert_together(pem_files: dict[str, str]) -> None:
    with raises_config_error("client_key_file", "client_certificate_file"):
        SignalConfig(signal=Signal.TRACES, protocol="grpc", endpoint="h:1", client_key_file=pem_files["key"])


def test_signal_config_is_frozen_and_replaceable() -> None:
    sc = ExporterConfig.from_env({}).traces
    with pytest.raises(dataclasses.FrozenInstanceError):
        sc.timeout = 1.0  # type: ignore[misc]
    assert not hasattr(sc, "__dict__")
    changed = dataclasses.replace(sc, timeout=2.0, endpoint="https://other:1/x")
    assert (changed.timeout, changed.host, changed.use_tls) == (2.0, "other", True)
    with pytest.raises((ValueError, TypeError), match="insecure"):  # TypeError from Python 3.13
        dataclasses.replace(sc, insecure=False)
    with raises_config_error("timeout"):
        dataclasses.replace(sc, timeout=-1.0)


def test_signal_config_equality_hash_pickle() -> None:
    a = ExporterConfig.from_env({"OTEL_EXPORTER_OTLP_HEADERS": "a=1"})
    b = ExporterConfig.from_env({"OTEL_EXPORTER_OTLP_HEADERS": "A=1"})
    assert a == b
    assert hash(a) == hash(b)
    assert pickle.loads(pickle.dumps(a)) == a
    assert a != ExporterConfig.from_env({"OTEL_EXPORTER_OTLP_HEADERS": "a=2"})


def test_exporter_config_checks_signals() -> None:
    config = ExporterConfig.from_env({})
    with raises_config_error("traces"):
        ExporterConfig(traces=config.logs, metrics=config.metrics, logs=config.logs)
    with raises_config_error("metrics"):
        ExporterConfig(traces=config.traces, metrics=None, logs=config.logs)  # type: ignore[arg-type]


# ------------------------------------------------------------------------------------------ BatchConfig


def test_batch_config_defaults() -> None:
    span = BatchConfig.from_env("span", {})
    assert span == BatchConfig(schedule_delay=5.0, export_timeout=30.0, max_queue_size=2048, max_export_batch_size=512)
    assert span == BatchConfig()
    log = BatchConfig.from_env("log", {})
    assert (log.schedule_delay, log.export_timeout, log.max_queue_size, log.max_export_batch_size) == (
        1.0,
        30.0,
        2048,
        512,
    )
    assert isinstance(log.schedule_delay, float)


@pytest.mark.parametrize(("kind", "prefix"), [("span", "OTEL_BSP_"), ("log", "OTEL_BLRP_")])
def test_batch_config_from_env(kind: str, prefix: str) -> None:
    other = "OTEL_BLRP_" if prefix == "OTEL_BSP_" else "OTEL_BSP_"
    environ = {
        prefix + "SCHEDULE_DELAY": "250",
        prefix + "EXPORT_TIMEOUT": "1500",
        prefix + "MAX_QUEUE_SIZE": "100",
        prefix + "MAX_EXPORT_BATCH_SIZE": "100",
        other + "SCHEDULE_DELAY": "garbage",
        other + "MAX_QUEUE_SIZE": "-1",
    }
    config = BatchConfig.from_env(kind, environ)  # type: ignore[arg-type]
    assert config == BatchConfig(schedule_delay=0.25, export_timeout=1.5, max_queue_size=100, max_export_batch_size=100)


def test_batch_config_explicit_wins() -> None:
    environ = {"OTEL_BSP_SCHEDULE_DELAY": "x", "OTEL_BSP_MAX_QUEUE_SIZE": "0"}
    config = BatchConfig.from_env(
        "span", environ, schedule_delay=0.5, export_timeout=2, max_queue_size=10, max_export_batch_size=5
    )
    assert config == BatchConfig(schedule_delay=0.5, export_timeout=2.0, max_queue_size=10, max_export_batch_size=5)


@pytest.mark.parametrize("key", ["SCHEDULE_DELAY", "EXPORT_TIMEOUT"])
@pytest.mark.parametrize("text", ["0", "-1", "1.5", "abc"])
def test_batch_config_invalid_durations(key: str, text: str) -> None:
    with raises_config_error(f"OTEL_BSP_{key}", "milliseconds"):
        BatchConfig.from_env("span", {f"OTEL_BSP_{key}": text})
    with raises_config_error(f"OTEL_BLRP_{key}"):
        BatchConfig.from_env("log", {f"OTEL_BLRP_{key}": text})


@pytest.mark.parametrize("key", ["MAX_QUEUE_SIZE", "MAX_EXPORT_BATCH_SIZE"])
@pytest.mark.parametrize("text", ["0", "-1", "1.5", "abc", "1e3"])
def test_batch_config_invalid_sizes(key: str, text: str) -> None:
    with raises_config_error(f"OTEL_BSP_{key}", "positive integer"):
        BatchConfig.from_env("span", {f"OTEL_BSP_{key}": text})


def test_batch_size_larger_than_queue() -> None:
    with raises_config_error("OTEL_BSP_MAX_EXPORT_BATCH_SIZE", "OTEL_BSP_MAX_QUEUE_SIZE"):
        BatchConfig.from_env("span", {"OTEL_BSP_MAX_QUEUE_SIZE": "10", "OTEL_BSP_MAX_EXPORT_BATCH_SIZE": "11"})
    with raises_config_error("OTEL_BLRP_MAX_EXPORT_BATCH_SIZE", "OTEL_BLRP_MAX_QUEUE_SIZE"):
        BatchConfig.from_env("log", {"OTEL_BLRP_MAX_QUEUE_SIZE": "100"})  # default batch 512 > 100
    with raises_config_error("max_export_batch_size", "OTEL_BSP_MAX_QUEUE_SIZE"):
        BatchConfig.from_env("span", {"OTEL_BSP_MAX_QUEUE_SIZE": "10"}, max_export_batch_size=20)
    with raises_config_error("max_export_batch_size", "max_queue_size"):
        BatchConfig(max_queue_size=1, max_export_batch_size=2)


@pytest.mark.parametrize(
    ("kwargs", "name"),
    [
        ({"schedule_delay": 0}, "schedule_delay"),
        ({"export_timeout": -1}, "export_timeout"),
        ({"export_timeout": math.nan}, "export_timeout"),
        ({"max_queue_size": 0}, "max_queue_size"),
        ({"max_queue_size": 1.5}, "max_queue_size"),
        ({"max_export_batch_size": True}, "max_export_batch_size"),
    ],
)
def test_batch_config_invalid_arguments(kwargs: dict[str, object], name: str) -> None:
    with raises_config_error(name):
        BatchConfig.from_env("span", {}, **kwargs)  # type: ignore[arg-type]
    with raises_config_error(name):
        BatchConfig(**kwargs)  # type: ignore[arg-type]


def test_batch_config_bad_kind() -> None:
    with raises_config_error("kind"):
        BatchConfig.from_env("metric", {})  # type: ignore[arg-type]


# ----------------------------------------------------------------------------------- MetricReaderConfig


def test_metric_reader_defaults() -> None:
    config = MetricReaderConfig.from_env({})
    assert config == MetricReaderConfig(export_interval=60.0, export_timeout=30.0, temporality_preference="cumulative")
    assert config == MetricReaderConfig()


def test_metric_reader_from_env() -> None:
    config = MetricReaderConfig.from_env(
        {
            "OTEL_METRIC_EXPORT_INTERVAL": "1000",
            "OTEL_METRIC_EXPORT_TIMEOUT": "500",
            "OTEL_EXPORTER_OTLP_METRICS_TEMPORALITY_PREFERENCE": "Delta",
        }
    )
    assert (config.export_interval, config.export_timeout, config.temporality_preference) == (
        1.0,
        0.5,
        "delta",
    )


@pytest.mark.parametrize("text", ["cumulative", "DELTA", "LowMemory", " lowmemory "])
def test_metric_temporality_values(text: str) -> None:
    config = MetricReaderConfig.from_env({"OTEL_EXPORTER_OTLP_METRICS_TEMPORALITY_PREFERENCE": text})
    assert config.temporality_preference == text.strip().lower()


def test_metric_reader_errors() -> None:
    var = "OTEL_EXPORTER_OTLP_METRICS_TEMPORALITY_PREFERENCE"
    with raises_config_error(var, "'cumulative'", "'delta'", "'lowmemory'"):
        MetricReaderConfig.from_env({var: "gauge"})
    for name in ("OTEL_METRIC_EXPORT_INTERVAL", "OTEL_METRIC_EXPORT_TIMEOUT"):
        for text in ("0", "-5", "1.5", "soon"):
            with raises_config_error(name, "milliseconds"):
                MetricReaderConfig.from_env({name: text})
    with raises_config_error("export_interval"):
        MetricReaderConfig.from_env({}, export_interval=0)
    with raises_config_error("temporality_preference"):
        MetricReaderConfig.from_env({}, temporality_preference="sum")  # type: ignore[arg-type]
    with raises_config_error("temporality_preference"):
        MetricReaderConfig(temporality_preference="x")  # type: ignore[arg-type]


def test_metric_reader_explicit_wins() -> None:
    config = MetricReaderConfig.from_env(
        {"OTEL_METRIC_EXPORT_INTERVAL": "bad", "OTEL_EXPORTER_OTLP_METRICS_TEMPORALITY_PREFERENCE": "bad"},
        export_interval=5,
        export_timeout=1.5,
        temporality_preference="lowmemory",
    )
    assert config == MetricReaderConfig(export_interval=5.0, export_timeout=1.5, temporality_preference="lowmemory")


# --------------------------------------------------------------------------------------------- property


ENV_TEXT = st.one_of(
    st.text(),
    st.text(alphabet=st.characters(codec="utf-8")),
    st.from_regex(re.compile(r"[a-zA-Z0-9:/.@%\[\]=, _\-?#]{0,40}"), fullmatch=True),
    st.sampled_from(["http://h:4318", "h:4317", "[::1]:1", "http://[::1]", "a=b,c=d", "1000"]),
)


@settings(max_examples=300, deadline=None)
@given(
    headers=ENV_TEXT,
    endpoint=ENV_TEXT,
    timeout=ENV_TEXT,
    signal_endpoint=ENV_TEXT,
    protocol=st.sampled_from(["grpc", "http/protobuf", "http/json"]),
    insecure=st.sampled_from(["true", "false", ""]),
)
def test_from_env_never_raises_anything_but_configuration_error(
    headers: str, endpoint: str, timeout: str, signal_endpoint: str, protocol: str, insecure: str
) -> None:
    environ = {
        "OTEL_EXPORTER_OTLP_PROTOCOL": protocol,
        "OTEL_EXPORTER_OTLP_INSECURE": insecure,
        "OTEL_EXPORTER_OTLP_HEADERS": headers,
        "OTEL_EXPORTER_OTLP_ENDPOINT": endpoint,
        "OTEL_EXPORTER_OTLP_TIMEOUT": timeout,
        "OTEL_EXPORTER_OTLP_LOGS_ENDPOINT": signal_endpoint,
    }
    try:
        config = ExporterConfig.from_env(environ)
    except ConfigurationError as exc:
        message = str(exc)
        assert message.startswith(("OTEL_EXPORTER_OTLP_", "the default endpoint")), message
        return
    for sc in (config.traces, config.metrics, config.logs):
        assert sc.endpoint.startswith(("http://", "https://"))
        assert 1 <= sc.port <= 65535
        assert sc.host
        assert sc.timeout > 0
        repr(sc)


@settings(max_examples=200, deadline=None)
@given(
    key=st.text(min_size=1, max_size=20),
    value=st.text(max_size=20),
    password=st.text(max_size=10),
    protocol=st.sampled_from(["grpc", "http/protobuf"]),
)
def test_secrets_never_in_errors_or_repr(key: str, value: str, password: str, protocol: str) -> None:
    secret_value = f"{value}{CANARY}"
    environ = {
        "OTEL_EXPORTER_OTLP_PROTOCOL": protocol,
        "OTEL_EXPORTER_OTLP_HEADERS": f"{key}={secret_value}",
        "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": f"http://user:{CANARY}{password}@h:4318",
    }
    texts: list[str] = []
    try:
        config = ExporterConfig.from_env(environ)
    except ConfigurationError as exc:
        texts.append(str(exc))
    else:
        texts += [repr(config), str(config)]
    assert all(CANARY not in text for text in texts), texts


def test_grpc_header_values_must_be_printable_ascii() -> None:
    canary = "sécret-canary"
    with pytest.raises(ConfigurationError, match="OTEL_EXPORTER_OTLP_TRACES_HEADERS") as info:
        ExporterConfig.from_env(
            {"OTEL_EXPORTER_OTLP_PROTOCOL": "grpc", "OTEL_EXPORTER_OTLP_TRACES_HEADERS": f"x-k={canary}"}
        )
    assert canary not in str(info.value)
    with pytest.raises(ConfigurationError, match="headers: the value of header 2 is not printable ASCII") as info:
        ExporterConfig.from_env({}, protocol="grpc", headers={"a": "1", "x-k": "\u00e9"})
    assert "x-k" not in str(info.value)
    # HTTP allows it (latin-1 header values), and gRPC allows binary values under -bin names
    ExporterConfig.from_env({}, protocol="http/protobuf", headers={"x-k": "\u00e9"})
    ExporterConfig.from_env({}, protocol="grpc", headers={"x-k-bin": "\u00e9"})


# ------------------------------------------------------------------ secrets never echoed (issue 12 item 7)


SECRET_CONFIGS = [
    # a header written with ':' for '=': "Authorization: Basic <token>=" splits into the name
    # "Authorization: Basic <token>" and an empty value
    pytest.param(
        {"OTEL_EXPORTER_OTLP_HEADERS": f"Authorization: Basic {CANARY}="},
        "OTEL_EXPORTER_OTLP_HEADERS: entry 1 ",
        id="colon-header",
    ),
    pytest.param(
        {"OTEL_EXPORTER_OTLP_TRACES_HEADERS": f"x=1,Authorization: Bearer {CANARY}"},
        "_TRACES_HEADERS: entry 2 ",
        id="colon-no-equals",
    ),
    pytest.param({"OTEL_EXPORTER_OTLP_HEADERS": f"{CANARY} key=v"}, "entry 1 ", id="name-with-space"),
    pytest.param({"OTEL_EXPORTER_OTLP_HEADERS": f"api-key={CANARY}%0D%0A"}, "entry 1 ", id="crlf-value"),
    pytest.param(
        {"OTEL_EXPORTER_OTLP_ENDPOINT": f"{CANARY}:{CANARY}@collector:4318"},
        "unsupported URL scheme",
        id="http-schemeless-credentials",
    ),
    pytest.param(
        {"OTEL_EXPORTER_OTLP_ENDPOINT": f"{CANARY}:pw@collector:4317", "OTEL_EXPORTER_OTLP_PROTOCOL": "grpc"},
        "unsupported URL scheme",
        id="grpc-user-as-scheme",
    ),
    pytest.param(
        {"OTEL_EXPORTER_OTLP_ENDPOINT": f"http://user:{CANARY}@collector:4317", "OTEL_EXPORTER_OTLP_PROTOCOL": "grpc"},
        "user credentials",
        id="grpc-userinfo",
    ),
    pytest.param(
        {"OTEL_EXPORTER_OTLP_LOGS_ENDPOINT": f"http://u:{CANARY}@bad host/v1/logs"}, "whitespace", id="url-with-space"
    ),
    pytest.param({"AIOTLP_EXPORTER_OTLP_ENDPOINTS": f"http://a:4318,{CANARY}:pw@b:4318"}, "entry 2", id="list-entry"),
    pytest.param(
        {"OTEL_EXPORTER_OTLP_CLIENT_KEY": f"-----BEGIN PRIVATE KEY-----\n{CANARY}\n-----END PRIVATE KEY-----"},
        "not shown",
        id="pasted-key",
    ),
]


@pytest.mark.parametrize(("environ", "fragment"), SECRET_CONFIGS)
def test_no_error_or_warning_echoes_a_secret(
    environ: dict[str, str], fragment: str, caplog: pytest.LogCaptureFixture
) -> None:
    """Strict: the error names the variable (and the entry), never its text. Lenient (the SDK's mode): the
    warnings neither, and neither does the repr of what was built."""
    with raises_config_error(fragment) as check:
        ExporterConfig.from_env(environ)
    assert CANARY not in repr(check.error if check.error is not None else "")
    if "ENDPOINT" in " ".join(environ):
        return  # an endpoint is refused in both modes
    with caplog.at_level(logging.DEBUG):
        config = ExporterConfig.from_env(environ, on_invalid="warn")
    assert caplog.records, "a warning names the variable"
    assert CANARY not in caplog.text
    assert CANARY not in repr(config)


def test_the_colon_header_message_says_what_to_write() -> None:
    with raises_config_error(
        "OTEL_EXPORTER_OTLP_HEADERS: entry 1 is not a valid name=value pair",
        "not a valid HTTP token",
        "'Name=value'",
        absent=(CANARY, "Authorization", "Basic"),
    ):
        Headers.parse(f"Authorization: Basic {CANARY}=")


# ------------------------------------------------------------- on_invalid="warn" and signals= (item 8)


def test_lenient_mode_replaces_what_the_official_exporters_replace(
    pem_files: dict[str, str], caplog: pytest.LogCaptureFixture, tmp_path: Path
) -> None:
    missing = str(tmp_path / "missing.pem")
    environ = {
        "OTEL_EXPORTER_OTLP_TRACES_TIMEOUT": "soon",
        "OTEL_EXPORTER_OTLP_COMPRESSION": "brotli",
        "OTEL_EXPORTER_OTLP_CERTIFICATE": missing,
        "OTEL_EXPORTER_OTLP_CLIENT_KEY": pem_files["key"],  # without its certificate
        "OTEL_EXPORTER_OTLP_HEADERS": f"good=1,Authorization: Basic {CANARY}=,also=2",
    }
    for name, value in environ.items():  # each one alone stops the strict reader
        with raises_config_error(name):
            ExporterConfig.from_env({name: value})
    with caplog.at_level(logging.WARNING, logger="aiotlp.config"):
        traces = ExporterConfig.from_env(environ, signals=["traces"], on_invalid="warn").traces
    assert traces.timeout == 10.0
    assert traces.compression == "none"
    assert traces.certificate_file is None
    assert traces.client_key_file is None and traces.client_certificate_file is None
    assert dict(traces.headers) == {"good": "1", "also": "2"}
    messages = [record.getMessage() for record in caplog.records]
    assert messages == [
        "OTEL_EXPORTER_OTLP_HEADERS: entry 2 is not a valid name=value pair: the name is not a valid HTTP token "
        "(RFC 7230) (expected name=value pairs separated by ','; write 'Name: value' as 'Name=value'); the entry is "
        "left out",
        "OTEL_EXPORTER_OTLP_TRACES_TIMEOUT: must be a positive integer number of milliseconds; using the default, "
        "10000 ms",
        "OTEL_EXPORTER_OTLP_COMPRESSION: must be one of 'gzip', 'deflate', 'zstd', 'none'; using the default, no "
        "compression",
        f"OTEL_EXPORTER_OTLP_CERTIFICATE: cannot read file {missing!r}: No such file or directory; using the "
        "default, the system's CAs",
        "OTEL_EXPORTER_OTLP_CLIENT_KEY is set without a client certificate (client_certificate_file or "
        "OTEL_EXPORTER_OTLP_[TRACES_]CLIENT_CERTIFICATE): mTLS needs both; using no client certificate (no mTLS)",
    ]
    assert CANARY not in caplog.text


def test_lenient_mode_still_refuses_endpoints_protocols_and_arguments() -> None:
    for environ in ({"OTEL_EXPORTER_OTLP_ENDPOINT": "collector:4318"}, {"OTEL_EXPORTER_OTLP_PROTOCOL": "thrift"}):
        with raises_config_error(next(iter(environ))):
            ExporterConfig.from_env(environ, on_invalid="warn")
    with raises_config_error("timeout"):
        ExporterConfig.from_env({}, timeout=-1, on_invalid="warn")
    with raises_config_error("client_key_file is set without a client certificate"):
        ExporterConfig.from_env({}, client_key_file=__file__, on_invalid="warn")
    with raises_config_error("on_invalid"):
        ExporterConfig.from_env({}, on_invalid="ignore")  # type: ignore[arg-type]


def test_grpc_metadata_that_is_not_ascii_is_left_out_leniently(caplog: pytest.LogCaptureFixture) -> None:
    environ = {"OTEL_EXPORTER_OTLP_PROTOCOL": "grpc", "OTEL_EXPORTER_OTLP_HEADERS": f"a=1,x-k=\u00e9{CANARY}"}
    with raises_config_error("OTEL_EXPORTER_OTLP_HEADERS: the value of header 2 is not printable ASCII"):
        ExporterConfig.from_env(environ)
    with caplog.at_level(logging.WARNING, logger="aiotlp.config"):
        assert dict(ExporterConfig.from_env(environ, on_invalid="warn").logs.headers) == {"a": "1"}
    assert "header 2 is not printable ASCII, which gRPC metadata requires; the header is left out" in caplog.text
    assert CANARY not in caplog.text


def test_signals_reads_only_the_variables_of_those_signals(caplog: pytest.LogCaptureFixture) -> None:
    """Another signal's bad variables are never read: no error, no warning; the others get the defaults."""
    environ = {
        "OTEL_EXPORTER_OTLP_LOGS_HEADERS": f"Authorization: Basic {CANARY}=",
        "OTEL_EXPORTER_OTLP_METRICS_TIMEOUT": "1.5",
        "OTEL_EXPORTER_OTLP_METRICS_CERTIFICATE": "/nonexistent/ca.pem",
        "OTEL_EXPORTER_OTLP_LOGS_ENDPOINT": "not a url",
        "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL": "grpc",
        "OTEL_EXPORTER_OTLP_TRACES_TIMEOUT": "2500",
    }
    with caplog.at_level(logging.DEBUG):
        for on_invalid in ("raise", "warn"):
            config = ExporterConfig.from_env(environ, signals=[Signal.TRACES], on_invalid=on_invalid)  # type: ignore[arg-type]
            assert (config.traces.protocol, config.traces.timeout) == ("grpc", 2.5)
            assert config.metrics == SignalConfig(
                signal=Signal.METRICS, protocol="grpc", endpoint="http://localhost:4317"
            )
            assert config.logs.endpoint == "http://localhost:4317" and not config.logs.headers
    assert not caplog.records
    with raises_config_error("OTEL_EXPORTER_OTLP_METRICS_TIMEOUT"):
        ExporterConfig.from_env(environ, signals=["metrics"])
    assert ExporterConfig.from_env({}, signals=["logs"]).traces.endpoint == "http://localhost:4318/v1/traces"
    for bad in ("traces", [], ["spans"], 3):
        with raises_config_error("signals"):
            ExporterConfig.from_env({}, signals=bad)  # type: ignore[arg-type]


# -------------------------------------------------------------------- timeouts are milliseconds (issue 14)


@pytest.fixture
def unit_warnings(monkeypatch: pytest.MonkeyPatch) -> None:
    """The seconds-like warning is once per variable per process: start each test afresh."""
    import aiotlp.config._values

    monkeypatch.setattr(aiotlp.config._values, "_unit_warned", set())


@pytest.mark.usefixtures("unit_warnings")
def test_a_timeout_that_looks_like_seconds_is_kept_and_warned_about_once(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="aiotlp.config"):
        for _ in range(3):
            config = ExporterConfig.from_env(
                {"OTEL_EXPORTER_OTLP_TIMEOUT": "10", "OTEL_EXPORTER_OTLP_LOGS_TIMEOUT": "5"}
            )
            assert (config.traces.timeout, config.metrics.timeout, config.logs.timeout) == (0.01, 0.01, 0.005)
        assert ExporterConfig.from_env({"OTEL_EXPORTER_OTLP_TIMEOUT": "100"}).traces.timeout == 0.1
    assert [record.getMessage() for record in caplog.records] == [
        "OTEL_EXPORTER_OTLP_TIMEOUT=10: the unit is milliseconds (the OTLP specification's), so exports time out "
        "after 10 ms; the official Python exporters read seconds: for 10 s write 10000",
        "OTEL_EXPORTER_OTLP_LOGS_TIMEOUT=5: the unit is milliseconds (the OTLP specification's), so exports time "
        "out after 5 ms; the official Python exporters read seconds: for 5 s write 5000",
    ]


@pytest.mark.parametrize(
    ("text", "hint"), [("2.5", "2.5 s is 2500"), ("0.25", "0.25 s is 250"), ("1e1", "10 s is 10000")]
)
def test_a_fractional_timeout_is_refused_with_the_unit(text: str, hint: str, caplog: pytest.LogCaptureFixture) -> None:
    for name in ("OTEL_EXPORTER_OTLP_TIMEOUT", "OTEL_EXPORTER_OTLP_METRICS_TIMEOUT"):
        with raises_config_error(name, "milliseconds", "not seconds as in the official Python exporters", hint):
            ExporterConfig.from_env({name: text})
    with caplog.at_level(logging.WARNING, logger="aiotlp.config"):
        config = ExporterConfig.from_env({"OTEL_EXPORTER_OTLP_TIMEOUT": text}, on_invalid="warn")
    assert config.traces.timeout == config.logs.timeout == 10.0
    assert caplog.text.count(f"{hint}); using the default, 10000 ms") == 3  # one per signal


def test_batch_and_reader_milliseconds_are_not_warned_about(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="aiotlp.config"):
        assert BatchConfig.from_env("span", {"OTEL_BSP_SCHEDULE_DELAY": "10"}).schedule_delay == 0.01
    assert not caplog.records


# ------------------------------------------------------------------- histogram aggregation (issue 12 item 9)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (None, "explicit_bucket_histogram"),
        ("explicit_bucket_histogram", "explicit_bucket_histogram"),
        ("base2_exponential_bucket_histogram", "base2_exponential_bucket_histogram"),
        (" BASE2_Exponential_Bucket_Histogram ", "base2_exponential_bucket_histogram"),
    ],
)
def test_default_histogram_aggregation(text: str | None, expected: str) -> None:
    environ = {} if text is None else {"OTEL_EXPORTER_OTLP_METRICS_DEFAULT_HISTOGRAM_AGGREGATION": text}
    assert MetricReaderConfig.from_env(environ).default_histogram_aggregation == expected
    assert metric_preferences_from_env(environ) == ("cumulative", expected)


def test_unknown_metric_preferences(caplog: pytest.LogCaptureFixture) -> None:
    var = "OTEL_EXPORTER_OTLP_METRICS_DEFAULT_HISTOGRAM_AGGREGATION"
    environ = {var: "exponential", "OTEL_EXPORTER_OTLP_METRICS_TEMPORALITY_PREFERENCE": "often"}
    with raises_config_error("OTEL_EXPORTER_OTLP_METRICS_TEMPORALITY_PREFERENCE"):
        metric_preferences_from_env(environ)
    with raises_config_error(var, "'explicit_bucket_histogram', 'base2_exponential_bucket_histogram'"):
        MetricReaderConfig.from_env({var: "exponential"})
    with caplog.at_level(logging.WARNING, logger="aiotlp.config"):
        assert metric_preferences_from_env(environ, on_invalid="warn") == ("cumulative", "explicit_bucket_histogram")
    assert f"{var}: must be one of" in caplog.text
    assert "using the default, explicit_bucket_histogram" in caplog.text
    assert "using the default, cumulative" in caplog.text
    # explicit arguments win and are checked strictly
    assert metric_preferences_from_env(
        environ, temporality_preference="delta", default_histogram_aggregation=("base2_exponential_bucket_histogram")
    ) == ("delta", "base2_exponential_bucket_histogram")
    with raises_config_error("default_histogram_aggregation"):
        MetricReaderConfig(default_histogram_aggregation="exponential")  # type: ignore[arg-type]
