"""The child process of the lifecycle tests: one SDK pipeline, one event-loop lifecycle, then the exit.

    python tests/user_paths/lifecycle_child.py SCENARIO

Environment (set by tests/user_paths/helpers.py):

* ``UP_HTTP`` / ``UP_GRPC``: the collector's endpoints;
* ``UP_TRANSPORT``: ``http-protobuf``, ``http-json``, ``grpc-h2`` or ``grpc-grpcio``;
* ``UP_SIGNAL``: ``traces`` (TracerProvider, spans) or ``logs`` (LoggerProvider, ``logger.emit``);
* ``UP_PROCESSOR``: ``aiotlp`` (``aiotlp.sdk.Batch*Processor``) or ``official`` (the SDK's own), over the aiotlp
  SDK exporter either way;
* ``UP_COUNT``: how many spans / log records the application ends; ``UP_DELAY_MS``: the schedule delay.

Every item is named ``s<n>`` (a span's name, a log record's body), n from 0. The providers are made as users
make them (``shutdown_on_exit`` is left at its default, True), and most scenarios exit without ``shutdown()``.
A scenario may stop at a ``HOLD`` line: it then waits for a line on stdin (the test checks the collector
meanwhile). At exit, an ``atexit`` hook registered before the provider (so it runs after the provider's own
``atexit`` shutdown) prints ``RESULT {json}``: the processor's ``statistics()`` ledger (aiotlp processors), and
what ``force_flush`` returned when the scenario called it, and how many batches went on aiotlp's native lane (one line
per process: a forked worker prints its own).
"""

from __future__ import annotations

import asyncio
import atexit
import dataclasses
import functools
import itertools
import json
import os
import sys
import threading
from collections.abc import Callable
from typing import Any

import aiotlp.sdk
from aiotlp.transport import make_transport

SCENARIO = sys.argv[1]
TRANSPORT = os.environ["UP_TRANSPORT"]
SIGNAL = os.environ["UP_SIGNAL"]
PROCESSOR = os.environ["UP_PROCESSOR"]
COUNT = int(os.environ["UP_COUNT"])
DELAY_MS = int(os.environ.get("UP_DELAY_MS", "5000"))

_report: dict[str, Any] = {"flush": [], "ledger": None}
_processors: list[Any] = []


def _ledger(stats: Any) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for field in dataclasses.fields(stats):
        value = getattr(stats, field.name)
        if field.name == "dropped":
            value = {reason: count for reason, count in value.items() if count}
        elif field.name == "signal":
            value = value.value
        out[field.name] = value
    return out


def _print_result() -> None:
    if _processors and hasattr(_processors[0], "statistics"):
        _report["ledger"] = _ledger(_processors[0].statistics())
        lane = _processors[0]._processor.lane  # aiotlp's native lane, where it has one (plain threads, HTTP)
        _report["lane"] = None if lane is None else lane.sent
    _report["pid"] = os.getpid()
    sys.stdout.write("RESULT " + json.dumps(_report) + "\n")
    sys.stdout.flush()


atexit.register(_print_result)  # before the provider's: atexit runs LIFO, so this runs after its shutdown


def _exporter() -> Any:
    cls = aiotlp.sdk.SpanExporter if SIGNAL == "traces" else aiotlp.sdk.LogExporter
    if TRANSPORT.startswith("http"):
        protocol = "http/json" if TRANSPORT == "http-json" else "http/protobuf"
        return cls(os.environ["UP_HTTP"] + "/v1/" + SIGNAL, protocol=protocol)
    if TRANSPORT == "grpc-grpcio":  # the SDK exporter has no grpc_implementation=: a transport factory picks grpcio
        factory = functools.partial(make_transport, grpc_implementation="grpcio")
        return cls(os.environ["UP_GRPC"], protocol="grpc", transport_factory=factory)
    return cls(os.environ["UP_GRPC"], protocol="grpc")


def _processor(loop: asyncio.AbstractEventLoop | None) -> Any:
    exporter = _exporter()
    if PROCESSOR == "official":
        assert loop is None, "the official processors take no loop="
        if SIGNAL == "traces":
            from opentelemetry.sdk.trace.export import BatchSpanProcessor

            return BatchSpanProcessor(exporter, schedule_delay_millis=DELAY_MS)
        from opentelemetry.sdk._logs.export import BatchLogRecordProcessor

        return BatchLogRecordProcessor(exporter, schedule_delay_millis=DELAY_MS)
    if SIGNAL == "traces":
        return aiotlp.sdk.BatchSpanProcessor(exporter, schedule_delay_millis=DELAY_MS, loop=loop)
    return aiotlp.sdk.BatchLogRecordProcessor(exporter, schedule_delay_millis=DELAY_MS, loop=loop)


