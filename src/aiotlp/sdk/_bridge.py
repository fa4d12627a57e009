"""The sync -> async bridge: one daemon thread per process running an asyncio event loop, owned by aiotlp.

The OpenTelemetry SDK calls exporters synchronously, from its processors' threads (or the application's). The
SDK adapters run aiotlp's async exporter on this loop with :func:`asyncio.run_coroutine_threadsafe` and wait
for the result. The bridge is:

- **lazy**: the thread starts on the first :meth:`Bridge.loop` call, so importing ``aiotlp.sdk`` costs nothing;
- **shared**: one per process (:func:`get_bridge`); every adapter's exporter lives on it;
- **fork-safe**: in a child process (``os.fork``), :func:`get_bridge` returns a new, not yet started bridge.
  The parent's loop and thread do not exist in the child: they are never touched again (nor closed: their
  file descriptors and connections belong to the parent), and nothing queued there is ever sent from the child;
- **stopped at interpreter exit** (``atexit``, registered when this module is imported): exports still in flight
  get up to :data:`EXIT_TIMEOUT` seconds, then every exporter made on the loop is shut down (connections
  closed) and the thread ends. An export that comes later (another ``atexit`` handler flushing a provider)
  starts a new bridge, and exporters notice the new loop and rebuild their connections on it. Python 3.12
  refuses to start a thread once the interpreter is finalizing, which is when ``atexit`` handlers run: a bridge
  started then runs its loop on the calling thread, one :meth:`Bridge.submit` at a time (``run_until_complete``),
  so the last flush of a provider is still delivered.

The loop is :func:`aiotlp.transport.gil_keeping_event_loop`'s: its non-blocking socket calls (writes, reads,
zero-timeout polls) keep the GIL, so that an export waits for the GIL that the application's threads hold once (for
its reply) instead of after each system call.

The loop's default executor (used by asyncio to resolve host names when a connection is opened) runs each call in
its own daemon thread: ``concurrent.futures.ThreadPoolExecutor`` refuses work once the interpreter starts shutting
down, which would make the final flush at exit fail to resolve ``localhost``.
"""

from __future__ import annotations

import asyncio
import atexit
import concurrent.futures
import logging
import os
import threading
import time
import weakref
from collections.abc import Callable, Coroutine
from typing import Any, Final, Protocol, TypeVar

from aiotlp import _fork
from aiotlp.transport import close_all_lanes, gil_keeping_event_loop

__all__ = [
    "EXIT_TIMEOUT",
    "EXPORTS_IN_FLIGHT",
    "GRPC_EXPORTS_IN_FLIGHT",
    "LANE_EXPORTS_IN_FLIGHT",
    "Bridge",
    "abandon",
    "exports_in_flight",
    "get_bridge",
    "is_bridge_loop",
    "on_running_loop",
]

logger = logging.getLogger("aiotlp.sdk")

EXIT_TIMEOUT: Final = 5.0
"""Seconds the ``atexit`` handler gives in-flight exports, then connection shutdown, before it returns."""

EXPORTS_IN_FLIGHT: Final = 2
"""Export calls in flight at once from aiotlp's SDK batch processors to aiotlp's own exporters (the fast path),
when they export on the bridge (an application on plain threads) over OTLP/HTTP (aiotlp's HTTP/1.1 client); one
on an application's own loop. gRPC: :data:`GRPC_EXPORTS_IN_FLIGHT`; :func:`exports_in_flight` picks.

An export on the bridge costs well under a millisecond of CPU, but when the application's threads make spans flat
out, the bridge waits for the GIL once per export at least (for the reply: it has nothing to do until then, and
gets the GIL back only at the end of the producer's switch interval, 5 ms). With one export in flight the queue
overflows whenever a reply is late; with two, one late reply does not hold the next batch back and one GIL hold
reads both replies. Four measured the same as two over HTTP and over aiotlp's h2 gRPC client (flat-out thread
producer, default queue, 4 s, 3 rounds against rotel and against the OpenTelemetry Collector: 0 drops after
start-up with either, CPU per span equal within the noise), so HTTP keeps two (each one more is one more
HTTP/1.1 connection).

Allowed: the SDK's rule that ``export`` is never called concurrently protects an SDK ``SpanExporter`` /
``LogRecordExporter`` instance. The fast path does not call ``export``: it calls the aiotlp exporter's async
client, made for concurrent calls (its own limit, ``max_concurrent``, defaults to 4; HTTP/2 multiplexes the calls
on one connection, the HTTP/1.1 client opens a second connection). A foreign exporter (any other SDK exporter)
keeps one call at a time, and so does an exporter with the disk queue (``queue_dir``: its DurableExporter writes
each batch to disk; not measured here). On an application's loop there is no GIL to wait for between the producer
and the exports, and a second export in flight measured worse (the 10 s flat-out loop test of tests/sdk dropped
9.5K and 10.8K spans instead of 0.9K and 3.4K on a loaded machine): one there.
"""

