"""Drop-in OpenTelemetry SDK batch processors: BatchSpanProcessor and BatchLogRecordProcessor, on aiotlp.

```python
provider = TracerProvider()
provider.add_span_processor(aiotlp.sdk.BatchSpanProcessor(aiotlp.sdk.SpanExporter(endpoint=...)))
```

Each processor owns one :class:`aiotlp.processing.BatchProcessor`. ``on_end`` / ``on_emit`` put the item in its
bounded queue (any thread; O(1) under a lock, never blocks, never raises; a full queue drops and counts).

Where the exports run
---------------------
On the application's event loop when there is one: the loop running in the thread of the first ``on_end`` /
``on_emit`` (or ``loop=``). Otherwise (a synchronous application, spans ended in plain threads) on the aiotlp
bridge loop thread (:func:`aiotlp.sdk._bridge.get_bridge`). On the application's loop, an export costs no
thread hop and no GIL hand-off between the producing thread and an exporting one.

An application loop does not outlive the application's ``asyncio.run``, and the SDK shuts the provider down
later (``atexit``). So the processor *moves* to the bridge when its loop goes away with items left:
``asyncio.run`` cancels every task before closing the loop; the processor's worker takes that as the signal,
closes the exporter's connections on that loop, and resumes on the bridge, where the batches whose exports were
cancelled are exported again (at-least-once: the collector may see a batch twice; nothing is lost). A loop closed
without ``asyncio.run`` is noticed at the next full batch, flush or shutdown, with the same result. A synchronous
``force_flush`` / ``shutdown`` called on the loop's own thread (from a coroutine, as ``provider.force_flush()``
often is) would deadlock waiting for exports that need that very loop: it moves the processor to the bridge
first (cancelling and re-sending what was in flight), then blocks as the official processor does.

The exporter
------------
* an :class:`aiotlp.sdk.SpanExporter` / :class:`aiotlp.sdk.LogExporter` (the *fast path*): each batch is sent by the
  underlying async ``OTLPExporter.export_encoded`` on the processor's loop: no thread hop per batch, no blocking. Over
  protobuf (gRPC, HTTP/protobuf) each item is *encoded at the source*: ``on_end`` / ``on_emit`` encode it in the thread
  that ends it (its cost: ``docs/benchmarks.md``, "Encoding at the source") into its protobuf field bytes, kept with a
  small key of its resource and scope (:class:`aiotlp.sdk._encode_source.SourceEncoder`), and let go of the SDK object
  there; a batch is framed from those bytes without encoding again (a batch split by size is framed again from a
  subset), so the export thread only ships bytes, and the queue holds no SDK objects for the garbage collector to walk.
  The queue then has a byte capacity as well (``max_queue_bytes``, default :data:`DEFAULT_MAX_QUEUE_BYTES`, measured as
  each item's encoded length). Once the processor has started, ``on_end`` / ``on_emit`` is one compiled callable set
  on the instance (``aiotlp.processing.HotPut``, :mod:`._hot`; the SDK calls it with no Python frame of aiotlp's): the
  sampled check, the key of the item's resource and scope, found by identity, the encode (``_encode_source._span_item``
  / ``_log_item``, or their pure twins), the put of the bytes with their length (``BoundedQueue.put_sized``) and, for
  a full batch, the hand-over; without the extension the class's Python method does the same. The first item of a
  new (resource, scope), one that cannot be encoded, and every item before the start or after the shutdown take the
  general path.
  Over OTLP/JSON, with ``encode_at_source=False`` or ``AIOTLP_NO_ENCODE_AT_SOURCE=1``
  (:data:`aiotlp.encoding.ENCODE_AT_SOURCE`), the objects are queued and each batch encoded at export, as before; both
  paths send the same bytes. An item that cannot be encoded is queued as the object, and dropped at export as
  ``invalid`` (counted);
* spans of :class:`aiotlp.sdk.TracerProvider` (issue 16) come to ``BatchSpanProcessor`` through its native hook
  (``_on_end_native``) instead of ``on_end``: encoded at the source, the span's bytes are taken straight from its
  SpanCore (``span.encode()``, the same bytes), with no ``ReadableSpan`` built; otherwise an SDK
  ``ReadableSpan`` of it is queued, as any other span;
* any other SDK exporter (the *generic path*): its synchronous ``export`` runs in a worker thread
  (``loop.run_in_executor``), so the loop never blocks. An export cut off by ``export_timeout`` keeps running
  in its thread; the next one waits for it, so the exporter is never called concurrently.

Flush and shutdown
------------------
``force_flush(timeout_millis)`` and ``shutdown()`` run the BatchProcessor's coroutines on the processor's loop
and wait for them (``shutdown`` within ``export_timeout_millis``). On an application loop's thread they first
move the processor to the bridge (above). Called on the bridge's own thread (e.g. from an export), waiting would
deadlock: they schedule the work and return at once (``force_flush`` returns False). Async code can ``await``
:meth:`aforce_flush` / :meth:`ashutdown` instead: they wait without blocking any loop. A second ``shutdown``
returns at once; ``on_end`` after shutdown drops the item
(counted as ``already_shutdown``).

Fork
----
After ``os.fork`` the child's processors start clean: a new, empty BatchProcessor (started on the child's own
bridge on first use); the parent's queue, tasks and connections are never touched nor sent from the child.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import os
import threading
import weakref
from collections.abc import Callable
from typing import Any, Final, Literal

from opentelemetry._logs import LogRecord as ApiLogRecord
from opentelemetry.context import Context
from opentelemetry.sdk._logs import LogRecordProcessor, ReadWriteLogRecord
from opentelemetry.sdk._logs.export import LogRecordExporter, LogRecordExportResult
from opentelemetry.sdk.trace import ReadableSpan, Span, SpanProcessor
from opentelemetry.sdk.trace.export import SpanExporter as SdkSpanExporter
from opentelemetry.sdk.trace.export import SpanExportResult

from aiotlp._exceptions import ConfigurationError
from aiotlp._validate import is_int, is_number
from aiotlp.config import BatchConfig, queue_dir_from_env
from aiotlp.encoding import ENCODE_AT_SOURCE
from aiotlp.encoding import accelerate as _accelerate
from aiotlp.encoding import speedups as _speedups
from aiotlp.model import Signal
from aiotlp.processing import (
    READY,
    BatchProcessor,
    BoundedQueue,
    FlushOutcome,
    FlushStatus,
    ProcessorStatistics,
    estimate_size,
    put_sized,
)

from ._adapters import FastAdapter, GenericAdapter
from ._bridge import abandon, exports_in_flight, get_bridge, is_bridge_loop
from ._encode import SourceEncoder
from ._encode_logs import _SDK_LOG_TYPES
from ._encode_source import _NO_MEMO, _log_item, _span_item  # noqa: F401 - _log_item: on_emit's HotPut reads it here
from ._encode_spans import _DIRECT, _SDK_TYPES
from ._exporters import AiotlpExporter, LogExporter, SpanExporter
from ._hot import install_hot
from ._lane import SourceLane
from ._queued_logs import (
    _API_FIELDS,
    _EMPTY_CONTEXT,
    _NOTHING,
    _default_resource,
    _new_object,
    _queue_other,
    _queued_class,
    _QueuedLog,
)

__all__ = ["DEFAULT_MAX_QUEUE_BYTES", "BatchLogRecordProcessor", "BatchSpanProcessor"]

logger = logging.getLogger("aiotlp.sdk")

_DEFAULT_SHUTDOWN_TIMEOUT: Final = 30.0

DEFAULT_MAX_QUEUE_BYTES: Final = 32 * 1024 * 1024
"""The queue's byte capacity when items are encoded at the source and ``max_queue_bytes`` is not given."""


