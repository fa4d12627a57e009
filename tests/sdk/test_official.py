"""aiotlp.sdk.grpc and aiotlp.sdk.http mirror the official exporters' classes (names, parameters, order, defaults);
the error for a scheme-less endpoint says which protocol was assumed and how to change it; statistics().
"""

from __future__ import annotations

import importlib
import inspect
import logging
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SpanExportResult
from opentelemetry.trace import SpanContext, TraceFlags

import aiotlp
import aiotlp.sdk
import aiotlp.sdk.grpc
import aiotlp.sdk.http
from aiotlp.testing import FakeCollector

OFFICIAL = {
    ("grpc", "OTLPSpanExporter"): "opentelemetry.exporter.otlp.proto.grpc.trace_exporter",
    ("grpc", "OTLPLogExporter"): "opentelemetry.exporter.otlp.proto.grpc._log_exporter",
    ("grpc", "OTLPMetricExporter"): "opentelemetry.exporter.otlp.proto.grpc.metric_exporter",
    ("http", "OTLPSpanExporter"): "opentelemetry.exporter.otlp.proto.http.trace_exporter",
    ("http", "OTLPLogExporter"): "opentelemetry.exporter.otlp.proto.http._log_exporter",
    ("http", "OTLPMetricExporter"): "opentelemetry.exporter.otlp.proto.http.metric_exporter",
}


def _parameters(cls: type) -> list[tuple[str, object, object]]:
    """(name, kind, default) of ``cls.__init__``, without ``self``, aiotlp's ``**options`` and the official
    private ``_transport``."""
    return [
        (p.name, p.kind, p.default)
        for p in inspect.signature(cls.__init__).parameters.values()
        if p.name not in ("self", "options", "_transport")
    ]


@pytest.mark.parametrize(("module", "name"), list(OFFICIAL))
def test_the_signature_is_the_official_one(module: str, name: str) -> None:
    official = getattr(importlib.import_module(OFFICIAL[module, name]), name)
    ours = getattr(getattr(aiotlp.sdk, module), name)
    assert _parameters(ours) == _parameters(official)
    assert inspect.signature(ours.__init__).parameters["options"].kind is inspect.Parameter.VAR_KEYWORD


SIGNALS = {
    "OTLPSpanExporter": aiotlp.Signal.TRACES,
    "OTLPLogExporter": aiotlp.Signal.LOGS,
    "OTLPMetricExporter": aiotlp.Signal.METRICS,
}


def _signal(cls: type) -> aiotlp.Signal:
    return next(s for n, s in SIGNALS.items() if cls in (getattr(aiotlp.sdk.grpc, n), getattr(aiotlp.sdk.http, n)))


@pytest.mark.parametrize(
    ("cls", "protocol", "endpoint"),
    [
        (aiotlp.sdk.grpc.OTLPSpanExporter, "grpc", "http://localhost:4317"),
        (aiotlp.sdk.grpc.OTLPLogExporter, "grpc", "http://localhost:4317"),
        (aiotlp.sdk.grpc.OTLPMetricExporter, "grpc", "http://localhost:4317"),
        (aiotlp.sdk.http.OTLPSpanExporter, "http/protobuf", "http://localhost:4318/v1/traces"),
        (aiotlp.sdk.http.OTLPLogExporter, "http/protobuf", "http://localhost:4318/v1/logs"),
        (aiotlp.sdk.http.OTLPMetricExporter, "http/protobuf", "http://localhost:4318/v1/metrics"),
    ],
)
def test_defaults_and_fixed_protocol(cls: type[aiotlp.sdk.SpanExporter], protocol: str, endpoint: str) -> None:
    signal = _signal(cls)
    exporter = cls()
    config = exporter.config.for_signal(signal)
    assert (config.protocol, config.endpoint) == (protocol, endpoint)
    # the protocol variable does not change the class's protocol, as with the official classes
    other = cls(environ={"OTEL_EXPORTER_OTLP_PROTOCOL": "http/json" if protocol == "grpc" else "grpc"})
    assert other.config.for_signal(signal).protocol == protocol
    exporter.shutdown()
    other.shutdown()


_REFUSED = ("credentials", "session", "channel_options", "retryable_error_codes")


