"""batched_pipeline: an SDK app producing spans flat out through the SDK's ``BatchSpanProcessor``.

Each side runs in a fresh process (so peak RSS does not mix), a ``TracerProvider`` with:

* ``official``: the SDK's ``BatchSpanProcessor`` and the official ``OTLPSpanExporter``;
* ``aiotlp``: the SDK's ``BatchSpanProcessor`` and ``aiotlp.sdk.SpanExporter`` (the exporter swapped alone);
* ``aiotlp processor``: ``aiotlp.sdk.BatchSpanProcessor`` and ``aiotlp.sdk.SpanExporter`` (the drop-in pair;
  spans encoded at the source, in ``on_end``; gRPC over aiotlp's h2 client; OTLP/HTTP with the default transports,
  so full batches go on the native lane: ``lane_share``, the share of the batches sent there);
* ``aiotlp processor, objects``: the same with ``encode_at_source=False`` (SDK objects queued, each batch encoded
  on the bridge thread: the path before encoding at the source);
* ``aiotlp processor, grpc.aio`` (and ``..., grpc.aio, objects``), gRPC only: the same over the grpc.aio client;
* ``no-op``: a span processor that does nothing with the spans (counted as delivered): the producer alone, the
  baseline of the targets "delivered >= 90% of what the same producer achieves with a no-op exporter" and
  "aiotlp's own CPU per exported span, beyond the SDK's span creation" (CPU per span minus this row's).
* ``aiotlp processor, aiotlp provider``: the drop-in pair behind ``aiotlp.sdk.TracerProvider`` (span state in C,
  taken to bytes at ``end()``); ``no-op, aiotlp provider``: that provider with no processor, its baseline.

The app (a plain thread, no event loop: its exports run on aiotlp's bridge thread) creates spans (8 attributes + 1
event) as fast as it can for N seconds, then shuts the provider down (which flushes). Reports spans delivered/s
(exported / time until shutdown returned), spans dropped (produced minus exported: a processor drops when its queue
is full) and, for aiotlp's processors, those dropped after start-up (the first 0.5 s, when the first connection is
made: the processor's statistics read by the producer then), the peak RSS growth over the start of the run (sampled
every 5 ms) and the process CPU µs per produced span. For the ``aiotlp processor`` rows also, per export of 512
spans, the bridge thread's wake-ups (blocking ``epoll_wait`` calls that returned events: each one may wait up to the
switch interval for the GIL) and its GIL waits seen at zero-timeout ``epoll_wait`` calls (count, and their wall
time: such a call does no waiting of its own, so its time is the wait for the GIL), its CPU per span sent, and the
bytes a queued span holds (the encoded length plus the ``bytes`` and ``tuple`` objects' headers, 89 bytes; the
queue's mean just before the shutdown), and the export's wall time (p50) while the producer runs: beyond its CPU and
the network, what the bridge waited for the GIL after each wake-up (a zero-timeout call rarely waits: the bridge
takes the GIL back before the waiting producer thread has woken up). With the compiled helper (the bridge's loop is
``aiotlp.transport._keepgil``'s) zero-timeout polls keep the GIL and are not counted: the GIL waits column then
reads 0.

Receivers: every side sends to the harness's rotel (Rust; it leaves Nagle on, and about one grpc.aio call in ten
then waits ~40 ms for the client's delayed ACK: ``benchmarks/grpc_latency.py``). When the OpenTelemetry Collector
binary is found (``AIOTLP_OTELCOL``, or ``otelcol`` on PATH: ``scripts/build-otelcol``), aiotlp's processor over
each client (h2, grpc.aio, HTTP) runs again against it (Go, TCP_NODELAY set; debug exporter), in rows named
``..., Go collector``.
"""

from __future__ import annotations

import json
import selectors
import sys
import threading
import time
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, Final

from opentelemetry.sdk.trace import ReadableSpan, SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter, SpanExportResult

from aiotlp.sdk import TracerProvider as NativeTracerProvider

from ._common import (
    OFFICIAL,
    PROTOCOLS,
    Context,
    RssSampler,
    Sample,
    aiotlp_endpoint,
    child_arguments,
    official_exporter,
    percentile,
    run_child,
)

