"""DurableExporter against a real FakeCollector: delivery over every protocol, outages, permanent failures,
restarts, the fsync policies, the byte cap, secrets, and use as a drop-in exporter."""

from __future__ import annotations

import asyncio
import errno
import os
import subprocess
import threading
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from tests import samples
from tests.durable.helpers import has_all, inner, make_spans, received_ids

from aiotlp import (
    ConfigurationError,
    DurableExporter,
    ExporterShutdownError,
    QueueFullError,
    QueueLockedError,
    RequestTooLargeError,
    RetryPolicy,
)
from aiotlp.config import queue_dir_from_env
from aiotlp.durable import OsFileOps
from aiotlp.model import Signal
from aiotlp.processing import BatchProcessor
from aiotlp.testing import FakeCollector, Reply, free_port

FAST = {"retry_initial": 0.05, "retry_max": 0.2}


@pytest.fixture
async def collector() -> AsyncIterator[FakeCollector]:
    async with FakeCollector() as running:
        yield running


async def acknowledged(exporter: DurableExporter, items: int, timeout: float = 10.0) -> None:
    """Wait until ``items`` items were delivered and acknowledged. The FakeCollector records a request before it
    answers, so its ``wait_for`` returns before the exporter has read the answer; which of the two runs first
    after that differs between Python versions (3.11 happened to finish the delivery first)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while exporter.statistics().delivered_items < items:
        if loop.time() > deadline:
            raise TimeoutError(f"{exporter.statistics().delivered_items} of {items} items acknowledged")
        await asyncio.sleep(0.001)


def dead_endpoint() -> str:
    return f"http://127.0.0.1:{free_port()}"


@pytest.mark.parametrize("protocol", ["http/protobuf", "http/json", "grpc"])
async def test_every_signal_is_queued_then_delivered(tmp_path: Path, collector: FakeCollector, protocol: str) -> None:
    endpoint = collector.grpc_endpoint if protocol == "grpc" else collector.http_endpoint
    async with DurableExporter(inner(endpoint, protocol), tmp_path / "q", **FAST) as exporter:  # type: ignore[arg-type]
        results = [
            await exporter.export_traces(samples.spans(6)),
            await exporter.export_logs(samples.logs()),
            await exporter.export_metrics(samples.metrics()),
        ]
        for result in results:
            assert result.ok and result.items > 0 and result.requests == 0
        await collector.wait_for(3)
    assert {r.signal for r in collector.received} == set(Signal)
    assert len(collector.spans()) == 6
    stats = exporter.statistics()
    total = sum(r.items for r in results)
    assert stats.accepted_items == stats.delivered_items == total
    assert (stats.queued_records, stats.queued_items, stats.failed_items, stats.corrupt_records) == (0, 0, 0, 0)


async def test_export_encoded_has_the_signature_of_the_inner_exporter(tmp_path: Path, collector: FakeCollector) -> None:
    base = inner(collector.http_endpoint)
    spans = make_spans(0, 10)
    body = base.encode_requests(Signal.TRACES, spans)[0][0].body
    async with DurableExporter(base, tmp_path / "q", **FAST) as exporter:  # type: ignore[arg-type]
        result = await exporter.export_encoded(
            Signal.TRACES, ["a", "b"], lambda items: body, body=body, count=lambda items: 10, timeout=1.0
        )
        assert (result.items, result.accepted) == (10, 10)
        await collector.wait_for(has_all(range(10)))
    assert collector.received[0].body == body


async def test_an_outage_loses_nothing_and_delivery_resumes(tmp_path: Path, collector: FakeCollector) -> None:
    base = inner(collector.http_endpoint, retry=RetryPolicy(max_attempts=1))
    async with DurableExporter(base, tmp_path / "q", **FAST) as exporter:  # type: ignore[arg-type]
        await collector.stop()
        for start in range(0, 200, 20):
            result = await exporter.export_traces(make_spans(start, 20))
            assert result.accepted == 20
        assert await exporter.force_flush()
        await collector.start()
        await collector.wait_for(has_all(range(200)), timeout=10)
    stats = exporter.statistics()
    assert stats.delivery_retries > 0
    assert stats.delivered_items >= 200 and stats.queued_items == 0
    assert sorted(set(received_ids(collector))) == list(range(200))


async def test_retryable_statuses_keep_the_record_until_it_is_accepted(
    tmp_path: Path, collector: FakeCollector
) -> None:
    collector.script(*[Reply(http_status=503)] * 3, Reply(http_status=429, retry_after="0"))
    base = inner(collector.http_endpoint, retry=RetryPolicy(max_attempts=1))
    async with DurableExporter(base, tmp_path / "q", **FAST) as exporter:  # type: ignore[arg-type]
        await exporter.export_traces(make_spans(0, 5))
        await collector.wait_for(5)
    assert exporter.statistics().delivery_retries == 4
    assert exporter.statistics().delivered_items == 5
    assert received_ids(collector)[-5:] == [0, 1, 2, 3, 4]


async def test_permanent_refusals_and_partial_success_are_counted_and_acknowledged(
    tmp_path: Path, collector: FakeCollector
) -> None:
    collector.script(Reply(http_status=400, message="bad"), Reply(rejected=2, error_message="too old"))
    async with DurableExporter(inner(collector.http_endpoint), tmp_path / "q", max_in_flight=1, **FAST) as exporter:  # type: ignore[arg-type]
        for start in (0, 10, 20):
            await exporter.export_traces(make_spans(start, 10))
        await collector.wait_for(3)
    stats = exporter.statistics()
    assert (stats.failed_items, stats.rejected_items, stats.delivered_items) == (10, 2, 18)
    assert stats.queued_records == 0
    async with DurableExporter(inner(collector.http_endpoint), tmp_path / "q", **FAST) as again:  # type: ignore[arg-type]
        assert again.queue.read() is None  # nothing left behind


async def test_a_restart_replays_what_a_dead_collector_never_got(tmp_path: Path, collector: FakeCollector) -> None:
    directory = tmp_path / "q"
    first = DurableExporter(inner(dead_endpoint()), directory, **FAST)
    for start in range(0, 100, 25):
        await first.export_traces(make_spans(start, 25))
    assert await first.force_flush()
    await first.shutdown(timeout=0.2)
    assert first.statistics().delivered_items == 0
    async with DurableExporter(inner(collector.http_endpoint), directory, **FAST) as second:  # type: ignore[arg-type]
        await collector.wait_for(has_all(range(100)))
    assert second.statistics().delivered_items == 100
    assert sorted(received_ids(collector)) == list(range(100))


async def test_a_record_in_another_wire_format_fails_counted(tmp_path: Path, collector: FakeCollector) -> None:
    directory = tmp_path / "q"
    first = DurableExporter(inner(dead_endpoint(), "http/json"), directory, **FAST)
    await first.export_traces(make_spans(0, 4))
    await first.shutdown(timeout=0)
    async with DurableExporter(inner(collector.http_endpoint), directory, **FAST) as second:  # type: ignore[arg-type]
        await second.export_traces(make_spans(4, 3))
        await collector.wait_for(has_all(range(4, 7)))
    assert second.statistics().failed_items == 4
    assert collector.bad_requests == []


async def test_a_second_exporter_on_the_directory_is_refused(tmp_path: Path) -> None:
    async with DurableExporter(inner(dead_endpoint()), tmp_path / "q"):
        with pytest.raises(QueueLockedError, match=str(tmp_path / "q")):
            DurableExporter(inner(dead_endpoint()), tmp_path / "q")


async def test_export_after_shutdown_fails_without_raising(tmp_path: Path) -> None:
    exporter = DurableExporter(inner(dead_endpoint()), tmp_path / "q")
    await exporter.shutdown()
    result = await exporter.export_traces(make_spans(0, 3))
    assert (result.items, result.failed) == (3, 3)
    assert isinstance(result.error, ExporterShutdownError)
    assert await exporter.force_flush()
    await exporter.shutdown()


async def test_bad_arguments_are_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match="fsync"):
        DurableExporter(inner(dead_endpoint()), tmp_path / "a", fsync="sometimes")  # type: ignore[arg-type]
    with pytest.raises(ConfigurationError, match="fsync_interval"):
        DurableExporter(inner(dead_endpoint()), tmp_path / "b", fsync_interval=0)
    with pytest.raises(ConfigurationError, match="retry_max"):
        DurableExporter(inner(dead_endpoint()), tmp_path / "c", retry_initial=2, retry_max=1)
    with pytest.raises(ConfigurationError, match="inner"):
        DurableExporter(object(), tmp_path / "d")  # type: ignore[arg-type]


async def test_a_single_item_over_the_request_cap_is_dropped_counted(tmp_path: Path) -> None:
    base = inner(dead_endpoint(), max_request_bytes=2000)
    async with DurableExporter(base, tmp_path / "q") as exporter:
        result = await exporter.export_traces([*make_spans(0, 2), *make_spans(2, 1, padding=5000)])
        assert (result.items, result.accepted, result.dropped) == (3, 2, 1)
        assert isinstance(result.error, RequestTooLargeError)
        assert exporter.statistics().too_large_items == 1
        await exporter.shutdown(timeout=0)


async def test_byte_cap_drops_exact_batches_and_never_raises(tmp_path: Path, collector: FakeCollector) -> None:
    base = inner(collector.http_endpoint)
    # record = 12-byte header + 8-byte payload prefix + body; the segment starts with an 8-byte magic
    sizes = [12 + 8 + len(base.encode_requests(Signal.TRACES, make_spans(n * 10, 10))[0][0].body) for n in range(8)]
    fits = 5
    await collector.stop()
    exporter = DurableExporter(base, tmp_path / "q", max_bytes=8 + sum(sizes[:fits]), segment_bytes=1 << 20, **FAST)  # type: ignore[arg-type]
    results = [await exporter.export_traces(make_spans(n * 10, 10)) for n in range(8)]
    assert [r.accepted for r in results] == [10] * fits + [0] * 3
    assert [r.dropped for r in results] == [0] * fits + [10] * 3
    assert all(isinstance(r.error, QueueFullError) for r in results[fits:])
    stats = exporter.statistics()
    assert (stats.disk_full_items, stats.disk_full_batches, stats.accepted_items) == (30, 3, 50)
    await collector.start()
    await collector.wait_for(has_all(range(50)))
    await acknowledged(exporter, 50)
    result = await exporter.export_traces(make_spans(100, 10))  # delivered and acknowledged: room again
    assert result.accepted == 10
    await collector.wait_for(has_all(range(100, 110)))
    await exporter.shutdown()
    assert 80 not in received_ids(collector)


async def test_secrets_never_reach_the_disk(tmp_path: Path, collector: FakeCollector) -> None:
    secrets = (b"s3cr3t-canary", b"pa55-canary", b"k3y-canary", b"us3r-canary")
    with_header = inner(
        collector.http_endpoint, headers={"authorization": "Bearer s3cr3t-canary", "x-api-key": "k3y-canary"}
    )
    in_url = inner(collector.http_endpoint.replace("http://", "http://us3r-canary:pa55-canary@"))
    for n, base in enumerate([with_header, in_url]):
        directory = tmp_path / f"q{n}"
        exporter = DurableExporter(base, directory, **FAST)  # type: ignore[arg-type]
        await exporter.export_traces(make_spans(0, 5))
        await collector.wait_for(n + 1)
        assert collector.received[n].headers["authorization"]  # the credentials went to the collector...
        await exporter.shutdown(timeout=0)
        files = list(directory.iterdir())  # ... and never to the disk
        assert any(p.name.endswith(".seg") for p in files)
        for path in files:
            data = path.read_bytes()
            for secret in secrets:
                assert secret not in data, (path, secret)


async def test_a_drop_in_for_the_batch_processor(tmp_path: Path, collector: FakeCollector) -> None:
    exporter = DurableExporter(inner(collector.http_endpoint), tmp_path / "q", **FAST)  # type: ignore[arg-type]
    async with BatchProcessor(exporter, Signal.TRACES, max_export_batch_size=50) as processor:
        for span in make_spans(0, 120):
            assert processor.put_nowait(span)
        outcome = await processor.force_flush(5)
        assert outcome.status.value == "success", outcome
        await collector.wait_for(has_all(range(120)))
    assert exporter.statistics().delivered_items == 120


def test_queue_dir_comes_from_the_environment_or_the_argument(tmp_path: Path) -> None:
    assert queue_dir_from_env({}) is None
    assert queue_dir_from_env({"AIOTLP_QUEUE_DIR": "  "}) is None
    assert queue_dir_from_env({"AIOTLP_QUEUE_DIR": " /var/q "}) == "/var/q"
    assert queue_dir_from_env({"AIOTLP_QUEUE_DIR": "/var/q"}, queue_dir=tmp_path) == str(tmp_path)
    with pytest.raises(ConfigurationError, match="AIOTLP_QUEUE_DIR"):
        queue_dir_from_env({"AIOTLP_QUEUE_DIR": "/a\0b"})
    with pytest.raises(ConfigurationError, match="queue_dir"):
        queue_dir_from_env({}, queue_dir="")


# -- fsync policies


class CountingOps(OsFileOps):
    """Real file operations that count fsyncs (from any thread) and signal each one."""

    fsyncs = 0
    synced = threading.Event()
    lock = threading.Lock()

    def fsync(self, fd: int) -> None:
        super().fsync(fd)
        with CountingOps.lock:
            CountingOps.fsyncs += 1
        CountingOps.synced.set()

    @classmethod
    def reset(cls) -> None:
        cls.fsyncs = 0
        cls.synced = threading.Event()


async def test_fsync_always_syncs_before_each_export_returns(tmp_path: Path) -> None:
    CountingOps.reset()
    exporter = DurableExporter(inner(dead_endpoint()), tmp_path / "q", fsync="always", file_ops=CountingOps)
    for n in range(5):
        before = CountingOps.fsyncs
        await exporter.export_traces(make_spans(n * 3, 3))
        assert CountingOps.fsyncs > before
        assert exporter.queue.synced_seq == exporter.queue.appended_seq
    results = await asyncio.gather(*(exporter.export_traces(make_spans(100 + n, 1)) for n in range(20)))
    assert all(r.accepted == 1 for r in results)
    assert exporter.queue.synced_seq == exporter.queue.appended_seq
    await exporter.shutdown(timeout=0)


async def test_fsync_interval_syncs_in_the_background_and_on_force_flush(tmp_path: Path) -> None:
    CountingOps.reset()
    exporter = DurableExporter(
        inner(dead_endpoint()), tmp_path / "q", fsync="interval", fsync_interval=3600, file_ops=CountingOps
    )
    await exporter.export_traces(make_spans(0, 3))
    assert CountingOps.fsyncs == 0
    assert exporter.queue.synced_seq < exporter.queue.appended_seq
    assert await exporter.force_flush(5)
    assert CountingOps.fsyncs >= 1
    assert exporter.queue.synced_seq == exporter.queue.appended_seq
    await exporter.shutdown(timeout=0)

    CountingOps.reset()
    ticking = DurableExporter(
        inner(dead_endpoint()), tmp_path / "q2", fsync="interval", fsync_interval=0.05, file_ops=CountingOps
    )
    await ticking.export_traces(make_spans(0, 3))
    assert await asyncio.to_thread(CountingOps.synced.wait, 5), "the interval fsync never ran"
    await ticking.shutdown(timeout=0)


async def test_fsync_never_never_syncs(tmp_path: Path, collector: FakeCollector) -> None:
    CountingOps.reset()
    exporter = DurableExporter(
        inner(collector.http_endpoint), tmp_path / "q", fsync="never", fsync_interval=0.05, file_ops=CountingOps
    )  # type: ignore[arg-type]
    for n in range(5):
        await exporter.export_traces(make_spans(n * 3, 3))
    assert await exporter.force_flush()
    await collector.wait_for(has_all(range(15)))
    await exporter.shutdown()
    assert CountingOps.fsyncs == 0


@pytest.fixture
def tmpfs(tmp_path: Path) -> Iterator[Path]:
    """A 1 MiB tmpfs (we are root on the test machines); the test is skipped, saying why, when it cannot mount."""
    mount = tmp_path / "mnt"
    mount.mkdir()
    if os.geteuid() != 0:
        reason = "not root: cannot mount a tmpfs"
    else:
        done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(mount)], capture_output=True)
        reason = f"mount failed: {done.stderr.decode(errors='replace').strip()}" if done.returncode else ""
    if reason:
        print(f"SKIPPED: {reason}")
        pytest.skip(reason)
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


def fill_disk(path: Path) -> int:
    """Write zeros to ``path`` until the disk is full; the errno that stopped it."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        while os.write(fd, b"\0" * 4096):
            pass
    except OSError as exc:
        return exc.errno or 0
    finally:
        os.close(fd)
    return 0


