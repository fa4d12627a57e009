"""Drop-in OpenTelemetry SDK exporters: SpanExporter, LogExporter, MetricExporter, backed by aiotlp's exporter.

Each ``export`` encodes the batch in the calling thread with the direct SDK encoders (:mod:`._encode`), hands
the bytes to aiotlp's :class:`~aiotlp.export.OTLPExporter` on the bridge loop (:mod:`._bridge`) and waits for
the outcome, within the configured timeout. The exporter's own network calls run under OpenTelemetry's
"suppress instrumentation" context keys, so instrumented HTTP or gRPC clients do not trace them.

Called from a thread that is running an event loop (the bridge's own, or an application's), ``export`` cannot
wait without blocking that loop, or deadlocking on it: it hands the batch over and returns ``SUCCESS`` at once
(the outcome is logged on failure; :meth:`force_flush` and :meth:`shutdown` wait for these exports). At most
:data:`MAX_DETACHED` such exports per exporter are in flight; beyond that a batch is dropped (``FAILURE``).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import dataclasses
import enum
import functools
import logging
import os
import sys
import time
import weakref
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, ClassVar, Final, TypeAlias, TypeVar, cast

from opentelemetry.context import (
    _SUPPRESS_HTTP_INSTRUMENTATION_KEY,
    _SUPPRESS_INSTRUMENTATION_KEY,
    Context,
    set_value,
)
from opentelemetry.sdk._logs import ReadableLogRecord
from opentelemetry.sdk._logs.export import LogRecordExporter, LogRecordExportResult
from opentelemetry.sdk.metrics import (
    Counter,
    Histogram,
    ObservableCounter,
    ObservableGauge,
    ObservableUpDownCounter,
    UpDownCounter,
)
from opentelemetry.sdk.metrics.export import AggregationTemporality, MetricExportResult, MetricsData
from opentelemetry.sdk.metrics.export import MetricExporter as SdkMetricExporter
from opentelemetry.sdk.metrics.view import (
    Aggregation,
    ExplicitBucketHistogramAggregation,
    ExponentialBucketHistogramAggregation,
)
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SpanExporter as SdkSpanExporter
from opentelemetry.sdk.trace.export import SpanExportResult

from aiotlp._exceptions import ConfigurationError, DeadlineExceededError
from aiotlp.config import (
    COMPRESSIONS,
    ExporterConfig,
    Headers,
    OtlpProtocol,
    TemporalityPreference,
    metric_preferences_from_env,
    queue_dir_from_env,
)
from aiotlp.export import ExportResult, OTLPExporter, RetryPolicy
from aiotlp.export._exporter import TransportFactory
from aiotlp.model import Signal
from aiotlp.transport import require_client, zstd_compress

from . import _encode
from ._bridge import abandon, get_bridge, is_bridge_loop, on_running_loop
from ._stats import ExporterStatistics, Ledger, Ticket

__all__ = ["MAX_DETACHED", "LogExporter", "MetricExporter", "SpanExporter"]

logger = logging.getLogger("aiotlp.sdk")

MAX_DETACHED: Final = 64
"""Exports handed over without waiting (see the module docstring) that one exporter keeps in flight at most."""

_GRACE: Final = 1.0
"""Seconds a caller waits beyond the export's own deadline before it gives up on the bridge loop."""

_MAX_REQUEST_BYTES: Final = 64 * 1024 * 1024

_I = TypeVar("_I")

if TYPE_CHECKING:
    from typing import TypeGuard

    from aiotlp.durable import DurableExporter

# The context every export runs in on the bridge loop: a fresh one (not the caller's current span), with the
# keys instrumentations check (HTTP clients also check the HTTP one) set.
_SUPPRESSED: Final = set_value(
    _SUPPRESS_HTTP_INSTRUMENTATION_KEY, True, set_value(_SUPPRESS_INSTRUMENTATION_KEY, True, Context())
)


# ------------------------------------------------------------------------------------------------------------
# Arguments of the official exporters -> aiotlp configuration


def _reject(value: object, name: str, reason: str) -> None:
    if value is not None:
        raise ConfigurationError(f"{name}: {reason}")


def _headers(value: object) -> Headers | None:
    """``headers`` as the official exporters take them: a mapping, (name, value) pairs, or ``"k=v,k2=v2"``."""
    if value is None or isinstance(value, Headers):
        return value
    if isinstance(value, str):
        return Headers.parse(value, source="headers")
    if isinstance(value, Mapping):
        return Headers(value, source="headers")
    if isinstance(value, Iterable):
        return Headers(list(value), source="headers")
    raise ConfigurationError(
        f"headers: expected a mapping, (name, value) pairs or 'k=v,...' text, got {type(value).__name__}"
    )


def _compression(value: object) -> str | None:
    """``compression`` as ``"gzip"``, ``"deflate"``, ``"zstd"`` or ``"none"`` (checked by the configuration), from
    a string or any of the official Compression enums (deflate: HTTP ``Content-Encoding: deflate``, gRPC's
    ``deflate`` message encoding, as the official exporters send it; zstd, which they do not have, as a string)."""
    if value is None:
        return None
    if isinstance(value, enum.Enum):
        # grpc.Compression (NoCompression, Deflate, Gzip), the HTTP exporter's Compression and the common
        # http.Compression (NONE, DEFLATE, GZIP)
        text = {"nocompression": "none"}.get(value.name.lower(), value.name.lower())
    elif isinstance(value, str):
        text = value.strip().lower()
    else:
        raise ConfigurationError(
            f"compression: expected one of {', '.join(repr(c) for c in COMPRESSIONS)} or a Compression enum, "
            f"got {type(value).__name__}"
        )
    return text


