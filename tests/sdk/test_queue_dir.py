"""queue_dir= / AIOTLP_QUEUE_DIR on aiotlp.sdk's exporters and processors: a collector outage loses nothing
that a flush acknowledged; the next run sends it."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from aiotlp import ConfigurationError, RetryPolicy
from aiotlp.sdk import BatchSpanProcessor, SpanExporter
from aiotlp.sdk._bridge import get_bridge
from aiotlp.testing import CollectorThread, free_port

RESOURCE = Resource({"service.name": "tests"})


def pipeline(endpoint: str, **kwargs: object) -> tuple[TracerProvider, BatchSpanProcessor, SpanExporter]:
    exporter = SpanExporter(endpoint + "/v1/traces", timeout=2, retry=RetryPolicy(max_attempts=1))
    processor = BatchSpanProcessor(exporter, schedule_delay_millis=60_000, **kwargs)
    provider = TracerProvider(resource=RESOURCE, shutdown_on_exit=False)
    provider.add_span_processor(processor)
    return provider, processor, exporter


def test_spans_flushed_during_an_outage_are_sent_by_the_next_run(tmp_path: Path) -> None:
    provider, processor, _ = pipeline(f"http://127.0.0.1:{free_port()}", queue_dir=tmp_path)
    tracer = provider.get_tracer("tests")
    for i in range(30):
        with tracer.start_as_current_span(f"queued-{i}"):
            pass
    assert provider.force_flush(10_000) is True  # the collector is down: durably queued is enough
    assert processor.loop is get_bridge().running_loop
    assert os.path.isdir(tmp_path / "traces")
    provider.shutdown()

    with CollectorThread() as collector:
        provider2, _, _ = pipeline(collector.http_endpoint, queue_dir=tmp_path)
        # no new span: the processor's start opens the queue, which sends the backlog
        provider2.get_tracer("tests").start_span("nothing yet")  # not ended: starts the processor only
        processor2 = provider2._active_span_processor._span_processors[0]  # type: ignore[attr-defined]
        processor2._start()
        assert collector.wait_for_spans(30)
        assert sorted(s.name for s in collector.spans()) == sorted(f"queued-{i}" for i in range(30))
        provider2.shutdown()


async def test_on_an_application_loop_the_queue_stays_on_the_bridge(tmp_path: Path) -> None:
    provider, processor, _ = pipeline(f"http://127.0.0.1:{free_port()}", queue_dir=tmp_path)
    with provider.get_tracer("tests").start_as_current_span("s"):
        pass
    assert processor.loop is get_bridge().running_loop  # not this loop: the queue must outlive it
    assert (await processor.aforce_flush(5_000)).status.value == "success"
    await processor.ashutdown()


def test_the_exporter_reads_aiotlp_queue_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AIOTLP_QUEUE_DIR", str(tmp_path))
    exporter = SpanExporter(f"http://127.0.0.1:{free_port()}/v1/traces", timeout=2)
    assert exporter._client.queue_dir == os.path.join(tmp_path, "traces")
    exporter.shutdown()


def test_queue_dir_needs_an_aiotlp_exporter(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match=r"queue_dir= needs an aiotlp\.sdk exporter.*InMemorySpanExporter"):
        BatchSpanProcessor(InMemorySpanExporter(), queue_dir=tmp_path)


def test_queue_dir_must_come_before_the_first_export(tmp_path: Path) -> None:
    with CollectorThread() as collector:
        exporter = SpanExporter(collector.http_endpoint + "/v1/traces")
        provider = TracerProvider(resource=RESOURCE, shutdown_on_exit=False)
        provider.add_span_processor(SimpleSpanProcessor(exporter))
        with provider.get_tracer("tests").start_as_current_span("first"):
            pass
        with pytest.raises(ConfigurationError, match="before the exporter is first used"):
            BatchSpanProcessor(exporter, queue_dir=tmp_path)
        provider.shutdown()
