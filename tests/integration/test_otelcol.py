"""Interoperability with the OpenTelemetry Collector (Go: grpc-go and net/http), the collector most users run.

    aiotlp (HTTP/protobuf, HTTP/JSON, gRPC over aiotlp's h2 client, gRPC over grpc.aio)
      -> OpenTelemetry Collector (tests/otelcol: otlp receiver -> [memory_limiter] -> [batch] -> otlp_grpc)
      -> FakeCollector (decodes with the official opentelemetry-proto messages)

Every signal arrives unchanged (compared as sets: the Collector re-batches and regroups), in plaintext, over TLS
and mTLS, with each compression; a batch of ~10 MiB is split under grpc-go's 4 MiB receive limit; no
``too_many_pings`` GOAWAY from grpc-go's keepalive enforcement; nothing is lost across the GOAWAYs of a short
``max_connection_age``; memory_limiter refusals are retried and counted; with the disk queue nothing is lost
when a Collector is killed and restarted, or when one of two is killed; the SDK drop-in exporters deliver too.
What differs from rotel and from the FakeCollector is written down in docs/collectors.md.

One Collector per configuration, started once per module where the tests can share it (each test tags its
resources with its own ``test.case`` attribute and looks only at those); the long runs are ``slow``.
"""

from __future__ import annotations

import asyncio
import dataclasses
import itertools
import math
from collections.abc import AsyncIterator, Iterable, Sequence
from pathlib import Path
from typing import Any, TypeVar

import pytest
import pytest_asyncio
from google.protobuf.descriptor import FieldDescriptor
from google.protobuf.message import Message
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import ExportMetricsServiceRequest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from tests import samples

from aiotlp import OTLPExporter, RetryPolicy, Signal, Span
from aiotlp.encoding import encode_logs, encode_metrics, encode_traces
from aiotlp.model import LogRecord, Metric, Resource
from aiotlp.testing import FakeCollector, OtelCollector, OtelCollectorTLS

pytestmark = [pytest.mark.integration, pytest.mark.asyncio(loop_scope="module")]

# (protocol, grpc_implementation)
CLIENTS = [("http/protobuf", None), ("http/json", None), ("grpc", "h2"), ("grpc", "grpcio")]
CLIENT_IDS = ["http-protobuf", "http-json", "grpc-h2", "grpc-grpcio"]
GRPC_CLIENTS = [("grpc", "h2"), ("grpc", "grpcio")]
GRPC_IDS = ["grpc-h2", "grpc-grpcio"]
COMPRESSIONS = ["none", "gzip", "zstd"]  # aiotlp.config.COMPRESSIONS but deflate, which the Collector's gRPC lacks
# grpc.aio has no zstd (aiotlp refuses the pair when the exporter is made: tests/transport/test_zstd.py)
CLIENT_COMPRESSIONS = [
    pytest.param(protocol, implementation, compression, id=f"{client}-{compression}")
    for (protocol, implementation), client in zip(CLIENTS, CLIENT_IDS, strict=True)
    for compression in COMPRESSIONS
    if not (implementation == "grpcio" and compression == "zstd")
]
SECURITY = ["plaintext", "tls", "mtls"]

BATCH = {"timeout": "100ms"}  # the batch processor, quicker than its 200 ms default
# The Collector answers OK only once the sink took the data: no batch processor and no sending queue (see the
# restart tests: what a Collector acknowledged and still holds dies with it when it is killed).
SYNCHRONOUS = {"sending_queue": {"enabled": False}, "retry_on_failure": {"enabled": False}}

FAST_RETRY = RetryPolicy(initial_backoff=0.05, max_backoff=0.5)

_T = TypeVar("_T", Span, LogRecord, Metric)


def tag(items: Sequence[_T], case: str) -> list[_T]:
    """The items with ``test.case=case`` added to their resource (to find them among other tests' data)."""
    tagged: dict[int, Resource] = {}
    out = []
    for item in items:
        resource = item.resource
        if id(resource) not in tagged:
            tagged[id(resource)] = dataclasses.replace(resource, attributes={**resource.attributes, "test.case": case})
        out.append(dataclasses.replace(item, resource=tagged[id(resource)]))  # type: ignore[type-var]
    return out


