"""Every ```python block in docs/*.md and README.md runs, against a FakeCollector.

Each block runs in a fresh namespace (as ``__main__``) in this process, with ``OTEL_EXPORTER_OTLP_ENDPOINT``
pointing at a FakeCollector served from a background thread; the standard local endpoints written in the
examples (``http://localhost:4318``, ``localhost:4317``) are replaced by the FakeCollector's. A block that exports
must reach it. Blocks that cannot run are marked ``<!-- not-run: reason -->`` right above them; the list of such
blocks is checked here so that it stays tiny and deliberate.
"""

from __future__ import annotations

import asyncio
import os
import threading
from collections.abc import Iterator
from typing import Any

import pytest
from tests.docs._blocks import Block, blocks

from aiotlp.testing import FakeCollector

ALL = blocks()
NOT_RUN_ALLOWED = 0  # raise deliberately, with the reason in the page


class ThreadedCollector:
    """A FakeCollector on its own event loop thread, so examples can call asyncio.run() in this one."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name="docs-collector", daemon=True)
        self.thread.start()
        self.collector: FakeCollector = self.call(self._start())

    async def _start(self) -> FakeCollector:
        collector = FakeCollector()
        await collector.start()
        return collector

    def call(self, coroutine: Any) -> Any:
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop).result(30)

    def received(self) -> int:
        async def count() -> int:
            return len(self.collector.received)

        return int(self.call(count()))

    def close(self) -> None:
        self.call(self.collector.stop())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)
        self.loop.close()


@pytest.fixture(scope="module")
def collector() -> Iterator[ThreadedCollector]:
    threaded = ThreadedCollector()
    try:
        yield threaded
    finally:
        threaded.close()


def test_the_docs_have_examples_and_few_unrun_ones() -> None:
    pages = {block.page.name for block in ALL}
    assert {"README.md", "quickstart.md", "api.md", "sdk.md", "configuration.md", "migration.md"} <= pages
    assert sum(block.not_run is not None for block in ALL) <= NOT_RUN_ALLOWED


def _expects_traffic(code: str) -> bool:
    return ("OTLPExporter(" in code and "FakeCollector" not in code) or any(
        marker in code for marker in ("instrument_app", "web.Application")
    )


@pytest.mark.parametrize("block", [b for b in ALL if b.not_run is None], ids=lambda b: b.id)
def test_example_runs(block: Block, collector: ThreadedCollector, monkeypatch: pytest.MonkeyPatch) -> None:
    fake = collector.collector
    for name in list(os.environ):
        if name.startswith("OTEL_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", fake.http_endpoint)
    grpc_host_port = fake.grpc_endpoint.removeprefix("http://")
    code = (
        block.code.replace("http://localhost:4318", fake.http_endpoint)
        .replace("http://localhost:4317", fake.grpc_endpoint)
        .replace("localhost:4317", grpc_host_port)
    )
    before = collector.received()
    exec(compile(code, block.id, "exec"), {"__name__": "__main__"})
    if _expects_traffic(code):
        assert collector.received() > before, f"{block.id} exported nothing to the collector"
