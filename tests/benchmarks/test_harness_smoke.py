"""The benchmark harness runs end to end (--quick) and writes its results; no timing is asserted."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import pytest

from aiotlp.testing import find_rotel

ROOT = Path(__file__).resolve().parents[2]
SCENARIOS = ["encode", "wrapper_stack", "async_loop", "instrumented_app"]


@pytest.mark.integration
def test_quick_run_writes_markdown_and_json(tmp_path: Path) -> None:
    find_rotel()  # a clear error when the collector binary is missing
    command = [sys.executable, "-m", "benchmarks.harness", "--quick", "--reps", "1", "--no-uvloop"]
    command += ["--scenarios", ",".join(SCENARIOS), "--out", str(tmp_path)]
    completed = subprocess.run(
        command,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert completed.returncode == 0, completed.stdout + completed.stderr
    assert (tmp_path / "latest.md").is_file()
    report = json.loads((tmp_path / "latest.json").read_text())
    assert sorted(report["scenarios"]) == sorted(SCENARIOS)
    for name, rows in report["scenarios"].items():
        assert rows, f"{name} produced no rows"
        for row in rows:
            assert isinstance(row["median"], (int, float)) and math.isfinite(row["median"]), row
