"""The SDK processors' hot path as one compiled call: :func:`install_hot` (issue 13).

While a processor's hot path is on (started, encoding at the source, not shut down), its ``on_end`` /
``on_emit`` is the compiled :data:`aiotlp.processing.HotPut`, set on the instance: the SDK looks the method up on
the instance at each item (``SynchronousMultiSpanProcessor.on_end``, ``SynchronousMultiLogRecordProcessor.on_emit``)
and calls it with no Python frame of aiotlp's. Without the extension, or for a subclass that defines its own
method, the class's Python method runs, with the same result.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, MutableMapping
from typing import Any

from aiotlp.processing import HotPut


def install_hot(
    processor: Any,
    method: str,
    own: type,
    encoder: tuple[MutableMapping[str, Any], str],
    types: Any,
    direct: Any,
    other: Callable[[Any], None] | None,
) -> None:
    """Set (or remove) ``processor``'s ``method`` (``on_end`` / ``on_emit``) as its hot path's HotPut.

    ``encoder`` is ``(namespace, name)``: the module whose global ``name`` (``_span_item`` / ``_log_item``) the
    Python method calls; ``aiotlp.encoding.use`` rebinds it, and HotPut then calls the Python method whole.
    HotPut puts an encoded item as the Python method does and calls ``batch_ready`` when that made a batch ready
    (the worker woken, or the batch shipped on the lane); an item it does not encode goes to ``other`` (``None``:
    the Python method whole). With the hot path off (``processor._hot`` is None), without the extension, or when
    ``type(processor).method`` is not ``own``'s, the instance's attribute is removed: the class's method runs.
    """
    source = processor._hot
    if source is None or HotPut is None or getattr(type(processor), method) is not getattr(own, method):
        processor.__dict__.pop(method, None)
        return
    namespace, name = encoder
    whole = functools.partial(getattr(own, method), processor)
    processor.__dict__[method] = HotPut(
        namespace,
        name,
        namespace[name],
        types,
        direct,
        source,
        source._ids,
        processor._queue,
        processor._processor.batch_ready,
        whole if other is None else other,
        whole,  # after a switch of the encoders
    )
