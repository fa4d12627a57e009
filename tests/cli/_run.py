"""Run ``python -m aiotlp`` as a subprocess, the way a user runs it, with no OTEL_* variable inherited."""

from __future__ import annotations

import asyncio
import os
import re
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def clean_env(env: dict[str, str] | None = None) -> dict[str, str]:
    environ = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}
    return {**environ, **(env or {})}


async def run(
    *args: str, env: dict[str, str] | None = None, cwd: Path | None = None, timeout: float = 60.0
) -> tuple[int, str, str]:
    """``python -m aiotlp ARGS`` to completion: (exit code, stdout, stderr).

    Started and awaited in a worker thread: fork and exec would otherwise run on the test's event loop, which
    asyncio debug mode reports as a blocked loop on a busy machine; the loop stays free to serve FakeCollectors.
    """
    done = await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "-m", "aiotlp", *args],
        capture_output=True,
        env=clean_env(env),
        cwd=cwd or ROOT,
        timeout=timeout,
        check=False,
    )
    return done.returncode, done.stdout.decode(), done.stderr.decode()


def assert_one_line_error(code: int, err: str, *fragments: str) -> None:
    """The failure contract: exit 1, one line on stderr starting `aiotlp: error:`, no traceback."""
    assert code == 1, err
    assert err.startswith("aiotlp: error: "), err
    assert len(err.strip().splitlines()) == 1, err
    assert "Traceback" not in err
    for fragment in fragments:
        assert fragment in err, (fragment, err)


class Background:
    """A long-running ``aiotlp`` subprocess whose stdout lines are collected as they arrive.

    It is an asyncio subprocess (its output is read on the loop), so tests using it are marked
    ``allow_slow_callbacks``: on a loaded machine the fork and exec can take longer than debug mode allows."""

    def __init__(self, process: asyncio.subprocess.Process) -> None:
        self.process = process
        self.lines: list[str] = []
        self._changed = asyncio.Condition()
        self._reader = asyncio.ensure_future(self._read())

    @classmethod
    async def start(cls, *args: str, env: dict[str, str] | None = None) -> Background:
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "aiotlp",
            *args,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            env=clean_env(env),
            cwd=ROOT,
        )
        return cls(process)

    async def _read(self) -> None:
        assert self.process.stdout is not None
        async for raw in self.process.stdout:
            async with self._changed:
                self.lines.append(raw.decode().rstrip("\n"))
                self._changed.notify_all()
        async with self._changed:
            self._changed.notify_all()

    @property
    def text(self) -> str:
        return "\n".join(self.lines)

    async def wait_for(self, predicate: Callable[[str], bool], timeout: float = 20.0) -> str:
        """Wait until ``predicate(all output so far)`` holds (woken by each new line, never polled)."""

        async def check() -> None:
            async with self._changed:
                await self._changed.wait_for(lambda: predicate(self.text) or self._reader.done())

        try:
            await asyncio.wait_for(check(), timeout)
        except asyncio.TimeoutError:
            raise AssertionError(f"timed out waiting; output so far:\n{self.text}") from None
        assert predicate(self.text), f"the process ended first; output:\n{self.text}"
        return self.text

    async def ports(self) -> tuple[int, int]:
        """The gRPC and HTTP ports ``aiotlp receive`` says it listens on."""
        text = await self.wait_for(lambda t: "OTLP/HTTP" in t and "OTLP/gRPC" in t)
        grpc = re.search(r"OTLP/gRPC\s+127\.0\.0\.1:(\d+)", text)
        http = re.search(r"OTLP/HTTP\s+127\.0\.0\.1:(\d+)", text)
        assert grpc and http, text
        return int(grpc.group(1)), int(http.group(1))

    async def stop(self, signum: int) -> tuple[int, str]:
        self.process.send_signal(signum)
        code = await asyncio.wait_for(self.process.wait(), 20)
        await self._reader
        assert self.process.stderr is not None
        err = (await self.process.stderr.read()).decode()
        return code, err

    async def kill(self) -> None:
        if self.process.returncode is None:
            self.process.kill()
            await self.process.wait()
        self._reader.cancel()
