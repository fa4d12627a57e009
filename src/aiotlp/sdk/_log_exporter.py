"""The drop-in ``LogRecordExporter``, :class:`LogExporter` (see :mod:`._exporters`): its own module, imported when
it is first used (``aiotlp.sdk.LogExporter``, ``OTLPLogExporter`` of :mod:`aiotlp.sdk.grpc` or :mod:`aiotlp.sdk.http`),
so that a span exporter does not import the logs SDK (``opentelemetry.sdk._logs``).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from opentelemetry.sdk._logs import ReadableLogRecord
from opentelemetry.sdk._logs.export import LogRecordExporter, LogRecordExportResult

from aiotlp.model import Signal

from ._encode_json_logs import encode_log_records_json
from ._encode_logs import encode_log_records
from ._exporters import AiotlpExporter

__all__ = ["LogExporter"]


class LogExporter(AiotlpExporter, LogRecordExporter):
    """A drop-in replacement for the official ``OTLPLogExporter`` (gRPC or HTTP): a ``LogRecordExporter``
    exporting the ``ReadableLogRecord`` batches of opentelemetry-sdk. Arguments as :class:`SpanExporter`."""

    _SIGNAL = Signal.LOGS

    def _encoder(self, json: bool) -> Callable[[Sequence[Any]], bytes]:
        return encode_log_records_json if json else encode_log_records

    def export(self, batch: Sequence[ReadableLogRecord]) -> LogRecordExportResult:
        """Send ``batch``; as :meth:`SpanExporter.export`."""
        return LogRecordExportResult.SUCCESS if self._send(batch, "log records") else LogRecordExportResult.FAILURE
