"""Batching and backpressure: a bounded queue in front of an exporter, one :class:`BatchProcessor` per signal.

```python
processor = BatchProcessor(exporter, Signal.TRACES, max_queue_size=2048, max_export_batch_size=512)
processor.start()                      # on the loop that will export; or lazily on first use from a loop
processor.put_nowait(span)             # from any thread: never blocks, never raises; False if dropped
outcome = await processor.force_flush(timeout=5)
outcome = await processor.shutdown(timeout=5)
processor.statistics()                 # produced == exported + rejected + failed + dropped + queued + in_flight
```

The threading model is described in :mod:`aiotlp.processing._batch` (validation, producing, the worker); the
queue layout in :mod:`aiotlp.processing._queue`; how an ended export settles its items in
:mod:`aiotlp.processing._settle` (pure); flush and shutdown in :mod:`aiotlp.processing._flushing`; calls from
other loops and threads in :mod:`aiotlp.processing._hops`; moving between loops in
:mod:`aiotlp.processing._binding`; the exporter's optional hooks in :mod:`aiotlp.processing._hooks`; the
self-metrics in :mod:`aiotlp.processing._selfmetrics`.
"""

from ._batch import BatchProcessor, OverflowPolicy
from ._binding import SHUTDOWN_GRACE
from ._queue import estimate_size
from ._stats import DROP_REASONS, DropReason, FlushOutcome, FlushStatus, ProcessorStatistics

__all__ = [
    "DROP_REASONS",
    "SHUTDOWN_GRACE",
    "BatchProcessor",
    "DropReason",
    "FlushOutcome",
    "FlushStatus",
    "OverflowPolicy",
    "ProcessorStatistics",
    "estimate_size",
]
