"""Run in a fresh process by test_hostile.py: export against a hostile collector, print peak RSS growth.

argv: endpoint protocol rounds. The first export is answered normally (warm-up: imports, connections, buffers);
the baseline is the peak RSS after it. Every later answer is hostile; the output is one JSON line.
"""

from __future__ import annotations

import asyncio
import json
import resource
import sys

from tests import samples

from aiotlp import OTLPExporter, RetryPolicy


def _status_kib(field: str) -> int | None:
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except OSError:
        pass
    return None


def reset_peak() -> int:
    """Reset the peak RSS to the current RSS where Linux allows it (clear_refs 5); return the baseline."""
    try:
        with open("/proc/self/clear_refs", "w") as refs:
            refs.write("5")
    except OSError:
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return _status_kib("VmHWM") or resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


def peak_kib() -> int:
    return _status_kib("VmHWM") or resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


async def main(endpoint: str, protocol: str, rounds: int) -> None:
    async with OTLPExporter(
        endpoint=endpoint, protocol=protocol, retry=RetryPolicy(max_attempts=3), timeout=30
    ) as exporter:
        warm = await exporter.export_traces(samples.spans(2))
        baseline = reset_peak()
        errors = []
        for _ in range(rounds):
            result = await exporter.export_traces(samples.spans(2))
            errors.append(type(result.error).__name__ if result.error else None)
        print(
            json.dumps(
                {
                    "warm_ok": warm.ok,
                    "baseline_kib": baseline,
                    "growth_kib": peak_kib() - baseline,
                    "errors": errors,
                }
            )
        )


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], sys.argv[2], int(sys.argv[3])))
