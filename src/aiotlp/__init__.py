"""aiotlp: the asyncio-native OpenTelemetry (OTLP) export pipeline.

```python
async with aiotlp.OTLPExporter(endpoint="http://localhost:4318") as exporter:
    result = await exporter.export_traces(spans)
```
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

from ._exceptions import (
    AiotlpError,
    AttemptTimeoutError,
    ConfigurationError,
    ConnectError,
    DeadlineExceededError,
    DurableQueueError,
    EncodeError,
    ExportError,
    ExporterShutdownError,
    MissingExtraError,
    PermanentError,
    ProtocolMismatchError,
    QueueFullError,
    QueueLockedError,
    QueueWriteError,
    RejectedError,
    RequestTooLargeError,
    ResponseError,
    RetriesExhaustedError,
    RetryableError,
    ServerBusyError,
)
from ._version import __version__

if TYPE_CHECKING:
    from .config import ExporterConfig, Headers, SignalConfig
    from .durable import DurableExporter
    from .export import ConcurrencyLimit, Exporter, ExportResult, OTLPExporter, Retry, RetryPolicy, Timeout
    from .model import (
        AggregationTemporality,
        Event,
        InstrumentationScope,
        Link,
        LogRecord,
        Metric,
        Resource,
        SeverityNumber,
        Signal,
        Span,
        SpanKind,
        Status,
        StatusCode,
    )
    from .pipeline import BatchProcessor
    from .processing import FlushOutcome, FlushStatus, ProcessorStatistics
    from .transport import EndpointStatistics, FleetPolicy

_LAZY: dict[str, str] = {
    "ExporterConfig": "aiotlp.config",
    "Headers": "aiotlp.config",
    "SignalConfig": "aiotlp.config",
    "DurableExporter": "aiotlp.durable",
    "ConcurrencyLimit": "aiotlp.export",
    "Exporter": "aiotlp.export",
    "ExportResult": "aiotlp.export",
    "OTLPExporter": "aiotlp.export",
    "Retry": "aiotlp.export",
    "RetryPolicy": "aiotlp.export",
    "Timeout": "aiotlp.export",
    "AggregationTemporality": "aiotlp.model",
    "Event": "aiotlp.model",
    "InstrumentationScope": "aiotlp.model",
    "Link": "aiotlp.model",
    "LogRecord": "aiotlp.model",
    "Metric": "aiotlp.model",
    "Resource": "aiotlp.model",
    "SeverityNumber": "aiotlp.model",
    "Signal": "aiotlp.model",
    "Span": "aiotlp.model",
    "SpanKind": "aiotlp.model",
    "Status": "aiotlp.model",
    "StatusCode": "aiotlp.model",
    "BatchProcessor": "aiotlp.pipeline",
    "FlushOutcome": "aiotlp.processing",
    "FlushStatus": "aiotlp.processing",
    "ProcessorStatistics": "aiotlp.processing",
    "EndpointStatistics": "aiotlp.transport",
    "FleetPolicy": "aiotlp.transport",
}
"""Where each public name lives: imported on first use (PEP 562), so ``import aiotlp`` costs little and a
configuration pays only for what it uses (aiohttp only for OTLP/HTTP, h2 or grpcio only for gRPC)."""

__all__ = [
    "AggregationTemporality",
    "AiotlpError",
    "AttemptTimeoutError",
    "BatchProcessor",
    "ConcurrencyLimit",
    "ConfigurationError",
    "ConnectError",
    "DeadlineExceededError",
    "DurableExporter",
    "DurableQueueError",
    "EncodeError",
    "EndpointStatistics",
    "Event",
    "ExportError",
    "ExportResult",
    "Exporter",
    "ExporterConfig",
    "ExporterShutdownError",
    "FleetPolicy",
    "FlushOutcome",
    "FlushStatus",
    "Headers",
    "InstrumentationScope",
    "Link",
    "LogRecord",
    "Metric",
    "MissingExtraError",
    "OTLPExporter",
    "PermanentError",
    "ProcessorStatistics",
    "ProtocolMismatchError",
    "QueueFullError",
    "QueueLockedError",
    "QueueWriteError",
    "RejectedError",
    "RequestTooLargeError",
    "Resource",
    "ResponseError",
    "RetriesExhaustedError",
    "Retry",
    "RetryPolicy",
    "RetryableError",
    "ServerBusyError",
    "SeverityNumber",
    "Signal",
    "SignalConfig",
    "Span",
    "SpanKind",
    "Status",
    "StatusCode",
    "Timeout",
    "__version__",
]


def __getattr__(name: str) -> object:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'aiotlp' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
