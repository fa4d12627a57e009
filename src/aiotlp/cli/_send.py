"""``aiotlp send FILE...``: replay recorded OTLP requests to a collector, with the exporter's retries.

Reads OTLP/JSON lines (what ``aiotlp receive --jsonl`` and the collector's file exporter write: one
``Export*ServiceRequest`` per line; a file holding one pretty-printed request also works) and binary protobuf
files (one serialized ``Export*ServiceRequest`` each; the signal comes from ``--signal`` or from the file name:
``traces.pb``, ``logs.binpb``, ...). Every file is read and validated before anything is sent, so a bad file
stops the command with one line naming the file and line and nothing half-sent.

Each request goes through :meth:`aiotlp.OTLPExporter.export_encoded`: the configured protocol's encoding (a JSON
line is re-encoded as protobuf for gRPC and OTLP/HTTP protobuf), retries per the OTLP specification within the
timeout, splitting by resource when a request is over the byte cap.

Fail fast: before sending, a TCP connection is opened to each endpoint that will be used; when nothing listens
there the command stops with one line (the cause and the hint to run ``aiotlp check``) and nothing is sent. A
request that still fails with a retryable cause after its retries (the collector went away, or keeps timing out)
stops the run the same way: the rest would only wait out the same timeout each. A request the collector refuses
for good (400, a partial success) is reported and the next one is sent.

Decoding needs the receiver extra (aiohttp, grpcio, opentelemetry-proto): ``pip install 'aiotlp[receiver]'``.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .._exceptions import (
    ConfigurationError,
    ConnectError,
    DeadlineExceededError,
    RetriesExhaustedError,
    RetryableError,
)
from ..config import ExporterConfig, OtlpProtocol
from ..export import ExportResult, OTLPExporter
from ..model import Signal
from ._check import HINT, connect_problem, explain
from ._receive import missing_receiver_extra
from ._ui import UI

__all__ = ["load_requests", "run_send"]

_JSON_KEYS = {"resourceSpans": Signal.TRACES, "resourceMetrics": Signal.METRICS, "resourceLogs": Signal.LOGS}
_RESOURCE_FIELD = {Signal.TRACES: "resource_spans", Signal.METRICS: "resource_metrics", Signal.LOGS: "resource_logs"}
_NAME_HINTS = (("trace", Signal.TRACES), ("span", Signal.TRACES), ("metric", Signal.METRICS), ("log", Signal.LOGS))
_UNITS = {Signal.TRACES: "spans", Signal.METRICS: "metric data points", Signal.LOGS: "log records"}


@dataclass(frozen=True, slots=True)
class Loaded:
    """One request read from a file: where it came from, its signal and the decoded official message."""

    where: str
    signal: Signal
    message: Any
    items: int


def _protobuf() -> Any:
    try:
        from .. import testing
    except ImportError as exc:  # names the package that is missing (aiohttp, grpcio, opentelemetry-proto)
        raise missing_receiver_extra(exc, "the OTLP decoders of `aiotlp send`") from None
    return testing


def _count(signal: Signal, message: Any) -> int:
    from ._render import summarize

    return summarize(message, signal.value)[0]


def _signal_from_name(path: Path) -> Signal | None:
    name = path.name.lower()
    for hint, signal in _NAME_HINTS:
        if hint in name:
            return signal
    return None


def _looks_binary(data: bytes) -> bool:
    head = data.lstrip()[:1]
    return head not in (b"{", b"[", b"")


def load_requests(paths: Sequence[Path], signal: Signal | None) -> list[Loaded]:
    """Read and validate every file; raise :class:`ConfigurationError` naming the file (and line) at fault."""
    codec = _protobuf()
    loaded: list[Loaded] = []
    for path in paths:
        try:
            data = path.read_bytes()
        except OSError as exc:
            raise ConfigurationError(f"cannot read {str(path)!r}: {exc.strerror or exc}") from None
        if not data.strip():
            raise ConfigurationError(f"{path}: the file is empty")
        if _looks_binary(data):
            file_signal = signal or _signal_from_name(path)
            if file_signal is None:
                raise ConfigurationError(
                    f"{path}: a protobuf file does not say which signal it holds: name it traces.pb, metrics.pb or "
                    "logs.pb, or pass --signal"
                )
            try:
                message = codec.request_class(file_signal).FromString(data)
            except Exception as exc:  # google.protobuf's DecodeError and friends
                raise ConfigurationError(
                    f"{path}: not an OTLP/JSON file nor a protobuf {file_signal.value} request ({exc})"
                ) from None
            loaded.append(Loaded(str(path), file_signal, message, _count(file_signal, message)))
            continue
        text = data.decode("utf-8", errors="replace")
        try:
            whole = json.loads(text)
        except ValueError:
            lines = [(number, line) for number, line in enumerate(text.splitlines(), 1) if line.strip()]
        else:
            lines = [(1, json.dumps(whole))]
        for number, line in lines:
            where = f"{path}:{number}"
            try:
                obj = json.loads(line)
            except ValueError as exc:
                raise ConfigurationError(f"{where}: invalid JSON: {exc}") from None
            if not isinstance(obj, dict):
                raise ConfigurationError(f"{where}: expected an OTLP/JSON request object, got {type(obj).__name__}")
            found = [_JSON_KEYS[key] for key in obj if key in _JSON_KEYS]
            if len(found) != 1:
                raise ConfigurationError(
                    f"{where}: not an OTLP/JSON request: expected exactly one of resourceSpans, resourceMetrics, "
                    "resourceLogs"
                )
            if signal is not None and found[0] is not signal:
                raise ConfigurationError(f"{where}: holds {found[0].value}, but --signal is {signal.value}")
            try:
                message = codec.otlp_json_to_message(found[0], obj)
            except ValueError as exc:
                raise ConfigurationError(f"{where}: {exc}") from None
            loaded.append(Loaded(where, found[0], message, _count(found[0], message)))
    return loaded


def _encoder(signal: Signal, json_format: bool) -> Any:
    codec = _protobuf()
    cls = codec.request_class(signal)
    field = _RESOURCE_FIELD[signal]

    def encode(resources: Sequence[Any]) -> bytes:
        request = cls(**{field: list(resources)})
        if json_format:
            return json.dumps(codec.message_to_otlp_json(request), separators=(",", ":")).encode()
        data: bytes = request.SerializeToString()
        return data

    return encode


async def run_send(
    ui: UI,
    paths: Sequence[Path],
    *,
    endpoint: str | None,
    protocol: OtlpProtocol | None,
    timeout: float | None,
    signal: Signal | None,
) -> int:
    requests = load_requests(paths, signal)
    config = ExporterConfig.from_env(endpoint=endpoint, protocol=protocol, timeout=timeout)
    targets = sorted({config.for_signal(r.signal).endpoint_for_display for r in requests})
    total_items = sum(r.items for r in requests)
    ui.line(
        f"aiotlp send: {len(requests)} requests ({total_items} items) from {len(paths)} file(s) -> "
        f"{', '.join(targets)} ({config.traces.protocol})"
    )
    for used in sorted({r.signal for r in requests}):
        if (problem := await connect_problem(config.for_signal(used))) is not None:
            raise ConnectError(f"{problem}{' ' if problem.endswith(('.', '?')) else '. '}Nothing was sent; {HINT}")
    results: dict[Signal, ExportResult] = {s: ExportResult() for s in Signal}
    failures: list[str] = []
    stopped: str | None = None
    async with OTLPExporter(config) as exporter:
        encoders = {s: _encoder(s, config.for_signal(s).protocol == "http/json") for s in Signal}
        with ui.progress("sending", len(requests)) as progress:
            for done, request in enumerate(requests, start=1):
                resources = list(getattr(request.message, _RESOURCE_FIELD[request.signal]))
                result = await exporter.export_encoded(
                    request.signal, resources, encoders[request.signal], count=_counter(request.signal)
                )
                results[request.signal] = results[request.signal] + result
                if not result.ok and result.items:
                    reason = result.error or result.error_message or "rejected"
                    lost = result.items - result.accepted
                    if _gave_up(result.error):
                        signal_config = config.for_signal(request.signal)
                        stopped = (
                            f"{request.where}: {lost} of {result.items} not accepted: "
                            f"{explain(result.error, signal_config)}; stopped, {len(requests) - done} requests not "
                            f"sent. Hint: {HINT}"
                        )
                        break
                    failures.append(f"{request.where}: {lost} of {result.items} not accepted: {reason}")
                progress.update(done, f"{sum(r.accepted for r in results.values())} accepted")
    rows = [
        [_UNITS[s], str(r.items), str(r.accepted), str(r.rejected), str(r.failed), str(r.dropped), str(r.requests)]
        for s, r in results.items()
        if r.items
    ]
    ui.table("", ["signal", "sent", "accepted", "rejected", "failed", "dropped", "requests"], rows)
    for failure in failures[:10]:
        ui.line(failure, "red")
    if len(failures) > 10:
        ui.line(f"… and {len(failures) - 10} more failed requests", "red")
    if stopped is not None:
        ui.line(stopped, "bold red")
    return 0 if not failures and stopped is None else 1


def _gave_up(error: BaseException | None) -> bool:
    """The request failed for a reason the next ones share (retryable, retried until the timeout): stop."""
    if isinstance(error, (RetriesExhaustedError, DeadlineExceededError)):
        error = error.last
    return isinstance(error, RetryableError)


def _counter(signal: Signal) -> Callable[[Sequence[Any]], int]:
    """Counts the items (spans, log records, metric data points) in a list of resource_* messages."""
    if signal is Signal.TRACES:
        return lambda resources: sum(len(scope.spans) for r in resources for scope in r.scope_spans)
    if signal is Signal.LOGS:
        return lambda resources: sum(len(scope.log_records) for r in resources for scope in r.scope_logs)

    def points(resources: Sequence[Any]) -> int:
        total = 0
        for resource in resources:
            for scope in resource.scope_metrics:
                for metric in scope.metrics:
                    kind = metric.WhichOneof("data")
                    total += len(getattr(metric, kind).data_points) if kind else 0
        return total

    return points
