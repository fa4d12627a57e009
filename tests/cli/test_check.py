"""`aiotlp check`: the configuration as the exporters read it, secrets redacted, and one test export per signal
whose failures are explained in plain words."""

from __future__ import annotations

import asyncio
import re
from pathlib import Path

import pytest
from tests.cli._run import assert_one_line_error, run

from aiotlp.cli import main
from aiotlp.durable import DurableQueue
from aiotlp.model import Signal
from aiotlp.testing import FakeCollector, Reply, free_port


async def test_check_prints_the_configuration_and_tests_every_endpoint() -> None:
    async with FakeCollector() as collector:
        env = {
            "OTEL_EXPORTER_OTLP_ENDPOINT": collector.http_endpoint,
            "OTEL_EXPORTER_OTLP_HEADERS": "authorization=Bearer%20s3cret-token,x-tenant=acme",
            "OTEL_EXPORTER_OTLP_METRICS_PROTOCOL": "http/json",
            "OTEL_EXPORTER_OTLP_LOGS_TIMEOUT": "2500",
            "OTEL_BSP_SCHEDULE_DELAY": "250",
        }
        grpc_env = {"OTEL_EXPORTER_OTLP_ENDPOINT": collector.grpc_endpoint, "OTEL_EXPORTER_OTLP_PROTOCOL": "grpc"}
        (code, out, err), (grpc_code, grpc_out, grpc_err) = await asyncio.gather(
            run("--plain", "check", env=env), run("check", "--signals", "traces", env=grpc_env)
        )
        assert code == 0, out + err
        assert grpc_code == 0, grpc_out + grpc_err
        assert sorted(r.signal.value for r in collector.received) == ["logs", "metrics", "traces", "traces"]
        assert {r.transport for r in collector.received} == {"http", "grpc"}
        assert [r.headers["authorization"] for r in collector.received if r.transport == "http"] == [
            "Bearer s3cret-token"
        ] * 3
    assert "s3cret" not in out + err and "acme" not in out
    assert "authorization: ***, x-tenant: ***" in out
    assert f"traces  http/protobuf -> {collector.http_endpoint}/v1/traces" in out
    assert f"metrics  http/json -> {collector.http_endpoint}/v1/metrics" in out
    assert "timeout  2.5s per export" in out  # only logs
    assert "every 0.25s or 512 items" in out
    assert "all 3 endpoints accepted a test export" in out
    assert "all 1 endpoints accepted" in grpc_out


async def test_check_explains_each_failure() -> None:
    """Six failures in two runs (one per signal), and HTTP spoken to a gRPC port in a third."""
    async with FakeCollector() as collector:
        collector.script(Reply(http_status=415, message="unsupported"), signal=Signal.METRICS)
        collector.script(Reply(http_status=401, message="who are you"), signal=Signal.LOGS)
        base = collector.http_endpoint
        statuses = {"OTEL_EXPORTER_OTLP_ENDPOINT": base, "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": f"{base}/wrong"}
        transports = {
            "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": f"http://127.0.0.1:{free_port()}/v1/traces",
            "OTEL_EXPORTER_OTLP_METRICS_ENDPOINT": base.replace("http://", "https://") + "/v1/metrics",
            "OTEL_EXPORTER_OTLP_LOGS_ENDPOINT": base,
            "OTEL_EXPORTER_OTLP_LOGS_PROTOCOL": "grpc",
            "OTEL_EXPORTER_OTLP_TIMEOUT": "3000",
        }
        http_on_grpc = {"OTEL_EXPORTER_OTLP_ENDPOINT": collector.grpc_endpoint}
        results = await asyncio.gather(
            run("--plain", "check", env=statuses),
            run("--plain", "check", env=transports),
            run("--plain", "check", "--signals", "traces", "--timeout", "3", env=http_on_grpc),
        )
    for code, out, err in results:
        assert code == 1, out + err
        assert err == ""  # a failed test export is a report, not a crash
    out = results[0][1]
    assert "✗ traces: HTTP 404" in out and "must include that path" in out
    assert "✗ metrics: HTTP 415" in out and "OTEL_EXPORTER_OTLP_PROTOCOL=http/json" in out
    assert "✗ logs: HTTP 401" in out and "OTEL_EXPORTER_OTLP_HEADERS" in out
    assert "3 of 3 endpoints failed" in out
    out = results[1][1]
    assert "✗ traces: connection refused: nothing listens on 127.0.0.1:" in out
    assert "✗ metrics: TLS error" in out and "use http://" in out
    assert "✗ logs:" in out and "does not speak grpc" in out
    assert "does not speak http/protobuf" in results[2][1]


