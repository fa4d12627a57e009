"""The public API's inferred types, checked by mypy --strict (tests/typing/test_typing.py); never executed."""

from __future__ import annotations

import sys
from collections.abc import Mapping
from typing import Any

from opentelemetry.sdk.trace import TracerProvider

import aiotlp
import aiotlp.sdk
from aiotlp import (
    BatchProcessor,
    ExporterConfig,
    ExportError,
    ExportResult,
    FlushOutcome,
    Headers,
    OTLPExporter,
    ProcessorStatistics,
    RetryPolicy,
    Signal,
    SignalConfig,
    Span,
)
from aiotlp.config import BatchConfig, MetricReaderConfig, OtlpProtocol

if sys.version_info >= (3, 11):
    from typing import assert_type
else:
    from typing_extensions import assert_type


async def exporter_api(spans: list[Span]) -> None:
    exporter = OTLPExporter(endpoint="http://localhost:4318", timeout=2.5, headers={"k": "v"})
    async with exporter as entered:
        assert_type(entered, OTLPExporter)
        result = await entered.export_traces(spans)
        assert_type(result, ExportResult)
        assert_type(result.items, int)
        assert_type(result.accepted, int)
        assert_type(result.rejected, int)
        assert_type(result.failed, int)
        assert_type(result.dropped, int)
        assert_type(result.requests, int)
        assert_type(result.error, ExportError | None)
        assert_type(result.error_message, str)
        assert_type(result.ok, bool)
        assert_type(result + result, ExportResult)
        assert_type(await entered.export_logs([]), ExportResult)
        assert_type(await entered.export_metrics([]), ExportResult)
    assert_type(exporter.retries, int)
    assert_type(exporter.config, ExporterConfig)
    assert_type(await exporter.shutdown(), None)
    assert_type(OTLPExporter(retry=RetryPolicy(max_attempts=3)), OTLPExporter)


async def processor_api(exporter: OTLPExporter, span: Span) -> None:
    processor: BatchProcessor[Span] = BatchProcessor(exporter, Signal.TRACES, max_queue_size=10)
    assert_type(processor.put_nowait(span), bool)
    assert_type(await processor.put(span), bool)
    outcome = await processor.force_flush(1.0)
    assert_type(outcome, FlushOutcome)
    assert_type(outcome.exported, int)
    assert_type(outcome.ok, bool)
    assert_type(await processor.shutdown(), FlushOutcome)
    stats = processor.statistics()
    assert_type(stats, ProcessorStatistics)
    assert_type(stats.dropped, Mapping[str, int])
    assert_type(stats.balanced, bool)
    assert_type(BatchProcessor.from_config(exporter, Signal.LOGS, BatchConfig.from_env("log")), BatchProcessor[Any])


def config_api() -> None:
    config = ExporterConfig.from_env({}, protocol="grpc", timeout=1.0)
    assert_type(config, ExporterConfig)
    traces = config.for_signal(Signal.TRACES)
    assert_type(traces, SignalConfig)
    assert_type(traces.protocol, OtlpProtocol)
    assert_type(traces.endpoint, str)
    assert_type(traces.timeout, float)
    assert_type(traces.headers, Headers)
    assert_type(traces.endpoint_for_display, str)
    assert_type(traces.certificate_file, str | None)
    assert_type(BatchConfig.from_env("span").schedule_delay, float)
    assert_type(MetricReaderConfig.from_env().export_interval, float)
    assert_type(Headers.parse("a=b"), Headers)


def sdk_api() -> None:
    exporter = aiotlp.sdk.SpanExporter(endpoint="http://localhost:4318/v1/traces", protocol="http/json")
    assert_type(exporter, aiotlp.sdk.SpanExporter)
    assert_type(exporter.config, ExporterConfig)
    assert_type(aiotlp.sdk.LogExporter(), aiotlp.sdk.LogExporter)
    assert_type(aiotlp.sdk.MetricExporter(), aiotlp.sdk.MetricExporter)
    processor = aiotlp.sdk.BatchSpanProcessor(exporter, max_queue_size=100)
    TracerProvider().add_span_processor(processor)
    assert_type(processor.force_flush(), bool)
    assert_type(aiotlp.__version__, str)