def _max_request_bytes(value: object) -> int | None:
    """The official ``max_request_size``: ``None`` is the default, a non-positive value means no limit (here
    the OTLP maximum, 64 MiB). aiotlp splits an oversized batch instead of dropping it."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise ConfigurationError(f"max_request_size: must be an int, got {type(value).__name__}")
    return _MAX_REQUEST_BYTES if value <= 0 else value


def _exporter_config(
    signal: Signal,
    *,
    endpoint: str | Sequence[str] | None,
    protocol: str | None,
    headers: object,
    timeout: float | None,
    compression: object,
    insecure: bool | None,
    certificate_file: str | None,
    client_key_file: str | None,
    client_certificate_file: str | None,
    credentials: object,
    session: object,
    channel_options: object,
    retryable_error_codes: object,
    max_request_size: object,
    meter_provider: object,
    environ: Mapping[str, str] | None,
    fixed_by: str | None = None,
) -> ExporterConfig:
    _reject(
        credentials,
        "credentials",
        "grpc ChannelCredentials objects are not supported: give PEM files instead, certificate_file= (trusted "
        "CAs) and client_key_file= with client_certificate_file= (mTLS), or OTEL_EXPORTER_OTLP_CERTIFICATE, "
        "OTEL_EXPORTER_OTLP_CLIENT_KEY and OTEL_EXPORTER_OTLP_CLIENT_CERTIFICATE",
    )
    _reject(
        session,
        "session",
        "aiotlp sends over its own HTTP/1.1 connections and cannot use a requests.Session: pass headers= for "
        "authentication and certificate_file= (client_key_file=, client_certificate_file=) for TLS",
    )
    _reject(channel_options, "channel_options", "gRPC channel options are not supported by aiotlp's gRPC transport")
    _reject(
        retryable_error_codes,
        "retryable_error_codes",
        "not supported: aiotlp retries the status codes the OTLP specification lists, until the export timeout",
    )
    _reject(
        meter_provider,
        "meter_provider",
        "not supported: aiotlp's SDK exporters do not report self-metrics through an OpenTelemetry MeterProvider",
    )
    try:
        return _from_env(
            signal,
            environ,
            endpoint=endpoint,
            protocol=protocol,
            headers=headers,
            timeout=timeout,
            compression=compression,
            insecure=insecure,
            certificate_file=certificate_file,
            client_key_file=client_key_file,
            client_certificate_file=client_certificate_file,
            max_request_size=max_request_size,
        )
    except ConfigurationError as exc:
        prefix = f"signal_endpoints[{signal.value!r}]: "
        if endpoint is None or not str(exc).startswith(prefix):
            raise
        # the endpoint= argument went in as the signal's own endpoint: say so in the user's terms
        if isinstance(endpoint, str) and "://" not in endpoint and "http://" in str(exc):
            raise ConfigurationError(_no_scheme(signal, endpoint, protocol, fixed_by)) from None
        raise ConfigurationError("endpoint: " + str(exc)[len(prefix) :]) from None


_CLASS_NAMES: Final = {
    Signal.TRACES: "OTLPSpanExporter",
    Signal.LOGS: "OTLPLogExporter",
    Signal.METRICS: "OTLPMetricExporter",
}


def _no_scheme(signal: Signal, endpoint: str, protocol: str | None, fixed_by: str | None) -> str:
    """The error for a scheme-less endpoint given to an OTLP/HTTP exporter: which protocol was assumed and why,
    and how to change it. A ``user:password@`` part is never shown."""
    shown = endpoint.rpartition("@")[2]
    grpc_class = f"aiotlp.sdk.grpc.{_CLASS_NAMES[signal]}"
    if fixed_by is not None:  # a class of aiotlp.sdk.http: its protocol is not an argument
        exporter, change = f"{fixed_by} is an OTLP/HTTP exporter and", f"for gRPC use {grpc_class}"
    else:
        assumed = (
            f"protocol={protocol!r}"
            if protocol is not None
            else "the protocol from OTEL_EXPORTER_OTLP_PROTOCOL, or the default http/protobuf"
        )
        exporter, change = f"the OTLP/HTTP exporter ({assumed})", f"for gRPC use protocol='grpc' or {grpc_class}"
    return (
        f"endpoint {shown!r} has no scheme: {exporter} needs a URL starting with http:// or https://, "
        f"such as 'http://{shown}/v1/{signal.value}'; {change}"
    )


def _from_env(
    signal: Signal,
    environ: Mapping[str, str] | None,
    *,
    endpoint: str | Sequence[str] | None,
    protocol: str | None,
    headers: object,
    timeout: float | None,
    compression: object,
    insecure: bool | None,
    certificate_file: str | None,
    client_key_file: str | None,
    client_certificate_file: str | None,
    max_request_size: object,
) -> ExporterConfig:
    return ExporterConfig.from_env(
        environ,
        # The official exporters use an explicit endpoint as the signal's own: OTLP/HTTP posts to it verbatim,
        # gRPC takes its host and port (scheme optional). A per-signal endpoint behaves exactly so.
        signal_endpoints=None if endpoint is None else {signal: endpoint},
        # Only what this exporter uses is read (the generic and this signal's variables, those no argument
        # overrides), and a value the official exporters would warn about and replace by a default is treated
        # the same way: the drop-in never stops an application that runs with the official exporters.
        signals=(signal,),
        on_invalid="warn",
        protocol=cast("OtlpProtocol | None", protocol),
        headers=_headers(headers),
        timeout=timeout,
        compression=cast(Any, _compression(compression)),
        insecure=insecure,
        certificate_file=certificate_file,
        client_key_file=client_key_file,
        client_certificate_file=client_certificate_file,
        max_request_bytes=_max_request_bytes(max_request_size),
    )


# ------------------------------------------------------------------------------------------------------------
# The client: one SDK exporter's link to aiotlp's exporter on the bridge loop


_Otlp: TypeAlias = "OTLPExporter | DurableExporter"  # what a client sends through: the disk queue when queue_dir is on


def _is_durable(exporter: object) -> TypeGuard[DurableExporter]:
    """Whether ``exporter`` is a disk queue, without importing :mod:`aiotlp.durable` (imported only with one)."""
    # another thread may be importing it right now: until the class exists, no instance of it does
    durable = getattr(sys.modules.get("aiotlp.durable"), "DurableExporter", None)
    return durable is not None and isinstance(exporter, durable)


class _Client:
    """Owns an :class:`OTLPExporter` on the bridge loop (rebuilt after a fork or a bridge restart), one on
    each application loop a batch processor exports from (closed when that loop goes away), the exports handed
    over without waiting, and the shutdown state."""

    def __init__(
        self,
        signal: Signal,
        config: ExporterConfig,
        *,
        retry: RetryPolicy | None,
        max_concurrent: int,
        transport_factory: TransportFactory | None,
        queue_dir: str | None = None,
        queue_dir_explicit: bool = False,
    ) -> None:
        self.signal = signal
        self.queue_dir = queue_dir
        self.config = config
        self.json = config.for_signal(signal).protocol == "http/json"
        self.timeout = config.for_signal(signal).timeout
        self._retry = retry
        self._max_concurrent = max_concurrent
        self._transport_factory = transport_factory
        self._otlp: _Otlp | None = None
        self._otlp_loop: asyncio.AbstractEventLoop | None = None
        # exporters on application loops (batch processors exporting there), by loop
        self._local: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _Otlp] = weakref.WeakKeyDictionary()
        self._pid = os.getpid()
        self._pending: set[concurrent.futures.Future[ExportResult]] = set()
        self.ledger = Ledger()
        self.closed = False
        self._warned_closed = False
        self._queue_dir_explicit = queue_dir_explicit
        if queue_dir is not None:
            self._open_queue_soon()

    def _new_otlp(self) -> _Otlp:
        otlp = OTLPExporter(
            self.config,
            retry=self._retry,
            max_concurrent=self._max_concurrent,
            transport_factory=self._transport_factory,
        )
        if self.queue_dir is None:
            return otlp
        # the disk queue: only ever on the bridge loop (one process may hold the directory once); it sends what an
        # earlier run left behind at once
        from aiotlp.durable import DurableExporter  # only with the disk queue

        durable = DurableExporter(otlp, self.queue_dir)
        durable.start()
        return durable

    def _exporter(self) -> _Otlp:
        """This client's OTLPExporter for the running loop (the bridge's, or an application loop's)."""
        loop = asyncio.get_running_loop()
        if self._otlp is not None and self._otlp_loop is loop:
            return self._otlp
        if is_bridge_loop(loop):
            self._otlp = self._new_otlp()
            self._otlp_loop = loop
            get_bridge().track(self._otlp)
            return self._otlp
        local = self._local.get(loop)
        if local is None:
            local = self._local[loop] = self._new_otlp()
        return local

    async def detach_loop(self) -> None:
        """The running application loop is going away: close this client's exporter on it."""
        local = self._local.pop(asyncio.get_running_loop(), None)
        if local is not None:
            await local.shutdown(0)

    def release_loop(self, loop: asyncio.AbstractEventLoop) -> None:
        """A batch processor left ``loop``, which is not running: its exporter there is let go without closing
        (see :meth:`OTLPExporter.leave_loop`). Any thread."""
        local = self._local.pop(loop, None)
        if isinstance(local, OTLPExporter):
            local.leave_loop(loop)
        elif local is not None:  # a DurableExporter: only ever on the bridge loop (never here)
            local.inner.leave_loop(loop)

    async def _run(
        self,
        parts: list[tuple[Sequence[_I], bytes]],
        encode: Callable[[Sequence[_I]], bytes],
        count: Callable[[Sequence[_I]], int],
        split_item: Callable[[_I], Sequence[_I]] | None,
        timeout: float | None,
        ticket: Ticket,
    ) -> ExportResult:
        exporter = self._exporter()  # it suppresses instrumentation around its own requests
        result = ExportResult()
        for items, body in parts:
            result = result + await exporter.export_encoded(
                self.signal, items, encode, body=body, count=count, split_item=split_item, timeout=timeout
            )
        # counted here, or by _settle if it is cancelled or fails before (whichever comes first counts)
        self.ledger.settled(ticket, result, durable=_is_durable(exporter))
        return result

    def _check_fork(self) -> None:
        if os.getpid() != self._pid:  # a child after os.fork: nothing of the parent's is usable or sendable
            self._pid = os.getpid()
            if self._otlp is not None:
                abandon(self._otlp)
            for local in self._local.values():
                abandon(local)
            self._otlp = self._otlp_loop = None
            self._local = weakref.WeakKeyDictionary()
            self._pending = set()

    def export(
        self,
        parts: list[tuple[Sequence[_I], bytes]],
        encode: Callable[[Sequence[_I]], bytes],
        count: Callable[[Sequence[_I]], int],
        split_item: Callable[[_I], Sequence[_I]] | None = None,
        timeout: float | None = None,
    ) -> bool:
        """Send the encoded ``parts`` one after the other; True when nothing failed or was dropped."""
        self._check_fork()
        total = sum(count(items) for items, _ in parts)
        if on_running_loop() and len(self._pending) >= MAX_DETACHED:
            self.ledger.drop("too_many_in_flight", total)
            logger.warning(
                "dropped %d %s: export was called on a running event loop and %d exports are already in flight",
                total,
                self.signal.value,
                MAX_DETACHED,
            )
            return False
        ticket = self.ledger.started(total)
        coro = self._run(parts, encode, count, split_item, timeout, ticket)
        if on_running_loop():
            future = get_bridge().submit(coro)
            future.add_done_callback(functools.partial(self._settle, ticket))
            self._pending.add(future)
            future.add_done_callback(self._detached_done)
            return True
        future = get_bridge().submit(coro)
        future.add_done_callback(functools.partial(self._settle, ticket))
        # each part has its own export deadline; the parts are sent one after the other
        wait = (self.timeout if timeout is None else min(self.timeout, timeout)) * len(parts) + _GRACE
        try:
            result = future.result(wait)
        except concurrent.futures.TimeoutError:
            future.cancel()
            error = DeadlineExceededError(f"the export did not complete within {wait:.3g}s")
            result = ExportResult(items=total, failed=total, error=error)
            logger.warning("failed to export %d %s: %s", total, self.signal.value, error)
        except Exception:
            logger.exception("failed to export %d %s", total, self.signal.value)
            return False
        return result.failed == 0 and result.dropped == 0

    def load_client(self) -> None:
        """Import the transport's client now (aiotlp's processors, before they export on an application's loop)."""
        if self._transport_factory is None:
            require_client(self.config.for_signal(self.signal).protocol, load=True)

    async def export_here(
        self, items: Sequence[_I], encode: Callable[[Sequence[_I]], bytes], body: bytes
    ) -> ExportResult:
        """Send one encoded batch through this client's exporter for the running loop, counted in the ledger
        (aiotlp's processors, exporting on their loop)."""
        ticket = self.ledger.started(len(items))
        try:
            exporter = self._exporter()  # it suppresses instrumentation around its own requests
            result = await exporter.export_encoded(self.signal, items, encode, body=body)
        except BaseException as exc:
            self.ledger.failed_now(ticket, exc)
            raise
        self.ledger.settled(ticket, result, durable=_is_durable(exporter))
        return result

    def _settle(self, ticket: Ticket, future: concurrent.futures.Future[ExportResult]) -> None:
        """Count an export that ended without reaching the end of :meth:`_run` (cancelled, or an error)."""
        if future.cancelled():
            self.ledger.failed_now(ticket, DeadlineExceededError("the export was cancelled before it completed"))
        elif (error := future.exception()) is not None:
            self.ledger.failed_now(ticket, error)

    def statistics(self) -> ExporterStatistics:
        """A snapshot of this exporter's ledger, with the retries and the disk queue's figures of this process."""
        exporters = [self._otlp, *self._local.values()]
        retries = sum(exporter.retries for exporter in exporters if exporter is not None)
        durable = self._otlp if _is_durable(self._otlp) else None
        delivered = on_disk = None
        if durable is not None:
            queue = durable.statistics()
            delivered, on_disk = queue.delivered_items, queue.queued_items
        return self.ledger.snapshot(
            self.signal, retries=retries, delivered=delivered, on_disk=on_disk or 0, queue_dir=self.queue_dir
        )

    def _detached_done(self, future: concurrent.futures.Future[ExportResult]) -> None:
        self._pending.discard(future)
        if future.cancelled():
            return
        error = future.exception()
        if error is not None:
            logger.error("failed to export %s", self.signal.value, exc_info=error)

    def refuse_closed(self) -> bool:
        """True (and a warning, once) if the exporter is shut down: the caller then returns FAILURE."""
        if self.closed and not self._warned_closed:
            self._warned_closed = True
            logger.warning("the aiotlp %s exporter is shut down: export ignored", self.signal.value)
        return self.closed

    def _open_queue_soon(self) -> None:
        """Open the disk queue on the bridge now: what an earlier run left there is sent at once, before (and
        without) any new export. Exports handed to the bridge later run after this (its loop is FIFO)."""
        get_bridge().submit(self._open_queue()).add_done_callback(_log_open_failure)

    async def _open_queue(self) -> None:
        """On the bridge: open the disk queue in ``queue_dir`` (closing one opened in another directory)."""
        self._check_fork()
        if self.closed or self.queue_dir is None:
            return
        current = self._otlp if self._otlp_loop is asyncio.get_running_loop() else None
        if _is_durable(current) and current.directory != self.queue_dir:
            self._otlp = self._otlp_loop = None
            await current.shutdown(0)  # what it holds stays on disk, for the next process to send
        self._exporter()

    def use_queue_dir(self, directory: str, *, explicit: bool) -> None:
        """Turn the disk queue on (a processor's ``queue_dir=``, ``explicit``, or ``AIOTLP_QUEUE_DIR``).

        An explicit directory wins over one that came from ``AIOTLP_QUEUE_DIR``; two explicit ones must agree.
        An exporter already used without a disk queue cannot get one.
        """
        if directory == self.queue_dir:
            return
        if self.queue_dir is not None:
            if not explicit:
                return
            if self._queue_dir_explicit:
                raise ConfigurationError(
                    "queue_dir= was given to both the processor and its exporter, with different directories: "
                    "give it to one of them"
                )
        elif self._otlp is not None or self._local:
            raise ConfigurationError("queue_dir= must be given before the exporter is first used")
        self.queue_dir = directory
        self._queue_dir_explicit = explicit
        self._open_queue_soon()

    def force_flush(self, timeout: float) -> bool:
        """Wait (up to ``timeout`` seconds) for the exports handed over without waiting; with the disk queue,
        then for its fsync."""
        self._check_fork()
        deadline = time.monotonic() + timeout
        pending = list(self._pending)
        if pending:
            if on_running_loop():
                return False
            _, not_done = concurrent.futures.wait(pending, timeout)
            if not_done:
                return False
        durable, loop = self._otlp, self._otlp_loop
        if not _is_durable(durable) or loop is None or loop is not get_bridge().running_loop:
            return True
        if on_running_loop():
            return False
        remaining = max(0.0, deadline - time.monotonic())
        future = get_bridge().submit(durable.force_flush(remaining))  # on ``loop``, the bridge's
        try:
            return future.result(remaining + _GRACE)
        except concurrent.futures.TimeoutError:
            future.cancel()
            return False

    def release(self) -> None:
        """The SDK exporter was garbage collected: shut the OTLPExporter down on the bridge, without waiting."""
        exporter, loop = self._otlp, self._otlp_loop
        if self.closed or exporter is None or loop is None or os.getpid() != self._pid:
            return
        if loop is get_bridge().running_loop and not get_bridge().inline:  # (never run a loop from a finalizer)
            with contextlib.suppress(RuntimeError):  # the loop closed meanwhile
                asyncio.run_coroutine_threadsafe(exporter.shutdown(self.timeout), loop)

    def close_local(self, timeout: float) -> None:
        """Shut the exporters on application loops down, on their loops, without waiting (the running loop's
        own at once when called there)."""
        running = asyncio._get_running_loop()
        for loop, local in list(self._local.items()):
            del self._local[loop]
            if loop is running:
                task = loop.create_task(local.shutdown(timeout))
                _background.add(task)
                task.add_done_callback(_background.discard)
            elif loop.is_running():
                with contextlib.suppress(RuntimeError):  # it closed meanwhile
                    asyncio.run_coroutine_threadsafe(local.shutdown(timeout), loop)

    def shutdown(self, timeout: float) -> None:
        """Refuse new exports; let in-flight ones end (up to ``timeout`` seconds); close the connections."""
        if self.closed:
            return
        self.closed = True
        self._check_fork()
        self.close_local(timeout)
        exporter, loop = self._otlp, self._otlp_loop
        if exporter is None or loop is None or loop is not get_bridge().running_loop:
            return  # never used, or its loop is gone (the bridge stopped and closed it already)
        future = get_bridge().submit(exporter.shutdown(timeout))  # on ``loop``, the bridge's
        if on_running_loop():
            return
        try:
            future.result(timeout + _GRACE)
        except concurrent.futures.TimeoutError:
            future.cancel()
            logger.warning("the aiotlp %s exporter did not shut down within %.3gs", self.signal.value, timeout)
        except Exception:
            logger.exception("error while shutting down the aiotlp %s exporter", self.signal.value)


