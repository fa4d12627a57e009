"""Run in a fresh process by test_hostile.py: export against a hostile collector, print peak RSS growth.

argv: endpoint protocol rounds [grpc_implementation]. The first export is answered normally (warm-up: imports,
connections, buffers); the baseline is the peak RSS after it. Every later answer is hostile; the output is one
JSON line.
"""

from __future__ import annotations

import asyncio
import json
import sys

from tests import samples
from tests.faults._support import accounted, peak_kib, reset_peak

from aiotlp import OTLPExporter, RetryPolicy


async def main(endpoint: str, protocol: str, rounds: int, implementation: str | None) -> None:
    async with OTLPExporter(
        endpoint=endpoint,
        protocol=protocol,
        retry=RetryPolicy(max_attempts=3),
        timeout=30,
        grpc_implementation=implementation,  # type: ignore[arg-type]
    ) as exporter:
        warm = await exporter.export_traces(samples.spans(2))
        baseline = reset_peak()
        errors = []
        failed = 0
        for _ in range(rounds):
            result = accounted(await exporter.export_traces(samples.spans(2)))
            errors.append(type(result.error).__name__ if result.error else None)
            failed += result.failed
        print(
            json.dumps(
                {
                    "warm_ok": warm.ok,
                    "baseline_kib": baseline,
                    "growth_kib": peak_kib() - baseline,
                    "errors": errors,
                    "failed": failed,
                }
            )
        )


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4] if len(sys.argv) > 4 else None))
