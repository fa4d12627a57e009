"""Transports: bytes in, the collector's raw :class:`Reply` out (or a classified :class:`~aiotlp.ExportError` for a
failure of the transport itself: refused, reset, TLS, timeout, an oversized reply, a peer of another protocol).

They know nothing about spans, and do not read replies: the export step does (see :mod:`aiotlp.transport._base`).
``make_transport`` picks one by the configured protocol, and for gRPC by ``grpc_implementation``: ``"h2"``
(:class:`H2GrpcTransport`, aiotlp's own HTTP/2 client on ``h2``) or ``"grpcio"`` (:class:`GrpcTransport`,
grpc.aio). Both come with ``aiotlp[grpc]``.

Several endpoints (``config.endpoints``, a fleet of collectors) get a :class:`FleetTransport` over one transport
per endpoint (round robin, failover, backoff), except with grpcio when every endpoint is an IP address of one
family: then one channel with grpc's own ``round_robin`` policy over an ``ipv4:``/``ipv6:`` target list.
"""

from __future__ import annotations

import dataclasses
import importlib.util
import ipaddress
from typing import TYPE_CHECKING, Literal

from .._exceptions import ConfigurationError, MissingExtraError
from . import _zstd
from ._base import GRPC_METHODS, IDENTITY, Connectable, Reply, Transport, grpc_method, user_agent
from ._compression import (
    ENCODINGS,
    MAX_RESPONSE_BYTES,
    BoundedInflater,
    accepted_encodings,
    compress,
    deflate_compress,
    gzip_compress,
    zstd_compress,
    zstd_decompress,
)
from ._fleet import (
    EndpointState,
    EndpointStatistics,
    FleetPolicy,
    FleetTransport,
    ReplyClassifier,
    Resolver,
    is_endpoint_fault,
    resolve_host,
)
from ._keepgil import new_event_loop as gil_keeping_event_loop
from ._lanes import CLOSED as LANE_CLOSED
from ._lanes import SEND_AGAIN, LaneOutcome, NativeLane, open_lane
from ._lanes import available as lane_available
from ._lanes import close_all as close_all_lanes
from ._lanes import compresses as lane_compresses
from ._mismatch import (
    CHECK_HINT,
    HTTP2_FRAMES,
    http1_status_line,
    http2_frames_in_text,
    is_http2_settings,
    port_advice,
    wrong_port,
)
from ._zstd import Zstd
from ._zstd import binding as zstd_binding

if TYPE_CHECKING:
    from ..config import SignalConfig
    from ._grpc import GrpcTransport
    from ._h2grpc import H2GrpcTransport
    from ._http import HttpTransport

__all__ = [
    "CHECK_HINT",
    "DEFAULT_GRPC_IMPLEMENTATION",
    "ENCODINGS",
    "GRPC_METHODS",
    "HTTP2_FRAMES",
    "IDENTITY",
    "LANE_CLOSED",
    "MAX_RESPONSE_BYTES",
    "SEND_AGAIN",
    "BoundedInflater",
    "Connectable",
    "EndpointState",
    "EndpointStatistics",
    "FleetPolicy",
    "FleetTransport",
    "GrpcImplementation",
    "GrpcTransport",
    "H2GrpcTransport",
    "HttpTransport",
    "LaneOutcome",
    "NativeLane",
    "Reply",
    "ReplyClassifier",
    "Resolver",
    "Transport",
    "Zstd",
    "accepted_encodings",
    "close_all_lanes",
    "compress",
    "deflate_compress",
    "gil_keeping_event_loop",
    "grpc_method",
    "gzip_compress",
    "http1_status_line",
    "http2_frames_in_text",
    "is_endpoint_fault",
    "is_http2_settings",
    "lane_available",
    "lane_compresses",
    "make_transport",
    "open_lane",
    "port_advice",
    "require_client",
    "resolve_host",
    "user_agent",
    "wrong_port",
    "zstd_binding",
    "zstd_compress",
    "zstd_decompress",
]


GrpcImplementation = Literal["h2", "grpcio"]

DEFAULT_GRPC_IMPLEMENTATION: GrpcImplementation = "h2"
"""What ``make_transport`` uses for gRPC when ``grpc_implementation`` is ``None``.

``"h2"``: aiotlp's own gRPC client over the pure-Python ``h2`` library (``aiotlp[grpc]``). It sets TCP_NODELAY and
re-arms TCP_QUICKACK after every read, which removes the delayed-ACK stalls grpcio suffers against servers that
leave Nagle on, at the price of some client CPU per call against grpc.aio's C core (measured in
``docs/benchmarks.md``, "The gRPC clients"; ``benchmarks/grpc_latency.py``). ``"grpcio"`` (``aiotlp[grpcio]``)
uses grpc.aio.
"""