GRPC_EXPORTS_IN_FLIGHT: Final = 4
"""Export calls in flight at once on the bridge from aiotlp's SDK batch processors to aiotlp's own exporters over
OTLP/gRPC (either client: both multiplex the calls on one HTTP/2 connection; the exporter's own ``max_concurrent``
defaults to 4). See :data:`EXPORTS_IN_FLIGHT` for why more than one, and why it is allowed.

Four, for the grpc.aio client (``grpc_implementation="grpcio"``) against a receiver that leaves Nagle on. rotel
never sets TCP_NODELAY (the OpenTelemetry Collector, grpc-go, does): it answers a request in three writes (a
connection WINDOW_UPDATE, the response HEADERS, then DATA and trailers), and Nagle holds each of the later ones
until the client's kernel ACKs the one before. grpc C-core sends nothing on a WINDOW_UPDATE or HEADERS frame, so the
ACK waits for the kernel's delayed-ACK timer: about one call in ten to rotel takes ~40 ms instead of ~1 ms
(``benchmarks/grpc_latency.py``: 19-37 of 300 sequential calls; none of 200 against the Collector, nor with aiotlp's
h2 client, which re-arms TCP_QUICKACK after each read). None of grpc core's channel arguments changes that (the BDP
probe pings only on DATA; ``grpc.http2.bdp_probe``, ``write_buffer_size``, ``max_frame_size``, ``lookahead_bytes``,
read chunk sizes, ``tcp_receive_buffer_size``, 1 s keepalive pings: 4-44 of 300 calls stalled per run, against 19-37
without; 6 rounds), and the socket is grpc core's, not reachable from Python. gzip (``compression``, the user's
choice) avoids most of them (0-4 of 300: a tenth of the bytes to send), at twice the client's CPU per call (582
against 268 us for 512 spans). What helps is a request sent on the connection while a reply is held: it carries the
ACK. Calls that are all waiting send nothing (two or four sends at once, each task sending again only after its
reply: as many stalls, and a held segment holds every reply behind it), but a processor with free slots sends its
next batch while a reply is held, and that releases it; with two slots both are often held, and the queue (2,048
spans, ~40 ms of a flat-out producer) overflows meanwhile. Flat-out thread producer, default queue, 4 s, grpc.aio to
rotel (runs of 3 and 5 rounds, interleaved): drops 62-99K with one export in flight, 0-15.6K with two (0 in 5 of 8
runs), 0-1.1K with three, 0 in 8 of 8 runs with four (calls over 35 ms: 22%, 0.6-8%, 1%, 0-0.6%); CPU per produced
span the same within the noise (19.0-20.3 us at each count). Two against four, interleaved: 3,361/1,368/0/953 spans
dropped against 0/0/0/0 (4 rounds; 19.8 against 19.5 us per span); with the connection opened ahead at the
processor's start, 0/0/3,804/2,807/5,549 against 0 in each of 5 rounds (18.9 against 19.2 us per span). Against the
Collector grpc.aio drops nothing even with one.
"""


LANE_EXPORTS_IN_FLIGHT: Final = 4
"""Export calls in flight at once, and threads, of a batch processor's native lane (:mod:`aiotlp.sdk._lane`), either
protocol: each thread has a connection of its own and runs no Python, so one more costs the application nothing.
Four, against two (OTLP/HTTP's :data:`EXPORTS_IN_FLIGHT`): aiotlp's own TracerProvider on a plain thread, flat out
over OTLP/HTTP to rotel (~380K spans/s with a no-op processor), dropped 64K spans of 1M in 4 s with two and none
with four (287K spans/s delivered instead of 252K; 3 interleaved rounds); the SDK's provider (~60K spans/s) the
same with either."""


def exports_in_flight(protocol: str) -> int:
    """Export calls in flight at once on the bridge from an aiotlp SDK batch processor to aiotlp's own exporter
    (not with the disk queue, nor on an application's loop: one there), by the exporter's ``protocol``
    (``"grpc"``, ``"http/protobuf"`` or ``"http/json"``): :data:`GRPC_EXPORTS_IN_FLIGHT` for gRPC, whichever
    client (a ``transport_factory`` is not known before its first transport is made), else
    :data:`EXPORTS_IN_FLIGHT`."""
    return GRPC_EXPORTS_IN_FLIGHT if protocol == "grpc" else EXPORTS_IN_FLIGHT


_T = TypeVar("_T")


class _Closeable(Protocol):
    async def shutdown(self, timeout: float | None = None) -> None: ...


