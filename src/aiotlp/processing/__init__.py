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

import os
from collections.abc import Callable
from types import ModuleType
from typing import Any, Final

from ._batch import BatchProcessor, OverflowPolicy
from ._binding import SHUTDOWN_GRACE, Batch
from ._queue import READY, BoundedQueue, _Chunk, estimate_size
from ._selfmetrics import ExporterInstruments, exporter_attributes
from ._shipping import Lane
from ._stats import DROP_REASONS, DropReason, FlushOutcome, FlushStatus, ProcessorStatistics

__all__ = [
    "DROP_REASONS",
    "READY",
    "SHUTDOWN_GRACE",
    "Batch",
    "BatchProcessor",
    "BoundedQueue",
    "DropReason",
    "ExporterInstruments",
    "FlushOutcome",
    "FlushStatus",
    "HotPut",
    "Lane",
    "OverflowPolicy",
    "ProcessorStatistics",
    "estimate_size",
    "exporter_attributes",
    "put_sized",
]


def _load_putfast() -> ModuleType | None:
    """``aiotlp.processing._putfast`` (optional C extension), its slots registered; ``None`` when it is not built
    or ``AIOTLP_NO_EXTENSIONS`` is set (the kill switch, read here as in ``aiotlp.encoding._compat``)."""
    if os.environ.get("AIOTLP_NO_EXTENSIONS", "") not in ("", "0"):
        return None
    try:
        from . import _putfast
    except ImportError:  # not built (no compiler at install time), or built for another interpreter
        return None
    _putfast.queue_slots(BoundedQueue, _Chunk)  # where the queue's state is (its __slots__), read and written in place
    return _putfast


_putfast_module: Final = _load_putfast()

put_sized: Final[Callable[[BoundedQueue[Any], Any, int], int]] = (
    BoundedQueue.put_sized if _putfast_module is None else _putfast_module.queue_put_sized
)
"""``put_sized(queue, item, size) -> int``: a :class:`BoundedQueue`'s ``put_sized(item, size)`` for an item of
weight 1 and a known size, in one call (the SDK's ``on_end`` hot path). The compiled twin (``_putfast``, when
built and ``AIOTLP_NO_EXTENSIONS`` is unset) does the plain case in place and returns ``0`` (admitted) or ``1``
(ready: wake the worker); for anything else (the queue full or closed, a new chunk needed, another queue type) it
returns ``-1``, having changed nothing: then call ``queue.put_sized(item, size)``. Without it, this is
``BoundedQueue.put_sized`` itself (never ``-1``)."""

HotPut: Final[Callable[..., Callable[[Any], Any]] | None] = None if _putfast_module is None else _putfast_module.HotPut
"""``HotPut(namespace, name, encode, types, direct, source, ids, queue, ready, slow, full)``, compiled only (else
``None``): a producer's whole hot path as one callable of one argument, for the SDK span processor's ``on_end``
(installed on the instance): while ``namespace[name] is encode`` (the encoders' switch has not rebound it), it calls
``encode(types, direct, source._memo, ids, item)``; a ``(key, field)`` tuple is put in ``queue`` with
``len(field)`` as its size (as :data:`put_sized`, then ``queue.put_sized``), and ``ready()`` is called when that
made a batch ready; ``None`` ends there; anything else goes to ``slow(item)``. After a switch, every item goes to
``full(item)``."""
