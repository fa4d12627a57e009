"""encode: SDK ReadableSpans -> OTLP protobuf bytes, on one core.

The official encoder (``encode_spans(...).SerializeToString()``, protobuf upb) vs ``aiotlp.sdk.encode_spans``
(SDK spans straight to bytes) vs aiotlp's own model (``encode_traces``, the spans already in aiotlp's model).
"""

from __future__ import annotations

import time
from collections.abc import Callable

from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans as official_encode_spans

from aiotlp.encoding import encode_traces
from aiotlp.sdk import encode_spans

from ._common import BATCH, OFFICIAL, Context, Sample, aiotlp_batch, sdk_batch


async def run(ctx: Context) -> list[Sample]:
    sdk, model = sdk_batch(BATCH), aiotlp_batch(BATCH)
    encoders: dict[str, Callable[[], bytes]] = {
        OFFICIAL: lambda: official_encode_spans(sdk).SerializeToString(),  # type: ignore[no-any-return]
        "aiotlp.sdk": lambda: encode_spans(sdk),
        "aiotlp model": lambda: encode_traces(model),
    }
    rate = Sample("spans/s per core", "spans/s")
    size = Sample("bytes/span", "B", higher_is_better=False)
    budget = ctx.seconds(0.5, 0.1)
    for name, encode in encoders.items():
        size.values[name] = len(encode()) / BATCH  # also the warm-up
        calls, cpu_start, end = 0, time.process_time(), time.perf_counter() + budget
        while calls < 2 or time.perf_counter() < end:
            encode()
            calls += 1
        rate.values[name] = calls * BATCH / (time.process_time() - cpu_start)
    return [rate, size]
