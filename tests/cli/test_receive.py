"""`aiotlp receive` in one process and `aiotlp demo` pointed at it in another, as the README tells a user."""

from __future__ import annotations

import json
import re
import signal
import socket
from pathlib import Path

import pytest
from tests.cli._run import Background, assert_one_line_error, run
from tests.cli.test_demo import summary_counts

from aiotlp.cli import main

pytestmark = pytest.mark.allow_slow_callbacks  # asyncio subprocesses: see tests.cli._run.Background


@pytest.mark.parametrize("protocol", ["http/protobuf", "grpc"])
async def test_receive_shows_what_the_demo_sends_and_records_it(protocol: str, tmp_path: Path) -> None:
    jsonl = tmp_path / "requests.jsonl"
    receiver = await Background.start("receive", "--grpc-port", "0", "--http-port", "0", "--jsonl", str(jsonl))
    try:
        grpc_port, http_port = await receiver.ports()
        port = grpc_port if protocol == "grpc" else http_port
        env = {"OTEL_EXPORTER_OTLP_ENDPOINT": f"http://127.0.0.1:{port}", "OTEL_EXPORTER_OTLP_PROTOCOL": protocol}
        code, out, err = await run("--plain", "demo", "--requests", "40", "--duration", "0.3", env=env)
        assert code == 0, out + err
        counts = summary_counts(out)
        spans, logs, points = (counts[k][1] for k in ("spans", "log records", "metric data points"))
        # every accepted request is printed: wait for the demo's last metric snapshot to show
        await receiver.wait_for(lambda text: text.count("← ") >= 3 and "← metrics" in text)
        code, err = await receiver.stop(signal.SIGINT)
    finally:
        await receiver.kill()
    text = receiver.text
    assert code == 0, text + err
    assert "Traceback" not in err
    # readable telemetry: trace trees with durations, log lines with severity, a metric table
    assert re.search(r"trace [0-9a-f]{32}\s+aiotlp-demo\s+\d+ spans", text), text
    assert re.search(r"└── load_order\s+[\d.]+ ms\s+internal", text) or re.search(r"load_order\s+[\d.]+ ms", text)
    assert re.search(r"\d\d:\d\d:\d\d\.\d{3} aiotlp-demo INFO\s+GET /\S+ -> 200 .*trace=[0-9a-f]{16}", text), text
    assert re.search(r"http\.server\.requests\W+sum\W+\{request\}", text), text
    assert "via gRPC" in text if protocol == "grpc" else "via HTTP from 127.0.0.1:" in text
    # the summary at exit counts exactly what the demo says was accepted
    stopped = re.search(r"stopped after (\d+) requests: (\d+) spans, (\d+) log records, (\d+) metric data points", text)
    assert stopped, text
    requests, *received = (int(g) for g in stopped.groups())
    assert received == [spans, logs, points]
    # --jsonl: one OTLP/JSON request per line, the same items again
    lines = [json.loads(line) for line in jsonl.read_text(encoding="utf-8").splitlines()]
    assert len(lines) == requests
    recorded_spans = [
        s for line in lines for rs in line.get("resourceSpans", []) for ss in rs["scopeSpans"] for s in ss["spans"]
    ]
    recorded_logs = [
        r for line in lines for rl in line.get("resourceLogs", []) for sl in rl["scopeLogs"] for r in sl["logRecords"]
    ]
    assert len(recorded_spans) == spans and len(recorded_logs) == logs
    assert all(len(s["traceId"]) == 32 and len(s["spanId"]) == 16 for s in recorded_spans)  # hex ids
    span_ids = {(s["traceId"], s["spanId"]) for s in recorded_spans}
    assert all((r["traceId"], r["spanId"]) in span_ids for r in recorded_logs)  # logs correlated with spans


async def test_receive_stops_cleanly_on_sigterm_with_nothing_received() -> None:
    receiver = await Background.start("--plain", "receive", "--grpc-port", "0", "--http-port", "0")
    try:
        await receiver.ports()
        code, err = await receiver.stop(signal.SIGTERM)
    finally:
        await receiver.kill()
    assert code == 0, err
    assert "stopped after 0 requests" in receiver.text
    assert err == ""


async def test_receive_shows_refused_requests() -> None:
    """A request the receiver cannot read is shown as refused, and the next one still arrives."""
    import aiohttp

    receiver = await Background.start("--plain", "receive", "--grpc-port", "0", "--http-port", "0")
    try:
        _, http_port = await receiver.ports()
        async with aiohttp.ClientSession() as session:
            url = f"http://127.0.0.1:{http_port}/v1/traces"
            async with session.post(url, data=b"{", headers={"Content-Type": "application/json"}) as response:
                assert response.status == 400
            async with session.post(f"http://127.0.0.1:{http_port}/v1/nope", data=b"") as response:
                assert response.status == 404
        text = await receiver.wait_for(lambda t: t.count("✗ refused") == 2)
        code, _err = await receiver.stop(signal.SIGINT)
    finally:
        await receiver.kill()
    assert code == 0
    assert "✗ refused http /v1/traces: 400" in text
    assert "✗ refused http /v1/nope: 404" in text
    assert "2 refused" in receiver.text


async def test_receive_on_a_busy_port() -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        code, _, err = await run("receive", "--grpc-port", "0", "--http-port", str(port))
    assert_one_line_error(code, err, "cannot listen on 127.0.0.1", str(port), "--http-port")


def test_receive_bad_options(capsys: pytest.CaptureFixture[str]) -> None:
    """Through the same main(), in this process: both fail before anything listens."""
    assert_one_line_error(main(["receive", "--grpc-port", "70000"]), capsys.readouterr().err, "--grpc-port must be")
    code = main(["receive", "--grpc-port", "0", "--http-port", "0", "--jsonl", "/nonexistent/dir/x.jsonl"])
    assert_one_line_error(code, capsys.readouterr().err, "--jsonl: cannot write", "No such file or directory")
