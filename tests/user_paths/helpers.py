"""Shared by the user-path tests: run a child script against a FakeCollector in the test process, and say in one
line what went wrong (exit code, a traceback, what the collector is missing, what the ledger says)."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import os
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest

from aiotlp.testing import FakeCollector

HERE = Path(__file__).parent
SRC = str(HERE.parent.parent / "src")
CHILD_BOUND = 60.0  # seconds a child may take, start-up and exit included

# What must not appear on a child's stderr: an exception raised into the application or left unraised.
SYMPTOMS = ("Traceback", "Exception ignored", "was destroyed but it is pending", "was never awaited", "Unclosed")

TRANSPORTS = ("http-protobuf", "http-json", "grpc-h2", "grpc-grpcio")
SIGNALS = ("traces", "logs")


def child_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    """The test's environment without the OTEL_* and aiotlp exporter variables (a child reads only what the test
    gives it), with ``src`` on PYTHONPATH."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "AIOTLP_QUEUE", "AIOTLP_EXPORTER"))}
    paths = [SRC, str(HERE.parent.parent), *filter(None, env.get("PYTHONPATH", "").split(os.pathsep))]
    env["PYTHONPATH"] = os.pathsep.join(dict.fromkeys(paths))
    env["PYTHONUNBUFFERED"] = "1"
    env.update(extra or {})
    return env


def names(collector: FakeCollector, signal: str) -> list[str]:
    """Every item's name the collector received (duplicates kept): span names, or log record bodies."""
    if signal == "traces":
        return [span.name for span in collector.spans()]
    return [record.body.string_value for record in collector.log_records()]


def has(count: int, signal: str, prefix: str = "s") -> Any:
    """A FakeCollector.wait_for predicate: every item ``s0`` .. ``s<count-1>`` arrived."""
    wanted = {f"{prefix}{n}" for n in range(count)}

    def predicate(collector: FakeCollector) -> bool:
        return wanted <= set(names(collector, signal))

    return predicate


@dataclasses.dataclass
class ChildRun:
    returncode: int
    stdout: str
    stderr: str
    result: dict[str, Any] | None  # the child's RESULT line
    held: int | None = None  # distinct items at the collector when the child said HOLD


async def run_child(
    script: Path,
    args: Sequence[str],
    env: dict[str, str],
    *,
    on_hold: Any = None,
) -> ChildRun:
    """Run ``script`` with ``args``; at a ``HOLD`` line await ``on_hold()`` (its value is kept), then let the child
    go on. Kills the child past CHILD_BOUND."""
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        str(script),
        *args,
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=env,
    )
    assert process.stdout is not None and process.stdin is not None and process.stderr is not None
    stderr_task = asyncio.ensure_future(process.stderr.read())
    lines: list[str] = []
    held = None

    async def talk() -> None:
        nonlocal held
        assert process.stdout is not None and process.stdin is not None
        while line := (await process.stdout.readline()).decode(errors="replace"):
            lines.append(line)
            if line == "HOLD\n":
                held = await on_hold() if on_hold is not None else None
                process.stdin.write(b"go\n")
                await process.stdin.drain()
        process.stdin.close()

    try:
        await asyncio.wait_for(talk(), CHILD_BOUND)
        await asyncio.wait_for(process.wait(), CHILD_BOUND)
    except asyncio.TimeoutError:
        process.kill()
        await process.wait()
        stderr_task.cancel()
        output = "".join(lines)[-500:]
        raise AssertionError(f"the child did not exit within {CHILD_BOUND:g}s; stdout: {output}") from None
    stderr = (await stderr_task).decode(errors="replace")
    results = [json.loads(line[len("RESULT ") :]) for line in lines if line.startswith("RESULT ")]
    code = process.returncode if process.returncode is not None else -1
    return ChildRun(code, "".join(lines), stderr, _combined(results), held)


