"""aiotlp: the asyncio-native OpenTelemetry (OTLP) export pipeline.

```python
async with aiotlp.OTLPExporter(endpoint="http://localhost:4318") as exporter:
    result = await exporter.export_traces(spans)
```
"""

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
