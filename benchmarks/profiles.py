"""Profiles of the targets that ``benchmarks/harness.py`` misses: what holds each one back, reproducibly.

Three studies against rotel (blackhole exporter, free loopback ports), each measurement in a fresh child process;
prints tables, asserts nothing (a program, not a test):

* ``export``: where one export of 512 SDK spans spends the CPU of aiotlp's bridge thread (the thread that exports
  for an application without an event loop). ``--exports`` (50) exports, each a ``force_flush`` with the
  producer idle, under ``cProfile``; CPU ms per export, event-loop iterations per export (each one releases the
  GIL in ``epoll_wait``), and the top functions by own time.
* ``gc``: the harness's ``instrumented_app`` (an asyncio app asking for 20K spans/s, exports on its own loop):
  the loop lag p99 and the garbage collector's pauses by generation, next to the app without an exporter, with
  the spans queued as objects (``encode_at_source=False``), and with ``gc.freeze()`` called after start-up.
* ``gil``: the harness's flat-out thread producer (``batched_pipeline``, exports on the bridge thread): spans
  delivered and dropped, and the CPU of the producer thread and of the bridge thread, at CPython's default
  switch interval (5 ms) and at 1 ms and 0.2 ms (``sys.setswitchinterval``).
* ``waits``: the same producer over each client (h2, grpc.aio, HTTP/protobuf), and where the bridge thread waits
  for the GIL per export: the wall time minus the thread's CPU time of its transports' writes and reads and of its
  zero-timeout ``epoll_wait`` calls (none of them can block: what is left is the wait for the GIL that the
  producer took while the call had released it), with how many of them waited more than 3 ms; its blocking
  ``epoll_wait`` calls that returned events (wake-ups: each ends with such a wait); the export's wall time.
  ``--protocol`` is ignored: every client is measured. Runs only when named.

    .venv/bin/python -m benchmarks.profiles [export] [gc] [gil] [waits] [--seconds 3] [--protocol grpc] [--exports 50]
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import cProfile
import gc
import json
import pstats
import selectors
import sys
import time
from typing import Any

from aiotlp.testing import Rotel

STUDIES = ("export", "gc", "gil", "waits")
DEFAULT_STUDIES = ("export", "gc", "gil")  # waits runs when named


# ------------------------------------------------------------------------------------------- child processes


def _bridge_thread_time() -> float:
    from aiotlp.sdk._bridge import get_bridge

    async def now() -> float:
        return time.thread_time()

    return get_bridge().submit(now()).result()


def child_export(protocol: str, grpc_endpoint: str, http_endpoint: str, exports: int) -> dict[str, Any]:
    iterations = collections.Counter[str]()
    select = selectors.EpollSelector.select

    def counting_select(self: selectors.EpollSelector, timeout: float | None = None) -> Any:
        iterations["blocking" if timeout is None or timeout > 0 else "zero-timeout"] += 1
        return select(self, timeout)

    selectors.EpollSelector.select = counting_select  # type: ignore[method-assign,assignment]  # before the bridge starts

    from opentelemetry.sdk.trace import TracerProvider

    import aiotlp.sdk
    from aiotlp.sdk._bridge import get_bridge

    from .scenarios.batched_pipeline import aiotlp_exporter, request_span

    processor = aiotlp.sdk.BatchSpanProcessor(aiotlp_exporter(protocol, grpc_endpoint, http_endpoint))
    provider = TracerProvider()
    provider.add_span_processor(processor)
    tracer = provider.get_tracer("bench.instrumentation", "0.1.0")
    for i in range(512):  # warm up: connect, first request
        request_span(tracer, i)
    processor.force_flush()
    profile = cProfile.Profile()

    async def switch(on: bool) -> None:
        profile.enable() if on else profile.disable()

    bridge = get_bridge()
    iterations.clear()
    cpu = _bridge_thread_time()
    bridge.submit(switch(True)).result()
    for _ in range(exports):
        for i in range(512):
            request_span(tracer, i)
        processor.force_flush()
    bridge.submit(switch(False)).result()
    cpu = _bridge_thread_time() - cpu
    exported = processor.statistics().exported
    provider.shutdown()
    stats = pstats.Stats(profile)
    rows = sorted(stats.stats.items(), key=lambda item: -item[1][2])  # type: ignore[attr-defined]
    top = []
    for (path, line, name), (_, calls, own, total, _) in rows[:12]:
        where = name if path == "~" else f"{path.rsplit('/', 1)[-1]}:{line}({name})"
        top.append((where, calls / exports, own / exports * 1000, total / exports * 1000))
    return {
        "exported": exported,
        "cpu_ms_per_export": cpu / exports * 1000,
        "iterations": {k: v / exports for k, v in iterations.items()},
        "top": top,
    }


def child_gc(side: str, protocol: str, grpc_endpoint: str, http_endpoint: str, seconds: float, freeze: bool) -> Any:
    from .scenarios import instrumented_app

    pauses: list[tuple[int, float]] = []
    started = [0.0]

    def on_gc(phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            started[0] = time.perf_counter()
        else:
            pauses.append((info["generation"], time.perf_counter() - started[0]))

    import aiotlp.sdk  # noqa: F401  (imported before a freeze, as an application imports its libraries)

    if freeze:
        gc.collect()
        gc.freeze()
    gc.callbacks.append(on_gc)
    result = asyncio.run(instrumented_app.app(side, protocol, grpc_endpoint, http_endpoint, seconds))
    gc.callbacks.remove(on_gc)
    by_generation = {}
    for generation in (0, 1, 2):
        durations = [d * 1000 for g, d in pauses if g == generation]
        by_generation[generation] = (len(durations), max(durations, default=0.0), sum(durations))
    return {"lag_p99_ms": result["lag_p99_ms"], "produced_per_s": result["produced_per_s"], "gc": by_generation}


def child_gil(protocol: str, grpc_endpoint: str, http_endpoint: str, seconds: float, interval: float) -> Any:
    sys.setswitchinterval(interval)
    from opentelemetry.sdk.trace import TracerProvider

    from .scenarios import batched_pipeline

    threads: dict[str, float] = {}
    shutdown = TracerProvider.shutdown
    producer_start = time.thread_time()

    def timed_shutdown(self: TracerProvider) -> None:  # the producer's loop has ended: read both threads' CPU
        threads["producer"] = time.thread_time() - producer_start
        threads["bridge"] = _bridge_thread_time()
        shutdown(self)

    TracerProvider.shutdown = timed_shutdown  # type: ignore[method-assign]
    result = batched_pipeline.produce("aiotlp processor", protocol, grpc_endpoint, http_endpoint, seconds)
    delivered = result["produced"] - result["dropped"]
    return {
        "delivered_per_s": result["delivered_per_s"],
        "dropped_share": result["dropped"] / max(result["produced"], 1),
        "producer_us_per_produced": threads["producer"] / max(result["produced"], 1) * 1e6,
        "bridge_us_per_delivered": threads["bridge"] / max(delivered, 1) * 1e6,
    }


def child_waits(side: str, protocol: str, grpc_endpoint: str, http_endpoint: str, seconds: float) -> Any:
    import threading
    from asyncio import selector_events

    from .scenarios import batched_pipeline

    # kind -> [calls, wall s, wall - CPU s, calls whose wall - CPU exceeded 3 ms]
    waits: dict[str, list[float]] = collections.defaultdict(lambda: [0, 0.0, 0.0, 0])
    producer = threading.get_ident()

    def count(kind: str, wall: float, cpu: float) -> None:
        entry = waits[kind]
        entry[0] += 1
        entry[1] += wall
        entry[2] += wall - cpu
        entry[3] += wall - cpu > 0.003

    def timed(kind: str, function: Any) -> Any:
        def call(*args: Any, **kwargs: Any) -> Any:
            wall, cpu = time.perf_counter(), time.thread_time()
            try:
                return function(*args, **kwargs)
            finally:
                count(kind, time.perf_counter() - wall, time.thread_time() - cpu)

        return call

    transport: Any = selector_events._SelectorSocketTransport
    for name, kind in (("write", "writes"), ("_write_ready", "writes"), ("_read_ready", "reads")):
        setattr(transport, name, timed(kind, getattr(transport, name)))

    def polls(select: Any, zero_only: bool) -> Any:
        def counting(selector: Any, timeout: float | None = None) -> Any:
            if threading.get_ident() == producer:
                return select(selector, timeout)
            zero = timeout is not None and timeout <= 0
            if zero_only and not zero:
                return select(selector, timeout)  # counted by EpollSelector.select, which it calls
            wall, cpu = time.perf_counter(), time.thread_time()
            events = select(selector, timeout)
            if zero or events:
                count(
                    "zero-timeout polls" if zero else "wake-ups", time.perf_counter() - wall, time.thread_time() - cpu
                )
            return events

        return counting

    selectors.EpollSelector.select = polls(selectors.EpollSelector.select, False)  # type: ignore[method-assign]
    try:
        from aiotlp.transport._keepgil import KeepGilSelector
    except ImportError:  # a tree without it
        pass
    else:
        KeepGilSelector.select = polls(KeepGilSelector.select, True)  # type: ignore[method-assign]
    result = batched_pipeline.produce(side, protocol, grpc_endpoint, http_endpoint, seconds)
    exports = max((result["produced"] - result["dropped"]) / 512, 1)
    return {
        "delivered_per_s": result["delivered_per_s"],
        "dropped": result["dropped"],
        "export_ms_p50": result["export_ms_p50"],
        "waits": {
            kind: [n / exports, wall * 1e3 / exports, gil * 1e3 / exports, over / exports]
            for kind, (n, wall, gil, over) in waits.items()
        },
    }


def child_main(argv: list[str]) -> None:
    study, rest = argv[0], argv[1:]
    if study == "export":
        protocol, grpc_endpoint, http_endpoint, exports = rest
        result = child_export(protocol, grpc_endpoint, http_endpoint, int(exports))
    elif study == "gc":
        side, protocol, grpc_endpoint, http_endpoint, seconds, freeze = rest
        result = child_gc(side, protocol, grpc_endpoint, http_endpoint, float(seconds), freeze == "freeze")
    elif study == "waits":
        side, protocol, grpc_endpoint, http_endpoint, seconds = rest
        result = child_waits(side, protocol, grpc_endpoint, http_endpoint, float(seconds))
    else:
        protocol, grpc_endpoint, http_endpoint, seconds, interval = rest
        result = child_gil(protocol, grpc_endpoint, http_endpoint, float(seconds), float(interval))
    sys.stdout.write(json.dumps(result) + "\n")


# ------------------------------------------------------------------------------------------------ the parent


async def run_child(*args: str) -> Any:
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "benchmarks.profiles", "--child", *args, stdout=asyncio.subprocess.PIPE
    )
    out, _ = await process.communicate()
    if process.returncode != 0:
        raise RuntimeError(f"benchmarks.profiles --child {' '.join(args)} exited with {process.returncode}")
    return json.loads(out.decode().strip().splitlines()[-1])


async def study_export(rotel: Rotel, protocol: str, exports: int) -> None:
    r = await run_child("export", protocol, rotel.grpc_endpoint, rotel.http_endpoint, str(exports))
    loops = ", ".join(f"{v:.1f} {k}" for k, v in sorted(r["iterations"].items()))
    print(f"\n## export: one export of 512 SDK spans on the bridge thread, {protocol} ({r['exported']} spans)\n")
    print(f"bridge thread CPU per export: {r['cpu_ms_per_export']:.2f} ms (under cProfile); loop iterations: {loops}\n")
    print("| function | calls/export | own ms/export | cumulative ms/export |\n|---|---|---|---|")
    for where, calls, own, total in r["top"]:
        print(f"| `{where}` | {calls:.1f} | {own:.3f} | {total:.3f} |")


async def study_gc(rotel: Rotel, protocol: str, seconds: float) -> None:
    print(f"\n## gc: instrumented app, 20K spans/s asked, {protocol}, {seconds:g} s\n")
    print(
        "| app | gc.freeze() | spans/s made | loop lag p99 ms | gen 0: n, max ms | gen 1: n, max ms | "
        "gen 2: n, max ms, total ms |\n|---|---|---|---|---|---|---|"
    )
    sides = (("no-op", False), ("aiotlp", False), ("aiotlp, objects", False), ("aiotlp", True), ("official", False))
    for side, freeze in sides:
        args = ("gc", side, protocol, rotel.grpc_endpoint, rotel.http_endpoint, str(seconds))
        r = await run_child(*args, "freeze" if freeze else "no")
        g = {int(k): v for k, v in r["gc"].items()}
        print(
            f"| {side} | {'yes' if freeze else 'no'} | {r['produced_per_s']:,.0f} | {r['lag_p99_ms']:.1f} | "
            f"{g[0][0]}, {g[0][1]:.1f} | {g[1][0]}, {g[1][1]:.1f} | {g[2][0]}, {g[2][1]:.1f}, {g[2][2]:.0f} |"
        )


async def study_gil(rotel: Rotel, protocol: str, seconds: float) -> None:
    print(f"\n## gil: flat-out thread producer, aiotlp processor, exports on the bridge thread, {protocol}\n")
    print(
        "| switch interval | delivered spans/s | dropped | producer CPU µs/span made | bridge CPU µs/span sent |\n"
        "|---|---|---|---|---|"
    )
    for interval in (0.005, 0.001, 0.0002):
        args = ("gil", protocol, rotel.grpc_endpoint, rotel.http_endpoint, str(seconds), str(interval))
        r = await run_child(*args)
        print(
            f"| {interval * 1000:g} ms | {r['delivered_per_s']:,.0f} | {r['dropped_share']:.0%} | "
            f"{r['producer_us_per_produced']:.1f} | {r['bridge_us_per_delivered']:.1f} |"
        )


async def study_waits(rotel: Rotel, seconds: float) -> None:
    print("\n## waits: flat-out thread producer, exports on the bridge thread: the bridge's GIL waits per export\n")
    print(
        "| client | delivered spans/s | dropped | export wall p50 ms | call | per export | wall ms | "
        "GIL wait ms (wall - CPU) | waits > 3 ms |\n|---|---|---|---|---|---|---|---|---|"
    )
    clients = (("h2", "aiotlp processor", "grpc"), ("grpc.aio", "aiotlp processor, grpc.aio", "grpc"))
    for client, side, protocol in (*clients, ("HTTP/protobuf", "aiotlp processor", "http/protobuf")):
        r = await run_child("waits", side, protocol, rotel.grpc_endpoint, rotel.http_endpoint, str(seconds))
        head = f"| {client} | {r['delivered_per_s']:,.0f} | {r['dropped']:,} | {r['export_ms_p50']:.2f} |"
        for kind, (calls, wall, gil, over) in sorted(r["waits"].items()):
            wait, long = ("(it blocks)", "") if kind == "wake-ups" else (f"{gil:.2f}", f"{over:.2f}")
            print(f"{head} {kind} | {calls:.2f} | {wall:.2f} | {wait} | {long} |")
            head = "| | | | |"


async def main(studies: list[str], seconds: float, protocol: str, exports: int) -> None:
    async with Rotel() as rotel:
        for study in studies:
            if study == "export":
                await study_export(rotel, protocol, exports)
            elif study == "gc":
                await study_gc(rotel, protocol, seconds)
            elif study == "waits":
                await study_waits(rotel, seconds)
            else:
                await study_gil(rotel, protocol, seconds)


if __name__ == "__main__":
    if sys.argv[1:2] == ["--child"]:
        child_main(sys.argv[2:])
    else:
        parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
        parser.add_argument(
            "studies",
            nargs="*",
            metavar="study",
            help=f"from {', '.join(STUDIES)} (default: {', '.join(DEFAULT_STUDIES)})",
        )
        parser.add_argument("--seconds", type=float, default=3.0)
        parser.add_argument("--protocol", choices=("grpc", "http/protobuf"), default="grpc")
        parser.add_argument("--exports", type=int, default=50, help="exports profiled by the export study")
        args = parser.parse_args()
        if unknown := set(args.studies) - set(STUDIES):
            parser.error(f"unknown study {', '.join(sorted(unknown))}: choose from {', '.join(STUDIES)}")
        asyncio.run(main(args.studies or list(DEFAULT_STUDIES), args.seconds, args.protocol, args.exports))
