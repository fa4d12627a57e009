"""The child processes of the kill -9 replay tests: an SDK pipeline with the disk queue, set up one way.

    python tests/user_paths/replay_child.py write|replay VARIANT SIGNAL ENDPOINT DIRECTORY COUNT

``write`` (the collector is down: ENDPOINT is a closed port): ends COUNT spans (emits COUNT log records) named
``s<n>``, flushes the provider so they are on disk, prints ``FLUSHED <force_flush's result>``, and waits to be
killed. ``replay`` (the collector is up): makes the same pipeline, ends nothing, prints ``HOLD`` and waits for a
line on stdin while the test watches the collector; then exits without ``shutdown()``.

VARIANT, how the disk queue is switched on:

* ``processor-queue_dir``: ``aiotlp.sdk.BatchSpanProcessor(SpanExporter(...), queue_dir=DIRECTORY)``;
* ``exporter-queue_dir-official``: the SDK's own BatchSpanProcessor over ``SpanExporter(..., queue_dir=...)``;
* ``exporter-queue_dir-aiotlp``: aiotlp's processor over ``SpanExporter(..., queue_dir=...)``;
* ``AIOTLP_QUEUE_DIR-official`` / ``AIOTLP_QUEUE_DIR-aiotlp``: the variable (set by the test), and the SDK's
  processor or aiotlp's over a plain ``SpanExporter(...)``.

(The log twins for SIGNAL ``logs``.)
"""

from __future__ import annotations

import sys
import time
from typing import Any

import aiotlp.sdk
from aiotlp import RetryPolicy

MODE, VARIANT, SIGNAL, ENDPOINT, DIRECTORY, COUNT = sys.argv[1:7]


def pipeline() -> Any:
    queue_dir = {"queue_dir": DIRECTORY}
    on_exporter = queue_dir if VARIANT.startswith("exporter-queue_dir") else {}
    on_processor = queue_dir if VARIANT == "processor-queue_dir" else {}
    official = VARIANT.endswith("-official")
    retry = RetryPolicy(initial_backoff=0.05, max_backoff=0.2)
    if SIGNAL == "traces":
        from opentelemetry.sdk.trace import TracerProvider

        exporter: Any = aiotlp.sdk.SpanExporter(ENDPOINT + "/v1/traces", timeout=2, retry=retry, **on_exporter)
        if official:
            from opentelemetry.sdk.trace.export import BatchSpanProcessor

            processor: Any = BatchSpanProcessor(exporter, schedule_delay_millis=60_000)
        else:
            processor = aiotlp.sdk.BatchSpanProcessor(exporter, schedule_delay_millis=60_000, **on_processor)
        provider: Any = TracerProvider()
        provider.add_span_processor(processor)
        return provider
    from opentelemetry.sdk._logs import LoggerProvider

    exporter = aiotlp.sdk.LogExporter(ENDPOINT + "/v1/logs", timeout=2, retry=retry, **on_exporter)
    if official:
        from opentelemetry.sdk._logs.export import BatchLogRecordProcessor

        processor = BatchLogRecordProcessor(exporter, schedule_delay_millis=60_000)
    else:
        processor = aiotlp.sdk.BatchLogRecordProcessor(exporter, schedule_delay_millis=60_000, **on_processor)
    provider = LoggerProvider()
    provider.add_log_record_processor(processor)
    return provider


def write(provider: Any) -> None:
    if SIGNAL == "traces":
        tracer = provider.get_tracer("user-paths")
        for n in range(int(COUNT)):
            with tracer.start_as_current_span(f"s{n}"):
                pass
    else:
        from opentelemetry._logs import SeverityNumber

        logger = provider.get_logger("user-paths")
        for n in range(int(COUNT)):
            logger.emit(body=f"s{n}", severity_number=SeverityNumber.INFO)
    flushed = provider.force_flush(10_000)
    print(f"FLUSHED {flushed}", flush=True)
    while True:  # until SIGKILL
        time.sleep(60)


if __name__ == "__main__":
    provider = pipeline()
    if MODE == "write":
        write(provider)
    else:
        print("HOLD", flush=True)
        sys.stdin.readline()
