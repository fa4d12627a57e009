"""OTLP/gRPC over grpc.aio: the encoded request bytes are sent as they are (no protobuf objects).

Fork. grpc core cannot be used in a child forked after the parent used it (a grpc.aio channel made in the child
then times out, or the child dies of SIGSEGV or SIGABRT, with or without ``GRPC_ENABLE_FORK_SUPPORT``, whose
fork handling covers grpc's synchronous stack only; grpcio 1.85 measured, and the maintainers' contract: a child
may use gRPC only after destroying everything inherited and ``grpc_shutdown()``, which grpc.aio does not do). So
in such a child a :class:`GrpcTransport` never calls into grpc: the parent's channel is left untouched (never
closed, see :mod:`aiotlp._fork`) and the calls go through aiotlp's own gRPC client,
:class:`~aiotlp.transport.H2GrpcTransport`, to the same endpoint with the same settings (``aiotlp[grpc]``; without
it each call fails with a :class:`~aiotlp.PermanentError` that says so).
"""

from __future__ import annotations

import asyncio
import logging
import os
import re
from typing import TYPE_CHECKING, Any

from .._exceptions import (
    AttemptTimeoutError,
    ConfigurationError,
    ConnectError,
    ExportError,
    ExporterShutdownError,
    MissingExtraError,
    PermanentError,
    ResponseError,
)
from .._fork import abandon
from ._base import IDENTITY, Connectable, Reply, Transport, grpc_method, user_agent
from ._compression import MAX_RESPONSE_BYTES, compress
from ._fleet import ReplyClassifier
from ._mismatch import http1_in_grpc_details, wrong_port

try:
    import grpc
    import grpc.aio
except ImportError:  # pragma: no cover - depends on the installed extras
    grpc = None

if TYPE_CHECKING:
    from ..config import SignalConfig

__all__ = ["GrpcTransport"]

logger = logging.getLogger("aiotlp.transport")

_STATUS_DETAILS_KEY = "grpc-status-details-bin"

_used_by = 0
"""The process that made aiotlp's first grpc.aio channel (0: none yet); grpc is unusable in its forked children."""
_told_fork = False


_pid = os.getpid()
"""This process's id, kept by a fork hook: no system call per export."""


def _forked() -> None:
    global _pid
    _pid = os.getpid()


if hasattr(os, "register_at_fork"):  # pragma: no branch - POSIX
    os.register_at_fork(after_in_child=_forked)


def _grpc_usable() -> bool:
    """False in a process forked from one where aiotlp had used grpc.aio (see the module docstring)."""
    return _used_by in (0, _pid)


def _read(path: str | None) -> bytes | None:
    if path is None:
        return None
    with open(path, "rb") as file:
        return file.read()


