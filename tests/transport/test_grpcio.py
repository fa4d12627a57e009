"""The grpc.aio transport tells its own receive limit (the collector's response is too large) from the
collector's receive limit (the request is too large, refused with RESOURCE_EXHAUSTED by the server).

White-box, on purpose: ``_is_own_receive_limit``, the test on grpc's status details that tells the two apart,
is checked on each wording grpc core uses.
"""

from __future__ import annotations

import pytest
from tests import samples

from aiotlp import OTLPExporter, RejectedError, ResponseError, RetryPolicy
from aiotlp.testing import FakeCollector, Reply
from aiotlp.transport._grpc import _is_own_receive_limit

NO_RETRY = RetryPolicy(max_attempts=1)


@pytest.mark.parametrize(
    ("details", "own"),
    [
        ("Stream removed (CLIENT: Received message larger than max (1000 vs. 100))", True),
        ("Received message larger than max (1000 vs. 100)", True),
        ("grpc: received message larger than max (4194305 vs. 4194304)", False),  # grpc-go (the Collector)
        ("SERVER: Received message larger than max (100 vs. 10)", False),  # a grpc core server
        ("grpc: message after decompression larger than max (5000000 vs. 4194304)", False),
    ],
)
def test_whose_receive_limit(details: str, own: bool) -> None:
    assert _is_own_receive_limit(details) is own


async def test_a_request_over_the_collectors_limit_is_its_refusal_not_a_large_response() -> None:
    async with (
        FakeCollector(max_request_size=2000) as collector,
        OTLPExporter(
            endpoint=collector.grpc_endpoint, protocol="grpc", grpc_implementation="grpcio", retry=NO_RETRY
        ) as exporter,
    ):
        result = await exporter.export_traces(samples.spans(40))
    assert result.failed == 40
    assert isinstance(result.error, RejectedError), result.error
    assert not isinstance(result.error, ResponseError)
    assert "RESOURCE_EXHAUSTED" in str(result.error) or "larger than max" in str(result.error)


async def test_a_response_over_max_response_bytes_is_a_response_error() -> None:
    async with FakeCollector() as collector:
        collector.script(Reply(body_size=5000))
        async with OTLPExporter(
            endpoint=collector.grpc_endpoint,
            protocol="grpc",
            grpc_implementation="grpcio",
            retry=NO_RETRY,
            max_response_bytes=1000,
        ) as exporter:
            result = await exporter.export_traces(samples.spans(1))
    assert isinstance(result.error, ResponseError), result.error
    assert "the response" in str(result.error)
