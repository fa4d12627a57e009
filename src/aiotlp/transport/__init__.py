"""Transports: bytes in, a parsed response or a classified :class:`~aiotlp.ExportError` out.

They know nothing about spans. ``make_transport`` picks one by the configured protocol, and for gRPC by
``grpc_implementation``: ``"h2"`` (:class:`H2GrpcTransport`, aiotlp's own HTTP/2 client on ``h2``) or
``"grpcio"`` (:class:`GrpcTransport`, grpc.aio). Both come with ``aiotlp[grpc]``.
"""

from __future__ import annotations

import importlib.util
from typing import TYPE_CHECKING, Literal

from .._exceptions import ConfigurationError
from ._base import Transport, user_agent
from ._compression import MAX_RESPONSE_BYTES, BoundedInflater, gzip_compress
from ._http import HttpTransport

if TYPE_CHECKING:
    from ..config import SignalConfig

__all__ = [
    "DEFAULT_GRPC_IMPLEMENTATION",
    "MAX_RESPONSE_BYTES",
    "BoundedInflater",
    "GrpcImplementation",
    "GrpcTransport",
    "H2GrpcTransport",
    "HttpTransport",
    "Transport",
    "gzip_compress",
    "make_transport",
    "user_agent",
]


GrpcImplementation = Literal["h2", "grpcio"]

DEFAULT_GRPC_IMPLEMENTATION: GrpcImplementation = "h2"
"""What ``make_transport`` uses for gRPC when ``grpc_implementation`` is ``None``.

``"h2"``: aiotlp's own gRPC client over the pure-Python ``h2`` library (``aiotlp[grpc]``). It sets TCP_NODELAY and
re-arms TCP_QUICKACK after every read, which removes the ~40 ms stalls grpcio suffers against servers that leave
Nagle on (rotel: 0 of 300 calls over 35 ms instead of ~70; p99 11 ms instead of 53 ms), and it matches grpc.aio's
median against C-core servers. It costs ~130-160 us more client CPU per call than grpc.aio's C core (about 2 % of
a 512-span export; see ``benchmarks/grpc_latency.py``). ``"grpcio"`` (``aiotlp[grpcio]``) uses grpc.aio.
"""


def make_transport(
    config: SignalConfig,
    *,
    max_response_bytes: int = MAX_RESPONSE_BYTES,
    grpc_implementation: GrpcImplementation | None = None,
) -> Transport:
    """The transport for ``config.protocol``: gRPC (needs ``aiotlp[grpc]``), HTTP/protobuf or HTTP/JSON.

    ``grpc_implementation`` picks the gRPC client: ``"h2"`` (:class:`H2GrpcTransport`), ``"grpcio"``
    (:class:`GrpcTransport`), or ``None`` for :data:`DEFAULT_GRPC_IMPLEMENTATION`. It is ignored for HTTP.
    """
    if grpc_implementation not in (None, "h2", "grpcio"):
        raise ConfigurationError(f"grpc_implementation: must be 'h2', 'grpcio' or None, got {grpc_implementation!r}")
    if config.protocol == "grpc":
        implementation = grpc_implementation or DEFAULT_GRPC_IMPLEMENTATION
        if grpc_implementation is None and implementation == "h2" and importlib.util.find_spec("h2") is None:
            implementation = "grpcio"  # h2 not installed: use grpcio if it is (else GrpcTransport says what to install)
        if implementation == "h2":
            from ._h2grpc import H2GrpcTransport

            return H2GrpcTransport(config, max_response_bytes=max_response_bytes)
        from ._grpc import GrpcTransport

        return GrpcTransport(config, max_response_bytes=max_response_bytes)
    return HttpTransport(config, max_response_bytes=max_response_bytes)


def __getattr__(name: str) -> object:
    # imported lazily: grpcio and h2 come with the optional extra aiotlp[grpc]
    if name == "GrpcTransport":
        from ._grpc import GrpcTransport

        return GrpcTransport
    if name == "H2GrpcTransport":
        from ._h2grpc import H2GrpcTransport

        return H2GrpcTransport
    raise AttributeError(name)
