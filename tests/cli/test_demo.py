"""`aiotlp demo`, run as the README runs it: a subprocess, embedded receiver, every protocol."""

from __future__ import annotations

import asyncio
import os
import sys

import pytest

from aiotlp.testing import FakeCollector


async def run(*args: str, env: dict[str, str] | None = None) -> tuple[int, str, str]:
    environ = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "aiotlp",
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env={**environ, **(env or {})},
    )
    out, err = await asyncio.wait_for(process.communicate(), 60)
    assert process.returncode is not None
    return process.returncode, out.decode(), err.decode()


@pytest.mark.parametrize("protocol", ["grpc", "http/protobuf", "http/json"])
async def test_demo_exports_to_the_embedded_receiver(protocol: str) -> None:
    code, out, err = await run("demo", "--requests", "60", "--protocol", protocol)
    assert code == 0, out + err
    assert "(embedded receiver)" in out
    assert "failed 0, dropped 0" in out
    assert "none twice" in out
    assert "└─ GET " in out  # the tree of one trace


async def test_demo_exports_to_the_configured_endpoint() -> None:
    async with FakeCollector() as collector:
        env = {"OTEL_EXPORTER_OTLP_ENDPOINT": collector.http_endpoint}
        code, out, err = await run("demo", "--requests", "20", env=env)
        assert code == 0, out + err
        assert "embedded" not in out
        assert len(collector.log_records()) == 20
        assert len({span.trace_id for span in collector.spans()}) == 20


async def test_demo_errors_are_one_line_with_a_non_zero_exit() -> None:
    code, _out, err = await run("demo", env={"OTEL_EXPORTER_OTLP_ENDPOINT": "ftp://nowhere"})
    assert code == 1
    assert err.startswith("aiotlp: error:") and "OTEL_EXPORTER_OTLP_ENDPOINT" in err
    assert "Traceback" not in err
    assert len(err.strip().splitlines()) == 1
