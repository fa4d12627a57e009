"""`aiotlp queue [DIR]`: what waits in a disk queue, read-only, beside a live process or after a crashed one."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from tests.cli._run import ROOT, assert_one_line_error, clean_env

from aiotlp.durable import DurableQueue
from aiotlp.model import Signal

HOLDER = """
import sys
from aiotlp.durable import DurableQueue
from aiotlp.model import Signal
queue = DurableQueue(sys.argv[1])
queue.append(Signal.LOGS, 0, 4, bytes(64))
queue.sync()
print("ready", flush=True)
sys.stdin.read()  # hold the queue until the test closes our stdin
queue.close()
"""


def aiotlp(*args: str, env: dict[str, str] | None = None) -> tuple[int, str, str]:
    done = subprocess.run(
        [sys.executable, "-m", "aiotlp", "--plain", *args],
        capture_output=True,
        env=clean_env(env),
        cwd=ROOT,
        timeout=60,
        check=False,
    )
    return done.returncode, done.stdout.decode(), done.stderr.decode()


def fill(directory: Path, signal: Signal, records: int, items: int) -> None:
    with DurableQueue(directory) as queue:
        for _ in range(records):
            queue.append(signal, 0, items, bytes(100))


def snapshot(directory: Path) -> dict[str, tuple[int, float]]:
    return {str(p): (p.stat().st_size, p.stat().st_mtime) for p in sorted(directory.rglob("*"))}


def test_queue_shows_records_per_signal_from_the_variable(tmp_path: Path) -> None:
    fill(tmp_path / "traces", Signal.TRACES, 3, 5)
    fill(tmp_path / "metrics", Signal.METRICS, 2, 7)
    before = snapshot(tmp_path)
    code, out, err = aiotlp("queue", env={"AIOTLP_QUEUE_DIR": str(tmp_path)})
    assert code == 0, out + err
    assert snapshot(tmp_path) == before  # read-only
    assert f"{tmp_path} (from AIOTLP_QUEUE_DIR)" in out
    lines = {line.split()[0]: line for line in out.splitlines() if line.startswith("  ")}
    assert lines["traces"].split()[1:4] == ["3", "15", "spans"], out
    assert lines["metrics"].split()[1:5] == ["2", "14", "metric", "data"], out
    assert "free (last held by pid" in lines["traces"]
    assert "logs" not in lines  # no such queue
    assert "no process holds it" in out


def test_queue_reports_damage_and_quarantined_segments(tmp_path: Path) -> None:
    queue_dir = tmp_path / "traces"
    fill(queue_dir, Signal.TRACES, 3, 1)
    segment = next(queue_dir.glob("*.seg"))
    with segment.open("r+b") as file:  # a crash tore the last record
        file.truncate(segment.stat().st_size - 30)
    (queue_dir / "00000000000000aa.seg.corrupt").write_bytes(b"x" * 123)
    code, out, err = aiotlp("queue", str(tmp_path))
    assert code == 0, out + err
    row = next(line for line in out.splitlines() if line.startswith("  traces"))
    assert row.split()[1] == "2" and row.split()[7:9] == ["1", "1"], out  # 2 records, 1 damaged, 1 quarantined
    assert "✗ traces: 1 damaged record(s)" in out
    assert "00000000000000aa.seg.corrupt" in out and "123 bytes" in out


def test_queue_reports_the_live_holder_and_takes_nothing_from_it(tmp_path: Path) -> None:
    queue_dir = tmp_path / "logs"
    with subprocess.Popen(
        [sys.executable, "-c", HOLDER, str(queue_dir)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        env=clean_env({"PYTHONPATH": os.environ.get("PYTHONPATH", "")}),
        cwd=ROOT,
    ) as holder:
        assert holder.stdout is not None and holder.stdout.readline() == b"ready\n"
        code, out, err = aiotlp("queue", str(tmp_path))
        assert code == 0, out + err
        assert f"held by pid {holder.pid}" in out
        assert f"logs: in use by pid {holder.pid}" in out
        row = next(line for line in out.splitlines() if line.startswith("  logs"))
        assert row.split()[1:4] == ["1", "4", "log"], out
        assert holder.stdin is not None
        holder.stdin.close()
        assert holder.wait(30) == 0  # it still held its queue, and closed it normally


def test_queue_errors_are_one_line(tmp_path: Path) -> None:
    code, _, err = aiotlp("queue")
    assert_one_line_error(code, err, "AIOTLP_QUEUE_DIR")
    code, _, err = aiotlp("queue", str(tmp_path / "missing"))
    assert_one_line_error(code, err, "does not exist")
