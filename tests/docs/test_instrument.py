"""The auto-instrumentation command of docs/sdk.md works as written: `opentelemetry-instrument python app.py`
with OTEL_TRACES_EXPORTER=aiotlp exports the FastAPI app's spans through aiotlp."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from pathlib import Path

import pytest
from tests.docs._blocks import blocks

from aiotlp.testing import FakeCollector

INSTRUMENT = Path(sys.executable).parent / "opentelemetry-instrument"


def app_block() -> str:
    (block,) = [b for b in blocks() if b.page.name == "sdk.md" and 'if __name__ == "__main__"' in b.code]
    return block.code


@pytest.mark.skipif(not INSTRUMENT.exists(), reason="opentelemetry-distro is not installed (the test extra has it)")
async def test_opentelemetry_instrument_exports_through_aiotlp(tmp_path: Path) -> None:
    (tmp_path / "app.py").write_text(app_block(), encoding="utf-8")
    env = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}
    async with FakeCollector() as collector:
        env.update(
            OTEL_SERVICE_NAME="shop",
            OTEL_TRACES_EXPORTER="aiotlp",
            OTEL_METRICS_EXPORTER="aiotlp",
            OTEL_LOGS_EXPORTER="none",
            OTEL_EXPORTER_OTLP_ENDPOINT=collector.grpc_endpoint,  # the distro defaults the protocol to grpc
        )
        done = await asyncio.to_thread(
            subprocess.run,
            [str(INSTRUMENT), sys.executable, "app.py"],
            cwd=tmp_path,
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert done.returncode == 0, done.stdout + done.stderr
        assert "200 {'item_id': 42}" in done.stdout
        spans = collector.spans()
        assert "GET /items/{item_id}" in {span.name for span in spans}, [s.name for s in spans]
        assert {r.transport for r in collector.received} == {"grpc"}
        assert {r.signal.value for r in collector.received} == {"traces", "metrics"}  # metrics: the http server's
        traces = [r for r in collector.received if r.signal.value == "traces"]
        resource = traces[0].message.resource_spans[0].resource
        assert {kv.key: kv.value.string_value for kv in resource.attributes}["service.name"] == "shop"
