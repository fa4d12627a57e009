"""The SDK exporters' arguments, as one type: :class:`ExporterOptions`, and the one resolver to a configuration.

The official OTLP exporters' arguments (``endpoint``, ``headers``, ``timeout`` in seconds, ``compression`` as a
string or a ``Compression`` enum, the certificate files, ``insecure``, ``max_request_size``; ``credentials``,
``session``, ``channel_options``, ``retryable_error_codes`` and ``meter_provider``, refused with what to use
instead) plus aiotlp's own (``protocol``, ``retry``, ``max_concurrent``, ``transport_factory``, ``environ``,
``queue_dir``) are written out once, here, as the fields of :class:`ExporterOptions`. The public classes
(:class:`~aiotlp.sdk.SpanExporter`, ..., and the per-protocol classes of :mod:`aiotlp.sdk.grpc` and
:mod:`aiotlp.sdk.http`) keep their written-out signatures, for ``help()`` and IDEs, and hand their arguments
over as one :class:`ExporterOptions` (:meth:`ExporterOptions.of`); :func:`resolve` turns it into the
:class:`~aiotlp.config.ExporterConfig` of one signal.
"""

from __future__ import annotations

import dataclasses
import enum
import os
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Final, cast

from aiotlp._exceptions import ConfigurationError
from aiotlp._validate import is_int
from aiotlp.config import COMPRESSIONS, MAX_REQUEST_BYTES, ExporterConfig, Headers, OtlpProtocol
from aiotlp.export import RetryPolicy, TransportFactory
from aiotlp.model import Signal

__all__ = ["CLASS_NAMES", "ExporterOptions", "resolve"]


@dataclasses.dataclass(frozen=True)
class ExporterOptions:
    """Every argument of an SDK exporter but the metric-only ones, as given (``None``: not given)."""

    endpoint: str | Sequence[str] | None = None
    protocol: OtlpProtocol | None = None
    headers: Mapping[str, str] | Iterable[tuple[str, str]] | str | None = None
    timeout: float | None = None
    compression: str | enum.Enum | None = None
    insecure: bool | None = None
    certificate_file: str | None = None
    client_key_file: str | None = None
    client_certificate_file: str | None = None
    credentials: object = None
    session: object = None
    channel_options: object = None
    retryable_error_codes: object = None
    max_request_size: int | None = None
    meter_provider: object = None
    retry: RetryPolicy | None = None
    max_concurrent: int = 4
    transport_factory: TransportFactory | None = None
    environ: Mapping[str, str] | None = None
    queue_dir: str | os.PathLike[str] | None = None

    @classmethod
    def of(cls, arguments: Mapping[str, Any]) -> ExporterOptions:
        """The options among ``arguments`` (an ``__init__``'s ``locals()``; anything else in it is ignored)."""
        return cls(**{field.name: arguments[field.name] for field in _FIELDS if field.name in arguments})


_FIELDS: Final = dataclasses.fields(ExporterOptions)

CLASS_NAMES: Final = {
    Signal.TRACES: "OTLPSpanExporter",
    Signal.LOGS: "OTLPLogExporter",
    Signal.METRICS: "OTLPMetricExporter",
}
"""The official exporter class of each signal (the same name in both protocols' modules)."""


def _reject(value: object, name: str, reason: str) -> None:
    if value is not None:
        raise ConfigurationError(f"{name}: {reason}")


def _headers(value: object) -> Headers | None:
    """``headers`` as the official exporters take them: a mapping, (name, value) pairs, or ``"k=v,k2=v2"``."""
    if value is None or isinstance(value, Headers):
        return value
    if isinstance(value, str):
        return Headers.parse(value, source="headers")
    if isinstance(value, Mapping):
        return Headers(value, source="headers")
    if isinstance(value, Iterable):
        return Headers(list(value), source="headers")
    raise ConfigurationError(
        f"headers: expected a mapping, (name, value) pairs or 'k=v,...' text, got {type(value).__name__}"
    )


def _compression(value: object) -> str | None:
    """``compression`` as ``"gzip"``, ``"deflate"``, ``"zstd"`` or ``"none"`` (checked by the configuration), from
    a string or any of the official Compression enums (deflate: HTTP ``Content-Encoding: deflate``, gRPC's
    ``deflate`` message encoding, as the official exporters send it; zstd, which they do not have, as a string)."""
    if value is None:
        return None
    if isinstance(value, enum.Enum):
        # grpc.Compression (NoCompression, Deflate, Gzip), the HTTP exporter's Compression and the common
        # http.Compression (NONE, DEFLATE, GZIP)
        text = {"nocompression": "none"}.get(value.name.lower(), value.name.lower())
    elif isinstance(value, str):
        text = value.strip().lower()
    else:
        raise ConfigurationError(
            f"compression: expected one of {', '.join(repr(c) for c in COMPRESSIONS)} or a Compression enum, "
            f"got {type(value).__name__}"
        )
    return text