def _source_size(item: Any) -> int:
    """An item's bytes in the queue: the encoded length of an item encoded at the source."""
    return len(item[1]) if type(item) is tuple else estimate_size(item)


_connecting: set[asyncio.Task[None]] = set()


def _connect_ahead(client: Any) -> None:
    """On the bridge loop: open ``client``'s connection in a task (made here, on the loop, so that a loop stopped
    before this runs holds no coroutine of ours)."""
    task = asyncio.get_running_loop().create_task(client.connect_ahead())
    _connecting.add(task)
    task.add_done_callback(_connected)


def _connected(task: asyncio.Task[None]) -> None:
    _connecting.discard(task)
    if not task.cancelled() and (error := task.exception()) is not None:  # it logs and swallows export errors
        logger.error("connecting ahead failed", exc_info=error)


def _bridge_loop() -> asyncio.AbstractEventLoop:
    return get_bridge().loop()


# ------------------------------------------------------------------------------------------------------------
# Fork handling: every live processor resets in the child

_live: weakref.WeakSet[_Batching] = weakref.WeakSet()


def _after_fork_in_child() -> None:
    for processor in list(_live):
        processor._reset_after_fork()


if hasattr(os, "register_at_fork"):  # pragma: no branch - POSIX
    os.register_at_fork(after_in_child=_after_fork_in_child)


