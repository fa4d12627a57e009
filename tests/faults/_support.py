"""Shared machinery of the fault suite: accounting checks, a timing transport wrapper, a TCP proxy that delays and
records, a raw HTTP server for hostile answers, network namespaces, peak-RSS probes and percentiles.

Everything here is test code; the fakes that users may want too live in :mod:`aiotlp.testing`.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import os
import resource
import shutil
import subprocess
import threading
from collections import Counter
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

from aiotlp import Exporter, ExportResult, ProcessorStatistics
from aiotlp.model import LogRecord, Metric, Span
from aiotlp.testing import find_rotel
from aiotlp.transport import Reply, Transport

# -- accounting ----------------------------------------------------------------------------------------------


def accounted(result: ExportResult) -> ExportResult:
    """Assert ``items == accepted + rejected + failed + dropped`` (every item counted once) and return it."""
    assert result.items == result.accepted + result.rejected + result.failed + result.dropped, result
    assert min(result.accepted, result.rejected, result.failed, result.dropped) >= 0, result
    if result.failed:
        assert result.error is not None, result  # a failure always says why
    return result


def balanced(stats: ProcessorStatistics) -> ProcessorStatistics:
    """Assert the processor's ledger identity, spelled out, and return the snapshot."""
    settled = stats.exported + stats.rejected + stats.failed + sum(stats.dropped.values())
    assert stats.produced == settled + stats.queued + stats.in_flight, stats
    assert min(stats.queued, stats.in_flight, stats.exported, stats.failed, *stats.dropped.values()) >= 0, stats
    return stats


def error_kinds(results: Sequence[ExportResult]) -> Counter[str]:
    """Failed items by the class name of their error: the reasons a test asserts on."""
    kinds: Counter[str] = Counter()
    for result in results:
        if result.failed:
            kinds[type(result.error).__name__] += result.failed
    return kinds


def percentile(values: Sequence[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * fraction))]


# -- a transport wrapper that times every attempt ------------------------------------------------------------


@dataclass
class Attempt:
    """One ``send`` through :class:`TimedTransport`: loop times, the timeout it was given, how it ended."""

    start: float
    timeout: float
    end: float = 0.0
    outcome: str = ""

    @property
    def elapsed(self) -> float:
        return self.end - self.start


@dataclass
class TimedTransport:
    """Wraps a real transport (through ``OTLPExporter(transport_factory=...)``): records every attempt and the
    most attempts ever in flight at once. Cancellation (the Timeout layer) is recorded as ``"cancelled"``."""

    inner: Transport
    attempts: list[Attempt] = field(default_factory=list)
    active: int = 0
    max_active: int = 0

    @property
    def content_type(self) -> str:
        return self.inner.content_type

    @property
    def compression(self) -> str:
        return self.inner.compression

    async def send(self, body: bytes, *, content_encoding: str, timeout: float) -> Reply:
        loop = asyncio.get_running_loop()
        attempt = Attempt(loop.time(), timeout)
        self.attempts.append(attempt)
        self.active += 1
        self.max_active = max(self.max_active, self.active)
        try:
            partial = await self.inner.send(body, content_encoding=content_encoding, timeout=timeout)
        except asyncio.CancelledError:
            attempt.outcome = "cancelled"
            raise
        except Exception as exc:
            attempt.outcome = type(exc).__name__
            raise
        else:
            attempt.outcome = "ok"
            return partial
        finally:
            attempt.end = loop.time()
            self.active -= 1

    async def close(self) -> None:
        await self.inner.close()


# -- loopback servers: a TCP proxy that delays and records, and a raw HTTP server -----------------------------


_S = TypeVar("_S", bound="_LoopbackServer")


class _LoopbackServer:
    """A TCP server on 127.0.0.1:0 (or ``host``:0) whose connections are tracked, so that leaving the ``async
    with`` ends them: their writers are closed (a handler still writing fails its next write and returns), then
    awaited."""

    def __init__(self, host: str = "127.0.0.1") -> None:
        self.host = host
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[Any]] = set()
        self._writers: set[asyncio.StreamWriter] = set()

    @property
    def port(self) -> int:
        assert self._server is not None
        return int(self._server.sockets[0].getsockname()[1])

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    async def __aenter__(self: _S) -> _S:
        self._server = await asyncio.start_server(self._tracked, self.host, 0)
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        assert self._server is not None
        self._server.close()
        for writer in list(self._writers):
            writer.close()
        if self._tasks:
            await asyncio.wait(self._tasks, timeout=2)
        await self._server.wait_closed()

    async def _tracked(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        self._writers.add(writer)
        try:
            await self._handle(reader, writer)
        except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, ConnectionError, OSError):
            pass
        finally:
            writer.close()
            self._writers.discard(writer)
            self._tasks.discard(task)

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        raise NotImplementedError