def _combined(results: list[dict[str, Any]]) -> dict[str, Any] | None:
    """The RESULT of a child, or of a child and the workers it forked: flush results joined, ledgers and the
    batches sent on the native lane summed (a forked worker's processor starts with an empty ledger of its own)."""
    if not results:
        return None
    flush = [value for result in results for value in result["flush"]]
    lanes = [result["lane"] for result in results if result.get("lane") is not None]
    lane = sum(lanes) if lanes else None
    ledgers = [result["ledger"] for result in results if result["ledger"] is not None]
    if not ledgers:
        return {"flush": flush, "ledger": None, "lane": lane}
    ledger: dict[str, Any] = {}
    for one in ledgers:
        for key, value in one.items():
            if key == "dropped":
                dropped = ledger.setdefault("dropped", {})
                for reason, count in value.items():
                    dropped[reason] = dropped.get(reason, 0) + count
            elif isinstance(value, int) and not isinstance(value, bool):
                ledger[key] = ledger.get(key, 0) + value
            else:
                ledger.setdefault(key, value)
    return {"flush": flush, "ledger": ledger, "lane": lane}


def stderr_problems(run: ChildRun) -> list[str]:
    """Exit code and symptoms on stderr, each with the line that says the most about it."""
    problems = []
    if run.returncode != 0:
        problems.append(f"exit code {run.returncode}")
    text = run.stderr
    for symptom in SYMPTOMS:
        if symptom in text:
            problems.append(f"stderr has {symptom!r}: {_gist(text, symptom)}")
    return problems


def _gist(text: str, symptom: str) -> str:
    """The most telling line: a traceback's last line (the exception), else the symptom's own line."""
    lines = text.splitlines()
    if symptom == "Traceback":
        start = next(i for i, line in enumerate(lines) if "Traceback" in line)
        for line in lines[start + 1 :]:
            if line and not line.startswith((" ", "Traceback", "During handling", "The above exception")):
                return line.strip()[:200]
    return next(line for line in lines if symptom in line).strip()[:200]


def warnings_of(run: ChildRun) -> str:
    """aiotlp's warnings on stderr, in one line (what the library said about the loss, if anything)."""
    said = [line.strip() for line in run.stderr.splitlines() if "processor" in line or "dropped" in line]
    return (" | ".join(said))[:300]


def delivery_problems(collector: FakeCollector, signal: str, count: int) -> list[str]:
    """The collector must hold exactly the items s0..s<count-1> (duplicates allowed: at-least-once)."""
    got = set(names(collector, signal))
    wanted = {f"s{n}" for n in range(count)}
    problems = []
    noun = "spans" if signal == "traces" else "log records"
    if got != wanted:
        problems.append(f"the collector got {len(got & wanted)} of {count} {noun}")
    if got - wanted:
        problems.append(f"and {len(got - wanted)} unexpected ones")
    if signal == "traces":
        ids = {span.span_id for span in collector.spans()}
        if len(ids) != len(got):
            problems.append(f"{len(ids)} distinct span ids for {len(got)} distinct names")
    return problems


def ledger_problems(ledger: dict[str, Any] | None, produced: int) -> list[str]:
    """The processor's ledger after shutdown: balanced, everything exported, nothing dropped or failed."""
    if ledger is None:
        return ["the child printed no ledger"]
    settled = ledger["exported"] + ledger["rejected"] + ledger["failed"] + sum(ledger["dropped"].values())
    problems = []
    if ledger["produced"] != settled + ledger["queued"] + ledger["in_flight"]:
        problems.append(f"the ledger does not balance: {ledger}")
    wanted = {"produced": produced, "exported": produced, "failed": 0, "rejected": 0, "queued": 0, "in_flight": 0}
    wrong = {key: ledger[key] for key, value in wanted.items() if ledger[key] != value}
    if wrong or ledger["dropped"]:
        problems.append(f"ledger {wrong} dropped={ledger['dropped']} (want produced=exported={produced})")
    return problems


@contextlib.contextmanager
def no_raise(what: str) -> Iterator[None]:
    """Fail in one line (no traceback to format) if ``what`` raises into the application."""
    try:
        yield
    except Exception as exc:
        pytest.fail(f"{what} raised {type(exc).__name__}: {exc}", pytrace=False)


def fail_if(problems: list[str]) -> None:
    """Fail with every problem in one line (pytrace=False: pytest then formats no source)."""
    if problems:
        pytest.fail("; ".join(problems), pytrace=False)
