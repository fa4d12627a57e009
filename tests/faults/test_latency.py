"""Latency: an asyncio TCP proxy holds every chunk 50 ms in each direction between the exporter and the
collector (no root needed). Requests in flight never exceed the exporter's ConcurrencyLimit (and reach it), the
application's emit stays under 1 ms at p99, and the collector received exactly what was counted as exported.
"""

from __future__ import annotations

import pytest
from tests.faults._emit import under_pressure
from tests.faults._support import TcpProxy
from tests.faults.summary import Figure

from aiotlp.testing import FakeCollector


@pytest.mark.parametrize("protocol", ["http/protobuf", "grpc"])
async def test_latency_never_exceeds_the_concurrency_limit_nor_slows_the_emit(
    collector: FakeCollector, protocol: str, figure: Figure
) -> None:
    port = collector.grpc_port if protocol == "grpc" else collector.http_port
    async with TcpProxy("127.0.0.1", port, delay=0.05) as proxy:
        await under_pressure(f"http://127.0.0.1:{proxy.port}", protocol, figure)
    exported = int(figure.measured.rpartition("exported ")[2])
    assert len(collector.spans()) == exported  # what was counted as exported is exactly what arrived
    assert proxy.connections >= 1