def _installed(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):  # a parent package missing, or a module set to None in sys.modules
        return False


def _grpc_client(grpc_implementation: GrpcImplementation | None) -> GrpcImplementation:
    """The gRPC client to use: the one asked for, else h2, else grpcio if only that one is installed."""
    if grpc_implementation is not None:
        return grpc_implementation
    if not _installed("h2") and _installed("grpc"):
        return "grpcio"
    return DEFAULT_GRPC_IMPLEMENTATION


def require_client(protocol: str, grpc_implementation: GrpcImplementation | None = None, *, load: bool = False) -> None:
    """Raise :class:`~aiotlp.MissingExtraError`, naming the extra to install, if the client that ``protocol``
    needs is not installed (checked without importing it). For gRPC without ``grpc_implementation``: h2
    (``aiotlp[grpc]``), or grpcio when only that one is installed; when neither is, the default's extra is named.
    OTLP/HTTP needs nothing beyond the core: its client is aiotlp's own (:mod:`aiotlp.transport._h1`).

    ``load=True`` also imports it now (aiotlp's HTTP/1.1 client, h2 or grpcio, with aiotlp's module over it):
    otherwise that happens when the first transport is made, which may be on an application's event loop (an
    import there blocks the loop, ~15-60 ms for h2 or grpcio). Exporters check at construction; processors that
    export on the application's loop load. Loading also chooses the zstd binding (importing it, if there is one),
    which a transport asks for when it is made (``accepted_encodings``)."""
    if load:
        _zstd.available()
    if protocol != "grpc":
        if load:
            from . import _http  # noqa: F401
    elif _grpc_client(grpc_implementation) == "h2":
        if not _installed("h2"):
            raise MissingExtraError("grpc", "h2 (aiotlp's gRPC client)")
        if load:
            from . import _h2grpc  # noqa: F401
    elif not _installed("grpc"):
        raise MissingExtraError("grpcio", "grpcio (grpc_implementation='grpcio')")
    elif load:
        from . import _grpc  # noqa: F401


def make_transport(
    config: SignalConfig,
    *,
    max_response_bytes: int = MAX_RESPONSE_BYTES,
    grpc_implementation: GrpcImplementation | None = None,
    fleet: FleetPolicy | None = None,
    resolver: Resolver | None = None,
    classify: ReplyClassifier | None = None,
) -> Transport:
    """The transport for ``config.protocol``: gRPC (needs ``aiotlp[grpc]``), HTTP/protobuf or HTTP/JSON.

    ``grpc_implementation`` picks the gRPC client: ``"h2"`` (:class:`H2GrpcTransport`), ``"grpcio"``
    (:class:`GrpcTransport`), or ``None`` for :data:`DEFAULT_GRPC_IMPLEMENTATION`. It is ignored for HTTP.

    With several ``config.endpoints``, or ``fleet.resolve_dns``, the result balances over them (see the module
    docstring and ``docs/fleet.md``); ``fleet`` tunes the endpoints' backoff, ``resolver`` replaces
    ``getaddrinfo`` for ``resolve_dns`` with the h2 client, and ``classify`` is how the fleet reads a reply to
    tell an endpoint that cannot serve (503, UNAVAILABLE, ...) from a refused request (the exporter passes
    :func:`aiotlp.export.reply_error`; without it only failures of the transport itself fail over).
    """
    if grpc_implementation not in (None, "h2", "grpcio"):
        raise ConfigurationError(f"grpc_implementation: must be 'h2', 'grpcio' or None, got {grpc_implementation!r}")
    if fleet is not None and not isinstance(fleet, FleetPolicy):
        raise ConfigurationError(f"fleet: must be a FleetPolicy or None, got {type(fleet).__name__}")
    policy = fleet if fleet is not None else FleetPolicy()
    if config.protocol == "grpc":
        require_client("grpc", grpc_implementation)
        if _grpc_client(grpc_implementation) == "h2":
            return _h2_transport(config, policy, max_response_bytes, resolver, classify)
        return _grpcio_transport(config, policy, max_response_bytes, classify)
    if policy.resolve_dns:
        raise ConfigurationError(
            "fleet.resolve_dns: applies to gRPC only; for OTLP/HTTP list the collectors' URLs as endpoints"
        )
    from ._http import HttpTransport  # aiotlp's HTTP/1.1 client, imported when an HTTP transport is first made

    if len(config.endpoints) == 1:
        return HttpTransport(config, max_response_bytes=max_response_bytes)
    configs = [_one(config, endpoint) for endpoint in config.endpoints]
    return FleetTransport(
        [(one.endpoint_for_display, HttpTransport(one, max_response_bytes=max_response_bytes)) for one in configs],
        policy=policy,
        classify=classify,
    )


