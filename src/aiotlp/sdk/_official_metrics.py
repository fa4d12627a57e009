"""The official metric exporters' classes (see :mod:`._official`), apart so that a span exporter does not import the
metrics SDK: ``OTLPMetricExporter`` of :mod:`aiotlp.sdk.grpc` and :mod:`aiotlp.sdk.http`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from opentelemetry.sdk.metrics.export import AggregationTemporality
from opentelemetry.sdk.metrics.view import Aggregation

from ._metric_exporter import MetricExporter
from ._official import AiotlpOptions, _Compression, _forwarded, _Headers

if TYPE_CHECKING:
    from typing_extensions import Unpack

__all__ = ["GrpcMetricExporter", "HttpMetricExporter"]


class GrpcMetricExporter(MetricExporter):
    """``opentelemetry.exporter.otlp.proto.grpc.metric_exporter.OTLPMetricExporter``, exporting with aiotlp."""

    _FIXED_BY = "aiotlp.sdk.grpc.OTLPMetricExporter"

    def __init__(
        self,
        endpoint: str | Sequence[str] | None = None,
        insecure: bool | None = None,
        credentials: object = None,
        headers: _Headers = None,
        timeout: float | None = None,
        compression: _Compression = None,
        preferred_temporality: dict[type, AggregationTemporality] | None = None,
        preferred_aggregation: dict[type, Aggregation] | None = None,
        max_export_batch_size: int | None = None,
        channel_options: object = None,
        retryable_error_codes: object = None,
        *,
        meter_provider: object = None,
        **options: Unpack[AiotlpOptions],
    ) -> None:
        super().__init__(protocol="grpc", **_forwarded(locals()))


class HttpMetricExporter(MetricExporter):
    """``opentelemetry.exporter.otlp.proto.http.metric_exporter.OTLPMetricExporter``, exporting with aiotlp."""

    _FIXED_BY = "aiotlp.sdk.http.OTLPMetricExporter"

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
        preferred_temporality: dict[type, AggregationTemporality] | None = None,
        preferred_aggregation: dict[type, Aggregation] | None = None,
        max_export_batch_size: int | None = None,
        *,
        max_request_size: int | None = None,
        meter_provider: object = None,
        **options: Unpack[AiotlpOptions],
    ) -> None:
        super().__init__(protocol="http/protobuf", **_forwarded(locals()))