class _ThreadPerCallExecutor(concurrent.futures.ThreadPoolExecutor):
    """Runs each call in a new daemon thread: unlike ThreadPoolExecutor, it keeps working during interpreter
    exit. The bridge loop's only executor work is host-name resolution (once per new connection: they are kept
    alive)."""

    def submit(self, fn: Callable[..., _T], /, *args: Any, **kwargs: Any) -> concurrent.futures.Future[_T]:
        future: concurrent.futures.Future[_T] = concurrent.futures.Future()

        def run() -> None:
            if not future.set_running_or_notify_cancel():
                return
            try:
                result = fn(*args, **kwargs)
            except BaseException as exc:
                future.set_exception(exc)
            else:
                future.set_result(result)

        try:
            threading.Thread(target=run, name="aiotlp-bridge-executor", daemon=True).start()
        except RuntimeError:  # Python 3.12 at interpreter exit: no new threads; resolve on the loop's thread
            run()
        return future

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        return None


def on_running_loop() -> bool:
    """True when the calling thread is running an asyncio event loop (the bridge's or any other)."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return False
    return True


class Bridge:
    """A daemon thread running an asyncio loop, started lazily. Use :func:`get_bridge`, not the constructor."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._inline = False  # the loop runs on the caller's thread, in submit() (no thread could be started)
        # The exporters to shut down when a loop stops, per loop; only touched on that loop's thread.
        self._tracked: dict[asyncio.AbstractEventLoop, weakref.WeakSet[Any]] = {}

    def __repr__(self) -> str:
        state = "running" if self._loop is not None else "idle"
        return f"<aiotlp Bridge {state}>"

    @property
    def running_loop(self) -> asyncio.AbstractEventLoop | None:
        """The loop, if the thread is running (without starting it)."""
        return self._loop

    def loop(self) -> asyncio.AbstractEventLoop:
        """The bridge loop, starting the thread on first use."""
        loop = self._loop
        if loop is not None:
            return loop
        with self._lock:
            if self._loop is None:
                self._start()
            assert self._loop is not None
            return self._loop

    def _start(self) -> None:
        # its non-blocking socket calls keep the GIL (asyncio's own loop without the helper)
        loop = gil_keeping_event_loop()
        _bridge_loops.add(loop)
        loop.set_default_executor(_ThreadPerCallExecutor(max_workers=1))
        started = threading.Event()
        thread = threading.Thread(target=_run_loop, args=(loop, started), name="aiotlp-bridge", daemon=True)
        try:
            thread.start()
        except RuntimeError:  # "can't create new thread at interpreter shutdown" (Python 3.12, in atexit handlers)
            self._inline = True
            self._loop = loop
            return
        started.wait()
        self._thread = thread
        self._loop = loop

    def submit(self, coro: Coroutine[Any, Any, _T]) -> concurrent.futures.Future[_T]:
        """Schedule ``coro`` on the bridge loop (starting it if needed); thread-safe, never blocks (but when no
        thread could be started, at interpreter exit: then ``coro`` runs to its end here, see the module)."""
        loop = self.loop()
        if self._inline:
            return _run_inline(loop, coro)
        return asyncio.run_coroutine_threadsafe(coro, loop)

    def track(self, exporter: _Closeable) -> None:
        """Shut ``exporter`` down when its loop stops. Call it on the bridge loop, for objects bound to it."""
        self._tracked.setdefault(asyncio.get_running_loop(), weakref.WeakSet()).add(exporter)

    def _untrack(self, loop: asyncio.AbstractEventLoop) -> list[Any]:
        return list(self._tracked.pop(loop, ()))

    @property
    def inline(self) -> bool:
        """True when the loop has no thread and runs in :meth:`submit` (started at interpreter exit, 3.12)."""
        return self._inline

    def in_thread(self) -> bool:
        """True when called on the bridge loop's own thread."""
        return self._thread is not None and threading.current_thread() is self._thread

    def stop(self, timeout: float) -> None:
        """Let in-flight work finish and shut the tracked exporters down (within ``timeout`` seconds), then
        stop the loop and join the thread. A later :meth:`loop` call starts a new one."""
        with self._lock:
            loop, thread, inline = self._loop, self._thread, self._inline
            self._loop = self._thread = None
            self._inline = False
        if loop is not None and inline:
            _stop_inline(self, loop, timeout)
            return
        if loop is None or thread is None:
            return
        deadline = time.monotonic() + timeout
        if threading.current_thread() is thread:  # cannot wait for ourselves: finish in the background
            loop.create_task(_close_then_stop(self, timeout, loop))
            return
        # Work queued on the loop before this call runs first (FIFO), so the exporters it creates are tracked
        # and its exports counted in flight by the time _close_all looks.
        future = asyncio.run_coroutine_threadsafe(_close_all(self, timeout), loop)
        try:
            future.result(timeout)
        except concurrent.futures.TimeoutError:
            future.cancel()
            logger.warning("aiotlp bridge: exporters did not shut down within %.3gs; stopping anyway", timeout)
        except Exception:  # pragma: no cover - _close_all swallows exporter errors
            logger.exception("aiotlp bridge: error while shutting exporters down")
        try:
            loop.call_soon_threadsafe(loop.stop)
        except RuntimeError:  # pragma: no cover - the loop is already closed
            return
        thread.join(max(0.0, deadline - time.monotonic()) + 1.0)


