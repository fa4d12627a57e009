"""The export layer: the exporter and its wrappers, each with the same one-verb ``send`` interface.

:class:`CodecExporter` writes the export verbs once, on :class:`Codec` (a batch into requests under the byte cap):
:class:`OTLPExporter` sends what they make, :class:`~aiotlp.durable.DurableExporter` queues it on disk.

The stack order is documented in :mod:`aiotlp.export._stack`.
"""

from ._codec import Codec, CodecExporter
from ._exporter import OTLPExporter, TransportFactory
from ._lane import CLOSED as LANE_CLOSED
from ._lane import SEND_AGAIN, ExportLane, open_lane
from ._limit import ConcurrencyLimit
from ._reply import read_reply, reply_error
from ._retry import Retry, RetryPolicy
from ._stack import SenderStack, TransportSender, build_stack, compress_request
from ._timeout import Timeout
from ._types import Exporter, ExporterHooks, ExportRequest, ExportResult, Sender

__all__ = [
    "LANE_CLOSED",
    "SEND_AGAIN",
    "Codec",
    "CodecExporter",
    "ConcurrencyLimit",
    "ExportLane",
    "ExportRequest",
    "ExportResult",
    "Exporter",
    "ExporterHooks",
    "OTLPExporter",
    "Retry",
    "RetryPolicy",
    "Sender",
    "SenderStack",
    "Timeout",
    "TransportFactory",
    "TransportSender",
    "build_stack",
    "compress_request",
    "open_lane",
    "read_reply",
    "reply_error",
]
