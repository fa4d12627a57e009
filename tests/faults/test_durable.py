"""The fault suite with the crash-safe disk queue on (``aiotlp.durable``): nothing accepted is lost.

Scenarios, each with its row in the summary table (load held, faults survived, bad inputs, items lost):

* secret canary: an auth header and URL credentials never reach the queue's files, nor any repr, statistic,
  result or DEBUG log line of the durable pipeline;
* hung collector (rotel frozen with SIGSTOP, forwarding to a FakeCollector): ``force_flush`` acknowledges
  (the items are durably queued), the queue's disk use stays where the appends put it (retries append
  nothing), and after SIGCONT everything is delivered: zero lost, duplicates (at-least-once) counted;
* nftables blackhole and reset (rotel in a network namespace, forwarding back to a FakeCollector): zero lost
  once the network heals, duplicates counted and reported;
* disk full (a small tmpfs) through ``BatchProcessor(queue_dir=...)``: drops counted exactly (``disk_full``),
  no exception reaches the application, sending resumes within 1 s once space is freed;
* kill -9 (tests/durable's crash child) with a torn record in the queue: the CRC catches it, it is counted and
  its file renamed aside; everything acknowledged before the kill is sent again;
* fuzzing (hypothesis) of corrupted and truncated segment files: only declared aiotlp errors escape, the
  records that come back are exactly records that were written, and every record skipped is counted.

The machinery comes from tests/durable (numbered self-checking spans, the crash child, the tmpfs fixture) and
tests/faults/_support.py. Long variants: ``.venv/bin/python -m pytest tests/faults/test_durable.py -m slow``.

Private, on purpose: the record format's constants (``aiotlp.durable._record``), to tear and corrupt records
where a crash would.
"""

from __future__ import annotations

import asyncio
import errno
import logging
import os
import random
import struct
import tempfile
import zlib
from collections import Counter
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from tests.durable.helpers import has_all, inner, make_spans, received_ids
from tests.durable.test_crash import POLICIES, one_run
from tests.durable.test_exporter import fill_disk, tmpfs  # noqa: F401  (tmpfs: a fixture, used by name)
from tests.faults._support import Namespace, TcpProxy, balanced, rotel_in
from tests.faults.summary import Figure
from tests.faults.test_secrets import CANARY, assert_clean

from aiotlp import AiotlpError, BatchProcessor, DurableExporter, FlushStatus, OTLPExporter
from aiotlp.durable import DurableQueue, DurableStatistics
from aiotlp.durable._record import HEADER, MAGIC
from aiotlp.model import Signal, Span
from aiotlp.testing import FakeCollector, Reply, Rotel

FAST = {"retry_initial": 0.05, "retry_max": 0.2}


def spans_in(count: int, start: int = 0, padding: int = 0) -> list[Span]:
    return make_spans(start, count, padding=padding)


def read_files(directory: str | Path) -> dict[str, bytes]:
    """Every file in the queue directory (segments, cursor, ``*.corrupt``), by name."""
    return {path.name: path.read_bytes() for path in Path(directory).iterdir() if path.is_file()}


def disk_bytes(directory: str | Path) -> int:
    """Bytes in the queue directory's files (segments, cursor, ``*.corrupt``)."""
    return sum(path.stat().st_size for path in Path(directory).iterdir() if path.is_file())


def delivery(sent: Iterable[int], collector: FakeCollector) -> tuple[int, int, int]:
    """``(delivered, duplicates, lost)`` of the span numbers ``sent``: each span checked against its CRC."""
    ids = received_ids(collector)
    wanted = set(sent)
    unique = wanted & set(ids)
    return len(unique), len(ids) - len(set(ids)), len(wanted - unique)


