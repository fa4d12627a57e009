"""Hostile responses: huge bodies and gzip bombs cost bounded memory and end as counted non-retryable errors.

The exporter runs in a fresh process so that its peak RSS (ru_maxrss) measures only this; the hostile
FakeCollector runs here.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
from pathlib import Path

import pytest

from aiotlp.testing import FakeCollector, Reply

ROOT = Path(__file__).resolve().parents[2]
LIMIT_KIB = 16 * 1024


async def probe(collector: FakeCollector, protocol: str, rounds: int = 3) -> dict[str, object]:
    endpoint = collector.grpc_endpoint if protocol == "grpc" else collector.http_endpoint
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "tests.export.rss_probe",
        endpoint,
        protocol,
        str(rounds),
        cwd=ROOT,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    out, err = await asyncio.wait_for(process.communicate(), 120)
    assert process.returncode == 0, err.decode()
    return json.loads(out.decode().strip().splitlines()[-1])  # type: ignore[no-any-return]


@pytest.mark.parametrize(
    ("protocol", "reply"),
    [
        ("http/protobuf", Reply(body_size=100 * 1024 * 1024)),
        ("http/json", Reply(body_size=100 * 1024 * 1024)),
        ("http/protobuf", Reply(gzip_bomb=200 * 1024 * 1024)),
        ("grpc", Reply(body_size=5 * 1024 * 1024)),
    ],
    ids=["http-100MiB", "json-100MiB", "http-gzip-bomb-200MiB", "grpc-5MiB"],
)
async def test_peak_rss_stays_within_16_mib_of_baseline(protocol: str, reply: Reply) -> None:
    async with FakeCollector(default=reply) as collector:
        collector.script(Reply())  # the warm-up export is answered normally
        report = await probe(collector, protocol)
    assert report["warm_ok"] is True
    assert report["errors"] == ["ResponseError"] * 3  # non-retryable: one attempt each, counted as failed
    assert len(collector.received) == 1 + 3
    assert report["growth_kib"] <= LIMIT_KIB, report  # type: ignore[operator]
