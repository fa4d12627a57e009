"""aiotlp.sdk's SpanExporter, LogExporter and MetricExporter: arguments, lifecycle, the bridge, suppression.

The exporters block their caller, so the async tests call them through ``asyncio.to_thread`` (the FakeCollector
runs on the test's loop), except where a test calls ``export`` on a running loop on purpose.

Private names, on purpose, where nothing public shows the same: the official exporters' ``_endpoint``,
``_preferred_temporality`` and ``_preferred_aggregation`` (the reference aiotlp's are compared with); the bridge
(``aiotlp.sdk._bridge.get_bridge``: which loop runs, stopping it as the exit handler does); the metric helpers and
``MAX_DETACHED`` of the SDK layer's private modules; the ``unit_warnings`` fixture resets the once-per-process
record of the seconds-like timeout warning (``aiotlp.config._values._unit_warned``).
"""

from __future__ import annotations

import asyncio
import gc
import logging
import threading
import time
from collections.abc import Iterator
from typing import Any

import grpc
import pytest
from opentelemetry import trace
from opentelemetry.context import _SUPPRESS_HTTP_INSTRUMENTATION_KEY, _SUPPRESS_INSTRUMENTATION_KEY, get_value
from opentelemetry.exporter.otlp.common.http import Compression as CommonHttpCompression
from opentelemetry.exporter.otlp.proto.http import Compression as HttpCompression
from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter as OfficialHttpMetricExporter
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter as OfficialHttpSpanExporter
from opentelemetry.sdk._logs.export import LogRecordExportResult
from opentelemetry.sdk.metrics import Counter, Histogram, MeterProvider
from opentelemetry.sdk.metrics.export import (
    AggregationTemporality,
    Metric,
    MetricExportResult,
    MetricsData,
    NumberDataPoint,
    PeriodicExportingMetricReader,
    ResourceMetrics,
    ScopeMetrics,
    Sum,
)
from opentelemetry.sdk.metrics.view import (
    ExplicitBucketHistogramAggregation,
    ExponentialBucketHistogramAggregation,
    LastValueAggregation,
)
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SpanExportResult
from opentelemetry.sdk.util.instrumentation import InstrumentationScope
from opentelemetry.trace import SpanContext
from tests.sdk import sdk_data

from aiotlp import ConfigurationError, OTLPExporter, RetryPolicy
from aiotlp.config import SignalConfig
from aiotlp.sdk import LogExporter, MetricExporter, SpanExporter, encode_spans, encode_spans_json
from aiotlp.sdk._bridge import get_bridge
from aiotlp.sdk._encode import count_data_points, metric_items
from aiotlp.sdk._exporters import MAX_DETACHED
from aiotlp.testing import CollectorThread, FakeCollector, Reply, free_port
from aiotlp.transport import GrpcImplementation, make_transport
from aiotlp.transport import Reply as TransportReply

FAST_RETRY = RetryPolicy(initial_backoff=0.01, max_backoff=0.02, jitter=0.1, max_attempts=3)
RESOURCE = Resource({"service.name": "tests"})
SCOPE = InstrumentationScope("tests.sdk")


def make_spans(count: int = 3, **attributes: Any) -> list[ReadableSpan]:
    return [
        ReadableSpan(
            name=f"span {i}",
            context=SpanContext(0xABC + i, 0xDEF + i, is_remote=False),
            resource=RESOURCE,
            instrumentation_scope=SCOPE,
            attributes={"i": i, **attributes},
            start_time=1,
            end_time=2,
        )
        for i in range(count)
    ]


class ProbeTransport:
    """A transport that records the OpenTelemetry context each send runs in; ``block`` makes sends wait until
    cancelled (the export deadline, or shutdown)."""

    content_type = "application/x-protobuf"

    def __init__(self, *, block: bool = False) -> None:
        self.block = block
        self.entered = threading.Event()
        self.closed_event = threading.Event()
        self.contexts: list[tuple[object, object, bool]] = []
        self.bodies: list[bytes] = []
        self.closed = False

    def __call__(self, config: SignalConfig) -> ProbeTransport:  # the transport_factory
        return self

    compression = "none"

    async def send(self, body: bytes, *, content_encoding: str, timeout: float) -> TransportReply:
        self.contexts.append(
            (
                get_value(_SUPPRESS_INSTRUMENTATION_KEY),
                get_value(_SUPPRESS_HTTP_INSTRUMENTATION_KEY),
                trace.get_current_span().get_span_context().is_valid,
            )
        )
        self.bodies.append(body)
        self.entered.set()
        if self.block:
            await asyncio.Event().wait()
        return TransportReply(200)

    async def close(self) -> None:
        self.closed = True
        self.closed_event.set()


@pytest.fixture
def probe_exporter() -> Iterator[tuple[SpanExporter, ProbeTransport]]:
    transport = ProbeTransport()
    exporter = SpanExporter("http://127.0.0.1:9/v1/traces", transport_factory=transport)
    yield exporter, transport
    exporter.shutdown(timeout_millis=1000)


# ------------------------------------------------------------------------------------------------- arguments


