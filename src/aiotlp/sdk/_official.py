"""The official exporters' classes, one module per protocol: migrating is an import change.

:mod:`aiotlp.sdk.grpc` mirrors ``opentelemetry.exporter.otlp.proto.grpc.{trace_exporter,_log_exporter,
metric_exporter}`` and :mod:`aiotlp.sdk.http` mirrors ``opentelemetry.exporter.otlp.proto.http.{...}``: the same
class names and the same parameters, in the same order, with the same defaults (``tests/sdk/test_official.py``
compares the signatures). Each class is :class:`~aiotlp.sdk.SpanExporter` (:class:`~aiotlp.sdk.LogExporter`,
:class:`~aiotlp.sdk.MetricExporter`) with ``protocol`` fixed: ``grpc`` (default endpoint ``localhost:4317``,
``host:port`` with an optional scheme, ``insecure=``) or ``http/protobuf`` (full URLs, default
``http://localhost:4318/v1/<signal>``). Arguments are handled exactly as there (``credentials`` and ``session``
are refused, saying what to use); aiotlp's own options (``retry``, ``max_concurrent``, ``transport_factory``,
``environ``, ``queue_dir``) are keyword-only, one :class:`AiotlpOptions` for all six classes.

One ``__init__`` per argument list (gRPC span/log, gRPC metric, HTTP span/log, HTTP metric), written once as a
mixin in front of the protocol-neutral class; nothing is copied per signal. The log classes are in
:mod:`._official_logs`, the metric classes in :mod:`._official_metrics`: imported when first used (through the
``__getattr__`` of :mod:`aiotlp.sdk.grpc` and :mod:`aiotlp.sdk.http`), so that a span exporter imports neither the
logs SDK nor the metrics SDK.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, cast

from ._exporters import SpanExporter
from ._options import AiotlpOptions, CompressionArgument, HeadersArgument

if TYPE_CHECKING:
    from typing_extensions import Unpack

__all__ = ["AiotlpOptions", "GrpcSpanExporter", "HttpSpanExporter"]


def _forwarded(arguments: dict[str, Any]) -> dict[str, Any]:
    """An official signature's arguments (an ``__init__``'s ``locals()``) with aiotlp's ``**options``, as keyword
    arguments of the protocol-neutral class."""
    forwarded = {name: value for name, value in arguments.items() if name not in ("self", "__class__", "options")}
    return {**forwarded, **arguments["options"]}


_Headers = HeadersArgument
_Compression = CompressionArgument


class _GrpcArguments:
    """The official gRPC span and log exporters' ``__init__``."""

    def __init__(
        self,
        endpoint: str | Sequence[str] | None = None,
        insecure: bool | None = None,
        credentials: object = None,
        headers: _Headers = None,
        timeout: float | None = None,
        compression: _Compression = None,
        channel_options: object = None,
        retryable_error_codes: object = None,
        *,
        meter_provider: object = None,
        **options: Unpack[AiotlpOptions],
    ) -> None:
        cast(Any, super()).__init__(protocol="grpc", **_forwarded(locals()))


class _HttpArguments:
    """The official HTTP span and log exporters' ``__init__``."""

    def __init__(
        self,
        endpoint: str | Sequence[str] | None = None,
        certificate_file: str | None = None,
        client_key_file: str | None = None,
        client_certificate_file: str | None = None,
        headers: _Headers = None,
        timeout: float | None = None,
        compression: _Compression = None,
        session: object = None,
        *,
        max_request_size: int | None = None,
        meter_provider: object = None,
        **options: Unpack[AiotlpOptions],
    ) -> None:
        cast(Any, super()).__init__(protocol="http/protobuf", **_forwarded(locals()))


class GrpcSpanExporter(_GrpcArguments, SpanExporter):
    """``opentelemetry.exporter.otlp.proto.grpc.trace_exporter.OTLPSpanExporter``, exporting with aiotlp."""

    _FIXED_BY = "aiotlp.sdk.grpc.OTLPSpanExporter"


class HttpSpanExporter(_HttpArguments, SpanExporter):
    """``opentelemetry.exporter.otlp.proto.http.trace_exporter.OTLPSpanExporter``, exporting with aiotlp."""

    _FIXED_BY = "aiotlp.sdk.http.OTLPSpanExporter"