def _max_request_bytes(value: object) -> int | None:
    """The official ``max_request_size``: ``None`` is the default, a non-positive value means no limit (here
    the OTLP maximum, 64 MiB). aiotlp splits an oversized batch instead of dropping it."""
    if value is None:
        return None
    if not is_int(value):
        raise ConfigurationError(f"max_request_size: must be an int, got {type(value).__name__}")
    return MAX_REQUEST_BYTES if value <= 0 else value


def _refuse_unsupported(options: ExporterOptions) -> None:
    _reject(
        options.credentials,
        "credentials",
        "grpc ChannelCredentials objects are not supported: give PEM files instead, certificate_file= (trusted "
        "CAs) and client_key_file= with client_certificate_file= (mTLS), or OTEL_EXPORTER_OTLP_CERTIFICATE, "
        "OTEL_EXPORTER_OTLP_CLIENT_KEY and OTEL_EXPORTER_OTLP_CLIENT_CERTIFICATE",
    )
    _reject(
        options.session,
        "session",
        "aiotlp sends over its own HTTP/1.1 connections and cannot use a requests.Session: pass headers= for "
        "authentication and certificate_file= (client_key_file=, client_certificate_file=) for TLS",
    )
    _reject(
        options.channel_options,
        "channel_options",
        "gRPC channel options are not supported by aiotlp's gRPC transport",
    )
    _reject(
        options.retryable_error_codes,
        "retryable_error_codes",
        "not supported: aiotlp retries the status codes the OTLP specification lists, until the export timeout",
    )
    _reject(
        options.meter_provider,
        "meter_provider",
        "not supported: aiotlp's SDK exporters do not take a MeterProvider; set "
        "OTEL_PYTHON_SDK_INTERNAL_METRICS_ENABLED=true for their self-metrics (through the global one)",
    )


def resolve(signal: Signal, options: ExporterOptions, fixed_by: str | None = None) -> ExporterConfig:
    """The configuration ``options`` give for ``signal`` (the rest from the environment, leniently, as the
    official exporters read it). ``fixed_by``: the name of a class that fixes the protocol, for messages."""
    _refuse_unsupported(options)
    endpoint, protocol = options.endpoint, options.protocol
    try:
        return ExporterConfig.from_env(
            options.environ,
            # The official exporters use an explicit endpoint as the signal's own: OTLP/HTTP posts to it verbatim,
            # gRPC takes its host and port (scheme optional). A per-signal endpoint behaves exactly so.
            signal_endpoints=None if endpoint is None else {signal: endpoint},
            # Only what this exporter uses is read (the generic and this signal's variables, those no argument
            # overrides), and a value the official exporters would warn about and replace by a default is
            # treated the same way: the drop-in never stops an application that runs with the official exporters.
            signals=(signal,),
            on_invalid="warn",
            protocol=protocol,
            headers=_headers(options.headers),
            timeout=options.timeout,
            compression=cast(Any, _compression(options.compression)),
            insecure=options.insecure,
            certificate_file=options.certificate_file,
            client_key_file=options.client_key_file,
            client_certificate_file=options.client_certificate_file,
            max_request_bytes=_max_request_bytes(options.max_request_size),
        )
    except ConfigurationError as exc:
        prefix = f"signal_endpoints[{signal.value!r}]: "
        if endpoint is None or not str(exc).startswith(prefix):
            raise
        # the endpoint= argument went in as the signal's own endpoint: say so in the user's terms
        if isinstance(endpoint, str) and "://" not in endpoint and "http://" in str(exc):
            raise ConfigurationError(_no_scheme(signal, endpoint, protocol, fixed_by)) from None
        raise ConfigurationError("endpoint: " + str(exc)[len(prefix) :]) from None


def _no_scheme(signal: Signal, endpoint: str, protocol: str | None, fixed_by: str | None) -> str:
    """The error for a scheme-less endpoint given to an OTLP/HTTP exporter: which protocol was assumed and why,
    and how to change it. A ``user:password@`` part is never shown."""
    shown = endpoint.rpartition("@")[2]
    grpc_class = f"aiotlp.sdk.grpc.{CLASS_NAMES[signal]}"
    if fixed_by is not None:  # a class of aiotlp.sdk.http: its protocol is not an argument
        exporter, change = f"{fixed_by} is an OTLP/HTTP exporter and", f"for gRPC use {grpc_class}"
    else:
        assumed = (
            f"protocol={protocol!r}"
            if protocol is not None
            else "the protocol from OTEL_EXPORTER_OTLP_PROTOCOL, or the default http/protobuf"
        )
        exporter, change = f"the OTLP/HTTP exporter ({assumed})", f"for gRPC use protocol='grpc' or {grpc_class}"
    return (
        f"endpoint {shown!r} has no scheme: {exporter} needs a URL starting with http:// or https://, "
        f"such as 'http://{shown}/v1/{signal.value}'; {change}"
    )
