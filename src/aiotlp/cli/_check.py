"""``aiotlp check``: the configuration the exporters will use, and whether each endpoint takes an export.

It resolves the configuration with the same functions the exporters call (:meth:`ExporterConfig.from_env`,
:meth:`BatchConfig.from_env`, :meth:`MetricReaderConfig.from_env`), so what it prints is what they do. Header
values are never printed (only their names) and an endpoint's ``user:password@`` shows as ``***@``; a
configuration error names the variable (and a header entry's position), never its text. Then it
sends one small export per signal (one span, one log record, one gauge point, service ``aiotlp-check``) with a
single attempt, and explains a failure in plain words: connection refused, TLS, 404 on the path, 415 content
type, timeout, authentication. The exit code is 1 when any export fails.
"""

from __future__ import annotations

import os
import time
from collections.abc import Sequence

from .._exceptions import (
    AttemptTimeoutError,
    ConnectError,
    DeadlineExceededError,
    ExportError,
    MissingExtraError,
    RetriesExhaustedError,
)
from ..config import BatchConfig, ExporterConfig, MetricReaderConfig, SignalConfig
from ..export import ExportResult, OTLPExporter, RetryPolicy
from ..model import Gauge, LogRecord, Metric, NumberDataPoint, Resource, SeverityNumber, Signal, Span
from ..transport import zstd_binding
from ._ui import UI, Node

__all__ = ["explain", "run_check"]

_RESOURCE = Resource({"service.name": "aiotlp-check"})
_SECONDS_HINT = " (under 100 ms: OTEL_EXPORTER_OTLP_TIMEOUT is in milliseconds; were seconds meant?)"


def _compression(config: SignalConfig) -> str:
    """The compression; for zstd, the binding that will do it (or the extra to install)."""
    if config.compression != "zstd":
        return config.compression
    try:
        name = zstd_binding().name
    except MissingExtraError:
        return "zstd (no zstd binding: pip install 'aiotlp[zstd]')"
    grpcio = " (not with grpc.aio: aiotlp's h2 gRPC client sends it)" if config.protocol == "grpc" else ""
    return f"zstd, by {name}{grpcio}"


def _config_node(config: SignalConfig) -> Node:
    node = Node(config.signal.value, f"{config.protocol} -> {config.endpoint_for_display}", "bold")
    headers = ", ".join(f"{name}: ***" for name in config.headers) or "none"
    tls = "plaintext" if config.insecure else "TLS"
    if config.use_tls:
        tls += f", CA {config.certificate_file}" if config.certificate_file else ", system CAs"
        if config.client_certificate_file:
            tls += f", client certificate {config.client_certificate_file} (key {config.client_key_file})"
    node.children = [
        Node("headers", headers),
        Node("timeout", f"{config.timeout:g}s per export" + _SECONDS_HINT * (config.timeout < 0.1)),
        Node("compression", _compression(config)),
        Node("transport security", tls),
        Node("max request size", f"{config.max_request_bytes:,} bytes"),
    ]
    return node


def _batching_node(spans: BatchConfig, logs: BatchConfig, reader: MetricReaderConfig) -> Node:
    def batch(name: str, c: BatchConfig) -> Node:
        return Node(
            name,
            f"every {c.schedule_delay:g}s or {c.max_export_batch_size} items, queue {c.max_queue_size}, "
            f"export timeout {c.export_timeout:g}s",
        )

    return Node(
        "batching",
        "",
        "bold",
        [
            batch("spans (OTEL_BSP_*)", spans),
            batch("logs (OTEL_BLRP_*)", logs),
            Node(
                "metrics (OTEL_METRIC_*)",
                f"every {reader.export_interval:g}s, export timeout {reader.export_timeout:g}s, "
                f"temporality {reader.temporality_preference}, histograms {reader.default_histogram_aggregation}",
            ),
        ],
    )


