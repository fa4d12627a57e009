"""The official OTLP/HTTP (protobuf) exporters' classes, exporting with aiotlp: change the import, keep the call.

```python
# from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from aiotlp.sdk.http import OTLPSpanExporter

exporter = OTLPSpanExporter(endpoint="http://localhost:4318/v1/traces")
```

Same names, parameters, order and defaults as ``opentelemetry.exporter.otlp.proto.http``'s ``trace_exporter``,
``_log_exporter`` and ``metric_exporter`` (an explicit endpoint is the full URL; by default
``http://localhost:4318/v1/<signal>``); the protocol is ``http/protobuf`` whatever ``OTEL_EXPORTER_OTLP_PROTOCOL``
says, as there. See :mod:`aiotlp.sdk._official`. ``OTLPLogExporter`` and ``OTLPMetricExporter`` are imported when
first used, with the logs (metrics) SDK: a span exporter imports neither.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ._lazy import lazy_names
from ._official import AiotlpOptions
from ._official import HttpSpanExporter as OTLPSpanExporter

if TYPE_CHECKING:
    from ._official_logs import HttpLogExporter as OTLPLogExporter
    from ._official_metrics import HttpMetricExporter as OTLPMetricExporter

__all__ = ["AiotlpOptions", "OTLPLogExporter", "OTLPMetricExporter", "OTLPSpanExporter"]

_LAZY = {
    "OTLPLogExporter": ("._official_logs", "HttpLogExporter"),
    "OTLPMetricExporter": ("._official_metrics", "HttpMetricExporter"),
}
"""Imported when first used (PEP 562): a span exporter imports neither the logs SDK nor the metrics SDK."""


__getattr__, __dir__ = lazy_names(globals(), _LAZY, __all__)
