"""``aiotlp queue [DIR]``: what waits in a disk queue directory, read-only.

``DIR`` (default ``AIOTLP_QUEUE_DIR``) is what ``queue_dir=`` / ``AIOTLP_QUEUE_DIR`` names: one queue per signal
in ``DIR/traces``, ``DIR/metrics``, ``DIR/logs``; a directory that is itself one queue (``DurableExporter(...,
directory)``) works too. For each queue: records, items, bytes, the oldest record's age (a lower bound), damaged
records and quarantined ``*.corrupt`` segments, and whether a live process holds its lock (with the pid it wrote).
Nothing is written, no lock is taken (:func:`aiotlp.durable.inspect_queue`): safe beside a running service and on
what a crashed one left.
"""

from __future__ import annotations

import os
from pathlib import Path

from .._exceptions import ConfigurationError
from ..config import queue_dir_from_env
from ..durable import QueueInspection, inspect_queue
from ..model import Signal
from ._ui import UI

__all__ = ["age_text", "lock_text", "queue_directories", "run_queue", "waiting_text"]

_UNITS = {Signal.TRACES: "spans", Signal.METRICS: "metric data points", Signal.LOGS: "log records"}


def age_text(seconds: float | None) -> str:
    """``≥ 2m 05s``: the oldest record's age is a lower bound (the last write to its segment)."""
    if seconds is None:
        return "-"
    whole = int(seconds)
    if whole < 60:
        text = f"{whole}s"
    elif whole < 3600:
        text = f"{whole // 60}m {whole % 60:02d}s"
    elif whole < 86400:
        text = f"{whole // 3600}h {whole % 3600 // 60:02d}m"
    else:
        text = f"{whole // 86400}d {whole % 86400 // 3600:02d}h"
    return "≥ " + text


def lock_text(found: QueueInspection) -> str:
    pid = "an unknown pid" if found.pid is None else f"pid {found.pid}"
    if found.lock == "held":
        return f"held by {pid}"
    if found.lock == "free":
        return f"free (last held by {pid})"
    return "free (never opened)"


def waiting_text(found: QueueInspection) -> str:
    """``3 records (12 spans, 1 log records), 4,096 bytes``."""
    if not found.records:
        return f"nothing waiting ({found.bytes:,} bytes of segment files)" if found.bytes else "nothing waiting"
    items = ", ".join(f"{count:,} {_UNITS[signal]}" for signal, count in sorted(found.by_signal.items()))
    return f"{found.records:,} records ({items}), {found.bytes:,} bytes, oldest {age_text(found.oldest_age)}"


def queue_directories(directory: str) -> list[tuple[str, str]]:
    """``[(name, path)]``: the per-signal queues under ``directory`` (``traces``, ``metrics``, ``logs``), or
    ``directory`` itself when it holds none of them."""
    found = [(s.value, os.path.join(directory, s.value)) for s in Signal]
    found = [(name, path) for name, path in found if os.path.isdir(path)]
    return found or [(os.path.basename(os.path.normpath(directory)) or directory, directory)]


def run_queue(ui: UI, directory: Path | None) -> int:
    if directory is not None:
        where, source = str(directory), "argument"
    else:
        chosen = queue_dir_from_env()
        if chosen is None:
            raise ConfigurationError("no queue directory: give one (aiotlp queue DIR) or set AIOTLP_QUEUE_DIR")
        where, source = chosen, "from AIOTLP_QUEUE_DIR"
    path = os.path.abspath(where)
    if not os.path.isdir(path):
        reason = "does not exist" if not os.path.lexists(path) else "is not a directory"
        raise ConfigurationError(f"the queue directory {path} ({source}) {reason}")
    ui.line(f"aiotlp queue: {path} ({source}), read-only", "bold")
    inspections = [(name, inspect_queue(queue_path)) for name, queue_path in queue_directories(path)]
    rows = [
        [
            name,
            f"{found.records:,}",
            ", ".join(f"{count:,} {_UNITS[signal]}" for signal, count in sorted(found.by_signal.items())) or "0",
            f"{found.bytes:,}",
            age_text(found.oldest_age),
            f"{found.damaged_records}",
            f"{len(found.corrupt_files)}",
            lock_text(found),
        ]
        for name, found in inspections
    ]
    ui.table("", ["queue", "records", "items", "bytes", "oldest", "damaged", "quarantined", "lock"], rows)
    for name, found in inspections:
        if found.lock == "held":
            ui.line(
                f"● {name}: in use by pid {found.pid if found.pid is not None else '?'}: that process delivers "
                "what waits here; another process cannot open this queue (give each its own directory)"
            )
        elif found.records:
            ui.line(f"● {name}: no process holds it: what waits is sent when a process opens this queue again")
        if found.damaged_records:
            ui.line(
                f"✗ {name}: {found.damaged_records} damaged record(s) ({found.damaged_bytes:,} bytes to the end of "
                "their segment, a torn write or a bit flip): the queue skips them, counts them, and renames the "
                "segment *.corrupt",
                "red",
            )
        if found.corrupt_files:
            ui.line(
                f"⚠ {name}: {len(found.corrupt_files)} quarantined segment(s) ({found.corrupt_bytes:,} bytes): "
                f"{', '.join(found.corrupt_files)}; kept for inspection, delete them when done",
                "yellow",
            )
        for problem in found.problems:
            ui.line(f"⚠ {name}: {problem}", "yellow")
    return 0