@pytest.mark.parametrize(
    "endpoint",
    [
        "http://collector:4318/v1/traces",
        "http://collector:4318/custom/path",
        "https://collector/otlp/v1/traces?tenant=a",
        "http://collector:4318/",
    ],
)
def test_http_endpoint_is_used_verbatim_as_officially(endpoint: str) -> None:
    official = OfficialHttpSpanExporter(endpoint=endpoint)
    try:
        assert SpanExporter(endpoint, protocol="http/protobuf").config.traces.endpoint == official._endpoint
        assert SpanExporter(endpoint, protocol="http/json").config.traces.endpoint == official._endpoint
    finally:
        official.shutdown()


def test_http_endpoint_without_path_posts_to_root() -> None:
    # requests (the official transport) posts "http://h:4318" to "/": so does aiotlp.
    assert SpanExporter("http://h:4318").config.traces.endpoint == "http://h:4318/"


def test_environment_endpoints_as_officially(monkeypatch: pytest.MonkeyPatch) -> None:
    cases = [
        ({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://base:4318"}, "http://base:4318/v1/traces"),
        ({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://base:4318/prefix/"}, "http://base:4318/prefix/v1/traces"),
        (
            {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://base:4318", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://t/x"},
            "http://t/x",
        ),
        ({}, "http://localhost:4318/v1/traces"),
    ]
    for environ, expected in cases:
        for name, value in environ.items():
            monkeypatch.setenv(name, value)
        official = OfficialHttpSpanExporter()
        try:
            assert official._endpoint == expected
            assert SpanExporter().config.traces.endpoint == expected
            assert SpanExporter(environ=environ).config.traces.endpoint == expected
        finally:
            official.shutdown()
            for name in environ:
                monkeypatch.delenv(name)
    # An explicit endpoint beats the per-signal variable, verbatim.
    environ = {"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://env/x"}
    assert SpanExporter("http://arg/y", environ=environ).config.traces.endpoint == "http://arg/y"


@pytest.mark.parametrize(
    ("endpoint", "insecure", "expected"),
    [
        ("collector:4317", True, "http://collector:4317"),
        ("collector:4317", None, "https://collector:4317"),
        ("http://collector:4317", None, "http://collector:4317"),
        ("https://collector:4317/ignored/path", None, "https://collector:4317"),
    ],
)
def test_grpc_endpoint_is_host_and_port(endpoint: str, insecure: bool | None, expected: str) -> None:
    config = SpanExporter(endpoint, protocol="grpc", insecure=insecure).config.traces
    assert config.protocol == "grpc"
    assert config.endpoint == expected


def test_protocol_and_settings_from_the_environment() -> None:
    environ = {
        "OTEL_EXPORTER_OTLP_PROTOCOL": "grpc",
        "OTEL_EXPORTER_OTLP_LOGS_PROTOCOL": "http/json",
        "OTEL_EXPORTER_OTLP_TIMEOUT": "1500",
        "OTEL_EXPORTER_OTLP_HEADERS": "api-key=secret",
        "OTEL_EXPORTER_OTLP_COMPRESSION": "gzip",
    }
    spans = SpanExporter(environ=environ).config.traces
    assert (spans.protocol, spans.timeout, spans.compression, dict(spans.headers)) == (
        "grpc",
        1.5,
        "gzip",
        {"api-key": "secret"},
    )
    logs = LogExporter(environ=environ)
    assert logs.config.logs.protocol == "http/json"
    with CollectorThread() as collector:  # and it sends OTLP/JSON: the same environment, a collector's endpoint
        to_collector = {**environ, "OTEL_EXPORTER_OTLP_ENDPOINT": collector.http_endpoint}
        sender = LogExporter(environ=to_collector)
        assert sender.export(sdk_data.log_records()) is LogRecordExportResult.SUCCESS
        sender.shutdown()
        assert {request.content_type for request in collector.requests()} == {"application/json"}
    # explicit arguments win (timeout in seconds, as the official exporters)
    explicit = SpanExporter(environ=environ, protocol="http/protobuf", timeout=2.5, compression="none").config
    assert (explicit.traces.protocol, explicit.traces.timeout, explicit.traces.compression) == (
        "http/protobuf",
        2.5,
        "none",
    )


@pytest.mark.parametrize(
    ("compression", "expected"),
    [
        ("gzip", "gzip"),
        (" GZip ", "gzip"),
        ("none", "none"),
        (grpc.Compression.Gzip, "gzip"),
        (grpc.Compression.NoCompression, "none"),
        (HttpCompression.Gzip, "gzip"),
        (HttpCompression.NoCompression, "none"),
        (CommonHttpCompression.GZIP, "gzip"),
        (CommonHttpCompression.NONE, "none"),
        ("deflate", "deflate"),
        (grpc.Compression.Deflate, "deflate"),
        (HttpCompression.Deflate, "deflate"),
        (CommonHttpCompression.DEFLATE, "deflate"),
    ],
)
def test_compression_accepts_strings_and_the_official_enums(compression: Any, expected: str) -> None:
    assert SpanExporter(compression=compression).config.traces.compression == expected


@pytest.mark.parametrize("compression", ["brotli", "snappy", 3])
def test_unsupported_compression_is_refused(compression: Any) -> None:
    with pytest.raises(ConfigurationError, match="compression"):
        SpanExporter(compression=compression)


@pytest.mark.parametrize(
    "headers",
    [{"API-Key": "s3cret", "x": "1"}, [("api-key", "s3cret"), ("x", "1")], "api-key=s3cret, x=1"],
)
def test_headers_in_every_official_form(headers: Any) -> None:
    assert dict(SpanExporter(headers=headers).config.traces.headers) == {"api-key": "s3cret", "x": "1"}


@pytest.mark.parametrize(
    ("argument", "value", "hint"),
    [
        ("credentials", object(), "certificate_file"),
        ("session", object(), "headers="),
        ("channel_options", (("grpc.x", 1),), "not supported"),
        ("retryable_error_codes", [grpc.StatusCode.INTERNAL], "OTLP specification"),
        ("meter_provider", object(), "not supported"),
    ],
)
def test_unsupported_official_arguments_are_refused_clearly(argument: str, value: object, hint: str) -> None:
    for exporter_class in (SpanExporter, LogExporter, MetricExporter):
        with pytest.raises(ConfigurationError, match=rf"^{argument}: .*{hint}"):
            exporter_class(**{argument: value})


def test_max_request_size_maps_to_the_request_byte_cap() -> None:
    assert SpanExporter(max_request_size=2048).config.traces.max_request_bytes == 2048
    assert SpanExporter(max_request_size=0).config.traces.max_request_bytes == 64 * 1024 * 1024
    with pytest.raises(ConfigurationError, match="max_request_bytes"):
        SpanExporter(max_request_size=10)


@pytest.mark.parametrize("preference", ["cumulative", "delta", "lowmemory", "DELTA"])
def test_metric_temporality_preference_as_officially(preference: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_METRICS_TEMPORALITY_PREFERENCE", preference)
    official = OfficialHttpMetricExporter()
    try:
        ours = MetricExporter()
        assert ours.preferred_temporality == official._preferred_temporality
        assert set(ours.preferred_aggregation) == set(official._preferred_aggregation) == {Histogram}
        assert isinstance(ours.preferred_aggregation[Histogram], ExplicitBucketHistogramAggregation)
    finally:
        official.shutdown()


def test_metric_preferences_override_the_defaults(caplog: pytest.LogCaptureFixture) -> None:
    last_value = LastValueAggregation()
    exporter = MetricExporter(
        environ={"OTEL_EXPORTER_OTLP_METRICS_TEMPORALITY_PREFERENCE": "delta"},
        preferred_temporality={Counter: AggregationTemporality.CUMULATIVE},
        preferred_aggregation={Histogram: last_value},
    )
    assert exporter.preferred_temporality[Counter] is AggregationTemporality.CUMULATIVE
    assert exporter.preferred_temporality[Histogram] is AggregationTemporality.DELTA
    assert exporter.preferred_aggregation[Histogram] is last_value
    # an unknown preference: a warning and cumulative, as the official exporters do
    exporter = MetricExporter(environ={"OTEL_EXPORTER_OTLP_METRICS_TEMPORALITY_PREFERENCE": "sometimes"})
    assert set(exporter.preferred_temporality.values()) == {AggregationTemporality.CUMULATIVE}
    assert "OTEL_EXPORTER_OTLP_METRICS_TEMPORALITY_PREFERENCE: must be one of" in caplog.text
    assert "using the default, cumulative" in caplog.text
    with pytest.raises(ConfigurationError, match="max_export_batch_size"):
        MetricExporter(max_export_batch_size=0)


def test_repr_names_protocol_and_redacted_endpoint() -> None:
    exporter = SpanExporter("http://user:pw@collector:4318/v1/traces")
    assert repr(exporter) == "<aiotlp.sdk.SpanExporter http/protobuf http://***@collector:4318/v1/traces>"


# ------------------------------------------------------------------------------------------------ exporting


async def test_export_shutdown_then_failure_without_raising(
    collector: FakeCollector, caplog: pytest.LogCaptureFixture
) -> None:
    exporter = SpanExporter(f"{collector.http_endpoint}/v1/traces")
    spans = make_spans()
    assert await asyncio.to_thread(exporter.export, spans) is SpanExportResult.SUCCESS
    assert [span.name for span in collector.spans()] == ["span 0", "span 1", "span 2"]
    assert "aiotlp/" in collector.received[0].headers["user-agent"]
    assert await asyncio.to_thread(exporter.export, []) is SpanExportResult.SUCCESS
    await asyncio.to_thread(exporter.shutdown)
    await asyncio.to_thread(exporter.shutdown)  # a second call returns at once
    with caplog.at_level(logging.WARNING, logger="aiotlp.sdk"):
        assert exporter.export(spans) is SpanExportResult.FAILURE
        assert exporter.export(spans) is SpanExportResult.FAILURE
    assert caplog.text.count("shut down: export ignored") == 1
    assert len(collector.received) == 1


def test_export_after_shutdown_of_an_unused_exporter() -> None:
    for exporter in (SpanExporter(), LogExporter(), MetricExporter()):
        exporter.shutdown()
        assert exporter.force_flush() is True
    exporter = SpanExporter()
    exporter.shutdown()
    assert exporter.export(make_spans()) is SpanExportResult.FAILURE


@pytest.mark.parametrize("protocol", ["grpc", "http/protobuf", "http/json"])
async def test_each_signal_over_each_protocol(protocol: str, collector: FakeCollector) -> None:
    endpoint = collector.grpc_endpoint if protocol == "grpc" else collector.http_endpoint

    def url(path: str) -> str:
        return endpoint if protocol == "grpc" else f"{endpoint}/v1/{path}"

    spans = make_spans()
    logs = await asyncio.to_thread(sdk_data.log_records)
    metrics = await asyncio.to_thread(sdk_data.metrics_data)
    span_exporter = SpanExporter(url("traces"), protocol=protocol)  # type: ignore[arg-type]
    log_exporter = LogExporter(url("logs"), protocol=protocol)  # type: ignore[arg-type]
    metric_exporter = MetricExporter(url("metrics"), protocol=protocol, compression="gzip")  # type: ignore[arg-type]
    try:
        assert await asyncio.to_thread(span_exporter.export, spans) is SpanExportResult.SUCCESS
        assert await asyncio.to_thread(log_exporter.export, logs) is LogRecordExportResult.SUCCESS
        assert await asyncio.to_thread(metric_exporter.export, metrics) is MetricExportResult.SUCCESS
    finally:
        for exporter in (span_exporter, log_exporter, metric_exporter):
            await asyncio.to_thread(exporter.shutdown)
    assert len(collector.spans()) == len(spans)
    assert len(collector.log_records()) == len(logs)
    assert sum(len(getattr(m, m.WhichOneof("data")).data_points) for m in collector.metrics()) == count_data_points(
        metric_items(metrics)
    )
    content_type = {"grpc": "application/grpc", "http/protobuf": "application/x-protobuf"}.get(
        protocol, "application/json"
    )
    assert {request.content_type for request in collector.received} == {content_type}


async def test_retry_and_partial_success(collector: FakeCollector) -> None:
    exporter = SpanExporter(f"{collector.http_endpoint}/v1/traces", retry=FAST_RETRY)
    collector.script(Reply(http_status=503), Reply(rejected=1, error_message="one was bad"))
    # A partial success is a success (OTLP: do not retry it); the rejection is logged by aiotlp.
    assert await asyncio.to_thread(exporter.export, make_spans()) is SpanExportResult.SUCCESS
    assert len(collector.received) == 2
    await asyncio.to_thread(exporter.shutdown)


async def test_unreachable_collector_fails_within_the_timeout() -> None:
    exporter = SpanExporter(f"http://127.0.0.1:{free_port()}/v1/traces", timeout=0.5, retry=FAST_RETRY)
    start = time.monotonic()
    assert await asyncio.to_thread(exporter.export, make_spans()) is SpanExportResult.FAILURE
    assert time.monotonic() - start < 0.5 + 1.5
    await asyncio.to_thread(exporter.shutdown)


async def test_unencodable_items_are_left_out_and_counted(
    collector: FakeCollector, caplog: pytest.LogCaptureFixture
) -> None:
    exporter = SpanExporter(f"{collector.http_endpoint}/v1/traces")
    good, bad = make_spans(1), make_spans(1, bad=object())
    with caplog.at_level(logging.ERROR, logger="aiotlp.sdk"):
        assert await asyncio.to_thread(exporter.export, [*good, *bad, *good]) is SpanExportResult.FAILURE
    assert "dropped 1 of 3 spans that cannot be encoded" in caplog.text
    assert len(collector.spans()) == 2
    await asyncio.to_thread(exporter.shutdown)


async def test_large_batches_are_split_under_max_request_size(collector: FakeCollector) -> None:
    exporter = SpanExporter(f"{collector.http_endpoint}/v1/traces", max_request_size=2048)
    spans = make_spans(10, payload="x" * 500)
    assert await asyncio.to_thread(exporter.export, spans) is SpanExportResult.SUCCESS
    assert len(collector.received) > 1
    assert all(len(request.body) <= 2048 for request in collector.received)
    assert sorted(span.name for span in collector.spans()) == sorted(span.name for span in spans)
    await asyncio.to_thread(exporter.shutdown)


async def test_metric_max_export_batch_size_splits_by_data_points(collector: FakeCollector) -> None:
    data = await asyncio.to_thread(sdk_data.metrics_data)
    total = count_data_points(metric_items(data))
    exporter = MetricExporter(f"{collector.http_endpoint}/v1/metrics", max_export_batch_size=3)
    assert await asyncio.to_thread(exporter.export, data, 5000) is MetricExportResult.SUCCESS
    per_request = [
        sum(
            len(getattr(m, m.WhichOneof("data")).data_points)
            for rm in r.message.resource_metrics
            for sm in rm.scope_metrics
            for m in sm.metrics
        )
        for r in collector.received
    ]
    assert sum(per_request) == total
    assert len(per_request) == -(-total // 3)
    assert all(count <= 3 for count in per_request)
    await asyncio.to_thread(exporter.shutdown)


# ---------------------------------------------------------------------------------- bridge, context, shutdown


def test_exports_run_with_instrumentation_suppressed_and_without_the_callers_span(
    probe_exporter: tuple[SpanExporter, ProbeTransport],
) -> None:
    exporter, transport = probe_exporter
    provider = TracerProvider()
    with provider.get_tracer("app").start_as_current_span("request handler"):
        assert trace.get_current_span().get_span_context().is_valid
        assert exporter.export(make_spans()) is SpanExportResult.SUCCESS
    # The send ran with both suppression keys set, in a fresh context (the app's span is not its parent).
    assert transport.contexts == [(True, True, False)]
    provider.shutdown()


async def test_export_on_a_running_loop_hands_over_without_blocking(collector: FakeCollector) -> None:
    exporter = SpanExporter(f"{collector.http_endpoint}/v1/traces")
    # Called on the test's own loop (which also runs the collector): blocking would deadlock.
    assert exporter.export(make_spans()) is SpanExportResult.SUCCESS
    await collector.wait_for(1)
    assert await asyncio.to_thread(exporter.force_flush, 5000) is True
    assert len(collector.spans()) == 3
    await asyncio.to_thread(exporter.shutdown)


async def test_export_on_the_bridge_thread_does_not_deadlock(collector: FakeCollector) -> None:
    exporter = SpanExporter(f"{collector.http_endpoint}/v1/traces")

    async def export_from_the_bridge_loop() -> tuple[SpanExportResult, bool, bool]:
        # e.g. a SimpleLogRecordProcessor exporting a log record that aiotlp itself emitted on the bridge
        return exporter.export(make_spans()), exporter.force_flush(1000), get_bridge().in_thread()

    result, flushed, on_bridge = await asyncio.wait_for(
        asyncio.wrap_future(get_bridge().submit(export_from_the_bridge_loop())), 5
    )
    assert (result, on_bridge) == (SpanExportResult.SUCCESS, True)
    assert flushed is False  # it cannot wait on its own loop; the export was only handed over
    await collector.wait_for(1)
    assert await asyncio.to_thread(exporter.force_flush, 5000) is True
    await asyncio.to_thread(exporter.shutdown)


async def test_exports_handed_over_are_bounded() -> None:
    transport = ProbeTransport(block=True)
    exporter = SpanExporter("http://127.0.0.1:9/v1/traces", timeout=1, transport_factory=transport)
    results = [exporter.export(make_spans(1)) for _ in range(MAX_DETACHED + 1)]
    assert results == [SpanExportResult.SUCCESS] * MAX_DETACHED + [SpanExportResult.FAILURE]
    assert await asyncio.to_thread(exporter.force_flush, 10) is False
    assert await asyncio.to_thread(exporter.force_flush, 10_000) is True  # they end at the 1 s export deadline
    await asyncio.to_thread(exporter.shutdown)


async def test_shutdown_honours_its_timeout() -> None:
    transport = ProbeTransport(block=True)
    exporter = SpanExporter("http://127.0.0.1:9/v1/traces", timeout=3, transport_factory=transport)
    export = asyncio.ensure_future(asyncio.to_thread(exporter.export, make_spans()))
    assert await asyncio.to_thread(transport.entered.wait, 5)
    start = time.monotonic()
    await asyncio.to_thread(exporter.shutdown, 200)
    assert time.monotonic() - start < 0.2 + 1.5
    assert transport.closed
    assert await export is SpanExportResult.FAILURE  # the attempt still ends at its deadline
    assert exporter.export(make_spans()) is SpanExportResult.FAILURE


def test_an_exporter_dropped_without_shutdown_closes_its_connections() -> None:
    transport = ProbeTransport()
    exporter = SpanExporter("http://127.0.0.1:9/v1/traces", transport_factory=transport)
    assert exporter.export(make_spans()) is SpanExportResult.SUCCESS
    del exporter
    gc.collect()
    assert transport.closed_event.wait(5)


async def test_the_bridge_restarts_and_exporters_reconnect(collector: FakeCollector) -> None:
    exporter = SpanExporter(f"{collector.http_endpoint}/v1/traces")
    assert await asyncio.to_thread(exporter.export, make_spans(1)) is SpanExportResult.SUCCESS
    old_loop = get_bridge().running_loop
    await asyncio.to_thread(get_bridge().stop, 5)  # what the atexit handler does
    assert get_bridge().running_loop is None
    assert await asyncio.to_thread(exporter.export, make_spans(1)) is SpanExportResult.SUCCESS
    assert get_bridge().running_loop not in (None, old_loop)
    assert len(collector.spans()) == 2
    await asyncio.to_thread(exporter.shutdown)


async def test_one_metric_over_the_byte_cap_is_split_by_data_points(collector: FakeCollector) -> None:
    points = [NumberDataPoint({"series": f"s{i:03d}", "pad": "x" * 40}, 1, 2, i) for i in range(200)]
    metric = Metric("wide", None, None, Sum(points, AggregationTemporality.CUMULATIVE, True))
    data = MetricsData([ResourceMetrics(RESOURCE, [ScopeMetrics(SCOPE, [metric], "")], "")])
    exporter = MetricExporter(f"{collector.http_endpoint}/v1/metrics", max_request_size=2048)
    assert await asyncio.to_thread(exporter.export, data) is MetricExportResult.SUCCESS
    assert len(collector.received) > 1 and all(len(r.body) <= 2048 for r in collector.received)
    values = sorted(p.as_int for m in collector.metrics() for p in m.sum.data_points)
    assert values == list(range(200))
    await asyncio.to_thread(exporter.shutdown)


# ------------------------------------------------------------------------------ the configuration users give


CANARY = "s3cr3t-canary-sdk"


@pytest.fixture
def unit_warnings(monkeypatch: pytest.MonkeyPatch) -> None:
    """The seconds-like timeout warning is once per variable per process: start afresh."""
    import aiotlp.config._values

    monkeypatch.setattr(aiotlp.config._values, "_unit_warned", set())


@pytest.mark.parametrize("protocol", ["grpc", "http/protobuf"])
async def test_variables_an_exporter_does_not_use_never_stop_it(
    protocol: str, collector: FakeCollector, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """An endpoint variable the argument overrides and the other signals' bad variables are not even read."""
    for name, value in {
        "OTEL_EXPORTER_OTLP_ENDPOINT": f"{CANARY}:pw@collector",  # invalid, and overridden by the argument
        "OTEL_EXPORTER_OTLP_LOGS_HEADERS": f"Authorization: Basic {CANARY}=",
        "OTEL_EXPORTER_OTLP_METRICS_TIMEOUT": "1.5",
        "OTEL_EXPORTER_OTLP_METRICS_CERTIFICATE": "/nonexistent/ca.pem",
        "OTEL_EXPORTER_OTLP_LOGS_COMPRESSION": "brotli",
        "OTEL_METRIC_EXPORT_INTERVAL": "often",  # the reader's, not the exporter's
    }.items():
        monkeypatch.setenv(name, value)
    endpoint = collector.grpc_endpoint if protocol == "grpc" else f"{collector.http_endpoint}/v1/traces"
    with caplog.at_level(logging.DEBUG, logger="aiotlp.config"):
        exporter = SpanExporter(endpoint=endpoint, protocol=protocol)  # type: ignore[arg-type]
    try:
        assert await asyncio.to_thread(exporter.export, make_spans()) is SpanExportResult.SUCCESS
    finally:
        await asyncio.to_thread(exporter.shutdown)
    assert [span.name for span in collector.spans()] == ["span 0", "span 1", "span 2"]
    assert exporter.config.traces.timeout == 10.0
    assert not caplog.records  # nothing it does not use was read, so nothing to warn about
    with pytest.raises(ConfigurationError, match="OTEL_EXPORTER_OTLP_ENDPOINT: unsupported URL scheme") as info:
        SpanExporter(protocol=protocol)  # type: ignore[arg-type]  # without the argument, the endpoint is used
    assert CANARY not in str(info.value)
    # MetricExporter: the bad METRICS variables are its own (but OTEL_METRIC_EXPORT_INTERVAL is the reader's)
    with caplog.at_level(logging.WARNING, logger="aiotlp.config"):
        metrics = MetricExporter("http://127.0.0.1:1", protocol=protocol)  # type: ignore[arg-type]
    metrics.shutdown()
    assert metrics.config.metrics.timeout == 10.0 and metrics.config.metrics.certificate_file is None
    assert "OTEL_EXPORTER_OTLP_METRICS_TIMEOUT: must be a positive integer number of milliseconds" in caplog.text
    assert "OTEL_EXPORTER_OTLP_METRICS_CERTIFICATE: cannot read file" in caplog.text


async def test_bad_variables_warn_and_take_the_default_as_the_official_exporter_does(
    collector: FakeCollector, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture, tmp_path: Any
) -> None:
    environ = {
        "OTEL_EXPORTER_OTLP_ENDPOINT": collector.http_endpoint,
        "OTEL_EXPORTER_OTLP_HEADERS": f"x-tenant=acme,Authorization: Basic {CANARY}=",
        "OTEL_EXPORTER_OTLP_TRACES_TIMEOUT": "2.5",
        "OTEL_EXPORTER_OTLP_COMPRESSION": "brotli",
        "OTEL_EXPORTER_OTLP_CERTIFICATE": str(tmp_path / "missing-ca.pem"),
    }
    for name, value in environ.items():
        monkeypatch.setenv(name, value)
    with caplog.at_level(logging.WARNING):
        official = OfficialHttpSpanExporter()  # the official exporter starts with these too
        official.shutdown()
        caplog.clear()
        exporter = SpanExporter()
    config = exporter.config.traces
    assert (config.timeout, config.compression, config.certificate_file) == (10.0, "none", None)
    assert dict(config.headers) == {"x-tenant": "acme"}
    messages = [record.getMessage() for record in caplog.records if record.name == "aiotlp.config"]
    assert messages == [
        "OTEL_EXPORTER_OTLP_HEADERS: entry 2 is not a valid name=value pair: the name is not a valid HTTP token "
        "(RFC 7230) (expected name=value pairs separated by ','; write 'Name: value' as 'Name=value'); the entry "
        "is left out",
        "OTEL_EXPORTER_OTLP_TRACES_TIMEOUT: must be a positive integer number of milliseconds (the OTLP unit is "
        "milliseconds, not seconds as in the official Python exporters: 2.5 s is 2500); using the default, 10000 ms",
        "OTEL_EXPORTER_OTLP_COMPRESSION: must be one of 'gzip', 'deflate', 'zstd', 'none'; using the default, no "
        "compression",
        f"OTEL_EXPORTER_OTLP_CERTIFICATE: cannot read file {str(tmp_path / 'missing-ca.pem')!r}: No such file or "
        "directory; using the default, the system's CAs",
    ]
    assert CANARY not in caplog.text
    try:
        assert await asyncio.to_thread(exporter.export, make_spans(1)) is SpanExportResult.SUCCESS
    finally:
        await asyncio.to_thread(exporter.shutdown)
    (request,) = collector.received
    assert request.headers["x-tenant"] == "acme" and "authorization" not in request.headers
    assert request.compression is None
    # the standalone API fails fast on the same variables, with the same texts
    with pytest.raises(ConfigurationError, match="OTEL_EXPORTER_OTLP_HEADERS: entry 2 is not a valid") as info:
        OTLPExporter()
    assert CANARY not in str(info.value)
    monkeypatch.delenv("OTEL_EXPORTER_OTLP_HEADERS")
    with pytest.raises(ConfigurationError, match=r"OTEL_EXPORTER_OTLP_TRACES_TIMEOUT: .*2\.5 s is 2500"):
        OTLPExporter()


@pytest.mark.usefixtures("unit_warnings")
def test_a_timeout_given_as_seconds_is_milliseconds_with_a_warning(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_TIMEOUT", "10")
    with caplog.at_level(logging.WARNING, logger="aiotlp.config"):
        assert SpanExporter().config.traces.timeout == 0.01
        assert LogExporter().config.logs.timeout == 0.01
    assert caplog.messages == [
        "OTEL_EXPORTER_OTLP_TIMEOUT=10: the unit is milliseconds (the OTLP specification's), so exports time out "
        "after 10 ms; the official Python exporters read seconds: for 10 s write 10000"
    ]
    assert SpanExporter(timeout=10).config.traces.timeout == 10.0  # the argument is seconds, as officially


@pytest.mark.parametrize("protocol", ["http/protobuf", "http/json", "grpc"])
@pytest.mark.parametrize("value", ["base2_exponential_bucket_histogram", "explicit_bucket_histogram", "bogus"])
async def test_default_histogram_aggregation_as_officially(
    value: str,
    protocol: str,
    collector: FakeCollector,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_METRICS_DEFAULT_HISTOGRAM_AGGREGATION", value)
    official = OfficialHttpMetricExporter()
    official.shutdown()
    endpoint = collector.grpc_endpoint if protocol == "grpc" else f"{collector.http_endpoint}/v1/metrics"
    with caplog.at_level(logging.WARNING, logger="aiotlp.config"):
        exporter = MetricExporter(endpoint, protocol=protocol)  # type: ignore[arg-type]
    assert type(exporter.preferred_aggregation[Histogram]) is type(official._preferred_aggregation[Histogram])
    exponential = value == "base2_exponential_bucket_histogram"
    assert isinstance(
        exporter.preferred_aggregation[Histogram],
        ExponentialBucketHistogramAggregation if exponential else ExplicitBucketHistogramAggregation,
    )
    if value == "bogus":
        assert [r.getMessage() for r in caplog.records if r.name == "aiotlp.config"] == [
            "OTEL_EXPORTER_OTLP_METRICS_DEFAULT_HISTOGRAM_AGGREGATION: must be one of 'explicit_bucket_histogram', "
            "'base2_exponential_bucket_histogram'; using the default, explicit_bucket_histogram"
        ]
    reader = PeriodicExportingMetricReader(exporter, export_interval_millis=3_600_000)
    provider = MeterProvider(metric_readers=[reader])
    histogram = provider.get_meter("tests").create_histogram("latency")
    for sample in (1.0, 2.5, 40.0):
        histogram.record(sample)
    await asyncio.to_thread(provider.shutdown)
    (metric,) = collector.metrics()
    assert metric.WhichOneof("data") == ("exponential_histogram" if exponential else "histogram")
    (point,) = getattr(metric, metric.WhichOneof("data")).data_points
    assert (point.count, point.sum) == (3, 43.5)


@pytest.mark.parametrize(
    ("protocol", "implementation"), [("http/protobuf", None), ("http/json", None), ("grpc", "h2"), ("grpc", "grpcio")]
)
@pytest.mark.parametrize("compression", ["deflate", HttpCompression.Deflate, grpc.Compression.Deflate])
async def test_deflate_compression_is_decoded_byte_for_byte(
    protocol: str, implementation: GrpcImplementation | None, compression: Any, collector: FakeCollector
) -> None:
    if protocol != "grpc" and isinstance(compression, grpc.Compression):
        pytest.skip("the gRPC enum is for the gRPC exporter")
    endpoint = collector.grpc_endpoint if protocol == "grpc" else f"{collector.http_endpoint}/v1/traces"
    exporter = SpanExporter(
        endpoint,
        protocol=protocol,  # type: ignore[arg-type]
        compression=compression,
        transport_factory=lambda config: make_transport(config, grpc_implementation=implementation),
    )
    spans = make_spans(50, text="compressible " * 20)
    try:
        assert await asyncio.to_thread(exporter.export, spans) is SpanExportResult.SUCCESS
    finally:
        await asyncio.to_thread(exporter.shutdown)
    (request,) = collector.received
    assert request.compression == "deflate"
    encode = encode_spans_json if protocol == "http/json" else encode_spans
    assert request.body == encode(spans)
    assert len(collector.spans()) == 50


@pytest.mark.parametrize(("protocol", "implementation"), [("http/protobuf", None), ("http/json", None), ("grpc", "h2")])
@pytest.mark.parametrize("compression", ["zstd", " ZSTD "])
async def test_zstd_compression_is_decoded_byte_for_byte(
    protocol: str, implementation: GrpcImplementation | None, compression: str
) -> None:
    async with FakeCollector(grpc_server="h2") as collector:  # grpc core has no zstd: the h2 server takes it
        endpoint = collector.grpc_endpoint if protocol == "grpc" else f"{collector.http_endpoint}/v1/traces"
        exporter = SpanExporter(
            endpoint,
            protocol=protocol,  # type: ignore[arg-type]
            compression=compression,
            transport_factory=lambda config: make_transport(config, grpc_implementation=implementation),
        )
        spans = make_spans(50, text="compressible " * 20)
        try:
            assert await asyncio.to_thread(exporter.export, spans) is SpanExportResult.SUCCESS
        finally:
            await asyncio.to_thread(exporter.shutdown)
        (request,) = collector.received
        assert request.compression == "zstd"
        encode = encode_spans_json if protocol == "http/json" else encode_spans
        assert request.body == encode(spans)


def test_zstd_with_grpcio_fails_the_export_with_the_reason(caplog: pytest.LogCaptureFixture) -> None:
    # a transport factory is called on the first export (on the loop that exports), so that is where it fails
    exporter = SpanExporter(
        "http://127.0.0.1:9",
        protocol="grpc",
        compression="zstd",
        transport_factory=lambda config: make_transport(config, grpc_implementation="grpcio"),
    )
    try:
        assert exporter.export(make_spans(1)) is SpanExportResult.FAILURE
    finally:
        exporter.shutdown()
    assert "grpc.aio (grpc_implementation='grpcio') cannot send zstd" in caplog.text


_OWN = {"protocol", "retry", "max_concurrent", "transport_factory", "environ", "queue_dir"}
_METRIC_ONLY = {"preferred_temporality", "preferred_aggregation", "max_export_batch_size"}


@pytest.mark.parametrize("cls", [SpanExporter, LogExporter, MetricExporter])
def test_help_shows_every_parameter_with_its_default(cls: type) -> None:
    """``inspect.signature`` (and so ``help()`` and IDEs) lists each argument the class takes: ``endpoint`` (the
    one positional), every official exporter's keyword of both protocols, and aiotlp's own, each keyword-only,
    typed, with its default; the class refuses any other keyword as Python does."""
    import importlib
    import inspect

    official: set[str] = set()
    for module, name in [
        ("grpc.trace_exporter", "OTLPSpanExporter"),
        ("grpc.metric_exporter", "OTLPMetricExporter"),
        ("http.trace_exporter", "OTLPSpanExporter"),
        ("http.metric_exporter", "OTLPMetricExporter"),
    ]:
        other = getattr(importlib.import_module(f"opentelemetry.exporter.otlp.proto.{module}"), name)
        official |= set(inspect.signature(other).parameters) - {"_transport"}
    if cls is not MetricExporter:
        official -= _METRIC_ONLY
    parameters = inspect.signature(cls).parameters
    assert set(parameters) == official | _OWN
    assert [p.name for p in parameters.values() if p.kind is not inspect.Parameter.KEYWORD_ONLY] == ["endpoint"]
    assert {name: p.default for name, p in parameters.items() if p.default is not None} == {"max_concurrent": 4}
    assert parameters["timeout"].annotation == "float | None"
    assert parameters["endpoint"].annotation == "str | Sequence[str] | None"  # aliases spelled out
    assert parameters["headers"].annotation == "Mapping[str, str] | Iterable[tuple[str, str]] | str | None"
    assert all(p.annotation is not inspect.Parameter.empty for p in parameters.values())
    with pytest.raises(TypeError, match=rf"^{cls.__name__}\(\) got an unexpected keyword argument 'tiemout'$"):
        cls(tiemout=1.0)
    with pytest.raises(TypeError, match="positional"):
        cls("http://localhost:4318/v1/traces", "grpc")