def _one(config: SignalConfig, endpoint: str) -> SignalConfig:
    """``config`` for one endpoint of its fleet."""
    return dataclasses.replace(config, endpoint=endpoint, endpoints=())


def _h2_transport(
    config: SignalConfig,
    policy: FleetPolicy,
    max_response_bytes: int,
    resolver: Resolver | None,
    classify: ReplyClassifier | None,
) -> Transport:
    from ._h2grpc import H2GrpcTransport

    if policy.resolve_dns:
        configs = [_one(config, endpoint) for endpoint in config.endpoints]
        names = [(one.endpoint_for_display, one.host, one.port) for one in configs]

        def factory(index: int, address: tuple[str, int], /) -> Transport:
            # the endpoint's own configuration names the server (TLS, :authority); the address is where to connect
            return H2GrpcTransport(configs[index], max_response_bytes=max_response_bytes, connect_address=address)

        return FleetTransport.resolving(
            H2GrpcTransport(config, max_response_bytes=max_response_bytes),
            names,
            factory,
            policy=policy,
            resolver=resolver,
            classify=classify,
        )
    if len(config.endpoints) == 1:
        return H2GrpcTransport(config, max_response_bytes=max_response_bytes)
    members: list[tuple[str, Transport]] = []
    for endpoint in config.endpoints:
        one = _one(config, endpoint)
        members.append((one.endpoint_for_display, H2GrpcTransport(one, max_response_bytes=max_response_bytes)))
    return FleetTransport(members, policy=policy, classify=classify)


def _grpcio_transport(
    config: SignalConfig, policy: FleetPolicy, max_response_bytes: int, classify: ReplyClassifier | None
) -> Transport:
    """grpc.aio: one ``round_robin`` channel over an ``ipv4:``/``ipv6:`` list when every endpoint is an address
    of one family; else a channel per endpoint (``dns:///`` with ``round_robin`` under ``resolve_dns``), in a
    :class:`FleetTransport` when there are several."""
    from ._grpc import GrpcTransport

    configs = [_one(config, endpoint) for endpoint in config.endpoints]
    families: set[int] = set()
    for one in configs:
        try:
            families.add(ipaddress.ip_address(one.host).version)
        except ValueError:
            families.add(0)  # a host name
    if len(configs) > 1 and len(families) == 1 and 0 not in families:
        if families == {4}:
            target = "ipv4:" + ",".join(f"{one.host}:{one.port}" for one in configs)
        else:
            target = "ipv6:" + ",".join(f"[{one.host}]:{one.port}" for one in configs)
        return GrpcTransport(
            config, max_response_bytes=max_response_bytes, target=target, round_robin=True, classify=classify
        )

    def channel(one: SignalConfig) -> Transport:
        if policy.resolve_dns and one.host and _is_name(one.host):
            target = f"dns:///{one.host}:{one.port}"
            return GrpcTransport(one, max_response_bytes=max_response_bytes, target=target, round_robin=True)
        return GrpcTransport(one, max_response_bytes=max_response_bytes)

    if len(configs) == 1:
        return channel(configs[0])
    return FleetTransport(
        [(one.endpoint_for_display, channel(one)) for one in configs], policy=policy, classify=classify
    )


def _is_name(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return True
    return False


def __getattr__(name: str) -> object:
    # imported lazily (PEP 562): a configuration pays only for the client it uses (aiotlp's HTTP/1.1, h2 or grpcio)
    if name == "HttpTransport":
        from ._http import HttpTransport

        return HttpTransport
    if name == "GrpcTransport":
        from ._grpc import GrpcTransport

        return GrpcTransport
    if name == "H2GrpcTransport":
        from ._h2grpc import H2GrpcTransport

        return H2GrpcTransport
    raise AttributeError(name)
