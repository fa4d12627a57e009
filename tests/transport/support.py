"""One call through a transport as the exporter makes it: compress (when asked), send, read the reply."""

from __future__ import annotations

from aiotlp.encoding import PartialSuccess
from aiotlp.export import read_reply
from aiotlp.transport import IDENTITY, Transport, compress


async def call(transport: Transport, body: bytes, *, timeout: float, compress_body: bool = False) -> PartialSuccess:
    """``body`` sent through ``transport`` (compressed with its ``compression`` when ``compress_body``), and the
    reply read by the export step's reader: the partial success, or the classified error raised."""
    encoding = IDENTITY
    if compress_body:
        assert transport.compression != "none"
        body, encoding = compress(body, transport.compression), transport.compression
    reply = await transport.send(body, content_encoding=encoding, timeout=timeout)
    return read_reply(reply, transport.content_type)
