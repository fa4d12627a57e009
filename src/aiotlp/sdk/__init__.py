"""OpenTelemetry SDK integration: drop-in exporters backed by aiotlp, and direct SDK -> OTLP encoders.

```python
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
import aiotlp.sdk

provider = TracerProvider()
provider.add_span_processor(BatchSpanProcessor(aiotlp.sdk.SpanExporter(endpoint="http://collector:4318/v1/traces")))
```

Or with the SDK's auto-configuration: ``OTEL_TRACES_EXPORTER=aiotlp``, ``OTEL_LOGS_EXPORTER=aiotlp``,
``OTEL_METRICS_EXPORTER=aiotlp`` (entry points of the ``opentelemetry_*_exporter`` groups).

- :class:`SpanExporter`, :class:`LogExporter`, :class:`MetricExporter`: the SDK's exporter interfaces, taking
  the official OTLP exporters' arguments plus ``protocol`` (``grpc``, ``http/protobuf``, ``http/json``); they
  export through aiotlp's async exporter on a background event-loop thread (see :mod:`aiotlp.sdk._bridge`);
- :class:`BatchSpanProcessor`, :class:`BatchLogRecordProcessor`: the SDK's batch processors on aiotlp's
  bounded queue, exporting on the bridge loop (with aiotlp's exporters: no thread hop per batch; see
  :mod:`aiotlp.sdk._processors`);
- :mod:`aiotlp.sdk.grpc` and :mod:`aiotlp.sdk.http`: the official gRPC and HTTP exporters' classes
  (``OTLPSpanExporter``, ``OTLPLogExporter``, ``OTLPMetricExporter``: same names, arguments and defaults), on
  the classes above with the protocol fixed: migrating is an import change;
- ``statistics()`` of each exporter (:class:`ExporterStatistics`): exports, items accepted, kept on disk,
  rejected, failed, dropped by reason, retries, the last error; :func:`exporters` lists the exporters of the
  process (those auto-configuration made, too); ``OTEL_PYTHON_SDK_INTERNAL_METRICS_ENABLED=true`` turns their
  self-metrics on (:mod:`aiotlp.sdk._selfmetrics`);
- :class:`TracerProvider` (with its :class:`Tracer` and :class:`Span`): the SDK's TracerProvider, same arguments
  and API, with each span's state in a native SpanCore; aiotlp's :class:`BatchSpanProcessor` takes its spans
  as bytes straight from it (see :mod:`aiotlp.sdk._provider`);
- :func:`encode_spans`, :func:`encode_log_records`, :func:`encode_metrics_data` and their ``_json`` twins: SDK
  objects straight to OTLP request bytes, as the official encoder maps them (see :mod:`aiotlp.sdk._encode`).

This is the only package of aiotlp that imports ``opentelemetry.sdk``: ``pip install 'aiotlp[sdk]'``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from aiotlp._exceptions import MissingExtraError

from ._lazy import lazy_names

try:
    import opentelemetry.sdk  # noqa: F401
except ImportError as exc:  # pragma: no cover - depends on the installed extras
    raise MissingExtraError("sdk", exc.name or "opentelemetry-sdk") from exc

if TYPE_CHECKING:
    from ._encode import (
        encode_log_records,
        encode_log_records_json,
        encode_metrics_data,
        encode_metrics_data_json,
        encode_spans,
        encode_spans_json,
    )
    from ._exporters import SpanExporter, exporters
    from ._log_exporter import LogExporter
    from ._metric_exporter import MetricExporter
    from ._processors import BatchLogRecordProcessor, BatchSpanProcessor
    from ._provider import Tracer, TracerProvider
    from ._span import Span
    from ._stats import ExporterStatistics

_LAZY: dict[str, str] = {
    "encode_log_records": "._encode",
    "encode_log_records_json": "._encode",
    "encode_metrics_data": "._encode",
    "encode_metrics_data_json": "._encode",
    "encode_spans": "._encode",
    "encode_spans_json": "._encode",
    "LogExporter": "._log_exporter",
    "MetricExporter": "._metric_exporter",
    "SpanExporter": "._exporters",
    "exporters": "._exporters",
    "BatchLogRecordProcessor": "._processors",
    "BatchSpanProcessor": "._processors",
    "ExporterStatistics": "._stats",
    "Span": "._span",
    "Tracer": "._provider",
    "TracerProvider": "._provider",
}
"""Where each public name lives, imported on first use (PEP 562): an application that only exports spans never
imports the processors, nor the logs and metrics SDKs (the log and metric exporters have their own modules),
and nothing here imports a client (HTTP/1.1, h2 or grpcio: the transport of the configured protocol is imported
when the first export makes it)."""

__all__ = [
    "BatchLogRecordProcessor",
    "BatchSpanProcessor",
    "ExporterStatistics",
    "LogExporter",
    "MetricExporter",
    "Span",
    "SpanExporter",
    "Tracer",
    "TracerProvider",
    "encode_log_records",
    "encode_log_records_json",
    "encode_metrics_data",
    "encode_metrics_data_json",
    "encode_spans",
    "encode_spans_json",
    "exporters",
]


__getattr__, __dir__ = lazy_names(globals(), {name: (module, name) for name, module in _LAZY.items()}, __all__)
