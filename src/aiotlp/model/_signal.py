"""The three OTLP signals."""

from __future__ import annotations

import enum

__all__ = ["Signal"]


class Signal(str, enum.Enum):
    """An OTLP signal. The value is the path segment of its HTTP endpoint (``/v1/<value>``)."""

    TRACES = "traces"
    METRICS = "metrics"
    LOGS = "logs"

    @property
    def http_path(self) -> str:
        return f"/v1/{self.value}"

    @property
    def grpc_method(self) -> str:
        service = {"traces": "trace", "metrics": "metrics", "logs": "logs"}[self.value]
        name = {"traces": "Trace", "metrics": "Metrics", "logs": "Logs"}[self.value]
        return f"/opentelemetry.proto.collector.{service}.v1.{name}Service/Export"
