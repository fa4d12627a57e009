"""The SDK exporters' arguments, written once: the TypedDicts :class:`ExporterArguments` (its parts
:class:`OfficialOptions` and :class:`AiotlpOptions`), and the one resolver to a configuration.

The official OTLP exporters' arguments (``endpoint``, ``headers``, ``timeout`` in seconds, ``compression`` as a
string or a ``Compression`` enum, the certificate files, ``insecure``, ``max_request_size``; ``credentials``,
``session``, ``channel_options``, ``retryable_error_codes`` and ``meter_provider``, refused with what to use
instead) plus aiotlp's own (``protocol``, ``retry``, ``max_concurrent``, ``transport_factory``, ``environ``,
``queue_dir``) are the keys of :class:`ExporterArguments`, with their types; :data:`DEFAULTS` holds the one default
that is not ``None``. :class:`~aiotlp.sdk.SpanExporter` and :class:`~aiotlp.sdk.LogExporter` take
``(endpoint=None, **options: Unpack[ExporterArguments])`` (:class:`~aiotlp.sdk.MetricExporter` a TypedDict with
its own three more), so that a type checker checks each keyword; :func:`keywords_of` builds from the same table
the signature that ``inspect.signature`` and ``help()`` show, every parameter with its type and default, and
:func:`check_keywords` refuses an unknown keyword as Python does. :func:`resolve` turns the arguments into the
:class:`~aiotlp.config.ExporterConfig` of one signal. The classes of :mod:`aiotlp.sdk.grpc` and
:mod:`aiotlp.sdk.http` keep the official positional orders (one ``__init__`` each, in :mod:`._official`) and pass
their arguments on by keyword.
"""

from __future__ import annotations

import enum
import inspect
import os
import re
import types
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, Final, ForwardRef, TypedDict, TypeVar, cast

from aiotlp._exceptions import ConfigurationError
from aiotlp._validate import is_int
from aiotlp.config import COMPRESSIONS, MAX_REQUEST_BYTES, ExporterConfig, Headers, OtlpProtocol
from aiotlp.export import RetryPolicy, TransportFactory
from aiotlp.model import Signal

__all__ = [
    "CLASS_NAMES",
    "DEFAULTS",
    "MAX_CONCURRENT",
    "AiotlpOptions",
    "CompressionArgument",
    "Endpoint",
    "ExporterArguments",
    "HeadersArgument",
    "OfficialOptions",
    "ProtocolOption",
    "check_keywords",
    "keywords_of",
    "resolve",
]


Endpoint = str | Sequence[str] | None
"""``endpoint``: one URL (``host:port`` for gRPC), or a list of them, a fleet of collectors."""

HeadersArgument = Mapping[str, str] | Iterable[tuple[str, str]] | str | None
"""``headers`` as the official exporters take them: a mapping, (name, value) pairs or ``"k=v,k2=v2"``."""

CompressionArgument = str | enum.Enum | None
"""``compression``: ``"gzip"``, ``"deflate"``, ``"zstd"``, ``"none"`` or any of the official Compression enums."""


class AiotlpOptions(TypedDict, total=False):
    """aiotlp's own keyword arguments, beyond the official ones (see :class:`~aiotlp.sdk.SpanExporter`)."""

    retry: RetryPolicy | None
    max_concurrent: int
    transport_factory: TransportFactory | None
    environ: Mapping[str, str] | None
    queue_dir: str | os.PathLike[str] | None


class ProtocolOption(TypedDict, total=False):
    """aiotlp's ``protocol``, first after ``endpoint`` (the classes of :mod:`aiotlp.sdk.grpc` and
    :mod:`aiotlp.sdk.http` fix it)."""

    protocol: OtlpProtocol | None


class OfficialOptions(TypedDict, total=False):
    """The official exporters' keyword arguments (all of them, of both protocols) but ``endpoint`` and the
    metric-only ones."""

    headers: HeadersArgument
    timeout: float | None
    compression: CompressionArgument
    insecure: bool | None
    certificate_file: str | None
    client_key_file: str | None
    client_certificate_file: str | None
    credentials: object
    session: object
    channel_options: object
    retryable_error_codes: object
    max_request_size: int | None
    meter_provider: object


class ExporterArguments(ProtocolOption, OfficialOptions, AiotlpOptions, total=False):
    """Every keyword argument of a span or log exporter (``endpoint`` is its one positional argument), in the
    order its signature shows them. The type of ``**options`` (``Unpack``), and the table that
    :func:`keywords_of` turns into the signature that ``help()`` and IDEs show."""


MAX_CONCURRENT: Final = 4
"""``max_concurrent``'s default: exports in flight at once per loop."""

DEFAULTS: Final[Mapping[str, object]] = {"max_concurrent": MAX_CONCURRENT}
"""The defaults that are not ``None`` (``None``: not given, taken from the environment or aiotlp's default)."""

_F = TypeVar("_F", bound=Callable[..., None])


