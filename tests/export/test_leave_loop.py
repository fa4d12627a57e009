"""OTLPExporter.leave_loop: the connections of a loop that is not running are let go, never closed and never
finalized, so that dropping that loop (closed without ``shutdown_asyncgens()``) warns of nothing."""

from __future__ import annotations

import asyncio
import gc

import pytest
from tests.processing.helpers import make_spans

from aiotlp import OTLPExporter
from aiotlp.testing import CollectorThread


@pytest.mark.parametrize("protocol", ["http/protobuf", "grpc"])
def test_a_stopped_loops_connections_are_let_go(protocol: str) -> None:
    with CollectorThread() as collector:
        endpoint = collector.grpc_endpoint if protocol == "grpc" else collector.http_endpoint
        exporter = OTLPExporter(endpoint=endpoint, protocol=protocol)
        loop = asyncio.new_event_loop()
        assert loop.run_until_complete(exporter.export_traces(make_spans(3))).accepted == 3
        exporter.leave_loop(loop)  # stopped: let go, untouched
        # the exporter goes on on the next loop
        assert asyncio.run(exporter.export_traces(make_spans(2))).accepted == 2
        loop.close()  # without shutdown_asyncgens(): nothing could close them now
        # dropped without shutdown, with that loop: with filterwarnings=error, an "Unclosed client session" or
        # "unclosed transport" from the collection fails the test (it does without leave_loop)
        del loop, exporter
        gc.collect()
        assert collector.wait_for_spans(5)


def test_a_running_loop_is_not_let_go() -> None:
    async def main(exporter: OTLPExporter) -> None:
        exporter.leave_loop(asyncio.get_running_loop())  # running: ignored, closed at its end as usual
        assert (await exporter.export_traces(make_spans(1))).accepted == 1
        await exporter.shutdown()

    with CollectorThread() as collector:
        asyncio.run(main(OTLPExporter(endpoint=collector.http_endpoint)))
        assert collector.wait_for_spans(1)
