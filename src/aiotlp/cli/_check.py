"""``aiotlp check``: the configuration the exporters will use, where each value came from, and whether each
endpoint takes an export.

It resolves the configuration with the same functions the exporters call (:meth:`ExporterConfig.from_env`,
:meth:`BatchConfig.from_env`, :meth:`MetricReaderConfig.from_env`, :func:`queue_dir_from_env`), so what it prints
is what they do; next to each value, where it came from: an argument (``--timeout``), the environment variable
that won (:func:`aiotlp.config.variable_source`, in the readers' precedence order), or the default. Header values
are never printed (only their names) and an endpoint's ``user:password@`` shows as ``***@``; a configuration
error names the variable (and a header entry's position), never its text.

Every endpoint is tested on its own: with a fleet (``AIOTLP_EXPORTER_OTLP_ENDPOINTS``, ``endpoint=[...]``) one
single-endpoint exporter per URL, so failover cannot hide a dead collector. Each sends one small export (one span,
one log record, one gauge point, service ``aiotlp-check``) with a single attempt, and a failure is explained in
plain words: connection refused, TLS, 404 on the path, 415 content type, timeout, authentication.

The disk queue (``AIOTLP_QUEUE_DIR``): whether the directory exists or can be created, is writable and ours, and
per signal whether a live process holds it (its pid) and what waits there, read without changing anything
(:func:`aiotlp.durable.inspect_queue`). The exit code is 1 when any export fails or the queue directory is
unusable.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import os
import time
from collections.abc import Sequence

from .._exceptions import (
    AttemptTimeoutError,
    ConnectError,
    DeadlineExceededError,
    DurableQueueError,
    ExportError,
    MissingExtraError,
    ProtocolMismatchError,
    RetriesExhaustedError,
)
from ..config import (
    BatchConfig,
    ExporterConfig,
    MetricReaderConfig,
    SignalConfig,
    queue_dir_from_env,
    variable_source,
)
from ..durable import inspect_queue
from ..export import ExportResult, OTLPExporter, RetryPolicy
from ..model import Gauge, LogRecord, Metric, NumberDataPoint, Resource, SeverityNumber, Signal, Span
from ..transport import CHECK_HINT, port_advice, zstd_binding
from ._queue import lock_text, waiting_text
from ._ui import UI, Node

__all__ = ["HINT", "connect_problem", "explain", "run_check"]

#: What to run next when a command cannot reach its collector.
HINT = "run `aiotlp check` to test the configuration and each endpoint"

_RESOURCE = Resource({"service.name": "aiotlp-check"})
_SECONDS_HINT = " (under 100 ms: OTEL_EXPORTER_OTLP_TIMEOUT is in milliseconds; were seconds meant?)"
_DEFAULT = "(default)"


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


def _source(*names: str, default: str = _DEFAULT) -> str:
    """``(from VAR)`` for the first of ``names`` set, else ``default``."""
    found = variable_source(*names)
    return default if found is None else f"(from {found})"


def _otlp(signal: Signal, key: str) -> tuple[str, str]:
    """The per-signal variable, then the generic one: the exporters' precedence."""
    return f"OTEL_EXPORTER_OTLP_{signal.value.upper()}_{key}", f"OTEL_EXPORTER_OTLP_{key}"


def _with(detail: str, source: str) -> str:
    return f"{detail}  {source}"


def _endpoint_source(config: SignalConfig) -> str:
    upper = config.signal.value.upper()
    found = variable_source(
        f"AIOTLP_EXPORTER_OTLP_{upper}_ENDPOINTS",
        f"OTEL_EXPORTER_OTLP_{upper}_ENDPOINT",
        "AIOTLP_EXPORTER_OTLP_ENDPOINTS",
        "OTEL_EXPORTER_OTLP_ENDPOINT",
    )
    if found is None:
        return f"(default for {config.protocol})"
    if config.protocol != "grpc" and found in ("AIOTLP_EXPORTER_OTLP_ENDPOINTS", "OTEL_EXPORTER_OTLP_ENDPOINT"):
        return f"(from {found}, {config.signal.http_path} appended)"
    return f"(from {found})"


