"""The child process of the kill -9 test: writes numbered spans into a disk queue, against a collector that is
down, and reports on stdout every range of spans that ``force_flush`` acknowledged.

    python tests/durable/crash_child.py DIRECTORY DEAD_ENDPOINT FSYNC_POLICY

Prints ``READY``, then ``ACK <first> <end>`` lines (span numbers first..end-1) until it is killed. Each line is
one small write to a pipe, so the parent never sees half a line.
"""

from __future__ import annotations

import asyncio
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", ".."))

from tests.durable.helpers import inner, make_spans

from aiotlp import DurableExporter

BATCH = 20


async def main(directory: str, endpoint: str, policy: str) -> None:
    exporter = DurableExporter(
        inner(endpoint),
        directory,
        fsync=policy,  # type: ignore[arg-type]
        retry_initial=0.05,
        retry_max=0.2,
    )
    exporter.start()
    out = sys.stdout
    out.write("READY\n")
    out.flush()
    acked = 0
    n = 0
    while True:
        await exporter.export_traces(make_spans(n, BATCH, padding=(n // BATCH) % 7 * 150))
        n += BATCH
        await asyncio.sleep(0.005)  # a steady producer (~3,000 spans/s), not a flood: the restart replays it all
        if n % (3 * BATCH) == 0 and await exporter.force_flush(5):
            out.write(f"ACK {acked} {n}\n")
            out.flush()
            acked = n


if __name__ == "__main__":
    asyncio.run(main(*sys.argv[1:4]))
