"""aiotlp's SDK processors send full batches on the native lane (issue 13): from the thread whose span (or log record)
filled the batch, on native threads, without the GIL, where the exporter allows it (aiotlp's own, OTLP/HTTP
protobuf or gRPC over plain TCP to one collector, uncompressed, gzip or deflate, default transports, no disk
queue); everything the lane cannot deliver goes through the exporter's own stack, and every item is counted once,
under its true outcome.

The application here is the test's own thread (no event loop: the processor exports on the bridge), the collector
a FakeCollector on a thread of its own (CollectorThread). Child processes cover what a process does: the
environment variables and the auto-configuration, ``AIOTLP_NO_EXTENSIONS``, exit without shutdown, fork.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from opentelemetry._logs import SeverityNumber
from opentelemetry.sdk._logs import LoggerProvider
from opentelemetry.sdk.trace import TracerProvider
from tests.sdk.compat.test_selection import INSTRUMENT, SRC, metadata

import aiotlp.sdk
from aiotlp.model import Signal
from aiotlp.sdk import BatchLogRecordProcessor, BatchSpanProcessor, LogExporter, SpanExporter
from aiotlp.sdk._lane import SourceLane
from aiotlp.testing import CollectorThread, Reply, free_port
from aiotlp.transport import lane_available

pytestmark = pytest.mark.skipif(
    not sys.platform.startswith("linux") or os.environ.get("AIOTLP_NO_EXTENSIONS", "") not in ("", "0"),
    reason="the native lane is built on Linux, and AIOTLP_NO_EXTENSIONS turns it off",
)

BATCH = 512


def test_the_lane_is_built_here() -> None:
    """On Linux the extension is built (setup.py): a lane that silently went missing would fail here."""
    assert lane_available()


@pytest.fixture
def collector() -> Iterator[CollectorThread]:
    with CollectorThread() as running:
        yield running


PROTOCOLS = ["http/protobuf", "grpc"]


def _endpoint(collector: CollectorThread, protocol: str, path: str = "/v1/traces") -> str:
    return collector.grpc_endpoint if protocol == "grpc" else f"{collector.http_endpoint}{path}"


def _lane(processor: Any) -> SourceLane:
    lane = processor._processor.lane
    assert isinstance(lane, SourceLane), f"no native lane: {lane!r}"
    return lane


def _spans(collector: CollectorThread) -> list[str]:
    return [span.name for span in collector.spans()]


def _make_spans(provider: Any, count: int, prefix: str = "s") -> None:
    tracer = provider.get_tracer("lane")
    for n in range(count):
        with tracer.start_as_current_span(f"{prefix}{n}"):
            pass


@pytest.mark.parametrize("protocol", PROTOCOLS)
@pytest.mark.parametrize("provider_kind", ["sdk", "aiotlp"])
def test_full_batches_of_spans_go_on_the_lane_and_every_span_is_counted(
    collector: CollectorThread, provider_kind: str, protocol: str
) -> None:
    exporter = SpanExporter(_endpoint(collector, protocol), protocol=protocol)  # type: ignore[arg-type]
    processor = BatchSpanProcessor(exporter, schedule_delay_millis=60_000)
    provider: Any = TracerProvider() if provider_kind == "sdk" else aiotlp.sdk.TracerProvider()
    provider.add_span_processor(processor)
    # the first span starts the bridge and connects; a flat-out producer could fill the queue before that
    _make_spans(provider, 1, "warm-up")
    assert processor.force_flush(30_000)
    count = 4 * BATCH + 100  # four full batches on the lane, and a partial one at the flush
    _make_spans(provider, count)
    assert processor.force_flush(30_000)
    lane = _lane(processor)
    assert lane.sent >= 4
    assert lane.connections_made >= 1
    stats = processor.statistics()
    assert (stats.produced, stats.exported, stats.in_flight, stats.queued) == (count + 1, count + 1, 0, 0)
    assert sum(stats.dropped.values()) == 0 and stats.failed == 0
    exported = exporter.statistics()
    assert (exported.items, exported.accepted, exported.in_flight, exported.failed) == (count + 1, count + 1, 0, 0)
    assert sorted(_spans(collector)) == sorted([*(f"s{n}" for n in range(count)), "warm-up0"])
    provider.shutdown()
    assert processor.statistics().exported == count + 1


@pytest.mark.parametrize("protocol", PROTOCOLS)
@pytest.mark.parametrize("compression", ["gzip", "deflate"])
@pytest.mark.parametrize("how", ["argument", "environment"])
def test_compressed_batches_go_on_the_lane(
    collector: CollectorThread, protocol: str, compression: str, how: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``compression="gzip"`` (or ``OTEL_EXPORTER_OTLP_COMPRESSION=gzip``; deflate alike): full batches still go on
    the lane, compressed by its threads; the collector inflates every request and gets every span, counted once."""
    options: dict[str, Any] = {}
    if how == "argument":
        options["compression"] = compression
    else:
        monkeypatch.setenv("OTEL_EXPORTER_OTLP_COMPRESSION", compression)
    exporter = SpanExporter(_endpoint(collector, protocol), protocol=protocol, **options)  # type: ignore[arg-type]
    processor = BatchSpanProcessor(exporter, schedule_delay_millis=60_000)
    provider = TracerProvider()
    provider.add_span_processor(processor)
    _make_spans(provider, 1, "warm-up")
    assert processor.force_flush(30_000)
    count = 3 * BATCH + 5
    _make_spans(provider, count)
    assert processor.force_flush(30_000)
    assert _lane(processor).sent >= 3
    stats = processor.statistics()
    assert (stats.produced, stats.exported, stats.in_flight, stats.failed) == (count + 1, count + 1, 0, 0)
    assert sum(stats.dropped.values()) == 0
    assert sorted(_spans(collector)) == sorted([*(f"s{n}" for n in range(count)), "warm-up0"])
    requests = collector.requests()
    assert len(requests) >= 4 and {request.compression for request in requests} == {compression}
    provider.shutdown()


