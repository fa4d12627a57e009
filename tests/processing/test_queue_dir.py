"""BatchProcessor(queue_dir=...) / AIOTLP_QUEUE_DIR: the disk queue switched on for the standalone pipeline.

A flush acknowledges what is durably queued while the collector is down; a new pipeline on the same directory
delivers it once the collector is back, before any new export.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from tests.processing.helpers import make_spans

from aiotlp import BatchProcessor, ConfigurationError, DurableExporter, OTLPExporter, RetryPolicy
from aiotlp.model import Signal
from aiotlp.testing import FakeCollector, RecordingExporter, free_port


def exporter(endpoint: str) -> OTLPExporter:
    return OTLPExporter(endpoint=endpoint, protocol="http/protobuf", timeout=2, retry=RetryPolicy(max_attempts=1))


async def test_flushed_while_the_collector_is_down_then_delivered_by_the_next_run(tmp_path: Path) -> None:
    down = f"http://127.0.0.1:{free_port()}"
    first = BatchProcessor(exporter(down), Signal.TRACES, schedule_delay=60, queue_dir=tmp_path)
    assert isinstance(first.exporter, DurableExporter)
    assert first.exporter.directory == os.path.join(tmp_path, "traces")
    for span in make_spans(20):
        first.put_nowait(span)
    outcome = await first.force_flush(5)
    assert outcome.status.value == "success" and outcome.exported == 20  # durably queued: the collector is down
    await first.shutdown(0.5)
    assert first.exporter.statistics().delivered_items == 0

    async with FakeCollector() as collector:
        second = BatchProcessor(exporter(collector.http_endpoint), Signal.TRACES, schedule_delay=60, queue_dir=tmp_path)
        second.start()  # no new export: the backlog goes out on its own
        await collector.wait_for(lambda c: len(c.spans()) >= 20, timeout=10)
        await second.shutdown(5)
    assert sorted(s.name for s in collector.spans()) == ["work"] * 20


async def test_the_environment_variable_switches_it_on(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AIOTLP_QUEUE_DIR", str(tmp_path))
    processor = BatchProcessor(exporter(f"http://127.0.0.1:{free_port()}"), Signal.LOGS)
    assert isinstance(processor.exporter, DurableExporter)
    assert processor.exporter.directory == os.path.join(tmp_path, "logs")
    await processor.shutdown(0.5)


def test_queue_dir_needs_an_otlp_exporter(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match=r"needs an aiotlp OTLPExporter.*RecordingExporter"):
        BatchProcessor(RecordingExporter(), Signal.TRACES, queue_dir=tmp_path)
    with pytest.raises(ConfigurationError, match="queue_dir: must be a non-empty directory path"):
        BatchProcessor(RecordingExporter(), Signal.TRACES, queue_dir="  ")