# ------------------------------------------------------------------------------------------------------------
# The processors


def _millis(value: float | None, name: str) -> float | None:
    if value is None:
        return None
    if not is_number(value) or not value > 0:
        raise ConfigurationError(f"{name} must be a positive number of milliseconds, got {value!r}")
    return value / 1000


_BATCHING_ARGUMENTS: Final = (
    "max_queue_size",
    "schedule_delay_millis",
    "max_export_batch_size",
    "export_timeout_millis",
    "loop",
    "meter_provider",
    "queue_dir",
    "encode_at_source",
    "max_queue_bytes",
)


def _batching_arguments(arguments: dict[str, Any]) -> dict[str, Any]:
    """:class:`_Batching`'s keyword arguments among a processor ``__init__``'s ``locals()`` (its signature is
    written out, for ``help()`` and IDEs; the arguments are passed on once)."""
    return {name: arguments[name] for name in _BATCHING_ARGUMENTS}


class _Batching:
    """The common part: a BatchProcessor on the bridge loop (or ``loop``), flush/shutdown from sync code."""

    _signal: Signal

    def __init__(
        self,
        exporter: Any,
        kind: Literal["span", "log"],
        *,
        max_queue_size: int | None,
        schedule_delay_millis: float | None,
        max_export_batch_size: int | None,
        export_timeout_millis: float | None,
        loop: asyncio.AbstractEventLoop | None,
        meter_provider: object | None,
        queue_dir: str | os.PathLike[str] | None = None,
        encode_at_source: bool | None = None,
        max_queue_bytes: int | None = None,
    ) -> None:
        # The disk queue is the exporter's: an aiotlp.sdk exporter has read AIOTLP_QUEUE_DIR (its own business);
        # queue_dir= here is handed to it. Any other exporter is used as it is.
        if isinstance(exporter, AiotlpExporter):
            if queue_dir is not None:
                directory = queue_dir_from_env(queue_dir=queue_dir)
                assert directory is not None
                client = exporter._client
                client.use_queue_dir(os.path.join(directory, client.signal.value), explicit=True)
        elif queue_dir_from_env(queue_dir=queue_dir) is not None:
            logger.warning(
                "the disk queue (%s) needs an aiotlp.sdk exporter: %s is used as it is, without a disk queue",
                "queue_dir=" if queue_dir is not None else "AIOTLP_QUEUE_DIR",
                type(exporter).__name__,
            )
        self._config = BatchConfig.from_env(
            kind,
            schedule_delay=_millis(schedule_delay_millis, "schedule_delay_millis"),
            export_timeout=_millis(export_timeout_millis, "export_timeout_millis"),
            max_queue_size=max_queue_size,
            max_export_batch_size=max_export_batch_size,
            on_invalid="warn",  # as the official processors: a variable that is not an integer gets the default
        )
        self._exporter = exporter
        if encode_at_source is None:
            encode_at_source = ENCODE_AT_SOURCE
        self._source: SourceEncoder | None = None
        if encode_at_source and self._fast(exporter) and not exporter._client.json:
            self._source = SourceEncoder("spans" if kind == "span" else "logs")
        if max_queue_bytes is not None and (not is_int(max_queue_bytes) or max_queue_bytes <= 0):
            raise ConfigurationError(f"max_queue_bytes must be a positive int or None, got {max_queue_bytes!r}")
        if max_queue_bytes is None and self._source is not None:
            max_queue_bytes = DEFAULT_MAX_QUEUE_BYTES
        self._max_queue_bytes = max_queue_bytes
        self._explicit_loop = loop
        self._meter_provider = meter_provider
        if meter_provider is not None and isinstance(exporter, AiotlpExporter):
            exporter.stop_self_metrics()  # this processor reports the exporter's instruments
        self._start_lock = threading.Lock()
        self._is_shut_down = False
        self._processor = self._new_processor()
        self._started = False
        # on_end's hot path: the source encoder once started and until shut down (else None: the other path)
        self._hot: SourceEncoder | None = None
        self._background: set[asyncio.Future[Any]] = set()
        _live.add(self)

    def _set_hot(self, source: SourceEncoder | None) -> None:
        """Turn the hot path on (the source encoder, once started) or off (None: before the start, after the
        shutdown, in a forked child)."""
        self._hot = source

    # subclasses: the adapter for their signal, and whether an exporter takes the fast path
    def _adapter(self) -> Any:
        raise NotImplementedError

    @staticmethod
    def _fast(exporter: object) -> bool:
        raise NotImplementedError

    @property
    def encodes_at_source(self) -> bool:
        """Whether ``on_end`` / ``on_emit`` encode each item and queue bytes (see the module docstring)."""
        return self._source is not None

    def _new_processor(self) -> BatchProcessor[Any]:
        kwargs: dict[str, Any] = {"fallback_loop": _bridge_loop}
        if self._max_queue_bytes is not None:
            kwargs["max_queue_bytes"] = self._max_queue_bytes
            if self._source is not None:
                kwargs["size_of"] = _source_size
        if self._meter_provider is not None:
            kwargs["meter_provider"] = self._meter_provider
        processor: BatchProcessor[Any] = BatchProcessor.from_config(
            self._adapter(), self._signal, self._config, **kwargs
        )
        # on_end's hot path puts an encoded item with its size (its field's length) straight into the queue (a
        # byte-capped queue of unit weights), without put_nowait's and size_of's calls: _queue_put
        self._queue: BoundedQueue[Any] = processor.queue
        return processor

    def _start(self, *, connect: bool = False) -> BatchProcessor[Any]:
        """Bind the BatchProcessor to its loop (``loop=``, the running one, else the bridge's); before any put.
        ``connect``: on the bridge, with aiotlp's own exporter, also open its connection now (see
        :meth:`_start_quietly`)."""
        with self._start_lock:
            processor = self._processor
            if not self._started:
                # with the disk queue, always the bridge: one DurableExporter may hold its directory, and it must
                # outlive any application loop
                running = None if self._queued() else asyncio._get_running_loop()
                bridge = get_bridge()
                loop = self._explicit_loop or running or bridge.loop()
                fast = is_bridge_loop(loop) and isinstance(processor.exporter, FastAdapter) and not self._queued()
                if fast:
                    client = self._exporter._client  # aiotlp's own exporter: see exports_in_flight's docstring
                    processor.max_concurrent_exports = exports_in_flight(
                        client.config.for_signal(client.signal).protocol
                    )
                processor.start(loop)
                self._started = True
                self._set_hot(None if self._is_shut_down else self._source)
                lane = None
                if fast and self._source is not None and not self._is_shut_down and not bridge.inline:
                    lane = self._open_lane(processor, loop)
                if fast and connect and not self._is_shut_down and not bridge.inline and loop is bridge.running_loop:
                    if lane is not None:
                        lane.preconnect()  # the lane sends the batches: its connections, not the exporter's
                    else:
                        with contextlib.suppress(RuntimeError):  # the bridge is closing (interpreter exit)
                            loop.call_soon_threadsafe(_connect_ahead, self._exporter._client)
            return processor

    def _open_lane(self, processor: BatchProcessor[Any], loop: asyncio.AbstractEventLoop) -> SourceLane | None:
        """On the bridge, with aiotlp's exporter and items encoded at the source: send full batches on the native
        lane where the exporter allows one (:mod:`._lane`); the bridge waits for what it has in flight at exit."""
        assert self._source is not None
        try:
            lane = SourceLane.open(self._exporter._client, self._source.frame, processor)
        except Exception:  # no lane: the exporter sends every batch, as without the extension
            logger.exception("the %s processor could not open its native lane", self._signal.value)
            return None
        if lane is None:
            return None
        processor.attach_lane(lane)
        with contextlib.suppress(RuntimeError):  # the bridge is closing (interpreter exit)
            loop.call_soon_threadsafe(get_bridge().track, lane)
        return lane

    def _start_quietly(self) -> None:
        """:meth:`_start` from ``on_end`` / ``on_emit``, which never raise into the application: if the processor
        cannot bind to a loop, the item is still queued (and counted), for the next start, flush or shutdown.

        Started on the bridge (an application on plain threads), it also opens the exporter's connection there at
        once: otherwise the first export makes it, while the application's threads hold the GIL (the bridge then
        waits for it at each step of the connection, up to the switch interval each time) and the queue fills up
        behind the first batch (a flat-out producer: 500 to 1,500 spans dropped at start-up)."""
        try:
            self._start(connect=True)
        except Exception:
            logger.exception("the %s processor could not start", self._signal.value)

    def _queued(self) -> bool:
        client = getattr(self._exporter, "_client", None)
        return getattr(client, "queue_dir", None) is not None

    def _reset_after_fork(self) -> None:
        abandon(self._processor)  # the parent's: its lock, loop and tasks are never touched again
        self._start_lock = threading.Lock()
        self._processor = self._new_processor()
        self._started = False
        self._set_hot(None)
        # shutdown state is kept: a processor shut down in the parent stays shut down in the child
        if self._is_shut_down:
            self._processor.stop_accepting()

    @property
    def loop(self) -> asyncio.AbstractEventLoop | None:
        """The loop the exports run on, once started."""
        return self._processor.loop

    @property
    def config(self) -> BatchConfig:
        """The batching configuration, from the arguments and the ``OTEL_BSP_*`` / ``OTEL_BLRP_*`` variables."""
        return self._config

    def statistics(self) -> ProcessorStatistics:
        """The BatchProcessor's ledger: ``produced == exported + persisted + rejected + failed + dropped + queued +
        in_flight``. With the disk queue, ``persisted`` counts what was written to disk and waits there still,
        ``exported`` what the queue has delivered to the collector since."""
        stats = self._processor.statistics()
        still_on_disk = getattr(self._processor.exporter, "still_on_disk", None)
        on_disk = 0 if still_on_disk is None else still_on_disk(stats.exported)
        if not on_disk:
            return stats
        return dataclasses.replace(stats, exported=stats.exported - on_disk, persisted=on_disk)

    def _on_own_loop(self, processor: BatchProcessor[Any]) -> bool:
        """True when called on the processor's loop thread, where waiting for it would deadlock; unless it
        could move to the bridge first (from an application loop)."""
        own = processor.loop
        if own is None or asyncio._get_running_loop() is not own:
            return False
        return not processor.move_to_fallback()

    def _in_background(self, coro: Any) -> None:
        task = asyncio.ensure_future(coro)
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    def force_flush(self, timeout_millis: int = 30_000) -> bool:
        """Export everything ended before the call; True when it was all accepted within ``timeout_millis``.

        On the processor's own loop thread it cannot wait: it starts the flush and returns False.
        """
        timeout = max(0.0, timeout_millis / 1000)
        processor = self._start()
        if self._on_own_loop(processor):
            self._in_background(processor.force_flush(timeout))
            return False
        return bool(processor.force_flush_threadsafe(timeout))

    def shutdown(self) -> None:
        """Stop accepting items, export what is queued and shut the exporter down, within ``export_timeout``.

        On the processor's own loop thread it starts the shutdown and returns without waiting.
        """
        if self._is_shut_down:
            return
        self._is_shut_down = True
        self._set_hot(None)
        processor = self._start()
        timeout = self._config.export_timeout or _DEFAULT_SHUTDOWN_TIMEOUT
        if self._on_own_loop(processor):
            self._in_background(processor.shutdown(timeout))
            return
        outcome = processor.shutdown_threadsafe(timeout)
        if outcome.status is not FlushStatus.SUCCESS:
            logger.warning("the %s processor shut down with %s: %s", self._signal.value, outcome.status.value, outcome)

    async def aforce_flush(self, timeout_millis: int = 30_000) -> FlushOutcome:
        """:meth:`force_flush` for async code on any loop: awaits the flush without blocking the loop."""
        return await self._start().force_flush(max(0.0, timeout_millis / 1000))

    async def ashutdown(self) -> FlushOutcome:
        """:meth:`shutdown` for async code on any loop."""
        self._is_shut_down = True
        self._set_hot(None)
        timeout = self._config.export_timeout or _DEFAULT_SHUTDOWN_TIMEOUT
        return await self._start().shutdown(timeout)


