"""Quick compression benchmark: CPU per export and request bytes for none, gzip, deflate and zstd.

Encodes one batch of typical spans once (the spans of ``benchmarks/encode_quick.py``: 8 attributes, 1 event, a
parent, a shared resource and scope), as OTLP/protobuf and as OTLP/JSON, then compresses it the way the
transports do for each compression of ``aiotlp.config.COMPRESSIONS`` (``transport.compress``: gzip and deflate
level 6, zstd level 3), many times: CPU time of this process per compression, the median of ``--runs`` runs
with min and max, and the request's size. The decompression a collector pays (the FakeCollector's bounded
decoders) is printed too. Prints; asserts nothing about timings.

    .venv/bin/python benchmarks/compression_quick.py [--spans 512] [--runs 7] [--min-time 0.2]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
import zlib
from collections.abc import Callable
from pathlib import Path

if __package__ in (None, ""):  # run as a script: make `benchmarks` importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from aiotlp.config import COMPRESSIONS
from aiotlp.encoding import encode_traces, encode_traces_json
from aiotlp.transport import _zstd, compress, zstd_binding, zstd_decompress
from benchmarks.encode_quick import aiotlp_spans, raw_spans


def measure(fn: Callable[[], object], runs: int, min_time: float) -> list[float]:
    """Seconds of CPU per call, one figure per run; each run repeats the call for at least ``min_time``."""
    fn()
    times = []
    for _ in range(runs):
        calls = 0
        start = time.process_time()
        while True:
            fn()
            calls += 1
            elapsed = time.process_time() - start
            if elapsed >= min_time:
                break
        times.append(elapsed / calls)
    return times


def zstd_bindings() -> dict[str, _zstd.Zstd]:
    """Every zstd binding installed here (``backports.zstd`` stands for the standard library's 3.14 module)."""
    found = {}
    for name in ("zstandard", "compression.zstd", "backports.zstd"):
        try:
            found[name] = _zstd.load(name)
        except ImportError:
            continue
    return found


def decoder(encoding: str, limit: int) -> Callable[[bytes], bytes]:
    if encoding == "zstd":
        return lambda data: zstd_decompress(data, limit)
    if encoding == "gzip":
        return lambda data: zlib.decompressobj(16 + zlib.MAX_WBITS).decompress(data, limit + 1)
    if encoding == "deflate":
        return lambda data: zlib.decompressobj().decompress(data, limit + 1)
    return lambda data: data


Row = tuple[str, Callable[[], bytes], Callable[[bytes], bytes]]


def rows(body: bytes, others: dict[str, _zstd.Zstd]) -> list[Row]:
    """(label, compress ``body``, decompress) for each compression, and zstd by each other installed binding."""

    def by(encoding: str) -> Row:
        return encoding, lambda: compress(body, encoding), decoder(encoding, len(body))

    def by_binding(name: str, binding: _zstd.Zstd) -> Row:
        return f"zstd ({name})", lambda: binding.compress(body), lambda data: binding.decompress(data, len(body))

    out = [by("none")]
    for encoding in COMPRESSIONS:
        if encoding != "none":
            out.append(by(encoding))
        if encoding == "zstd":
            out.extend(by_binding(name, binding) for name, binding in others.items())
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--spans", type=int, default=512)
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--min-time", type=float, default=0.2, help="seconds of CPU per run (default 0.2)")
    args = parser.parse_args()

    spans = aiotlp_spans(raw_spans(args.spans))
    bodies = {"protobuf": encode_traces(spans), "json": encode_traces_json(spans)}
    encode_cpu = statistics.median(measure(lambda: encode_traces(spans), args.runs, args.min_time))
    print(
        f"{args.spans} spans; Python {sys.version.split()[0]}; zstd by {zstd_binding().name}; "
        f"median of {args.runs} runs (min-max); encoding the protobuf batch once: {encode_cpu * 1e3:.2f} ms CPU"
    )
    print()
    print("| body | compression | request bytes | ratio | compress, ms CPU per export | decompress, ms CPU |")
    print("|---|---|---:|---:|---|---|")
    others = {name: binding for name, binding in zstd_bindings().items() if name != zstd_binding().name}
    for kind, body in bodies.items():
        for label, encode, decode in rows(body, others):
            if label == "none":
                data, cpu, dcpu = body, [0.0], [0.0]
            else:
                data = encode()
                cpu = measure(encode, args.runs, args.min_time)
                dcpu = measure(lambda: decode(data), args.runs, args.min_time)  # noqa: B023
            assert decode(data) == body
            print(
                f"| {kind} | {label} | {len(data):,} | {len(data) / len(body):.3f} | "
                f"{statistics.median(cpu) * 1e3:.3f} ({min(cpu) * 1e3:.3f}-{max(cpu) * 1e3:.3f}) | "
                f"{statistics.median(dcpu) * 1e3:.3f} ({min(dcpu) * 1e3:.3f}-{max(dcpu) * 1e3:.3f}) |"
            )


if __name__ == "__main__":
    main()
