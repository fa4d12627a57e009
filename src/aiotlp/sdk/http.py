"""The official OTLP/HTTP (protobuf) exporters' classes, exporting with aiotlp: change the import, keep the call.

```python
# from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from aiotlp.sdk.http import OTLPSpanExporter

exporter = OTLPSpanExporter(endpoint="http://localhost:4318/v1/traces")
```

Same names, parameters, order and defaults as ``opentelemetry.exporter.otlp.proto.http``'s ``trace_exporter``,
``_log_exporter`` and ``metric_exporter`` (an explicit endpoint is the full URL; by default
``http://localhost:4318/v1/<signal>``); the protocol is ``http/protobuf`` whatever ``OTEL_EXPORTER_OTLP_PROTOCOL``
says, as there. See :mod:`aiotlp.sdk._official`.
"""

from __future__ import annotations

from ._official import AiotlpOptions
from ._official import HttpLogExporter as OTLPLogExporter
from ._official import HttpMetricExporter as OTLPMetricExporter
from ._official import HttpSpanExporter as OTLPSpanExporter

__all__ = ["AiotlpOptions", "OTLPLogExporter", "OTLPMetricExporter", "OTLPSpanExporter"]
