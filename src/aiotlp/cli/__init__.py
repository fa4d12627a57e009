"""The ``aiotlp`` command. Errors are one clear line and a non-zero exit code; ``--debug`` shows tracebacks."""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
from collections.abc import Sequence

from .._exceptions import AiotlpError

__all__ = ["main"]


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="aiotlp", description="asyncio-native OpenTelemetry (OTLP) export")
    parser.add_argument("--debug", action="store_true", help="show tracebacks and debug logs")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    demo = commands.add_parser(
        "demo",
        help="export a realistic asyncio workload (traces, metrics, logs) and show what arrived",
        description=(
            "Runs a small asyncio service (nested spans, correlated logs, counters and histograms) and exports "
            "it with aiotlp to OTEL_EXPORTER_OTLP_ENDPOINT, or, when none is set, to an OTLP receiver embedded "
            "in this process. Ends with a summary and the tree of one trace as the receiver got it."
        ),
    )
    demo.add_argument("--requests", type=int, default=300, help="simulated requests to serve (default 300)")
    demo.add_argument("--concurrency", type=int, default=20, help="requests served at once (default 20)")
    demo.add_argument(
        "--protocol",
        choices=("grpc", "http/protobuf", "http/json"),
        default=None,
        help="OTLP protocol (default: OTEL_EXPORTER_OTLP_PROTOCOL, else http/protobuf)",
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.debug else logging.WARNING, format="%(levelname)s %(name)s: %(message)s"
    )
    try:
        if args.command == "demo":
            from ._demo import run_demo

            return asyncio.run(run_demo(requests=args.requests, concurrency=args.concurrency, protocol=args.protocol))
    except (AiotlpError, OSError) as exc:
        if args.debug:
            raise
        print(f"aiotlp: error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    return 2
