"""What every transport offers: bytes in, the collector's raw :class:`Reply` (or a classified transport failure) out.

A transport moves bytes. It does not read what the collector answered: ``send`` returns the reply as received
(status, the gRPC status from the trailers, the headers classification needs, the body decompressed and bounded)
and the export step (:mod:`aiotlp.export`) turns it into a partial success or a classified error with the sans-IO
readers of :mod:`aiotlp.encoding`. A transport raises only for what is a failure of the transport itself: the
connection refused, reset or closed before the response, TLS, the attempt's timeout, a response too large or whose
compression cannot be undone, a peer that speaks another protocol. Those are :class:`~aiotlp.ExportError`
subclasses, classified here as retryable or permanent; foreign exceptions (grpc, aiohttp, h2, OS) never escape.
"""

from __future__ import annotations

import ssl
from dataclasses import dataclass
from typing import TYPE_CHECKING, Final, Protocol, runtime_checkable

from .._version import __version__

if TYPE_CHECKING:
    from ..config import SignalConfig

__all__ = [
    "GRPC_METHODS",
    "IDENTITY",
    "Connectable",
    "Reply",
    "Transport",
    "grpc_method",
    "make_ssl_context",
    "user_agent",
]

IDENTITY: Final = "identity"
"""The content-encoding of a body sent as encoded (not compressed)."""

GRPC_METHODS: Final[dict[str, str]] = {
    "traces": "/opentelemetry.proto.collector.trace.v1.TraceService/Export",
    "metrics": "/opentelemetry.proto.collector.metrics.v1.MetricsService/Export",
    "logs": "/opentelemetry.proto.collector.logs.v1.LogsService/Export",
}
"""The OTLP/gRPC method (the HTTP/2 ``:path``) of each signal, by the signal's name."""


def grpc_method(signal: str) -> str:
    """The OTLP/gRPC method path of ``signal`` (``"traces"``, ``"metrics"`` or ``"logs"``, or a Signal)."""
    return GRPC_METHODS[getattr(signal, "value", signal)]


@dataclass(frozen=True, slots=True)
class Reply:
    """What the collector answered to one request, as received; nothing in it is interpreted yet.

    * ``status``: the HTTP status (for gRPC the HTTP/2 ``:status``, 200 for every gRPC response; grpc.aio reports
      200, its core having checked it);
    * ``body``: the response body (for gRPC the response message without its 5-byte prefix), already
      decompressed, never more than the transport's ``max_response_bytes``;
    * ``content_type`` and ``retry_after``: the response's ``Content-Type`` and ``Retry-After`` headers (``""``
      and ``None`` when absent);
    * ``grpc_status``, ``grpc_message``, ``grpc_details``: the gRPC status from the trailers (``None`` when there
      was none: not a gRPC response), its message (percent-decoded) and ``grpc-status-details-bin`` (a
      ``google.rpc.Status``, base64-decoded; ``None`` when absent). A client library that turns a broken stream
      into a status (RST_STREAM, a malformed message) reports it here, as grpc core does.
    """

    status: int
    body: bytes = b""
    content_type: str = ""
    retry_after: str | None = None
    grpc_status: int | None = None
    grpc_message: str = ""
    grpc_details: bytes | None = None


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
    """Sends encoded OTLP requests of one signal to one collector endpoint (module docstring).

    ``send`` returns the collector's :class:`Reply`, whatever it says, or raises a classified
    :class:`~aiotlp.ExportError` for a failure of the transport itself.
    """

    #: ``"application/x-protobuf"``, ``"application/json"`` or ``"application/grpc"``: the request's format.
    content_type: str

    #: How the export step compresses a body before sending it here, once (retries re-send the same bytes):
    #: ``"gzip"``, ``"deflate"``, ``"zstd"``, or ``"none"`` (sent as encoded; grpc.aio compresses inside its
    #: channel, so it says ``"none"``).
    compression: str

    async def send(self, body: bytes, *, content_encoding: str, timeout: float) -> Reply:
        """Send ``body``, whose encoding is ``content_encoding`` (``"identity"``, or the :attr:`compression` the
        export step applied), within ``timeout`` seconds."""
        ...

    async def close(self) -> None: ...


@runtime_checkable
class Connectable(Protocol):
    """A transport that can open its connection ahead of its first :meth:`~Transport.send` (aiotlp's h2, HTTP/1.1
    and grpc.aio transports are; a fleet is not). :meth:`aiotlp.export.OTLPExporter.connect` calls it, so that an
    application's first batch does not wait for the connection to be made."""

    async def connect(self, timeout: float) -> None:
        """Open the connection (or wait for the one being opened) within ``timeout`` seconds; a connection already
        open is kept. Raises what :meth:`~Transport.send` raises for the same failure (a classified
        :class:`~aiotlp.ExportError`)."""
        ...