class TcpProxy(_LoopbackServer):
    """Forwards 127.0.0.1:<port> to ``target``; each chunk, in each direction, is held ``delay`` seconds.

    ``upstream`` keeps every byte the client sent (what a network observer between client and server sees).
    Chunks keep their order: each direction is one task that sleeps, then writes. ``host``: where it listens
    (the host end of a :class:`Namespace`'s veth lets a process inside the namespace reach a loopback server).
    """

    def __init__(self, target_host: str, target_port: int, *, delay: float = 0.0, host: str = "127.0.0.1") -> None:
        super().__init__(host)
        self.target = (target_host, target_port)
        self.delay = delay
        self.upstream = bytearray()
        self.connections = 0
        self._accepted = threading.Condition()

    def wait_for_connections(self, count: int, timeout: float) -> bool:
        """Wait until ``count`` connections were accepted; False after ``timeout`` seconds. Any thread but the
        proxy's loop (see :class:`ProxyThread`; on its own loop, call it with ``asyncio.to_thread``)."""
        with self._accepted:
            return self._accepted.wait_for(lambda: self.connections >= count, timeout)

    async def _handle(self, client_reader: asyncio.StreamReader, client_writer: asyncio.StreamWriter) -> None:
        with self._accepted:
            self.connections += 1
            self._accepted.notify_all()
        server_reader, server_writer = await asyncio.open_connection(*self.target)
        self._writers.add(server_writer)
        try:
            await asyncio.gather(
                self._pipe(client_reader, server_writer, self.upstream), self._pipe(server_reader, client_writer, None)
            )
        finally:
            self._writers.discard(server_writer)

    async def _pipe(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, record: bytearray | None) -> None:
        try:
            while data := await reader.read(65536):
                if record is not None:
                    record += data
                if self.delay:
                    await asyncio.sleep(self.delay)
                writer.write(data)
                await writer.drain()
        except (ConnectionError, OSError):
            pass
        finally:
            writer.close()


class ProxyThread:
    """A :class:`TcpProxy` to ``127.0.0.1:target_port`` on its own event loop thread, for synchronous tests (an
    application on plain threads): ``with ProxyThread(port) as proxy: ... proxy.url``."""

    def __init__(self, target_port: int) -> None:
        self.proxy = TcpProxy("127.0.0.1", target_port)
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="proxy", daemon=True)

    def __enter__(self) -> TcpProxy:
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self.proxy.__aenter__(), self._loop).result(5)
        return self.proxy

    def __exit__(self, *exc_info: object) -> None:
        try:
            asyncio.run_coroutine_threadsafe(self.proxy.__aexit__(None, None, None), self._loop).result(10)
        finally:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(10)
            self._loop.close()


Answer = Callable[[asyncio.StreamWriter], Awaitable[None]]


class RawHttpServer(_LoopbackServer):
    """An HTTP/1.1 server on 127.0.0.1:0 that reads each request whole and answers with ``answer(writer)``.

    ``answer`` writes whatever bytes it likes (a lying Content-Length, a trickle, a redirect) and may close the
    connection. ``requests`` counts requests read; ``bodies`` keeps their bodies.
    """

    def __init__(self, answer: Answer) -> None:
        super().__init__()
        self.answer = answer
        self.requests = 0
        self.bodies: list[bytes] = []

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while not writer.is_closing():
            head = await reader.readuntil(b"\r\n\r\n")
            length = 0
            for line in head.split(b"\r\n"):
                name, _, value = line.partition(b":")
                if name.strip().lower() == b"content-length":
                    length = int(value)
            self.bodies.append(await reader.readexactly(length))
            self.requests += 1
            await self.answer(writer)


# -- network namespaces --------------------------------------------------------------------------------------

_ids = itertools.count()