def explain(error: BaseException | None, config: SignalConfig) -> str:
    """A failed export's cause in plain words, with what to check next."""
    if isinstance(error, (RetriesExhaustedError, DeadlineExceededError)) and error.last is not None:
        inner: BaseException | None = error.last
    else:
        inner = error
    text = str(inner) if inner is not None else "not accepted"
    lowered = text.lower()
    text = text.splitlines()[0].rstrip(":, ") if text.strip() else text  # aiohttp quotes raw bytes over lines
    if len(text) > 160:
        text = text[:159] + "…"
    where = f"{config.host}:{config.port}"
    status = inner.status if isinstance(inner, ExportError) else None
    if isinstance(inner, ConnectError) and any(m in lowered for m in ("name or service", "nodename", "getaddrinfo")):
        return f"cannot resolve the host {config.host!r}: check the endpoint's host name"
    if isinstance(inner, ConnectError) and any(m in lowered for m in ("refused", "connect call failed", "errno 111")):
        port_hint = "4317 for gRPC" if config.protocol == "grpc" else "4318 for OTLP/HTTP"
        return f"connection refused: nothing listens on {where}. Is the collector running, on this port ({port_hint})?"
    if "tls" in lowered or "ssl" in lowered or "certificate" in lowered:
        hint = (
            "the endpoint is https:// but the collector may speak plaintext (use http://)"
            if config.use_tls
            else "the collector may require TLS (use https://)"
        )
        if "verif" in lowered:
            hint = "the collector's certificate is not trusted: set OTEL_EXPORTER_OTLP_CERTIFICATE to its CA (PEM)"
        return f"TLS error with {where}: {text}. Likely {hint}"
    if isinstance(inner, (AttemptTimeoutError, DeadlineExceededError)) or "within" in lowered:
        return (
            f"timeout: {where} did not answer within {config.timeout:g}s. Is it the right port and protocol "
            "(OTEL_EXPORTER_OTLP_TIMEOUT sets the limit)?"
        )
    if status == 404:
        name = config.signal.value
        return (
            f"HTTP 404: the collector has nothing at {config.endpoint_for_display}. OTLP/HTTP posts to /v1/{name} "
            f"under OTEL_EXPORTER_OTLP_ENDPOINT; a per-signal OTEL_EXPORTER_OTLP_{name.upper()}_ENDPOINT is used "
            "verbatim and must include that path"
        )
    zstd = config.compression == "zstd"
    if zstd and (status in (400, 415) or "encoding" in lowered or "compressed" in lowered):
        # rotel (0.0.1a15) answers UNIMPLEMENTED over gRPC and 400 over HTTP (it reads the body as uncompressed)
        return (
            f"{text}: the collector does not take zstd-compressed requests; use OTEL_EXPORTER_OTLP_COMPRESSION=gzip "
            "(the OTLP standard)"
        )
    if status == 415:
        other = "http/json" if config.protocol == "http/protobuf" else "http/protobuf"
        return (
            f"HTTP 415: the collector does not accept {config.protocol} bodies here; try "
            f"OTEL_EXPORTER_OTLP_PROTOCOL={other}, or check that this is an OTLP endpoint"
        )
    if status in (401, 403, "UNAUTHENTICATED", "PERMISSION_DENIED"):
        return f"{text}: the collector refused the credentials; check OTEL_EXPORTER_OTLP_HEADERS"
    if status == "UNIMPLEMENTED" or "not a grpc response" in lowered:
        return f"{text}: {where} does not serve OTLP/gRPC; is it an OTLP/HTTP port (4318)? Use a gRPC port (4317)"
    if "bad status line" in lowered or "closed before the response" in lowered or "http/2" in lowered:
        port = "an OTLP/gRPC port (4317)" if config.protocol == "grpc" else "an OTLP/HTTP port (4318)"
        return (
            f"{text}: {where} does not speak {config.protocol}; {config.protocol} needs {port}. "
            "Check OTEL_EXPORTER_OTLP_PROTOCOL and the port"
        )
    if status in (400, "INVALID_ARGUMENT"):
        return f"{text}: the collector could not read the request; does {where} speak {config.protocol}?"
    return text


def _probe_items(signal: Signal) -> Sequence[object]:
    now = time.time_ns()
    trace_id, span_id = os.urandom(16), os.urandom(8)
    if signal is Signal.TRACES:
        return [Span(trace_id, span_id, "aiotlp check", now - 1_000_000, now, resource=_RESOURCE)]
    if signal is Signal.LOGS:
        return [
            LogRecord(
                time_unix_nano=now,
                severity_number=SeverityNumber.INFO,
                body="aiotlp check",
                trace_id=trace_id,
                span_id=span_id,
                resource=_RESOURCE,
            )
        ]
    return [Metric("aiotlp.check", Gauge([NumberDataPoint(1, time_unix_nano=now)]), resource=_RESOURCE)]


async def _probe(exporter: OTLPExporter, signal: Signal) -> ExportResult:
    items = _probe_items(signal)
    if signal is Signal.TRACES:
        return await exporter.export_traces(items)  # type: ignore[arg-type]
    if signal is Signal.LOGS:
        return await exporter.export_logs(items)  # type: ignore[arg-type]
    return await exporter.export_metrics(items)  # type: ignore[arg-type]


async def run_check(ui: UI, *, export: bool, signals: Sequence[Signal], timeout: float | None) -> int:
    config = ExporterConfig.from_env(timeout=timeout)
    spans, logs, reader = BatchConfig.from_env("span"), BatchConfig.from_env("log"), MetricReaderConfig.from_env()
    ui.line("aiotlp check: the configuration the exporters read from the environment", "bold")
    root = Node("exporters", "secrets redacted: header values and URL credentials show as ***")
    root.children = [_config_node(config.for_signal(s)) for s in Signal]
    root.children.append(_batching_node(spans, logs, reader))
    ui.tree(root)
    if not export:
        return 0
    failed = 0
    rows: list[list[str]] = []
    explanations: list[tuple[str, str]] = []
    # one attempt: the point is to see why it fails, not to wait out the retries
    async with OTLPExporter(config, retry=RetryPolicy(max_attempts=1)) as exporter:
        for signal in signals:
            started = time.perf_counter()
            result = await _probe(exporter, signal)
            elapsed = (time.perf_counter() - started) * 1000
            signal_config = config.for_signal(signal)
            if result.ok:
                rows.append([signal.value, signal_config.endpoint_for_display, "ok", f"{elapsed:.0f} ms"])
                continue
            failed += 1
            if result.rejected:
                reason = f"the collector rejected the item: {result.error_message or 'no reason given'}"
            else:
                reason = explain(result.error, signal_config)
            rows.append([signal.value, signal_config.endpoint_for_display, "FAILED", f"{elapsed:.0f} ms"])
            explanations.append((signal.value, reason))
    ui.table("one test export per signal", ["signal", "endpoint", "result", "time"], rows)
    for signal_name, reason in explanations:
        ui.line(f"✗ {signal_name}: {reason}", "bold red")
    if failed:
        ui.line(f"{failed} of {len(signals)} endpoints failed", "bold red")
        return 1
    ui.line(f"all {len(signals)} endpoints accepted a test export", "bold green")
    return 0
