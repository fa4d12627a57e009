"""An atheris (libFuzzer) target for the sans-IO response parsers, run by test_fuzz.py under ``-m slow``:

    .venv/bin/python -m tests.faults.atheris_target -max_total_time=60 -max_len=512

Only :class:`~aiotlp.ResponseError` may escape a decoder; the classifiers never raise. Anything else is a crash
(a non-zero exit, with the input saved by libFuzzer).

Private, on purpose: ``decode_rpc_status_json`` (``aiotlp.encoding._response``) is fuzzed with the public
parsers.
"""

from __future__ import annotations

import contextlib
import sys

import atheris

with atheris.instrument_imports():
    from aiotlp import ResponseError
    from aiotlp.encoding import (
        classify_grpc_status,
        classify_http_response,
        decode_export_response,
        decode_export_response_json,
        decode_rpc_status,
        parse_retry_after,
    )
    from aiotlp.encoding._response import decode_rpc_status_json

DECODERS = (decode_export_response, decode_export_response_json, decode_rpc_status, decode_rpc_status_json)
CONTENT_TYPES = ("application/x-protobuf", "application/json", "text/plain", "")


def one_input(data: bytes) -> None:
    provider = atheris.FuzzedDataProvider(data)
    selector = provider.ConsumeIntInRange(0, 255)
    header = provider.ConsumeUnicodeNoSurrogates(40)
    body = provider.ConsumeBytes(provider.remaining_bytes())
    for decode in DECODERS:
        with contextlib.suppress(ResponseError):
            decode(body)
    delay = parse_retry_after(header, 1_700_000_000.0)
    assert delay is None or delay >= 0
    classify_http_response(
        200 + selector * 2, retry_after=header, body=body, content_type=CONTENT_TYPES[selector % 4], now=1e9
    )
    classify_grpc_status(selector % 20, message=header, details=body)


if __name__ == "__main__":
    atheris.Setup(sys.argv, one_input)
    atheris.Fuzz()
