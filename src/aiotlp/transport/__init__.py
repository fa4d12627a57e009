"""Transports: bytes in, a parsed response or a classified :class:`~aiotlp.ExportError` out.

They know nothing about spans. ``make_transport`` picks one by the configured protocol.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ._base import Transport, user_agent
from ._compression import MAX_RESPONSE_BYTES, BoundedInflater, gzip_compress
from ._http import HttpTransport

if TYPE_CHECKING:
    from ..config import SignalConfig

__all__ = [
    "MAX_RESPONSE_BYTES",
    "BoundedInflater",
    "GrpcTransport",
    "HttpTransport",
    "Transport",
    "gzip_compress",
    "make_transport",
    "user_agent",
]


def make_transport(config: SignalConfig, *, max_response_bytes: int = MAX_RESPONSE_BYTES) -> Transport:
    """The transport for ``config.protocol``: gRPC (needs ``aiotlp[grpc]``), HTTP/protobuf or HTTP/JSON."""
    if config.protocol == "grpc":
        from ._grpc import GrpcTransport

        return GrpcTransport(config, max_response_bytes=max_response_bytes)
    return HttpTransport(config, max_response_bytes=max_response_bytes)


def __getattr__(name: str) -> object:
    if name == "GrpcTransport":  # imported lazily: grpcio is an optional extra
        from ._grpc import GrpcTransport

        return GrpcTransport
    raise AttributeError(name)