def ledger_holds(stats: DurableStatistics, produced: int) -> None:
    """Everything offered to the disk queue is accounted for: written (then delivered, refused, failed for good,
    or still queued) or dropped by reason."""
    assert produced == stats.accepted_items + stats.disk_full_items + stats.write_error_items + stats.too_large_items
    settled = stats.delivered_items + stats.rejected_items + stats.failed_items
    assert stats.accepted_items == settled + stats.queued_items, stats


# -- a: the secret canary never reaches the disk queue -----------------------------------------------------------

SECRET_CLIENTS = [
    pytest.param("grpc", id="grpc"),
    pytest.param("http/protobuf", id="http"),
    pytest.param("http/json", id="json"),
]


@pytest.mark.parametrize("protocol", SECRET_CLIENTS)
async def test_no_secret_reaches_the_disk_queue(
    tmp_path: Path, protocol: str, caplog: pytest.LogCaptureFixture, figure: Figure
) -> None:
    figure.criterion = "the canary is sent; it is in no queue file, repr, statistic, result or DEBUG log line"
    caplog.set_level(logging.DEBUG)
    headers = {"authorization": f"Bearer {CANARY}", "x-api-key": CANARY}
    async with FakeCollector(default=Reply(http_status=503, retry_after="0")) as collector:
        endpoint = collector.grpc_endpoint if protocol == "grpc" else collector.http_endpoint
        if protocol != "grpc":  # the URL's credentials become the authorization header
            endpoint = endpoint.replace("http://", f"http://user:{CANARY}@")
            del headers["authorization"]
        otlp = inner(endpoint, protocol, headers=headers)
        processor: BatchProcessor[Span] = BatchProcessor(
            otlp, Signal.TRACES, max_export_batch_size=5, schedule_delay=0.02, queue_dir=tmp_path
        )
        durable = processor.exporter
        assert isinstance(durable, DurableExporter)
        for span in spans_in(15):
            assert processor.put_nowait(span)
        flushed = await processor.force_flush(timeout=5)
        assert flushed.status is FlushStatus.SUCCESS, flushed  # durably queued, though the collector refuses
        await collector.wait_for(1)  # a delivery was tried, and refused (503): the records stay on disk
        queued = read_files(durable.directory)
        assert any(name.endswith(".seg") for name in queued)
        while_queued = (durable.statistics(), durable.queue.statistics())
        assert collector.received[0].headers["x-api-key"] == CANARY  # it was sent...
        refused = len(collector.received)
        collector.clear()  # from here on, only what the collector accepts is recorded
        collector.default = Reply()  # the collector comes back: the queue drains
        await collector.wait_for(has_all(range(15)), timeout=10)
        await processor.shutdown(timeout=5)
    files = read_files(durable.directory)
    for data in (*queued.values(), *files.values()):  # ... and never written
        assert CANARY.encode() not in data
    stats = balanced(processor.statistics())
    assert_clean(processor, durable, durable.queue, otlp, stats, *while_queued, durable.statistics())
    assert CANARY not in caplog.text
    assert caplog.records  # DEBUG logging was on (the clients' own debug lines are in it)
    ledger_holds(durable.statistics(), 15)
    _, duplicates, lost = delivery(range(15), collector)
    assert lost == 0 and stats.exported == 15
    figure.load = 15
    figure.faults = refused
    figure.lost = lost
    figure.count({"duplicates (at-least-once)": duplicates})
    figure.measured = (
        f"{len(queued) + len(files)} queue files read (while queued and after), {len(caplog.records)} log "
        f"records, {refused} requests refused (503) then delivered: canary 0x"
    )


# -- b: a hung collector (SIGSTOP) -----------------------------------------------------------------------------

HUNG_CLIENTS = [
    pytest.param("http/protobuf", None, id="http"),
    pytest.param("grpc", "h2", id="grpc-h2"),
    pytest.param("grpc", "grpcio", id="grpc-grpcio", marks=pytest.mark.slow),
]
QUEUE_CAP = 8 * 1024 * 1024


