"""The compatibility harness: one workload, run under the SDK's ``TracerProvider`` and under aiotlp's, and what
each run produced reduced to a comparable *shape*.

A workload is an ``async`` function of a :class:`Run`; it gets its tracer provider from the run and hands it to
the instrumentations the way applications do (``tracer_provider=``). The run captures

- every finished span, through a foreign processor (the SDK's ``SimpleSpanProcessor`` and
  ``InMemorySpanExporter``: the ``ReadableSpan`` objects aiotlp's provider builds for such a processor);
- the log records of the ``compat`` logger, through the logging instrumentation's ``LoggingHandler`` and
  through the SDK's own (deprecated) ``LoggingHandler``, each into a ``LoggerProvider`` of its own: their trace
  and span ids come from the span current when the record was made;
- the ``logging.LogRecord`` objects themselves, which the logging instrumentation's record factory gives
  ``otelTraceID``, ``otelSpanID``, ``otelTraceSampled`` and ``otelServiceName``.

:func:`shape` turns that into plain data where generated ids are replaced by the names of the spans they
belong to (``GET /items/{item_id}#0``) and traces by their order of appearance (``trace-0``); timestamps are
left out (checked for order instead), and an exception's stack trace keeps only its frames in this directory
and its last line (the provider's own frames in between differ by design). Ids the workload chose itself (a
traceparent it sends, a link to a fixed context) are kept as they are.
"""

from __future__ import annotations

import copy
import json
import logging
import re
import warnings
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from opentelemetry.instrumentation.logging import LoggingInstrumentor
from opentelemetry.instrumentation.logging.handler import LoggingHandler as InstrumentationLoggingHandler
from opentelemetry.sdk._logs import LoggerProvider
from opentelemetry.sdk._logs import LoggingHandler as SDKLoggingHandler
from opentelemetry.sdk._logs.export import InMemoryLogRecordExporter, SimpleLogRecordProcessor
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace import TracerProvider as SDKTracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

import aiotlp.sdk

# The provider under test (one line: the SDK's stood in here until aiotlp's landed)
from aiotlp.sdk import TracerProvider as AiotlpTracerProvider
from aiotlp.testing import FakeCollector

PROVIDERS: dict[str, Callable[..., Any]] = {"sdk": SDKTracerProvider, "aiotlp": AiotlpTracerProvider}

LOGGER = "compat"
HERE = str(Path(__file__).resolve().parent)

Workload = Callable[["Run"], Awaitable[None]]


@dataclass
class Run:
    """What one workload run is given (its provider) and what it produced."""

    side: str
    provider: Any
    spans: InMemorySpanExporter = field(default_factory=InMemorySpanExporter)
    logs: InMemoryLogRecordExporter = field(default_factory=InMemoryLogRecordExporter)  # instrumentation handler
    sdk_logs: InMemoryLogRecordExporter = field(default_factory=InMemoryLogRecordExporter)  # the SDK's handler
    records: list[logging.LogRecord] = field(default_factory=list)
    wire: list[Any] = field(default_factory=list)  # captured by a collector: the ExportTraceServiceRequests

    @property
    def tracer(self) -> Any:
        return self.provider.get_tracer(
            "compat.workload",
            "1.2.3",
            schema_url="https://opentelemetry.io/schemas/1.21.0",
            attributes={"scope.owner": "compat"},
        )


class _Keep(logging.Handler):
    def __init__(self, records: list[logging.LogRecord]) -> None:
        super().__init__(logging.DEBUG)
        self.records = records

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


@contextmanager
def _logging_captured(run: Run) -> Iterator[None]:
    """The logging instrumentation (trace ids injected in records) and both log handlers, for one run."""
    instrumentor = LoggingInstrumentor()
    instrumentor.instrument(
        tracer_provider=run.provider, inject_trace_context=True, enable_log_auto_instrumentation=False
    )
    logger_provider = LoggerProvider(resource=run.provider.resource)
    logger_provider.add_log_record_processor(SimpleLogRecordProcessor(run.logs))
    sdk_logger_provider = LoggerProvider(resource=run.provider.resource)
    sdk_logger_provider.add_log_record_processor(SimpleLogRecordProcessor(run.sdk_logs))
    with warnings.catch_warnings():
        # the SDK's handler is deprecated for the instrumentation's (which it still is the same as): both run
        warnings.simplefilter("ignore", DeprecationWarning)
        sdk_handler = SDKLoggingHandler(logger_provider=sdk_logger_provider)
    handlers = [
        InstrumentationLoggingHandler(logger_provider=logger_provider),
        sdk_handler,
        _Keep(run.records),
    ]
    logger = logging.getLogger(LOGGER)
    level, propagate = logger.level, logger.propagate
    logger.setLevel(logging.DEBUG)
    logger.propagate = False
    for handler in handlers:
        logger.addHandler(handler)
    try:
        yield
    finally:
        for handler in handlers:
            logger.removeHandler(handler)
        logger.setLevel(level)
        logger.propagate = propagate
        instrumentor.uninstrument()
        logger_provider.shutdown()
        sdk_logger_provider.shutdown()