if TYPE_CHECKING:
    from aiotlp.testing import OtelCollector


class Counting(SpanExporter):
    """Counts the spans its inner exporter exported successfully."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.exported = 0

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        result: SpanExportResult = self.inner.export(spans)
        if result is SpanExportResult.SUCCESS:
            self.exported += len(spans)
        return result

    def shutdown(self) -> None:
        self.inner.shutdown()

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return True


def aiotlp_exporter(protocol: str, grpc_endpoint: str, http_endpoint: str) -> Any:
    import aiotlp.sdk

    return aiotlp.sdk.SpanExporter(aiotlp_endpoint(grpc_endpoint, http_endpoint, protocol), protocol=protocol)  # type: ignore[arg-type]


# side -> (protocol, grpc endpoint, http endpoint) -> (span processor, spans exported so far)
Pipeline = Callable[[str, str, str], tuple[SpanProcessor, Callable[[], int]]]
PIPELINES: dict[str, Pipeline] = {}


def _sdk_batch(make: Callable[[str, str, str], Any]) -> Pipeline:
    def build(protocol: str, grpc_endpoint: str, http_endpoint: str) -> tuple[SpanProcessor, Callable[[], int]]:
        counting = Counting(make(protocol, grpc_endpoint, http_endpoint))
        return BatchSpanProcessor(counting), lambda: counting.exported

    return build


def _aiotlp_pair(encode: bool, client: str = "h2") -> Pipeline:
    def build(protocol: str, grpc_endpoint: str, http_endpoint: str) -> tuple[SpanProcessor, Callable[[], int]]:
        import aiotlp.sdk
        from aiotlp.transport import make_transport, require_client

        # What the exporter's own client does when no transport_factory is given (sdk._client.load_client): the
        # client's modules imported now, on the application's thread. Imported at the first export instead, on
        # the bridge while the producer holds the GIL, they took ~150 ms and the queue overflowed at start-up.
        require_client(protocol, client, load=True)  # type: ignore[arg-type]
        # grpc.aio: the client picked here; HTTP and gRPC over h2 (the default client): the default transports, as a
        # user has them (and the native lane)
        factory = (
            None
            if protocol != "grpc" or client == "h2"
            else lambda config: make_transport(config, grpc_implementation=client)  # type: ignore[arg-type]
        )
        exporter = aiotlp.sdk.SpanExporter(
            aiotlp_endpoint(grpc_endpoint, http_endpoint, protocol),
            protocol=protocol,  # type: ignore[arg-type]
            transport_factory=factory,
        )
        processor = aiotlp.sdk.BatchSpanProcessor(exporter, encode_at_source=encode)
        return processor, lambda: processor.statistics().exported

    return build


class _Noop(SpanProcessor):
    def __init__(self) -> None:
        self.ended = 0

    def on_end(self, span: ReadableSpan) -> None:
        self.ended += 1


def _noop(protocol: str, grpc_endpoint: str, http_endpoint: str) -> tuple[SpanProcessor, Callable[[], int]]:
    processor = _Noop()
    return processor, lambda: processor.ended


class _EncodeOnly(SpanProcessor):
    """Encodes each span as aiotlp's processor does in ``on_end`` (compiled or pure, as chosen) and keeps nothing:
    the producer's own part of the cost, without the queue or the bridge."""

    def __init__(self) -> None:
        from aiotlp.sdk._encode_source import SourceEncoder

        self.ended = 0
        self._encode = SourceEncoder("spans").span_item

    def on_end(self, span: ReadableSpan) -> None:
        self._encode(span)
        self.ended += 1


def _encode_only(protocol: str, grpc_endpoint: str, http_endpoint: str) -> tuple[SpanProcessor, Callable[[], int]]:
    processor = _EncodeOnly()
    return processor, lambda: processor.ended


class _Answering:
    """A transport that answers every request at once with a full success (an empty protobuf response)."""

    content_type = "application/x-protobuf"
    compression = "none"

    async def send(self, body: bytes, *, content_encoding: str, timeout: float) -> Any:
        from aiotlp.transport import Reply

        return Reply(200, content_type=self.content_type)

    async def close(self) -> None:
        pass