_background: set[asyncio.Task[None]] = set()


def _log_open_failure(future: concurrent.futures.Future[None]) -> None:
    if not future.cancelled() and (error := future.exception()) is not None:
        logger.error("cannot open the disk queue: %s", error)


def _encode_batch(
    items: Sequence[_I], encode: Callable[[Sequence[_I]], bytes], what: str
) -> tuple[Sequence[_I], bytes, int]:
    """``(items, encode(items), 0)``; if that fails, leave out the items that cannot be encoded (counted)."""
    try:
        return items, encode(items), 0
    except Exception as exc:
        first_error: Exception = exc
    good: list[_I] = []
    for item in items:
        try:
            encode([item])
        except Exception:
            continue
        good.append(item)
    dropped = len(items) - len(good)
    logger.error("dropped %d of %d %s that cannot be encoded: %r", dropped, len(items), what, first_error)
    return good, encode(good), dropped


# ------------------------------------------------------------------------------------------------------------
# The three exporters


class _Common:
    _client: _Client
    _FIXED_BY: ClassVar[str | None] = None
    """The name of a class that fixes the protocol (:mod:`aiotlp.sdk.grpc`, :mod:`aiotlp.sdk.http`), for messages."""

    def _setup(
        self,
        signal: Signal,
        endpoint: str | Sequence[str] | None,
        *,
        protocol: str | None,
        headers: object,
        timeout: float | None,
        compression: object,
        insecure: bool | None,
        certificate_file: str | None,
        client_key_file: str | None,
        client_certificate_file: str | None,
        credentials: object,
        session: object,
        channel_options: object,
        retryable_error_codes: object,
        max_request_size: object,
        meter_provider: object,
        retry: RetryPolicy | None,
        max_concurrent: int,
        transport_factory: TransportFactory | None,
        environ: Mapping[str, str] | None,
        queue_dir: str | os.PathLike[str] | None = None,
    ) -> None:
        config = _exporter_config(
            signal,
            endpoint=endpoint,
            protocol=protocol,
            headers=headers,
            timeout=timeout,
            compression=compression,
            insecure=insecure,
            certificate_file=certificate_file,
            client_key_file=client_key_file,
            client_certificate_file=client_certificate_file,
            credentials=credentials,
            session=session,
            channel_options=channel_options,
            retryable_error_codes=retryable_error_codes,
            max_request_size=max_request_size,
            meter_provider=meter_provider,
            environ=environ,
            fixed_by=self._FIXED_BY,
        )
        if transport_factory is None:  # one line now, not a traceback at every export
            require_client(config.for_signal(signal).protocol)
        if config.for_signal(signal).compression == "zstd":
            # the transports are made on the first export: a missing zstd binding is one line now, not then
            zstd_compress(b"")
        directory = queue_dir_from_env(environ, queue_dir=queue_dir)
        self._client = _Client(
            signal,
            config,
            retry=retry,
            max_concurrent=max_concurrent,
            transport_factory=transport_factory,
            queue_dir=None if directory is None else os.path.join(directory, signal.value),
            queue_dir_explicit=queue_dir is not None,
        )
        # Dropped without shutdown(): close its connections in the background (the bridge closes what is left
        # at interpreter exit).
        weakref.finalize(self, self._client.release).atexit = False

    @property
    def config(self) -> ExporterConfig:
        """The resolved configuration (this exporter uses its own signal's part)."""
        return self._client.config

    def statistics(self) -> ExporterStatistics:
        """What this exporter did so far: exports, items accepted / kept on disk / rejected / failed / dropped by
        reason, in flight, retries, delivered and still on disk (with the disk queue), the last error. A
        consistent snapshot (see :class:`~aiotlp.sdk.ExporterStatistics`); any thread."""
        return self._client.statistics()

    def __repr__(self) -> str:
        config = self._client.config.for_signal(self._client.signal)
        name = self._FIXED_BY or f"aiotlp.sdk.{type(self).__name__}"
        return f"<{name} {config.protocol} {config.endpoint_for_display}>"