async def run(side: str, workload: Workload, capture: FakeCollector | None = None, **provider_kwargs: Any) -> Run:
    """The workload under one provider (``side`` is ``"sdk"`` or ``"aiotlp"``), its spans and logs captured.

    ``capture=None``: the spans as a foreign processor receives them (``ReadableSpan``); a FakeCollector (the
    fixture's, started outside the test's body): as aiotlp's ``BatchSpanProcessor`` and exporter deliver them
    there (under aiotlp's provider, from the span's core: no Python span object is built)."""
    # each run its own copy: an id generator with a counter, a sampler with state start over
    provider = PROVIDERS[side](shutdown_on_exit=False, **copy.deepcopy(provider_kwargs))
    result = Run(side, provider)
    if capture is None:
        provider.add_span_processor(SimpleSpanProcessor(result.spans))
        try:
            with _logging_captured(result):
                await workload(result)
        finally:
            provider.shutdown()
        return result
    before = len(capture.received)
    processor = aiotlp.sdk.BatchSpanProcessor(aiotlp.sdk.SpanExporter(endpoint=capture.http_endpoint + "/v1/traces"))
    provider.add_span_processor(processor)
    try:
        with _logging_captured(result):
            await workload(result)
    finally:
        outcome = await processor.ashutdown()
        provider.shutdown()
    assert outcome.status.name == "SUCCESS", outcome
    result.wire = [r.message for r in capture.received[before:] if r.signal.value == "traces"]
    return result


async def compare(
    workload: Workload,
    *,
    capture: FakeCollector | None = None,
    chosen: frozenset[int] = frozenset(),
    **provider_kwargs: Any,
) -> dict[str, Any]:
    """Runs the workload under both providers and asserts the same shape; returns the SDK run's shape (for the
    caller to check that the workload did what it meant to: the comparison alone passes on two empty runs), as
    a foreign processor sees it.
    ``capture``: see :func:`run`; ``chosen``: trace and span ids the workload chose itself (a traceparent it
    sends), compared as they are."""
    expected = shape(await run("sdk", workload, capture, **provider_kwargs), chosen)
    actual = shape(await run("aiotlp", workload, capture, **provider_kwargs), chosen)
    for key in expected:
        assert actual[key] == expected[key], _diff(key, expected[key], actual[key])
    if capture is None:
        return expected
    # the same spans reached the collector as a processor sees (none lost on the way); the caller's checks
    # read the processor's shape
    seen = shape(await run("sdk", workload, None, **provider_kwargs), chosen)
    assert [span["label"] for span in expected["spans"]] == [span["label"] for span in seen["spans"]]
    return seen


def _diff(key: str, expected: Any, actual: Any) -> str:
    if isinstance(expected, list) and isinstance(actual, list):
        for index, (left, right) in enumerate(zip(expected, actual, strict=False)):
            if left != right:
                return f"{key}[{index}] differs:\nSDK:    {json.dumps(left, sort_keys=True, default=str)}\n" + (
                    f"aiotlp: {json.dumps(right, sort_keys=True, default=str)}"
                )
        return f"{key}: {len(expected)} under the SDK, {len(actual)} under aiotlp"
    return f"{key} differs:\nSDK:    {expected!r}\naiotlp: {actual!r}"


# -- the shape ---------------------------------------------------------------------------------------------