_FIELDS = {
    Signal.TRACES: ("resource_spans", "scope_spans", "spans"),
    Signal.METRICS: ("resource_metrics", "scope_metrics", "metrics"),
    Signal.LOGS: ("resource_logs", "scope_logs", "log_records"),
}


def _case_of(resource: Any) -> str | None:
    for attribute in resource.attributes:
        if attribute.key == "test.case":
            return str(attribute.value.string_value)
    return None


def _canonical_nans(message: Any) -> None:
    """Every NaN double in ``message`` set to Python's NaN (one bit pattern)."""
    for field, value in message.ListFields():
        # protobuf 6 has is_repeated and no label; older ones only label
        repeated = field.is_repeated if hasattr(field, "is_repeated") else field.label == FieldDescriptor.LABEL_REPEATED
        if field.type == FieldDescriptor.TYPE_MESSAGE:
            for child in value if repeated else [value]:
                _canonical_nans(child)
        elif field.type == FieldDescriptor.TYPE_DOUBLE:
            if repeated:
                value[:] = [math.nan if math.isnan(v) else v for v in value]
            elif math.isnan(value):
                setattr(message, field.name, math.nan)


def normalized(item: Any) -> Any:
    """What the Collector changes on the way, undone on both sides: pdata always has these sub-messages (absent
    and empty mean the same): a log record without a body leaves with an empty one (``body {}``); an exponential
    histogram point without buckets leaves with empty ``positive {}`` and ``negative {}``. A NaN read from JSON
    leaves as Go's NaN (another bit pattern than Python's)."""
    copy = type(item)()
    copy.CopyFrom(item)
    _canonical_nans(copy)
    if hasattr(copy, "body"):
        copy.body.SetInParent()
    elif hasattr(copy, "exponential_histogram") and copy.HasField("exponential_histogram"):
        for point in copy.exponential_histogram.data_points:
            point.positive.SetInParent()
            point.negative.SetInParent()
    return copy


def flatten(messages: Iterable[Message], signal: Signal, case: str | None) -> list[tuple[bytes, bytes, bytes]]:
    """(resource, scope, item) triples of the test case ``case`` (None: all), each serialized deterministically, sorted:
    an order-free comparison that still sees a duplicate. Items are :func:`normalized`."""
    resources, scopes, items = _FIELDS[signal]
    out = []
    for message in messages:
        for resource_x in getattr(message, resources):
            if case is not None and _case_of(resource_x.resource) != case:
                continue
            resource = resource_x.resource.SerializeToString(deterministic=True) + resource_x.schema_url.encode()
            for scope_x in getattr(resource_x, scopes):
                scope = scope_x.scope.SerializeToString(deterministic=True) + scope_x.schema_url.encode()
                for item in getattr(scope_x, items):
                    out.append((resource, scope, normalized(item).SerializeToString(deterministic=True)))
    return sorted(out)


def span_ids(sink: FakeCollector, case: str) -> list[int]:
    return [
        int.from_bytes(span.span_id, "big")
        for request in sink.requests(Signal.TRACES)
        for resource_spans in request.message.resource_spans
        if _case_of(resource_spans.resource) == case
        for scope_spans in resource_spans.scope_spans
        for span in scope_spans.spans
    ]


def client_ports(server_port: int) -> set[int]:
    """The client ports of the established TCP connections to ``server_port`` on loopback (from /proc/net/tcp and
    tcp6: grpc.aio connects from a dual-stack socket): a connection that a GOAWAY closed and the client replaced
    shows up as a new port."""
    ports = set()
    for name in ("/proc/net/tcp", "/proc/net/tcp6"):
        with open(name) as table:
            next(table)
            for line in table:
                fields = line.split()
                local, remote, state = fields[1], fields[2], fields[3]
                if state == "01" and int(remote.rsplit(":", 1)[1], 16) == server_port:
                    ports.add(int(local.rsplit(":", 1)[1], 16))
    return ports


