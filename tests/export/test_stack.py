"""The sender stack and the exporter over a scripted transport, on fast-forwarded loop time (looptime)."""

from __future__ import annotations

import asyncio
import random

import pytest

from aiotlp import (
    AttemptTimeoutError,
    ConfigurationError,
    ConnectError,
    DeadlineExceededError,
    ExporterConfig,
    ExporterShutdownError,
    OTLPExporter,
    RejectedError,
    RequestTooLargeError,
    RetriesExhaustedError,
    RetryPolicy,
    ServerBusyError,
    Signal,
)
from aiotlp.encoding import PartialSuccess, encode_traces
from aiotlp.export import ConcurrencyLimit, ExportRequest, Retry, Timeout, TransportSender, compress_request
from aiotlp.model import Gauge, Metric, NumberDataPoint, Span
from aiotlp.testing import Outcome, ScriptedTransport
from aiotlp.transport import Reply as WireReply

pytestmark = pytest.mark.looptime


def make_spans(n: int, name_size: int = 8) -> list[Span]:
    return [
        Span(
            trace_id=i + 1,
            span_id=i + 1,
            name="x" * name_size,
            start_time_unix_nano=1,
            end_time_unix_nano=2,
        )
        for i in range(n)
    ]


def make_exporter(
    transport: ScriptedTransport,
    *,
    timeout: float = 10.0,
    max_request_bytes: int | None = None,
    **kwargs: object,
) -> OTLPExporter:
    config = ExporterConfig.from_env({}, timeout=timeout, max_request_bytes=max_request_bytes)
    return OTLPExporter(config, transport_factory=lambda _cfg: transport, **kwargs)  # type: ignore[arg-type]


def request(body: bytes = b"payload", items: int = 1) -> ExportRequest:
    return ExportRequest(signal=Signal.TRACES, body=body, items=items, size=len(body))


def now() -> float:
    return asyncio.get_running_loop().time()


# --- Retry -----------------------------------------------------------------------------------------------


async def test_retry_resends_the_same_bytes_until_success() -> None:
    transport = ScriptedTransport([Outcome(ServerBusyError("busy")), Outcome(ConnectError("refused"))])
    retry = Retry(TransportSender(transport), RetryPolicy(initial_backoff=1, jitter=0))
    body = b"\x0a\x03abc"
    result = await retry.send(request(body), deadline=now() + 100)
    assert result == PartialSuccess()
    assert [a.body for a in transport.attempts] == [body, body, body]
    assert all(a.body is body for a in transport.attempts)  # not even copied
    assert retry.retries == 2


async def test_backoff_is_exponential_without_jitter() -> None:
    transport = ScriptedTransport([Outcome(ServerBusyError("busy"))] * 4)
    retry = Retry(TransportSender(transport), RetryPolicy(initial_backoff=1, multiplier=2, max_backoff=5, jitter=0))
    start = now()
    await retry.send(request(), deadline=now() + 100)
    starts = [a.started - start for a in transport.attempts]
    assert starts == pytest.approx([0, 1, 3, 7, 12])  # waits 1, 2, 4, then capped at 5


async def test_jitter_stays_within_its_bounds() -> None:
    policy = RetryPolicy(initial_backoff=1, multiplier=2, max_backoff=8, jitter=0.2)
    rng = random.Random(7)
    for retry in range(1, 8):
        base = min(2 ** (retry - 1), 8)
        delays = [policy.backoff(retry, rng) for _ in range(200)]
        assert min(delays) >= base * 0.8
        assert max(delays) <= base * 1.2
        assert max(delays) - min(delays) > base * 0.2  # it does vary


async def test_server_delay_wins_when_longer_than_backoff() -> None:
    transport = ScriptedTransport([Outcome(ServerBusyError("slow down", retry_after=7.5))])
    retry = Retry(TransportSender(transport), RetryPolicy(initial_backoff=1, jitter=0))
    start = now()
    await retry.send(request(), deadline=now() + 100)
    assert transport.attempts[1].started - start == pytest.approx(7.5)


async def test_backoff_wins_when_longer_than_server_delay() -> None:
    transport = ScriptedTransport([Outcome(ServerBusyError("slow down", retry_after=0.5))])
    retry = Retry(TransportSender(transport), RetryPolicy(initial_backoff=3, jitter=0))
    start = now()
    await retry.send(request(), deadline=now() + 100)
    assert transport.attempts[1].started - start == pytest.approx(3)