def _no_network(protocol: str, grpc_endpoint: str, http_endpoint: str) -> tuple[SpanProcessor, Callable[[], int]]:
    """aiotlp's processor and exporter whole, over a transport that answers every request at once (no socket): the
    queue, the bridge, framing and settling, without the network or the collector."""
    import aiotlp.sdk

    exporter = aiotlp.sdk.SpanExporter(
        aiotlp_endpoint(grpc_endpoint, http_endpoint, protocol),
        protocol=protocol,  # type: ignore[arg-type]
        transport_factory=lambda config: _Answering(),
    )
    processor = aiotlp.sdk.BatchSpanProcessor(exporter)
    return processor, lambda: processor.statistics().exported


PIPELINES[OFFICIAL] = _sdk_batch(official_exporter)
PIPELINES["aiotlp"] = _sdk_batch(aiotlp_exporter)
PIPELINES["aiotlp processor"] = _aiotlp_pair(True)
PIPELINES["aiotlp processor, objects"] = _aiotlp_pair(False)
PIPELINES["aiotlp processor, grpc.aio"] = _aiotlp_pair(True, "grpcio")
PIPELINES["aiotlp processor, grpc.aio, objects"] = _aiotlp_pair(False, "grpcio")
PIPELINES["no-op"] = _noop
# where the cost is, against the no-op: the encoding in on_end alone, then the whole pipeline without the network
PIPELINES[ENCODE_ONLY := "encode only (no queue, no export)"] = _encode_only
PIPELINES[NO_NETWORK := "aiotlp processor, no network"] = _no_network
GRPC_ONLY = ("aiotlp processor, grpc.aio", "aiotlp processor, grpc.aio, objects", ENCODE_ONLY, NO_NETWORK)
# a side named "<pipeline>, aiotlp provider" makes its spans with aiotlp.sdk.TracerProvider instead of the SDK's;
# its share and CPU beyond are against the no-op producer on the same provider
NATIVE: Final = ", aiotlp provider"
SIDES: Final = (*PIPELINES, f"aiotlp processor{NATIVE}", f"no-op{NATIVE}")
# a side named "<pipeline>, Go collector" sends to the OpenTelemetry Collector instead of rotel
GO: Final = ", Go collector"
GO_SIDES: Final = ("aiotlp processor", "aiotlp processor, grpc.aio")
STARTUP: Final = 0.5
"""Seconds of a run counted as start-up (the first connection, the first exports) for the drops after it."""


class BridgeWaits:
    """Counts the bridge thread's wake-ups and zero-timeout ``epoll_wait`` calls (installed before it starts)."""

    def __init__(self) -> None:
        self.wakeups = self.zero = 0
        self.zero_seconds = 0.0
        self.export_seconds: list[float] = []
        self._producer = threading.get_ident()
        self._select = selectors.EpollSelector.select

    def install(self) -> None:
        select = self._select

        def counting(selector: selectors.EpollSelector, timeout: float | None = None) -> Any:
            if threading.get_ident() == self._producer:
                return select(selector, timeout)
            if timeout is not None and timeout <= 0:
                start = time.perf_counter()
                events = select(selector, timeout)
                self.zero += 1
                self.zero_seconds += time.perf_counter() - start
                return events
            events = select(selector, timeout)
            self.wakeups += bool(events)
            return events

        selectors.EpollSelector.select = counting  # type: ignore[method-assign,assignment]

        from aiotlp.sdk._adapters import FastAdapter

        export = FastAdapter._export
        durations = self.export_seconds

        async def timed(adapter: Any, items: Any) -> Any:
            start = time.perf_counter()
            try:
                return await export(adapter, items)
            finally:
                durations.append(time.perf_counter() - start)

        FastAdapter._export = timed  # type: ignore[method-assign]


