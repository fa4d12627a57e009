"""Exporter adapters: what the :class:`~aiotlp.processing.BatchProcessor` of an SDK batch processor calls
(``export_traces`` / ``export_logs``, ``shutdown`` and the optional hooks), on the processor's loop.

:class:`FastAdapter` sends through an aiotlp SDK exporter's own client (items encoded at the source are framed,
SDK objects encoded); :class:`GenericAdapter` calls any other SDK exporter's synchronous ``export`` in a worker
thread, one call at a time, as the SDK's processors do.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Callable, Coroutine, Sequence
from typing import Any

from opentelemetry.context import attach, detach

from aiotlp.export import ExportResult
from aiotlp.model import Signal

from ._client import SUPPRESSED, encode_batch
from ._encode import SourceEncoder
from ._exporters import AiotlpExporter
from ._queued_logs import _QUEUED

__all__ = ["FastAdapter", "GenericAdapter"]

logger = logging.getLogger("aiotlp.sdk")

_forks = 0
"""Forks into this process's line so far (a fork hook counts them): the adapter asks its client to look for a fork
(``check_fork``: a ``getpid()`` system call) only when there was one."""


def _count_fork() -> None:
    global _forks
    _forks += 1


if hasattr(os, "register_at_fork"):  # pragma: no branch - POSIX
    os.register_at_fork(after_in_child=_count_fork)


class FastAdapter:
    """Sends batches through the aiotlp SDK exporter's own OTLPExporter, on the running loop."""

    def __init__(
        self, exporter: AiotlpExporter, signal: Signal, what: str, source: SourceEncoder | None = None
    ) -> None:
        self._sdk = exporter
        self._signal = signal
        self._what = what
        # items encoded at the source are framed into a request; SDK objects are encoded
        encode = exporter._encode if source is None else source.frame
        self._encode: Callable[[Sequence[Any]], bytes] = encode
        self._codec = exporter._client.codec(encode)  # one for every batch
        self._forks = -1  # (the first export looks: the client may have been used before a fork)
        exporter._client.load_client()  # now, not at the first export on the application's loop

    @property
    def wrapped(self) -> AiotlpExporter:
        """The SDK exporter this adapter sends for (named in the processor's self-metrics)."""
        return self._sdk

    async def _export(self, items: Sequence[Any]) -> ExportResult:
        client = self._sdk._client
        total = len(items)
        if client.closed:
            return ExportResult(items=total, failed=total)
        if self._forks != _forks:  # a fork since the last export: the client drops what is the parent's
            client.check_fork()
            self._forks = _forks
        try:
            body = self._encode(items)
        except Exception:  # some cannot be encoded: encode_batch leaves them out (counted)
            pass
        else:  # the common batch: counted in the exporter's statistics, as its own exports
            return await client.export_here(items, self._codec, body)
        good, body, dropped = encode_batch(items, self._encode, self._what)
        if not dropped:  # (the encoder failed once, not again)
            return await client.export_here(good, self._codec, body)
        client.ledger.drop("invalid", dropped)
        result = ExportResult(items=dropped, dropped=dropped, invalid=dropped)  # cannot be encoded
        if good:
            result = result + await client.export_here(good, self._codec, body)
        return result

    # The verbs hand :meth:`_export`'s coroutine to the caller (one coroutine less per export): awaited as before.
    def export_traces(self, items: Sequence[Any]) -> Coroutine[Any, Any, ExportResult]:
        return self._export(items)

    def export_logs(self, items: Sequence[Any]) -> Coroutine[Any, Any, ExportResult]:
        return self._export(items)

    def still_on_disk(self, taken: int) -> int:
        """Of the ``taken`` items this adapter's exports wrote to the disk queue, how many wait there still (0
        without one): counted as ``persisted``, not ``exported``, in the statistics and the self-metrics."""
        return self._sdk._client.still_on_disk(taken)

    async def detach_loop(self) -> None:
        """The processor leaves this (application) loop: close the exporter's connections on it."""
        await self._sdk._client.detach_loop()

    def release_loop(self, loop: asyncio.AbstractEventLoop) -> None:
        """The processor left ``loop``, which is not running: let go of the exporter's connections there."""
        self._sdk._client.release_loop(loop)

    def start(self) -> None:
        """On the processor's loop as it starts: with the disk queue, open it now, so that what an earlier run
        left there is sent before (and without) any new export."""
        if self._sdk._client.queue_dir is not None:
            self._sdk._client.exporter_here()

    async def force_flush(self, timeout: float | None = None) -> bool:
        """After a flush's exports: with the disk queue, wait for its fsync (the items are then durable)."""
        durable = self._sdk._client.durable_here()
        return True if durable is None else await durable.force_flush(timeout)

    async def shutdown(self, timeout: float | None = None) -> None:
        await self._sdk._client.shutdown_here(timeout)


class GenericAdapter:
    """Calls any SDK exporter's synchronous ``export`` in a worker thread, one call at a time."""

    def __init__(self, exporter: Any, success: object) -> None:
        self._sdk = exporter
        self._success = success
        self._busy: asyncio.Future[Any] | None = None

    @property
    def wrapped(self) -> Any:
        """The SDK exporter this adapter calls (named in the processor's self-metrics)."""
        return self._sdk

    def _call(self, func: Callable[..., Any], *args: Any) -> Any:
        token = attach(SUPPRESSED)
        try:
            return func(*args)
        finally:
            detach(token)

    async def _in_thread(self, func: Callable[..., Any], *args: Any) -> Any:
        busy = self._busy
        if busy is not None and not busy.done():
            await asyncio.wait({busy})  # an export cut off by its timeout is still running in its thread
        future = asyncio.get_running_loop().run_in_executor(None, self._call, func, *args)
        self._busy = future
        return await asyncio.shield(future)

    async def _export(self, items: Sequence[Any]) -> ExportResult:
        total = len(items)
        items = [item.readable() if isinstance(item, _QUEUED) else item for item in items]
        try:
            outcome = await self._in_thread(self._sdk.export, items)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            logger.exception("exception while exporting %d items", total)
            return ExportResult(items=total, failed=total, error_message=repr(exc))
        if outcome == self._success:
            return ExportResult(items=total, accepted=total)
        return ExportResult(items=total, failed=total)

    async def export_traces(self, items: Sequence[Any]) -> ExportResult:
        return await self._export(items)

    async def export_logs(self, items: Sequence[Any]) -> ExportResult:
        return await self._export(items)

    async def shutdown(self, timeout: float | None = None) -> None:
        await self._in_thread(self._sdk.shutdown)
