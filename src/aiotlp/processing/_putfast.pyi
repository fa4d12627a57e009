"""Type stub of the optional C extension ``aiotlp.processing._putfast`` (source: ``_putfast.c``): the compiled
twin of ``BoundedQueue.put_sized``'s plain case. Chosen (or not) in :mod:`aiotlp.processing`, which registers the
slots at import and exposes the put as :func:`aiotlp.processing.put_sized`."""

from collections.abc import Callable
from typing import Any

def queue_slots(queue_type: type, chunk_type: type, /) -> None:
    """Register where ``aiotlp.processing._queue.BoundedQueue``'s state is (its ``__slots__``) and its chunks'
    (``_Chunk``), for :func:`queue_put_sized`."""

def queue_put_sized(queue: Any, item: Any, size: int, /) -> int:
    """``BoundedQueue.put_sized(item, size)``'s plain case, in place, under the queue's lock (waited for when held):
    ``0`` (``ADMITTED``) or ``1`` (``READY``); ``-1`` for anything else (full, closed, a new chunk needed, a queue
    of another type), having changed nothing: then call ``queue.put_sized``."""

class HotPut:
    """A producer's hot path (encode, put, wake) in one call; see :data:`aiotlp.processing.HotPut`."""

    def __init__(
        self,
        namespace: dict[str, Any],
        name: str,
        encode: Callable[..., Any],
        types: Any,
        direct: Any,
        source: Any,
        ids: Any,
        queue: Any,
        ready: Callable[[], object],
        slow: Callable[[Any], object],
        full: Callable[[Any], object],
    ) -> None: ...
    def __call__(self, item: Any, /) -> Any: ...