def namespace_unavailable() -> str | None:
    """Why network namespaces cannot be used here, or None when they can."""
    if os.geteuid() != 0:
        return "needs root (network namespaces, veth, nftables, tc)"
    for tool in ("ip", "tc"):
        if shutil.which(tool) is None:
            return f"the {tool!r} command (iproute2) is not installed"
    probe = f"aiotlp-probe-{os.getpid()}"
    created = subprocess.run(["ip", "netns", "add", probe], capture_output=True, text=True)
    if created.returncode != 0:
        return f"cannot create a network namespace: {created.stderr.strip()}"
    subprocess.run(["ip", "netns", "del", probe], capture_output=True)
    return None


class Namespace:
    """A network namespace joined to this one by a veth pair on a private link-local /30.

    The host end is ``host_ip``, the namespace end ``ns_ip``: a collector started with :meth:`spawn` listens on
    ``ns_ip`` and the test's client, in this process, reaches it through the veth, where ``tc`` shapes the
    traffic (:meth:`shape`) and ``nft`` rules inside the namespace drop or reset it (:meth:`nft`). Nothing is
    changed in the host's own namespace beyond the one veth end, removed on :meth:`close`.
    """

    def __init__(self) -> None:
        n = next(_ids)
        tag = f"{os.getpid() % 10000}{n}"
        self.name = f"aiotlp-f{tag}"
        self.host_if = f"fh{tag}"[:15]
        self.ns_if = f"fn{tag}"[:15]
        subnet = (os.getpid() * 7 + n) % 16000
        base = 4 * (subnet % 64)
        self.host_ip = f"169.254.{100 + subnet // 64 % 150}.{base + 1}"
        self.ns_ip = f"169.254.{100 + subnet // 64 % 150}.{base + 2}"
        self._processes: list[subprocess.Popen[bytes]] = []

    def __enter__(self) -> Namespace:
        run = _run
        run("ip", "netns", "add", self.name)
        try:
            self.exec("ip", "link", "set", "lo", "up")
            run("ip", "link", "add", self.host_if, "type", "veth", "peer", "name", self.ns_if, "netns", self.name)
            run("ip", "addr", "add", f"{self.host_ip}/30", "dev", self.host_if)
            run("ip", "link", "set", self.host_if, "up")
            self.exec("ip", "addr", "add", f"{self.ns_ip}/30", "dev", self.ns_if)
            self.exec("ip", "link", "set", self.ns_if, "up")
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def exec(self, *args: str) -> str:
        return _run("ip", "netns", "exec", self.name, *args)

    def nft(self, script: str) -> None:
        """Apply an nft script inside the namespace (``nft -f -``)."""
        done = subprocess.run(
            ["ip", "netns", "exec", self.name, "nft", "-f", "-"], input=script, capture_output=True, text=True
        )
        if done.returncode != 0:
            raise RuntimeError(f"nft failed: {done.stderr.strip()}\n{script}")

    def shape(self, rate: str, burst: str = "16kb", latency: str = "500ms") -> None:
        """A token bucket (``tc tbf``) on the host end of the veth: what this process sends is paced to ``rate``."""
        tbf = ["tbf", "rate", rate, "burst", burst, "latency", latency]
        _run("tc", "qdisc", "replace", "dev", self.host_if, "root", *tbf)

    def spawn(self, *args: str) -> subprocess.Popen[bytes]:
        """Start a process inside the namespace, tracked by pid and killed on :meth:`close`."""
        process = subprocess.Popen(
            ["ip", "netns", "exec", self.name, *args],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        self._processes.append(process)
        return process

    def close(self) -> None:
        for process in self._processes:
            if process.poll() is None:
                process.kill()
            process.wait()
            if process.stderr is not None:
                process.stderr.close()
        self._processes.clear()
        subprocess.run(["ip", "link", "del", self.host_if], capture_output=True)
        subprocess.run(["ip", "netns", "del", self.name], capture_output=True)


def _run(*args: str) -> str:
    done = subprocess.run(list(args), capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(args)} failed: {done.stderr.strip()}")
    return done.stdout


async def wait_listening(host: str, port: int, process: subprocess.Popen[bytes], timeout: float = 15.0) -> None:
    """Wait until ``host:port`` accepts TCP connections (the collector has no readiness signal)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        if process.poll() is not None:
            stderr = process.stderr.read().decode(errors="replace") if process.stderr else ""
            raise RuntimeError(f"the collector exited with {process.returncode}: {stderr}")
        try:
            _, writer = await asyncio.open_connection(host, port)
        except OSError:
            if loop.time() > deadline:
                raise TimeoutError(f"nothing listens on {host}:{port} after {timeout}s") from None
            await asyncio.sleep(0.02)
            continue
        writer.close()
        with contextlib.suppress(OSError):
            await writer.wait_closed()
        return


# -- peak RSS ------------------------------------------------------------------------------------------------


def _status_kib(field_name: str) -> int | None:
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith(field_name + ":"):
                    return int(line.split()[1])
    except OSError:
        pass
    return None


def reset_peak() -> int:
    """Reset the peak RSS to the current RSS where Linux allows it (clear_refs 5); return the baseline (KiB)."""
    try:
        with open("/proc/self/clear_refs", "w") as refs:
            refs.write("5")
    except OSError:
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return _status_kib("VmHWM") or resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


def peak_kib() -> int:
    """The peak RSS (KiB) since the last :func:`reset_peak`."""
    return _status_kib("VmHWM") or resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


async def rotel_in(namespace: Namespace, forward_to: str | None = None) -> tuple[str, str]:
    """Start the real rotel collector inside ``namespace``, listening on its veth address; return its OTLP/HTTP
    and OTLP/gRPC endpoints, reachable from this process through the veth. It drops what it receives
    (blackhole), or forwards it over OTLP/gRPC to ``forward_to`` (an endpoint reachable from the namespace: the
    host end of the veth, ``namespace.host_ip``)."""
    http, grpc = 4318, 4317  # the namespace is ours alone: the standard ports are free
    exporter = ["--exporter", "blackhole"]
    if forward_to is not None:
        exporter = ["--exporter", "otlp", "--otlp-exporter-endpoint", forward_to, "--otlp-exporter-protocol", "grpc"]
    process = namespace.spawn(
        find_rotel(),
        "start",
        "--otlp-grpc-endpoint",
        f"{namespace.ns_ip}:{grpc}",
        "--otlp-http-endpoint",
        f"{namespace.ns_ip}:{http}",
        *exporter,
        "--disable-batching",
    )
    for port in (http, grpc):
        await wait_listening(namespace.ns_ip, port, process)
    return f"http://{namespace.ns_ip}:{http}", f"http://{namespace.ns_ip}:{grpc}"


# -- results and self-metrics --------------------------------------------------------------------------------


@dataclass
class Ledger:
    """An :class:`~aiotlp.Exporter` wrapper that checks and keeps every result, tagged with the current ``phase``."""

    inner: Exporter
    phase: str = ""
    results: list[tuple[str, ExportResult]] = field(default_factory=list)

    async def export_traces(self, spans: Sequence[Span]) -> ExportResult:
        phase = self.phase
        result = accounted(await self.inner.export_traces(spans))
        self.results.append((phase, result))
        return result

    async def export_metrics(self, metrics: Sequence[Metric]) -> ExportResult:  # pragma: no cover - unused
        return accounted(await self.inner.export_metrics(metrics))

    async def export_logs(self, records: Sequence[LogRecord]) -> ExportResult:  # pragma: no cover - unused
        return accounted(await self.inner.export_logs(records))

    async def shutdown(self, timeout: float | None = None) -> None:
        await self.inner.shutdown(timeout)

    def causes(self, phase: str) -> Counter[str]:
        """Failed items of ``phase`` by root cause: the last attempt's error class behind a retry or deadline."""
        kinds: Counter[str] = Counter()
        for tag, result in self.results:
            if tag == phase and result.failed:
                error = result.error
                kinds[type(getattr(error, "last", None) or error).__name__] += result.failed
        return kinds


def metric_values(reader: Any, name: str) -> dict[str | None, float]:
    """The sums of an OpenTelemetry SDK ``InMemoryMetricReader``'s metric ``name``, by ``error.type``."""
    values: dict[str | None, float] = {}
    data = reader.get_metrics_data()
    for resource_metrics in data.resource_metrics if data else ():
        for scope_metrics in resource_metrics.scope_metrics:
            for metric in scope_metrics.metrics:
                if metric.name == name:
                    for point in metric.data.data_points:
                        key = point.attributes.get("error.type")
                        values[key] = values.get(key, 0) + point.value
    return values
