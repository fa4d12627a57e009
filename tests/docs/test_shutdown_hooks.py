"""The gunicorn `worker_exit` hook of docs/sdk.md sends what is queued in a worker that then ends without the
at-exit flush (`os._exit`, as a killed process would); without the hook, nothing arrives. (The FastAPI lifespan
example of the same section runs with the other examples.)"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys

import pytest
from tests.docs._blocks import ROOT, blocks

from aiotlp.testing import FakeCollector

WORKER = """
import os
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
import aiotlp.sdk

provider = TracerProvider()
provider.add_span_processor(aiotlp.sdk.BatchSpanProcessor(aiotlp.sdk.SpanExporter()))
trace.set_tracer_provider(provider)
with trace.get_tracer("worker").start_as_current_span("last request"):
    pass
"""


def hook_block() -> str:
    (block,) = [b for b in blocks() if b.page.name == "sdk.md" and "def worker_exit" in b.code]
    return block.code


@pytest.mark.parametrize("with_hook", [True, False])
async def test_the_worker_exit_hook_sends_what_is_queued(with_hook: bool) -> None:
    hook = hook_block() + "\nworker_exit(None, None)\n" if with_hook else ""
    script = WORKER + hook + "os._exit(0)  # as a killed worker: no at-exit flush\n"
    env = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}
    async with FakeCollector() as collector:
        env["OTEL_EXPORTER_OTLP_ENDPOINT"] = collector.http_endpoint
        done = await asyncio.to_thread(
            subprocess.run,
            [sys.executable, "-c", script],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert done.returncode == 0, done.stdout + done.stderr
        names = [span.name for span in collector.spans()]
    assert names == (["last request"] if with_hook else []), names