class _Ids:
    """Generated ids -> names: a span id by its span's label, a trace id by its order of first appearance."""

    def __init__(self, spans: list[tuple[str, int, int]], chosen: frozenset[int]) -> None:
        """``spans``: (name, span id, trace id) in the order they started."""
        self.spans: dict[int, str] = {}
        self.traces: dict[int, str] = {}
        self.chosen = chosen
        seen: dict[str, int] = {}
        for name, span_id, trace_id in spans:
            number = seen.get(name, 0)
            seen[name] = number + 1
            self.spans[span_id] = f"{name}#{number}"
            if trace_id not in chosen:
                self.traces.setdefault(trace_id, f"trace-{len(self.traces)}")

    def span(self, span_id: int) -> str:
        return self.spans.get(span_id) or self._other(span_id, 16)

    def trace(self, trace_id: int) -> str:
        return self.traces.get(trace_id) or self._other(trace_id, 32)

    def _other(self, number: int, digits: int) -> str:
        """An id of no recorded span: the workload's own is kept, a generated one (a span not sampled) named so."""
        return f"{number:0{digits}x}" if number in self.chosen else f"<generated, not recorded: {digits} digits>"

    def text(self, value: str) -> str:
        """A string that is an id in hex (``otelSpanID``, ``to_json``'s ``0x...``) -> its name."""
        match = re.fullmatch(r"(0x)?([0-9a-f]{16}|[0-9a-f]{32})", value)
        if match is None:
            return value
        number = int(match.group(2), 16)
        return self.span(number) if len(match.group(2)) == 16 else self.trace(number)


def _stacktrace(text: str) -> str:
    """An exception's stack trace: its frames in the workload's files and its last line."""
    lines = text.rstrip("\n").split("\n")
    kept = [line.strip() for line in lines if line.strip().startswith("File ") and HERE in line]
    return "\n".join([*kept, lines[-1]])


def _value(ids: _Ids, key: str, value: Any) -> Any:
    if isinstance(value, str):
        return _stacktrace(value) if key == "exception.stacktrace" else ids.text(value)
    if isinstance(value, (tuple, list)):
        return [_value(ids, key, item) for item in value]
    return value


def _attributes(ids: _Ids, attributes: Any) -> dict[str, Any]:
    return {key: _value(ids, key, value) for key, value in sorted(dict(attributes or {}).items())}


def _json(ids: _Ids, value: Any, key: str = "") -> Any:
    """``ReadableSpan.to_json()``'s data, ids named and times left out."""
    if isinstance(value, dict):
        return {
            k: _json(ids, v, k) for k, v in sorted(value.items()) if k not in ("start_time", "end_time", "timestamp")
        }
    if isinstance(value, list):
        return [_json(ids, item, key) for item in value]
    return _value(ids, key, value)


def _span(ids: _Ids, span: ReadableSpan) -> dict[str, Any]:
    context = span.get_span_context()
    assert context is not None
    parent = span.parent
    scope = span.instrumentation_scope
    assert span.start_time is not None
    assert span.end_time is not None
    assert 0 < span.start_time <= span.end_time, (span.name, span.start_time, span.end_time)
    for event in span.events:
        assert span.start_time <= event.timestamp <= span.end_time, (span.name, event.name)
    return {
        "name": span.name,
        "label": ids.span(context.span_id),
        "trace": ids.trace(context.trace_id),
        "sampled": context.trace_flags.sampled,
        "trace_state": str(context.trace_state),
        "kind": span.kind.name,
        "parent": None
        if parent is None
        else {"span": ids.span(parent.span_id), "trace": ids.trace(parent.trace_id), "remote": parent.is_remote},
        "attributes": _attributes(ids, span.attributes),
        "dropped_attributes": span.dropped_attributes,
        "events": [{"name": e.name, "attributes": _attributes(ids, e.attributes)} for e in span.events],
        "dropped_events": span.dropped_events,
        "links": [
            {
                "span": ids.span(link.context.span_id),
                "trace": ids.trace(link.context.trace_id),
                "attributes": _attributes(ids, link.attributes),
            }
            for link in span.links
        ],
        "dropped_links": span.dropped_links,
        "status": [span.status.status_code.name, span.status.description],
        "resource": [_attributes(ids, span.resource.attributes), span.resource.schema_url],
        "scope": None
        if scope is None
        else [scope.name, scope.version, scope.schema_url, _attributes(ids, scope.attributes)],
        "json": _json(ids, json.loads(span.to_json())),
    }


def _log(ids: _Ids, data: Any) -> dict[str, Any]:
    record = data.log_record
    return {
        "body": record.body,
        "severity": [record.severity_text, record.severity_number.name if record.severity_number else None],
        "span": ids.span(record.span_id) if record.span_id else None,
        "trace": ids.trace(record.trace_id) if record.trace_id else None,
        "sampled": bool(record.trace_flags and record.trace_flags.sampled),
        "attributes": _attributes(ids, record.attributes),
        "resource": _attributes(ids, data.resource.attributes) if data.resource else None,
    }


