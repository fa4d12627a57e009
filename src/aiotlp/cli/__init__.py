"""The ``aiotlp`` command (also ``python -m aiotlp``): demo, receive, send, bench, check and queue.

Errors are one clear line on stderr (``aiotlp: error: ...``) and exit code 1, usage errors exit code 2;
``--debug`` shows tracebacks and debug logs instead. Output uses rich when it is installed (``aiotlp[cli]``)
and plain text otherwise or with ``--plain``; every command works either way.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from .._exceptions import AiotlpError
from .._version import __version__
from ._ui import error, make_ui

__all__ = ["main"]

_PROTOCOLS = ("grpc", "http/protobuf", "http/json")
_SIGNALS = ("traces", "metrics", "logs")


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number of seconds, got {text!r}") from None
    if not value > 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"expected a positive number of seconds, got {text!r}")
    return value


def _signals(text: str) -> list[str]:
    names = [part.strip() for part in text.split(",") if part.strip()]
    bad = [name for name in names if name not in _SIGNALS]
    if bad or not names:
        raise argparse.ArgumentTypeError(f"expected a comma-separated list of {', '.join(_SIGNALS)}, got {text!r}")
    return names


def _global_options(parser: argparse.ArgumentParser, default: Any) -> None:
    parser.add_argument("--debug", action="store_true", default=default, help="show tracebacks and debug logs")
    parser.add_argument(
        "--plain", action="store_true", default=default, help="plain text output, even when rich is installed"
    )


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="aiotlp",
        description="asyncio-native OpenTelemetry (OTLP) export: try it, receive, replay, benchmark, diagnose.",
        epilog="Run `aiotlp COMMAND --help` for a command's options.",
    )
    parser.add_argument("--version", action="version", version=f"aiotlp {__version__}")
    _global_options(parser, False)
    # the same options after the command name (`aiotlp demo --plain`); there they only override when given
    common = argparse.ArgumentParser(add_help=False)
    _global_options(common, argparse.SUPPRESS)
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    demo = commands.add_parser(
        "demo",
        parents=[common],
        help="export a realistic asyncio workload (traces, metrics, logs) and show what arrived",
        description=(
            "Runs a small asyncio HTTP-like service (nested spans, logs correlated with traces, a counter and a "
            "histogram) and exports it with aiotlp to OTEL_EXPORTER_OTLP_ENDPOINT, or, when none is set, to an "
            "OTLP receiver embedded in this process. Shows live progress, then a summary (sent, accepted, "
            "dropped, rate) and the tree of one trace as the receiver got it."
        ),
    )
    demo.add_argument("--requests", type=int, default=300, help="simulated requests to serve (default 300)")
    demo.add_argument("--concurrency", type=int, default=20, help="requests served at once (default 20)")
    demo.add_argument(
        "--duration", type=float, default=4.0, help="seconds over which requests arrive (default 4; 0: at once)"
    )
    demo.add_argument(
        "--protocol",
        choices=_PROTOCOLS,
        help="OTLP protocol (default: OTEL_EXPORTER_OTLP_PROTOCOL, else http/protobuf)",
    )
    demo.add_argument(
        "--seed", type=int, help="seed of the simulated traffic and its trace ids (default: random on every run)"
    )

    receive = commands.add_parser(
        "receive",
        parents=[common],
        help="run a local OTLP receiver and print what arrives",
        description=(
            "A local OTLP receiver for development: gRPC and HTTP on 127.0.0.1, printing arriving telemetry as "
            "trace trees with durations, log lines with severity colours and metric tables. Every request is "
            "accepted. Stop it with Ctrl-C (or SIGTERM)."
        ),
    )
    receive.add_argument("--grpc-port", type=int, default=4317, help="OTLP/gRPC port (default 4317; 0: any free port)")
    receive.add_argument("--http-port", type=int, default=4318, help="OTLP/HTTP port (default 4318; 0: any free port)")
    receive.add_argument(
        "--jsonl", type=Path, metavar="FILE", help="also append every request to FILE as one OTLP/JSON line"
    )
    receive.add_argument(
        "--max-items", type=int, default=20, help="traces, log lines or metric rows printed per request (default 20)"
    )

    send = commands.add_parser(
        "send",
        parents=[common],
        help="send recorded OTLP/JSON lines or protobuf files to a collector",
        description=(
            "Sends OTLP requests from files to a collector with the exporter's retries: OTLP/JSON lines (what "
            "`aiotlp receive --jsonl` writes, one Export*ServiceRequest per line) or binary protobuf files (one "
            "request each; the signal from --signal or the file name). Every file is validated before anything "
            "is sent. The endpoint and the rest come from the OTEL_EXPORTER_OTLP_* variables unless given here."
        ),
    )
    send.add_argument("files", nargs="+", type=Path, metavar="FILE", help="OTLP/JSON lines or protobuf files")
    send.add_argument("--endpoint", help="base endpoint (default: OTEL_EXPORTER_OTLP_ENDPOINT, else localhost)")
    send.add_argument("--protocol", choices=_PROTOCOLS, help="OTLP protocol (default: OTEL_EXPORTER_OTLP_PROTOCOL)")
    send.add_argument("--timeout", type=_positive_float, help="seconds per request, retries included (default 10)")
    send.add_argument("--signal", choices=_SIGNALS, help="the signal of protobuf files whose name does not say it")

    bench = commands.add_parser(
        "bench",
        parents=[common],
        help="run the benchmark harness (in a source checkout)",
        description=(
            "Runs `python -m benchmarks.harness` of the aiotlp source checkout in the current directory (or a "
            "parent): every scenario for aiotlp and the official exporter side by side against the rotel "
            "collector; prints the table and writes benchmarks/results/latest.md."
        ),
    )
    bench.add_argument("--quick", action="store_true", help="shrink every scenario to about a second")
    bench.add_argument("--scenarios", help="comma-separated scenario names (default: all)")
    bench.add_argument("--reps", type=int, help="repetitions per scenario (default 5)")
    bench.add_argument("--no-uvloop", action="store_true", help="run on asyncio only (default: also on uvloop)")
    bench.add_argument("--out", type=Path, help="directory for latest.md and latest.json")

    check = commands.add_parser(
        "check",
        parents=[common],
        help="show the exporter configuration from the environment and test each endpoint",
        description=(
            "Reads the OTEL_EXPORTER_OTLP_*, AIOTLP_EXPORTER_OTLP_*ENDPOINTS, OTEL_BSP_*, OTEL_BLRP_*, "
            "OTEL_METRIC_* and AIOTLP_QUEUE_DIR variables as aiotlp's exporters do, prints the effective "
            "configuration per signal with where each value came from (an argument, a variable, the default; "
            "header values and URL credentials redacted) and the disk queue directory's state, then sends one "
            "small test export to every endpoint on its own (each collector of a fleet separately) and explains "
            "any failure. Exit code 1 when the configuration is invalid, an export fails or the queue directory "
            "is unusable."
        ),
    )
    check.add_argument("--no-export", action="store_true", help="only print the configuration")
    check.add_argument(
        "--signals", type=_signals, default=list(_SIGNALS), help="signals to test (default traces,metrics,logs)"
    )
    check.add_argument("--timeout", type=_positive_float, help="seconds per test export (default: the configured)")

    queue = commands.add_parser(
        "queue",
        parents=[common],
        help="show what waits in a disk queue directory (read-only)",
        description=(
            "Inspects the crash-safe disk queue in DIR (default: AIOTLP_QUEUE_DIR) without changing anything: per "
            "signal (DIR/traces, DIR/metrics, DIR/logs) the records, items and bytes waiting, the oldest record's "
            "age, damaged records and quarantined *.corrupt segments, and whether a live process holds the lock "
            "(its pid). Safe beside the running service and on what a crashed one left."
        ),
    )
    queue.add_argument("directory", nargs="?", type=Path, metavar="DIR", help="the queue directory")
    return parser


def _bench_args(args: argparse.Namespace) -> list[str]:
    out: list[str] = []
    if args.quick:
        out.append("--quick")
    if args.scenarios:
        out += ["--scenarios", args.scenarios]
    if args.reps is not None:
        out += ["--reps", str(args.reps)]
    if args.no_uvloop:
        out.append("--no-uvloop")
    if args.out is not None:
        out += ["--out", str(args.out)]
    return out


def _run(args: argparse.Namespace) -> int:
    ui = make_ui(plain=args.plain)
    coroutine: Any
    if args.command == "demo":
        from ._demo import run_demo

        coroutine = run_demo(
            ui,
            requests=args.requests,
            concurrency=args.concurrency,
            duration=args.duration,
            protocol=args.protocol,
            seed=args.seed,
        )
    elif args.command == "receive":
        from ._receive import run_receive

        coroutine = run_receive(
            ui, grpc_port=args.grpc_port, http_port=args.http_port, jsonl=args.jsonl, max_items=args.max_items
        )
    elif args.command == "send":
        from ..model import Signal
        from ._send import run_send

        coroutine = run_send(
            ui,
            args.files,
            endpoint=args.endpoint,
            protocol=args.protocol,
            timeout=args.timeout,
            signal=None if args.signal is None else Signal(args.signal),
        )
    elif args.command == "check":
        from ..model import Signal
        from ._check import run_check

        coroutine = run_check(
            ui, export=not args.no_export, signals=[Signal(s) for s in args.signals], timeout=args.timeout
        )
    elif args.command == "queue":
        from ._queue import run_queue

        return run_queue(ui, args.directory)
    else:
        from ._bench import run_bench

        return run_bench(_bench_args(args))
    result: int = asyncio.run(coroutine)
    return result


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command with ``argv`` (default: ``sys.argv[1:]``, and then it also configures logging)."""
    args = _parser().parse_args(argv)
    if argv is None:  # run as the program (not called from Python code): own the process's logging
        logging.basicConfig(
            level=logging.DEBUG if args.debug else logging.ERROR, format="%(levelname)s %(name)s: %(message)s"
        )
        if not args.debug:
            # a client speaking the wrong protocol to `receive` makes aiohttp log a traceback: not ours to show
            logging.getLogger("aiohttp.server").setLevel(logging.CRITICAL)
    try:
        return _run(args)
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:  # `aiotlp ... | head`: the reader left; say nothing more
        with contextlib.suppress(OSError):
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 1
    except (AiotlpError, OSError) as exc:
        if args.debug:
            raise
        error(str(exc))
        return 1
    except Exception as exc:  # a bug: still one line, with the way to see more
        if args.debug:
            raise
        error(f"unexpected {type(exc).__name__}: {exc} (run with --debug for the traceback)")
        return 1
