"""The crash-safe disk queue: an opt-in layer between the batch processor and the exporter.

* :class:`DurableExporter`: a drop-in for :class:`~aiotlp.export.OTLPExporter` that writes each encoded request
  to disk before it returns, and delivers from disk in the background, at least once (see its module docstring
  for the durability policies and what an :class:`~aiotlp.export.ExportResult` means with the queue on);
* :class:`DurableQueue`: the queue itself, segment files of framed records (length | CRC-32 | payload);
* :class:`FileOps` / :class:`OsFileOps`: the file operations underneath, injectable for fault-injection tests;
* :func:`inspect_queue`: a read-only look at a queue directory (what waits, damage, the lock), for tools.

Turn it on with ``DurableExporter(OTLPExporter(...), directory)``, or set ``AIOTLP_QUEUE_DIR`` (read by
:func:`aiotlp.config.queue_dir_from_env`).
"""

from ._exporter import DurableExporter, DurableStatistics, FsyncPolicy
from ._files import FileOps, OsFileOps
from ._inspect import LockState, QueueInspection, inspect_queue
from ._queue import DEFAULT_MAX_BYTES, DurableQueue, QueuedRecord, QueueStatistics

__all__ = [
    "DEFAULT_MAX_BYTES",
    "DurableExporter",
    "DurableQueue",
    "DurableStatistics",
    "FileOps",
    "FsyncPolicy",
    "LockState",
    "OsFileOps",
    "QueueInspection",
    "QueueStatistics",
    "QueuedRecord",
    "inspect_queue",
]
