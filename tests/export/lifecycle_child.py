"""A child process for tests/export/test_lifecycles.py: one standalone OTLPExporter through one lifecycle.

``python lifecycle_child.py SCENARIO ENDPOINT PROTOCOL GRPC_IMPLEMENTATION`` (ENDPOINT: a URL, or a fleet's
URLs joined by commas). Each export's span is named after
its step; the script prints one ``RESULT <step> <accepted> <failed> <error>`` line per export and ``OK`` at the
end (exit 0). The test checks these lines, the collector's spans, and that nothing else was printed (no
traceback, ResourceWarning, "Event loop is closed", "never awaited").
"""

from __future__ import annotations

import asyncio
import os
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Coroutine
from typing import Any

from aiotlp import DurableExporter, ExportResult, OTLPExporter
from aiotlp.model import InstrumentationScope, Resource, Span

SCENARIO, ENDPOINT, PROTOCOL, IMPLEMENTATION = sys.argv[1:5]


def span(name: str) -> Span:
    return Span(
        trace_id=bytes(range(1, 17)),
        span_id=(1).to_bytes(8, "big"),
        name=name,
        start_time_unix_nano=1,
        end_time_unix_nano=2,
        resource=Resource({"pid": os.getpid()}),
        scope=InstrumentationScope("lifecycle"),
    )


def make_exporter() -> OTLPExporter:
    return OTLPExporter(
        endpoint=ENDPOINT.split(",") if "," in ENDPOINT else ENDPOINT,
        protocol=PROTOCOL,
        timeout=10,
        grpc_implementation="grpcio" if IMPLEMENTATION == "grpcio" else "h2",
    )


def report(step: str, result: ExportResult) -> None:
    error = type(result.error).__name__ if result.error is not None else "-"
    say(f"RESULT {step} {result.accepted} {result.failed} {error}")


def say(line: str) -> None:
    sys.stdout.write(line + "\n")  # one write: threads print whole lines
    sys.stdout.flush()


async def export(exporter: Any, step: str) -> None:
    report(step, await exporter.export_traces([span(step)]))


async def export_and_shutdown(exporter: Any, step: str) -> None:
    await export(exporter, step)
    started = time.monotonic()
    await exporter.shutdown(5)
    say(f"SHUTDOWN {step} {time.monotonic() - started:.3f}")


SLOW_CALLBACK = 0.5  # as tests/conftest.py: asyncio debug mode's 0.1 s fails a loaded CI machine's first import


def run(coro: Coroutine[Any, Any, None]) -> None:
    """asyncio.run, with the test suite's slow-callback threshold."""

    async def main() -> None:
        asyncio.get_running_loop().slow_callback_duration = SLOW_CALLBACK
        await coro

    asyncio.run(main())


def new_loop() -> asyncio.AbstractEventLoop:
    loop = asyncio.new_event_loop()
    loop.slow_callback_duration = SLOW_CALLBACK
    return loop


def in_thread(target: Callable[[], object]) -> None:
    thread = threading.Thread(target=target)
    thread.start()
    thread.join()


def run_twice(exporter: OTLPExporter) -> None:
    run(export(exporter, "run-1"))
    run(export(exporter, "run-2"))
    run(export_and_shutdown(exporter, "run-3"))


def threads_in_turn(exporter: OTLPExporter) -> None:
    in_thread(lambda: run(export(exporter, "thread-1")))
    in_thread(lambda: run(export(exporter, "thread-2")))
    run(export_and_shutdown(exporter, "main"))


def threads_at_once(exporter: OTLPExporter) -> None:
    """Two loops running at once in two threads, exporting in turns while both are up; shutdown from a third."""
    both_up = threading.Barrier(2)
    done = threading.Event()
    stop = threading.Barrier(3)

    async def worker(name: str) -> None:
        both_up.wait()
        await asyncio.gather(*(export(exporter, f"{name}-{i}") for i in range(5)))
        await asyncio.get_running_loop().run_in_executor(None, stop.wait)  # stay running until shutdown is done
        await asyncio.get_running_loop().run_in_executor(None, done.wait)

    threads = [threading.Thread(target=run, args=(worker(name),)) for name in ("a", "b")]
    for thread in threads:
        thread.start()
    stop.wait()
    run(export_and_shutdown(exporter, "main"))  # closes the two loops' connections on their own loops
    done.set()
    for thread in threads:
        thread.join()


def loop_closed(exporter: OTLPExporter) -> None:
    """A loop closed without shutdown_asyncgens(): its connections are dropped, never touched."""
    loop = new_loop()
    loop.run_until_complete(export(exporter, "closed-loop"))
    loop.close()
    run(export_and_shutdown(exporter, "after"))


def loop_in_turns(exporter: OTLPExporter) -> None:
    """A loop driven in turns (kept open), another used in between, then the first again."""
    loop = new_loop()
    loop.run_until_complete(export(exporter, "turn-1"))
    run(export(exporter, "other-loop"))
    loop.run_until_complete(export(exporter, "turn-2"))
    loop.run_until_complete(export_and_shutdown(exporter, "turn-3"))
    loop.run_until_complete(loop.shutdown_asyncgens())
    loop.close()


