"""Import time: aiotlp against the official OTLP exporters, each statement in fresh interpreters.

Each row runs its statement in a new ``python`` process (``-X importtime`` is not used: it slows imports down
unevenly) with bytecode caching on (see ``_ENV``), and times the statement alone with ``time.perf_counter``
inside that process, so the interpreter's own start-up is left out. The median of ``--runs`` processes (9 by
default), with min and max to show the machine's noise, and the ratio of each aiotlp row to the official row of
the same protocol. Prints; asserts nothing.

    .venv/bin/python benchmarks/import_time.py [--runs 9]

Rows: ``import aiotlp``; ``import aiotlp.sdk``; the gRPC-only configuration (``aiotlp.sdk.SpanExporter(
protocol="grpc")`` and ``aiotlp.sdk.grpc.OTLPSpanExporter()`` built) against importing and building the official
gRPC span exporter; the HTTP one likewise against the official HTTP span exporter. Making an exporter imports
no client: its first export does (aiotlp's processors, when they are made); the ``+ client`` rows add that import
(h2, aiotlp's HTTP/1.1 client), which the official exporters pay when they are imported.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
from typing import NamedTuple

_PROBE = """
import time
t0 = time.perf_counter()
{statement}
t1 = time.perf_counter()
print(repr((t1 - t0) * 1000))
"""


_CLIENT = "from aiotlp.transport import require_client\nrequire_client({protocol!r}, load=True)"


class Row(NamedTuple):
    label: str
    statement: str
    reference: str | None  # the label of the official row to compare with


ROWS: tuple[Row, ...] = (
    Row("official gRPC: import", "import opentelemetry.exporter.otlp.proto.grpc.trace_exporter", None),
    Row(
        "official gRPC: import + OTLPSpanExporter()",
        "from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter\nOTLPSpanExporter()",
        None,
    ),
    Row("official HTTP: import", "import opentelemetry.exporter.otlp.proto.http.trace_exporter", None),
    Row(
        "official HTTP: import + OTLPSpanExporter()",
        "from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter\nOTLPSpanExporter()",
        None,
    ),
    Row("import aiotlp", "import aiotlp", "official HTTP: import"),
    Row("import aiotlp.sdk", "import aiotlp.sdk", "official gRPC: import"),
    Row(
        "aiotlp.sdk.SpanExporter(protocol='grpc')",
        "import aiotlp.sdk\naiotlp.sdk.SpanExporter(protocol='grpc')",
        "official gRPC: import + OTLPSpanExporter()",
    ),
    Row(
        "aiotlp.sdk.grpc.OTLPSpanExporter()",
        "from aiotlp.sdk.grpc import OTLPSpanExporter\nOTLPSpanExporter()",
        "official gRPC: import + OTLPSpanExporter()",
    ),
    Row(
        "aiotlp.sdk.SpanExporter(protocol='http/protobuf')",
        "import aiotlp.sdk\naiotlp.sdk.SpanExporter(protocol='http/protobuf')",
        "official HTTP: import + OTLPSpanExporter()",
    ),
    Row(
        "aiotlp.sdk.http.OTLPSpanExporter()",
        "from aiotlp.sdk.http import OTLPSpanExporter\nOTLPSpanExporter()",
        "official HTTP: import + OTLPSpanExporter()",
    ),
    # what the first export adds: the client's import (h2, aiotlp's HTTP/1.1 client), paid by the official at import
    Row(
        "aiotlp.sdk.grpc.OTLPSpanExporter() + client",
        "from aiotlp.sdk.grpc import OTLPSpanExporter\nOTLPSpanExporter()\n" + _CLIENT.format(protocol="grpc"),
        "official gRPC: import + OTLPSpanExporter()",
    ),
    Row(
        "aiotlp.sdk.http.OTLPSpanExporter() + client",
        "from aiotlp.sdk.http import OTLPSpanExporter\nOTLPSpanExporter()\n" + _CLIENT.format(protocol="http"),
        "official HTTP: import + OTLPSpanExporter()",
    ),
)


# Installed packages come with their bytecode compiled (pip writes the .pyc files): so does aiotlp here, whatever
# PYTHONDONTWRITEBYTECODE says (it is set on some development machines; aiotlp would be compiled from source at
# every import, the official packages not). A first, unmeasured run of each row writes the .pyc files.
_ENV = {name: value for name, value in os.environ.items() if name != "PYTHONDONTWRITEBYTECODE"}


def measure(statement: str, runs: int) -> list[float]:
    """Milliseconds the statement took in each of ``runs`` fresh interpreters."""
    times: list[float] = []
    for _ in range(runs):
        out = subprocess.run(
            [sys.executable, "-c", _PROBE.format(statement=statement)],
            capture_output=True,
            text=True,
            check=True,
            env=_ENV,
        )
        times.append(float(out.stdout.strip().splitlines()[-1]))
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=9, help="fresh interpreters per row (default 9)")
    args = parser.parse_args()
    # interleaved: every row's runs spread over the whole measurement, so that the machine's load hits all alike
    samples: dict[str, list[float]] = {row.label: [] for row in ROWS}
    for row in ROWS:
        measure(row.statement, 1)  # compiles what has no .pyc yet
    for _ in range(args.runs):
        for row in ROWS:
            samples[row.label] += measure(row.statement, 1)
    medians = {label: statistics.median(times) for label, times in samples.items()}
    width = max(len(row.label) for row in ROWS)
    print(f"import time, ms: median of {args.runs} fresh interpreters (min-max); ratio to the official row")
    print(f"{'':{width}}  {'median':>8}  {'min':>8}  {'max':>8}  ratio  vs")
    for row in ROWS:
        times = samples[row.label]
        ratio = f"{medians[row.label] / medians[row.reference]:5.2f}" if row.reference else "    -"
        print(
            f"{row.label:{width}}  {medians[row.label]:8.1f}  {min(times):8.1f}  {max(times):8.1f}  {ratio}  "
            f"{row.reference or ''}"
        )


if __name__ == "__main__":
    main()
