"""The disk queue with aiotlp's SDK pair, switched on as users do (issue 12, item 1).

``aiotlp.sdk.BatchSpanProcessor(aiotlp.sdk.SpanExporter(...))`` (and the log pair) with the disk queue turned
on by the processor's ``queue_dir=``, by ``AIOTLP_QUEUE_DIR``, or by both (the argument wins): the pipeline is
built, the items arrive at the collector, and the queue's files appear under ``<dir>/traces`` (``<dir>/logs``).
Reported: with the variable set, the construction raises ``ConfigurationError: ... needs an aiotlp OTLPExporter
..., got _FastAdapter``.

A foreign exporter (the SDK's in-memory exporter, the official OTLP exporter) under aiotlp's processor while the
variable is set: used as it is, with exactly one warning that the disk queue needs an aiotlp exporter. Reported:
the same ConfigurationError at construction.

In this process, with the collector in a thread (CollectorThread): the SDK calls here are synchronous.
"""

from __future__ import annotations

import logging
import os
import re
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from opentelemetry._logs import SeverityNumber
from opentelemetry.sdk._logs import LoggerProvider
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from tests.faults.summary import Figure
from tests.user_paths.helpers import fail_if, no_raise

import aiotlp.sdk
from aiotlp.testing import CollectorThread, FakeCollector

RESOURCE = Resource({"service.name": "user-paths"})
COUNT = 20


@pytest.fixture
def collector() -> Iterator[CollectorThread]:
    with CollectorThread() as collector:
        yield collector


def wait_until(collector: CollectorThread, predicate: Callable[[FakeCollector], bool], timeout: float) -> bool:
    try:
        collector.wait_for(predicate, timeout)
    except TimeoutError:
        return False
    return True


def received(collector: FakeCollector, signal: str) -> set[str]:
    if signal == "traces":
        return {span.name for span in collector.spans()}
    return {record.body.string_value for record in collector.log_records()}


class Pipeline:
    """A provider of ``signal`` with ``processor``; ``end()`` ends COUNT spans or emits COUNT log records."""

    def __init__(self, signal: str, processor: Any) -> None:
        self.signal = signal
        self.processor = processor
        if signal == "traces":
            self.provider: Any = TracerProvider(resource=RESOURCE, shutdown_on_exit=False)
            self.provider.add_span_processor(processor)
        else:
            self.provider = LoggerProvider(resource=RESOURCE, shutdown_on_exit=False)
            self.provider.add_log_record_processor(processor)

    def end(self) -> set[str]:
        if self.signal == "traces":
            tracer = self.provider.get_tracer("user-paths")
            for n in range(COUNT):
                with tracer.start_as_current_span(f"s{n}"):
                    pass
        else:
            logger = self.provider.get_logger("user-paths")
            for n in range(COUNT):
                logger.emit(body=f"s{n}", severity_number=SeverityNumber.INFO)
        return {f"s{n}" for n in range(COUNT)}


def aiotlp_pair(signal: str, endpoint: str, **kwargs: Any) -> Any:
    if signal == "traces":
        return aiotlp.sdk.BatchSpanProcessor(
            aiotlp.sdk.SpanExporter(endpoint + "/v1/traces"), schedule_delay_millis=60_000, **kwargs
        )
    return aiotlp.sdk.BatchLogRecordProcessor(
        aiotlp.sdk.LogExporter(endpoint + "/v1/logs"), schedule_delay_millis=60_000, **kwargs
    )


