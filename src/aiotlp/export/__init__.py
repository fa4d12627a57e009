"""The export layer: the exporter and its wrappers, each with the same one-verb ``send`` interface.

The stack order is documented in :mod:`aiotlp.export._stack`.
"""

from ._exporter import OTLPExporter, TransportFactory
from ._limit import ConcurrencyLimit
from ._retry import Retry, RetryPolicy
from ._stack import SenderStack, TransportSender, build_stack
from ._timeout import Timeout
from ._types import Exporter, ExportRequest, ExportResult, Sender

__all__ = [
    "ConcurrencyLimit",
    "ExportRequest",
    "ExportResult",
    "Exporter",
    "OTLPExporter",
    "Retry",
    "RetryPolicy",
    "Sender",
    "SenderStack",
    "Timeout",
    "TransportFactory",
    "TransportSender",
    "build_stack",
]
