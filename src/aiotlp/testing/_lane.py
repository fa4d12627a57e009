"""A scripted native lane (:class:`aiotlp.processing.Lane`), for tests of a processor's lane path without threads
or sockets: the test says when each batch sent on it ends, and how."""

from __future__ import annotations

import threading
from collections.abc import Callable

from aiotlp.export import LANE_CLOSED, ExportResult
from aiotlp.processing import Batch

__all__ = ["ScriptedLane"]


class ScriptedLane:
    """Keeps the batches sent on it until :meth:`end` ends one, as aiotlp's native lane keeps a request until its
    response: ``workers`` at once (``room``), none with ``refuse``. Like the native lane it calls ``notify`` (set
    it to the processor's ``lane_notified``) after an outcome that is not a full success, and after the next
    outcome once :meth:`wake_on_done` asked for it; :meth:`close` ends what is held as ``CLOSED``."""

    def __init__(self, *, workers: int = 2, refuse: bool = False) -> None:
        self.workers = workers
        self.refuse = refuse
        self.notify: Callable[[], None] = lambda: None
        self.sent: list[Batch] = []
        """Every batch sent on it, in order."""
        self.sent_items: list[list[object]] = []
        """Their items, as sent (a settled batch lets go of its own)."""
        self.held: list[Batch] = []
        """The batches sent and not ended yet."""
        self.closed = False
        self.wakes_asked = 0
        self._done: list[tuple[Batch, ExportResult | str]] = []
        self._wake = False
        self._lock = threading.Lock()

    @property
    def room(self) -> int:
        with self._lock:
            return 0 if self.closed or self.refuse else self.workers - len(self.held)

    def send(self, batch: Batch) -> bool:
        with self._lock:
            if self.closed or self.refuse or len(self.held) >= self.workers:
                return False
            self.held.append(batch)
            self.sent.append(batch)
            self.sent_items.append(list(batch.items))
            return True

    def collect(self) -> list[tuple[Batch, ExportResult | str]]:
        with self._lock:
            done, self._done = self._done, []
            return done

    def wake_on_done(self) -> bool:
        with self._lock:
            self._wake = True
            self.wakes_asked += 1
            return bool(self._done)

    def end(self, outcome: ExportResult | str | None = None, *, index: int = 0) -> Batch:
        """End the ``index``-th held batch with ``outcome`` (a full success by default); returns it."""
        with self._lock:
            batch = self.held.pop(index)
            if outcome is None:
                outcome = ExportResult(items=batch.weight, accepted=batch.weight, requests=1)
            self._done.append((batch, outcome))
            plain = isinstance(outcome, ExportResult) and outcome.accepted >= batch.weight
            tell = not plain or self._wake
            self._wake = False
        if tell:
            self.notify()
        return batch

    def close(self) -> None:
        with self._lock:
            self.closed = True
            self._done.extend((batch, LANE_CLOSED) for batch in self.held)
            self.held = []
