"""The official OTLP/gRPC exporters' classes, exporting with aiotlp: change the import, keep the call.

```python
# from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
from aiotlp.sdk.grpc import OTLPSpanExporter

exporter = OTLPSpanExporter(endpoint="localhost:4317", insecure=True)
```

Same names, parameters, order and defaults as ``opentelemetry.exporter.otlp.proto.grpc``'s ``trace_exporter``,
``_log_exporter`` and ``metric_exporter`` (endpoint ``localhost:4317`` by default); the protocol is ``grpc``
whatever ``OTEL_EXPORTER_OTLP_PROTOCOL`` says, as there. See :mod:`aiotlp.sdk._official`. ``OTLPLogExporter`` and
``OTLPMetricExporter`` are imported when first used, with the logs (metrics) SDK: a span exporter imports neither.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ._lazy import lazy_names
from ._official import AiotlpOptions
from ._official import GrpcSpanExporter as OTLPSpanExporter

if TYPE_CHECKING:
    from ._official_logs import GrpcLogExporter as OTLPLogExporter
    from ._official_metrics import GrpcMetricExporter as OTLPMetricExporter

__all__ = ["AiotlpOptions", "OTLPLogExporter", "OTLPMetricExporter", "OTLPSpanExporter"]

_LAZY = {
    "OTLPLogExporter": ("._official_logs", "GrpcLogExporter"),
    "OTLPMetricExporter": ("._official_metrics", "GrpcMetricExporter"),
}
"""Imported when first used (PEP 562): a span exporter imports neither the logs SDK nor the metrics SDK."""


__getattr__, __dir__ = lazy_names(globals(), _LAZY, __all__)
