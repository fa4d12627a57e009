"""The aiotlp benchmark harness: aiotlp and the official OpenTelemetry Python exporter side by side, one run.

Starts rotel (blackhole exporter) on free loopback ports, runs each scenario (``benchmarks/scenarios/``)
``--reps`` times, and reports per metric and implementation the median with min and max, and the ratio to
the official exporter computed pair by pair (aiotlp / official in each repetition, then the median of those
ratios). Prints the table and writes it to ``<out>/latest.md`` and ``<out>/latest.json``. Timings are never
asserted anywhere: benchmarks are programs, not tests.

    .venv/bin/python -m benchmarks.harness [--quick] [--scenarios a,b] [--reps 5] [--no-uvloop] [--out DIR]

Every scenario runs on the default asyncio loop, then again on uvloop when it is installed (``--no-uvloop``
skips that).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aiotlp.testing import Rotel

from .scenarios import NAMES, Context, Sample, load
from .scenarios._common import OFFICIAL

DEFAULT_OUT = Path(__file__).parent / "results"


@dataclass
class Row:
    """One metric of one implementation, over all repetitions."""

    loop: str
    scenario: str
    metric: str
    unit: str
    implementation: str
    higher_is_better: bool
    values: list[float] = field(default_factory=list)
    ratios: list[float] = field(default_factory=list)

    @property
    def median(self) -> float:
        return statistics.median(self.values)

    @property
    def ratio(self) -> float | None:
        return statistics.median(self.ratios) if self.ratios else None

    def as_dict(self) -> dict[str, Any]:
        return {
            "loop": self.loop,
            "scenario": self.scenario,
            "metric": self.metric,
            "unit": self.unit,
            "implementation": self.implementation,
            "higher_is_better": self.higher_is_better,
            "median": self.median,
            "min": min(self.values),
            "max": max(self.values),
            "ratio_vs_official": self.ratio,
            "values": self.values,
        }


def collect(rows: dict[tuple[str, ...], Row], loop: str, scenario: str, samples: list[Sample]) -> None:
    """Add one repetition's samples; the ratio of each implementation to ``official`` in this repetition."""
    for sample in samples:
        reference = sample.values.get(OFFICIAL)
        for implementation, value in sample.values.items():
            key = (loop, scenario, sample.metric, implementation)
            row = rows.setdefault(
                key, Row(loop, scenario, sample.metric, sample.unit, implementation, sample.higher_is_better)
            )
            row.values.append(value)
            if implementation != OFFICIAL and reference:
                row.ratios.append(value / reference)


def fmt(value: float | None) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    if abs(value) >= 1000:
        return f"{value:,.0f}"
    if abs(value) >= 10:
        return f"{value:.1f}"
    return f"{value:.3g}"


HEADER = ("loop", "scenario", "metric", "implementation", "median", "min", "max", "vs official")


def table_rows(rows: list[Row]) -> Iterator[tuple[str, ...]]:
    for row in rows:
        ratio = "" if row.ratio is None else f"{row.ratio:.2f}x {'↑' if row.higher_is_better else '↓'}"
        yield (
            row.loop,
            row.scenario,
            f"{row.metric} [{row.unit}]",
            row.implementation,
            fmt(row.median),
            fmt(min(row.values)),
            fmt(max(row.values)),
            ratio,
        )


def markdown(rows: list[Row], meta: dict[str, Any]) -> str:
    lines = [
        "# aiotlp benchmarks",
        "",
        f"{meta['when']}, Python {meta['python']}, {meta['cpus']} CPUs, {meta['reps']} repetition(s)"
        f"{' (--quick)' if meta['quick'] else ''}. Median (min, max) over repetitions; `vs official` is the "
        "median of the per-repetition ratios aiotlp / official (↑: higher is better, ↓: lower is better).",
        "",
        "| " + " | ".join(HEADER) + " |",
        "|" + "---|" * len(HEADER),
    ]
    lines += ["| " + " | ".join(cells) + " |" for cells in table_rows(rows)]
    if meta["failed"]:
        lines += ["", "Failed scenarios:", ""] + [f"- {name}: {error}" for name, error in meta["failed"].items()]
    return "\n".join(lines) + "\n"


def print_table(rows: list[Row], meta: dict[str, Any]) -> None:
    if sys.stdout.isatty():
        from rich.console import Console
        from rich.table import Table

        table = Table(title=f"aiotlp vs official, median of {meta['reps']} (min, max)")
        for i, name in enumerate(HEADER):
            table.add_column(name, justify="right" if i >= 4 else "left")
        for cells in table_rows(rows):
            table.add_row(*cells)
        Console().print(table)
        for name, error in meta["failed"].items():
            Console().print(f"[red]{name} failed:[/red] {error}")
    else:
        print(markdown(rows, meta))


