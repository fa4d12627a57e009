"""multiprocess: K worker processes (default 2, ``BENCH_WORKERS``) each running async_loop's measurement.

All K workers of one side start together and export 512-span batches to rotel for N seconds, each in its own
event loop (aiotlp: ``await OTLPExporter.export_traces``; official: ``OTLPSpanExporter.export`` through
``asyncio.to_thread``). Reports the aggregate spans/s (sum over workers) and the CPU seconds each worker
used per second of run (1.0 = one core busy).
"""

from __future__ import annotations

import asyncio
import json
import os
import sys

from ._common import OFFICIAL, PROTOCOLS, Context, Sample, child_arguments, run_child, run_on
from .async_loop import measure

WORKERS = int(os.environ.get("BENCH_WORKERS", "2"))


async def run(ctx: Context) -> list[Sample]:
    seconds = ctx.seconds(2.0, 0.25)
    samples = []
    for protocol in PROTOCOLS:
        rate = Sample(f"aggregate spans/s, {WORKERS} procs, {protocol}", "spans/s")
        cpu = Sample(f"CPU s/s per process, {protocol}", "cores", higher_is_better=False)
        for side in (OFFICIAL, "aiotlp"):
            args = (side, protocol, ctx.grpc_endpoint, ctx.http_endpoint, str(seconds), ctx.loop)
            results = await asyncio.gather(*(run_child(__name__, *args, timeout=seconds + 60) for _ in range(WORKERS)))
            rate.values[side] = sum(r["spans_per_s"] for r in results)
            cpu.values[side] = sum(r["cpu_s"] / r["seconds"] for r in results) / WORKERS
        samples += [rate, cpu]
    return samples


def main() -> None:
    args = child_arguments()
    r = run_on(args.loop, measure(args.side, args.protocol, args.grpc_endpoint, args.http_endpoint, args.seconds))
    out = r.as_dict() | {"seconds": r.spans / r.spans_per_s}
    sys.stdout.write(json.dumps(out) + "\n")


if __name__ == "__main__":
    main()