@pytest.mark.parametrize(("module", "name"), list(OFFICIAL))
def test_each_positional_argument_lands_where_the_official_order_puts_it(
    module: str, name: str, tmp_path: Path
) -> None:
    """Each positional parameter of the installed official class (its own order: gRPC and HTTP differ, the metric
    classes put their three in the middle), given alone at its position with the ones before it ``None``, is
    taken as that parameter: seen in the configuration, the metric preferences, or the error that names it."""
    from opentelemetry.sdk.metrics import Counter
    from opentelemetry.sdk.metrics.export import AggregationTemporality
    from opentelemetry.sdk.metrics.view import LastValueAggregation

    official = getattr(importlib.import_module(OFFICIAL[module, name]), name)
    positional = [
        p.name
        for p in inspect.signature(official.__init__).parameters.values()
        if p.kind is inspect.Parameter.POSITIONAL_OR_KEYWORD and p.name != "self"
    ]
    ours = getattr(getattr(aiotlp.sdk, module), name)
    signal = SIGNALS[name]
    pem, key, cert = tmp_path / "probe.pem", tmp_path / "key.pem", tmp_path / "cert.pem"
    for path in (pem, key, cert):
        path.write_text("-----BEGIN CERTIFICATE-----\n-----END CERTIFICATE-----\n", encoding="utf-8")
    # gRPC: a scheme-less endpoint from the environment, so that insecure=True is seen (it is only read then);
    # HTTP: mTLS files from the environment (one alone is refused), each replaced by the one given
    environ = (
        {"OTEL_EXPORTER_OTLP_ENDPOINT": "collector:4317"}
        if module == "grpc"
        else {"OTEL_EXPORTER_OTLP_CLIENT_KEY": str(key), "OTEL_EXPORTER_OTLP_CLIENT_CERTIFICATE": str(cert)}
    )
    aggregation = LastValueAggregation()
    probes: dict[str, tuple[object, Callable[[Any], object], object]] = {
        # name: (value, what shows where it landed, the expected reading)
        "endpoint": (
            "other:1234" if module == "grpc" else "http://other:1234/v1/x",
            lambda e: e.config.for_signal(signal).endpoint,
            "https://other:1234" if module == "grpc" else "http://other:1234/v1/x",
        ),
        "insecure": (True, lambda e: e.config.for_signal(signal).insecure, True),
        "headers": ({"probe": "1"}, lambda e: dict(e.config.for_signal(signal).headers), {"probe": "1"}),
        "timeout": (2.5, lambda e: e.config.for_signal(signal).timeout, 2.5),
        "compression": ("gzip", lambda e: e.config.for_signal(signal).compression, "gzip"),
        "certificate_file": (str(pem), lambda e: e.config.for_signal(signal).certificate_file, str(pem)),
        "client_key_file": (str(pem), lambda e: e.config.for_signal(signal).client_key_file, str(pem)),
        "client_certificate_file": (
            str(pem),
            lambda e: e.config.for_signal(signal).client_certificate_file,
            str(pem),
        ),
        "preferred_temporality": (
            {Counter: AggregationTemporality.DELTA},
            lambda e: e.preferred_temporality[Counter],
            AggregationTemporality.DELTA,
        ),
        "preferred_aggregation": ({Counter: aggregation}, lambda e: e.preferred_aggregation[Counter], aggregation),
    }
    assert set(positional) <= {*probes, *_REFUSED, "max_export_batch_size"}, positional
    for index, parameter in enumerate(positional):
        before: list[object] = [None] * index
        if parameter in _REFUSED:
            with pytest.raises(aiotlp.ConfigurationError, match=f"^{parameter}: "):
                ours(*before, object(), environ=environ)
            continue
        if parameter == "max_export_batch_size":
            with pytest.raises(aiotlp.ConfigurationError, match=r"^max_export_batch_size: "):
                ours(*before, 0, environ=environ)
            continue
        value, read, expected = probes[parameter]
        exporter = ours(*before, value, environ=environ)
        try:
            assert read(exporter) == expected, parameter
        finally:
            exporter.shutdown()


def test_the_official_grpc_call_works_unchanged() -> None:
    exporter = aiotlp.sdk.grpc.OTLPSpanExporter(endpoint="localhost:4317", insecure=True)
    config = exporter.config.for_signal(aiotlp.Signal.TRACES)
    assert (config.protocol, config.host, config.port, config.insecure) == ("grpc", "localhost", 4317, True)
    assert repr(exporter) == "<aiotlp.sdk.grpc.OTLPSpanExporter grpc http://localhost:4317>"
    # positional, in the official order: endpoint, insecure, credentials, headers, timeout, compression
    positional = aiotlp.sdk.grpc.OTLPLogExporter("collector:4317", True, None, {"k": "v"}, 2.5, "gzip")
    config = positional.config.for_signal(aiotlp.Signal.LOGS)
    assert (config.timeout, config.compression, dict(config.headers)) == (2.5, "gzip", {"k": "v"})


def test_a_scheme_less_endpoint_for_http_says_what_was_assumed_and_what_to_do() -> None:
    with pytest.raises(aiotlp.ConfigurationError) as info:
        aiotlp.sdk.SpanExporter(endpoint="localhost:4317", insecure=True)
    message = str(info.value)
    assert message == (
        "endpoint 'localhost:4317' has no scheme: the OTLP/HTTP exporter (the protocol from "
        "OTEL_EXPORTER_OTLP_PROTOCOL, or the default http/protobuf) needs a URL starting with http:// or https://, "
        "such as 'http://localhost:4317/v1/traces'; for gRPC use protocol='grpc' or aiotlp.sdk.grpc.OTLPSpanExporter"
    )
    assert "signal_endpoints" not in message


