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
SCENARIOS = ["encode", "wrapper_stack", "async_loop", "instrumented_app", "span_cost"]


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
    # every export of every scenario went through (a fake transport out of step with the interface logs this)
    assert "did not fully succeed" not in completed.stdout + completed.stderr, completed.stderr
    assert (tmp_path / "latest.md").is_file()
    report = json.loads((tmp_path / "latest.json").read_text())
    assert sorted(report["scenarios"]) == sorted(SCENARIOS)
    for name, rows in report["scenarios"].items():
        assert rows, f"{name} produced no rows"
        for row in rows:
            assert isinstance(row["median"], (int, float)) and math.isfinite(row["median"]), row


@pytest.mark.integration
def test_profiles_print_their_three_studies() -> None:
    """benchmarks/profiles.py runs end to end, shortened: every study prints its table with numbers in it."""
    find_rotel()
    command = [sys.executable, "-m", "benchmarks.profiles", "--seconds", "0.3", "--exports", "3"]
    completed = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=180)
    assert completed.returncode == 0, completed.stdout + completed.stderr
    out = completed.stdout
    sections = out.split("\n## ")[1:]
    assert [section.split(":", 1)[0] for section in sections] == ["export", "gc", "gil"], out
    export, gc_study, gil = sections
    # spans are encoded at the source (in on_end, on the producer's thread): the bridge's top functions vary
    assert "(2048 spans)" in export and "bridge thread CPU per export" in export, export
    assert len([line for line in export.splitlines() if line.startswith("| `")]) >= 5, export
    assert [line.split(" | ")[0] for line in gc_study.splitlines() if line.startswith("| ") and "|---" not in line][
        1:
    ] == ["| no-op", "| aiotlp", "| aiotlp, objects", "| aiotlp", "| official"], gc_study
    rates = [line.split(" | ")[1] for line in gil.splitlines() if line.startswith("| ") and " ms |" in line]
    assert len(rates) == 3 and all(rate.replace(",", "").isdigit() and int(rate.replace(",", "")) > 0 for rate in rates)


@pytest.mark.parametrize("side", ["encode only (no queue, no export)", "aiotlp processor, no network"])
def test_the_thread_producers_bounds_run_and_count_every_span(side: str) -> None:
    """batched_pipeline's rows that bound aiotlp's share of the no-op rate (the encoding in on_end alone, the whole
    pipeline without the network) run as the other sides do, and account for every span made. Neither opens a
    connection: the endpoint is only named."""
    program = (
        "import json, sys\n"
        "from benchmarks.scenarios.batched_pipeline import produce\n"
        "print(json.dumps(produce(sys.argv[1], 'grpc', 'http://127.0.0.1:9', 'http://127.0.0.1:9', 0.3)))\n"
    )
    completed = subprocess.run(
        [sys.executable, "-c", program, side], cwd=ROOT, capture_output=True, text=True, timeout=120
    )
    assert completed.returncode == 0, completed.stderr
    result = json.loads(completed.stdout.strip().splitlines()[-1])
    assert result["produced"] > 0
    delivered = result["produced"] - result["dropped"]
    if side.startswith("encode only"):
        assert delivered == result["produced"]  # it keeps nothing, so it drops nothing: every span counts
    else:
        assert 0 < delivered <= result["produced"]
        assert result["bridge_cpu_us_per_span"] > 0  # the bridge thread did the work


@pytest.mark.integration
def test_interleaved_prints_every_side_of_every_round() -> None:
    """benchmarks/interleaved.py runs its children against rotel and prints the table: the no-op at 100%, the
    processor's share, drops and the native lane's share in numbers."""
    find_rotel()
    sides = ["grpc:no-op", "http/protobuf:aiotlp processor"]
    command = [sys.executable, "benchmarks/interleaved.py", "--rounds", "2", "--seconds", "0.3", "--sides", *sides]
    completed = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=180)
    assert completed.returncode == 0, completed.stdout + completed.stderr
    out = completed.stdout
    assert len([line for line in out.splitlines() if line.startswith("round ")]) == 4, out
    rows = [line.split(" | ") for line in out.splitlines() if line.startswith(f"| {ROOT.name} |")]
    assert [row[1] for row in rows] == ["grpc no-op", "http/protobuf aiotlp processor"], out
    noop, processor = rows
    assert noop[3] == "100.0%" and float(processor[3].rstrip("%")) > 0, out
    assert processor[4] == "0" or processor[4].replace(",", "").isdigit(), out