class GrpcTransport:
    """Sends one signal's requests over a grpc.aio channel made on first use (inside the running loop).

    gRPC's own retries are off (aiotlp's retry wrapper decides). Responses larger than ``max_response_bytes``
    are refused by the channel and reported as a non-retryable :class:`ResponseError`.

    ``target`` replaces the channel target ``host:port`` (a grpc name such as ``ipv4:10.0.0.1:4317,10.0.0.2:4317``
    or ``dns:///collectors:4317``) and ``round_robin=True`` sets grpc's ``round_robin`` load-balancing policy, so
    one channel spreads the calls over every address of the target (see :mod:`aiotlp.transport._fleet`).
    """

    content_type = "application/grpc"
    compression = "none"
    """grpc core compresses each message inside the channel (``config.compression``): bodies come as encoded."""

    def __init__(
        self,
        config: SignalConfig,
        *,
        max_response_bytes: int = MAX_RESPONSE_BYTES,
        target: str | None = None,
        round_robin: bool = False,
        classify: ReplyClassifier | None = None,
    ) -> None:
        if grpc is None:
            raise MissingExtraError("grpcio", "grpcio")
        if config.compression == "zstd":
            # grpc core knows identity, deflate and gzip only. Compressing the message here would not help: a
            # call sends it with the compressed flag unset, and grpc core refuses grpc-encoding as metadata.
            raise ConfigurationError(
                "compression 'zstd': grpc.aio (grpc_implementation='grpcio') cannot send zstd, grpc core has no "
                "zstd; use aiotlp's h2 gRPC client (grpc_implementation='h2', the default, aiotlp[grpc]) or "
                "compression='gzip'"
            )
        self.config = config
        self.method = grpc_method(config.signal)
        self.max_response_bytes = max_response_bytes
        self.classify = classify  # for the fallback's fleet (module docstring); an exporter may set it
        self._target = target if target is not None else f"{config.host}:{config.port}"
        self._credentials: Any = None
        if config.use_tls:
            files = (config.certificate_file, config.client_key_file, config.client_certificate_file)
            root, key, chain = (_read(path) for path in files)
            if _grpc_usable():  # in a forked child grpc is never called (module docstring)
                self._credentials = grpc.ssl_channel_credentials(
                    root_certificates=root, private_key=key, certificate_chain=chain
                )
        self._metadata = tuple(config.headers.items())
        self._compression = {"gzip": grpc.Compression.Gzip, "deflate": grpc.Compression.Deflate}.get(
            config.compression, grpc.Compression.NoCompression
        )
        self._options: tuple[tuple[str, str | int], ...] = (
            ("grpc.primary_user_agent", user_agent()),
            ("grpc.max_receive_message_length", max_response_bytes),
            ("grpc.max_send_message_length", 128 * 1024 * 1024),
            ("grpc.enable_retries", 0),
            # Reconnect soon after a collector comes back: aiotlp's retry layer paces the attempts, the
            # channel's own backoff (default up to 120 s) would otherwise fail them fast meanwhile.
            ("grpc.initial_reconnect_backoff_ms", 100),
            ("grpc.max_reconnect_backoff_ms", 2000),
            # Not a backoff: grpc core gives each connection attempt (TCP, TLS, HTTP/2 SETTINGS) at least this
            # long. At 100 ms a collector 50 ms away over TLS could never be reached ("Handshake read failed").
            # One export's timeout: an attempt that cannot connect within it has failed anyway.
            ("grpc.min_reconnect_backoff_ms", max(1000, round(config.timeout * 1000))),
            ("grpc.keepalive_permit_without_calls", 0),
        )
        if round_robin:
            self._options += (("grpc.lb_policy_name", "round_robin"),)
        self._channel: Any = None
        self._call: Any = None
        self._pid = 0  # the process that made the channel
        self._fallback: Transport | None = None  # in a forked child, where grpc cannot be used
        self._closed = False

    def __repr__(self) -> str:
        return f"GrpcTransport({self.config.endpoint_for_display!r}, {self.method})"

    @property
    def target(self) -> str:
        """The grpc channel's target: ``host:port``, or ``ipv4:a:1,b:2`` for a round-robin channel over addresses."""
        return self._target

    @property
    def channel_options(self) -> tuple[tuple[str, str | int], ...]:
        """The options the grpc channel is made with (user agent, message limits, reconnect backoff, ...)."""
        return self._options

    def _get_call(self) -> Any:
        global _used_by
        if self._channel is None:
            if self._credentials is not None:
                self._channel = grpc.aio.secure_channel(self._target, self._credentials, options=self._options)
            else:
                self._channel = grpc.aio.insecure_channel(self._target, options=self._options)
            self._call = self._channel.unary_unary(self.method)
            self._pid = os.getpid()
            if _used_by == 0:
                _used_by = self._pid
        return self._call

    def _forked_fallback(self) -> Transport:
        """This process was forked after grpc.aio was used: the h2 client takes the calls (module docstring)."""
        global _told_fork
        if self._channel is not None:
            abandon((self._channel, self._call))  # the parent's: never closed, never called
            self._channel = self._call = None
        if self._fallback is None:
            try:
                from . import make_transport

                # every endpoint of the configuration (a round_robin channel's list becomes a fleet)
                self._fallback = make_transport(
                    self.config,
                    max_response_bytes=self.max_response_bytes,
                    grpc_implementation="h2",
                    classify=self.classify,
                )
            except MissingExtraError:
                raise PermanentError(
                    "grpc.aio cannot be used in a process forked after it was used (grpcio does not support fork "
                    "with grpc.aio); install aiotlp[grpc] to send through aiotlp's own gRPC client there"
                ) from None
            if not _told_fork:
                _told_fork = True
                logger.info(
                    "process %d was forked after grpc.aio was used: gRPC goes through aiotlp's h2 client here",
                    os.getpid(),
                )
        return self._fallback

    async def send(self, body: bytes, *, content_encoding: str, timeout: float) -> Reply:
        if self._closed:
            raise PermanentError("the gRPC transport is closed")
        if content_encoding != IDENTITY:  # the channel compresses: a compressed body would be compressed twice
            raise PermanentError(f"grpc.aio sends bodies as encoded, not {content_encoding[:20]!r}")
        if not _grpc_usable():
            fallback = self._forked_fallback()
            if fallback.compression != "none":  # what the channel would have done
                body, content_encoding = compress(body, fallback.compression), fallback.compression
            return await fallback.send(body, content_encoding=content_encoding, timeout=timeout)
        call = self._get_call()
        try:
            response = await call(body, timeout=timeout, metadata=self._metadata, compression=self._compression)
        except asyncio.CancelledError:
            # Closing the channel cancels the calls on it; that is not a cancellation of our caller.
            task = asyncio.current_task()
            if self._closed and (task is None or not getattr(task, "cancelling", lambda: 0)()):
                raise ExporterShutdownError(f"the channel to {self._where()} was closed during the attempt") from None
            raise
        except grpc.aio.AioRpcError as exc:
            return self._reply(exc, timeout)
        except ExportError:
            raise
        except grpc.aio.UsageError as exc:
            raise PermanentError(f"gRPC channel to {self._where()} unusable: {exc}") from None
        except Exception as exc:
            # grpc's internal errors (e.g. ExecuteBatchError) can quote the call: name only their type.
            raise PermanentError(f"the gRPC client failed sending to {self._where()}: {type(exc).__name__}") from None
        return Reply(200, response, content_type=self.content_type, grpc_status=0)

    async def connect(self, timeout: float) -> None:
        """Make the channel and wait until it is connected (grpc's READY), ahead of the first call."""
        if self._closed:
            raise PermanentError("the gRPC transport is closed")
        if not _grpc_usable():
            fallback = self._forked_fallback()
            if isinstance(fallback, Connectable):
                await fallback.connect(timeout)
            return
        self._get_call()
        try:
            await asyncio.wait_for(self._channel.channel_ready(), timeout)
        except asyncio.TimeoutError:
            raise ConnectError(f"cannot connect to {self._where()} within {timeout:.3g}s") from None
        except Exception as exc:  # the channel closed meanwhile (grpc's UsageError), or grpc's own errors
            if self._closed:
                raise ExporterShutdownError(f"the channel to {self._where()} was closed while connecting") from None
            raise ConnectError(f"cannot connect to {self._where()}: {type(exc).__name__}") from None

    def _reply(self, exc: Any, timeout: float) -> Reply:
        """The status of a failed call as a :class:`Reply`, or raise for a failure of the transport itself."""
        code = exc.code()
        details = exc.details() or ""
        if code == grpc.StatusCode.DEADLINE_EXCEEDED:
            raise AttemptTimeoutError(
                f"no response from {self._where()} within {timeout:.3g}s", status="DEADLINE_EXCEEDED"
            ) from None
        if code == grpc.StatusCode.RESOURCE_EXHAUSTED and _is_own_receive_limit(details):
            raise ResponseError(
                f"the response from {self._where()} is larger than {self.max_response_bytes} bytes",
                status="RESOURCE_EXHAUSTED",
            ) from None
        seen = http1_in_grpc_details(details)
        if seen is not None:  # an OTLP/HTTP port
            raise wrong_port(self._where(), "grpc", seen) from None
        http_status = _NOT_GRPC.fullmatch(details.strip())
        if http_status is not None:  # grpc core mapped a non-200 :status: hand over the status, as h2 does
            return Reply(int(http_status.group(1)))
        if code == grpc.StatusCode.UNAVAILABLE and _is_connect_failure(details):
            raise ConnectError(f"cannot connect to {self._where()}: {details}", status="UNAVAILABLE") from None
        status_details = None
        for key, value in exc.trailing_metadata() or ():
            if key == _STATUS_DETAILS_KEY and isinstance(value, bytes):
                status_details = value
        return Reply(
            200,
            content_type=self.content_type,
            grpc_status=code.value[0],
            grpc_message=details,
            grpc_details=status_details,
        )

    def _where(self) -> str:
        return self.config.endpoint_for_display

    async def close(self) -> None:
        self._closed = True
        if self._channel is not None:
            if self._pid == os.getpid():
                await self._channel.close()
            else:  # the parent's (a forked child): never closed here
                abandon((self._channel, self._call))
            self._channel = self._call = None
        if self._fallback is not None:
            await self._fallback.close()


#: grpc core's details for a response whose HTTP/2 ``:status`` is not 200 (a server that is not gRPC).
_NOT_GRPC = re.compile(r"Received http2 header with status: ([0-9]{3})")


def _is_own_receive_limit(details: str) -> bool:
    """Whether RESOURCE_EXHAUSTED comes from this channel's receive limit (the response was too large), not from
    the server's: grpc core words its own "CLIENT: Received message larger than max (N vs. M)" (older cores
    without the prefix). A server's limit arrives as its status: "grpc: received message larger than max" from
    grpc-go (the OpenTelemetry Collector: 4 MiB by default), "SERVER: Received message larger than max" from grpc
    core; that is the collector refusing the request, classified like any other status."""
    return "CLIENT: Received message larger than max" in details or details.startswith(
        "Received message larger than max"
    )


def _is_connect_failure(details: str) -> bool:
    text = details.lower()
    return any(
        word in text for word in ("connection refused", "failed to connect", "connection reset", "socket closed")
    )