@pytest.mark.parametrize("protocol", PROTOCOLS)
@pytest.mark.parametrize("compression", ["none", "gzip"])
def test_full_batches_of_log_records_go_on_the_lane(
    collector: CollectorThread, protocol: str, compression: str
) -> None:
    exporter = LogExporter(
        _endpoint(collector, protocol, "/v1/logs"),
        protocol=protocol,  # type: ignore[arg-type]
        compression=compression,  # type: ignore[arg-type]
    )
    processor = BatchLogRecordProcessor(exporter, schedule_delay_millis=60_000)
    provider = LoggerProvider()
    provider.add_log_record_processor(processor)
    logger = provider.get_logger("lane")
    count = 2 * BATCH
    for n in range(count):
        logger.emit(body=f"r{n}", severity_number=SeverityNumber.INFO)
    assert processor.force_flush(30_000)
    assert _lane(processor).sent >= 2
    stats = processor.statistics()
    assert (stats.produced, stats.exported, stats.in_flight) == (count, count, 0)
    bodies = [record.body.string_value for record in collector.log_records()]
    assert sorted(bodies) == sorted(f"r{n}" for n in range(count))
    assert {request.compression for request in collector.requests()} == {None if compression == "none" else compression}
    provider.shutdown()


def _one_batch(
    collector: CollectorThread, protocol: str, *replies: Reply, **exporter_options: Any
) -> tuple[Any, Any, Any]:
    """A processor whose first full batch meets ``replies``; returns (processor, exporter, provider)."""
    collector.script(*replies, signal=Signal.TRACES)
    exporter = SpanExporter(_endpoint(collector, protocol), protocol=protocol, **exporter_options)
    processor = BatchSpanProcessor(exporter, schedule_delay_millis=60_000)
    provider = TracerProvider()
    provider.add_span_processor(processor)
    _make_spans(provider, BATCH)
    assert processor.force_flush(30_000) is not None
    return processor, exporter, provider


