"""A :class:`FakeCollector` on an event loop of its own, in a thread: for synchronous tests, and for async tests
that block their own loop on purpose (a synchronous ``provider.force_flush()`` called from a coroutine).

```python
with CollectorThread() as collector:
    exporter = SpanExporter(endpoint=collector.http_endpoint + "/v1/traces")
    ...
    assert collector.wait_for_spans(3)
    names = [span.name for span in collector.spans()]
```
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

from aiotlp.model import Signal

from ._collector import FakeCollector, Reply

__all__ = ["CollectorThread"]

_T = TypeVar("_T")


class CollectorThread:
    """Runs ``FakeCollector(**kwargs)`` in a daemon thread while the ``with`` block lasts.

    Reads (``spans``, ``requests``, ...) and :meth:`script` are forwarded to the collector on its loop, so they
    are safe from any thread; :attr:`collector` is the instance itself, for what is not forwarded.
    """

    def __init__(self, **kwargs: Any) -> None:
        self.collector = FakeCollector(**kwargs)
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="aiotlp-collector-thread", daemon=True)

    def __enter__(self) -> CollectorThread:
        self._thread.start()
        try:
            self._await(self.collector.start(), 30)
        except BaseException:
            self._stop_loop()
            raise
        return self

    def __exit__(self, *exc_info: object) -> None:
        try:
            self._await(self.collector.stop(), 30)
        finally:
            self._stop_loop()

    def _stop_loop(self) -> None:
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(30)
        self._loop.close()

    def _await(self, coro: Coroutine[Any, Any, _T], timeout: float | None) -> _T:
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(timeout)

    async def _run(self, func: Any, *args: Any, **kwargs: Any) -> Any:
        return func(*args, **kwargs)

    def _on_loop(self, func: Any, *args: Any, **kwargs: Any) -> Any:
        return self._await(self._run(func, *args, **kwargs), 30)

    @property
    def http_endpoint(self) -> str:
        return self.collector.http_endpoint

    @property
    def grpc_endpoint(self) -> str:
        return self.collector.grpc_endpoint

    def script(self, *replies: Reply, signal: Signal | None = None) -> None:
        self._on_loop(self.collector.script, *replies, signal=signal)

    def spans(self) -> list[Any]:
        return list(self._on_loop(self.collector.spans))

    def log_records(self) -> list[Any]:
        return list(self._on_loop(self.collector.log_records))

    def requests(self, signal: Signal | None = None) -> list[Any]:
        return list(self._on_loop(self.collector.requests, signal))

    def clear(self) -> None:
        """:meth:`FakeCollector.clear`: forget the recorded requests."""
        self._on_loop(self.collector.clear)

    def wait_for(self, predicate: Callable[[FakeCollector], bool], timeout: float = 10.0) -> None:
        """:meth:`FakeCollector.wait_for`, from any thread: ``TimeoutError`` when ``predicate`` is still false after
        ``timeout`` seconds."""
        self._await(self.collector.wait_for(predicate, timeout), timeout + 5)

    def wait_for_spans(self, count: int, timeout: float = 10.0) -> bool:
        """True once the collector holds at least ``count`` spans; False after ``timeout`` seconds."""

        async def wait() -> bool:
            try:
                await self.collector.wait_for(lambda c: len(c.spans()) >= count, timeout)
            except TimeoutError:
                return False
            return True

        return self._await(wait(), timeout + 5)