class SpanExporter(_Common, SdkSpanExporter):
    """A drop-in replacement for the official ``OTLPSpanExporter`` (gRPC or HTTP), exporting with aiotlp.

    Takes the official exporters' arguments (``timeout`` in seconds; ``compression`` as a string or any of
    their ``Compression`` enums; ``headers`` as a mapping, pairs or ``"k=v,..."``) plus ``protocol`` (``"grpc"``,
    ``"http/protobuf"`` or ``"http/json"``); anything not given comes from the ``OTEL_EXPORTER_OTLP_*``
    variables (see :mod:`aiotlp.config`): only the generic and this signal's ones, and only those no argument
    overrides. A variable the official exporters would warn about and replace by a default (a bad timeout, an
    unknown compression, a missing certificate file, a bad header entry) gets a warning naming it and the default;
    timeouts are milliseconds, as the specification says (the official Python exporters read seconds).
    ``endpoint`` is used as the official exporter of that protocol uses
    it: OTLP/HTTP posts to it verbatim (``http://collector:4318/v1/traces``), gRPC takes ``host:port`` with an
    optional ``http://`` / ``https://`` scheme; a list of them is a fleet of collectors, sent to in round robin
    with failover (``docs/fleet.md``). ``credentials``, ``session``, ``channel_options``,
    ``retryable_error_codes`` and ``meter_provider`` are refused with a :class:`~aiotlp.ConfigurationError`
    that says what to use instead. ``retry``, ``max_concurrent`` and ``transport_factory`` are passed to
    :class:`~aiotlp.OTLPExporter`; ``environ`` replaces ``os.environ``.
    """

    def __init__(
        self,
        endpoint: str | Sequence[str] | None = None,
        *,
        protocol: OtlpProtocol | None = None,
        headers: Mapping[str, str] | Iterable[tuple[str, str]] | str | None = None,
        timeout: float | None = None,
        compression: str | enum.Enum | None = None,
        insecure: bool | None = None,
        certificate_file: str | None = None,
        client_key_file: str | None = None,
        client_certificate_file: str | None = None,
        credentials: object = None,
        session: object = None,
        channel_options: object = None,
        retryable_error_codes: object = None,
        max_request_size: int | None = None,
        meter_provider: object = None,
        retry: RetryPolicy | None = None,
        max_concurrent: int = 4,
        transport_factory: TransportFactory | None = None,
        environ: Mapping[str, str] | None = None,
        queue_dir: str | os.PathLike[str] | None = None,
    ) -> None:
        self._setup(
            Signal.TRACES,
            endpoint,
            protocol=protocol,
            headers=headers,
            timeout=timeout,
            compression=compression,
            insecure=insecure,
            certificate_file=certificate_file,
            client_key_file=client_key_file,
            client_certificate_file=client_certificate_file,
            credentials=credentials,
            session=session,
            channel_options=channel_options,
            retryable_error_codes=retryable_error_codes,
            max_request_size=max_request_size,
            meter_provider=meter_provider,
            retry=retry,
            max_concurrent=max_concurrent,
            transport_factory=transport_factory,
            environ=environ,
            queue_dir=queue_dir,
        )
        self._encode = _encode.encode_spans_json if self._client.json else _encode.encode_spans

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        """Send ``spans``; SUCCESS when the collector took them (a partial success counts: OTLP says not to
        retry it; the rejected count is logged). Never raises; FAILURE after :meth:`shutdown`."""
        client = self._client
        if client.refuse_closed():
            return SpanExportResult.FAILURE
        if not spans:
            return SpanExportResult.SUCCESS
        items, body, dropped = _encode_batch(spans, self._encode, "spans")
        client.ledger.drop("invalid", dropped)
        ok = client.export([(items, body)], self._encode, len) if items else True
        return SpanExportResult.SUCCESS if ok and not dropped else SpanExportResult.FAILURE

    def shutdown(self, timeout_millis: float = 30_000) -> None:
        """Refuse further exports, let in-flight ones end (up to ``timeout_millis``), close the connections."""
        self._client.shutdown(timeout_millis / 1000)

    def force_flush(self, timeout_millis: int = 30_000) -> bool:
        """Nothing is buffered here; waits for exports handed over from a running event loop."""
        return self._client.force_flush(timeout_millis / 1000)


