"""gRPC export latency: grpc.aio (``GrpcTransport``) vs aiotlp's own HTTP/2 client (``H2GrpcTransport``).

Each run sends ``--calls`` sequential exports of ``--spans`` spans (after 10 warm-up exports) through an
``OTLPExporter`` (one attempt, no retries) to the real rotel collector (blackhole exporter), to the OpenTelemetry
Collector (Go, debug exporter; when its binary is found: ``AIOTLP_OTELCOL`` or ``otelcol`` on PATH, see
``scripts/build-otelcol``) and to the FakeCollector (a grpc C-core server), each collector in its own process so
the client's CPU time is its own. Prints, per implementation and collector, the latency percentiles, how many calls
took more than 35 ms (the Nagle + delayed-ACK stall: rotel never sets TCP_NODELAY, the Go collector does; rotel
answers in three writes, a WINDOW_UPDATE, the HEADERS, then DATA and trailers, and Nagle holds each until the
client ACKs the one before: a client that delays its ACK holds the response ~40 ms), and the client's CPU time per
call (user + system, all threads: grpc.aio does its I/O on C-core threads). A second table times the transports
alone (``transport.send`` of the already encoded request, no exporter, no encoding); a third sends the same with
``--in-flight`` calls at once on one transport (several tasks, each sending again only after its reply): against
rotel grpc.aio stalls as often per call or more, a held segment holding every reply behind it, since calls that
all wait send nothing that would carry the ACK (what releases a held reply is a new request: aiotlp's SDK
processor keeps four exports in flight over gRPC so that it can send its next batch meanwhile, see
``aiotlp.sdk._bridge.GRPC_EXPORTS_IN_FLIGHT``). Runs are interleaved ``--rounds`` times; prints, asserts nothing.

    .venv/bin/python benchmarks/grpc_latency.py [--calls 300] [--spans 512] [--rounds 1] [--in-flight 2,4]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import statistics
import sys
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass

from aiotlp import OTLPExporter, RetryPolicy
from aiotlp.config import SignalConfig
from aiotlp.encoding import encode_traces
from aiotlp.model import Event, InstrumentationScope, Resource, Span
from aiotlp.testing import OtelCollector, Rotel, find_otelcol
from aiotlp.transport import Transport
from aiotlp.transport._grpc import GrpcTransport
from aiotlp.transport._h2grpc import H2GrpcTransport

IMPLEMENTATIONS: dict[str, Callable[[SignalConfig], Transport]] = {
    "grpc.aio": GrpcTransport,
    "h2": H2GrpcTransport,
}
STALL_MS = 35.0

# The FakeCollector records every request; forgetting them keeps it as fast at the end of a run as at the start.
_FAKE_COLLECTOR = """
import asyncio, sys
from aiotlp.testing import FakeCollector
async def main():
    async with FakeCollector() as collector:
        print(collector.grpc_endpoint, flush=True)
        done = asyncio.ensure_future(asyncio.get_running_loop().run_in_executor(None, sys.stdin.read))
        while not done.done():
            collector.clear()
            await asyncio.wait([done], timeout=0.2)