def request_span(tracer: Any, i: int) -> None:
    """One span as an instrumented HTTP server makes it: 8 attributes and 1 event."""
    with tracer.start_as_current_span("GET /v1/users/{id}") as span:
        span.set_attributes(
            {
                "http.request.method": "GET",
                "http.route": "/v1/users/{id}",
                "url.full": f"https://api.example.com/v1/users/{i}?page=2",
                "http.response.status_code": 200,
                "server.address": "api.example.com",
                "server.port": 443,
                "user_agent.original": "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Firefox/128.0",
                "network.protocol.version": "1.1",
            }
        )
        span.add_event("message", {"message.type": "RECEIVED", "message.id": i})


def produce(side: str, protocol: str, grpc_endpoint: str, http_endpoint: str, seconds: float) -> dict[str, float]:
    """The child process's work: returns what the parent reports."""
    waits = BridgeWaits()
    if side.startswith("aiotlp processor"):
        waits.install()
    processor, exported = PIPELINES[side.removesuffix(NATIVE)](protocol, grpc_endpoint, http_endpoint)
    provider = NativeTracerProvider() if side.endswith(NATIVE) else TracerProvider()
    produced = 0
    if side == f"no-op{NATIVE}":  # no processor at all: a foreign one would make aiotlp's provider build objects
        exported = lambda: produced  # noqa: E731 - every span made counts as delivered, as the no-op's do
    else:
        provider.add_span_processor(processor)
    tracer = provider.get_tracer("bench.instrumentation", "0.1.0")
    statistics = getattr(processor, "statistics", None) if side.startswith("aiotlp processor") else None
    startup_dropped: int | None = None  # the processor's drops when the start-up ends
    rss = RssSampler().__enter__()
    cpu, start = time.process_time(), time.perf_counter()
    end, started = start + seconds, start + STARTUP
    while (now := time.perf_counter()) < end:
        if startup_dropped is None and statistics is not None and now >= started:
            startup_dropped = sum(statistics().dropped.values())
        for i in range(100):
            request_span(tracer, i)
        produced += 100
    queued_bytes = _queued_bytes(processor)
    bridge_cpu = _bridge_cpu() if side.startswith("aiotlp processor") else float("nan")
    provider.shutdown()  # flushes what is queued
    elapsed, cpu = time.perf_counter() - start, time.process_time() - cpu
    rss.__exit__()
    exports = max(exported() / 512, 1)
    extra = {}
    if side.startswith("aiotlp processor"):
        extra = {
            "wakeups_per_export": waits.wakeups / exports,
            "gil_waits_per_export": waits.zero / exports,
            "gil_wait_ms_per_export": waits.zero_seconds * 1000 / exports,
            "bridge_cpu_us_per_span": bridge_cpu / max(exported(), 1) * 1e6,
            "bytes_per_queued_span": queued_bytes,
            "export_ms_p50": percentile(waits.export_seconds, 0.5) * 1000,
            "lane_share": _lane_batches(processor) / exports * 100,
            # NaN for a run shorter than the start-up (--quick)
            "dropped_after_startup": float("nan")
            if startup_dropped is None
            else produced - exported() - startup_dropped,
        }
    return extra | {
        "delivered_per_s": exported() / elapsed,
        "dropped": produced - exported(),
        "produced": produced,
        "peak_rss_mib": rss.growth_mib,
        "peak_rss_total_mib": rss.peak_mib,
        "cpu_us_per_span": cpu / produced * 1e6,
    }


def _queued_bytes(processor: Any) -> float:
    """A queued span's bytes (encoded length + the bytes and tuple headers), or NaN for queued objects."""
    statistics = getattr(processor, "statistics", None)
    if statistics is None or not getattr(processor, "encodes_at_source", False):
        return float("nan")
    stats = statistics()
    if not stats.queued:
        return float("nan")
    return float(stats.queued_bytes / stats.queued + sys.getsizeof(b"") + sys.getsizeof((0, b"")))


def _lane_batches(processor: Any) -> float:
    """How many batches went on the processor's native lane (0 without one)."""
    inner = getattr(processor, "_processor", None)
    return float(getattr(getattr(inner, "lane", None), "sent", 0))


def _bridge_cpu() -> float:
    from aiotlp.sdk._bridge import get_bridge

    async def now() -> float:
        return time.thread_time()

    return get_bridge().submit(now()).result()