async def test_permanent_error_is_not_retried() -> None:
    transport = ScriptedTransport([Outcome(RejectedError("bad request", status=400))])
    retry = Retry(TransportSender(transport), RetryPolicy(initial_backoff=1, jitter=0))
    with pytest.raises(RejectedError):
        await retry.send(request(), deadline=now() + 100)
    assert len(transport.attempts) == 1


async def test_max_attempts_then_retries_exhausted() -> None:
    transport = ScriptedTransport(default=Outcome(ServerBusyError("busy", status=503)))
    retry = Retry(TransportSender(transport), RetryPolicy(initial_backoff=0.1, jitter=0, max_attempts=4))
    with pytest.raises(RetriesExhaustedError) as info:
        await retry.send(request(), deadline=now() + 100)
    assert len(transport.attempts) == 4
    assert info.value.attempts == 4
    assert isinstance(info.value.last, ServerBusyError)
    assert info.value.status == 503


async def test_never_sleeps_past_the_deadline() -> None:
    transport = ScriptedTransport(default=Outcome(ServerBusyError("busy")))
    retry = Retry(TransportSender(transport), RetryPolicy(initial_backoff=1, multiplier=2, jitter=0))
    start = now()
    with pytest.raises(DeadlineExceededError) as info:
        await retry.send(request(), deadline=start + 10)
    # attempts at 0, 1, 3, 7; the next wait (8 s) would end at 15 > 10, so it gives up at 7, not later.
    assert [round(a.started - start, 6) for a in transport.attempts] == [0, 1, 3, 7]
    assert now() - start == pytest.approx(7)
    assert info.value.attempts == 4


async def test_server_delay_past_the_deadline_gives_up_at_once() -> None:
    transport = ScriptedTransport([Outcome(ServerBusyError("come back tomorrow", retry_after=86400))])
    retry = Retry(TransportSender(transport), RetryPolicy(initial_backoff=1, jitter=0))
    start = now()
    with pytest.raises(DeadlineExceededError):
        await retry.send(request(), deadline=start + 10)
    assert now() - start == pytest.approx(0)


async def test_interrupt_ends_a_backoff_at_once() -> None:
    transport = ScriptedTransport(default=Outcome(ServerBusyError("busy")))
    retry = Retry(TransportSender(transport), RetryPolicy(initial_backoff=30, max_backoff=30, jitter=0))
    task = asyncio.create_task(retry.send(request(), deadline=now() + 100))
    await asyncio.sleep(5)
    start = now()
    retry.interrupt()
    with pytest.raises(ExporterShutdownError):
        await task
    assert now() - start == pytest.approx(0)
    assert len(transport.attempts) == 1


def test_retry_policy_validation_names_the_parameter() -> None:
    for kwargs, name in [
        ({"initial_backoff": -1}, "initial_backoff"),
        ({"initial_backoff": 5, "max_backoff": 1}, "max_backoff"),
        ({"multiplier": 0.5}, "multiplier"),
        ({"jitter": 2}, "jitter"),
        ({"max_attempts": 0}, "max_attempts"),
    ]:
        with pytest.raises(ConfigurationError, match=name):
            RetryPolicy(**kwargs)  # type: ignore[arg-type]


# --- Timeout ---------------------------------------------------------------------------------------------


async def test_timeout_cancels_a_slow_attempt() -> None:
    transport = ScriptedTransport([Outcome(delay=60)])
    sender = Timeout(TransportSender(transport), attempt_timeout=2)
    start = now()
    with pytest.raises(AttemptTimeoutError, match="2s timeout"):
        await sender.send(request(), deadline=start + 100)
    assert now() - start == pytest.approx(2)
    assert transport.attempts[0].timeout == pytest.approx(2)  # the transport is told its budget too


async def test_timeout_never_outlives_the_export_deadline() -> None:
    transport = ScriptedTransport([Outcome(delay=60)])
    sender = Timeout(TransportSender(transport), attempt_timeout=30)
    start = now()
    with pytest.raises(AttemptTimeoutError, match="export deadline"):
        await sender.send(request(), deadline=start + 3)
    assert now() - start == pytest.approx(3)


async def test_hung_collector_every_attempt_ends_at_its_timeout_and_the_deadline_holds() -> None:
    transport = ScriptedTransport(default=Outcome(delay=3600))
    exporter = make_exporter(transport, timeout=10, attempt_timeout=2, retry=RetryPolicy(initial_backoff=0.5, jitter=0))
    start = now()
    result = await exporter.export_traces(make_spans(3))
    elapsed = now() - start
    assert elapsed <= 10 * 1.15
    assert isinstance(result.error, DeadlineExceededError)
    assert isinstance(result.error.last, AttemptTimeoutError)
    assert result.failed == 3 and result.accepted == 0
    starts = [a.started - start for a in transport.attempts]
    assert starts == pytest.approx([0, 2.5, 5.5, 9.5])  # 2 s attempts, backoffs 0.5, 1, 2
    await exporter.shutdown()