def keywords_of(arguments: type) -> Callable[[_F], _F]:
    """Decorate an ``__init__(self, endpoint=None, **options: Unpack[arguments])``: its ``__signature__`` (what
    ``inspect.signature`` and ``help()`` show) lists each key of the TypedDict ``arguments`` as a keyword-only
    parameter, with its type and default, in place of ``**options``; a keyword not among them is a TypeError,
    as with a written-out signature (call :func:`check_keywords` first thing in ``__init__``)."""
    table = inspect.get_annotations(arguments)

    def decorate(init: _F) -> _F:
        signature = inspect.signature(init)
        parameters = [
            p.replace(annotation=_shown(p.annotation))
            for p in signature.parameters.values()
            if p.kind is not inspect.Parameter.VAR_KEYWORD
        ]
        for name, hint in table.items():
            annotation = _shown(hint.__forward_arg__ if isinstance(hint, ForwardRef) else hint)
            parameters.append(
                inspect.Parameter(
                    name, inspect.Parameter.KEYWORD_ONLY, default=DEFAULTS.get(name), annotation=annotation
                )
            )
        cast(Any, init).__signature__ = signature.replace(parameters=parameters)
        return init

    return decorate


def _shown(annotation: object) -> object:
    """An annotation as ``help()`` shows it: this module's union aliases (``Endpoint``, ...) spelled out."""
    value = globals().get(annotation) if isinstance(annotation, str) else None
    if isinstance(value, types.UnionType):
        return re.sub(r"\b(?:collections\.abc|typing|enum)\.", "", str(value)).replace("NoneType", "None")
    return annotation


def check_keywords(init: Callable[..., None], owner: object, options: Mapping[str, object]) -> None:
    """Raise the TypeError Python raises for a keyword ``init`` (decorated with :func:`keywords_of`) does not
    take."""
    known: Mapping[str, inspect.Parameter] = cast(Any, init).__signature__.parameters
    for name in options:
        if name not in known:
            raise TypeError(f"{type(owner).__name__}() got an unexpected keyword argument {name!r}")


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


def _refuse_unsupported(options: ExporterArguments) -> None:
    _reject(
        options.get("credentials"),
        "credentials",
        "grpc ChannelCredentials objects are not supported: give PEM files instead, certificate_file= (trusted "
        "CAs) and client_key_file= with client_certificate_file= (mTLS), or OTEL_EXPORTER_OTLP_CERTIFICATE, "
        "OTEL_EXPORTER_OTLP_CLIENT_KEY and OTEL_EXPORTER_OTLP_CLIENT_CERTIFICATE",
    )
    _reject(
        options.get("session"),
        "session",
        "aiotlp sends over its own HTTP/1.1 connections and cannot use a requests.Session: pass headers= for "
        "authentication and certificate_file= (client_key_file=, client_certificate_file=) for TLS",
    )
    _reject(
        options.get("channel_options"),
        "channel_options",
        "gRPC channel options are not supported by aiotlp's gRPC transport",
    )
    _reject(
        options.get("retryable_error_codes"),
        "retryable_error_codes",
        "not supported: aiotlp retries the status codes the OTLP specification lists, until the export timeout",
    )
    _reject(
        options.get("meter_provider"),
        "meter_provider",
        "not supported: aiotlp's SDK exporters do not take a MeterProvider; set "
        "OTEL_PYTHON_SDK_INTERNAL_METRICS_ENABLED=true for their self-metrics (through the global one)",
    )


def resolve(
    signal: Signal, endpoint: Endpoint, options: ExporterArguments, fixed_by: str | None = None
) -> ExporterConfig:
    """The configuration ``endpoint`` and ``options`` give for ``signal`` (the rest from the environment,
    leniently, as the official exporters read it). ``fixed_by``: the name of a class that fixes the protocol, for
    messages."""
    _refuse_unsupported(options)
    protocol = options.get("protocol")
    try:
        return ExporterConfig.from_env(
            options.get("environ"),
            # The official exporters use an explicit endpoint as the signal's own: OTLP/HTTP posts to it verbatim,
            # gRPC takes its host and port (scheme optional). A per-signal endpoint behaves exactly so.
            signal_endpoints=None if endpoint is None else {signal: endpoint},
            # Only what this exporter uses is read (the generic and this signal's variables, those no argument
            # overrides), and a value the official exporters would warn about and replace by a default is
            # treated the same way: the drop-in never stops an application that runs with the official exporters.
            signals=(signal,),
            on_invalid="warn",
            protocol=protocol,
            headers=_headers(options.get("headers")),
            timeout=options.get("timeout"),
            compression=cast(Any, _compression(options.get("compression"))),
            insecure=options.get("insecure"),
            certificate_file=options.get("certificate_file"),
            client_key_file=options.get("client_key_file"),
            client_certificate_file=options.get("client_certificate_file"),
            max_request_bytes=_max_request_bytes(options.get("max_request_size")),
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
