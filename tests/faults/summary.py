"""The fault suite's summary table: one row per scenario with its figures.

    .venv/bin/python -m tests.faults.summary            # the quick scenarios (the default test run's)
    .venv/bin/python -m tests.faults.summary --slow     # the quick and the long ones
    .venv/bin/python -m tests.faults.summary --write docs/faults.md

It runs ``pytest tests/faults tests/user_paths`` in a child process, collects the row each scenario filled in,
prints the table (Markdown) and, with ``--write``, stores it in the docs. Columns:

* **load held**: items offered to the exporter or the batch processor during the scenario;
* **faults survived**: faults injected (a hung collector's attempts, dropped or reset connections, hostile
  answers, failed handshakes) after which the pipeline still worked and accounted for everything;
* **bad inputs**: hostile or malformed inputs tried (telemetry, configuration, responses, certificates);
* **lost**: items that disappeared *without being counted*; the pass criterion of every row is 0;
* **counted**: the items that did not reach the collector, by the reason they were counted under.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from dataclasses import dataclass, fields
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


@dataclass
class Figure:
    """One scenario's row. Tests fill in the numbers; the suite's conftest fills in ``outcome``."""

    scenario: str
    family: str
    criterion: str = ""
    load: int = 0
    faults: int = 0
    bad_inputs: int = 0
    lost: int = 0
    counted: str = ""
    measured: str = ""
    outcome: str = ""

    def count(self, reasons: dict[str, int]) -> None:
        """Describe counted losses, e.g. ``{"timeout": 512, "queue_full": 76}``, leaving out zeros."""
        self.counted = ", ".join(f"{reason} {n}" for reason, n in sorted(reasons.items()) if n)


_HEADERS = ("family", "scenario", "criterion", "load held", "faults survived", "bad inputs", "lost", "counted",
            "measured", "result")  # fmt: skip


def _cell(value: object) -> str:
    return str(value).replace("|", "\\|").replace("\n", " ")


def render(rows: list[Figure]) -> str:
    """The rows as a Markdown table, ordered by family then scenario, with a totals line."""
    rows = sorted(rows, key=lambda row: (row.family, row.scenario))
    lines = ["| " + " | ".join(_HEADERS) + " |", "|" + "---|" * len(_HEADERS)]
    for row in rows:
        cells = (row.family, row.scenario, row.criterion, row.load, row.faults, row.bad_inputs, row.lost,
                 row.counted, row.measured, row.outcome)  # fmt: skip
        lines.append("| " + " | ".join(_cell(cell) for cell in cells) + " |")
    passed = sum(row.outcome == "passed" for row in rows)
    skipped = sum(row.outcome.startswith("skipped") for row in rows)
    known = sum(row.outcome.startswith("xfail") for row in rows)
    failed = len(rows) - passed - skipped - known
    outcomes = f"{passed} passed, {skipped} skipped, {known} known bugs, {failed} failed"
    lines.append(
        f"| **total** | {len(rows)} scenarios | {outcomes} | "
        f"{sum(r.load for r in rows)} | {sum(r.faults for r in rows)} | {sum(r.bad_inputs for r in rows)} | "
        f"{sum(r.lost for r in rows)} | | | |"
    )
    return "\n".join(lines)


_DOC_HEAD = """# Fault suite

`tests/faults/` injects real faults on loopback and checks that aiotlp keeps working, loses nothing without
counting it, and lets nothing harmful through. `tests/user_paths/` (the rows `user path: ...`) runs the ways
users configure and run aiotlp (the SDK drop-in beside the official processor, every event-loop lifecycle, fork,
the disk queue by argument and variable, kill -9) and checks delivery and the ledger the same way. Every row
has a numeric pass criterion and exact accounting
(`ExportResult.items == accepted + rejected + failed + dropped`, and the batch processor's
`produced == exported + rejected + failed + dropped + queued + in_flight`).

Regenerate this page with:

```
.venv/bin/python -m tests.faults.summary --slow --write docs/faults.md
```

The quick scenarios run in the default test command (`./scripts/test`); the long ones with `-m slow`.
Scenarios that need root (network namespaces, nftables, tc) skip with their reason when the machine cannot
host them; `scripts/system-deps` installs nftables when run as root. *Lost* counts items that disappeared
without being counted: the criterion of every row is 0. *Counted* lists what did not reach the collector,
by reason.

"""


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.faults.summary", description=__doc__.splitlines()[0])
    parser.add_argument("--slow", action="store_true", help="include the long scenarios (marked slow)")
    parser.add_argument("--write", metavar="PATH", help="also write the table, as Markdown, to PATH")
    parser.add_argument("pytest_args", nargs="*", help="extra arguments for pytest (after --)")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        report = Path(tmp) / "faults.json"
        command = [sys.executable, "-m", "pytest", "tests/faults", "tests/user_paths", "-q", "-p", "no:randomly"]
        if args.slow:
            command += ["-m", "slow or not slow"]
        command += args.pytest_args
        env = {**os.environ, "AIOTLP_FAULTS_REPORT": str(report)}
        done = subprocess.run(command, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        if not report.exists():
            sys.stdout.write(done.stdout)
            print("no scenario reported any figures", file=sys.stderr)
            return done.returncode or 1
        names = {f.name for f in fields(Figure)}
        rows = [Figure(**{k: v for k, v in row.items() if k in names}) for row in json.loads(report.read_text())]
    tail = [line for line in done.stdout.splitlines() if line.strip()][-1:]
    table = render(rows)
    print(table)
    print("\n" + "\n".join(tail))
    if args.write:
        mode = "quick and slow scenarios" if args.slow else "quick scenarios"
        Path(args.write).write_text(f"{_DOC_HEAD}Last run ({mode}): {' '.join(tail)}\n\n{table}\n")
    return done.returncode


if __name__ == "__main__":
    raise SystemExit(main())