def _config_node(config: SignalConfig, timeout_given: bool) -> Node:
    signal = config.signal
    fleet = len(config.endpoints) > 1
    target = f"{len(config.endpoints)} endpoints (a fleet)" if fleet else config.endpoint_for_display
    node = Node(signal.value, f"{config.protocol} -> {target}", "bold")
    headers = ", ".join(f"{name}: ***" for name in config.headers) or "none"
    tls = "plaintext" if config.insecure else "TLS"
    tls_sources = ["the endpoint's scheme"]
    if config.use_tls:
        tls += f", CA {config.certificate_file}" if config.certificate_file else ", system CAs"
        if config.client_certificate_file:
            tls += f", client certificate {config.client_certificate_file} (key {config.client_key_file})"
        for key in ("CERTIFICATE", "CLIENT_CERTIFICATE", "CLIENT_KEY"):
            found = variable_source(*_otlp(signal, key))
            if found is not None:
                tls_sources.append(found)
    if config.protocol == "grpc" and (found := variable_source(*_otlp(signal, "INSECURE"))) is not None:
        tls_sources.append(f"{found} (for a scheme-less endpoint)")
    endpoint_source = _endpoint_source(config)
    children = [Node("protocol", _with(config.protocol, _source(*_otlp(signal, "PROTOCOL"))))]
    if fleet:
        children += [
            Node(f"endpoint {n}", _with(url, endpoint_source))
            for n, url in enumerate(config.endpoints_for_display, start=1)
        ]
    else:
        children.append(Node("endpoint", _with(config.endpoint_for_display, endpoint_source)))
    timeout_source = "(from --timeout)" if timeout_given else _source(*_otlp(signal, "TIMEOUT"), default="(default)")
    children += [
        Node("headers", _with(headers, _source(*_otlp(signal, "HEADERS")))),
        Node(
            "timeout",
            _with(f"{config.timeout:g}s per export" + _SECONDS_HINT * (config.timeout < 0.1), timeout_source),
        ),
        Node("compression", _with(_compression(config), _source(*_otlp(signal, "COMPRESSION")))),
        Node("transport security", _with(tls, f"(from {', '.join(tls_sources)})")),
        Node("max request size", _with(f"{config.max_request_bytes:,} bytes", "(default)")),
    ]
    node.children = children
    return node


def _sources(*names: str) -> str:
    """``(from A, B; the rest default)`` for the variables of one line that are set."""
    found = [name for name in names if variable_source(name) is not None]
    if not found:
        return "(defaults)"
    rest = "; the rest default" if len(found) < len(names) else ""
    return f"(from {', '.join(found)}{rest})"


def _batching_node(spans: BatchConfig, logs: BatchConfig, reader: MetricReaderConfig) -> Node:
    keys = ("SCHEDULE_DELAY", "EXPORT_TIMEOUT", "MAX_QUEUE_SIZE", "MAX_EXPORT_BATCH_SIZE")

    def batch(name: str, prefix: str, c: BatchConfig) -> Node:
        return Node(
            name,
            f"every {c.schedule_delay:g}s or {c.max_export_batch_size} items, queue {c.max_queue_size}, "
            f"export timeout {c.export_timeout:g}s  " + _sources(*(prefix + key for key in keys)),
        )

    return Node(
        "batching",
        "",
        "bold",
        [
            batch("spans (OTEL_BSP_*)", "OTEL_BSP_", spans),
            batch("logs (OTEL_BLRP_*)", "OTEL_BLRP_", logs),
            Node(
                "metrics (OTEL_METRIC_*)",
                f"every {reader.export_interval:g}s, export timeout {reader.export_timeout:g}s, "
                f"temporality {reader.temporality_preference}, histograms {reader.default_histogram_aggregation}  "
                + _sources(
                    "OTEL_METRIC_EXPORT_INTERVAL",
                    "OTEL_METRIC_EXPORT_TIMEOUT",
                    "OTEL_EXPORTER_OTLP_METRICS_TEMPORALITY_PREFERENCE",
                    "OTEL_EXPORTER_OTLP_METRICS_DEFAULT_HISTOGRAM_AGGREGATION",
                ),
            ),
        ],
    )


