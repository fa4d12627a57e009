"""What every scenario shares: the context it runs in, what it returns, and the spans it sends."""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import time
from collections.abc import Callable, Coroutine, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

from opentelemetry.sdk.trace import ReadableSpan

from aiotlp.model import Span
from benchmarks.encode_quick import aiotlp_spans, raw_spans, sdk_spans

__all__ = [
    "BATCH",
    "PROTOCOLS",
    "Context",
    "RssSampler",
    "Sample",
    "aiotlp_batch",
    "aiotlp_endpoint",
    "child_arguments",
    "official_exporter",
    "percentile",
    "run_child",
    "run_on",
    "sdk_batch",
]

_T = TypeVar("_T")

BATCH = 512
PROTOCOLS = ("grpc", "http/protobuf")
OFFICIAL = "official"


@dataclass(frozen=True)
class Context:
    """Where a scenario runs: rotel's endpoints, the loop name, and whether to shrink everything (``--quick``)."""

    grpc_endpoint: str
    http_endpoint: str
    loop: str = "asyncio"
    quick: bool = False

    def seconds(self, full: float, quick: float = 0.2) -> float:
        return quick if self.quick else full

    def count(self, full: int, quick: int) -> int:
        return quick if self.quick else full


@dataclass
class Sample:
    """One measured quantity in one repetition, per implementation (``official`` is the reference)."""

    metric: str
    unit: str
    values: dict[str, float] = field(default_factory=dict)
    higher_is_better: bool = True


def percentile(values: Sequence[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else float("nan")


_SDK: dict[int, list[ReadableSpan]] = {}
_AIOTLP: dict[int, list[Span]] = {}


def sdk_batch(count: int = BATCH) -> list[ReadableSpan]:
    """``count`` SDK spans (8 attributes + 1 event, realistic names), built once."""
    if count not in _SDK:
        _SDK[count] = sdk_spans(raw_spans(count))
    return _SDK[count]


def aiotlp_batch(count: int = BATCH) -> list[Span]:
    """The same spans in aiotlp's model."""
    if count not in _AIOTLP:
        _AIOTLP[count] = aiotlp_spans(raw_spans(count))
    return _AIOTLP[count]


def aiotlp_endpoint(ctx_grpc: str, ctx_http: str, protocol: str) -> str:
    """The endpoint as ``OTLPExporter`` and ``aiotlp.sdk.SpanExporter`` take it (HTTP: the full traces URL)."""
    return ctx_grpc if protocol == "grpc" else f"{ctx_http}/v1/traces"


def official_exporter(protocol: str, grpc_endpoint: str, http_endpoint: str) -> object:
    """The official ``OTLPSpanExporter`` for ``protocol``."""
    if protocol == "grpc":
        from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter as GrpcExporter

        return GrpcExporter(endpoint=grpc_endpoint.removeprefix("http://"), insecure=True)
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter as HttpExporter

    return HttpExporter(endpoint=f"{http_endpoint}/v1/traces")


_SAMPLER = """
import os, select, sys
path, page = f"/proc/{sys.argv[1]}/statm", os.sysconf("SC_PAGE_SIZE")
def current():
    with open(path) as statm:
        return int(statm.read().split()[1]) * page
peak = current()
sys.stdout.write("ready\\n"); sys.stdout.flush()
while not select.select([sys.stdin], [], [], 0.005)[0]:
    peak = max(peak, current())
sys.stdout.write(f"{max(peak, current())}\\n")
"""


class RssSampler:
    """The process's resident set size, sampled every 5 ms by a helper process: peak growth over the baseline.

    ``ru_maxrss`` cannot give the growth during a run: it is the peak since the process started, and start-up
    (imports, a gRPC channel) often peaked higher than the run ever goes, which made the growth read 0. The
    sampler is a separate process, not a thread: a thread waking every 5 ms takes the GIL from the measured
    threads (it slowed the flat-out producer by a fifth and lengthened the exporting thread's GIL waits).
    """

    _PAGE = os.sysconf("SC_PAGE_SIZE")

    def __init__(self) -> None:
        self.baseline = self.peak = self.current()
        self._process: subprocess.Popen[str] | None = None

    @classmethod
    def current(cls) -> int:
        with open("/proc/self/statm") as statm:
            return int(statm.read().split()[1]) * cls._PAGE

    def __enter__(self) -> RssSampler:
        self.baseline = self.peak = self.current()
        self._process = subprocess.Popen(
            [sys.executable, "-c", _SAMPLER, str(os.getpid())], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
        )
        assert self._process.stdout is not None
        self._process.stdout.readline()  # "ready": sampling from here on
        return self

    def __exit__(self, *exc_info: object) -> None:
        process = self._process
        if process is not None:
            self._process = None
            out, _ = process.communicate("stop\n", timeout=10)
            self.peak = max(self.peak, int(out.split()[-1]))
        self.peak = max(self.peak, self.current())

    @property
    def growth_mib(self) -> float:
        return (self.peak - self.baseline) / 2**20

    @property
    def peak_mib(self) -> float:
        return self.peak / 2**20


def child_arguments(*, loop: bool = True) -> argparse.Namespace:
    """A scenario's child process arguments: side, protocol, endpoints, seconds (and the loop's name)."""
    parser = argparse.ArgumentParser()
    for name in ("side", "protocol", "grpc_endpoint", "http_endpoint"):
        parser.add_argument(name)
    parser.add_argument("seconds", type=float)
    if loop:
        parser.add_argument("loop", choices=("asyncio", "uvloop"))
    return parser.parse_args()


def run_on(loop: str, coro: Coroutine[Any, Any, _T]) -> _T:
    """Run ``coro`` on a new event loop of the harness's kind (``asyncio`` or ``uvloop``)."""
    factory: Callable[[], asyncio.AbstractEventLoop] = asyncio.new_event_loop
    if loop == "uvloop":
        import uvloop

        factory = uvloop.new_event_loop
    with asyncio.Runner(loop_factory=factory) as runner:
        return runner.run(coro)


def timed(fn: Callable[[], object]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


async def run_child(module: str, *args: str, timeout: float = 120) -> dict[str, float]:
    """Run ``python -m module *args`` in a fresh process; it prints one JSON object on its last stdout line."""
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", module, *args, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
    )
    try:
        out, err = await asyncio.wait_for(process.communicate(), timeout)
    except asyncio.TimeoutError:
        process.kill()
        await process.wait()
        raise
    if process.returncode != 0:
        raise RuntimeError(f"{module} {' '.join(args)} exited with {process.returncode}:\n{err.decode()[-2000:]}")
    result: dict[str, float] = json.loads(out.decode().strip().splitlines()[-1])
    return result