async def produce(processor: BatchProcessor[Span], start: int, seconds: float, per_tick: int) -> int:
    """Put ``per_tick`` numbered spans every 10 ms for ``seconds``; return the next number."""
    loop = asyncio.get_running_loop()
    end = loop.time() + seconds
    n = start
    while loop.time() < end:
        for span in spans_in(per_tick, n, padding=100):
            assert processor.put_nowait(span)
        n += per_tick
        await asyncio.sleep(0.01)
    return n


async def hung_collector(tmp_path: Path, protocol: str, implementation: str | None, seconds: float) -> Figure:
    figure = Figure(scenario="", family="")
    async with FakeCollector() as sink, Rotel(forward_to=sink.grpc_endpoint) as rotel:
        otlp = inner(
            rotel.grpc_endpoint if protocol == "grpc" else rotel.http_endpoint,
            protocol,
            timeout=0.6,
            attempt_timeout=0.2,
            grpc_implementation=implementation,
        )
        exporter = DurableExporter(otlp, tmp_path / "q", max_bytes=QUEUE_CAP, **FAST)  # type: ignore[arg-type]
        processor: BatchProcessor[Span] = BatchProcessor(
            exporter, Signal.TRACES, max_queue_size=4096, max_export_batch_size=200, schedule_delay=0.02
        )
        processor.start()
        loop = asyncio.get_running_loop()
        warm = await produce(processor, 0, 0.05, 20)
        await sink.wait_for(has_all(range(warm)))
        rotel.pause()
        try:
            produced = await produce(processor, warm, seconds, 20)
            start = loop.time()
            flushed = await processor.force_flush(timeout=2)
            flush_seconds = loop.time() - start
            assert flushed.status is FlushStatus.SUCCESS, flushed  # acknowledged: durably queued
            held = exporter.statistics()
            assert held.queued_items + held.delivered_items == produced, held  # nothing left in memory
            assert held.queued_items >= produced - warm, held  # nothing was delivered while hung
            assert 0 < held.queued_bytes <= QUEUE_CAP and disk_bytes(exporter.directory) <= QUEUE_CAP
            await asyncio.sleep(1.0)  # the collector stays hung while deliveries time out and are retried
            retried = exporter.statistics()
            assert retried.delivery_retries > held.delivery_retries  # they were retried...
            assert retried.queued_bytes == held.queued_bytes  # ... and appended nothing: disk use holds
        finally:
            rotel.resume()
        thawed = loop.time()
        await sink.wait_for(has_all(range(produced)), timeout=30)
        drain = loop.time() - thawed
        await processor.shutdown(timeout=5)
    stats = balanced(processor.statistics())
    final = exporter.statistics()
    ledger_holds(final, produced)
    assert stats.produced == stats.exported == produced
    assert final.queued_records == 0 and final.delivered_items >= produced
    delivered, duplicates, lost = delivery(range(produced), sink)
    assert lost == 0 and delivered == produced
    figure.load = produced
    figure.faults = final.delivery_retries
    figure.lost = lost
    figure.count({"duplicates (at-least-once)": duplicates})
    figure.measured = (
        f"hung {seconds + 1:.1f}s: force_flush acknowledged {held.queued_items} queued in {flush_seconds * 1000:.0f}"
        f" ms; disk {held.queued_bytes / 1024:.0f} KiB (cap {QUEUE_CAP >> 20} MiB), unchanged by retries; "
        f"drained {drain:.2f}s after SIGCONT, {duplicates} duplicates"
    )
    return figure


@pytest.mark.parametrize(("protocol", "implementation"), HUNG_CLIENTS)
async def test_a_hung_collector_with_the_disk_queue_loses_nothing(
    tmp_path: Path, protocol: str, implementation: str | None, figure: Figure
) -> None:
    figure.criterion = "force_flush acknowledges while hung; disk use bounded; after SIGCONT all delivered, 0 lost"
    result = await hung_collector(tmp_path, protocol, implementation, seconds=0.5)
    figure.load, figure.faults, figure.lost, figure.counted, figure.measured = (
        result.load, result.faults, result.lost, result.counted, result.measured
    )  # fmt: skip


