"""Interleaved A/B of the flat-out thread producer: source trees side by side, round by round.

Timings on a shared or virtual machine drift by several percent from one minute to the next, more than a change
to the hot path moves them. This runs the ``batched_pipeline`` scenario's own child (``produce()``: the SDK's
TracerProvider making spans flat out on a plain thread, 8 attributes and 1 event each, default queue) for each
side and each source tree in turn, round after round, against one rotel, so that every tree meets the same drift;
then prints, per tree and side, the medians over the rounds: delivered spans/s, the share of the no-op
producer's rate (medians of the same run), drops, CPU per span and the CPU beyond the no-op, the bridge thread's
CPU per span, and the share of batches sent on the native lane.

    .venv/bin/python benchmarks/interleaved.py                              # this tree, the default sides
    .venv/bin/python benchmarks/interleaved.py --trees ../old,. --rounds 7  # two checkouts (each built)
    AIOTLP_NO_EXTENSIONS=1 .venv/bin/python benchmarks/interleaved.py       # the pure-Python twins

A tree is a checkout whose ``src`` holds aiotlp (its extensions built in place, e.g. by ``pip install -e .``):
each child runs with ``PYTHONPATH=<tree>/src:<tree>``. The no-op side must be among the sides for the shares.
Prints; asserts nothing. (A program, not a test.)
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
from pathlib import Path
from typing import Any

from aiotlp.testing import Rotel

CHILD = """
import json, sys
from benchmarks.scenarios.batched_pipeline import produce
print(json.dumps(produce(sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4], float(sys.argv[5]))))
"""

DEFAULT_SIDES = (
    "grpc:no-op",
    "grpc:aiotlp processor",
    "http/protobuf:aiotlp processor",
    "grpc:aiotlp processor, grpc.aio",
)


def run_child(tree: Path, protocol: str, side: str, rotel: Rotel, seconds: float) -> dict[str, Any] | None:
    env = dict(os.environ, PYTHONPATH=f"{tree / 'src'}{os.pathsep}{tree}")
    argv = [sys.executable, "-c", CHILD, side, protocol, rotel.grpc_endpoint, rotel.http_endpoint, str(seconds)]
    done = subprocess.run(argv, env=env, capture_output=True, text=True, cwd=tree, check=False)
    if done.returncode:
        print(f"{tree} {protocol} {side}: the child failed\n{done.stderr[-1500:]}", file=sys.stderr)
        return None
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def report(results: dict[tuple[str, str, str], list[dict[str, Any]]], trees: list[Path]) -> None:
    def median(runs: list[dict[str, Any]], key: str) -> float:
        values = [float(run[key]) for run in runs if key in run]
        return statistics.median(values) if values else float("nan")

    print()
    columns = ("tree", "side", "delivered/s", "share of no-op", "dropped", "CPU µs/span", "beyond no-op")
    print("| " + " | ".join((*columns, "bridge µs/span", "lane")) + " |")
    print("|---|---|---|---|---|---|---|---|---|")
    for tree in trees:
        noop = results.get((str(tree), "grpc", "no-op")) or results.get((str(tree), "http/protobuf", "no-op"))
        for (where, protocol, side), runs in results.items():
            if where != str(tree):
                continue
            rate, cpu = median(runs, "delivered_per_s"), median(runs, "cpu_us_per_span")
            share = rate / median(noop, "delivered_per_s") * 100 if noop else float("nan")
            beyond = cpu - median(noop, "cpu_us_per_span") if noop else float("nan")
            print(
                f"| {tree.name} | {protocol} {side} | {rate:,.0f} | {share:.1f}% | {median(runs, 'dropped'):,.0f} | "
                f"{cpu:.2f} | {beyond:+.2f} | {median(runs, 'bridge_cpu_us_per_span'):.2f} | "
                f"{median(runs, 'lane_share'):.0f}% |"
            )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trees", default=".", help="comma-separated source trees (default: this one)")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--seconds", type=float, default=4.0, help="each child's producing time")
    parser.add_argument(
        "--sides", nargs="+", default=list(DEFAULT_SIDES), help="protocol:side ... (side names hold commas)"
    )
    args = parser.parse_args()
    trees = [Path(tree).resolve() for tree in args.trees.split(",")]
    sides = [tuple(side.split(":", 1)) for side in args.sides]
    asyncio.run(run(trees, sides, args.rounds, args.seconds))


async def run(trees: list[Path], sides: list[tuple[str, ...]], rounds: int, seconds: float) -> None:
    results: dict[tuple[str, str, str], list[dict[str, Any]]] = {}
    async with Rotel() as rotel:
        for round_ in range(1, rounds + 1):
            for protocol, side in sides:
                for tree in trees:
                    result = await asyncio.to_thread(run_child, tree, protocol, side, rotel, seconds)
                    if result is None:
                        continue
                    results.setdefault((str(tree), protocol, side), []).append(result)
                    print(
                        f"round {round_} {tree.name:12} {protocol:13} {side:32} "
                        f"delivered/s={result['delivered_per_s']:8,.0f} dropped={result['dropped']:6} "
                        f"cpu/span={result['cpu_us_per_span']:.2f}",
                        flush=True,
                    )
    report(results, trees)


if __name__ == "__main__":
    main()