class BatchSpanProcessor(_Batching, SpanProcessor):
    """A drop-in replacement for the SDK's ``BatchSpanProcessor``, batching on aiotlp (see the module docstring).

    Arguments as the official one (milliseconds; ``None`` reads ``OTEL_BSP_*``, then the defaults), plus
    ``loop`` (export on this event loop), ``meter_provider`` (self-metrics) and ``queue_dir`` (the crash-safe disk
    queue, in ``<queue_dir>/traces``: the exporter's ``queue_dir``, which also reads ``AIOTLP_QUEUE_DIR``).
    ``span_exporter`` is an :class:`aiotlp.sdk.SpanExporter` (fast path) or any SDK ``SpanExporter``.
    ``encode_at_source`` (default: on, unless ``AIOTLP_NO_ENCODE_AT_SOURCE`` is set) and ``max_queue_bytes``
    (the queue's byte capacity): see the module docstring.
    """

    _signal = Signal.TRACES

    def __init__(
        self,
        span_exporter: SdkSpanExporter,
        max_queue_size: int | None = None,
        schedule_delay_millis: float | None = None,
        max_export_batch_size: int | None = None,
        export_timeout_millis: float | None = None,
        *,
        loop: asyncio.AbstractEventLoop | None = None,
        meter_provider: object | None = None,
        queue_dir: str | os.PathLike[str] | None = None,
        encode_at_source: bool | None = None,
        max_queue_bytes: int | None = None,
    ) -> None:
        super().__init__(span_exporter, "span", **_batching_arguments(locals()))

    @property
    def span_exporter(self) -> SdkSpanExporter:
        exporter: SdkSpanExporter = self._exporter
        return exporter

    @staticmethod
    def _fast(exporter: object) -> bool:
        return isinstance(exporter, SpanExporter)

    def _adapter(self) -> Any:
        if isinstance(self._exporter, SpanExporter):
            return FastAdapter(self._exporter, Signal.TRACES, "spans", self._source)
        return GenericAdapter(self._exporter, SpanExportResult.SUCCESS)

    def on_start(self, span: Span, parent_context: Context | None = None) -> None:
        pass

    def on_end(self, span: ReadableSpan) -> None:
        """Queue a sampled span for export (any thread; never blocks or raises; a full queue drops it)."""
        source = self._hot
        if source is not None:
            # The hot path, encoding at the source: the sampled check, the key of the span's (resource, scope),
            # by identity (the last pair, else the pairs seen), and the encode in one call (compiled, or its pure
            # twin), then the byte-capped put; a batch made ready wakes the worker (once per batch). Anything
            # else (a pair not seen yet, a span that cannot be encoded, ...) takes the path below.
            item = _span_item(_SDK_TYPES, _DIRECT, source._memo, source._ids, span)
            if type(item) is tuple:
                queue = self._queue
                size = len(item[1])
                code = _queue_put(queue, item, size)
                if code < 0:  # the compiled put leaves the rest to the queue's: full, closed, a new chunk
                    code = queue.put_sized(item, size)
                if code == READY:
                    self._processor.batch_ready()
                return
            if item is None:  # not sampled
                return
        self._end_other(span)

    def _end_other(self, span: ReadableSpan) -> None:
        """``on_end`` past its hot path: a span not encoded there (not started, shut down, a (resource, scope) not
        seen yet, a span of another class, one that cannot be encoded)."""
        try:
            # SpanContext is a tuple whose item 3 is trace_flags: ~0.4 us less than the three properties of
            # span.context.trace_flags.sampled (a third of the budget of this call)
            sampled = span._context[3] & 1  # type: ignore[index]
        except Exception:
            context = span.context
            sampled = context is not None and context.trace_flags.sampled
        if not sampled:
            return
        if not self._started:
            self._start_quietly()
        source = self._source
        if source is None or self._is_shut_down:
            self._processor.put_nowait(span)
        else:  # its bytes, or the span itself if it cannot be encoded (encoded at export, or dropped as invalid)
            self._processor.put_nowait(source.span_item(span))

    def _set_hot(self, source: SourceEncoder | None) -> None:
        """As the base's; while the hot path is on, ``on_end`` is also one compiled call (:func:`._hot.install_hot`)."""
        self._hot = source
        install_hot(self, "on_end", BatchSpanProcessor, (globals(), "_span_item"), _SDK_TYPES, _DIRECT, self._end_other)

    def _on_end_native(self, span: Any) -> None:
        """``aiotlp.sdk.TracerProvider``'s hook at a span's ``end()`` (instead of ``on_end``): a sampled span is
        queued as its bytes, ``(key, span.encode())``, straight from its SpanCore, with no Python span object
        built. Without encoding at the source (OTLP/JSON, or turned off), past the source encoder's groups, or
        if the span cannot be encoded, an SDK ``ReadableSpan`` of it is queued (encoded, or dropped as invalid
        and counted, at export). Any thread; never blocks or raises."""
        if not span._trace_flags & 1:
            return
        source = self._hot
        if source is not None:
            # the hot path, as on_end's: the key of the (resource, scope) by identity, the core's bytes, the put
            tracer = span._tracer
            resource = tracer._provider._resource
            scope = tracer._instrumentation_scope
            memo = source._memo
            if memo[0] is not resource or memo[1] is not scope:
                memo = source._ids.get((id(resource), id(scope)), _NO_MEMO)
            if memo[0] is resource and memo[1] is scope and memo[2] >= 0:
                try:
                    data = span.encode()
                except Exception:  # the path below: queued as an object (dropped as invalid at export, counted)
                    pass
                else:
                    queue = self._queue
                    size = len(data)
                    code = _queue_put(queue, (memo[2], data), size)
                    if code < 0:
                        code = queue.put_sized((memo[2], data), size)
                    if code == READY:
                        self._processor.batch_ready()
                    return
        if not self._started:
            self._start_quietly()
        source = self._source
        if self._is_shut_down:
            self._processor.put_nowait(span)  # dropped, counted as already_shutdown
            return
        try:
            if source is not None:
                tracer = span._tracer
                key = source.key(tracer._provider._resource, tracer._instrumentation_scope)
                if key >= 0:
                    try:
                        item: Any = (key, span.encode())
                    except Exception:  # queued as an object: dropped as invalid at export, and counted
                        item = span._readable()
                    self._processor.put_nowait(item)
                    return
            item = span._readable()
        except Exception:  # never raise into the application
            logger.exception("cannot queue a span")
            return
        self._processor.put_nowait(item)


