"""``aiotlp demo``: a small asyncio service instrumented by hand with aiotlp's model, exported for real."""

from __future__ import annotations

import asyncio
import os
import random
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from ..config import ExporterConfig, OtlpProtocol
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
    Span,
    SpanKind,
    Status,
    StatusCode,
    Sum,
)

RESOURCE = Resource({"service.name": "aiotlp-demo", "service.version": "1.0.0", "deployment.environment.name": "demo"})
SCOPE = InstrumentationScope("aiotlp.demo", "1.0.0")
BOUNDS = (5.0, 10.0, 25.0, 50.0, 100.0, 250.0)
ROUTES = ("/orders/{id}", "/users/{id}", "/health", "/search")


@dataclass
class Telemetry:
    """What the service produced, batched for export."""

    spans: list[Span] = field(default_factory=list)
    logs: list[LogRecord] = field(default_factory=list)
    requests: dict[tuple[str, int], int] = field(default_factory=dict)
    durations: dict[str, list[float]] = field(default_factory=dict)


class Service:
    def __init__(self, rng: random.Random) -> None:
        self.rng = rng
        self.out = Telemetry()

    def _ids(self) -> tuple[bytes, bytes]:
        return self.rng.randbytes(16), self.rng.randbytes(8)

    async def _child(self, trace_id: bytes, parent: bytes, name: str, kind: SpanKind, **attrs: Any) -> None:
        span_id = self.rng.randbytes(8)
        start = time.time_ns()
        await asyncio.sleep(self.rng.uniform(0.0005, 0.004))
        self.out.spans.append(
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

    async def handle(self, n: int) -> None:
        route = self.rng.choice(ROUTES)
        trace_id, span_id = self._ids()
        start = time.time_ns()
        if route != "/health":
            await self._child(trace_id, span_id, "cache.get", SpanKind.CLIENT, **{"db.system.name": "redis"})
            await asyncio.gather(
                self._child(
                    trace_id,
                    span_id,
                    "SELECT orders",
                    SpanKind.CLIENT,
                    **{"db.system.name": "postgresql", "db.query.text": "SELECT * FROM orders WHERE id = $1"},
                ),
                self._child(trace_id, span_id, "render", SpanKind.INTERNAL, template="order.html"),
            )
        status_code = 500 if self.rng.random() < 0.05 else 200
        end = time.time_ns()
        events = [Event("exception", end, {"exception.type": "TimeoutError"})] if status_code == 500 else []
        self.out.spans.append(
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
        self.out.logs.append(
            LogRecord(
                time_unix_nano=end,
                observed_time_unix_nano=end,
                severity_number=severity,
                severity_text=severity.name,
                body=f"GET {route} -> {status_code}",
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
    return [
        Metric("http.server.requests", counter, "Requests served", "{request}", resource=RESOURCE, scope=SCOPE),
        Metric(
            "http.server.request.duration",
            Histogram(points, AggregationTemporality.CUMULATIVE),
            "Request duration",
            "ms",
            resource=RESOURCE,
            scope=SCOPE,
        ),
    ]


async def _export_batches(exporter: OTLPExporter, out: Telemetry, final: bool = False) -> ExportResult:
    """Export what accumulated, in batches of at most 512 (what a batch processor would do)."""
    result = ExportResult()
    spans, out.spans = out.spans, []
    logs, out.logs = out.logs, []
    for i in range(0, len(spans), 512):
        result = result + await exporter.export_traces(spans[i : i + 512])
    for i in range(0, len(logs), 512):
        result = result + await exporter.export_logs(logs[i : i + 512])
    return result


async def run_demo(*, requests: int, concurrency: int, protocol: OtlpProtocol | None) -> int:
    from .._exceptions import ConfigurationError

    if requests < 1 or concurrency < 1:
        raise ConfigurationError("--requests and --concurrency must be positive")
    env_endpoint = any(
        os.environ.get(name) for name in ("OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
    )
    receiver: Any = None
    if env_endpoint:
        config = ExporterConfig.from_env(protocol=protocol)
    else:
        from ..testing import FakeCollector

        receiver = FakeCollector()
        await receiver.start()
        # the receiver serves both: pick the port of the protocol the environment (or --protocol) chose
        chosen = ExporterConfig.from_env(protocol=protocol).traces.protocol
        endpoint = receiver.grpc_endpoint if chosen == "grpc" else receiver.http_endpoint
        config = ExporterConfig.from_env(endpoint=endpoint, protocol=chosen)
    ui = _ui()
    target = config.traces.endpoint_for_display
    ui.line(
        f"aiotlp demo: {requests} requests, {concurrency} at a time, {config.traces.protocol} -> {target}"
        + (" (embedded receiver)" if receiver is not None else "")
    )
    service = Service(random.Random(42))
    start_ns = time.time_ns()
    started = time.perf_counter()
    result = ExportResult()
    try:
        async with OTLPExporter(config) as exporter:
            semaphore = asyncio.Semaphore(concurrency)

            async def one(n: int) -> None:
                async with semaphore:
                    await service.handle(n)

            tasks = [asyncio.create_task(one(n)) for n in range(requests)]
            for done, task in enumerate(asyncio.as_completed(tasks), start=1):
                await task
                if len(service.out.spans) >= 512:
                    result = result + await _export_batches(exporter, service.out)
                ui.progress(done, requests)
            result = result + await _export_batches(exporter, service.out)
            result = result + await exporter.export_metrics(build_metrics(service.out, start_ns))
        elapsed = time.perf_counter() - started
        ui.summary(result, elapsed)
        complete = True
        if receiver is not None:
            complete = ui.received(receiver, result)
    finally:
        if receiver is not None:
            await receiver.stop()
    return 0 if complete and result.failed == 0 and result.dropped == 0 else 1


class _PlainUI:
    def line(self, text: str) -> None:
        print(text, flush=True)

    def progress(self, done: int, total: int) -> None:
        if done == total or done % max(total // 4, 1) == 0:
            print(f"  served {done}/{total}", flush=True)

    def summary(self, result: ExportResult, elapsed: float) -> None:
        rate = result.items / elapsed if elapsed > 0 else 0.0
        print(
            f"sent {result.items} items in {result.requests} requests: accepted {result.accepted}, "
            f"rejected {result.rejected}, failed {result.failed}, dropped {result.dropped} "
            f"({rate:,.0f} items/s, {elapsed:.2f}s)",
            flush=True,
        )
        if result.error is not None:
            print(f"last error: {result.error}", flush=True)

    def received(self, receiver: Any, result: ExportResult) -> bool:
        """Print what the embedded receiver got; return whether it is exactly what was accepted."""
        spans = receiver.spans()
        points = sum(len(getattr(m, m.WhichOneof("data")).data_points) for m in receiver.metrics())
        unique = len({(s.trace_id, s.span_id) for s in spans})
        arrived = unique + len(receiver.log_records()) + points
        print(
            f"receiver got {len(spans)} spans, {len(receiver.log_records())} log records, "
            f"{points} metric points in {len(receiver.received)} requests",
            flush=True,
        )
        for line in trace_tree(spans):
            print(line, flush=True)
        if arrived != result.accepted or unique != len(spans):
            print(f"MISMATCH: {result.accepted} accepted, {arrived} distinct items arrived", flush=True)
            return False
        print(f"all {arrived} accepted items arrived, none twice", flush=True)
        return True


def trace_tree(spans: Sequence[Any]) -> list[str]:
    """Render one received trace (official protobuf spans): the first one with more than one span."""
    by_trace: dict[bytes, list[Any]] = {}
    for span in spans:
        by_trace.setdefault(span.trace_id, []).append(span)
    trace = next((t for t in by_trace.values() if len(t) > 1), None)
    if trace is None:
        return []
    children: dict[bytes, list[Any]] = {}
    for span in trace:
        children.setdefault(span.parent_span_id, []).append(span)
    lines = [f"trace {trace[0].trace_id.hex()}"]

    def walk(parent: bytes, depth: int) -> None:
        for span in sorted(children.get(parent, []), key=lambda s: s.start_time_unix_nano):
            ms = (span.end_time_unix_nano - span.start_time_unix_nano) / 1e6
            lines.append(f"{'  ' * depth}└─ {span.name}  {ms:.2f} ms")
            walk(span.span_id, depth + 1)

    walk(b"", 1)
    return lines


def _ui() -> _PlainUI:
    return _PlainUI()
