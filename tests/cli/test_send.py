"""`aiotlp send`: replays OTLP/JSON lines and protobuf files, over every protocol, with clear errors."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import time
from pathlib import Path

import pytest
from tests import samples
from tests.cli._run import ROOT, assert_one_line_error, clean_env, run

from aiotlp import OTLPExporter
from aiotlp.cli import main
from aiotlp.model import Signal
from aiotlp.testing import FakeCollector, Reply, free_port, message_to_otlp_json


async def record(tmp_path: Path) -> tuple[Path, list[object]]:
    """Export the every-field samples to a FakeCollector and write what it got as OTLP/JSON lines."""
    async with FakeCollector() as source:
        async with OTLPExporter(endpoint=source.http_endpoint) as exporter:
            assert (await exporter.export_traces(samples.spans())).ok
            assert (await exporter.export_logs(samples.logs())).ok
            assert (await exporter.export_metrics(samples.metrics())).ok
        messages = [request.message for request in source.received]
    path = tmp_path / "recorded.jsonl"
    path.write_text("".join(json.dumps(message_to_otlp_json(m)) + "\n" for m in messages), encoding="utf-8")
    return path, messages


@pytest.mark.parametrize("protocol", ["http/protobuf", "http/json", "grpc"])
async def test_send_replays_json_lines_exactly(protocol: str, tmp_path: Path) -> None:
    path, messages = await record(tmp_path)
    async with FakeCollector() as sink:
        endpoint = sink.grpc_endpoint if protocol == "grpc" else sink.http_endpoint
        code, out, err = await run("send", str(path), "--endpoint", endpoint, "--protocol", protocol)
        assert code == 0, out + err
        assert [r.message for r in sink.received] == messages  # every field survives the round trip
        assert {r.transport for r in sink.received} == {"grpc" if protocol == "grpc" else "http"}
    assert f"{len(messages)} requests" in out
    assert "sending" in out


async def test_send_protobuf_files_and_a_pretty_printed_json_file(tmp_path: Path) -> None:
    _, messages = await record(tmp_path)
    traces = tmp_path / "traces.pb"
    traces.write_bytes(messages[0].SerializeToString())
    other = tmp_path / "capture.bin"
    other.write_bytes(messages[1].SerializeToString())
    pretty = tmp_path / "metrics.json"
    pretty.write_text(json.dumps(message_to_otlp_json(messages[2]), indent=2), encoding="utf-8")
    async with FakeCollector() as sink:
        env = {"OTEL_EXPORTER_OTLP_ENDPOINT": sink.http_endpoint}
        code, out, err = await run("--plain", "send", str(traces), str(pretty), env=env)
        assert code == 0, out + err
        code, out, err = await run("--plain", "send", "--signal", "logs", str(other), env=env)
        assert code == 0, out + err
        assert [r.message for r in sink.received] == [messages[0], messages[2], messages[1]]
        assert [r.signal for r in sink.received] == [Signal.TRACES, Signal.METRICS, Signal.LOGS]


async def test_send_reports_rejections_and_retries_through_errors(tmp_path: Path) -> None:
    path, messages = await record(tmp_path)
    async with FakeCollector() as sink:
        # one retryable 503 (retried, then accepted), then a partial success rejecting 2 log records
        sink.script(Reply(http_status=503, retry_after="0"), signal=Signal.TRACES)
        sink.script(Reply(rejected=2, error_message="too old"), signal=Signal.LOGS)
        code, out, err = await run("--plain", "send", str(path), "--endpoint", sink.http_endpoint)
        assert len(sink.received) == len(messages) + 1
    assert code == 1, out + err
    assert "recorded.jsonl:2: 2 of" in out and "too old" in out
    assert "recorded.jsonl:1" not in out  # the 503 was retried and then accepted


async def test_send_to_a_dead_port_fails_fast_with_one_line_and_a_hint(tmp_path: Path) -> None:
    """With the default timeout (10 s per request, 3 requests): one line, at once, nothing sent."""
    path, _ = await record(tmp_path)
    endpoint = f"http://127.0.0.1:{free_port()}"
    started = time.monotonic()
    code, out, err = await run("--plain", "send", str(path), "--endpoint", endpoint)
    elapsed = time.monotonic() - started
    assert_one_line_error(code, err, f"cannot connect to {endpoint}/v1/", "connection refused", "aiotlp check")
    assert "sending" not in out
    assert elapsed < 15, elapsed  # a bound, not a benchmark: it took 48 s, with 24 errors


async def test_send_stops_at_the_first_request_that_gives_up(tmp_path: Path) -> None:
    """The collector answers 503 to everything: the first request is retried until its timeout, then the run stops
    with the cause once and the hint, instead of waiting out the same timeout for every request."""
    path, _ = await record(tmp_path)
    async with FakeCollector() as sink:
        sink.default = Reply(http_status=503, retry_after="0")
        code, out, err = await run("--plain", "send", str(path), "--endpoint", sink.http_endpoint, "--timeout", "0.5")
        assert {r.signal for r in sink.received} == {Signal.TRACES}  # only the first request was tried
    assert code == 1, out + err
    stops = [line for line in out.splitlines() if "stopped" in line]
    assert len(stops) == 1, out
    assert "recorded.jsonl:1:" in stops[0] and "2 requests not sent" in stops[0] and "aiotlp check" in stops[0]


async def test_send_errors_name_the_file_and_line(tmp_path: Path) -> None:
    """Run as a subprocess: a bad line after good ones, a missing file, a bad endpoint; nothing is sent."""
    path, _ = await record(tmp_path)
    bad_line = tmp_path / "bad.jsonl"
    bad_line.write_text(path.read_text(encoding="utf-8") + "{not json\n", encoding="utf-8")
    unreadable = tmp_path / "nope.jsonl"
    cases = [
        ((str(bad_line),), (f"{bad_line}:4: invalid JSON",)),
        ((str(path), str(unreadable)), ("cannot read", "nope.jsonl", "No such file or directory")),
        ((str(path), "--endpoint", "ftp://collector"), ("endpoint", "http://")),
    ]
    async with FakeCollector() as sink:
        env = {"OTEL_EXPORTER_OTLP_ENDPOINT": sink.http_endpoint}
        results = await asyncio.gather(*(run("send", *args, env=env) for args, _ in cases))
        assert sink.received == []  # nothing half-sent
    for (_, fragments), (code, _out, err) in zip(cases, results, strict=True):
        assert_one_line_error(code, err, *fragments)


def test_send_rejects_files_that_are_not_otlp(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """More bad files, through the same main() in this process (each fails before any connection)."""
    not_otlp = tmp_path / "other.jsonl"
    not_otlp.write_text('{"hello": 1}\n', encoding="utf-8")
    snake = tmp_path / "snake.jsonl"
    snake.write_text('{"resourceSpans": [{"scope_spans": []}]}\n', encoding="utf-8")
    array = tmp_path / "array.json"
    array.write_text("[1, 2]", encoding="utf-8")
    unknown = tmp_path / "capture.bin"
    unknown.write_bytes(b"\x0a\x02\x0a\x00")
    corrupt = tmp_path / "traces.pb"
    corrupt.write_bytes(b"\x0a\x05abc")
    empty = tmp_path / "empty.jsonl"
    empty.write_text("\n", encoding="utf-8")
    logs = tmp_path / "logs.jsonl"
    logs.write_text('{"resourceLogs": []}\n', encoding="utf-8")
    cases = [
        ([str(not_otlp)], (f"{not_otlp}:1: not an OTLP/JSON request",)),
        ([str(snake)], (f"{snake}:1", "camelCase")),
        ([str(array)], (f"{array}:1: expected an OTLP/JSON request object",)),
        ([str(unknown)], ("does not say which signal", "--signal")),
        ([str(corrupt)], (str(corrupt), "protobuf traces request")),
        ([str(empty)], ("the file is empty",)),
        ([str(logs), "--signal", "traces"], ("holds logs, but --signal is traces",)),
        ([str(tmp_path)], ("cannot read", "Is a directory")),
    ]
    for args, fragments in cases:
        code = main(["send", *args])
        err = capsys.readouterr().err
        assert_one_line_error(code, err, *fragments)


@pytest.mark.parametrize("command", [("send", "recorded.jsonl"), ("receive", "--grpc-port", "0", "--http-port", "0")])
def test_a_missing_receiver_extra_is_named_once_in_one_line(command: tuple[str, ...]) -> None:
    """opentelemetry-proto (the `google` namespace) made unimportable, as without `aiotlp[receiver]`."""
    code = (
        "import sys; sys.modules['google'] = None; sys.argv = ['aiotlp'] + sys.argv[1:]; "
        "from aiotlp.cli import main; raise SystemExit(main())"
    )
    done = subprocess.run(
        [sys.executable, "-c", code, *command], capture_output=True, env=clean_env(), cwd=ROOT, timeout=60, check=False
    )
    err = done.stderr.decode()
    assert_one_line_error(done.returncode, err, "opentelemetry-proto", f"`aiotlp {command[0]}`")
    assert err.count("pip install 'aiotlp[receiver]'") == 1, err
    assert "testing" not in err and "google" not in err
