"""Run the OpenTelemetry Collector (Go: grpc-go and net/http) as a child process on loopback.

The binary is the one ``scripts/build-otelcol`` builds from ``tests/otelcol`` (the collector's own Go modules at
one release, assembled the way the collector builder does: the OTLP receiver, the batch and memory_limiter
processors, the OTLP/gRPC and debug exporters); :func:`find_otelcol` finds it through ``AIOTLP_OTELCOL`` or PATH.

:class:`OtelCollector` writes a configuration (JSON, which YAML reads), starts the binary in the foreground
tracked by pid, waits for its "Everything is ready" log line and for both receiver ports to accept a
connection, and stops it on exit. Everything it receives goes through ``memory_limiter`` (when configured) and
``batch`` (when configured) to an ``otlp_grpc`` exporter pointed at ``forward_to`` (for instance a
:class:`~aiotlp.testing.FakeCollector`'s gRPC endpoint, to check what the Collector accepted and re-emitted), or
to the ``debug`` exporter when ``forward_to`` is None.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ._rotel import free_port, suspend

__all__ = ["OtelCollector", "OtelCollectorTLS", "find_otelcol"]

READY_LINE = "Everything is ready"


def find_otelcol() -> str:
    """The Collector binary: ``$AIOTLP_OTELCOL`` (what ``scripts/build-otelcol`` prints), else ``otelcol`` on
    PATH."""
    configured = os.environ.get("AIOTLP_OTELCOL")
    if configured:
        if not (os.path.isfile(configured) and os.access(configured, os.X_OK)):
            raise FileNotFoundError(f"AIOTLP_OTELCOL={configured!r} is not an executable file")
        return configured
    found = shutil.which("otelcol")
    if found is None:
        raise FileNotFoundError(
            "the OpenTelemetry Collector binary was not found: build it with scripts/build-otelcol (needs Go) and "
            "set AIOTLP_OTELCOL to the path it prints, or put an otelcol on PATH"
        )
    return found


@dataclass(frozen=True, slots=True)
class OtelCollectorTLS:
    """PEM files for the receivers' TLS: the server certificate and key, and ``client_ca_file`` for mTLS (client
    certificates are then required)."""

    cert_file: str
    key_file: str
    client_ca_file: str | None = None

    def settings(self) -> dict[str, Any]:
        tls: dict[str, Any] = {"cert_file": self.cert_file, "key_file": self.key_file}
        if self.client_ca_file is not None:
            tls["client_ca_file"] = self.client_ca_file
        return tls


def _merge(base: dict[str, Any], extra: Mapping[str, Any]) -> dict[str, Any]:
    """``base`` updated by ``extra``, mappings merged key by key (None removes a key)."""
    out = dict(base)
    for key, value in extra.items():
        if value is None:
            out.pop(key, None)
        elif isinstance(value, Mapping) and isinstance(out.get(key), Mapping):
            out[key] = _merge(dict(out[key]), value)
        else:
            out[key] = value
    return out


def _duration(seconds: float) -> str:
    return f"{round(seconds * 1000)}ms"


class OtelCollector:
    """``async with OtelCollector(forward_to=sink.grpc_endpoint) as otelcol:`` then export to
    ``otelcol.grpc_endpoint`` or ``otelcol.http_endpoint``.

    - ``tls``: the receivers' certificates (both receivers; the endpoints become ``https://``);
    - ``grpc`` / ``http``: settings merged into the receiver's ``protocols.grpc`` / ``protocols.http`` (for
      instance ``{"keepalive": {"enforcement_policy": {"min_time": "5m"}}}`` or ``{"max_recv_msg_size_mib": 4}``);
      :func:`keepalive` writes the usual keepalive section;
    - ``memory_limiter``: the processor's settings (None: no memory_limiter in the pipelines);
    - ``batch``: the batch processor's settings (None: no batch processor);
    - ``exporter``: settings merged into the ``otlp_grpc`` exporter (``sending_queue``, ``retry_on_failure``,
      ``timeout``...); its endpoint is ``forward_to`` with ``tls: insecure: true``.

    The ports are chosen when first started and kept by :meth:`restart`, so clients reconnect to the same address.
    """

    def __init__(
        self,
        *,
        forward_to: str | None = None,
        tls: OtelCollectorTLS | None = None,
        grpc: Mapping[str, Any] | None = None,
        http: Mapping[str, Any] | None = None,
        memory_limiter: Mapping[str, Any] | None = None,
        batch: Mapping[str, Any] | None = None,
        exporter: Mapping[str, Any] | None = None,
        log_level: str = "info",
        binary: str | None = None,
        startup_timeout: float = 30.0,
    ) -> None:
        self.forward_to = forward_to
        self.tls = tls
        self.grpc = dict(grpc or {})
        self.http = dict(http or {})
        self.memory_limiter = None if memory_limiter is None else dict(memory_limiter)
        self.batch = None if batch is None else dict(batch)
        self.exporter = dict(exporter or {})
        self.log_level = log_level
        self.binary = binary
        self.startup_timeout = startup_timeout
        self.grpc_port = 0
        self.http_port = 0
        self.process: subprocess.Popen[bytes] | None = None
        self._directory: tempfile.TemporaryDirectory[str] | None = None
        self._log_offset = 0

    @staticmethod
    def keepalive(
        *,
        min_time: float | None = None,
        permit_without_stream: bool | None = None,
        max_connection_age: float | None = None,
        max_connection_age_grace: float | None = None,
        max_connection_idle: float | None = None,
    ) -> dict[str, Any]:
        """The receiver's gRPC ``keepalive`` section (seconds in, Go durations out); pass it as
        ``grpc={"keepalive": ...}``. What is not given keeps grpc-go's default (min_time 5 min, no pings without
        a stream, connections never aged)."""
        policy: dict[str, Any] = {}
        if min_time is not None:
            policy["min_time"] = _duration(min_time)
        if permit_without_stream is not None:
            policy["permit_without_stream"] = permit_without_stream
        server: dict[str, Any] = {}
        for name, value in (
            ("max_connection_age", max_connection_age),
            ("max_connection_age_grace", max_connection_age_grace),
            ("max_connection_idle", max_connection_idle),
        ):
            if value is not None:
                server[name] = _duration(value)
        section: dict[str, Any] = {}
        if policy:
            section["enforcement_policy"] = policy
        if server:
            section["server_parameters"] = server
        return section

    @property
    def _scheme(self) -> str:
        return "https" if self.tls is not None else "http"

    @property
    def grpc_endpoint(self) -> str:
        return f"{self._scheme}://127.0.0.1:{self.grpc_port}"

    @property
    def http_endpoint(self) -> str:
        return f"{self._scheme}://127.0.0.1:{self.http_port}"

    @property
    def pid(self) -> int | None:
        return None if self.process is None else self.process.pid

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def config(self) -> dict[str, Any]:
        """The configuration the Collector runs with (written as JSON: YAML reads it)."""
        grpc: dict[str, Any] = {"endpoint": f"127.0.0.1:{self.grpc_port}"}
        http: dict[str, Any] = {"endpoint": f"127.0.0.1:{self.http_port}"}
        if self.tls is not None:
            grpc["tls"] = self.tls.settings()
            http["tls"] = self.tls.settings()
        processors: dict[str, Any] = {}
        if self.memory_limiter is not None:  # first in the pipeline, as the Collector's documentation says
            processors["memory_limiter"] = self.memory_limiter
        if self.batch is not None:
            processors["batch"] = self.batch
        if self.forward_to is None:
            exporters: dict[str, Any] = {"debug": {"verbosity": "basic"}}
        else:
            endpoint = self.forward_to.removeprefix("http://")
            exporters = {"otlp_grpc": _merge({"endpoint": endpoint, "tls": {"insecure": True}}, self.exporter)}
        pipeline = {"receivers": ["otlp"], "processors": list(processors), "exporters": list(exporters)}
        return {
            "receivers": {"otlp": {"protocols": {"grpc": _merge(grpc, self.grpc), "http": _merge(http, self.http)}}},
            "processors": processors,
            "exporters": exporters,
            "service": {
                "telemetry": {
                    "metrics": {"level": "none"},  # no :8888 listener: several Collectors run side by side
                    "logs": {"level": self.log_level, "encoding": "console"},
                },
                "pipelines": {name: pipeline for name in ("traces", "metrics", "logs")},
            },
        }

    @property
    def _log_path(self) -> Path:
        assert self._directory is not None
        return Path(self._directory.name) / "otelcol.log"

    def log_text(self) -> str:
        """What the Collector printed so far, over every start (for failure messages and log assertions)."""
        if self._directory is None:
            return ""
        try:
            return self._log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def _current_log(self) -> str:
        return self.log_text()[self._log_offset :]

    async def start(self) -> None:
        """Start the Collector and wait until it is ready; ports are chosen on the first start (bound and
        released: if one was taken in between, the first start tries new ones once)."""
        if self.running:
            raise RuntimeError("the Collector is already running")
        binary = self.binary or find_otelcol()
        if self._directory is None:
            self._directory = tempfile.TemporaryDirectory(prefix="otelcol-")
        fresh_ports = not (self.grpc_port and self.http_port)
        for attempt in range(2):
            if fresh_ports:
                self.grpc_port, self.http_port = free_port(), free_port()
            try:
                await self._start_once(binary)
                return
            except _AddressInUse:
                if not fresh_ports or attempt == 1:
                    raise RuntimeError(f"the Collector's ports were taken:\n{self._current_log()}") from None

    async def _start_once(self, binary: str) -> None:
        assert self._directory is not None
        config_path = Path(self._directory.name) / "config.yaml"
        config_path.write_text(json.dumps(self.config(), indent=1))
        self._log_offset = len(self.log_text())
        self.process = self._spawn(binary, config_path)
        await self._wait_ready()

    def _spawn(self, binary: str, config_path: Path) -> subprocess.Popen[bytes]:
        """The child process (not asyncio's: the helper is not bound to one event loop, so a module-scoped
        fixture can share it between tests)."""
        with open(self._log_path, "ab") as log:
            return subprocess.Popen(
                [binary, "--config", f"file:{config_path}"],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=log,
                env={**os.environ, "NO_COLOR": "1"},
            )

    async def _wait_ready(self) -> None:
        deadline = time.monotonic() + self.startup_timeout
        while READY_LINE not in self._current_log():
            assert self.process is not None
            if self.process.poll() is not None:
                self.process = None
                if "address already in use" in self._current_log():
                    raise _AddressInUse
                raise RuntimeError(f"the Collector exited:\n{self._current_log()}")
            if time.monotonic() > deadline:
                await self.stop()
                raise RuntimeError(f"the Collector was not ready in {self.startup_timeout} s:\n{self._current_log()}")
            await asyncio.sleep(0.02)
        for port in (self.grpc_port, self.http_port):  # the receivers listen before the ready line; make sure
            _, writer = await asyncio.wait_for(asyncio.open_connection("127.0.0.1", port), self.startup_timeout)
            writer.close()
            await writer.wait_closed()

    def kill(self) -> None:
        """SIGKILL the Collector (a crash): what it acknowledged but had not forwarded yet is lost."""
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait()

    def pause(self) -> None:
        """SIGSTOP: the Collector hangs, connections stay open. Returns once every thread of it has stopped."""
        if self.process is not None:
            suspend(self.process.pid)

    def resume(self) -> None:
        if self.process is not None and self.process.poll() is None:
            os.kill(self.process.pid, signal.SIGCONT)

    async def restart(self) -> None:
        """Start again on the same ports (after :meth:`kill` or :meth:`stop`; a running Collector is stopped
        first, gracefully)."""
        if self.running:
            await self._terminate()
        await self.start()

    async def _terminate(self) -> None:
        process, self.process = self.process, None
        if process is None or process.poll() is not None:
            return
        os.kill(process.pid, signal.SIGCONT)
        process.terminate()  # SIGTERM: the Collector drains its pipelines and exits
        deadline = time.monotonic() + 10.0
        while process.poll() is None:
            if time.monotonic() > deadline:
                process.kill()
                process.wait()
                break
            await asyncio.sleep(0.02)

    async def stop(self) -> None:
        await self._terminate()
        if self._directory is not None:
            self._directory.cleanup()
            self._directory = None

    async def __aenter__(self) -> OtelCollector:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.stop()


class _AddressInUse(Exception):
    pass