# on_end's hot path reads the compiled one-call twin as a global of this module too
if _speedups is not None and hasattr(_speedups, "sdk_span_item"):
    _accelerate(globals(), _span_item=_speedups.sdk_span_item)
if _speedups is not None and hasattr(_speedups, "sdk_log_item"):  # and on_emit's
    _accelerate(globals(), _log_item=_speedups.sdk_log_item)

_queue_put: Callable[[BoundedQueue[Any], Any, int], int] = BoundedQueue.put_sized
"""``on_end``'s put: ``BoundedQueue.put_sized(queue, item, size)``, or its compiled twin
(``aiotlp.processing.put_sized`` when compiled), which returns -1 for anything but the plain case (the queue full or
closed, a new chunk needed): then ``queue.put_sized`` is called. Registered with the encoders' switch, as before, so
that ``aiotlp.encoding._compat.use`` switches both."""
if put_sized is not BoundedQueue.put_sized:  # compiled in processing; chosen with the encoders (`use`)
    _accelerate(globals(), _queue_put=put_sized)


class BatchLogRecordProcessor(_Batching, LogRecordProcessor):
    """A drop-in replacement for the SDK's ``BatchLogRecordProcessor``, batching on aiotlp.

    Arguments as the official one (``None`` reads ``OTEL_BLRP_*``), plus ``loop``, ``meter_provider``,
    ``queue_dir``, ``encode_at_source`` and ``max_queue_bytes`` as :class:`BatchSpanProcessor`. ``exporter`` is
    an :class:`aiotlp.sdk.LogExporter` (fast path) or any SDK ``LogRecordExporter``.
    """

    _signal = Signal.LOGS

    def __init__(
        self,
        exporter: LogRecordExporter,
        schedule_delay_millis: float | None = None,
        max_export_batch_size: int | None = None,
        export_timeout_millis: float | None = None,
        max_queue_size: int | None = None,
        *,
        loop: asyncio.AbstractEventLoop | None = None,
        meter_provider: object | None = None,
        queue_dir: str | os.PathLike[str] | None = None,
        encode_at_source: bool | None = None,
        max_queue_bytes: int | None = None,
    ) -> None:
        super().__init__(exporter, "log", **_batching_arguments(locals()))
        # The last (resource, scope, limits) and its _QueuedLog class: one identity check per record.
        self._memo: tuple[object, object, object, type[_QueuedLog] | None] = (_NOTHING, _NOTHING, _NOTHING, None)

    @property
    def exporter(self) -> LogRecordExporter:
        exporter: LogRecordExporter = self._exporter
        return exporter

    @staticmethod
    def _fast(exporter: object) -> bool:
        return isinstance(exporter, LogExporter)

    def _adapter(self) -> Any:
        if isinstance(self._exporter, LogExporter):
            return FastAdapter(self._exporter, Signal.LOGS, "log records", self._source)
        return GenericAdapter(self._exporter, LogRecordExportResult.SUCCESS)

    def on_emit(self, log_record: ReadWriteLogRecord) -> None:
        """Queue the record for export (any thread; never blocks or raises).

        What is queued is what the official processor queues, a ``ReadableLogRecord`` over a shallow copy of the
        API record without its context (so the queue does not keep the context's objects alive, and later
        changes to the record's fields do not reach the export), made cheaply: one object, a ``__dict__`` copy
        that is also its own ``ReadableLogRecord`` (``_QueuedLog``); a foreign exporter gets real
        ``ReadableLogRecord`` objects, made at export time. Encoded at the source (the module docstring), the
        record's bytes are queued instead; a record that cannot be encoded there is queued as above.
        """
        source = self._source
        if source is not None and log_record.resource is not None and not self._is_shut_down:
            encoded = source.item(log_record)
            if encoded is not log_record:
                if not self._started:
                    self._start_quietly()
                self._processor.put_nowait(encoded)
                return
        self._emit_other(log_record)

    def _set_hot(self, source: SourceEncoder | None) -> None:
        """As the base's; while the hot path is on, ``on_emit`` is also one compiled call (:func:`._hot.install_hot`);
        a record it does not encode (no resource, a pair not seen yet, ...) goes through ``on_emit`` whole."""
        self._hot = source
        install_hot(self, "on_emit", BatchLogRecordProcessor, (globals(), "_log_item"), _SDK_LOG_TYPES, None, None)

    def _emit_other(self, log_record: ReadWriteLogRecord) -> None:
        """``on_emit`` past encoding at the source: the record queued as an object (see ``on_emit``)."""
        try:
            record = log_record.log_record
            resource = log_record.resource
            scope = log_record.instrumentation_scope
            limits = log_record.limits
            if resource is None:
                resource = _default_resource()
            memo = self._memo  # one tuple, replaced whole: other threads see an old or a new one, never a mix
            if memo[0] is resource and memo[1] is scope and memo[2] is limits:
                cls = memo[3]
            else:
                cls = _queued_class(resource, scope, limits)
                self._memo = (resource, scope, limits, cls)
            copied = record.__dict__.copy()
            if cls is not None and type(record) is ApiLogRecord and len(copied) == _API_FIELDS:
                queued: Any = _new_object(cls)
                queued.__dict__ = copied  # keeps the shared-key layout: "context" is one of the keys
                copied["context"] = _EMPTY_CONTEXT
            else:
                queued = _queue_other(log_record, resource)
        except Exception:  # never raise into the application's logging call
            logger.exception("cannot queue a log record")
            return
        if not self._started:
            self._start_quietly()
        self._processor.put_nowait(queued)