def _record(ids: _Ids, record: logging.LogRecord) -> dict[str, Any]:
    return {
        "message": record.getMessage(),
        **{
            key: _value(ids, key, getattr(record, key, None))
            for key in ("otelTraceID", "otelSpanID", "otelTraceSampled", "otelServiceName")
        },
    }


def _any(value: Any) -> Any:
    """An OTLP AnyValue as Python."""
    which = value.WhichOneof("value")
    if which == "array_value":
        return [_any(item) for item in value.array_value.values]
    if which == "kvlist_value":
        return {kv.key: _any(kv.value) for kv in value.kvlist_value.values}
    return None if which is None else getattr(value, which)


def _wire_attributes(ids: _Ids, attributes: Any) -> list[list[Any]]:
    """OTLP attributes in their order on the wire."""
    return [[kv.key, _value(ids, kv.key, _any(kv.value))] for kv in attributes]


def _number(value: bytes) -> int:
    return int.from_bytes(value, "big")


def _wire_span(ids: _Ids, resource_spans: Any, scope_spans: Any, span: Any) -> dict[str, Any]:
    assert 0 < span.start_time_unix_nano <= span.end_time_unix_nano, span.name
    for event in span.events:
        assert span.start_time_unix_nano <= event.time_unix_nano <= span.end_time_unix_nano, (span.name, event.name)
    resource, scope = resource_spans.resource, scope_spans.scope
    return {
        "name": span.name,
        "label": ids.span(_number(span.span_id)),
        "trace": ids.trace(_number(span.trace_id)),
        "flags": span.flags,
        "trace_state": span.trace_state,
        "kind": span.kind,
        "parent": ids.span(_number(span.parent_span_id)) if span.parent_span_id else None,
        "attributes": _wire_attributes(ids, span.attributes),
        "dropped_attributes": span.dropped_attributes_count,
        "events": [[e.name, _wire_attributes(ids, e.attributes), e.dropped_attributes_count] for e in span.events],
        "dropped_events": span.dropped_events_count,
        "links": [
            {
                "span": ids.span(_number(link.span_id)),
                "trace": ids.trace(_number(link.trace_id)),
                "trace_state": link.trace_state,
                "flags": link.flags,
                "attributes": _wire_attributes(ids, link.attributes),
                "dropped_attributes": link.dropped_attributes_count,
            }
            for link in span.links
        ],
        "dropped_links": span.dropped_links_count,
        "status": [span.status.code, span.status.message],
        "resource": [_wire_attributes(ids, resource.attributes), resource.dropped_attributes_count],
        "resource_schema_url": resource_spans.schema_url,
        "scope": [scope.name, scope.version, _wire_attributes(ids, scope.attributes), scope_spans.schema_url],
    }


def shape(result: Run, chosen: frozenset[int] = frozenset()) -> dict[str, Any]:
    """What the run produced, ids named and times left out, in the order the spans were started; the trace ids
    and span ids in ``chosen`` (the workload's own) are kept as they are."""
    if result.wire:
        found = [
            (resource_spans, scope_spans, span)
            for message in result.wire
            for resource_spans in message.resource_spans
            for scope_spans in resource_spans.scope_spans
            for span in scope_spans.spans
        ]
        found.sort(key=lambda item: item[2].start_time_unix_nano)
        ids = _Ids([(span.name, _number(span.span_id), _number(span.trace_id)) for _, _, span in found], chosen)
        spans = [_wire_span(ids, *item) for item in found]
    else:
        finished = sorted(result.spans.get_finished_spans(), key=lambda span: span.start_time or 0)
        contexts = [span.get_span_context() for span in finished]
        ids = _Ids([(s.name, c.span_id, c.trace_id) for s, c in zip(finished, contexts, strict=True) if c], chosen)
        spans = [_span(ids, span) for span in finished]
    return {
        "spans": spans,
        "logs": [_log(ids, data) for data in result.logs.get_finished_logs()],
        "sdk_logs": [_log(ids, data) for data in result.sdk_logs.get_finished_logs()],
        "records": [_record(ids, record) for record in result.records],
    }


def by_label(spans: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {span["label"]: span for span in spans}