class LogExporter(_Common, LogRecordExporter):
    """A drop-in replacement for the official ``OTLPLogExporter`` (gRPC or HTTP): a ``LogRecordExporter``
    exporting the ``ReadableLogRecord`` batches of opentelemetry-sdk. Arguments as :class:`SpanExporter`."""

    def __init__(
        self,
        endpoint: str | Sequence[str] | None = None,
        *,
        protocol: OtlpProtocol | None = None,
        headers: Mapping[str, str] | Iterable[tuple[str, str]] | str | None = None,
        timeout: float | None = None,
        compression: str | enum.Enum | None = None,
        insecure: bool | None = None,
        certificate_file: str | None = None,
        client_key_file: str | None = None,
        client_certificate_file: str | None = None,
        credentials: object = None,
        session: object = None,
        channel_options: object = None,
        retryable_error_codes: object = None,
        max_request_size: int | None = None,
        meter_provider: object = None,
        retry: RetryPolicy | None = None,
        max_concurrent: int = 4,
        transport_factory: TransportFactory | None = None,
        environ: Mapping[str, str] | None = None,
        queue_dir: str | os.PathLike[str] | None = None,
    ) -> None:
        self._setup(
            Signal.LOGS,
            endpoint,
            protocol=protocol,
            headers=headers,
            timeout=timeout,
            compression=compression,
            insecure=insecure,
            certificate_file=certificate_file,
            client_key_file=client_key_file,
            client_certificate_file=client_certificate_file,
            credentials=credentials,
            session=session,
            channel_options=channel_options,
            retryable_error_codes=retryable_error_codes,
            max_request_size=max_request_size,
            meter_provider=meter_provider,
            retry=retry,
            max_concurrent=max_concurrent,
            transport_factory=transport_factory,
            environ=environ,
            queue_dir=queue_dir,
        )
        self._encode = _encode.encode_log_records_json if self._client.json else _encode.encode_log_records

    def export(self, batch: Sequence[ReadableLogRecord]) -> LogRecordExportResult:
        """Send ``batch``; as :meth:`SpanExporter.export`."""
        client = self._client
        if client.refuse_closed():
            return LogRecordExportResult.FAILURE
        if not batch:
            return LogRecordExportResult.SUCCESS
        items, body, dropped = _encode_batch(batch, self._encode, "log records")
        client.ledger.drop("invalid", dropped)
        ok = client.export([(items, body)], self._encode, len) if items else True
        return LogRecordExportResult.SUCCESS if ok and not dropped else LogRecordExportResult.FAILURE

    def shutdown(self, timeout_millis: float = 30_000) -> None:
        """As :meth:`SpanExporter.shutdown`."""
        self._client.shutdown(timeout_millis / 1000)

    def force_flush(self, timeout_millis: int = 30_000) -> bool:
        """As :meth:`SpanExporter.force_flush`."""
        return self._client.force_flush(timeout_millis / 1000)


