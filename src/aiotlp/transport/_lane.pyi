"""Type stub of the optional C extension ``aiotlp.transport._lane`` (source: ``_lane.c``), used by
:mod:`aiotlp.transport._lanes`: OTLP/HTTP requests sent by native threads, without the GIL."""

from collections.abc import Callable

OK: int
RESPONSE: int
CONNECT: int
DISCONNECTED: int
TIMEOUT: int
BAD_RESPONSE: int
CLOSED: int
IDENTITY: int
GZIP: int
DEFLATE: int
ZLIB: int

class Lane:
    def __init__(
        self,
        host: str,
        port: int,
        head: bytes,
        *,
        workers: int,
        timeout: float,
        keepalive: float,
        max_response: int,
        compress: int,
        notify: Callable[[], object],
    ) -> None: ...
    @property
    def room(self) -> int: ...
    @property
    def in_flight(self) -> int: ...
    @property
    def connections_made(self) -> int: ...
    @property
    def closed(self) -> bool: ...
    def submit(self, body: bytes, token: object, /) -> bool: ...
    def collect(self) -> list[tuple[object, int, int, bytes | None, bytes | None, int, float, int]]: ...
    def wake_on_done(self) -> bool: ...
    def preconnect(self) -> None: ...
    def close(self) -> None: ...
