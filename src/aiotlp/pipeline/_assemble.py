"""``with_disk_queue`` and the public :class:`BatchProcessor`: a processing.BatchProcessor whose exporter is put
behind the disk queue when ``queue_dir=`` or ``AIOTLP_QUEUE_DIR`` asks for it."""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any, TypeVar

from .._exceptions import ConfigurationError
from ..config import BatchConfig, queue_dir_from_env
from ..durable import DurableExporter
from ..export import Exporter, OTLPExporter
from ..model import Signal
from ..processing import BatchProcessor as _BatchProcessor

__all__ = ["BatchProcessor", "with_disk_queue"]

T = TypeVar("T")


def with_disk_queue(
    exporter: Exporter,
    signal: Signal,
    queue_dir: str | os.PathLike[str] | None = None,
    environ: Mapping[str, str] | None = None,
) -> Exporter:
    """``exporter`` behind a :class:`~aiotlp.DurableExporter` in ``<dir>/<signal>`` when ``queue_dir`` (or,
    when it is None, ``AIOTLP_QUEUE_DIR``) names a directory; else ``exporter`` itself."""
    directory = queue_dir_from_env(environ, queue_dir=queue_dir)
    if directory is None:
        return exporter
    if isinstance(exporter, DurableExporter):
        raise ConfigurationError(
            f"queue_dir (or AIOTLP_QUEUE_DIR) is set, and the exporter already is a DurableExporter "
            f"(in {exporter.directory}): give one or the other"
        )
    if not isinstance(exporter, OTLPExporter):
        raise ConfigurationError(
            f"queue_dir (or AIOTLP_QUEUE_DIR) needs an aiotlp OTLPExporter to put in front of the disk queue, "
            f"got {type(exporter).__name__}"
        )
    return DurableExporter(exporter, os.path.join(directory, Signal(signal).value))


class BatchProcessor(_BatchProcessor[T]):
    """:class:`aiotlp.processing.BatchProcessor` with one more argument, ``queue_dir``: turn the crash-safe disk
    queue on (:mod:`aiotlp.durable`), in ``<queue_dir>/<signal>``: ``exporter`` (an :class:`~aiotlp.OTLPExporter`)
    is wrapped in a :class:`~aiotlp.DurableExporter` there. ``None`` reads ``AIOTLP_QUEUE_DIR`` (unset: off).
    Exports then count as done once durably queued, and :meth:`force_flush` also waits for the queue's fsync
    (see :attr:`exporter`, the wrapper)."""

    def __init__(
        self,
        exporter: Exporter,
        signal: Signal,
        *,
        queue_dir: str | os.PathLike[str] | None = None,
        **kwargs: Any,
    ) -> None:
        try:
            signal = Signal(signal)
        except ValueError:
            pass  # the base class names the bad argument
        else:
            exporter = with_disk_queue(exporter, signal, queue_dir)
        super().__init__(exporter, signal, **kwargs)

    @classmethod
    def from_config(cls, exporter: Exporter, signal: Signal, config: BatchConfig, **kwargs: Any) -> BatchProcessor[Any]:
        """A processor with ``config``'s settings; ``kwargs`` add the rest (``queue_dir`` among them)."""
        processor = super().from_config(exporter, signal, config, **kwargs)
        assert isinstance(processor, BatchProcessor)
        return processor