_TEMPORALITY: Final[dict[str, dict[type, AggregationTemporality]]] = {
    # As the official OTLP metric exporters, for OTEL_EXPORTER_OTLP_METRICS_TEMPORALITY_PREFERENCE.
    "cumulative": {
        Counter: AggregationTemporality.CUMULATIVE,
        UpDownCounter: AggregationTemporality.CUMULATIVE,
        Histogram: AggregationTemporality.CUMULATIVE,
        ObservableCounter: AggregationTemporality.CUMULATIVE,
        ObservableUpDownCounter: AggregationTemporality.CUMULATIVE,
        ObservableGauge: AggregationTemporality.CUMULATIVE,
    },
    "delta": {
        Counter: AggregationTemporality.DELTA,
        UpDownCounter: AggregationTemporality.CUMULATIVE,
        Histogram: AggregationTemporality.DELTA,
        ObservableCounter: AggregationTemporality.DELTA,
        ObservableUpDownCounter: AggregationTemporality.CUMULATIVE,
        ObservableGauge: AggregationTemporality.CUMULATIVE,
    },
    "lowmemory": {
        Counter: AggregationTemporality.DELTA,
        UpDownCounter: AggregationTemporality.CUMULATIVE,
        Histogram: AggregationTemporality.DELTA,
        ObservableCounter: AggregationTemporality.CUMULATIVE,
        ObservableUpDownCounter: AggregationTemporality.CUMULATIVE,
        ObservableGauge: AggregationTemporality.CUMULATIVE,
    },
}


