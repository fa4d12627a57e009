"""``aiotlp receive``: a local OTLP receiver for developers, printing what arrives as it arrives.

Built on :class:`aiotlp.testing.FakeCollector` (real gRPC and HTTP servers, decoding with the official messages),
answering every request with success. It prints the addresses it listens on first (tests start it on port 0 and
read them), then each request: trace trees, log lines, metric tables. ``--jsonl FILE`` appends every accepted
request as one line of OTLP/JSON, the format of the collector's file exporter, which ``aiotlp send`` replays.
SIGINT or SIGTERM stops it with a summary and exit code 0. It needs grpcio and opentelemetry-proto:
``pip install 'aiotlp[receiver]'``.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import signal
from pathlib import Path
from typing import Any, TextIO

from .._exceptions import ConfigurationError, MissingExtraError
from ._render import render_request, summarize
from ._ui import UI

__all__ = ["run_receive"]

_BIND_HINT = "is another collector running? choose other ports with --grpc-port/--http-port (0: any free port)"


def _check_port(port: int, option: str) -> None:
    if not 0 <= port <= 65535:
        raise ConfigurationError(f"{option} must be between 0 and 65535, got {port}")


def missing_receiver_extra(exc: ImportError, purpose: str) -> MissingExtraError:
    """The one-line error for a package of ``aiotlp[receiver]`` that did not import, named as pip knows it."""
    module = getattr(exc, "module", None) or exc.name or "a receiver dependency"
    module = {"google": "opentelemetry-proto", "grpc": "grpcio"}.get(module.split(".")[0], module)
    return MissingExtraError("receiver", f"{module} ({purpose})")


async def run_receive(ui: UI, *, grpc_port: int, http_port: int, jsonl: Path | None, max_items: int) -> int:
    _check_port(grpc_port, "--grpc-port")
    _check_port(http_port, "--http-port")
    if max_items < 1:
        raise ConfigurationError(f"--max-items must be positive, got {max_items}")
    try:
        from ..testing import FakeCollector, message_to_otlp_json
    except ImportError as exc:
        raise missing_receiver_extra(exc, "the OTLP receiver of `aiotlp receive`") from None

    out: TextIO | None = None
    if jsonl is not None:
        try:
            out = jsonl.open("a", encoding="utf-8")
        except OSError as exc:
            raise ConfigurationError(f"--jsonl: cannot write {str(jsonl)!r}: {exc.strerror or exc}") from None
    receiver = FakeCollector(grpc_port=grpc_port, http_port=http_port)
    try:
        await receiver.start()
    except (OSError, RuntimeError) as exc:
        if out is not None:
            out.close()
        raise ConfigurationError(
            f"cannot listen on 127.0.0.1 (gRPC port {grpc_port}, HTTP port {http_port}): {exc}; {_BIND_HINT}"
        ) from None
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError, RuntimeError):  # not on Windows' proactor loop
            loop.add_signal_handler(signum, stop.set)
    totals = {"requests": 0, "refused": 0, "spans": 0, "log records": 0, "metric data points": 0}
    try:
        ui.line("aiotlp receive: listening for OTLP (Ctrl-C to stop)", "bold")
        ui.line(f"  OTLP/gRPC  127.0.0.1:{receiver.grpc_port}    export to {receiver.grpc_endpoint} with grpc")
        ui.line(f"  OTLP/HTTP  127.0.0.1:{receiver.http_port}    export to {receiver.http_endpoint}")
        if jsonl is not None:
            ui.line(f"  recording every request to {jsonl} (OTLP/JSON lines)")
        stopper = asyncio.ensure_future(stop.wait())
        try:
            while not stop.is_set():
                waiter = asyncio.ensure_future(
                    receiver.wait_for(lambda c: bool(c.received or c.bad_requests), timeout=3600.0)
                )
                await asyncio.wait({waiter, stopper}, return_when=asyncio.FIRST_COMPLETED)
                if not waiter.done():
                    waiter.cancel()
                    with contextlib.suppress(asyncio.CancelledError, TimeoutError):
                        await waiter
                elif isinstance(waiter.exception(), TimeoutError):
                    continue
                # take everything recorded so far (no await between reading and clearing: nothing is lost)
                received, refused = list(receiver.received), list(receiver.bad_requests)
                receiver.clear()
                for bad in refused:
                    totals["refused"] += 1
                    ui.line(f"✗ refused {bad.transport} {bad.path}: {bad.status} {bad.reason}", "bold red")
                for request in received:
                    _show(ui, request, totals, max_items)
                    if out is not None:
                        out.write(json.dumps(message_to_otlp_json(request.message), separators=(",", ":")) + "\n")
                if out is not None and received:
                    out.flush()
        finally:
            stopper.cancel()
    finally:
        for signum in (signal.SIGINT, signal.SIGTERM):
            with contextlib.suppress(NotImplementedError, RuntimeError):
                loop.remove_signal_handler(signum)
        await receiver.stop()
        if out is not None:
            out.close()
    ui.line(
        f"aiotlp receive: stopped after {totals['requests']} requests: {totals['spans']} spans, "
        f"{totals['log records']} log records, {totals['metric data points']} metric data points"
        + (f", {totals['refused']} refused" if totals["refused"] else ""),
        "bold",
    )
    return 0


def _show(ui: UI, request: Any, totals: dict[str, int], max_items: int) -> None:
    signal_name = request.signal.value
    count, unit = summarize(request.message, signal_name)
    totals["requests"] += 1
    totals[unit] += count
    how = "gRPC" if request.transport == "grpc" else ("HTTP/JSON" if "json" in request.content_type else "HTTP")
    size = len(request.body)
    extras = f", {request.compression}" if request.compression else ""
    ui.line(f"← {signal_name}: {count} {unit} via {how} from {request.peer} ({size:,} bytes{extras})", "bold cyan")
    render_request(ui, request.message, signal_name, max_items=max_items)
