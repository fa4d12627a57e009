"""Benchmark of the disk queue (a program, not a test: it prints, it never asserts timings).

    .venv/bin/python benchmarks/durable_queue.py [--records N] [--spans-per-record K]

* append: ``DurableExporter.export_traces`` of K-span batches into the queue (the collector is down, nothing is
  delivered meanwhile), per fsync policy: batches/s, spans/s and MB/s, median of 5 (min..max), including the
  encoding; and ``DurableQueue.append`` alone (bytes already encoded) for the raw write cost;
* replay: a backlog of N records of K spans left on disk, delivered by a new DurableExporter to the real rotel
  collector (blackhole exporter, another process), over HTTP/protobuf: requests/s and spans/s;
* read: ``DurableQueue.read`` + ``ack`` of the same backlog without any network (the queue's own cost).

Runs on the default event loop without debug mode. Needs the ``rotel`` test dependency for the replay row.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", ".."))


from aiotlp import DurableExporter, OTLPExporter, RetryPolicy
from aiotlp.durable import DurableQueue
from aiotlp.model import Resource, Signal, Span
from aiotlp.testing import Rotel, free_port

REPEAT = 5

_RESOURCE = Resource({"service.name": "durable-bench"})


def make_spans(start: int, count: int) -> list[Span]:
    """``count`` spans numbered from ``start``, each with one attribute."""
    t0 = 1_700_000_000_000_000_000
    return [
        Span(
            trace_id=(n + 1).to_bytes(16, "big"),
            span_id=(n + 1).to_bytes(8, "big"),
            name=f"s{n}",
            start_time_unix_nano=t0 + n,
            end_time_unix_nano=t0 + n + 1000,
            attributes={"n": n},
            resource=_RESOURCE,
        )
        for n in range(start, start + count)
    ]


def inner(endpoint: str) -> OTLPExporter:
    """The exporter behind the disk queue: HTTP/protobuf, retrying fast."""
    return OTLPExporter(
        endpoint=endpoint,
        protocol="http/protobuf",
        timeout=1.0,
        retry=RetryPolicy(initial_backoff=0.05, max_backoff=0.2, jitter=0.1),
    )


def row(name: str, values: list[float], unit: str) -> None:
    print(f"  {name:42s} {statistics.median(values):12,.0f} {unit:10s} ({min(values):,.0f} .. {max(values):,.0f})")


async def timed(run: Callable[[], Awaitable[None]]) -> float:
    start = time.perf_counter()
    await run()
    return time.perf_counter() - start


async def bench_append(records: int, spans: int) -> None:
    batches = [make_spans(n * spans, spans) for n in range(records)]
    size = len(inner("http://127.0.0.1:9").encode_requests(Signal.TRACES, batches[0])[0][0].body)
    print(f"append: {records} batches of {spans} spans (~{size} bytes each), collector down")
    for policy in ("never", "interval", "always"):
        rates: list[float] = []
        for _ in range(REPEAT):
            with tempfile.TemporaryDirectory() as directory:
                exporter = DurableExporter(
                    inner(f"http://127.0.0.1:{free_port()}"), directory, fsync=policy, retry_initial=60, retry_max=60
                )  # type: ignore[arg-type]
                count = records if policy != "always" else max(records // 10, 10)

                async def run(exporter: DurableExporter = exporter, count: int = count) -> None:
                    for batch in batches[:count]:
                        await exporter.export_traces(batch)
                    await exporter.force_flush()

                rates.append(count / await timed(run))
                await exporter.shutdown(timeout=0)
        row(f"fsync={policy} batches/s", rates, "batches/s")
        row(f"fsync={policy} spans/s", [r * spans for r in rates], "spans/s")
        row(f"fsync={policy} MB/s", [r * size / 1e6 for r in rates], "MB/s")
    body = b"x" * size
    raw: list[float] = []
    for _ in range(REPEAT):
        with tempfile.TemporaryDirectory() as directory, DurableQueue(directory, fsync=False) as queue:
            start = time.perf_counter()
            for _ in range(records):
                queue.append(Signal.TRACES, 0, spans, body)
            raw.append(records / (time.perf_counter() - start))
    row("DurableQueue.append alone (no encoding)", raw, "records/s")


def make_backlog(directory: str, records: int, spans: int) -> None:
    base = inner("http://127.0.0.1:9")
    with DurableQueue(directory) as queue:
        for n in range(records):
            body = base.encode_requests(Signal.TRACES, make_spans(n * spans, spans))[0][0].body
            queue.append(Signal.TRACES, 0, spans, body)


async def bench_replay(records: int, spans: int) -> None:
    print(f"replay: a backlog of {records} records of {spans} spans")
    reads: list[float] = []
    for _ in range(REPEAT):
        with tempfile.TemporaryDirectory() as directory:
            make_backlog(directory, records, spans)
            with DurableQueue(directory) as queue:
                start = time.perf_counter()
                while (record := queue.read()) is not None:
                    queue.ack(record)
                reads.append(records / (time.perf_counter() - start))
    row("DurableQueue.read + ack (no network)", reads, "records/s")
    try:
        rotel = Rotel()
        await rotel.start()
    except Exception as exc:
        print(f"  (replay to rotel skipped: {exc})")
        return
    try:
        for in_flight in (1, 2, 4):
            rates: list[float] = []
            for _ in range(REPEAT):
                with tempfile.TemporaryDirectory() as directory:
                    make_backlog(directory, records, spans)
                    exporter = DurableExporter(inner(rotel.http_endpoint), directory, max_in_flight=in_flight)

                    async def run(exporter: DurableExporter = exporter) -> None:
                        exporter.start()
                        await exporter.shutdown(timeout=120)

                    elapsed = await timed(run)
                    assert exporter.statistics().delivered_items == records * spans, exporter.statistics()
                    rates.append(records / elapsed)
            row(f"replay to rotel, max_in_flight={in_flight}", rates, "requests/s")
            row(f"replay to rotel, max_in_flight={in_flight}", [r * spans for r in rates], "spans/s")
    finally:
        await rotel.stop()


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--records", type=int, default=1000)
    parser.add_argument("--spans-per-record", type=int, default=100)
    args = parser.parse_args()
    print(f"python {sys.version.split()[0]}, {os.cpu_count()} cpus, load {os.getloadavg()[0]:.1f}")
    await bench_append(args.records, args.spans_per_record)
    await bench_replay(args.records, args.spans_per_record)


if __name__ == "__main__":
    asyncio.run(main())