async def test_check_configuration_errors_are_one_line() -> None:
    code, out, err = await run("check", env={"OTEL_EXPORTER_OTLP_TIMEOUT": "ten"})
    assert_one_line_error(code, err, "OTEL_EXPORTER_OTLP_TIMEOUT")
    assert out == ""


@pytest.mark.parametrize(
    ("variable", "value", "fragments"),
    [
        ("OTEL_EXPORTER_OTLP_ENDPOINT", "ftp://collector:4318", ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://")),
        ("OTEL_EXPORTER_OTLP_HEADERS", "novalue", ("OTEL_EXPORTER_OTLP_HEADERS",)),
        ("OTEL_BSP_MAX_QUEUE_SIZE", "-1", ("OTEL_BSP_MAX_QUEUE_SIZE",)),
        ("OTEL_EXPORTER_OTLP_LOGS_CERTIFICATE", "/nonexistent.pem", ("OTEL_EXPORTER_OTLP_LOGS_CERTIFICATE",)),
    ],
)
def test_check_names_the_bad_variable(
    variable: str,
    value: str,
    fragments: tuple[str, ...],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv(variable, value)
    assert_one_line_error(main(["check", "--no-export"]), capsys.readouterr().err, *fragments)


def test_check_redacts_url_credentials(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "http://user:hunter2@collector:4318")
    assert main(["--plain", "check", "--no-export"]) == 0
    out = capsys.readouterr().out
    assert "hunter2" not in out
    assert "http://***@collector:4318/v1/traces" in out


async def test_check_without_export_only_prints() -> None:
    code, out, err = await run("check", "--no-export", env={"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:1"})
    assert code == 0, out + err
    assert "http://127.0.0.1:1/v1/logs" in out
    assert "test export" not in out


CANARY = "s3cr3t-canary-cli"


@pytest.mark.parametrize(
    ("env", "fragments"),
    [
        (
            {"OTEL_EXPORTER_OTLP_HEADERS": f"x-tenant=acme,Authorization: Basic {CANARY}="},
            ("OTEL_EXPORTER_OTLP_HEADERS: entry 2 is not a valid name=value pair", "'Name=value'"),
        ),
        (
            {"OTEL_EXPORTER_OTLP_TRACES_HEADERS": f"authorization=Bearer {CANARY}%0D%0Ax-injected: 1"},
            ("OTEL_EXPORTER_OTLP_TRACES_HEADERS: entry 1", "CR, LF or NUL"),
        ),
        ({"OTEL_EXPORTER_OTLP_ENDPOINT": f"{CANARY}:{CANARY}@collector:4318"}, ("unsupported URL scheme",)),
        (
            {
                "OTEL_EXPORTER_OTLP_ENDPOINT": f"http://{CANARY}:{CANARY}@collector:4317",
                "OTEL_EXPORTER_OTLP_PROTOCOL": "grpc",
            },
            ("OTEL_EXPORTER_OTLP_ENDPOINT", "credentials"),
        ),
        (
            {"OTEL_EXPORTER_OTLP_CLIENT_KEY": f"-----BEGIN PRIVATE KEY-----\n{CANARY}\n-----END PRIVATE KEY-----"},
            ("OTEL_EXPORTER_OTLP_CLIENT_KEY", "not shown"),
        ),
        (
            {"OTEL_EXPORTER_OTLP_TIMEOUT": "2.5"},
            ("OTEL_EXPORTER_OTLP_TIMEOUT", "milliseconds", "2.5 s is 2500"),
        ),
    ],
    ids=["colon-header", "crlf-value", "schemeless-credentials", "grpc-credentials", "pasted-key", "seconds"],
)
async def test_check_never_prints_a_secret_of_a_bad_configuration(
    env: dict[str, str], fragments: tuple[str, ...]
) -> None:
    code, out, err = await run("--plain", "check", "--no-export", env=env)
    assert_one_line_error(code, err, *fragments)
    assert CANARY not in out + err and out == ""
    code, out, err = await run("--debug", "check", "--no-export", env=env)  # nor in the debug logs
    assert code == 1 and CANARY not in out + err


async def test_check_prints_deflate_histograms_and_a_seconds_like_timeout() -> None:
    env = {
        "OTEL_EXPORTER_OTLP_COMPRESSION": "deflate",
        "OTEL_EXPORTER_OTLP_TRACES_TIMEOUT": "10",
        "OTEL_EXPORTER_OTLP_METRICS_DEFAULT_HISTOGRAM_AGGREGATION": "base2_exponential_bucket_histogram",
    }
    code, out, err = await run("--plain", "check", "--no-export", env=env)
    assert code == 0, out + err
    assert "timeout  0.01s per export (under 100 ms: OTEL_EXPORTER_OTLP_TIMEOUT is in milliseconds" in out
    assert out.count("compression  deflate") == 3
    assert "histograms base2_exponential_bucket_histogram" in out


async def test_check_exports_deflate_over_http_and_grpc() -> None:
    async with FakeCollector() as collector:
        http = {"OTEL_EXPORTER_OTLP_ENDPOINT": collector.http_endpoint, "OTEL_EXPORTER_OTLP_COMPRESSION": "deflate"}
        grpc_env = {
            **http,
            "OTEL_EXPORTER_OTLP_ENDPOINT": collector.grpc_endpoint,
            "OTEL_EXPORTER_OTLP_PROTOCOL": "grpc",
        }
        results = await asyncio.gather(
            run("check", "--signals", "traces", env=http), run("check", "--signals", "traces", env=grpc_env)
        )
        for code, out, err in results:
            assert code == 0, out + err
        assert sorted((r.transport, r.compression) for r in collector.received) == [
            ("grpc", "deflate"),
            ("http", "deflate"),
        ]
        assert [span.name for span in collector.spans()] == ["aiotlp check"] * 2


async def test_check_probes_every_endpoint_of_a_fleet_on_its_own() -> None:
    """A fleet with one dead collector: failover would make the export succeed; check shows the dead one."""
    dead = f"http://127.0.0.1:{free_port()}"
    async with FakeCollector() as live:
        env = {"AIOTLP_EXPORTER_OTLP_ENDPOINTS": f"{live.http_endpoint},{dead}", "OTEL_EXPORTER_OTLP_TIMEOUT": "3000"}
        code, out, err = await run("--plain", "check", env=env)
        assert sorted(r.signal.value for r in live.received) == ["logs", "metrics", "traces"]
    assert code == 1, out + err
    assert "traces  http/protobuf -> 2 endpoints (a fleet)" in out
    for signal in ("traces", "metrics", "logs"):
        assert f"endpoint 1  {live.http_endpoint}/v1/{signal}  (from AIOTLP_EXPORTER_OTLP_ENDPOINTS" in out
        assert f"endpoint 2  {dead}/v1/{signal}  (from AIOTLP_EXPORTER_OTLP_ENDPOINTS" in out
        assert re.search(rf"{signal}\s+{re.escape(live.http_endpoint)}/v1/{signal}\s+ok", out), out
        assert re.search(rf"{signal}\s+{re.escape(dead)}/v1/{signal}\s+FAILED", out), out
        assert f"✗ {signal} {dead}/v1/{signal}: connection refused" in out
    assert "3 of 6 endpoints failed" in out


async def test_check_says_where_each_value_came_from(tmp_path: Path) -> None:
    env = {
        "OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4318",
        "OTEL_EXPORTER_OTLP_LOGS_ENDPOINT": "http://logs:4318/v1/logs",
        "OTEL_EXPORTER_OTLP_METRICS_PROTOCOL": "http/json",
        "OTEL_EXPORTER_OTLP_TRACES_HEADERS": "authorization=Bearer%20s3cret",
        "OTEL_EXPORTER_OTLP_COMPRESSION": "gzip",
        "OTEL_BLRP_MAX_QUEUE_SIZE": "4096",
        "OTEL_METRIC_EXPORT_INTERVAL": "5000",
        "AIOTLP_QUEUE_DIR": str(tmp_path / "queue"),
    }
    code, out, err = await run("--plain", "check", "--no-export", "--timeout", "2", env=env)
    assert code == 0, out + err
    assert "s3cret" not in out
    assert "endpoint  http://collector:4318/v1/traces  (from OTEL_EXPORTER_OTLP_ENDPOINT, /v1/traces appended)" in out
    assert "endpoint  http://logs:4318/v1/logs  (from OTEL_EXPORTER_OTLP_LOGS_ENDPOINT)" in out
    assert "protocol  http/json  (from OTEL_EXPORTER_OTLP_METRICS_PROTOCOL)" in out
    assert out.count("protocol  http/protobuf  (default)") == 2
    assert "headers  authorization: ***  (from OTEL_EXPORTER_OTLP_TRACES_HEADERS)" in out
    assert out.count("headers  none  (default)") == 2
    assert out.count("timeout  2s per export  (from --timeout)") == 3
    assert out.count("compression  gzip  (from OTEL_EXPORTER_OTLP_COMPRESSION)") == 3
    assert "export timeout 30s  (defaults)" in out  # spans
    assert "queue 4096, export timeout 30s  (from OTEL_BLRP_MAX_QUEUE_SIZE; the rest default)" in out
    assert "(from OTEL_METRIC_EXPORT_INTERVAL; the rest default)" in out
    assert f"disk queue  {tmp_path / 'queue'}  (from AIOTLP_QUEUE_DIR)" in out
    assert "does not exist yet: created (0700) when the queue first opens" in out
    assert not (tmp_path / "queue").exists()  # check creates nothing
    code, out, err = await run("--plain", "check", "--no-export")
    assert code == 0, out + err
    assert "timeout  10s per export  (default)" in out
    assert "disk queue  off  (default: AIOTLP_QUEUE_DIR is not set)" in out


async def test_check_shows_the_disk_queue_and_refuses_an_unusable_one(tmp_path: Path) -> None:
    with DurableQueue(tmp_path / "traces") as queue:
        queue.append(Signal.TRACES, 0, 3, bytes(50))
    code, out, err = await run("--plain", "check", "--no-export", env={"AIOTLP_QUEUE_DIR": str(tmp_path)})
    assert code == 0, out + err
    assert "directory  exists, ours, writable" in out
    assert re.search(r"traces  1 records \(3 spans\), \d+ bytes, oldest ≥ \d+s; lock free \(last held by pid", out), out
    assert "metrics  no queue yet" in out
    not_a_dir = tmp_path / "file"
    not_a_dir.write_text("x")
    code, out, err = await run("--plain", "check", "--no-export", env={"AIOTLP_QUEUE_DIR": str(not_a_dir)})
    assert code == 1, out + err
    assert f"{not_a_dir} is not a directory" in out


async def test_check_prints_zstd_and_its_binding() -> None:
    code, out, err = await run("--plain", "check", "--no-export", env={"OTEL_EXPORTER_OTLP_COMPRESSION": "zstd"})
    assert code == 0, out + err
    assert out.count("compression  zstd, by zstandard") == 3


async def test_check_exports_zstd_over_http_and_grpc_and_explains_a_collector_without_it() -> None:
    async with FakeCollector(grpc_server="h2") as collector:
        http = {"OTEL_EXPORTER_OTLP_ENDPOINT": collector.http_endpoint, "OTEL_EXPORTER_OTLP_COMPRESSION": "zstd"}
        grpc_env = {
            **http,
            "OTEL_EXPORTER_OTLP_ENDPOINT": collector.grpc_endpoint,
            "OTEL_EXPORTER_OTLP_PROTOCOL": "grpc",
        }
        results = await asyncio.gather(
            run("check", "--signals", "traces", env=http), run("check", "--signals", "traces", env=grpc_env)
        )
        for code, out, err in results:
            assert code == 0, out + err
        assert sorted((r.transport, r.compression) for r in collector.received) == [("grpc", "zstd"), ("http", "zstd")]
    async with FakeCollector() as grpcio_collector:  # grpc core refuses grpc-encoding zstd
        env = {
            "OTEL_EXPORTER_OTLP_ENDPOINT": grpcio_collector.grpc_endpoint,
            "OTEL_EXPORTER_OTLP_PROTOCOL": "grpc",
            "OTEL_EXPORTER_OTLP_COMPRESSION": "zstd",
        }
        code, out, err = await run("--plain", "check", "--signals", "traces", env=env)
        assert code == 1
        assert "the collector does not take zstd-compressed requests; use OTEL_EXPORTER_OTLP_COMPRESSION=gzip" in out
