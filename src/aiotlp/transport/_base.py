"""What every transport offers: bytes in, a parsed response (or a classified error) out."""

from __future__ import annotations

import ssl
from typing import TYPE_CHECKING, Protocol

from .._version import __version__
from ..encoding import PartialSuccess

if TYPE_CHECKING:
    from ..config import SignalConfig

__all__ = ["Transport", "make_ssl_context", "user_agent"]


def make_ssl_context(config: SignalConfig) -> ssl.SSLContext | None:
    """The TLS context for an ``https`` endpoint: the CA file (or the system roots), and a client certificate."""
    if config.insecure:
        return None
    context = ssl.create_default_context(cafile=config.certificate_file)
    if config.client_certificate_file is not None:
        context.load_cert_chain(config.client_certificate_file, config.client_key_file)
    return context


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
