"""The official log exporters' classes (see :mod:`._official`), apart so that a span exporter does not import the
logs SDK: ``OTLPLogExporter`` of :mod:`aiotlp.sdk.grpc` and :mod:`aiotlp.sdk.http`.
"""

from __future__ import annotations

from ._log_exporter import LogExporter
from ._official import _GrpcArguments, _HttpArguments

__all__ = ["GrpcLogExporter", "HttpLogExporter"]


class GrpcLogExporter(_GrpcArguments, LogExporter):
    """``opentelemetry.exporter.otlp.proto.grpc._log_exporter.OTLPLogExporter``, exporting with aiotlp."""

    _FIXED_BY = "aiotlp.sdk.grpc.OTLPLogExporter"


class HttpLogExporter(_HttpArguments, LogExporter):
    """``opentelemetry.exporter.otlp.proto.http._log_exporter.OTLPLogExporter``, exporting with aiotlp."""

    _FIXED_BY = "aiotlp.sdk.http.OTLPLogExporter"
