"""The OTLP exporter: encode a batch once, split it under the byte cap, send it through the sender stack."""

from __future__ import annotations

import asyncio
import atexit
import concurrent.futures
import contextlib
import functools
import logging
import os
import sys
import threading
import weakref
from collections.abc import AsyncGenerator, Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, TypeVar

from .._exceptions import ConfigurationError, ExportError, ExporterShutdownError, RequestTooLargeError
from .._fork import abandon
from .._ratelimit import RateLimitedLogger
from .._validate import is_int
from ..config import ExporterConfig, Headers, SignalConfig
from ..model import LogRecord, Metric, Signal, Span
from ..transport import (
    MAX_RESPONSE_BYTES,
    Connectable,
    EndpointStatistics,
    FleetPolicy,
    FleetTransport,
    GrpcImplementation,
    Transport,
    make_transport,
    require_client,
)
from ._codec import Codec, CodecExporter, Invalid
from ._reply import failed_result, partial_result, reply_error
from ._retry import RetryPolicy
from ._stack import SenderStack, build_stack, compress_request
from ._suppress import suppress
from ._types import ExportRequest, ExportResult

__all__ = ["OTLPExporter"]

logger = logging.getLogger("aiotlp.export")

TransportFactory = Callable[[SignalConfig], Transport]
_T = TypeVar("_T")