def make_span(i: int, case: str, attributes: dict[str, Any] | None = None) -> Span:
    return Span(
        trace_id=(i + 1).to_bytes(16, "big"),
        span_id=(i + 1).to_bytes(8, "big"),
        name="otelcol",
        start_time_unix_nano=1_700_000_000_000_000_000 + i,
        end_time_unix_nano=1_700_000_000_000_001_000 + i,
        attributes=attributes or {},
        resource=Resource({"service.name": "otelcol-test", "test.case": case}),
    )


def exporter_for(collector: OtelCollector, protocol: str, implementation: str | None, **kwargs: Any) -> OTLPExporter:
    endpoint = collector.grpc_endpoint if protocol == "grpc" else collector.http_endpoint
    return OTLPExporter(
        endpoint=endpoint,
        protocol=protocol,  # type: ignore[arg-type]
        grpc_implementation=implementation,  # type: ignore[arg-type]
        **{"retry": FAST_RETRY, "timeout": 10.0, **kwargs},
    )


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def sink() -> AsyncIterator[FakeCollector]:
    async with FakeCollector() as collector:
        yield collector


@pytest.fixture(scope="module")
def server_tls(pki: dict[str, Any], tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    directory = tmp_path_factory.mktemp("otelcol-tls")
    (directory / "server.pem").write_bytes(pki["server_cert"])
    (directory / "server.key").write_bytes(pki["server_key"])
    return {"cert_file": str(directory / "server.pem"), "key_file": str(directory / "server.key")}


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def collectors(
    sink: FakeCollector, otelcol_binary: str, server_tls: dict[str, str], pki: dict[str, Any]
) -> AsyncIterator[dict[str, OtelCollector]]:
    """One Collector per security setting (plaintext, TLS, mTLS), each with the batch processor, each with
    grpc-go's default (strict) keepalive enforcement: pings at most every 5 minutes, none without a call."""
    tls = OtelCollectorTLS(**server_tls)
    mtls = OtelCollectorTLS(**server_tls, client_ca_file=pki["ca"])
    running = {
        name: OtelCollector(forward_to=sink.grpc_endpoint, tls=setting, batch=BATCH, binary=otelcol_binary)
        for name, setting in (("plaintext", None), ("tls", tls), ("mtls", mtls))
    }
    try:
        await asyncio.gather(*(c.start() for c in running.values()))
        yield running
    finally:
        await asyncio.gather(*(c.stop() for c in running.values()))


def tls_arguments(security: str, pki: dict[str, Any]) -> dict[str, Any]:
    if security == "plaintext":
        return {}
    arguments = {"certificate_file": pki["ca"]}
    if security == "mtls":
        arguments |= {"client_certificate_file": pki["client_cert"], "client_key_file": pki["client_key"]}
    return arguments


@pytest.mark.parametrize("security", SECURITY)
@pytest.mark.parametrize(("protocol", "implementation", "compression"), CLIENT_COMPRESSIONS)
async def test_every_signal_arrives_unchanged_through_the_collector(
    collectors: dict[str, OtelCollector],
    sink: FakeCollector,
    pki: dict[str, Any],
    protocol: str,
    implementation: str | None,
    compression: str,
    security: str,
) -> None:
    collector = collectors[security]
    case = f"unchanged-{protocol}-{implementation}-{compression}-{security}"
    spans, metrics, logs = tag(samples.spans(), case), tag(samples.metrics(), case), tag(samples.logs(), case)
    async with exporter_for(
        collector, protocol, implementation, compression=compression, **tls_arguments(security, pki)
    ) as exporter:
        results = [
            await exporter.export_traces(spans),
            await exporter.export_metrics(metrics),
            await exporter.export_logs(logs),
        ]
    assert all(r.ok for r in results), [(r.error, collector.log_text()[-2000:]) for r in results if not r.ok]

    expected = {
        Signal.TRACES: flatten([ExportTraceServiceRequest.FromString(encode_traces(spans))], Signal.TRACES, case),
        Signal.METRICS: flatten(
            [ExportMetricsServiceRequest.FromString(encode_metrics(metrics))], Signal.METRICS, case
        ),
        Signal.LOGS: flatten([ExportLogsServiceRequest.FromString(encode_logs(logs))], Signal.LOGS, case),
    }

    def got(signal: Signal) -> list[tuple[bytes, bytes, bytes]]:
        return flatten((r.message for r in sink.requests(signal)), signal, case)

    await sink.wait_for(lambda _: all(len(got(s)) >= len(expected[s]) for s in Signal), timeout=20)
    for signal in Signal:
        assert got(signal) == expected[signal], f"{signal.value} changed on the way through the Collector"


async def test_without_a_sink_the_debug_exporter_logs_what_arrived(otelcol_binary: str) -> None:
    async with OtelCollector(binary=otelcol_binary) as collector, exporter_for(collector, "grpc", "h2") as exporter:
        assert (await exporter.export_traces(samples.spans())).ok
        deadline = asyncio.get_running_loop().time() + 10
        while '"spans": 6' not in collector.log_text():  # the debug exporter's line for the request
            assert asyncio.get_running_loop().time() < deadline, collector.log_text()
            await asyncio.sleep(0.02)


@pytest.mark.parametrize("protocol", ["grpc", "http/protobuf", "http/json"])
async def test_the_sdk_drop_in_exporters_deliver_unchanged_through_the_collector(
    otelcol_binary: str, protocol: str
) -> None:
    """The OpenTelemetry SDK's spans, log records and metrics (every instrument) through aiotlp.sdk's exporters,
    as an application hands them over: what arrives is what the SDK encoder makes of them."""
    sdk = pytest.importorskip("aiotlp.sdk")
    from tests.sdk import sdk_data

    spans, records, metrics = sdk_data.spans(), sdk_data.log_records(), sdk_data.metrics_data()
    expected = {
        Signal.TRACES: flatten([ExportTraceServiceRequest.FromString(sdk.encode_spans(spans))], Signal.TRACES, None),
        Signal.LOGS: flatten([ExportLogsServiceRequest.FromString(sdk.encode_log_records(records))], Signal.LOGS, None),
        Signal.METRICS: flatten(
            [ExportMetricsServiceRequest.FromString(sdk.encode_metrics_data(metrics))], Signal.METRICS, None
        ),
    }
    async with (
        FakeCollector() as sink,
        OtelCollector(forward_to=sink.grpc_endpoint, binary=otelcol_binary) as collector,
    ):

        def endpoint(path: str) -> str:
            return collector.grpc_endpoint if protocol == "grpc" else collector.http_endpoint + path

        def export() -> list[str]:  # on a thread, as a synchronous application would
            exporters = [
                sdk.SpanExporter(endpoint("/v1/traces"), protocol=protocol),
                sdk.LogExporter(endpoint("/v1/logs"), protocol=protocol),
                sdk.MetricExporter(endpoint("/v1/metrics"), protocol=protocol),
            ]
            try:
                results = [exporters[0].export(spans), exporters[1].export(records), exporters[2].export(metrics)]
            finally:
                for exporter in exporters:
                    exporter.shutdown()
            return [result.name for result in results]

        assert await asyncio.to_thread(export) == ["SUCCESS"] * 3

        def got(signal: Signal) -> list[tuple[bytes, bytes, bytes]]:
            return flatten((r.message for r in sink.requests(signal)), signal, None)

        await sink.wait_for(lambda _: all(len(got(s)) >= len(expected[s]) for s in Signal), timeout=20)
        for signal in Signal:
            assert got(signal) == expected[signal], f"{signal.value} changed on the way through the Collector"


@pytest.mark.parametrize(
    ("protocol", "compression"), [("grpc", "gzip"), ("http/protobuf", "gzip"), ("http/protobuf", "deflate")]
)
async def test_compressed_batches_on_the_native_lane_arrive_whole_through_the_collector(
    otelcol_binary: str, protocol: str, compression: str
) -> None:
    """An SDK application on a plain thread with ``compression="gzip"`` (or deflate): its full batches go on the
    native lane, compressed by the lane's threads, and the Collector (Go) inflates and forwards every span."""
    sdk = pytest.importorskip("aiotlp.sdk")
    from opentelemetry.sdk.trace import TracerProvider

    from aiotlp.transport import lane_available

    if not lane_available():
        pytest.skip("the native lane is not built here (or AIOTLP_NO_EXTENSIONS is set)")
    count = 2 * 512 + 10
    async with (
        FakeCollector() as sink,
        OtelCollector(forward_to=sink.grpc_endpoint, binary=otelcol_binary) as collector,
    ):
        endpoint = collector.grpc_endpoint if protocol == "grpc" else collector.http_endpoint + "/v1/traces"

        def app() -> tuple[int, int]:  # on a thread, as a synchronous application would
            exporter = sdk.SpanExporter(endpoint, protocol=protocol, compression=compression)
            processor = sdk.BatchSpanProcessor(exporter, schedule_delay_millis=60_000)
            provider = TracerProvider()
            provider.add_span_processor(processor)
            tracer = provider.get_tracer("lane")
            for n in range(count):
                with tracer.start_as_current_span(f"s{n}"):
                    pass
            assert processor.force_flush(30_000)
            sent = processor._processor.lane.sent
            exported = processor.statistics().exported
            provider.shutdown()
            return sent, exported

        sent, exported = await asyncio.to_thread(app)
        assert sent >= 2 and exported == count

        def names() -> list[str]:
            return [span.name for span in sink.spans()]

        await sink.wait_for(lambda _: len(names()) >= count, timeout=20)
        assert sorted(names()) == sorted(f"s{n}" for n in range(count))


# -- request size: grpc-go's 4 MiB receive limit, net/http's 20 MiB body limit


@pytest.mark.parametrize(("protocol", "implementation"), CLIENTS, ids=CLIENT_IDS)
async def test_a_10_mib_batch_arrives_whole_in_several_requests(
    collectors: dict[str, OtelCollector], sink: FakeCollector, protocol: str, implementation: str | None
) -> None:
    """aiotlp's default request cap (4 MiB, before compression) fits grpc-go's default receive limit (4 MiB)
    and the HTTP receiver's 20 MiB: a ~10 MiB batch is split and every span arrives."""
    case = f"10mib-{protocol}-{implementation}"
    spans = [make_span(i, case, {"blob": f"{i:08d}" * 512}) for i in range(2600)]  # 4 KiB each
    assert len(encode_traces(spans)) > 10 * 1024 * 1024
    async with exporter_for(collectors["plaintext"], protocol, implementation) as exporter:
        result = await exporter.export_traces(spans)
    assert result.ok, (result, collectors["plaintext"].log_text()[-2000:])
    assert result.requests >= 3
    await sink.wait_for(lambda s: len(span_ids(s, case)) >= len(spans), timeout=20)
    assert sorted(span_ids(sink, case)) == list(range(1, len(spans) + 1))


def span_of_request_size(size: int, case: str) -> Span:
    """One span whose ExportTraceServiceRequest encodes to exactly ``size`` bytes."""
    fill = size
    for _ in range(10):
        span = make_span(0, case, {"blob": "x" * fill})
        actual = len(encode_traces([span]))
        if actual == size:
            return span
        fill += size - actual
    raise AssertionError(f"no span of {size} bytes")


@pytest.mark.parametrize(("protocol", "implementation"), GRPC_CLIENTS, ids=GRPC_IDS)
async def test_grpc_requests_of_4_mib_pass_and_larger_ones_are_refused(
    collectors: dict[str, OtelCollector], sink: FakeCollector, protocol: str, implementation: str | None
) -> None:
    """grpc-go's limit is the message size, 4 MiB inclusive: aiotlp's default cap sits exactly on it. A
    larger request (a user's ``max_request_bytes`` above the default) gets RESOURCE_EXHAUSTED, not retried."""
    collector = collectors["plaintext"]
    limit = 4 * 1024 * 1024
    case = f"4mib-{implementation}"
    async with exporter_for(collector, protocol, implementation) as exporter:
        assert exporter.config.for_signal(Signal.TRACES).max_request_bytes == limit
        fits = await exporter.export_traces([span_of_request_size(limit, case)])
    assert fits.ok, (fits, collector.log_text()[-2000:])
    async with exporter_for(collector, protocol, implementation, max_request_bytes=2 * limit) as exporter:
        over = await exporter.export_traces([span_of_request_size(limit + 1, case + "-over")])
        assert exporter.retries == 0
    assert over.failed == 1
    assert "RESOURCE_EXHAUSTED" in str(over.error) or "larger than max" in str(over.error), over.error
    await sink.wait_for(lambda s: len(span_ids(s, case)) >= 1, timeout=20)


async def test_http_requests_of_20_mib_pass_and_larger_ones_are_refused(
    collectors: dict[str, OtelCollector], sink: FakeCollector
) -> None:
    """The HTTP receiver's ``max_request_body_size`` (20 MiB, inclusive) is far above aiotlp's default cap; a
    user's ``max_request_bytes`` of 20 MiB still passes, and a larger request gets 400, not retried."""
    collector = collectors["plaintext"]
    limit = 20 * 1024 * 1024
    case = "20mib-http"
    async with exporter_for(collector, "http/protobuf", None, max_request_bytes=limit) as exporter:
        fits = await exporter.export_traces([span_of_request_size(limit, case)])
    assert fits.ok, (fits, collector.log_text()[-2000:])
    async with exporter_for(collector, "http/protobuf", None, max_request_bytes=2 * limit) as exporter:
        over = await exporter.export_traces([span_of_request_size(limit + 1, case + "-over")])
        assert exporter.retries == 0
    assert over.failed == 1
    assert "400" in str(over.error), over.error
    await sink.wait_for(lambda s: len(span_ids(s, case)) >= 1, timeout=20)


# -- keepalive enforcement and connection age (grpc-go's server parameters)


@pytest.mark.parametrize(("protocol", "implementation"), GRPC_CLIENTS, ids=GRPC_IDS)
async def test_no_too_many_pings_goaway_when_idle_and_under_load(
    collectors: dict[str, OtelCollector], sink: FakeCollector, protocol: str, implementation: str | None
) -> None:
    """grpc-go's default enforcement (a client ping at most every 5 min, none without a call; more than two
    offences -> GOAWAY ENHANCE_YOUR_CALM "too_many_pings", which closes the connection): one connection
    carries an export, a few idle seconds and a burst of exports, and is never replaced."""
    await keepalive_run(collectors["plaintext"], sink, implementation, idle=3.0)


@pytest.mark.slow
@pytest.mark.parametrize(("protocol", "implementation"), GRPC_CLIENTS, ids=GRPC_IDS)
async def test_no_too_many_pings_goaway_after_a_long_idle_period(
    collectors: dict[str, OtelCollector], sink: FakeCollector, protocol: str, implementation: str | None
) -> None:
    await keepalive_run(collectors["plaintext"], sink, implementation, idle=70.0)


async def keepalive_run(collector: OtelCollector, sink: FakeCollector, implementation: str | None, idle: float) -> None:
    case = f"keepalive-{implementation}-{idle}"
    before = client_ports(collector.grpc_port)
    async with exporter_for(collector, "grpc", implementation) as exporter:
        first = await exporter.export_traces([make_span(0, case)])
        assert first.ok, first
        ports = client_ports(collector.grpc_port) - before
        assert len(ports) == 1, ports
        await asyncio.sleep(idle)  # the idle period under test (a connection that only waits)
        assert client_ports(collector.grpc_port) - before == ports, "the idle connection was closed"
        n = 400
        results = await asyncio.gather(*(exporter.export_traces([make_span(i, case)]) for i in range(1, n)))
        assert all(r.ok for r in results), {str(r.error) for r in results if not r.ok}
        assert exporter.retries == 0
        assert client_ports(collector.grpc_port) - before == ports, "the connection was replaced under load"
    await sink.wait_for(lambda s: len(set(span_ids(s, case))) >= n, timeout=20)


async def steady_stream(
    exporter: Any, case: str, seconds: float, *, every: float = 0.02, per_export: int = 10, watch_port: int = 0
) -> tuple[int, list[Any], set[int]]:
    """Exports of ``per_export`` new spans every ``every`` seconds for ``seconds``, each in its own task;
    returns how many spans were produced, the results, and the client ports seen (when ``watch_port``)."""
    loop = asyncio.get_running_loop()
    tasks: list[asyncio.Task[Any]] = []
    ports: set[int] = set()
    produced = 0
    start = loop.time()
    for tick in itertools.count(1):
        batch = [make_span(produced + i, case) for i in range(per_export)]
        produced += per_export
        tasks.append(loop.create_task(exporter.export_traces(batch)))
        if watch_port:
            ports |= client_ports(watch_port)
        if loop.time() - start >= seconds:
            break
        await asyncio.sleep(max(0.0, start + tick * every - loop.time()))  # the producer's pace
    return produced, list(await asyncio.gather(*tasks)), ports


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def aging(sink: FakeCollector, otelcol_binary: str) -> AsyncIterator[OtelCollector]:
    """A Collector that closes every gRPC connection after 1 s (GOAWAY), with 2 s of grace for calls in
    flight; no batch processor and no sending queue, so an OK means the sink has the spans."""
    keepalive = OtelCollector.keepalive(max_connection_age=1.0, max_connection_age_grace=2.0)
    async with OtelCollector(
        forward_to=sink.grpc_endpoint, grpc={"keepalive": keepalive}, exporter=SYNCHRONOUS, binary=otelcol_binary
    ) as collector:
        yield collector


@pytest.mark.parametrize(("protocol", "implementation"), GRPC_CLIENTS, ids=GRPC_IDS)
async def test_nothing_is_lost_across_the_goaways_of_max_connection_age(
    aging: OtelCollector, sink: FakeCollector, protocol: str, implementation: str | None
) -> None:
    await aging_run(aging, sink, implementation, seconds=3.5)


@pytest.mark.slow
@pytest.mark.parametrize(("protocol", "implementation"), GRPC_CLIENTS, ids=GRPC_IDS)
async def test_nothing_is_lost_across_20_s_of_connection_ages(
    aging: OtelCollector, sink: FakeCollector, protocol: str, implementation: str | None
) -> None:
    await aging_run(aging, sink, implementation, seconds=20.0)


async def aging_run(aging: OtelCollector, sink: FakeCollector, implementation: str | None, seconds: float) -> None:
    case = f"aging-{implementation}-{seconds}"
    async with exporter_for(aging, "grpc", implementation) as exporter:
        produced, results, ports = await steady_stream(exporter, case, seconds, watch_port=aging.grpc_port)
        retries = exporter.retries
    failed = [str(r.error) for r in results if not r.ok]
    assert not failed, failed[:3]
    assert len(ports) >= seconds // 1.5, f"connections seen: {ports}"  # the Collector did close them
    await sink.wait_for(lambda s: len(set(span_ids(s, case))) >= produced, timeout=20)
    ids = span_ids(sink, case)
    assert sorted(set(ids)) == list(range(1, produced + 1))
    print(f"\n{implementation}: {produced} spans over {len(ports)} connections, {retries} retries")


# -- memory_limiter refusals


@pytest_asyncio.fixture(loop_scope="module")
async def limited(sink: FakeCollector, otelcol_binary: str) -> AsyncIterator[OtelCollector]:
    """A Collector whose memory_limiter refuses everything (a 1 MiB limit: the Go runtime alone uses more),
    from its first check on: every export gets UNAVAILABLE / 503 without RetryInfo."""
    collector = OtelCollector(
        forward_to=sink.grpc_endpoint,
        memory_limiter={"check_interval": "20ms", "limit_mib": 1, "spike_limit_mib": 0},
        exporter=SYNCHRONOUS,
        binary=otelcol_binary,
    )
    async with collector:
        deadline = asyncio.get_running_loop().time() + 10
        while "Refusing data" not in collector.log_text():  # the limiter's first check has run
            assert asyncio.get_running_loop().time() < deadline, collector.log_text()
            await asyncio.sleep(0.02)
        yield collector


@pytest.mark.parametrize(("protocol", "implementation"), CLIENTS, ids=CLIENT_IDS)
async def test_memory_limiter_refusals_are_retried_counted_and_delivered_after(
    limited: OtelCollector, sink: FakeCollector, protocol: str, implementation: str | None
) -> None:
    case = f"limited-{protocol}-{implementation}"
    spans = [make_span(i, case) for i in range(5)]
    retry = RetryPolicy(initial_backoff=0.02, max_backoff=0.05, max_attempts=3)
    async with exporter_for(limited, protocol, implementation, retry=retry) as exporter:
        refused = await exporter.export_traces(spans)
        assert exporter.retries == 2  # UNAVAILABLE / 503: retryable
    assert (refused.failed, refused.accepted) == (5, 0), refused
    assert "high memory usage" in str(refused.error), refused.error
    assert ("503" if protocol != "grpc" else "UNAVAILABLE") in str(refused.error), refused.error

    # the same refusals, retried until the Collector takes the data again (restarted without the limiter)
    async with exporter_for(limited, protocol, implementation, retry=FAST_RETRY) as exporter:
        export = asyncio.ensure_future(exporter.export_traces(spans))
        deadline = asyncio.get_running_loop().time() + 10
        while exporter.retries < 2:
            assert asyncio.get_running_loop().time() < deadline and not export.done(), export
            await asyncio.sleep(0.01)
        limited.memory_limiter = None
        await limited.restart()
        delivered = await export
    assert delivered.ok, delivered
    await sink.wait_for(lambda s: len(span_ids(s, case)) >= 5, timeout=20)


# -- a Collector killed and restarted, a fleet of two with one killed: the disk queue loses nothing


async def durable_run(
    collectors: Sequence[OtelCollector],
    sink: FakeCollector,
    protocol: str,
    case: str,
    tmp_path: Path,
    *,
    restart: bool,
    seconds: float = 3.0,
) -> None:
    from aiotlp.durable import DurableExporter

    endpoints = [c.grpc_endpoint if protocol == "grpc" else c.http_endpoint for c in collectors]
    inner = OTLPExporter(endpoint=endpoints if len(endpoints) > 1 else endpoints[0], protocol=protocol, timeout=2.0)  # type: ignore[arg-type]
    exporter = DurableExporter(inner, tmp_path / "queue", retry_initial=0.05, retry_max=0.5)
    victim = collectors[-1]
    loop = asyncio.get_running_loop()

    async def crash() -> None:
        await asyncio.sleep(seconds / 3)  # into the run
        victim.kill()
        if restart:
            await asyncio.sleep(seconds / 6)  # down for a while
            await victim.restart()

    crashing = loop.create_task(crash())
    try:
        produced, results, _ = await steady_stream(exporter, case, seconds, every=0.01)
        await crashing
    finally:
        await exporter.shutdown(timeout=15)
    stats = exporter.statistics()
    assert all(r.ok for r in results), {str(r.error) for r in results if not r.ok}  # all written to the queue
    assert stats.queued_records == 0, stats
    assert stats.delivered_items == produced, stats
    await sink.wait_for(lambda s: len(set(span_ids(s, case))) >= produced, timeout=20)
    assert sorted(set(span_ids(sink, case))) == list(range(1, produced + 1))


@pytest.mark.parametrize("protocol", ["http/protobuf", "grpc"])
async def test_a_collector_killed_and_restarted_loses_nothing_with_the_disk_queue(
    sink: FakeCollector, otelcol_binary: str, protocol: str, tmp_path: Path
) -> None:
    async with OtelCollector(forward_to=sink.grpc_endpoint, exporter=SYNCHRONOUS, binary=otelcol_binary) as one:
        await durable_run([one], sink, protocol, f"restart-{protocol}", tmp_path, restart=True)


async def test_two_collectors_one_killed_lose_nothing_with_the_disk_queue(
    sink: FakeCollector, otelcol_binary: str, tmp_path: Path
) -> None:
    async with (
        OtelCollector(forward_to=sink.grpc_endpoint, exporter=SYNCHRONOUS, binary=otelcol_binary) as a,
        OtelCollector(forward_to=sink.grpc_endpoint, exporter=SYNCHRONOUS, binary=otelcol_binary) as b,
    ):
        await durable_run([a, b], sink, "grpc", "fleet", tmp_path, restart=False)
