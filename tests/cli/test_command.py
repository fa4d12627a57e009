"""The command as a whole: --help for every subcommand, usage errors, `aiotlp bench` in and out of a checkout."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest
from tests.cli._run import assert_one_line_error, run

from aiotlp.cli import main

COMMANDS = ("demo", "receive", "send", "bench", "check")


async def test_help_as_a_subprocess() -> None:
    (code, out, err), (sub_code, sub_out, sub_err) = await asyncio.gather(run("--help"), run("receive", "--help"))
    assert code == 0 and err == ""
    for command in COMMANDS:
        assert command in out
    assert sub_code == 0 and sub_err == ""
    assert sub_out.startswith("usage: aiotlp receive") and "--grpc-port" in sub_out


@pytest.mark.parametrize("command", COMMANDS)
def test_help_for_every_subcommand(command: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main([command, "--help"])
    assert exit_info.value.code == 0
    out = capsys.readouterr().out
    assert out.startswith(f"usage: aiotlp {command}"), out
    assert "--plain" in out and "--debug" in out
    expected = {
        "demo": "--duration",
        "receive": "--jsonl",
        "send": "--signal",
        "bench": "--quick",
        "check": "--no-export",
    }
    assert expected[command] in out


def test_usage_errors_exit_2(capsys: pytest.CaptureFixture[str]) -> None:
    for argv in ([], ["nope"], ["send"], ["check", "--signals", "spans"], ["send", "x", "--timeout", "-1"]):
        with pytest.raises(SystemExit) as exit_info:
            main(argv)
        assert exit_info.value.code == 2
        assert "usage: aiotlp" in capsys.readouterr().err


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    from aiotlp import __version__

    with pytest.raises(SystemExit) as exit_info:
        main(["--version"])
    assert exit_info.value.code == 0
    assert capsys.readouterr().out.strip() == f"aiotlp {__version__}"


def test_debug_shows_the_traceback(tmp_path: Path) -> None:
    from aiotlp import ConfigurationError

    with pytest.raises(ConfigurationError, match="cannot read"):
        main(["--debug", "send", str(tmp_path / "missing.jsonl")])


async def test_bench_outside_a_checkout_says_so(tmp_path: Path) -> None:
    code, _out, err = await run("bench", "--quick", cwd=tmp_path)
    assert_one_line_error(code, err, "no benchmarks/harness.py", "source checkout")


async def test_bench_runs_the_harness(tmp_path: Path) -> None:
    """The quickest real run: one scenario, one repetition, against the rotel collector."""
    out_dir = tmp_path / "results"
    code, out, err = await run(
        "bench", "--quick", "--scenarios", "encode", "--reps", "1", "--out", str(out_dir), cwd=Path(__file__).parent
    )
    assert code == 0, out + err
    assert "running -m benchmarks.harness --quick --scenarios encode --reps 1" in out
    assert "| encode |" in out
    rows = json.loads((out_dir / "latest.json").read_text(encoding="utf-8"))
    assert rows, "the harness wrote no rows"
    assert (out_dir / "latest.md").read_text(encoding="utf-8").count("| encode |") >= 2