class OTLPExporter(CodecExporter):
    """Exports traces, metrics and logs to an OTLP collector over gRPC, HTTP/protobuf or HTTP/JSON.

    Configuration comes from ``config``, or else from the keyword arguments and the ``OTEL_EXPORTER_OTLP_*``
    environment variables (see :mod:`aiotlp.config`). Each ``export_*`` call encodes the batch once, splits it
    into requests of at most ``max_request_bytes`` (a single item larger than that is dropped and counted),
    sends them through ``ConcurrencyLimit -> Retry -> Timeout -> transport`` within ``timeout`` seconds, and
    returns an :class:`ExportResult`. It never raises for a failed export.

    gRPC goes through aiotlp's own HTTP/2 client (``grpc_implementation="h2"``, the default) or grpc.aio
    (``"grpcio"``); see :data:`aiotlp.transport.DEFAULT_GRPC_IMPLEMENTATION` for why.

    ``endpoint`` may be a list: a fleet of collectors, sent to in round robin with failover (``fleet`` tunes the
    endpoints' backoff; :meth:`endpoints_statistics` reports the split). See ``docs/fleet.md``.

    Use it as an async context manager, or call :meth:`shutdown` when done.

    Event loops. The connections (and the concurrency limit and retry state that go with them) belong to one event
    loop; the exporter keeps a set per loop it is used on, made on first use there with ``transport_factory``
    (called once per signal and loop). So one exporter serves ``asyncio.run(main())`` called twice, threads that
    each run their own loop in turn, and several loops running at once in several threads (each with its own
    connections; ``max_concurrent`` is per loop). A loop's connections are closed when ``asyncio.run`` (or
    anything else calling ``loop.shutdown_asyncgens()``) ends it, or by :meth:`shutdown` (on their own loop,
    from any thread). Those of a loop closed without that, or inherited from the parent in a forked child, are
    never touched again (see :mod:`aiotlp._fork`): a new set is made for the caller's loop.

    Its own network calls run with OpenTelemetry's instrumentation suppressed (when ``opentelemetry-api`` is
    imported): an instrumented aiohttp or gRPC client does not trace the exporter.
    """

    def __init__(
        self,
        config: ExporterConfig | None = None,
        *,
        endpoint: str | Sequence[str] | None = None,
        protocol: str | None = None,
        headers: Mapping[str, str] | Headers | None = None,
        timeout: float | None = None,
        compression: str | None = None,
        insecure: bool | None = None,
        certificate_file: str | None = None,
        client_key_file: str | None = None,
        client_certificate_file: str | None = None,
        max_request_bytes: int | None = None,
        retry: RetryPolicy | None = None,
        max_concurrent: int = 4,
        attempt_timeout: float | None = None,
        max_response_bytes: int = MAX_RESPONSE_BYTES,
        grpc_implementation: GrpcImplementation | None = None,
        transport_factory: TransportFactory | None = None,
        fleet: FleetPolicy | None = None,
    ) -> None:
        overrides: dict[str, Any] = {
            "endpoint": endpoint,
            "protocol": protocol,
            "headers": headers,
            "timeout": timeout,
            "compression": compression,
            "insecure": insecure,
            "certificate_file": certificate_file,
            "client_key_file": client_key_file,
            "client_certificate_file": client_certificate_file,
            "max_request_bytes": max_request_bytes,
        }
        if config is None:
            config = ExporterConfig.from_env(**overrides)
        elif any(value is not None for value in overrides.values()):
            given = ", ".join(name for name, value in overrides.items() if value is not None)
            raise TypeError(f"pass either config= or the settings ({given}), not both")
        self._config = config
        self._signal_config = {signal: config.for_signal(signal) for signal in Signal}  # (frozen: read once)
        if retry is not None and not isinstance(retry, RetryPolicy):
            raise ConfigurationError(f"retry must be a RetryPolicy or None, got {type(retry).__name__}")
        if not is_int(max_response_bytes) or max_response_bytes < 1:
            raise ConfigurationError(f"max_response_bytes must be a positive int, got {max_response_bytes!r:.40}")
        if transport_factory is not None and fleet is not None:
            raise TypeError("pass either transport_factory= or fleet= (which tunes the default transports), not both")
        if transport_factory is None:
            for signal in Signal:  # a missing client is one line now, not a traceback at every export
                require_client(config.for_signal(signal).protocol, grpc_implementation)

            def transport_factory(cfg: SignalConfig) -> Transport:
                return make_transport(
                    cfg,
                    max_response_bytes=max_response_bytes,
                    grpc_implementation=grpc_implementation,
                    fleet=fleet,
                    classify=reply_error,
                )

        factory = transport_factory

        def make_stacks() -> dict[Signal, SenderStack]:
            return {
                signal: build_stack(
                    _reading_replies(factory(config.for_signal(signal))),
                    retry=retry,
                    max_concurrent=max_concurrent,
                    attempt_timeout=attempt_timeout,
                )
                for signal in Signal
            }

        self._make_stacks = make_stacks
        # Made now, so that a configuration the transports refuse fails here; the first loop takes them.
        self._spare: dict[Signal, SenderStack] | None = make_stacks()
        self._bindings: dict[asyncio.AbstractEventLoop, _LoopStacks] = {}
        self._latest: dict[Signal, SenderStack] = self._spare
        self._lock = threading.Lock()
        self._pid = os.getpid()
        self._forks = _forks
        self._retired_retries = 0
        self._closed = False
        _open_exporters.add(self)
        self._partial_log = RateLimitedLogger(logger, logging.WARNING, interval=60.0)
        self._failure_log = RateLimitedLogger(logger, logging.WARNING, interval=10.0)

    def __repr__(self) -> str:
        endpoints = ", ".join(f"{s.value}={_where(self.config.for_signal(s))}" for s in Signal)
        return f"<OTLPExporter {endpoints}>"

    def endpoints_statistics(self, signal: Signal | str = Signal.TRACES) -> tuple[EndpointStatistics, ...]:
        """Per-collector counters and state of ``signal``'s fleet: how the load was split, which endpoint is down.

        The fleet of the running event loop's connections (each loop has its own, see the class docstring), or
        of the last loop that exported. Empty when the signal does not export through a
        :class:`~aiotlp.transport.FleetTransport`: one endpoint,
        a custom ``transport_factory``, or grpcio's own ``round_robin`` channel over a list of IP addresses
        (grpc balances inside the channel and does not say which address served a call).
        """
        transport = self._stacks[Signal(signal)].transport
        return transport.statistics() if isinstance(transport, FleetTransport) else ()

    @property
    def _stacks(self) -> dict[Signal, SenderStack]:
        """The running loop's sender stacks if it has some, else the last ones made or used."""
        try:
            binding = self._bindings.get(asyncio.get_running_loop())
        except RuntimeError:
            binding = None
        return binding.stacks if binding is not None else self._latest

    @property
    def config(self) -> ExporterConfig:
        """The configuration (see :mod:`aiotlp.config`)."""
        return self._config

    async def __aenter__(self) -> OTLPExporter:
        return self

    @property
    def retries(self) -> int:
        """Retries made so far, over all signals (and every event loop)."""
        bindings = list(self._bindings.values())
        return self._retired_retries + sum(b.retries() for b in bindings)

    @property
    def in_flight(self) -> int:
        """Requests being sent (or waiting to retry) right now, over all signals (and every event loop)."""
        bindings = list(self._bindings.values())
        return sum(stack.limit.in_flight for b in bindings for stack in b.stacks.values())

    if TYPE_CHECKING:  # the verbs are CodecExporter's; declared here so that a wrong call names OTLPExporter

        async def export_traces(self, spans: Sequence[Span]) -> ExportResult: ...
        async def export_metrics(self, metrics: Sequence[Metric]) -> ExportResult: ...
        async def export_logs(self, records: Sequence[LogRecord]) -> ExportResult: ...

    def encode_requests(
        self,
        signal: Signal,
        items: Sequence[_T],
        encode: Callable[[Sequence[_T]], bytes] | None = None,
        *,
        body: bytes | None = None,
        count: Callable[[Sequence[_T]], int] | None = None,
        split_item: Callable[[_T], Sequence[_T]] | None = None,
    ) -> tuple[list[ExportRequest], ExportResult]:
        """Encode and split ``items`` exactly as an export would, without sending: for a layer that stores
        requests and sends them later (:mod:`aiotlp.durable`).

        With ``encode=None`` the items are aiotlp model objects, encoded for this exporter's wire format (as
        :meth:`export_traces` does); otherwise the arguments are those of :meth:`export_encoded`. Returns the
        requests, each under ``max_request_bytes``, and an :class:`ExportResult` counting the items dropped
        because a single one is over the cap (logged, rate-limited); the requests' items are not in it.
        """
        if encode is None:
            codec = self.model_codec(signal)
        else:
            codec = Codec(signal, encode, len if count is None else count, split_item)
        return self.encode_batch(codec, items, body=body)

    def encode_batch(
        self, codec: Codec, items: Sequence[Any], *, body: bytes | None = None
    ) -> tuple[list[ExportRequest], ExportResult]:
        """:meth:`encode_requests` with the batch's :class:`~aiotlp.export.Codec` (what a
        :class:`~aiotlp.export.CodecExporter` verb made): the requests, and the items dropped."""
        requests: list[ExportRequest] = []
        dropped = ExportResult()
        for part in codec.requests(items, self.config.for_signal(codec.signal).max_request_bytes, body):
            if isinstance(part, ExportRequest):
                requests.append(part)
            else:
                dropped = dropped + self._dropped(part)
        return requests, dropped

    def _dropped(self, part: RequestTooLargeError | Invalid) -> ExportResult:
        """A part that cannot be sent: logged (rate-limited) and counted."""
        self._failure_log.log("%s", part.message)
        if isinstance(part, Invalid):
            return ExportResult(items=part.items, dropped=part.items, invalid=part.items)
        return ExportResult(items=part.items, dropped=part.items, error=part)

    async def send_request(
        self, request: ExportRequest, *, timeout: float | None = None, log_failure: bool = True
    ) -> ExportResult:
        """Send one request made by :meth:`encode_requests` (its bytes as they are) through the sender stack.

        The same accounting and rules as :meth:`export_encoded`: never raises for a failed export, fails at
        once after :meth:`shutdown`, and ``timeout`` shortens the configured export deadline.
        ``log_failure=False``: a failure is not logged here (the disk queue keeps the request and says so).
        """
        if self._closed:
            error = ExporterShutdownError("the exporter is shut down")
            return ExportResult(items=request.items, failed=request.items, error=error)
        config = self.config.for_signal(request.signal)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + (config.timeout if timeout is None else min(config.timeout, timeout))
        binding = self._bind(loop)
        binding.active += 1
        try:
            return await self._send(binding.stacks[request.signal], request, deadline, log_failure=log_failure)
        finally:
            binding.leave()

    async def _export_codec(
        self, codec: Codec, items: Sequence[Any], body: bytes | None, timeout: float | None
    ) -> ExportResult:
        signal = codec.signal
        total = codec.count(items)
        if self._closed:
            error = ExporterShutdownError("the exporter is shut down")
            return ExportResult(items=total, failed=total, error=error)
        if total == 0:
            return ExportResult()
        config = self._signal_config[signal]
        loop = asyncio.get_running_loop()
        deadline = loop.time() + (config.timeout if timeout is None else min(config.timeout, timeout))
        binding = self._bind(loop)
        stack = binding.stacks[signal]
        binding.active += 1
        try:
            if body is not None and len(body) <= config.max_request_bytes:
                # the common batch, encoded by the caller and under the cap: the one request codec.requests makes
                request = ExportRequest(signal=signal, body=body, items=total, size=len(body))
                return await self._send(stack, request, deadline)
            result: ExportResult | None = None  # the first part's result as it is (most batches are one request)
            for part in codec.requests(items, config.max_request_bytes, body):
                if isinstance(part, ExportRequest):
                    sent = await self._send(stack, part, deadline)
                else:
                    sent = self._dropped(part)
                result = sent if result is None else result + sent
            return ExportResult() if result is None else result
        finally:
            binding.leave()

    async def connect(self, signal: Signal | str = Signal.TRACES, timeout: float | None = None) -> bool:
        """Open ``signal``'s connection on the running loop now, ahead of its first export, so that the first
        export does not wait for it (aiotlp's batch processors do this when they start on the bridge).

        True once it is open. False when the transport cannot connect ahead (a fleet of collectors, or a
        custom transport that is not :class:`~aiotlp.transport.Connectable`), the exporter is shut down, or the
        connection failed or did not come within ``timeout`` seconds (the signal's export timeout by default).
        A failure is not raised and not counted anywhere (nothing was sent): it is logged at debug level, and the
        first export connects again and reports its own failure. Shutting the exporter down does not wait for
        a connection being made: it is closed with the transport."""
        signal = Signal(signal)
        if self._closed:
            return False
        config = self.config.for_signal(signal)
        transport = self._bind(asyncio.get_running_loop()).stacks[signal].transport
        if not isinstance(transport, Connectable):
            return False
        try:
            await transport.connect(config.timeout if timeout is None else timeout)
        except ExportError as exc:
            logger.debug("could not connect ahead to %s: %s", _where(config), exc)
            return False
        return True

    # -- one set of sender stacks per event loop

    def _bind(self, loop: asyncio.AbstractEventLoop) -> _LoopStacks:
        """The running loop's stacks, made on its first export."""
        binding = self._bindings.get(loop)
        if binding is not None and self._forks == _forks:  # no fork since the last look (no getpid() per export)
            return binding
        with self._lock:
            if self._pid != os.getpid():  # a forked child: the parent's connections are the parent's
                self._pid = os.getpid()
                for stale in self._bindings.values():
                    self._retired_retries += stale.retries()
                    self._drop(stale)
                self._bindings.clear()
            self._forks = _forks
            binding = self._bindings.get(loop)
            if binding is not None:
                return binding
            for other in [b for b in self._bindings.values() if b.loop.is_closed()]:
                del self._bindings[other.loop]  # closed without shutdown_asyncgens(): nothing can close these
                self._retired_retries += other.retries()
                self._drop(other)
            stacks, self._spare = self._spare or self._make_stacks(), None
            binding = self._bindings[loop] = _LoopStacks(loop, stacks, self._unbind)
            self._latest = stacks
        return binding

    def _unbind(self, binding: _LoopStacks) -> None:
        """``binding``'s loop is shutting down: forget it (it closes its connections itself)."""
        with self._lock:
            if self._bindings.get(binding.loop) is binding:
                del self._bindings[binding.loop]
                self._retired_retries += binding.retries()

    def _drop(self, binding: _LoopStacks) -> None:
        binding.drop()
        logger.debug("dropped the connections of %r (closed, or the parent process's)", binding.loop)

    def leave_loop(self, loop: asyncio.AbstractEventLoop) -> None:
        """Never touch ``loop``'s connections again, if it is not running: a caller that will not use this
        exporter there any more, and cannot close them there (the loop is closed, or stopped and may never run
        again), leaves them as they are (see :mod:`aiotlp._fork`) rather than to the garbage collector ("Unclosed
        client session"). Their file descriptors stay open until the process exits. Any thread."""
        if loop.is_running():
            return
        with self._lock:
            binding = self._bindings.pop(loop, None)
            if binding is not None:
                self._retired_retries += binding.retries()
        if binding is not None:
            self._drop(binding)

    def _leave_at_exit(self) -> None:
        """Interpreter exit with the exporter open: the connections of loops left open (not running) are left
        as they are, never finalized (which would log "Unclosed client session" and the like)."""
        for loop in list(self._bindings):
            self.leave_loop(loop)

    async def _send(
        self, stack: SenderStack, request: ExportRequest, deadline: float, *, log_failure: bool = True
    ) -> ExportResult:
        request = compress_request(request, stack.transport.compression)
        restore = suppress()  # instrumented HTTP and gRPC clients must not trace the exporter's own calls
        try:
            partial = await stack.send(request, deadline)
        except GeneratorExit:  # closed outside its task (its loop never ran again): no context of ours to restore
            restore = None
            raise
        except ExportError as exc:
            where = _where(self.config.for_signal(request.signal))
            return failed_result(request.signal, request.items, exc, where, self._failure_log if log_failure else None)
        finally:
            if restore is not None:
                restore()
        return partial_result(request.signal, request.items, partial, self._partial_log)

    async def shutdown(self, timeout: float | None = None) -> None:
        """Stop: interrupt retry backoffs, let in-flight requests end (within ``timeout`` seconds), close.

        Exports after shutdown return a failed result at once. A second call returns at once.
        """
        if self._closed:
            return
        self._closed = True
        _open_exporters.discard(self)
        loop = asyncio.get_running_loop()
        with self._lock:
            forked = self._pid != os.getpid()
            bindings = list(self._bindings.values())
            self._bindings.clear()
        waits: list[asyncio.Future[None]] = []
        for binding in bindings:
            if binding.loop is loop and not forked:
                waits.append(asyncio.ensure_future(binding.close(timeout)))
            elif forked or binding.loop.is_closed():
                self._drop(binding)
            else:  # another thread's loop (running, or to run again): close there, when it runs
                binding.close_soon(timeout)
                if binding.loop.is_running():
                    waits.append(asyncio.wrap_future(binding.closed))
                else:  # if it never runs again, the connections are left as they are at exit
                    _unfinished.add(binding)
                    binding.closed.add_done_callback(functools.partial(_finished, binding))
        if waits:
            # bounded: another thread's loop may end before it runs the close (its watch then closes instead)
            longest = timeout if timeout is not None else max(self.config.for_signal(s).timeout for s in Signal)
            await asyncio.wait(waits, timeout=longest + 2 * _LOOP_END_GRACE)
        with self._lock:
            self._retired_retries += sum(binding.retries() for binding in bindings)