def test_the_http_class_names_itself_and_never_shows_credentials() -> None:
    with pytest.raises(aiotlp.ConfigurationError) as info:
        aiotlp.sdk.http.OTLPLogExporter("alice:s3cret@collector:4318")
    message = str(info.value)
    assert "s3cret" not in message and "alice" not in message
    assert message.startswith(
        "endpoint 'collector:4318' has no scheme: aiotlp.sdk.http.OTLPLogExporter is an OTLP/HTTP exporter"
    )
    assert message.endswith("for gRPC use aiotlp.sdk.grpc.OTLPLogExporter")
    assert "protocol=" not in message  # not an argument of this class


def test_protocol_given_is_named() -> None:
    with pytest.raises(aiotlp.ConfigurationError, match=r"\(protocol='http/json'\)"):
        aiotlp.sdk.LogExporter("collector:4318", protocol="http/json")


def _span(name: str) -> ReadableSpan:
    context = SpanContext(1, 2, False, TraceFlags(TraceFlags.SAMPLED))
    return ReadableSpan(name=name, context=context, resource=Resource({}), start_time=1, end_time=2)


async def test_statistics_count_what_happened(collector: FakeCollector) -> None:
    exporter = aiotlp.sdk.http.OTLPSpanExporter(collector.http_endpoint + "/v1/traces")

    def run() -> None:
        assert exporter.export([_span("a"), _span("b")]) is SpanExportResult.SUCCESS

    thread = threading.Thread(target=run)  # a synchronous caller: export waits for the outcome
    thread.start()
    await _join(thread)
    stats = exporter.statistics()
    assert (stats.exports, stats.items, stats.accepted, stats.delivered, stats.failed) == (1, 2, 2, 2, 0)
    assert stats.kept_on_disk == stats.on_disk == 0 and stats.dropped == {} and stats.balanced
    exporter.shutdown()


async def test_statistics_name_the_failure() -> None:
    async with FakeCollector() as dead:
        url = dead.http_endpoint + "/v1/traces"  # closed when the block ends: nothing listens there after
    exporter = aiotlp.sdk.SpanExporter(url, timeout=0.5)

    def run() -> None:
        assert exporter.export([_span("a")]) is SpanExportResult.FAILURE

    thread = threading.Thread(target=run)
    thread.start()
    await _join(thread)
    stats = exporter.statistics()
    assert (stats.items, stats.accepted, stats.failed, stats.in_flight) == (1, 0, 1, 0)
    assert stats.last_error is not None and stats.balanced
    exporter.shutdown()


def test_with_the_disk_queue_statistics_and_logs_say_kept_on_disk(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Nothing listens: the 3 spans are written to disk (kept_on_disk, not accepted, not delivered), and the
    shutdown says they are kept for the next start, not that they failed."""
    exporter = aiotlp.sdk.SpanExporter("http://127.0.0.1:9/v1/traces", queue_dir=tmp_path, timeout=0.5)
    with caplog.at_level(logging.WARNING):
        assert exporter.export([_span("a"), _span("b"), _span("c")]) is SpanExportResult.SUCCESS
        assert exporter.force_flush(5_000)
        stats = exporter.statistics()
        exporter.shutdown(2_000)
    assert (stats.accepted, stats.kept_on_disk, stats.delivered, stats.failed) == (0, 3, 0, 0)
    assert stats.queue_dir == str(tmp_path / "traces") and stats.balanced
    assert "failed to export" not in caplog.text
    assert "3 spans kept on disk for the next start" in caplog.text


async def _join(thread: threading.Thread) -> None:
    import asyncio

    await asyncio.to_thread(thread.join, 60)
    assert not thread.is_alive()


def test_the_entry_points_name_the_official_classes_counterparts() -> None:
    """pyproject.toml's exporter entry points (an installed distribution lists them; this checks the source):
    ``aiotlp_proto_grpc`` / ``aiotlp_proto_http`` are the official ``otlp_proto_grpc`` / ``otlp_proto_http``."""
    import tomllib

    project = tomllib.loads((Path(__file__).parents[2] / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    classes = {"traces": "OTLPSpanExporter", "metrics": "OTLPMetricExporter", "logs": "OTLPLogExporter"}
    for signal, name in classes.items():
        points = project["entry-points"][f"opentelemetry_{signal}_exporter"]
        for entry, module in (("aiotlp_proto_grpc", aiotlp.sdk.grpc), ("aiotlp_proto_http", aiotlp.sdk.http)):
            module_name, _, attribute = points[entry].partition(":")
            assert getattr(importlib.import_module(module_name), attribute) is getattr(module, name)


async def test_statistics_count_the_exports_of_aiotlps_processor(collector: FakeCollector) -> None:
    """aiotlp's processor exports on this loop through the exporter's client: counted in its statistics too."""
    exporter = aiotlp.sdk.http.OTLPSpanExporter(collector.http_endpoint + "/v1/traces")
    processor = aiotlp.sdk.BatchSpanProcessor(exporter)
    for name in ("a", "b", "c"):
        processor.on_end(_span(name))
    assert await processor.aforce_flush()
    stats = exporter.statistics()
    assert (stats.items, stats.accepted, stats.delivered, stats.in_flight) == (3, 3, 3, 0) and stats.balanced
    await processor.ashutdown()
