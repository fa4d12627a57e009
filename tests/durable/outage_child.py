"""The child process of the collector-outage test: a steady producer of spans through a BatchProcessor into a
DurableExporter, in a process of its own so that its peak RSS is the pipeline's alone.

    python tests/durable/outage_child.py DIRECTORY ENDPOINT SPANS_PER_SECOND SECONDS

Produces for SECONDS at SPANS_PER_SECOND (spans numbered from 0), printing ``READY`` after one second (the
warm-up: imports, connections, buffers; the RSS baseline is the peak so far) and ``P <n>`` (spans produced so far)
every 100 ms; then shuts down (the queue drains within 60 s) and prints ``RESULT <json>``.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import os
import resource
import sys

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", ".."))

from tests.durable.helpers import inner, make_spans

from aiotlp import BatchProcessor, DurableExporter
from aiotlp.model import Signal


def peak_kib() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


async def main(directory: str, endpoint: str, rate: int, seconds: float) -> None:
    exporter = DurableExporter(inner(endpoint), directory, retry_initial=0.1, retry_max=1.0)
    processor = BatchProcessor(
        exporter, Signal.TRACES, max_queue_size=8192, max_export_batch_size=512, schedule_delay=0.2
    )
    loop = asyncio.get_running_loop()
    start = loop.time()
    produced = 0
    baseline = None
    dropped = 0
    next_report = start
    while (now := loop.time()) - start < seconds:
        due = int((now - start) * rate)
        for span in make_spans(produced, due - produced):
            if not processor.put_nowait(span):
                dropped += 1
        produced = due
        if now >= next_report:
            print(f"P {produced}", flush=True)
            next_report += 0.1
        if baseline is None and now - start >= 1.0:
            baseline = peak_kib()
            print("READY", flush=True)
        await asyncio.sleep(0.01)  # the producer's pace
    print(f"P {produced}", flush=True)
    await processor.shutdown(timeout=60)
    result = {
        "produced": produced,
        "dropped_by_processor": dropped,
        "baseline_kib": baseline,
        "growth_kib": peak_kib() - (baseline or 0),
        "durable": dataclasses.asdict(exporter.statistics()),
    }
    print("RESULT " + json.dumps(result), flush=True)


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], sys.argv[2], int(sys.argv[3]), float(sys.argv[4])))
