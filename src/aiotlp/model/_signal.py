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
