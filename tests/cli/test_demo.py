"""`aiotlp demo`, run as the README runs it: a subprocess, embedded receiver, every protocol, rich and plain."""

from __future__ import annotations

import asyncio
import re
import sys
import time

import pytest
from tests.cli._run import ROOT, assert_one_line_error, clean_env, run

from aiotlp.cli import main
from aiotlp.testing import FakeCollector, Reply, free_port


def summary_counts(out: str) -> dict[str, tuple[int, int]]:
    """``{signal: (sent, accepted)}`` from the demo's summary table (plain or rich)."""
    counts = {}
    for name in ("spans", "log records", "metric data points", "total"):
        found = re.search(rf"^\s*{name}\W+([\d,]+)\W+([\d,]+)", out, re.MULTILINE)
        assert found, (name, out)
        counts[name] = (int(found.group(1).replace(",", "")), int(found.group(2).replace(",", "")))
    return counts


@pytest.mark.parametrize("protocol", ["grpc", "http/json"])  # http/protobuf: the default, in the other tests
async def test_demo_exports_to_the_embedded_receiver(protocol: str) -> None:
    code, out, err = await run("demo", "--requests", "60", "--duration", "0.3", "--protocol", protocol)
    assert code == 0, out + err
    assert "(embedded receiver)" in out
    assert "failed 0, dropped 0" in out
    assert "none twice" in out
    counts = summary_counts(out)
    assert counts["log records"] == (60, 60)
    assert counts["total"][0] == counts["total"][1] > 60 * 2
    # the tree of one trace, nested three deep, with durations, and its correlated log record
    assert re.search(r"GET /\S+\s+[\d.]+ ms\s+server", out), out
    assert re.search(r"cache\.get\s+[\d.]+ ms\s+client", out), out
    assert "log of this trace" in out
    assert "http.server.request.duration" in out and "histogram" in out


async def test_demo_plain_output_without_rich() -> None:
    """Without the cli extra: rich made unimportable, the demo still works, in plain text."""
    code = (
        "import sys; sys.modules['rich'] = None; sys.argv = ['aiotlp'] + sys.argv[1:]; "
        "from aiotlp.cli import main; raise SystemExit(main())"
    )
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        code,
        "demo",
        "--requests",
        "20",
        "--duration",
        "0.2",
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=clean_env(),
        cwd=ROOT,
    )
    out_b, err_b = await asyncio.wait_for(process.communicate(), 60)
    out = out_b.decode()
    assert process.returncode == 0, out + err_b.decode()
    assert "━" not in out and "┃" not in out  # no rich table
    assert "  serving 20/20" in out
    assert "└─ GET " in out
    assert summary_counts(out)["log records"] == (20, 20)


@pytest.mark.parametrize("variable", ["OTEL_EXPORTER_OTLP_ENDPOINT", "AIOTLP_EXPORTER_OTLP_ENDPOINTS"])
async def test_demo_exports_to_the_configured_endpoint(variable: str) -> None:
    async with FakeCollector() as collector:
        env = {variable: collector.http_endpoint}
        code, out, err = await run("demo", "--requests", "20", "--duration", "0", env=env)
        assert code == 0, out + err
        assert "embedded" not in out
        assert "as sent" in out
        assert len(collector.log_records()) == 20
        assert len({span.trace_id for span in collector.spans()}) == 20
        counts = summary_counts(out)
        assert counts["spans"][1] == len(collector.spans())


async def test_demo_errors_are_one_line_with_a_non_zero_exit() -> None:
    code, _out, err = await run("demo", env={"OTEL_EXPORTER_OTLP_ENDPOINT": "ftp://nowhere"})
    assert_one_line_error(code, err, "OTEL_EXPORTER_OTLP_ENDPOINT")


def test_demo_bad_options(capsys: pytest.CaptureFixture[str]) -> None:
    assert_one_line_error(main(["demo", "--requests", "0"]), capsys.readouterr().err, "--requests")
    assert_one_line_error(main(["demo", "--duration", "100"]), capsys.readouterr().err, "--duration")


async def test_demo_against_a_dead_endpoint_names_the_refused_connection_at_once() -> None:
    endpoint = f"http://127.0.0.1:{free_port()}"
    started = time.monotonic()
    code, out, err = await run("--plain", "demo", "--requests", "5", env={"OTEL_EXPORTER_OTLP_ENDPOINT": endpoint})
    elapsed = time.monotonic() - started
    assert_one_line_error(code, err, f"cannot connect to {endpoint}/v1/traces", "connection refused", "aiotlp check")
    assert "deadline" not in err
    assert elapsed < 15, elapsed  # a bound, not a benchmark: the default timeouts would take over 10 s
    assert "summary" not in out


async def test_demo_reports_the_last_export_error_and_the_hint() -> None:
    """The collector answers, and refuses everything: the summary counts it, the cause is the collector's answer."""
    async with FakeCollector() as collector:
        collector.default = Reply(http_status=401, message="who are you")
        env = {"OTEL_EXPORTER_OTLP_ENDPOINT": collector.http_endpoint, "OTEL_EXPORTER_OTLP_TIMEOUT": "1000"}
        code, out, err = await run("--plain", "demo", "--requests", "5", "--duration", "0", env=env)
    assert code == 1, out + err
    counts = summary_counts(out)
    assert counts["total"][1] == 0 and counts["total"][0] > 0
    assert re.search(rf"last error: \w+ to {re.escape(collector.http_endpoint)}/v1/\w+: HTTP 401", out), out
    assert "OTEL_EXPORTER_OTLP_HEADERS" in out
    assert "hint: run `aiotlp check`" in out
    assert "deadline" not in out


def trace_ids(out: str) -> set[str]:
    return set(re.findall(r"^trace ([0-9a-f]{32})", out, re.MULTILINE))


async def test_demo_trace_ids_are_new_on_every_run_unless_seeded() -> None:
    args = ("--plain", "demo", "--requests", "1", "--duration", "0")  # one trace: the one shown
    runs = await asyncio.gather(run(*args), run(*args), run(*args, "--seed", "7"), run(*args, "--seed", "7"))
    for code, out, err in runs:
        assert code == 0, out + err
    first, second, seeded, seeded_again = (trace_ids(out) for _, out, _ in runs)
    assert len(first) == len(second) == len(seeded) == 1
    assert first != second
    assert seeded == seeded_again
