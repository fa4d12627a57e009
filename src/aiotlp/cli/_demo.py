"""``aiotlp demo``: a small asyncio HTTP-like service, instrumented by hand with aiotlp's model, exported for real.

Requests arrive at a steady pace over ``--duration`` seconds and are served ``--concurrency`` at a time; each
one makes a server span with nested client and internal spans, one log record carrying the trace and span ids,
and feeds a request counter and a duration histogram. Spans and logs go through :class:`aiotlp.BatchProcessor`
(the path an asyncio application uses), metrics are exported as cumulative snapshots once a second, all through
one :class:`aiotlp.OTLPExporter`, to ``OTEL_EXPORTER_OTLP_ENDPOINT``, or, when none is set, to a receiver
embedded in the process (:class:`aiotlp.testing.FakeCollector`).

The demo checks itself: the summary counts every item (accepted + rejected + failed + dropped == produced), and
with the embedded receiver every accepted item must have arrived exactly once; otherwise the exit code is 1.

Trace and span ids are random on every run (``--seed N`` makes a run reproducible), so runs never merge in a
backend. Before it serves anything the demo opens a TCP connection to the configured endpoint: when nothing
listens there it stops at once with the cause and the hint to run ``aiotlp check``. A failure during the run is
reported the same way, from the last export error (not from the processors' shutdown, which only says that time
ran out).
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from .._exceptions import ConfigurationError, ConnectError, MissingExtraError
from ..config import ExporterConfig, OtlpProtocol, variable_source
from ..export import ExportResult, OTLPExporter
from ..model import (
    AggregationTemporality,
    Event,
    Histogram,
    HistogramDataPoint,
    InstrumentationScope,
    LogRecord,
    Metric,
    NumberDataPoint,
    Resource,
    SeverityNumber,
    Signal,
    Span,
    SpanKind,
    Status,
    StatusCode,
    Sum,
)
from ..processing import BatchProcessor, ProcessorStatistics
from ._check import HINT, connect_problem, explain
from ._render import render_request, trace_nodes
from ._ui import UI

__all__ = ["Service", "build_metrics", "run_demo"]

RESOURCE = Resource({"service.name": "aiotlp-demo", "service.version": "1.0.0", "deployment.environment.name": "demo"})
SCOPE = InstrumentationScope("aiotlp.demo", "1.0.0")
BOUNDS = (5.0, 10.0, 25.0, 50.0, 100.0, 250.0)
ROUTES = ("/orders/{id}", "/users/{id}", "/health", "/search")


@dataclass
class Telemetry:
    """What the service measured, for the metric snapshots."""

    requests: dict[tuple[str, int], int] = field(default_factory=dict)
    durations: dict[str, list[float]] = field(default_factory=dict)


class Service:
    """The simulated service: ``handle`` serves one request and hands its spans and log to ``emit_*``."""

    def __init__(self, rng: random.Random, spans: BatchProcessor[Span], logs: BatchProcessor[LogRecord]) -> None:
        self.rng = rng
        self.spans = spans
        self.logs = logs
        self.out = Telemetry()
        self.produced = {Signal.TRACES: 0, Signal.LOGS: 0}
        # the first traces' spans and logs, kept to show one trace when the receiver is outside
        self.kept_spans: list[Span] = []
        self.kept_logs: list[LogRecord] = []
        self._kept_traces: set[bytes] = set()

    def _keep(self, trace_id: bytes) -> bool:
        if trace_id not in self._kept_traces and len(self._kept_traces) < 20:
            self._kept_traces.add(trace_id)
        return trace_id in self._kept_traces

    def _emit_span(self, span: Span) -> None:
        self.produced[Signal.TRACES] += 1
        if self._keep(span.trace_id):
            self.kept_spans.append(span)
        self.spans.put_nowait(span)

    def _emit_log(self, record: LogRecord) -> None:
        if self._keep(record.trace_id):
            self.kept_logs.append(record)
        self.logs.put_nowait(record)

    async def _child(self, trace_id: bytes, parent: bytes, name: str, kind: SpanKind, **attrs: Any) -> bytes:
        span_id = self.rng.randbytes(8)
        start = time.time_ns()
        await asyncio.sleep(self.rng.uniform(0.0005, 0.004))
        self._emit_span(
            Span(
                trace_id=trace_id,
                span_id=span_id,
                parent_span_id=parent,
                name=name,
                kind=kind,
                start_time_unix_nano=start,
                end_time_unix_nano=time.time_ns(),
                attributes=attrs,
                resource=RESOURCE,
                scope=SCOPE,
            )
        )
        return span_id

    async def _load_order(self, trace_id: bytes, parent: bytes) -> None:
        """An internal span with two children: a cache lookup, then a database query."""
        span_id = self.rng.randbytes(8)
        start = time.time_ns()
        await self._child(trace_id, span_id, "cache.get", SpanKind.CLIENT, **{"db.system.name": "redis"})
        await self._child(
            trace_id,
            span_id,
            "SELECT orders",
            SpanKind.CLIENT,
            **{"db.system.name": "postgresql", "db.query.text": "SELECT * FROM orders WHERE id = $1"},
        )
        self._emit_span(
            Span(
                trace_id=trace_id,
                span_id=span_id,
                parent_span_id=parent,
                name="load_order",
                kind=SpanKind.INTERNAL,
                start_time_unix_nano=start,
                end_time_unix_nano=time.time_ns(),
                resource=RESOURCE,
                scope=SCOPE,
            )
        )

    async def handle(self, n: int) -> None:
        route = self.rng.choice(ROUTES)
        trace_id, span_id = self.rng.randbytes(16), self.rng.randbytes(8)
        start = time.time_ns()
        if route != "/health":
            await asyncio.gather(
                self._load_order(trace_id, span_id),
                self._child(trace_id, span_id, "render", SpanKind.INTERNAL, template="order.html"),
            )
        status_code = 500 if self.rng.random() < 0.05 else 200
        end = time.time_ns()
        events = [Event("exception", end, {"exception.type": "TimeoutError"})] if status_code == 500 else []
        self._emit_span(
            Span(
                trace_id=trace_id,
                span_id=span_id,
                name=f"GET {route}",
                kind=SpanKind.SERVER,
                start_time_unix_nano=start,
                end_time_unix_nano=end,
                attributes={
                    "http.request.method": "GET",
                    "http.route": route,
                    "http.response.status_code": status_code,
                    "url.path": route.replace("{id}", str(n)),
                },
                events=events,
                status=Status(StatusCode.ERROR, "upstream timeout") if status_code == 500 else Status(),
                resource=RESOURCE,
                scope=SCOPE,
            )
        )
        severity = SeverityNumber.ERROR if status_code == 500 else SeverityNumber.INFO
        self.produced[Signal.LOGS] += 1
        self._emit_log(
            LogRecord(
                time_unix_nano=end,
                observed_time_unix_nano=end,
                severity_number=severity,
                severity_text=severity.name,
                body=f"GET {route.replace('{id}', str(n))} -> {status_code}",
                attributes={"http.route": route},
                trace_id=trace_id,
                span_id=span_id,
                flags=1,
                resource=RESOURCE,
                scope=SCOPE,
            )
        )
        key = (route, status_code)
        self.out.requests[key] = self.out.requests.get(key, 0) + 1
        self.out.durations.setdefault(route, []).append((end - start) / 1e6)


def build_metrics(out: Telemetry, start_ns: int) -> list[Metric]:
    """Cumulative snapshots of the request counter and the duration histogram (milliseconds)."""
    now = time.time_ns()
    counter = Sum(
        [
            NumberDataPoint(
                count,
                time_unix_nano=now,
                start_time_unix_nano=start_ns,
                attributes={"http.route": route, "http.response.status_code": status},
            )
            for (route, status), count in sorted(out.requests.items())
        ],
        aggregation_temporality=AggregationTemporality.CUMULATIVE,
        is_monotonic=True,
    )
    points = []
    for route, values in sorted(out.durations.items()):
        buckets = [0] * (len(BOUNDS) + 1)
        for v in values:
            buckets[sum(1 for b in BOUNDS if v > b)] += 1
        points.append(
            HistogramDataPoint(
                count=len(values),
                sum=sum(values),
                min=min(values),
                max=max(values),
                bucket_counts=buckets,
                explicit_bounds=BOUNDS,
                time_unix_nano=now,
                start_time_unix_nano=start_ns,
                attributes={"http.route": route},
            )
        )
    metrics = []
    if counter.data_points:
        metrics.append(
            Metric("http.server.requests", counter, "Requests served", "{request}", resource=RESOURCE, scope=SCOPE)
        )
    if points:
        metrics.append(
            Metric(
                "http.server.request.duration",
                Histogram(points, AggregationTemporality.CUMULATIVE),
                "Request duration",
                "ms",
                resource=RESOURCE,
                scope=SCOPE,
            )
        )
    return metrics


class _Shared:
    """The one exporter, shared by both processors: their shutdown flushes them but leaves it open. It keeps the
    last export error (and its signal): the real cause when the run fails."""

    def __init__(self, inner: OTLPExporter) -> None:
        self.inner = inner
        self.last_error: tuple[Signal, BaseException] | None = None

    def _note(self, signal: Signal, result: ExportResult) -> ExportResult:
        if result.error is not None:
            self.last_error = (signal, result.error)
        return result

    async def export_traces(self, spans: Sequence[Span]) -> ExportResult:
        return self._note(Signal.TRACES, await self.inner.export_traces(spans))

    async def export_metrics(self, metrics: Sequence[Metric]) -> ExportResult:
        return self._note(Signal.METRICS, await self.inner.export_metrics(metrics))

    async def export_logs(self, records: Sequence[LogRecord]) -> ExportResult:
        return self._note(Signal.LOGS, await self.inner.export_logs(records))

    async def shutdown(self, timeout: float | None = None) -> None:
        return None


@dataclass
class _Row:
    produced: int = 0
    accepted: int = 0
    rejected: int = 0
    failed: int = 0
    dropped: int = 0

    @classmethod
    def of(cls, stats: ProcessorStatistics) -> _Row:
        return cls(stats.produced, stats.exported, stats.rejected, stats.failed, stats.dropped_total)

    def add(self, result: ExportResult) -> None:
        self.produced += result.items
        self.accepted += result.accepted
        self.rejected += result.rejected
        self.failed += result.failed
        self.dropped += result.dropped


async def run_demo(
    ui: UI,
    *,
    requests: int,
    concurrency: int,
    duration: float,
    protocol: OtlpProtocol | None,
    seed: int | None = None,
) -> int:
    if requests < 1 or concurrency < 1:
        raise ConfigurationError("--requests and --concurrency must be positive")
    if not 0 <= duration <= 60:
        raise ConfigurationError(f"--duration must be between 0 and 60 seconds, got {duration:g}")
    env_endpoint = (
        variable_source(
            "AIOTLP_EXPORTER_OTLP_TRACES_ENDPOINTS",
            "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
            "AIOTLP_EXPORTER_OTLP_ENDPOINTS",
            "OTEL_EXPORTER_OTLP_ENDPOINT",
        )
        is not None
    )
    receiver: Any = None
    if env_endpoint:
        config = ExporterConfig.from_env(protocol=protocol)
    else:
        try:
            from ..testing import FakeCollector
        except ImportError as exc:
            raise MissingExtraError(
                "receiver", f"{_module(exc)} (the demo's embedded receiver; or set OTEL_EXPORTER_OTLP_ENDPOINT)"
            ) from None

        receiver = FakeCollector()
        await receiver.start()
        # the receiver serves both: pick the port of the protocol the environment (or --protocol) chose
        chosen = ExporterConfig.from_env(protocol=protocol).traces.protocol
        endpoint = receiver.grpc_endpoint if chosen == "grpc" else receiver.http_endpoint
        config = ExporterConfig.from_env(endpoint=endpoint, protocol=chosen)
    target = config.traces.endpoint_for_display
    ui.line(
        f"aiotlp demo: {requests} requests over {duration:g}s, {concurrency} at a time, "
        f"{config.traces.protocol} -> {target}" + (" (embedded receiver)" if receiver is not None else ""),
        "bold",
    )
    if receiver is None and (problem := await connect_problem(config.traces)) is not None:
        raise ConnectError(f"{problem}{' ' if problem.endswith(('.', '?')) else '. '}Nothing was sent; {HINT}")
    try:
        return await _run(ui, config, receiver, requests, concurrency, duration, random.Random(seed))
    finally:
        if receiver is not None:
            await receiver.stop()


def _module(exc: ImportError) -> str:
    """The package to name for a missing module (``google`` is opentelemetry-proto's namespace)."""
    name = getattr(exc, "module", None) or exc.name or "a receiver dependency"
    return {"google": "opentelemetry-proto", "grpc": "grpcio"}.get(name.split(".")[0], name)


async def _run(
    ui: UI,
    config: ExporterConfig,
    receiver: Any,
    requests: int,
    concurrency: int,
    duration: float,
    rng: random.Random,
) -> int:
    start_ns = time.time_ns()
    started = time.perf_counter()
    metrics = _Row()
    async with OTLPExporter(config) as exporter:
        shared = _Shared(exporter)
        spans: BatchProcessor[Span] = BatchProcessor(shared, Signal.TRACES, schedule_delay=0.5)
        logs: BatchProcessor[LogRecord] = BatchProcessor(shared, Signal.LOGS, schedule_delay=0.5)
        service = Service(rng, spans, logs)
        semaphore = asyncio.Semaphore(concurrency)
        loop = asyncio.get_running_loop()

        async def one(n: int) -> None:
            await asyncio.sleep(max(0.0, started + n * duration / requests - time.perf_counter()))
            async with semaphore:
                await service.handle(n)

        async def metric_snapshots(done: asyncio.Event) -> None:
            while not done.is_set():
                try:
                    await asyncio.wait_for(done.wait(), 1.0)
                except asyncio.TimeoutError:
                    snapshot = build_metrics(service.out, start_ns)
                    if snapshot:
                        metrics.add(await exporter.export_metrics(snapshot))

        served = asyncio.Event()
        snapshots = loop.create_task(metric_snapshots(served))
        with ui.progress("serving", requests) as progress:
            tasks = [loop.create_task(one(n)) for n in range(requests)]
            for done, task in enumerate(asyncio.as_completed(tasks), start=1):
                await task
                exported = spans.statistics().exported + logs.statistics().exported + metrics.accepted
                progress.update(done, f"{exported:,} items accepted")
        served.set()
        await snapshots
        # long enough for an export in flight to end with its own error (the real cause), not the deadline's
        grace = max(10.0, config.traces.timeout + 1.0)
        await asyncio.gather(spans.shutdown(grace), logs.shutdown(grace))
        metrics.add(await exporter.export_metrics(build_metrics(service.out, start_ns)))
        elapsed = time.perf_counter() - started
        rows = {"spans": _Row.of(spans.statistics()), "log records": _Row.of(logs.statistics())}
        rows["metric data points"] = metrics
        retries = exporter.retries
        last_error = spans.statistics().last_error or logs.statistics().last_error
        if shared.last_error is not None:  # the exporter's own error, explained, rather than a processor's summary
            failed_signal, error = shared.last_error
            signal_config = config.for_signal(failed_signal)
            where = ", ".join(signal_config.endpoints_for_display)
            last_error = f"{failed_signal.value} to {where}: {explain(error, signal_config)}"

    total = _Row()
    for row in rows.values():
        for name in ("produced", "accepted", "rejected", "failed", "dropped"):
            setattr(total, name, getattr(total, name) + getattr(row, name))
    table = [
        [name, f"{r.produced:,}", f"{r.accepted:,}", f"{r.rejected:,}", f"{r.failed:,}", f"{r.dropped:,}"]
        for name, r in (*rows.items(), ("total", total))
    ]
    ui.table("summary", ["signal", "sent", "accepted", "rejected", "failed", "dropped"], table)
    rate = total.accepted / elapsed if elapsed > 0 else 0.0
    ui.line(
        f"sent {total.produced:,} items: accepted {total.accepted:,}, rejected {total.rejected:,}, "
        f"failed {total.failed:,}, dropped {total.dropped:,} ({rate:,.0f} items/s over {elapsed:.2f}s, "
        f"{retries} retries)"
    )
    if last_error:
        ui.line(f"last error: {last_error}", "red")
        ui.line(f"hint: {HINT}", "red")
    balanced = total.produced == total.accepted + total.rejected + total.failed + total.dropped
    ok = balanced and total.failed == 0 and total.dropped == 0
    if receiver is not None:
        ok = _received(ui, receiver, total.accepted) and ok
    else:
        _sent_tree(ui, service)
    return 0 if ok else 1


def _received(ui: UI, receiver: Any, accepted: int) -> bool:
    """Show one trace (with its correlated log) and the last metric snapshot as the embedded receiver got them;
    check that exactly what was accepted arrived, once."""
    spans = receiver.spans()
    records = receiver.log_records()
    points = sum(len(getattr(m, m.WhichOneof("data")).data_points) for m in receiver.metrics())
    unique = len({(s.trace_id, s.span_id) for s in spans})
    arrived = unique + len(records) + points
    ui.line(
        f"receiver got {len(spans)} spans, {len(records)} log records, {points} metric points "
        f"in {len(receiver.received)} requests",
        "bold",
    )
    _show_trace(ui, spans, records, "as the receiver got it")
    last_metrics = [r for r in receiver.received if r.signal is Signal.METRICS][-1:]
    if last_metrics:
        ui.line("the last metric snapshot:", "bold")
        render_request(ui, last_metrics[0].message, "metrics")
    if arrived != accepted or unique != len(spans):
        ui.line(f"MISMATCH: {accepted} accepted, {arrived} distinct items arrived", "bold red")
        return False
    ui.line(f"all {arrived} accepted items arrived, none twice", "bold green")
    return True


def _show_trace(ui: UI, spans: Sequence[Any], records: Sequence[Any], how: str) -> None:
    """The largest trace (the first one, on a tie) and the log records that carry its trace id."""
    by_trace: dict[bytes, list[Any]] = {}
    for span in spans:
        by_trace.setdefault(bytes(span.trace_id), []).append(span)
    if not by_trace:
        return
    trace_id, members = max(by_trace.items(), key=lambda item: len(item[1]))
    ui.line(f"one trace, {how}:", "bold")
    for node in trace_nodes(members, "aiotlp-demo"):
        ui.tree(node)
    for record in records:
        if bytes(record.trace_id) == trace_id:
            severity = record.severity_text or str(int(record.severity_number))
            body = record.body.string_value if hasattr(record.body, "string_value") else str(record.body)
            prefix = f"  log of this trace (span {bytes(record.span_id).hex()}):"
            ui.log(prefix, severity, int(record.severity_number), body)


def _sent_tree(ui: UI, service: Service) -> None:
    _show_trace(ui, service.kept_spans, service.kept_logs, "as sent (look for service.name=aiotlp-demo there)")