@pytest.mark.parametrize("protocol", PROTOCOLS)
@pytest.mark.parametrize("compression", ["none", "gzip"])
def test_a_throttled_batch_is_sent_again_through_the_exporter(
    collector: CollectorThread, protocol: str, compression: str
) -> None:
    """A 503 (gRPC: UNAVAILABLE) is retryable: the lane hands the batch back, and the exporter's stack sends it
    (and counts it once); compressed by the lane, then by the exporter, the same request arrives twice."""
    processor, exporter, provider = _one_batch(
        collector, protocol, Reply(http_status=503, retry_after="0"), compression=compression
    )
    assert _lane(processor).sent == 1
    stats = processor.statistics()
    assert (stats.exported, stats.failed, stats.in_flight) == (BATCH, 0, 0)
    assert exporter.statistics().accepted == BATCH
    assert exporter.statistics().exports == 1  # the lane's attempt was handed back, not counted
    requests = collector.requests()
    assert len(requests) == 2 and requests[0].body == requests[1].body  # the same request, twice
    assert [request.compression for request in requests] == [None if compression == "none" else compression] * 2
    assert len(set(_spans(collector))) == BATCH
    provider.shutdown()


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_a_refused_batch_is_counted_once_and_not_sent_again(collector: CollectorThread, protocol: str) -> None:
    """A 400 (gRPC: INVALID_ARGUMENT) is final: counted once, under the collector's words."""
    processor, exporter, provider = _one_batch(collector, protocol, Reply(http_status=400, message="no such thing"))
    stats = processor.statistics()
    assert stats.exported == 0 and stats.failed + stats.rejected == BATCH and stats.in_flight == 0
    assert stats.last_error is not None
    assert ("400" if protocol != "grpc" else "no such thing") in stats.last_error
    assert exporter.statistics().failed + exporter.statistics().rejected == BATCH
    assert len(collector.requests()) == 1
    provider.shutdown()


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_a_partial_success_counts_the_rejected_spans(collector: CollectorThread, protocol: str) -> None:
    processor, exporter, provider = _one_batch(collector, protocol, Reply(rejected=10, error_message="ten too old"))
    stats = processor.statistics()
    assert (stats.exported, stats.rejected, stats.failed) == (BATCH - 10, 10, 0)
    assert (exporter.statistics().accepted, exporter.statistics().rejected) == (BATCH - 10, 10)
    assert len(collector.requests()) == 1
    provider.shutdown()


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_a_dropped_connection_is_sent_again_through_the_exporter(collector: CollectorThread, protocol: str) -> None:
    processor, _exporter, provider = _one_batch(collector, protocol, Reply(drop_connection=True))
    stats = processor.statistics()
    assert (stats.exported, stats.failed) == (BATCH, 0)
    assert len(set(_spans(collector))) == BATCH
    provider.shutdown()


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_force_flush_waits_for_a_slow_answer_on_the_lane(collector: CollectorThread, protocol: str) -> None:
    """The flush returns once the lane's request ended and is settled: nothing in flight after it."""
    processor, exporter, provider = _one_batch(collector, protocol, Reply(delay=0.5))
    stats = processor.statistics()
    assert (stats.exported, stats.in_flight) == (BATCH, 0)
    assert exporter.statistics().in_flight == 0
    provider.shutdown()


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_no_collector_fails_through_the_exporter_and_is_counted(protocol: str) -> None:
    port = free_port()
    path = "" if protocol == "grpc" else "/v1/traces"
    exporter = SpanExporter(f"http://127.0.0.1:{port}{path}", protocol=protocol, timeout=1)  # type: ignore[arg-type]
    processor = BatchSpanProcessor(exporter, schedule_delay_millis=60_000, export_timeout_millis=3000)
    provider = TracerProvider()
    provider.add_span_processor(processor)
    _make_spans(provider, BATCH)
    # the flush waits for what is in flight when it starts; a lane and an exporter that both fail at once (nothing
    # listens) may have counted the batch before that: the ledger says what happened, not the flush's answer
    processor.force_flush(30_000)
    stats = processor.statistics()
    assert (stats.exported, stats.failed, stats.in_flight) == (0, BATCH, 0)
    assert exporter.statistics().failed == BATCH
    provider.shutdown()