class _LoopStacks:
    """One event loop's sender stacks (its connections), the exports in flight on it, and a watch on its end.

    The watch is an async generator started on the loop: ``loop.shutdown_asyncgens()`` (the last thing
    ``asyncio.run`` does before closing the loop) closes it, and its ``finally`` closes the connections while
    the loop can still run their callbacks.
    """

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        stacks: dict[Signal, SenderStack],
        on_loop_end: Callable[[_LoopStacks], None],
    ) -> None:
        self.loop = loop
        self.stacks = stacks
        self.active = 0
        self.live = True  # False once closed or dropped: the watch then does nothing
        self._idle: asyncio.Event | None = None
        self.closed: concurrent.futures.Future[None] = concurrent.futures.Future()  # set once closed or dropped
        self._on_loop_end = on_loop_end
        self._watch = self._watch_loop()
        # Started by hand, synchronously: the loop's first-iteration hook registers it for shutdown_asyncgens()
        with contextlib.suppress(StopIteration):
            self._watch.__anext__().send(None)

    def __repr__(self) -> str:
        return f"<_LoopStacks {self.loop!r}>"

    def retries(self) -> int:
        return sum(stack.retry.retries for stack in self.stacks.values())

    def leave(self) -> None:
        """An export on this loop ended."""
        self.active -= 1
        if self.active == 0 and self._idle is not None:
            self._idle.set()

    async def _watch_loop(self) -> AsyncGenerator[None, None]:
        try:
            yield
        finally:
            if self.live:  # the loop is shutting down (shutdown_asyncgens) with the exporter still open
                self.live = False
                self._on_loop_end(self)
                await self._close(_LOOP_END_GRACE)

    def detach(self) -> None:
        """Never touch these connections again (their loop is closed, or they are the parent process's): end
        the watch without running anything on the loop."""
        self.live = False
        # RuntimeError: the watch is running (closing the connections as its loop shuts down)
        with contextlib.suppress(StopIteration, RuntimeError):
            self._watch.aclose().send(None)

    def drop(self) -> None:
        """Leave the connections as they are, for good (see :mod:`aiotlp._fork`)."""
        self.detach()
        abandon(self)
        if not self.closed.done():
            self.closed.set_result(None)

    async def close(self, timeout: float | None) -> None:
        """On this loop: interrupt retry backoffs, let in-flight exports end (within ``timeout``), close."""
        if not self.live:
            return
        self.detach()
        await self._close(timeout)

    async def _close(self, timeout: float | None) -> None:
        try:
            for stack in self.stacks.values():
                stack.retry.interrupt()
            if self.active:
                self._idle = asyncio.Event()
                try:
                    await asyncio.wait_for(self._idle.wait(), timeout)
                except asyncio.TimeoutError:
                    logger.warning("shutdown: %d export(s) still in flight after %.3gs; closing", self.active, timeout)
            await asyncio.gather(*(stack.top.shutdown() for stack in self.stacks.values()))
        finally:
            if not self.closed.done():
                self.closed.set_result(None)

    def close_soon(self, timeout: float | None) -> None:
        """From another thread: close on this loop when it runs next (:attr:`closed` says when it is done)."""

        def start() -> None:
            task = self.loop.create_task(self.close(timeout))
            _closing.add(task)
            task.add_done_callback(_closing.discard)

        with contextlib.suppress(RuntimeError):  # the loop is closed already
            self.loop.call_soon_threadsafe(start)