# --- Concurrency limit -----------------------------------------------------------------------------------


async def test_limit_caps_requests_in_flight() -> None:
    transport = ScriptedTransport(default=Outcome(delay=1))
    limit = ConcurrencyLimit(TransportSender(transport), max_concurrent=3)
    await asyncio.gather(*(limit.send(request(), deadline=now() + 100) for _ in range(10)))
    assert transport.max_active == 3
    assert len(transport.attempts) == 10
    assert limit.in_flight == 0


async def test_waiting_for_a_slot_counts_against_the_deadline() -> None:
    transport = ScriptedTransport(default=Outcome(delay=50))
    limit = ConcurrencyLimit(TransportSender(transport), max_concurrent=1)
    first = asyncio.create_task(limit.send(request(), deadline=now() + 100))
    await asyncio.sleep(0)
    start = now()
    with pytest.raises(DeadlineExceededError, match="export slots"):
        await limit.send(request(), deadline=start + 5)
    assert now() - start == pytest.approx(5)
    await first


def test_limit_validates_its_argument() -> None:
    with pytest.raises(ConfigurationError, match="max_concurrent"):
        ConcurrencyLimit(TransportSender(ScriptedTransport()), max_concurrent=0)


# --- The exporter ----------------------------------------------------------------------------------------


async def test_export_result_counts_accepted_items() -> None:
    transport = ScriptedTransport()
    async with make_exporter(transport) as exporter:
        result = await exporter.export_traces(make_spans(5))
    assert (result.items, result.accepted, result.requests, result.ok) == (5, 5, 1, True)
    assert transport.attempts[0].body == encode_traces(make_spans(5))
    assert transport.closed


async def test_partial_success_is_counted_not_retried_and_logged(caplog: pytest.LogCaptureFixture) -> None:
    transport = ScriptedTransport([Outcome(response=PartialSuccess(rejected=2, error_message="too old"))])
    exporter = make_exporter(transport)
    result = await exporter.export_traces(make_spans(5))
    assert (result.accepted, result.rejected, result.error_message) == (3, 2, "too old")
    assert result.error is None
    assert len(transport.attempts) == 1
    assert "2 of 5 rejected: too old" in caplog.text
    # a second partial success within the minute is not logged again
    caplog.clear()
    transport.script.append(Outcome(response=PartialSuccess(rejected=1, error_message="again")))
    await exporter.export_traces(make_spans(5))
    assert "again" not in caplog.text
    await exporter.shutdown()


async def test_exhausted_retries_and_permanent_failures_are_distinguishable() -> None:
    busy = ScriptedTransport(default=Outcome(ServerBusyError("busy", status=503)))
    exporter = make_exporter(busy, retry=RetryPolicy(initial_backoff=0.01, jitter=0, max_attempts=3))
    exhausted = await exporter.export_traces(make_spans(2))
    assert isinstance(exhausted.error, RetriesExhaustedError)
    assert exhausted.failed == 2 and len(busy.attempts) == 3

    refused = ScriptedTransport(default=Outcome(RejectedError("bad", status=400)))
    exporter2 = make_exporter(refused, retry=RetryPolicy(initial_backoff=0.01, jitter=0, max_attempts=3))
    permanent = await exporter2.export_traces(make_spans(2))
    assert isinstance(permanent.error, RejectedError)
    assert not isinstance(permanent.error, RetriesExhaustedError)
    assert len(refused.attempts) == 1
    await exporter.shutdown()
    await exporter2.shutdown()


async def test_empty_batches_are_not_sent() -> None:
    transport = ScriptedTransport()
    exporter = make_exporter(transport)
    assert (await exporter.export_traces([])).items == 0
    empty_metric = Metric("m", Gauge([]))
    assert (await exporter.export_metrics([empty_metric])).items == 0
    assert transport.attempts == []
    await exporter.shutdown()


async def test_a_batch_over_the_byte_cap_is_split() -> None:
    transport = ScriptedTransport()
    exporter = make_exporter(transport, max_request_bytes=4096)
    spans = make_spans(100, name_size=200)
    result = await exporter.export_traces(spans)
    assert result.accepted == 100 and result.requests > 1
    assert all(len(a.body) <= 4096 for a in transport.attempts)
    # every span arrives exactly once, in order
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

    ids = [
        s.span_id
        for a in transport.attempts
        for rs in ExportTraceServiceRequest.FromString(a.body).resource_spans
        for ss in rs.scope_spans
        for s in ss.spans
    ]
    assert ids == [s.span_id for s in spans]
    await exporter.shutdown()