async def run(ctx: Context) -> list[Sample]:
    from aiotlp.testing import OtelCollector, find_otelcol  # here: not in the children, whose RSS is measured

    seconds = ctx.seconds(3.0, 0.3)
    go: OtelCollector | None = None
    try:
        find_otelcol()
    except FileNotFoundError as exc:
        print(f"batched_pipeline: no rows against the OpenTelemetry Collector: {exc}", file=sys.stderr)
    else:
        go = OtelCollector()  # the debug exporter: counts what it receives
        await go.start()
    try:
        return [sample for protocol in PROTOCOLS for sample in await _run_protocol(ctx, go, protocol, seconds)]
    finally:
        if go is not None:
            await go.stop()


async def _run_protocol(ctx: Context, go: OtelCollector | None, protocol: str, seconds: float) -> list[Sample]:
    rate = Sample(f"spans delivered/s, {protocol}", "spans/s")
    dropped = Sample(f"spans dropped, {protocol}", "spans", higher_is_better=False)
    after_startup = Sample(f"spans dropped after the first {STARTUP:g} s, {protocol}", "spans", higher_is_better=False)
    rss = Sample(f"peak RSS growth, {protocol}", "MiB", higher_is_better=False)
    rss_total = Sample(f"peak RSS of the process, {protocol}", "MiB", higher_is_better=False)
    cpu = Sample(f"CPU per produced span, {protocol}", "µs", higher_is_better=False)
    beyond = Sample(f"CPU per produced span beyond the no-op, {protocol}", "µs", higher_is_better=False)
    share = Sample(f"delivered, share of the no-op rate, {protocol}", "%")
    bridge = {
        key: Sample(f"{label}, {protocol}", unit, higher_is_better=False)
        for key, label, unit in (
            ("wakeups_per_export", "bridge wake-ups per export", "wake-ups"),
            ("gil_waits_per_export", "bridge GIL waits per export (zero-timeout epoll)", "waits"),
            ("gil_wait_ms_per_export", "bridge GIL wait per export (zero-timeout epoll)", "ms"),
            ("bridge_cpu_us_per_span", "bridge thread CPU per span sent", "µs"),
            ("bytes_per_queued_span", "bytes per queued span", "B"),
            ("export_ms_p50", "export wall time p50, under the producer", "ms"),
            ("lane_share", "batches sent on the native lane", "%"),
        )
    }
    runs = [(side, side, ctx.grpc_endpoint, ctx.http_endpoint) for side in SIDES]
    if go is not None:
        runs += [(side + GO, side, go.grpc_endpoint, go.http_endpoint) for side in GO_SIDES]
    for label, side, grpc_endpoint, http_endpoint in runs:
        if side in GRPC_ONLY and protocol != "grpc":
            continue
        r = await run_child(__name__, side, protocol, grpc_endpoint, http_endpoint, str(seconds), timeout=seconds + 60)
        rate.values[label], dropped.values[label] = r["delivered_per_s"], r["dropped"]
        rss.values[label], cpu.values[label] = r["peak_rss_mib"], r["cpu_us_per_span"]
        rss_total.values[label] = r["peak_rss_total_mib"]
        key = "dropped_after_startup"
        if key in r and r[key] == r[key]:  # not NaN
            after_startup.values[label] = r[key]
        for key, sample in bridge.items():
            if key in r and r[key] == r[key]:  # not NaN
                sample.values[label] = r[key]
    for label in rate.values:
        reference = f"no-op{NATIVE}" if label.endswith(NATIVE) else "no-op"
        if label != reference:
            beyond.values[label] = cpu.values[label] - cpu.values[reference]
            share.values[label] = rate.values[label] / max(rate.values[reference], 1e-9) * 100
    samples = [rate, share, dropped, after_startup, rss, rss_total, cpu, beyond, *bridge.values()]
    return [sample for sample in samples if sample.values]


def main() -> None:
    args = child_arguments(loop=False)
    result = produce(args.side, args.protocol, args.grpc_endpoint, args.http_endpoint, args.seconds)
    sys.stdout.write(json.dumps(result) + "\n")


if __name__ == "__main__":
    main()