def _queue_node(problems: list[str]) -> Node:
    """The disk queue: its directory checked as the queue will use it; ``problems`` gets what makes it unusable."""
    directory = queue_dir_from_env()
    if directory is None:
        return Node("disk queue", "off  (default: AIOTLP_QUEUE_DIR is not set)", "bold")
    path = os.path.abspath(directory)
    node = Node("disk queue", f"{path}  (from AIOTLP_QUEUE_DIR)", "bold")
    if os.path.islink(path):
        problems.append(f"{path} is a symlink: the queue never follows symlinks")
    elif not os.path.exists(path):
        parent = os.path.dirname(path)
        while not os.path.exists(parent) and parent != os.path.dirname(parent):
            parent = os.path.dirname(parent)
        if os.access(parent, os.W_OK | os.X_OK):
            node.children.append(Node("directory", "does not exist yet: created (0700) when the queue first opens"))
        else:
            problems.append(f"{path} does not exist and cannot be created: {parent} is not writable")
    elif not os.path.isdir(path):
        problems.append(f"{path} is not a directory")
    else:
        info = os.stat(path)
        if info.st_uid != os.geteuid():
            problems.append(f"{path} belongs to uid {info.st_uid}, not to this user (uid {os.geteuid()}): refused")
        elif not os.access(path, os.R_OK | os.W_OK | os.X_OK):
            problems.append(f"{path} is not writable by this user")
        else:
            node.children.append(Node("directory", "exists, ours, writable"))
        for signal in Signal:
            queue_path = os.path.join(path, signal.value)
            if not os.path.isdir(queue_path):
                node.children.append(Node(signal.value, "no queue yet"))
                continue
            try:
                found = inspect_queue(queue_path)
            except DurableQueueError as exc:
                problems.append(str(exc))
                continue
            detail = f"{waiting_text(found)}; lock {lock_text(found)}"
            if found.lock == "held":
                detail += " (a process started with this AIOTLP_QUEUE_DIR cannot open it: one directory per process)"
            if found.damaged_records or found.corrupt_files:
                detail += f"; {found.damaged_records} damaged, {len(found.corrupt_files)} quarantined (aiotlp queue)"
            node.children.append(Node(signal.value, detail))
    for problem in problems:
        node.children.append(Node("✗", problem, "bold red"))
    return node


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
    if isinstance(inner, ProtocolMismatchError):  # the transport's diagnosis, in the words said here (port_advice)
        return inner.message.removesuffix(f"; {CHECK_HINT}")
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
        advice = port_advice("grpc")
        if inner is not None and advice in str(inner):  # the reply's reader said it already
            return str(inner)
        return f"{text}: {where} {advice}"
    if "bad status line" in lowered or "closed before the response" in lowered or "http/2" in lowered:
        return f"{text}: {where} {port_advice(config.protocol)}"
    if status in (400, "INVALID_ARGUMENT"):
        return f"{text}: the collector could not read the request; does {where} speak {config.protocol}?"
    return text


