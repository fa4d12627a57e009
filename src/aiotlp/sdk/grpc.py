"""The official OTLP/gRPC exporters' classes, exporting with aiotlp: change the import, keep the call.

```python
# from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
from aiotlp.sdk.grpc import OTLPSpanExporter

exporter = OTLPSpanExporter(endpoint="localhost:4317", insecure=True)
```

Same names, parameters, order and defaults as ``opentelemetry.exporter.otlp.proto.grpc``'s ``trace_exporter``,
``_log_exporter`` and ``metric_exporter`` (endpoint ``localhost:4317`` by default); the protocol is ``grpc``
whatever ``OTEL_EXPORTER_OTLP_PROTOCOL`` says, as there. See :mod:`aiotlp.sdk._official`.
"""

from __future__ import annotations

from ._official import AiotlpOptions
from ._official import GrpcLogExporter as OTLPLogExporter
from ._official import GrpcMetricExporter as OTLPMetricExporter
from ._official import GrpcSpanExporter as OTLPSpanExporter

__all__ = ["AiotlpOptions", "OTLPLogExporter", "OTLPMetricExporter", "OTLPSpanExporter"]