class Progress:
    """A rich progress bar on a terminal, plain lines otherwise."""

    def __init__(self, total: int) -> None:
        self.total = total
        self.done = 0
        self._bar: Any = None
        self._task: Any = None

    @contextmanager
    def running(self) -> Iterator[Progress]:
        if sys.stderr.isatty():
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

            with Progress(
                TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn()
            ) as bar:
                self._bar, self._task = bar, bar.add_task("starting", total=self.total)
                yield self
            self._bar = None
        else:
            yield self

    def step(self, label: str) -> None:
        if self._bar is not None:
            self._bar.update(self._task, description=label)
        else:
            print(f"[{self.done + 1}/{self.total}] {label}", file=sys.stderr, flush=True)

    def advance(self) -> None:
        self.done += 1
        if self._bar is not None:
            self._bar.advance(self._task)


async def run_loop(
    loop_name: str, names: list[str], args: argparse.Namespace, rows: dict[tuple[str, ...], Row], progress: Progress
) -> dict[str, str]:
    failed: dict[str, str] = {}
    async with Rotel() as rotel:  # blackhole: rotel drops everything it receives
        ctx = Context(rotel.grpc_endpoint, rotel.http_endpoint, loop=loop_name, quick=args.quick)
        for name in names:
            run = load(name)
            for rep in range(args.reps):
                progress.step(f"{loop_name}: {name} {rep + 1}/{args.reps}")
                if f"{loop_name}/{name}" not in failed:
                    try:
                        collect(rows, loop_name, name, await run(ctx))
                    except Exception as exc:  # a broken scenario is reported, the others still run
                        failed[f"{loop_name}/{name}"] = f"{type(exc).__name__}: {exc}"
                progress.advance()
    return failed


def loop_factories(use_uvloop: bool) -> dict[str, Callable[[], asyncio.AbstractEventLoop]]:
    factories: dict[str, Callable[[], asyncio.AbstractEventLoop]] = {"asyncio": asyncio.new_event_loop}
    if use_uvloop:
        try:
            import uvloop
        except ImportError:
            print("uvloop is not installed: running on asyncio only", file=sys.stderr)
        else:
            factories["uvloop"] = uvloop.new_event_loop
    return factories


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.harness", description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="shrink every scenario to about a second")
    parser.add_argument("--scenarios", default=",".join(NAMES), help=f"comma-separated, from: {', '.join(NAMES)}")
    parser.add_argument("--reps", type=int, default=5)
    parser.add_argument("--no-uvloop", action="store_true", help="run on asyncio only, not also on uvloop")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    args = parser.parse_args(argv)
    names = [name.strip() for name in args.scenarios.split(",") if name.strip()]
    for name in names:
        if name not in NAMES:
            parser.error(f"unknown scenario {name!r}; choose from {', '.join(NAMES)}")
    if args.reps < 1:
        parser.error("--reps must be >= 1")
    os.environ["BENCH_QUICK"] = "1" if args.quick else ""  # child processes of the scenarios see it too

    factories = loop_factories(not args.no_uvloop)
    rows: dict[tuple[str, ...], Row] = {}
    failed: dict[str, str] = {}
    progress = Progress(len(factories) * len(names) * args.reps)
    with progress.running():
        for loop_name, factory in factories.items():
            with asyncio.Runner(loop_factory=factory) as runner:
                failed |= runner.run(run_loop(loop_name, names, args, rows, progress))

    meta = {
        "when": time.strftime("%Y-%m-%d %H:%M:%S"),
        "python": platform.python_version(),
        "cpus": os.cpu_count(),
        "reps": args.reps,
        "quick": args.quick,
        "loops": list(factories),
        "scenarios": names,
        "failed": failed,
    }
    ordered = list(rows.values())
    print_table(ordered, meta)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "latest.md").write_text(markdown(ordered, meta))
    scenarios: dict[str, list[dict[str, Any]]] = {name: [] for name in names}
    for row in ordered:
        scenarios[row.scenario].append(row.as_dict())
    (args.out / "latest.json").write_text(json.dumps({"meta": meta, "scenarios": scenarios}, indent=2) + "\n")
    print(f"wrote {args.out / 'latest.md'} and {args.out / 'latest.json'}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