def loop_left_open(exporter: OTLPExporter) -> None:
    """run_until_complete on a loop left open at exit, no shutdown."""
    loop = new_loop()
    loop.run_until_complete(export(exporter, "open-1"))
    loop.run_until_complete(export(exporter, "open-2"))


def shutdown_elsewhere(exporter: OTLPExporter) -> None:
    """Shut down from another loop while the first is left open (and never runs again): nothing is finalized."""
    loop = new_loop()
    loop.run_until_complete(export(exporter, "left-open"))
    run(export_and_shutdown(exporter, "main"))


def fork(exporter: OTLPExporter) -> None:
    """gunicorn --preload: export in the parent, fork, export in the child (and the parent again)."""
    run(export(exporter, "parent-before"))
    pid = os.fork()
    if pid == 0:
        code = 1
        try:
            run(export_and_shutdown(exporter, "child"))
            code = 0
        finally:
            sys.stdout.flush()
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    say(f"CHILD {os.waitstatus_to_exitcode(status)}")
    run(export_and_shutdown(exporter, "parent-after"))


def fork_open_loop(exporter: OTLPExporter) -> None:
    """Fork while the parent's loop (and so its connections) is still open; the parent goes on using it."""
    loop = new_loop()
    loop.run_until_complete(export(exporter, "parent-before"))
    pid = os.fork()
    if pid == 0:
        code = 1
        try:
            run(export_and_shutdown(exporter, "child"))
            code = 0
        finally:
            sys.stdout.flush()
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    say(f"CHILD {os.waitstatus_to_exitcode(status)}")
    loop.run_until_complete(export_and_shutdown(exporter, "parent-after"))
    loop.run_until_complete(loop.shutdown_asyncgens())
    loop.close()


def fork_child_exits(exporter: OTLPExporter) -> None:
    """As ``fork``, but the child exits as gunicorn's workers do (interpreter finalization, no os._exit)."""
    run(export(exporter, "parent-before"))
    pid = os.fork()
    if pid == 0:
        run(export(exporter, "child"))  # and no shutdown
        return
    _, status = os.waitpid(pid, 0)
    say(f"CHILD {os.waitstatus_to_exitcode(status)}")
    run(export_and_shutdown(exporter, "parent-after"))


def durable_run_twice(exporter: OTLPExporter) -> None:
    """The disk queue in front: its delivery moves to the next loop; the last shutdown drains the queue."""
    with tempfile.TemporaryDirectory() as directory:
        durable = DurableExporter(exporter, directory)
        run(export(durable, "run-1"))
        run(export(durable, "run-2"))
        run(export_and_shutdown(durable, "run-3"))


def durable_loop_closed(exporter: OTLPExporter) -> None:
    """The disk queue's delivery loop closed without shutdown_asyncgens(): delivery moves to the next loop."""
    with tempfile.TemporaryDirectory() as directory:
        durable = DurableExporter(exporter, directory)
        loop = new_loop()
        loop.run_until_complete(export(durable, "closed-loop"))
        loop.close()
        run(export_and_shutdown(durable, "after"))


def durable_other_loop(exporter: OTLPExporter) -> None:
    """The disk queue delivers on a loop that is still open: an export from another loop fails, counted."""
    with tempfile.TemporaryDirectory() as directory:
        durable = DurableExporter(exporter, directory)
        loop = new_loop()
        loop.run_until_complete(export(durable, "delivery-loop"))
        run(export(durable, "other-loop"))
        loop.run_until_complete(export_and_shutdown(durable, "delivery-loop-again"))
        loop.run_until_complete(loop.shutdown_asyncgens())
        loop.close()


def durable_fork(exporter: OTLPExporter) -> None:
    """The disk queue is the parent's: a forked child's exports fail (counted), the parent's go on."""
    with tempfile.TemporaryDirectory() as directory:
        durable = DurableExporter(exporter, directory)
        loop = new_loop()
        loop.run_until_complete(export(durable, "parent-before"))
        pid = os.fork()
        if pid == 0:
            code = 1
            try:
                run(export_and_shutdown(durable, "child"))
                code = 0
            finally:
                sys.stdout.flush()
                os._exit(code)
        _, status = os.waitpid(pid, 0)
        say(f"CHILD {os.waitstatus_to_exitcode(status)}")
        loop.run_until_complete(export_and_shutdown(durable, "parent-after"))
        loop.run_until_complete(loop.shutdown_asyncgens())
        loop.close()


SCENARIOS: dict[str, Callable[[OTLPExporter], None]] = {
    "run_twice": run_twice,
    "threads_in_turn": threads_in_turn,
    "threads_at_once": threads_at_once,
    "loop_closed": loop_closed,
    "loop_in_turns": loop_in_turns,
    "loop_left_open": loop_left_open,
    "shutdown_elsewhere": shutdown_elsewhere,
    "fork": fork,
    "fork_open_loop": fork_open_loop,
    "fork_child_exits": fork_child_exits,
    "fleet_run_twice": run_twice,
    "fleet_fork": fork,
    "durable_run_twice": durable_run_twice,
    "durable_loop_closed": durable_loop_closed,
    "durable_other_loop": durable_other_loop,
    "durable_fork": durable_fork,
}

if __name__ == "__main__":
    main_pid = os.getpid()
    SCENARIOS[SCENARIO](make_exporter())
    if os.getpid() == main_pid:
        say("OK")