async def connect_problem(config: SignalConfig) -> str | None:
    """None when a TCP connection opens to one of ``config``'s endpoints within its timeout; else why none did,
    in :func:`explain`'s words, naming the last endpoint tried. Sends nothing: a fast answer to "is anything
    listening there?" before a command sends for real."""
    problem = None
    for endpoint, display in zip(config.endpoints, config.endpoints_for_display, strict=True):
        single = dataclasses.replace(config, endpoint=endpoint, endpoints=())
        try:
            _, writer = await asyncio.wait_for(asyncio.open_connection(single.host, single.port), single.timeout)
        except asyncio.TimeoutError:
            error: ExportError = AttemptTimeoutError(f"no connection within {single.timeout:g}s")
        except OSError as exc:
            error = ConnectError(str(exc))
        else:
            writer.close()
            with contextlib.suppress(OSError):
                await writer.wait_closed()
            return None
        problem = f"cannot connect to {display}: {explain(error, single)}"
    return problem


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


def _single(config: ExporterConfig, signal: Signal, endpoint: str) -> ExporterConfig:
    """``config`` with ``signal`` sent to ``endpoint`` alone (no fleet: no failover to hide it)."""
    one = dataclasses.replace(config.for_signal(signal), endpoint=endpoint, endpoints=())
    return dataclasses.replace(config, **{signal.value: one})


async def _probe_one(config: ExporterConfig, signal: Signal) -> tuple[ExportResult, float]:
    # one attempt: the point is to see why it fails, not to wait out the retries
    async with OTLPExporter(config, retry=RetryPolicy(max_attempts=1)) as exporter:
        started = time.perf_counter()
        result = await _probe(exporter, signal)
        return result, (time.perf_counter() - started) * 1000


async def run_check(ui: UI, *, export: bool, signals: Sequence[Signal], timeout: float | None) -> int:
    config = ExporterConfig.from_env(timeout=timeout)
    spans, logs, reader = BatchConfig.from_env("span"), BatchConfig.from_env("log"), MetricReaderConfig.from_env()
    ui.line("aiotlp check: the configuration the exporters read from the environment", "bold")
    root = Node(
        "exporters",
        "secrets redacted: header values and URL credentials show as ***; (from ...) says where a value came from",
    )
    root.children = [_config_node(config.for_signal(s), timeout is not None) for s in Signal]
    root.children.append(_batching_node(spans, logs, reader))
    queue_problems: list[str] = []
    root.children.append(_queue_node(queue_problems))
    ui.tree(root)
    if not export:
        return 1 if queue_problems else 0
    probes = [
        (signal, endpoint, display)
        for signal in signals
        for endpoint, display in zip(
            config.for_signal(signal).endpoints, config.for_signal(signal).endpoints_for_display, strict=True
        )
    ]
    outcomes = await asyncio.gather(*(_probe_one(_single(config, s, e), s) for s, e, _ in probes))
    failed = 0
    rows: list[list[str]] = []
    explanations: list[tuple[str, str]] = []
    for (signal, endpoint, display), (result, elapsed) in zip(probes, outcomes, strict=True):
        if result.ok:
            rows.append([signal.value, display, "ok", f"{elapsed:.0f} ms"])
            continue
        failed += 1
        if result.rejected:
            reason = f"the collector rejected the item: {result.error_message or 'no reason given'}"
        else:
            reason = explain(result.error, _single(config, signal, endpoint).for_signal(signal))
        rows.append([signal.value, display, "FAILED", f"{elapsed:.0f} ms"])
        fleet = len(config.for_signal(signal).endpoints) > 1
        explanations.append((f"{signal.value} {display}" if fleet else signal.value, reason))
    ui.table("one test export per signal and endpoint", ["signal", "endpoint", "result", "time"], rows)
    for name, reason in explanations:
        ui.line(f"✗ {name}: {reason}", "bold red")
    for problem in queue_problems:
        ui.line(f"✗ disk queue: {problem}", "bold red")
    if failed:
        ui.line(f"{failed} of {len(probes)} endpoints failed", "bold red")
        return 1
    ui.line(f"all {len(probes)} endpoints accepted a test export", "bold green")
    return 1 if queue_problems else 0
