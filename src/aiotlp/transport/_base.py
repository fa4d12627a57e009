"""What every transport offers: bytes in, a parsed response (or a classified error) out."""

from __future__ import annotations

from typing import Protocol

from .._version import __version__
from ..encoding import PartialSuccess

__all__ = ["Transport", "user_agent"]


def user_agent() -> str:
    return f"OTel-OTLP-Exporter-Python/{__version__} aiotlp/{__version__}"


class Transport(Protocol):
    """Sends encoded OTLP requests of one signal to one collector endpoint.

    ``send`` raises only :class:`~aiotlp.ExportError` subclasses, already classified as retryable (with the
    server's delay) or permanent; foreign exceptions (grpc, aiohttp, OS) are translated here.
    """

    #: ``"application/x-protobuf"``, ``"application/json"`` or ``"application/grpc"``.
    content_type: str

    def prepare(self, body: bytes) -> tuple[bytes, bool]:
        """Compress ``body`` once if this transport sends it compressed; returns ``(body, compressed)``."""
        ...

    async def send(self, body: bytes, *, compressed: bool, timeout: float) -> PartialSuccess: ...

    async def close(self) -> None: ...