@pytest.mark.slow
async def test_a_collector_hung_for_5_seconds_with_the_disk_queue_loses_nothing(tmp_path: Path, figure: Figure) -> None:
    figure.criterion = "hung 6 s at 2,000 spans/s: acknowledged, bounded on disk, all delivered, 0 lost"
    result = await hung_collector(tmp_path, "http/protobuf", None, seconds=5.0)
    figure.load, figure.faults, figure.lost, figure.counted, figure.measured = (
        result.load, result.faults, result.lost, result.counted, result.measured
    )  # fmt: skip


# -- c: blackhole and reset (nftables in a network namespace) --------------------------------------------------

PHASES = [
    ("healthy", None, 0.4),
    ("blackhole", "drop", 1.2),
    ("healed", None, 0.6),
    ("reset", "reject with tcp reset", 1.2),
    ("recovered", None, 0.4),
]
LONG_PHASES = [(phase, verdict, seconds * 5) for phase, verdict, seconds in PHASES]
NETWORK_CLIENTS = [
    pytest.param("http/protobuf", None, PHASES, id="http"),
    pytest.param("grpc", "h2", PHASES, id="grpc-h2"),
    pytest.param("grpc", "grpcio", PHASES, id="grpc-grpcio", marks=pytest.mark.slow),
    pytest.param("http/protobuf", None, LONG_PHASES, id="http-long", marks=pytest.mark.slow),
]


def _rules(verdict: str | None) -> str:
    rules = "flush ruleset\n"
    if verdict is not None:
        rules += (
            "table inet faults {\n  chain input {\n    type filter hook input priority 0; policy accept;\n"
            f"    tcp dport {{ 4317, 4318 }} {verdict}\n  }}\n}}\n"
        )
    return rules


@pytest.mark.parametrize(("protocol", "implementation", "phases"), NETWORK_CLIENTS)
async def test_blackhole_and_reset_with_the_disk_queue_lose_nothing(
    nft: Namespace,
    tmp_path: Path,
    protocol: str,
    implementation: str | None,
    phases: list[tuple[str, str | None, float]],
    figure: Figure,
) -> None:
    figure.criterion = "0 lost once the network heals; duplicates (at-least-once) counted; every drop by reason"
    async with FakeCollector() as sink, TcpProxy("127.0.0.1", sink.grpc_port, host=nft.host_ip) as back:
        http, grpc = await rotel_in(nft, forward_to=back.url)  # rotel in the namespace, forwarding back to us
        otlp = inner(
            grpc if protocol == "grpc" else http,
            protocol,
            timeout=0.6,
            attempt_timeout=0.2,
            grpc_implementation=implementation,
        )
        exporter = DurableExporter(otlp, tmp_path / "q", **FAST)  # type: ignore[arg-type]
        processor: BatchProcessor[Span] = BatchProcessor(
            exporter, Signal.TRACES, max_queue_size=4096, max_export_batch_size=256, schedule_delay=0.05
        )
        processor.start()
        produced = 0
        retries = {}
        for phase, verdict, seconds in phases:
            nft.nft(_rules(verdict))
            before = exporter.statistics().delivery_retries
            produced = await produce(processor, produced, seconds, 10)
            retries[phase] = exporter.statistics().delivery_retries - before
        loop = asyncio.get_running_loop()
        healed = loop.time()
        flushed = await processor.force_flush(timeout=5)
        await sink.wait_for(has_all(range(produced)), timeout=60)
        drain = loop.time() - healed
        await processor.shutdown(timeout=5)
    assert flushed.status is FlushStatus.SUCCESS, flushed
    stats = balanced(processor.statistics())
    final = exporter.statistics()
    ledger_holds(final, produced)
    assert stats.produced == produced and stats.dropped_total == 0, stats
    assert retries["blackhole"] > 0 and retries["reset"] > 0, retries  # the faults bit
    delivered, duplicates, lost = delivery(range(produced), sink)
    assert lost == 0 and delivered == produced
    figure.load = produced
    figure.faults = final.delivery_retries
    figure.lost = lost
    figure.count({"duplicates (at-least-once)": duplicates, "queue_full": stats.dropped["queue_full"]})
    figure.measured = (
        f"re-sends by phase {retries}; the rest of the backlog delivered {drain:.2f}s after the load stopped; "
        f"delivered {delivered}, duplicates {duplicates}"
    )


