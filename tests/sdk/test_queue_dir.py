"""queue_dir= / AIOTLP_QUEUE_DIR on aiotlp.sdk's exporters and processors: a collector outage loses nothing
that a flush acknowledged; the next run sends it.

Private, on purpose: the bridge (``aiotlp.sdk._bridge.get_bridge``), whose loop the processors must use with
the disk queue.
"""

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
        provider2, processor2, _ = pipeline(collector.http_endpoint, queue_dir=tmp_path)
        # no new span: the processor's start opens the queue, which sends the backlog
        provider2.get_tracer("tests").start_span("nothing yet")  # not ended: nothing to queue
        processor2.force_flush(10_000)  # starts the processor (as a first span's end would)
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
    assert exporter.statistics().queue_dir == os.path.join(tmp_path, "traces")
    exporter.shutdown()


def test_a_foreign_exporter_is_used_as_it_is_with_one_warning(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    for how in ("argument", "variable"):
        caplog.clear()
        foreign = InMemorySpanExporter()
        if how == "variable":
            monkeypatch.setenv("AIOTLP_QUEUE_DIR", str(tmp_path))
            processor = BatchSpanProcessor(foreign)
        else:
            processor = BatchSpanProcessor(foreign, queue_dir=tmp_path)
        warnings = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
        assert len(warnings) == 1, warnings
        assert "needs an aiotlp.sdk exporter: InMemorySpanExporter is used as it is" in warnings[0]
        provider = TracerProvider(resource=RESOURCE, shutdown_on_exit=False)
        provider.add_span_processor(processor)
        with provider.get_tracer("tests").start_as_current_span(how):
            pass
        assert provider.force_flush(10_000) is True
        assert [s.name for s in foreign.get_finished_spans()] == [how]
        assert not os.path.exists(tmp_path / "traces")
        provider.shutdown()


@pytest.mark.parametrize("how", ["variable", "processor-argument", "both"])
def test_the_sdk_pair_works_with_the_disk_queue(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, how: str) -> None:
    """AIOTLP_QUEUE_DIR, queue_dir= on the processor, or both (the argument wins): the pair builds, queues on disk
    during an outage, and the next process (here: the next pipeline) sends it."""
    directory = tmp_path / "argument"
    if how != "processor-argument":
        monkeypatch.setenv("AIOTLP_QUEUE_DIR", str(tmp_path / "variable"))
    if how == "variable":
        directory = tmp_path / "variable"
    kwargs = {} if how == "variable" else {"queue_dir": directory}
    provider, processor, exporter = pipeline(f"http://127.0.0.1:{free_port()}", **kwargs)
    assert exporter.statistics().queue_dir == os.path.join(directory, "traces")
    tracer = provider.get_tracer("tests")
    for i in range(20):
        with tracer.start_as_current_span(f"{how}-{i}"):
            pass
    assert provider.force_flush(10_000) is True
    assert os.listdir(directory / "traces")
    provider.shutdown()
    stats = processor.statistics()  # on disk, not delivered: persisted, not exported
    assert (stats.exported, stats.persisted) == (0, 20) and stats.balanced

    with CollectorThread() as collector:
        provider2, _, _ = pipeline(collector.http_endpoint, **kwargs)
        assert collector.wait_for_spans(20)  # no span ended: the exporter opened its queue when it was made
        assert sorted(s.name for s in collector.spans()) == sorted(f"{how}-{i}" for i in range(20))
        provider2.shutdown()


def test_processor_and_exporter_queue_dirs_that_differ_are_refused(tmp_path: Path) -> None:
    exporter = SpanExporter(f"http://127.0.0.1:{free_port()}/v1/traces", queue_dir=tmp_path / "a")
    with pytest.raises(ConfigurationError, match="given to both the processor and its exporter"):
        BatchSpanProcessor(exporter, queue_dir=tmp_path / "b")
    BatchSpanProcessor(exporter, queue_dir=tmp_path / "a")  # the same directory: fine
    exporter.shutdown()


def test_an_exporter_level_queue_is_replayed_when_the_exporter_is_made(tmp_path: Path) -> None:
    """An aiotlp exporter with queue_dir= under the official BatchSpanProcessor: the backlog of an earlier run is
    sent when the exporter is created, without any new span."""
    from opentelemetry.sdk.trace.export import BatchSpanProcessor as OfficialBatchSpanProcessor

    def official(endpoint: str) -> tuple[TracerProvider, SpanExporter]:
        exporter = SpanExporter(
            endpoint + "/v1/traces", timeout=2, retry=RetryPolicy(max_attempts=1), queue_dir=tmp_path
        )
        provider = TracerProvider(resource=RESOURCE, shutdown_on_exit=False)
        provider.add_span_processor(OfficialBatchSpanProcessor(exporter))
        return provider, exporter

    provider, _ = official(f"http://127.0.0.1:{free_port()}")
    tracer = provider.get_tracer("tests")
    for i in range(50):
        with tracer.start_as_current_span(f"backlog-{i}"):
            pass
    assert provider.force_flush(10_000) is True
    provider.shutdown()

    with CollectorThread() as collector:
        provider2, _ = official(collector.http_endpoint)
        assert collector.wait_for_spans(50)
        assert sorted(s.name for s in collector.spans()) == sorted(f"backlog-{i}" for i in range(50))
        provider2.shutdown()


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
