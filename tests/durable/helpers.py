"""Shared by the disk-queue tests: numbered spans that check themselves, and a fast-retrying inner exporter."""

from __future__ import annotations

import zlib
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING

from aiotlp import OTLPExporter, RetryPolicy
from aiotlp.model import Resource, Span

if TYPE_CHECKING:  # the kill -9 child imports this module: keep grpc and protobuf out of its start-up
    from aiotlp.testing import FakeCollector

T0 = 1_700_000_000_000_000_000
RESOURCE = Resource({"service.name": "durable-test"})
FAST_RETRY = RetryPolicy(initial_backoff=0.05, max_backoff=0.2, jitter=0.1)


def make_spans(start: int, count: int, *, padding: int = 0) -> list[Span]:
    """Spans named ``s<n>``, each with a ``check`` attribute (a CRC of its name) and optional padding."""
    out = []
    for n in range(start, start + count):
        name = f"s{n}"
        attributes: dict[str, object] = {"check": zlib.crc32(name.encode())}
        if padding:
            attributes["pad"] = "x" * padding
        out.append(
            Span(
                trace_id=(n + 1).to_bytes(16, "big"),
                span_id=(n + 1).to_bytes(8, "big"),
                name=name,
                start_time_unix_nano=T0 + n,
                end_time_unix_nano=T0 + n + 1000,
                attributes=attributes,  # type: ignore[arg-type]
                resource=RESOURCE,
            )
        )
    return out


def received_ids(collector: FakeCollector) -> list[int]:
    """The numbers of every span the collector received (duplicates kept), each checked against its CRC."""
    ids = []
    for span in collector.spans():
        attributes = {kv.key: kv.value for kv in span.attributes}
        assert attributes["check"].int_value == zlib.crc32(span.name.encode()), f"corrupt span {span.name}"
        assert span.span_id == (int(span.name[1:]) + 1).to_bytes(8, "big")
        ids.append(int(span.name[1:]))
    return ids


def has_all(ids: Iterable[int]) -> Callable[[FakeCollector], bool]:
    """A FakeCollector.wait_for predicate: every id in ``ids`` was received."""
    wanted = set(ids)

    def predicate(collector: FakeCollector) -> bool:
        return wanted <= {int(span.name[1:]) for span in collector.spans()}

    return predicate


def inner(endpoint: str, protocol: str = "http/protobuf", **kwargs: object) -> OTLPExporter:
    kwargs.setdefault("timeout", 1.0)
    kwargs.setdefault("retry", FAST_RETRY)
    return OTLPExporter(endpoint=endpoint, protocol=protocol, **kwargs)  # type: ignore[arg-type]