# -- d: disk full, through BatchProcessor(queue_dir=...) ------------------------------------------------------


async def disk_full_through_the_processor(mount: Path, collector: FakeCollector) -> dict[str, Any]:
    """Fill the tmpfs, emit, free it, emit: the counts and the time from freeing to delivery."""
    otlp = OTLPExporter(endpoint=collector.http_endpoint, protocol="http/protobuf", timeout=5)
    processor: BatchProcessor[Span] = BatchProcessor(
        otlp, Signal.TRACES, max_export_batch_size=5, schedule_delay=0.02, queue_dir=mount
    )
    durable = processor.exporter
    assert isinstance(durable, DurableExporter)
    loop = asyncio.get_running_loop()
    batch, rounds = 5, 6
    for span in spans_in(batch, 0, padding=1000):
        assert processor.put_nowait(span)
    await processor.force_flush(timeout=5)
    await collector.wait_for(has_all(range(batch)))
    filler = mount / "filler"
    assert fill_disk(filler) == errno.ENOSPC
    outcomes = []
    for n in range(1, rounds + 1):  # each batch is one record over a 4 KiB page: none fits on the full disk
        for span in spans_in(batch, n * batch, padding=1000):
            assert processor.put_nowait(span)  # the application never sees the full disk
        outcomes.append(await processor.force_flush(timeout=5))
    full = durable.statistics()
    filler.unlink()
    freed = loop.time()
    for span in spans_in(batch, 100, padding=1000):
        assert processor.put_nowait(span)
    await processor.force_flush(timeout=5)
    await collector.wait_for(has_all(range(100, 100 + batch)), timeout=5)
    resumed = loop.time() - freed
    await processor.shutdown(timeout=5)
    return {
        "processor": balanced(processor.statistics()),
        "full": full,
        "final": durable.statistics(),
        "outcomes": outcomes,
        "resumed": resumed,
        "dropped": batch * rounds,
        "produced": batch * (rounds + 2),
    }