async def test_a_single_item_over_the_cap_is_dropped_and_counted() -> None:
    transport = ScriptedTransport()
    exporter = make_exporter(transport, max_request_bytes=1024)
    spans = [*make_spans(3), *make_spans(1, name_size=5000)]
    result = await exporter.export_traces(spans)
    assert (result.items, result.accepted, result.dropped) == (4, 3, 1)
    assert isinstance(result.error, RequestTooLargeError)
    await exporter.shutdown()


async def test_a_large_metric_is_split_by_data_points() -> None:
    transport = ScriptedTransport()
    exporter = make_exporter(transport, max_request_bytes=1024)
    points = [NumberDataPoint(value=i, attributes={"k": "v" * 40}) for i in range(100)]
    result = await exporter.export_metrics([Metric("big", Gauge(points))])
    assert (result.items, result.accepted, result.dropped) == (100, 100, 0)
    assert result.requests > 1
    await exporter.shutdown()


async def test_gzip_happens_once_and_retries_resend_the_compressed_bytes() -> None:
    transport = ScriptedTransport([Outcome(ServerBusyError("busy"))], gzip=True)
    exporter = make_exporter(transport, retry=RetryPolicy(initial_backoff=0.01, jitter=0))
    await exporter.export_traces(make_spans(3))
    first, second = transport.attempts
    assert first.compressed and first.body is second.body
    import gzip

    assert gzip.decompress(first.body) == encode_traces(make_spans(3))
    await exporter.shutdown()


@pytest.mark.parametrize("compression", ["gzip", "deflate", "zstd"])
def test_compress_request_compresses_once_and_never_twice(compression: str) -> None:
    body = encode_traces(make_spans(3))
    plain = ExportRequest(Signal.TRACES, body, items=3, size=len(body))
    assert compress_request(plain, "none") is plain
    packed = compress_request(plain, compression)
    assert (packed.content_encoding, packed.compressed, packed.size) == (compression, True, len(body))
    assert packed.body != body
    assert compress_request(packed, compression) is packed  # already compressed: as it is
    assert compress_request(packed, "gzip") is packed


async def test_a_reply_is_read_by_the_leaf_and_retried_by_what_it_means() -> None:
    busy = WireReply(503, retry_after="0")
    partial = WireReply(200, b"\x0a\x04\x08\x01\x12\x00")  # partial_success {rejected: 1}
    transport = ScriptedTransport([Outcome(response=busy), Outcome(response=partial)])
    exporter = make_exporter(transport, retry=RetryPolicy(initial_backoff=0.01, jitter=0))
    result = await exporter.export_traces(make_spans(3))
    assert (result.accepted, result.rejected, exporter.retries) == (2, 1, 1)
    transport.script.append(Outcome(response=WireReply(400)))
    result = await exporter.export_traces(make_spans(3))
    assert (result.failed, exporter.retries) == (3, 1)
    assert isinstance(result.error, RejectedError) and result.error.status == 400
    await exporter.shutdown()


async def test_shutdown_during_a_backoff_returns_at_once_and_later_exports_fail() -> None:
    transport = ScriptedTransport(default=Outcome(ServerBusyError("busy")))
    exporter = make_exporter(transport, timeout=600, retry=RetryPolicy(initial_backoff=60, max_backoff=60, jitter=0))
    task = asyncio.create_task(exporter.export_traces(make_spans(2)))
    await asyncio.sleep(1)
    start = now()
    await exporter.shutdown(timeout=5)
    assert now() - start == pytest.approx(0)
    result = await task
    assert isinstance(result.error, ExporterShutdownError) and result.failed == 2
    after = await exporter.export_traces(make_spans(1))
    assert isinstance(after.error, ExporterShutdownError) and after.failed == 1
    assert len(transport.attempts) == 1
    start = now()
    await exporter.shutdown()  # a second shutdown returns at once
    assert now() - start == 0


async def test_shutdown_waits_for_an_attempt_in_progress_within_its_timeout() -> None:
    transport = ScriptedTransport([Outcome(delay=3)])
    exporter = make_exporter(transport)
    task = asyncio.create_task(exporter.export_traces(make_spans(1)))
    await asyncio.sleep(0)
    start = now()
    await exporter.shutdown(timeout=10)
    assert now() - start == pytest.approx(3)
    assert (await task).accepted == 1


def test_config_and_settings_are_exclusive() -> None:
    with pytest.raises(TypeError, match="timeout"):
        OTLPExporter(ExporterConfig.from_env({}), timeout=3)