@pytest.mark.parametrize(
    ("protocol", "options"),
    [
        pytest.param("grpc", {"grpc_client": "grpcio"}, id="grpc-grpcio"),
        pytest.param("http/json", {}, id="http-json"),
        pytest.param("http/protobuf", {"compression": "zstd"}, id="zstd"),
        pytest.param("http/protobuf", {"transport_factory": True}, id="transport_factory"),
        pytest.param("http/protobuf", {"encode_at_source": False}, id="objects"),
    ],
)
def test_no_lane_where_the_exporter_does_not_allow_one(
    collector: CollectorThread, protocol: str, options: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Everything else exports as before (and delivers); gRPC has a lane only with aiotlp's own client (h2), the
    default where it is installed."""
    import aiotlp.transport
    from aiotlp.transport import make_transport

    options = dict(options)
    if options.pop("grpc_client", None) == "grpcio":
        monkeypatch.setattr(aiotlp.transport, "DEFAULT_GRPC_IMPLEMENTATION", "grpcio")
    encode = options.pop("encode_at_source", None)
    if options.pop("transport_factory", False):
        options["transport_factory"] = make_transport
    endpoint = collector.grpc_endpoint if protocol == "grpc" else f"{collector.http_endpoint}/v1/traces"
    exporter = SpanExporter(endpoint, protocol=protocol, **options)  # type: ignore[arg-type]
    processor = BatchSpanProcessor(exporter, schedule_delay_millis=60_000, encode_at_source=encode)
    provider = TracerProvider()
    provider.add_span_processor(processor)
    _make_spans(provider, BATCH + 1)
    assert processor.force_flush(30_000)
    assert processor._processor.lane is None
    assert processor.statistics().exported == BATCH + 1
    provider.shutdown()


def test_no_lane_with_the_disk_queue(collector: CollectorThread, tmp_path: Path) -> None:
    exporter = SpanExporter(f"{collector.http_endpoint}/v1/traces", protocol="http/protobuf", queue_dir=tmp_path)
    processor = BatchSpanProcessor(exporter, schedule_delay_millis=60_000)
    provider = TracerProvider()
    provider.add_span_processor(processor)
    _make_spans(provider, BATCH)
    assert processor.force_flush(30_000)
    assert processor._processor.lane is None
    provider.shutdown()


def test_no_lane_for_a_tls_endpoint() -> None:
    exporter = SpanExporter(f"https://127.0.0.1:{free_port()}/v1/traces", protocol="http/protobuf", timeout=1)
    processor = BatchSpanProcessor(exporter, schedule_delay_millis=60_000)
    provider = TracerProvider()
    provider.add_span_processor(processor)
    _make_spans(provider, 1)
    assert processor._processor.lane is None
    provider.shutdown()


# ---------------------------------------------------------------------------------------- in child processes

APP = """
import json
import os
import sys

from opentelemetry import trace

tracer = trace.get_tracer("app")
with tracer.start_as_current_span("warm-up"):  # starts the bridge, connects
    pass
trace.get_tracer_provider().force_flush()
for n in range(int(sys.argv[1])):
    with tracer.start_as_current_span(f"s{n}"):
        pass
provider = trace.get_tracer_provider()
processor = provider._active_span_processor._span_processors[0]
lane = processor._processor.lane
print(json.dumps({"lane": None if lane is None else lane.sent}), flush=True)
# exit without shutdown: the provider's exit hook flushes
"""


def _auto_configured(tmp_path: Path, collector: CollectorThread, count: int, **extra: str) -> dict[str, Any]:
    import json

    (tmp_path / "app.py").write_text(APP, encoding="utf-8")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "AIOTLP_"))}
    env.update(
        PYTHONPATH=os.pathsep.join([str(metadata(tmp_path / "metadata")), str(SRC)]),
        OTEL_PYTHON_CONFIGURATOR="aiotlp",
        OTEL_TRACES_EXPORTER="aiotlp",
        OTEL_METRICS_EXPORTER="none",
        OTEL_LOGS_EXPORTER="none",
        OTEL_EXPORTER_OTLP_PROTOCOL="http/protobuf",
        OTEL_EXPORTER_OTLP_ENDPOINT=collector.http_endpoint,
        OTEL_BSP_SCHEDULE_DELAY="60000",
    )
    env.update(extra)
    out = subprocess.run(
        [str(INSTRUMENT), sys.executable, "app.py", str(count)],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    assert "Traceback" not in out.stderr, out.stderr[-3000:]
    result: dict[str, Any] = json.loads(out.stdout.strip().splitlines()[-1])
    return result


@pytest.mark.parametrize("protocol", PROTOCOLS)
@pytest.mark.parametrize("compression", ["none", "gzip"])
def test_auto_configured_from_the_environment_uses_the_lane_and_delivers_at_exit(
    tmp_path: Path, collector: CollectorThread, protocol: str, compression: str
) -> None:
    """``OTEL_PYTHON_CONFIGURATOR=aiotlp OTEL_TRACES_EXPORTER=aiotlp OTEL_EXPORTER_OTLP_PROTOCOL=http/protobuf
    opentelemetry-instrument python app.py`` (or ``grpc``; and with ``OTEL_EXPORTER_OTLP_COMPRESSION=gzip``),
    exiting without shutdown: full batches went on the lane, and the provider's exit hook delivered the rest."""
    count = 3 * BATCH + 7
    extra = {"OTEL_EXPORTER_OTLP_COMPRESSION": compression}
    if protocol == "grpc":
        extra |= {"OTEL_EXPORTER_OTLP_PROTOCOL": "grpc", "OTEL_EXPORTER_OTLP_ENDPOINT": collector.grpc_endpoint}
    result = _auto_configured(tmp_path, collector, count, **extra)
    assert result["lane"] is not None and result["lane"] >= 3
    assert sorted(_spans(collector)) == sorted([*(f"s{n}" for n in range(count)), "warm-up"])
    assert {request.compression for request in collector.requests()} == {None if compression == "none" else compression}


def test_aiotlp_no_extensions_turns_the_lane_off(tmp_path: Path, collector: CollectorThread) -> None:
    count = BATCH + 3
    result = _auto_configured(tmp_path, collector, count, AIOTLP_NO_EXTENSIONS="1")
    assert result["lane"] is None
    assert sorted(_spans(collector)) == sorted([*(f"s{n}" for n in range(count)), "warm-up"])


FORKING = """
import json
import os
import sys

from opentelemetry.sdk.trace import TracerProvider

from aiotlp.sdk import BatchSpanProcessor, SpanExporter

processor = BatchSpanProcessor(SpanExporter(sys.argv[1], protocol="http/protobuf"), schedule_delay_millis=60_000)
provider = TracerProvider()
provider.add_span_processor(processor)
tracer = provider.get_tracer("app")
for n in range(512):
    with tracer.start_as_current_span(f"pre{n}"):
        pass
assert processor.force_flush(10_000)
pid = os.fork()
who = "child" if pid == 0 else "parent"
for n in range(1024):
    with tracer.start_as_current_span(f"{who}{n}"):
        pass
assert processor.force_flush(10_000)
lane = processor._processor.lane
# one write of the whole line (print's two writes, unbuffered under PYTHONUNBUFFERED, interleave with the other
# process's on the shared pipe)
sys.stdout.write(json.dumps({"who": who, "lane": None if lane is None else lane.sent,
                             "exported": processor.statistics().exported}) + "\\n")
sys.stdout.flush()
if pid == 0:
    provider.shutdown()
    os._exit(0)
os.waitpid(pid, 0)
"""


def test_a_forked_child_sends_on_a_lane_of_its_own(tmp_path: Path, collector: CollectorThread) -> None:
    import json

    (tmp_path / "forking.py").write_text(FORKING, encoding="utf-8")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "AIOTLP_"))}
    env["PYTHONPATH"] = str(SRC)
    out = subprocess.run(
        [sys.executable, "forking.py", f"{collector.http_endpoint}/v1/traces"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    assert "Traceback" not in out.stderr, out.stderr[-3000:]
    results = {r["who"]: r for r in map(json.loads, out.stdout.strip().splitlines())}
    assert results["child"]["lane"] >= 2  # a lane of the child's own (the parent's threads are not in the child)
    assert results["parent"]["lane"] >= 3
    assert results["child"]["exported"] == 1024
    assert results["parent"]["exported"] == 512 + 1024
    names = _spans(collector)
    for prefix, count in (("pre", 512), ("parent", 1024), ("child", 1024)):
        assert sorted(n for n in names if n.startswith(prefix)) == sorted(f"{prefix}{n}" for n in range(count))