async def test_a_full_disk_through_the_batch_processor_drops_exactly_and_resumes(
    tmpfs: Path,  # noqa: F811
    collector: FakeCollector,
    figure: Figure,
) -> None:
    figure.criterion = "disk_full drops exact; no exception reaches the app; sending resumes < 1 s after freeing"
    run = await disk_full_through_the_processor(tmpfs, collector)
    full: DurableStatistics = run["full"]
    stats = run["processor"]
    assert (full.disk_full_items, full.disk_full_batches) == (run["dropped"], run["dropped"] // 5)
    assert full.io_errors >= full.disk_full_batches  # each ENOSPC counted (and logged, rate-limited)
    assert all(o.status is FlushStatus.FAILURE and o.dropped == 5 for o in run["outcomes"]), run["outcomes"]
    assert "disk" in stats.last_error and "full" in stats.last_error, stats.last_error
    assert stats.produced == run["produced"]
    assert stats.exported == run["produced"] - run["dropped"] and stats.dropped_total == run["dropped"]
    assert stats.dropped["disk_full"] == run["dropped"]  # by its own reason
    ledger_holds(run["final"], run["produced"])
    assert run["resumed"] < 1.0, run["resumed"]
    ids = received_ids(collector)
    assert sorted(set(ids)) == [*range(5), *range(100, 105)]  # the dropped ones never went out; no others lost
    assert run["final"].corrupt_records == 0
    figure.load = stats.produced
    figure.faults = full.disk_full_batches
    figure.lost = stats.produced - stats.exported - stats.dropped_total
    figure.count({"disk_full": full.disk_full_items})
    figure.measured = (
        f"tmpfs 1 MiB filled: {full.disk_full_batches} batches refused (ENOSPC); written and delivered "
        f"{run['resumed'] * 1000:.0f} ms after space returned; the processor's drops: "
        f"{ {reason: n for reason, n in stats.dropped.items() if n} }"
    )


# -- e: kill -9 with a torn record in the queue ---------------------------------------------------------------

TORN_FIRST = 1_000_000  # span numbers of the records written before the crash child runs


def queue_with_a_torn_record(directory: Path, records: int, per_record: int) -> list[int]:
    """Write ``records`` good records of numbered spans, then one whose payload's end never reached the disk
    (zeros: a torn write, as a crash leaves it when the kernel had written part of a record). Returns the span
    numbers of the good records."""
    otlp = inner("http://127.0.0.1:9")  # never used to send: only its encoder
    good: list[int] = []
    with DurableQueue(directory) as queue:
        for n in range(records + 1):
            first = TORN_FIRST + n * per_record
            requests, _ = otlp.encode_requests(Signal.TRACES, spans_in(per_record, first, padding=50))
            for request in requests:
                queue.append(Signal.TRACES, 0, request.items, request.body)
            if n < records:
                good.extend(range(first, first + per_record))
        (segment,) = [p for p in directory.iterdir() if p.name.endswith(".seg")]
    data = bytearray(segment.read_bytes())
    last = record_offsets(bytes(data))[-1]
    torn_from = last + HEADER + (len(data) - last - HEADER) // 2  # the second half of its payload is zeros
    data[torn_from:] = bytes(len(data) - torn_from)
    segment.write_bytes(bytes(data))
    return good


def record_offsets(data: bytes) -> list[int]:
    """Where each record of a segment file starts, walking the length prefixes (up to the first bad one)."""
    offsets = []
    offset = len(MAGIC)
    while offset + HEADER <= len(data):
        offsets.append(offset)
        (length,) = struct.unpack_from("<Q", data, offset)
        offset += HEADER + length
    return offsets


async def kill_9_with_torn_records(tmp_path: Path, runs: int, figure: Figure) -> None:
    rng = random.Random(random.randrange(1 << 30))
    totals: Counter[str] = Counter()
    async with FakeCollector() as collector:
        for n in range(runs):
            directory = tmp_path / f"run{n}"
            good = queue_with_a_torn_record(directory, records=3, per_record=10)
            result = await one_run(directory, collector, POLICIES[n % len(POLICIES)], rng)  # kill -9, restart
            ids = set(received_ids(collector))
            assert set(good) <= ids  # the records before the torn one were sent...
            assert not ids & set(range(TORN_FIRST + 30, TORN_FIRST + 40))  # ... the torn one never was
            assert result["corrupt"] >= 1  # caught by the CRC, and counted
            assert any(p.name.endswith(".corrupt") for p in directory.iterdir())  # renamed aside, not deleted
            totals.update(
                acked=int(result["acked"]), delivered=int(result["delivered"]), corrupt=int(result["corrupt"])
            )
            totals["first_send_ms"] = max(totals["first_send_ms"], int(result["first_send"] * 1000))
            totals["good"] += len(good)
    assert totals["acked"] > 0, "no run acknowledged anything: the scenario tested nothing"
    figure.load = totals["acked"] + totals["good"]
    figure.faults = runs
    figure.bad_inputs = totals["corrupt"]
    figure.count({"torn records skipped (CRC)": totals["corrupt"]})
    figure.measured = (
        f"{runs} kills: {totals['acked']} spans acknowledged before the kill, all re-sent "
        f"({totals['delivered']} deliveries with duplicates); first send <= {totals['first_send_ms']} ms "
        "after the restart"
    )


async def test_kill_9_with_a_torn_record_loses_nothing_acknowledged(tmp_path: Path, figure: Figure) -> None:
    figure.criterion = "every span acknowledged before kill -9 re-sent; the torn record caught by its CRC, counted"
    await kill_9_with_torn_records(tmp_path, 3, figure)


@pytest.mark.slow
async def test_kill_9_with_a_torn_record_20_runs(tmp_path: Path, figure: Figure) -> None:
    figure.criterion = "20 kills: every acknowledged span re-sent; torn records caught by their CRC, counted"
    await kill_9_with_torn_records(tmp_path, 20, figure)


# -- f: fuzzing the segment files -----------------------------------------------------------------------------

_CHECKS = [HealthCheck.too_slow, HealthCheck.function_scoped_fixture]
QUICK = settings(max_examples=100, deadline=None, suppress_health_check=_CHECKS)
LONG = settings(max_examples=2000, deadline=None, suppress_health_check=_CHECKS)
RECORDS = [bytes([n]) * (20 + 7 * n) for n in range(12)]


def _write_queue(directory: str) -> None:
    """Three segments of four records each, nothing acknowledged."""
    record = HEADER + 8 + len(RECORDS[-1])
    with DurableQueue(directory, segment_bytes=len(MAGIC) + 4 * record, max_record_bytes=4096) as queue:
        for n, body in enumerate(RECORDS):
            queue.append(Signal.TRACES, 0, n + 1, body)


DAMAGE = st.one_of(
    st.tuples(st.just("flip"), st.integers(0, 10_000), st.integers(1, 255)),
    st.tuples(st.just("truncate"), st.integers(0, 10_000), st.just(0)),
    st.tuples(st.just("garbage"), st.integers(0, 10_000), st.integers(1, 200)),
    st.tuples(st.just("length"), st.sampled_from([2**62, 2**64 - 1, 2**31, 4097, 7, 0]), st.integers(0, 3)),
    st.tuples(st.just("cursor"), st.integers(0, 40), st.integers(0, 255)),
)


def _damage(directory: str, damage: list[tuple[str, int, int]], segment_choice: list[int]) -> bool:
    """Apply ``damage``; return whether a segment was cut exactly at a record boundary (or to nothing): what is
    left then looks like a shorter, intact segment (or a segment created just before a crash, which the queue
    removes as empty), so the records cut off cannot be detected, by design of an append-only log."""
    boundary = False
    segments = sorted(p for p in Path(directory).iterdir() if p.name.endswith(".seg"))
    for (kind, a, b), choice in zip(damage, segment_choice, strict=False):
        path = segments[choice % len(segments)]
        data = bytearray(path.read_bytes())
        if kind == "flip" and data:
            data[a % len(data)] ^= b
        elif kind == "truncate":
            cut = a % (len(data) + 1)
            boundary |= cut < len(data) and cut in {0, len(MAGIC), *record_offsets(bytes(data))}
            del data[cut:]
        elif kind == "garbage":
            at = a % (len(data) + 1)
            data[at:at] = random.Random(a).randbytes(b)
        elif kind == "length":  # the length prefix of the segment's record number b
            offsets = record_offsets(bytes(data))
            if offsets:
                struct.pack_into("<Q", data, offsets[b % len(offsets)], a)
        elif kind == "cursor":
            cursor = Path(directory) / "cursor"
            blob = bytearray(cursor.read_bytes()) if cursor.exists() else bytearray(20)
            if blob:
                blob[a % len(blob)] ^= b or 1
            cursor.write_bytes(bytes(blob))
            continue
        path.write_bytes(bytes(data))
    return boundary


def _drain(directory: str) -> tuple[list[bytes], int]:
    """Open the damaged queue, read and acknowledge everything: the bodies read, and the records skipped."""
    with DurableQueue(directory, max_record_bytes=4096) as queue:
        queue.apply_scan(queue.scan_backlog())
        bodies = []
        while (record := queue.read()) is not None:
            assert record.items == RECORDS.index(record.body) + 1  # a record comes back whole or not at all
            bodies.append(record.body)
            queue.ack(record)
        assert queue.is_empty()
        return bodies, queue.statistics().corrupt_records


QUICK_TALLY: Counter[str] = Counter()
LONG_TALLY: Counter[str] = Counter()


def _fuzz_once(damage: list[tuple[str, int, int]], segment_choice: list[int], tally: Counter[str]) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        directory = os.path.join(tmp, "q")
        _write_queue(directory)
        boundary = _damage(directory, damage, segment_choice)
        try:
            bodies, skipped = _drain(directory)
        except AiotlpError:  # a declared error (the directory cannot be used), said so; anything else fails
            tally["refused"] += 1
            return
        assert len(bodies) == len(set(bodies))  # no record twice in one run
        assert bodies == [b for b in RECORDS if b in bodies]  # in the order written
        missing = len(RECORDS) - len(bodies)
        if missing and not skipped:
            assert boundary, "records went missing without being counted"
            tally["cut at a record boundary"] += 1
        tally["opened"] += 1
        tally["skipped"] += skipped
        tally["missing"] += missing
        tally["read back"] += len(bodies)
        # a second open finds nothing more: what was read was acknowledged, the damage renamed aside
        assert _drain(directory)[0] == []


def _fuzz_figure(figure: Figure, tally: Counter[str]) -> None:
    tally["examples"] += 1
    figure.criterion = "only aiotlp errors escape; records read back are records written, whole; skips counted"
    figure.bad_inputs = tally["examples"]
    figure.lost = 0
    figure.count({"damaged records skipped": tally["skipped"], "queues refused (declared error)": tally["refused"]})
    figure.measured = (
        f"{tally['opened']} damaged queues opened: {tally['read back']} records read back whole, "
        f"{tally['missing']} behind the damage, counted, except in {tally['cut at a record boundary']} queues "
        "cut exactly at a record boundary (undetectable: a shorter intact segment)"
    )


@QUICK
@given(damage=st.lists(DAMAGE, min_size=1, max_size=3), choice=st.lists(st.integers(0, 2), min_size=3, max_size=3))
def test_fuzzed_segment_files_let_only_declared_errors_escape(
    damage: list[tuple[str, int, int]], choice: list[int], figure: Figure
) -> None:
    _fuzz_once(damage, choice, QUICK_TALLY)
    _fuzz_figure(figure, QUICK_TALLY)


@pytest.mark.slow
@LONG
@given(damage=st.lists(DAMAGE, min_size=1, max_size=5), choice=st.lists(st.integers(0, 2), min_size=5, max_size=5))
def test_fuzzed_segment_files_let_only_declared_errors_escape_long(
    damage: list[tuple[str, int, int]], choice: list[int], figure: Figure
) -> None:
    _fuzz_once(damage, choice, LONG_TALLY)
    _fuzz_figure(figure, LONG_TALLY)


def test_a_record_is_framed_with_a_crc_over_its_length_and_payload() -> None:
    """The premise of the fuzzing above, checked on real bytes: flipping any payload byte breaks the CRC."""
    with tempfile.TemporaryDirectory() as tmp:
        _write_queue(tmp)
        segment = sorted(p for p in Path(tmp).iterdir() if p.name.endswith(".seg"))[0]
        data = segment.read_bytes()
    (length,) = struct.unpack_from("<Q", data, len(MAGIC))
    (crc,) = struct.unpack_from("<I", data, len(MAGIC) + 8)
    payload = data[len(MAGIC) + HEADER : len(MAGIC) + HEADER + length]
    assert crc == zlib.crc32(payload, zlib.crc32(data[len(MAGIC) : len(MAGIC) + 8]))