class App:
    """The provider and what the application ends through it."""

    def __init__(self, loop: asyncio.AbstractEventLoop | None = None) -> None:
        processor = _processor(loop)
        _processors.append(processor)
        self._numbers = itertools.count()
        if SIGNAL == "traces":
            from opentelemetry.sdk.trace import TracerProvider

            self.provider: Any = TracerProvider()
            self.provider.add_span_processor(processor)
            tracer = self.provider.get_tracer("user-paths")

            def end(name: str) -> None:
                with tracer.start_as_current_span(name):
                    pass

        else:
            from opentelemetry._logs import SeverityNumber
            from opentelemetry.sdk._logs import LoggerProvider

            self.provider = LoggerProvider()
            self.provider.add_log_record_processor(processor)
            logger = self.provider.get_logger("user-paths")

            def end(name: str) -> None:
                logger.emit(body=name, severity_number=SeverityNumber.INFO)

        self._end: Callable[[str], None] = end

    def end(self, count: int) -> None:
        """End ``count`` spans (emit ``count`` log records), each with the next number: any thread."""
        for _ in range(count):
            self._end(f"s{next(self._numbers)}")

    async def main(self, count: int) -> None:
        """The application's coroutine: ends ``count`` items, yielding to the loop now and then."""
        for n in range(count):
            self.end(1)
            if n % 50 == 49:
                await asyncio.sleep(0)

    def force_flush(self) -> None:
        _report["flush"].append(self.provider.force_flush(10_000))


def hold() -> None:
    """Let the test look at the collector before the scenario goes on."""
    sys.stdout.write("HOLD\n")
    sys.stdout.flush()
    sys.stdin.readline()


def halves() -> tuple[int, int]:
    return COUNT // 2, COUNT - COUNT // 2


# ------------------------------------------------------------------------------------------------ scenarios


def asyncio_run() -> None:
    app = App()
    asyncio.run(app.main(COUNT))


def asyncio_run_twice() -> None:
    app = App()
    first, second = halves()
    asyncio.run(app.main(first))
    asyncio.run(app.main(second))


def run_until_complete_left_open() -> None:
    app = App()
    loop = asyncio.new_event_loop()
    loop.run_until_complete(app.main(COUNT))
    # the loop is left open, not closed; no shutdown: the provider's atexit handler shuts it down


def run_until_complete_turns_force_flush() -> None:
    app = App()
    loop = asyncio.new_event_loop()
    for part in halves():
        loop.run_until_complete(app.main(part))  # the loop is stopped once the turn is over
        app.force_flush()  # synchronous, from plain code, with the loop stopped


def run_until_complete_turns_shutdown() -> None:
    app = App()
    loop = asyncio.new_event_loop()
    for part in halves():
        loop.run_until_complete(app.main(part))
    app.provider.shutdown()


def loop_never_runs() -> None:
    app = App(asyncio.new_event_loop())  # loop= a loop that the application never runs
    app.end(COUNT)
    hold()  # the test waits for delivery within the schedule delay


def loop_never_runs_force_flush() -> None:
    app = App(asyncio.new_event_loop())
    app.end(COUNT)
    app.force_flush()


def closed_loop() -> None:
    loop = asyncio.new_event_loop()
    loop.close()
    app = App(loop)  # loop= a loop closed before the first span
    app.end(COUNT)


def plain_threads() -> None:
    app = App()
    parts = (COUNT // 4,) * 3 + (COUNT - 3 * (COUNT // 4),)
    threads = [threading.Thread(target=app.end, args=(part,)) for part in parts]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()


def _background_loop() -> tuple[asyncio.AbstractEventLoop, threading.Thread]:
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    return loop, thread


def loop_in_thread() -> None:
    app = App()
    loop, _ = _background_loop()
    asyncio.run_coroutine_threadsafe(app.main(COUNT), loop).result(30)
    # exit with that loop still running in its (daemon) thread


def loop_in_thread_stopped() -> None:
    app = App()
    loop, thread = _background_loop()
    asyncio.run_coroutine_threadsafe(app.main(COUNT), loop).result(30)
    loop.call_soon_threadsafe(loop.stop)
    thread.join(30)  # stopped, not closed


def explicit_loop_in_thread() -> None:
    loop, _ = _background_loop()
    app = App(loop)  # loop= a loop running in another thread; the items end in the main thread
    app.end(COUNT)


def thread_asyncio_run() -> None:
    app = App()
    thread = threading.Thread(target=asyncio.run, args=(app.main(COUNT),))
    thread.start()
    thread.join()


def fork_after_first_export() -> None:
    """gunicorn --preload: the parent's application exported already; a forked worker runs its own asyncio.run
    and exits normally (its atexit handlers run); the parent waits for it, then exits without shutdown."""
    app = App()
    first, second = halves()
    asyncio.run(app.main(first))
    app.force_flush()
    pid = os.fork()
    if pid == 0:
        asyncio.run(app.main(second))
        return  # the worker's interpreter exits normally: the provider's atexit shutdown, then RESULT
    _, status = os.waitpid(pid, 0)
    if os.waitstatus_to_exitcode(status) != 0:
        sys.exit(f"the forked worker exited with {os.waitstatus_to_exitcode(status)}")


SCENARIOS: dict[str, Callable[[], None]] = {
    "asyncio.run": asyncio_run,
    "asyncio.run-twice": asyncio_run_twice,
    "run_until_complete-left-open": run_until_complete_left_open,
    "run_until_complete-turns-force_flush": run_until_complete_turns_force_flush,
    "run_until_complete-turns-shutdown": run_until_complete_turns_shutdown,
    "loop=never-runs": loop_never_runs,
    "loop=never-runs-force_flush": loop_never_runs_force_flush,
    "loop=closed": closed_loop,
    "plain-threads": plain_threads,
    "loop-in-thread": loop_in_thread,
    "loop-in-thread-stopped": loop_in_thread_stopped,
    "loop=running-in-thread": explicit_loop_in_thread,
    "thread-asyncio.run": thread_asyncio_run,
    "fork-after-first-export": fork_after_first_export,
}

if __name__ == "__main__":
    SCENARIOS[SCENARIO]()
