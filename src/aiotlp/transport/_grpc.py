"""OTLP/gRPC over grpc.aio: the encoded request bytes are sent as they are (no protobuf objects)."""

from __future__ import annotations

import asyncio
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
from ..encoding import PartialSuccess, classify_grpc_status, decode_export_response
from ._base import user_agent
from ._compression import MAX_RESPONSE_BYTES

try:
    import grpc
    import grpc.aio
except ImportError:  # pragma: no cover - depends on the installed extras
    grpc = None

if TYPE_CHECKING:
    from ..config import SignalConfig

__all__ = ["GrpcTransport"]

_STATUS_DETAILS_KEY = "grpc-status-details-bin"


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

    def __init__(
        self,
        config: SignalConfig,
        *,
        max_response_bytes: int = MAX_RESPONSE_BYTES,
        target: str | None = None,
        round_robin: bool = False,
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
        self.method = config.signal.grpc_method
        self.max_response_bytes = max_response_bytes
        self._target = target if target is not None else f"{config.host}:{config.port}"
        self._credentials: Any = None
        if config.use_tls:
            self._credentials = grpc.ssl_channel_credentials(
                root_certificates=_read(config.certificate_file),
                private_key=_read(config.client_key_file),
                certificate_chain=_read(config.client_certificate_file),
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
        self._closed = False

    def __repr__(self) -> str:
        return f"GrpcTransport({self.config.endpoint_for_display!r}, {self.method})"

    def prepare(self, body: bytes) -> tuple[bytes, bool]:
        # gRPC compresses inside the channel (per message); the body stays as encoded.
        return body, False

    def _get_call(self) -> Any:
        if self._channel is None:
            if self._credentials is not None:
                self._channel = grpc.aio.secure_channel(self._target, self._credentials, options=self._options)
            else:
                self._channel = grpc.aio.insecure_channel(self._target, options=self._options)
            self._call = self._channel.unary_unary(self.method)
        return self._call

    async def send(self, body: bytes, *, compressed: bool, timeout: float) -> PartialSuccess:
        if self._closed:
            raise PermanentError("the gRPC transport is closed")
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
            raise self._classify(exc, timeout) from None
        except ExportError:
            raise
        except grpc.aio.UsageError as exc:
            raise PermanentError(f"gRPC channel to {self._where()} unusable: {exc}") from None
        except Exception as exc:
            # grpc's internal errors (e.g. ExecuteBatchError) can quote the call: name only their type.
            raise PermanentError(f"the gRPC client failed sending to {self._where()}: {type(exc).__name__}") from None
        return decode_export_response(response)

    def _classify(self, exc: Any, timeout: float) -> ExportError:
        code = exc.code()
        details = exc.details() or ""
        if code == grpc.StatusCode.DEADLINE_EXCEEDED:
            return AttemptTimeoutError(
                f"no response from {self._where()} within {timeout:.3g}s", status="DEADLINE_EXCEEDED"
            )
        if code == grpc.StatusCode.RESOURCE_EXHAUSTED and "larger than max" in details:
            return ResponseError(
                f"the response from {self._where()} is larger than {self.max_response_bytes} bytes",
                status="RESOURCE_EXHAUSTED",
            )
        if code == grpc.StatusCode.UNAVAILABLE and _is_connect_failure(details):
            return ConnectError(f"cannot connect to {self._where()}: {details}", status="UNAVAILABLE")
        status_details = None
        for key, value in exc.trailing_metadata() or ():
            if key == _STATUS_DETAILS_KEY and isinstance(value, bytes):
                status_details = value
        return classify_grpc_status(code.value[0], message=details, details=status_details)

    def _where(self) -> str:
        return self.config.endpoint_for_display

    async def close(self) -> None:
        self._closed = True
        if self._channel is not None:
            await self._channel.close()
            self._channel = None


def _is_connect_failure(details: str) -> bool:
    text = details.lower()
    return any(
        word in text for word in ("connection refused", "failed to connect", "connection reset", "socket closed")
    )