@pytest.mark.parametrize("signal", ["traces", "logs"])
@pytest.mark.parametrize("how", ["queue_dir=", "AIOTLP_QUEUE_DIR", "queue_dir=-while-AIOTLP_QUEUE_DIR-is-set"])
def test_the_sdk_pair_with_the_disk_queue(
    collector: CollectorThread, figure: Figure, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, how: str, signal: str
) -> None:
    argument, variable = tmp_path / "argument", tmp_path / "variable"
    if how != "queue_dir=":
        monkeypatch.setenv("AIOTLP_QUEUE_DIR", str(variable))
    where = variable if how == "AIOTLP_QUEUE_DIR" else argument  # the argument wins over the variable
    kwargs = {} if how == "AIOTLP_QUEUE_DIR" else {"queue_dir": argument}
    with no_raise("making the pipeline"):
        pipeline = Pipeline(signal, aiotlp_pair(signal, collector.http_endpoint, **kwargs))
    problems = []
    try:
        names = pipeline.end()
        if pipeline.provider.force_flush(10_000) is not True:
            problems.append("force_flush() returned False")
        if not wait_until(collector, lambda c: names <= received(c, signal), 10):
            problems.append(f"{len(received(collector.collector, signal))} of {COUNT} arrived within 10 s")
        if not ((where / signal).is_dir() and os.listdir(where / signal)):
            problems.append(f"no disk-queue files under {where / signal}")
    finally:
        pipeline.provider.shutdown()
    stats = pipeline.processor.statistics()
    if not (stats.balanced and stats.exported == COUNT and not any(stats.dropped.values())):
        problems.append(f"ledger {stats}")
    arrived = len(received(collector.collector, signal) & names)
    figure.criterion = "the aiotlp pair builds with the disk queue on; everything queued on disk and delivered"
    figure.load, figure.lost = COUNT, COUNT - arrived
    figure.count({**stats.dropped, "failed": stats.failed})
    figure.measured = f"delivered {arrived} of {COUNT}, exported {stats.exported}"
    fail_if(problems)


def _foreign(kind: str, signal: str, collector: CollectorThread) -> tuple[Any, Callable[[], set[str]]]:
    """A foreign exporter, and how to read what reached it."""
    if kind == "official-otlp-http":
        return _official(signal, collector)
    if signal == "traces":
        from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

        memory = InMemorySpanExporter()
        return memory, lambda: {span.name for span in memory.get_finished_spans()}
    from opentelemetry.sdk._logs.export import InMemoryLogRecordExporter

    logs = InMemoryLogRecordExporter()
    return logs, lambda: {str(record.log_record.body) for record in logs.get_finished_logs()}


def _official(signal: str, collector: CollectorThread) -> tuple[Any, Callable[[], set[str]]]:
    if signal == "traces":
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        return OTLPSpanExporter(collector.http_endpoint + "/v1/traces"), lambda: received(collector.collector, signal)
    from opentelemetry.exporter.otlp.proto.http._log_exporter import OTLPLogExporter

    return OTLPLogExporter(collector.http_endpoint + "/v1/logs"), lambda: received(collector.collector, signal)


QUEUE_WARNING = re.compile(r"(?i)(disk queue|queue_dir|AIOTLP_QUEUE_DIR)")


@pytest.mark.parametrize("signal", ["traces", "logs"])
@pytest.mark.parametrize("kind", ["in-memory", "official-otlp-http"])
def test_a_foreign_exporter_under_the_variable_is_used_as_it_is(
    collector: CollectorThread,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    figure: Figure,
    kind: str,
    signal: str,
) -> None:
    monkeypatch.setenv("AIOTLP_QUEUE_DIR", str(tmp_path))
    exporter, reached = _foreign(kind, signal, collector)
    caplog.set_level(logging.WARNING)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with no_raise(f"aiotlp's processor over the {kind} exporter"):
            if signal == "traces":
                processor: Any = aiotlp.sdk.BatchSpanProcessor(exporter, schedule_delay_millis=60_000)
            else:
                processor = aiotlp.sdk.BatchLogRecordProcessor(exporter, schedule_delay_millis=60_000)
        pipeline = Pipeline(signal, processor)
        try:
            names = pipeline.end()
            flushed = pipeline.provider.force_flush(10_000)
        finally:
            pipeline.provider.shutdown()
    said = [str(w.message) for w in caught if QUEUE_WARNING.search(str(w.message))]
    said += [r.getMessage() for r in caplog.records if QUEUE_WARNING.search(r.getMessage())]
    problems = [] if flushed is True else ["force_flush() returned False"]
    if reached() != names:
        problems.append(f"{len(reached() & names)} of {COUNT} reached the {kind} exporter")
    if len(said) != 1:
        problems.append(f"want exactly one warning about the disk queue, got {said}")
    figure.criterion = "a foreign exporter under AIOTLP_QUEUE_DIR is used as it is, with one warning"
    figure.load, figure.lost = COUNT, COUNT - len(reached() & names)
    figure.measured = f"{len(reached() & names)} of {COUNT} reached the {kind} exporter; {len(said)} warning"
    fail_if(problems)
