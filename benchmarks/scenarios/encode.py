"""encode: SDK ReadableSpans -> OTLP protobuf bytes, on one core.

The official encoder (``encode_spans(...).SerializeToString()``, protobuf upb) vs ``aiotlp.sdk.encode_spans``
(SDK spans straight to bytes) vs aiotlp's own model (``encode_traces``, the spans already in aiotlp's model),
each with the pure-Python encoder (``python``) and with the compiled accelerator (``c``, when it is built and
``AIOTLP_NO_EXTENSIONS`` is not set; see aiotlp.encoding._compat).
"""

from __future__ import annotations

import time
from collections.abc import Callable

from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans as official_encode_spans

from aiotlp.encoding import _compat, encode_traces
from aiotlp.sdk import encode_spans

from ._common import BATCH, OFFICIAL, Context, Sample, aiotlp_batch, sdk_batch


async def run(ctx: Context) -> list[Sample]:
    sdk, model = sdk_batch(BATCH), aiotlp_batch(BATCH)
    encoders: dict[str, tuple[str | None, Callable[[], bytes]]] = {
        OFFICIAL: (None, lambda: official_encode_spans(sdk).SerializeToString()),
    }
    choices = [c for c in _compat.IMPLEMENTATIONS if c == "python" or _compat.speedups is not None]
    for choice in choices:
        encoders[f"aiotlp.sdk ({choice})"] = (choice, lambda: encode_spans(sdk))
    for choice in choices:
        encoders[f"aiotlp model ({choice})"] = (choice, lambda: encode_traces(model))
    rate = Sample("spans/s per core", "spans/s")
    size = Sample("bytes/span", "B", higher_is_better=False)
    budget = ctx.seconds(0.5, 0.1)
    previous = _compat.implementation()
    try:
        for name, (choice, encode) in encoders.items():
            if choice is not None:
                _compat.use(choice)  # type: ignore[arg-type]
            size.values[name] = len(encode()) / BATCH  # also the warm-up
            calls, cpu_start, end = 0, time.process_time(), time.perf_counter() + budget
            while calls < 2 or time.perf_counter() < end:
                encode()
                calls += 1
            rate.values[name] = calls * BATCH / (time.process_time() - cpu_start)
    finally:
        _compat.use(previous)
    return [rate, size]