async def test_a_full_disk_drops_exact_counts_and_resumes_at_once(tmpfs: Path, collector: FakeCollector) -> None:
    exporter = DurableExporter(inner(collector.http_endpoint), tmpfs / "q", max_bytes=64 << 20, **FAST)  # type: ignore[arg-type]
    batch = 5
    first = await exporter.export_traces(make_spans(0, batch, padding=1000))
    assert first.accepted == batch
    await collector.wait_for(has_all(range(batch)))
    await acknowledged(exporter, batch)
    filler = tmpfs / "filler"
    assert fill_disk(filler) == errno.ENOSPC
    dropped = 0
    for n in range(1, 7):  # each record is over a 4 KiB page: every one needs a page the disk no longer has
        result = await exporter.export_traces(make_spans(n * batch, batch, padding=1000))
        assert (result.accepted, result.dropped) == (0, batch)
        assert isinstance(result.error, QueueFullError)
        dropped += batch
    stats = exporter.statistics()
    assert (stats.disk_full_items, stats.disk_full_batches) == (dropped, 6)
    assert stats.io_errors >= 6
    filler.unlink()
    loop = asyncio.get_running_loop()
    freed = loop.time()
    result = await exporter.export_traces(make_spans(100, batch, padding=1000))
    assert result.accepted == batch
    await collector.wait_for(has_all(range(100, 100 + batch)))
    resumed = loop.time() - freed
    print(f"full disk: {dropped} items dropped; written and delivered {resumed * 1000:.1f} ms after space returned")
    assert resumed < 1.0
    await exporter.shutdown()
    assert sorted(received_ids(collector)) == [*range(batch), *range(100, 100 + batch)]
    assert exporter.statistics().corrupt_records == 0


async def test_the_inner_exporter_helpers_split_like_an_export_and_send_one_request(collector: FakeCollector) -> None:
    base = inner(collector.http_endpoint, max_request_bytes=3000)
    requests, dropped = base.encode_requests(Signal.TRACES, make_spans(0, 100))
    assert len(requests) > 1 and dropped.items == 0
    assert all(r.size == len(r.body) <= 3000 for r in requests)
    assert sum(r.items for r in requests) == 100
    for request in requests:
        result = await base.send_request(request, timeout=2)
        assert (result.items, result.accepted, result.requests) == (request.items, request.items, 1)
    assert sorted(received_ids(collector)) == list(range(100))
    assert [r.body for r in collector.received] == [r.body for r in requests]
    await base.shutdown()
    after = await base.send_request(requests[0])
    assert after.failed == requests[0].items
    assert isinstance(after.error, ExporterShutdownError)