def temporality_map(
    preference: TemporalityPreference, overrides: Mapping[type, AggregationTemporality] | None = None
) -> dict[type, AggregationTemporality]:
    """The instrument -> temporality map of a temporality preference, as the official exporters build it."""
    mapping = dict(_TEMPORALITY[preference])
    mapping.update(overrides or {})
    return mapping


def _chunks(items: list[_encode.MetricItem], max_points: int | None) -> list[list[_encode.MetricItem]]:
    """``items`` in consecutive chunks of at most ``max_points`` data points (a metric may be cut in parts)."""
    if max_points is None:
        return [items]
    chunks: list[list[_encode.MetricItem]] = []
    chunk: list[_encode.MetricItem] = []
    room = max_points
    for item in items:
        points = getattr(item[2].data, "data_points", None)
        if not points:
            chunk.append(item)
            continue
        offset = 0
        while offset < len(points):
            take = min(room, len(points) - offset)
            chunk.append(item if take == len(points) else _with_points(item, points[offset : offset + take]))
            offset += take
            room -= take
            if room == 0:
                chunks.append(chunk)
                chunk, room = [], max_points
    if chunk:
        chunks.append(chunk)
    return chunks


def _with_points(item: _encode.MetricItem, points: Sequence[Any]) -> _encode.MetricItem:
    resource, scope, metric = item
    data: Any = metric.data
    return resource, scope, dataclasses.replace(metric, data=dataclasses.replace(data, data_points=points))