asyncio.run(main())
"""


def make_spans(count: int) -> list[Span]:
    resource = Resource({"service.name": "bench"})
    scope = InstrumentationScope("bench")
    return [
        Span(
            trace_id=i + 1,
            span_id=i + 1,
            name="GET /x",
            start_time_unix_nano=1,
            end_time_unix_nano=2,
            attributes={f"k{j}": f"value{j}" for j in range(8)},
            events=[Event("e", 1)],
            resource=resource,
            scope=scope,
        )
        for i in range(count)
    ]


@contextlib.asynccontextmanager
async def rotel() -> AsyncIterator[str]:
    async with Rotel() as collector:  # blackhole
        yield collector.grpc_endpoint


@contextlib.asynccontextmanager
async def otelcol() -> AsyncIterator[str]:
    async with OtelCollector() as collector:  # the debug exporter (one log line per request)
        yield collector.grpc_endpoint


@contextlib.asynccontextmanager
async def fake_collector() -> AsyncIterator[str]:
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-c", _FAKE_COLLECTOR, stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE
    )
    assert process.stdin is not None and process.stdout is not None
    try:
        endpoint = (await asyncio.wait_for(process.stdout.readline(), 30)).decode().strip()
        yield endpoint
    finally:
        process.stdin.close()
        try:
            await asyncio.wait_for(process.wait(), 5)
        except asyncio.TimeoutError:
            process.kill()
            await process.wait()


COLLECTORS = {"rotel": rotel, "otelcol": otelcol, "FakeCollector": fake_collector}


@dataclass
class Run:
    latencies_ms: list[float]
    cpu_us_per_call: float

    def percentile(self, q: float) -> float:
        ordered = sorted(self.latencies_ms)
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))]

    @property
    def stalls(self) -> int:
        return sum(x > STALL_MS for x in self.latencies_ms)


async def measure_transport(endpoint: str, implementation: str, body: bytes, calls: int) -> Run:
    transport = IMPLEMENTATIONS[implementation](SignalConfig(signal="traces", protocol="grpc", endpoint=endpoint))
    try:
        for _ in range(10):
            await transport.send(body, content_encoding="identity", timeout=10)
        latencies = []
        cpu_start = time.process_time()
        for _ in range(calls):
            start = time.perf_counter()
            await transport.send(body, content_encoding="identity", timeout=10)
            latencies.append((time.perf_counter() - start) * 1000)
        cpu = time.process_time() - cpu_start
    finally:
        await transport.close()
    return Run(latencies, cpu / calls * 1e6)


async def measure_in_flight(endpoint: str, implementation: str, body: bytes, calls: int, in_flight: int) -> Run:
    """``calls`` sends of ``body``, ``in_flight`` at a time on one transport (one task each, sending in turn)."""
    transport = IMPLEMENTATIONS[implementation](SignalConfig(signal="traces", protocol="grpc", endpoint=endpoint))
    latencies: list[float] = []

    async def sender(count: int) -> None:
        for _ in range(count):
            start = time.perf_counter()
            await transport.send(body, content_encoding="identity", timeout=10)
            latencies.append((time.perf_counter() - start) * 1000)

    try:
        for _ in range(10):
            await transport.send(body, content_encoding="identity", timeout=10)
        cpu_start = time.process_time()
        await asyncio.gather(*(sender(calls // in_flight) for _ in range(in_flight)))
        cpu = time.process_time() - cpu_start
    finally:
        await transport.close()
    return Run(latencies, cpu / len(latencies) * 1e6)


async def measure(endpoint: str, implementation: str, spans: list[Span], calls: int) -> Run:
    factory = IMPLEMENTATIONS[implementation]
    async with OTLPExporter(
        endpoint=endpoint, protocol="grpc", retry=RetryPolicy(max_attempts=1), transport_factory=factory
    ) as exporter:
        for _ in range(10):
            result = await exporter.export_traces(spans)
            assert result.ok, result.error
        latencies = []
        cpu_start = time.process_time()
        for _ in range(calls):
            start = time.perf_counter()
            result = await exporter.export_traces(spans)
            latencies.append((time.perf_counter() - start) * 1000)
            assert result.ok, result.error
        cpu = time.process_time() - cpu_start
    return Run(latencies, cpu / calls * 1e6)


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=300)
    parser.add_argument("--spans", type=int, default=512)
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--in-flight", default="2,4", help="comma-separated counts of sends at once ('' for none)")
    args = parser.parse_args()
    counts = [int(count) for count in args.in_flight.split(",") if count]
    spans = make_spans(args.spans)
    body = encode_traces(spans)
    collectors = dict(COLLECTORS)
    try:
        find_otelcol()
    except FileNotFoundError as exc:
        print(f"not measured against the OpenTelemetry Collector: {exc}", file=sys.stderr)
        del collectors["otelcol"]
    runs: dict[tuple[str, str], list[Run]] = {}
    bare: dict[tuple[str, str], list[Run]] = {}
    concurrent: dict[tuple[str, str], list[Run]] = {}
    for round_ in range(args.rounds):
        for collector_name, collector in collectors.items():
            async with collector() as endpoint:
                order = list(IMPLEMENTATIONS)
                for implementation in order[round_ % 2 :] + order[: round_ % 2]:  # alternate who goes first
                    run = await measure(endpoint, implementation, spans, args.calls)
                    runs.setdefault((collector_name, implementation), []).append(run)
                    run = await measure_transport(endpoint, implementation, body, args.calls)
                    bare.setdefault((collector_name, implementation), []).append(run)
                    for count in counts:
                        run = await measure_in_flight(endpoint, implementation, body, args.calls, count)
                        concurrent.setdefault((collector_name, f"{implementation} x{count}"), []).append(run)
    print(f"{args.calls} sequential exports of {args.spans} spans, {args.rounds} round(s); ms, client CPU us/call")
    report(runs)
    print()
    print(f"the transports alone: {args.calls} sends of the same encoded request ({len(body)} bytes)")
    report(bare)
    if concurrent:
        print()
        print(f"the transports alone, {args.in_flight} sends in flight at once (xN): {args.calls} sends in all")
        report(concurrent)


def report(runs: dict[tuple[str, str], list[Run]]) -> None:
    header = (
        f"{'collector':<14} {'client':<12} {'p50':>7} {'p90':>7} {'p99':>7} {'max':>7} {'>35ms':>6} {'cpu/call':>9}"
    )
    print(header)
    print("-" * len(header))
    for (collector_name, implementation), results in runs.items():
        p50 = statistics.median(r.percentile(0.5) for r in results)
        p90 = statistics.median(r.percentile(0.9) for r in results)
        p99 = statistics.median(r.percentile(0.99) for r in results)
        worst = max(max(r.latencies_ms) for r in results)
        stalls = "/".join(str(r.stalls) for r in results)
        cpu = statistics.median(r.cpu_us_per_call for r in results)
        print(
            f"{collector_name:<14} {implementation:<12} {p50:7.2f} {p90:7.2f} {p99:7.2f} {worst:7.2f} "
            f"{stalls:>6} {cpu:9.0f}"
        )


if __name__ == "__main__":
    asyncio.run(main())