_open_exporters: weakref.WeakSet[OTLPExporter] = weakref.WeakSet()

_forks = 0
"""Forks into this process's line so far (a fork hook counts them): an exporter that saw this many need not ask
the process id again."""


def _count_fork() -> None:
    global _forks
    _forks += 1


if hasattr(os, "register_at_fork"):  # pragma: no branch - POSIX
    os.register_at_fork(after_in_child=_count_fork)


_unfinished: set[_LoopStacks] = set()
"""Bindings of shut-down exporters whose close waits for their loop to run again."""


def _finished(binding: _LoopStacks, _: object) -> None:
    _unfinished.discard(binding)


def _at_exit() -> None:
    for exporter in list(_open_exporters):
        exporter._leave_at_exit()
    for binding in list(_unfinished):
        if not binding.loop.is_running():
            binding.drop()


atexit.register(_at_exit)

#: Seconds the exports of a loop that is shutting down get to end before its connections close.
_LOOP_END_GRACE = 1.0

_closing: set[asyncio.Task[None]] = set()


def _reading_replies(transport: Transport) -> Transport:
    """``transport``, whose fleet (if it is one, or may become one: grpc.aio in a forked child) reads replies with
    :func:`reply_error` when its maker gave it no reader (``transport_factory=make_transport``): so that a 503 or
    UNAVAILABLE fails over to the next collector whoever built the transport."""
    grpcio = sys.modules.get("aiotlp.transport._grpc")  # (not imported here: it imports grpc)
    readers = (FleetTransport, grpcio.GrpcTransport) if grpcio is not None else (FleetTransport,)
    if isinstance(transport, readers) and transport.classify is None:
        transport.classify = reply_error
    return transport


def _where(config: SignalConfig) -> str:
    """The endpoint for logs: the URL, or the fleet's first URL and how many more."""
    more = len(config.endpoints) - 1
    return config.endpoint_for_display + (f" (+{more} more)" if more else "")
