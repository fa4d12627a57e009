"""Run the real `rotel` collector (PyPI package ``rotel``, Rust) as a child process on loopback.

It receives OTLP over gRPC and HTTP and either forwards everything over OTLP/gRPC (for instance to a
:class:`~aiotlp.testing.FakeCollector`, to check what a real collector accepted and re-emitted) or drops it
(``blackhole``, for throughput runs). It runs in the foreground, tracked by pid, and is stopped on exit.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import socket
import sysconfig
import tempfile
import time
from pathlib import Path

from .._exceptions import MissingExtraError

__all__ = ["Rotel", "find_rotel", "free_port"]


def find_rotel() -> str:
    """The path of the ``rotel-agent`` binary shipped in the ``rotel`` wheel (or found on PATH)."""
    try:
        import rotel
    except ImportError:
        rotel = None
    if rotel is not None:
        candidate = Path(rotel.__file__).parent / "rotel-agent"
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return str(candidate)
    found = shutil.which("rotel-agent")
    if found is None:
        raise MissingExtraError("test", "rotel (the rotel-agent collector binary)")
    return found


def _all_threads_stopped(pid: int) -> bool:
    """Whether every thread of ``pid`` is stopped (state ``T`` in ``/proc``); True where ``/proc`` is missing."""
    try:
        tasks = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return True
    for task in tasks:
        try:
            with open(f"/proc/{pid}/task/{task}/stat", "rb") as stat:
                state = stat.read().rpartition(b")")[2].split()[0]
        except (OSError, IndexError):
            continue  # the thread ended
        if state not in (b"T", b"t"):
            return False
    return True


def suspend(pid: int) -> None:
    """SIGSTOP ``pid`` and return once every thread of it has stopped (at most 5 s): the signal is delivered
    asynchronously, and on a loaded machine the process could otherwise still answer a request sent right after."""
    os.kill(pid, signal.SIGSTOP)
    deadline = time.monotonic() + 5.0
    while not _all_threads_stopped(pid) and time.monotonic() < deadline:
        time.sleep(0.001)


def _libpython_dir() -> str | None:
    """Where this interpreter's shared libpython is, when the loader would not find it by itself.

    The ``rotel`` wheel's ``rotel-agent`` embeds Python (for its processors) and links ``libpython3.X.so.1.0``
    of the Python the wheel is for. A Python installed under a prefix of its own (pyenv, ``--enable-shared``)
    keeps that library in ``<prefix>/lib``, which only the interpreter's own run path names: rotel would exit with
    "error while loading shared libraries"."""
    if not sysconfig.get_config_var("Py_ENABLE_SHARED"):
        return None
    library_dir = sysconfig.get_config_var("LIBDIR")
    library = sysconfig.get_config_var("INSTSONAME") or sysconfig.get_config_var("LDLIBRARY")
    if not library_dir or not library or not os.path.exists(os.path.join(library_dir, library)):
        return None
    return str(library_dir)


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Rotel:
    """``async with Rotel(forward_to=collector.grpc_endpoint) as rotel:`` then export to ``rotel.grpc_endpoint``
    or ``rotel.http_endpoint``. ``forward_to=None`` uses rotel's blackhole exporter."""

    def __init__(
        self,
        *,
        forward_to: str | None = None,
        batching: bool = False,
        extra_args: tuple[str, ...] = (),
        startup_timeout: float = 15.0,
    ) -> None:
        self.forward_to = forward_to
        self.batching = batching
        self.extra_args = extra_args
        self.startup_timeout = startup_timeout
        self.grpc_port = 0
        self.http_port = 0
        self.process: asyncio.subprocess.Process | None = None
        self._log: tempfile._TemporaryFileWrapper[bytes] | None = None

    @property
    def grpc_endpoint(self) -> str:
        return f"http://127.0.0.1:{self.grpc_port}"

    @property
    def http_endpoint(self) -> str:
        return f"http://127.0.0.1:{self.http_port}"

    @property
    def pid(self) -> int | None:
        return None if self.process is None else self.process.pid

    def log_text(self) -> str:
        """What rotel printed so far (for failure messages)."""
        if self._log is None:
            return ""
        return Path(self._log.name).read_text(errors="replace")

    async def start(self) -> None:
        binary = find_rotel()
        self.grpc_port = self.grpc_port or free_port()
        self.http_port = self.http_port or free_port()
        args = [
            binary,
            "start",
            "--otlp-grpc-endpoint",
            f"127.0.0.1:{self.grpc_port}",
            "--otlp-http-endpoint",
            f"127.0.0.1:{self.http_port}",
        ]
        if self.forward_to is None:
            args += ["--exporter", "blackhole"]
        else:
            args += [
                "--exporter",
                "otlp",
                "--otlp-exporter-endpoint",
                self.forward_to,
                "--otlp-exporter-protocol",
                "grpc",
            ]
        if not self.batching:
            args.append("--disable-batching")
        args += list(self.extra_args)
        self._log = tempfile.NamedTemporaryFile(prefix="rotel-", suffix=".log")  # noqa: SIM115
        env = {**os.environ, "NO_COLOR": "1"}
        library_dir = _libpython_dir()
        if library_dir is not None:
            env["LD_LIBRARY_PATH"] = os.pathsep.join(filter(None, (library_dir, env.get("LD_LIBRARY_PATH"))))
        try:
            self.process = await asyncio.create_subprocess_exec(
                *args, stdin=asyncio.subprocess.DEVNULL, stdout=self._log, stderr=self._log, env=env
            )
            await self._wait_listening()
        except BaseException:
            await self.stop()  # the process reaped, the log closed
            raise

    async def _wait_listening(self) -> None:
        """Wait until both ports accept connections (rotel has no readiness signal to wait on)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.startup_timeout
        for port in (self.grpc_port, self.http_port):
            while True:
                assert self.process is not None
                if self.process.returncode is not None:
                    raise RuntimeError(f"rotel exited with {self.process.returncode}:\n{self.log_text()}")
                try:
                    _, writer = await asyncio.open_connection("127.0.0.1", port)
                except OSError:
                    if loop.time() > deadline:
                        await self.stop()
                        raise RuntimeError(f"rotel did not listen on port {port}:\n{self.log_text()}") from None
                    await asyncio.sleep(0.02)
                    continue
                writer.close()
                await writer.wait_closed()
                break

    def kill(self) -> None:
        """SIGKILL the collector (a crash)."""
        if self.process is not None and self.process.returncode is None:
            self.process.kill()

    def pause(self) -> None:
        """SIGSTOP: the collector hangs, connections stay open. Returns once every thread of it has stopped
        (the signal is delivered asynchronously: on a loaded machine the collector could otherwise still answer
        a request sent right after this call)."""
        if self.process is not None:
            suspend(self.process.pid)

    def resume(self) -> None:
        if self.process is not None:
            os.kill(self.process.pid, signal.SIGCONT)

    async def stop(self) -> None:
        process, self.process = self.process, None
        if process is not None and process.returncode is None:
            os.kill(process.pid, signal.SIGCONT)
            process.terminate()
            try:
                await asyncio.wait_for(process.wait(), 5)
            except asyncio.TimeoutError:
                process.kill()
                await process.wait()
        if self._log is not None:
            self._log.close()
            self._log = None

    async def __aenter__(self) -> Rotel:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.stop()