async def _close_all(bridge: Bridge, timeout: float) -> None:
    tracked = bridge._untrack(asyncio.get_running_loop())
    results = await asyncio.gather(*(exporter.shutdown(timeout) for exporter in tracked), return_exceptions=True)
    for result in results:
        if isinstance(result, BaseException) and not isinstance(result, asyncio.CancelledError):
            logger.warning("aiotlp bridge: an exporter failed to shut down: %r", result)


async def _close_then_stop(bridge: Bridge, timeout: float, loop: asyncio.AbstractEventLoop) -> None:
    try:
        await asyncio.wait_for(_close_all(bridge, timeout), timeout)
    except asyncio.TimeoutError:
        logger.warning("aiotlp bridge: exporters did not shut down within %.3gs; stopping anyway", timeout)
    finally:
        loop.stop()


def _run_inline(loop: asyncio.AbstractEventLoop, coro: Coroutine[Any, Any, _T]) -> concurrent.futures.Future[_T]:
    """Run ``coro`` on ``loop`` on this thread (a bridge without a thread); its outcome in a done future."""
    future: concurrent.futures.Future[_T] = concurrent.futures.Future()
    if on_running_loop():  # a loop already runs on this thread: none can be nested in it
        coro.close()
        future.set_exception(RuntimeError("aiotlp bridge: no thread can be started and this thread runs a loop"))
        return future
    try:
        future.set_result(loop.run_until_complete(coro))
    except Exception as exc:
        future.set_exception(exc)
    return future


def _stop_inline(bridge: Bridge, loop: asyncio.AbstractEventLoop, timeout: float) -> None:
    """:meth:`Bridge.stop` for a bridge without a thread: shut its exporters down here, then close the loop."""
    if on_running_loop():  # pragma: no cover - stop() is called from atexit, outside any loop
        return
    try:
        loop.run_until_complete(asyncio.wait_for(_close_all(bridge, timeout), timeout))
    except asyncio.TimeoutError:
        logger.warning("aiotlp bridge: exporters did not shut down within %.3gs; stopping anyway", timeout)
    finally:
        _close_loop(loop)


def _run_loop(loop: asyncio.AbstractEventLoop, started: threading.Event) -> None:
    asyncio.set_event_loop(loop)
    loop.call_soon(started.set)
    try:
        loop.run_forever()
    finally:
        try:
            _close_loop(loop)
        finally:
            asyncio.set_event_loop(None)


def _close_loop(loop: asyncio.AbstractEventLoop) -> None:
    """As ``asyncio.run`` ends a loop: cancel what is left and let it end, close async generators, close."""
    try:
        tasks = asyncio.all_tasks(loop)
        for task in tasks:
            task.cancel()
        if tasks:
            loop.run_until_complete(asyncio.gather(*tasks, return_exceptions=True))
        loop.run_until_complete(loop.shutdown_asyncgens())
    finally:
        loop.close()


# ------------------------------------------------------------------------------------------------------------
# The process-wide bridge, fork and exit

_bridge = Bridge()
_bridge_loops: weakref.WeakSet[asyncio.AbstractEventLoop] = weakref.WeakSet()


def get_bridge() -> Bridge:
    """The bridge of this process (a fresh one in a child after ``os.fork``)."""
    return _bridge


def is_bridge_loop(loop: asyncio.AbstractEventLoop) -> bool:
    """True for a loop that a bridge started, even one that is stopping (at exit) or stopped."""
    return loop in _bridge_loops


def abandon(obj: object) -> None:
    """Keep ``obj`` (bound to the parent's loop, in a forked child) alive, untouched and never finalized, even at
    exit (see :mod:`aiotlp._fork`)."""
    _fork.abandon(obj)


def _after_fork_in_child() -> None:
    global _bridge
    abandon(_bridge)
    _bridge = Bridge()


def _at_exit() -> None:
    _bridge.stop(EXIT_TIMEOUT)
    # last: the native lanes' threads are joined before the interpreter finalizes (the bridge's stop gave what
    # they had in flight its time: SourceLane.shutdown)
    close_all_lanes()


if hasattr(os, "register_at_fork"):  # pragma: no branch - POSIX
    os.register_at_fork(after_in_child=_after_fork_in_child)
atexit.register(_at_exit)