class MetricExporter(_Common, SdkMetricExporter):
    """A drop-in replacement for the official ``OTLPMetricExporter`` (gRPC or HTTP). Arguments as
    :class:`SpanExporter`, plus the official ``preferred_temporality`` (over the map that
    ``OTEL_EXPORTER_OTLP_METRICS_TEMPORALITY_PREFERENCE`` selects), ``preferred_aggregation`` (over the histogram
    aggregation ``OTEL_EXPORTER_OTLP_METRICS_DEFAULT_HISTOGRAM_AGGREGATION`` selects: explicit buckets, or
    ``base2_exponential_bucket_histogram``; both read by :func:`aiotlp.config.metric_preferences_from_env`) and
    ``max_export_batch_size`` (at most that many data points per request; a metric may be split)."""

    def __init__(
        self,
        endpoint: str | Sequence[str] | None = None,
        *,
        protocol: OtlpProtocol | None = None,
        headers: Mapping[str, str] | Iterable[tuple[str, str]] | str | None = None,
        timeout: float | None = None,
        compression: str | enum.Enum | None = None,
        insecure: bool | None = None,
        certificate_file: str | None = None,
        client_key_file: str | None = None,
        client_certificate_file: str | None = None,
        credentials: object = None,
        session: object = None,
        channel_options: object = None,
        retryable_error_codes: object = None,
        preferred_temporality: dict[type, AggregationTemporality] | None = None,
        preferred_aggregation: dict[type, Aggregation] | None = None,
        max_export_batch_size: int | None = None,
        max_request_size: int | None = None,
        meter_provider: object = None,
        retry: RetryPolicy | None = None,
        max_concurrent: int = 4,
        transport_factory: TransportFactory | None = None,
        environ: Mapping[str, str] | None = None,
        queue_dir: str | os.PathLike[str] | None = None,
    ) -> None:
        if max_export_batch_size is not None and (
            isinstance(max_export_batch_size, bool)
            or not isinstance(max_export_batch_size, int)
            or max_export_batch_size <= 0
        ):
            raise ConfigurationError("max_export_batch_size: must be a positive int (data points) or None")
        # only the exporter's own variables (not OTEL_METRIC_EXPORT_*, which the reader uses), leniently
        preference, histogram = metric_preferences_from_env(environ, on_invalid="warn")
        aggregation: dict[type, Aggregation] = {
            Histogram: ExponentialBucketHistogramAggregation()
            if histogram == "base2_exponential_bucket_histogram"
            else ExplicitBucketHistogramAggregation()
        }
        aggregation.update(preferred_aggregation or {})
        SdkMetricExporter.__init__(
            self,
            preferred_temporality=temporality_map(preference, preferred_temporality),
            preferred_aggregation=aggregation,
        )
        self._setup(
            Signal.METRICS,
            endpoint,
            protocol=protocol,
            headers=headers,
            timeout=timeout,
            compression=compression,
            insecure=insecure,
            certificate_file=certificate_file,
            client_key_file=client_key_file,
            client_certificate_file=client_certificate_file,
            credentials=credentials,
            session=session,
            channel_options=channel_options,
            retryable_error_codes=retryable_error_codes,
            max_request_size=max_request_size,
            meter_provider=meter_provider,
            retry=retry,
            max_concurrent=max_concurrent,
            transport_factory=transport_factory,
            environ=environ,
            queue_dir=queue_dir,
        )
        self._max_points = max_export_batch_size
        self._encode = _encode.encode_metric_items_json if self._client.json else _encode.encode_metric_items

    def export(self, metrics_data: MetricsData, timeout_millis: float = 10_000, **kwargs: Any) -> MetricExportResult:
        """Send ``metrics_data`` within ``timeout_millis`` (and the configured timeout); as
        :meth:`SpanExporter.export`."""
        client = self._client
        if client.refuse_closed():
            return MetricExportResult.FAILURE
        items = _encode.metric_items(metrics_data)
        if not items:
            return MetricExportResult.SUCCESS
        parts: list[tuple[Sequence[_encode.MetricItem], bytes]] = []
        dropped = 0
        for chunk in _chunks(items, self._max_points):
            good, body, bad = _encode_batch(chunk, self._encode, "metrics")
            dropped += bad
            client.ledger.drop("invalid", _encode.count_data_points([item for item in chunk if item not in good]))
            if good:
                parts.append((good, body))
        ok = (
            client.export(
                parts, self._encode, _encode.count_data_points, _encode.split_metric_item, timeout_millis / 1000
            )
            if parts
            else True
        )
        return MetricExportResult.SUCCESS if ok and not dropped else MetricExportResult.FAILURE

    def force_flush(self, timeout_millis: float = 10_000) -> bool:
        """As :meth:`SpanExporter.force_flush`."""
        return self._client.force_flush(timeout_millis / 1000)

    def shutdown(self, timeout_millis: float = 30_000, **kwargs: Any) -> None:
        """As :meth:`SpanExporter.shutdown`."""
        self._client.shutdown(timeout_millis / 1000)
