"""aiotlp's OTLP/JSON encoders against the official generated classes, on random model data.

aiotlp's JSON is decoded by the strict test receiver (:func:`aiotlp.testing.otlp_json_to_message`:
hex ids, integer enums, camelCase keys, then ``json_format.ParseDict``) and compared with the same reference
message as the protobuf conformance test, including presence (``==``) and the deterministic serialization.
Then the JSON text itself is checked for the OTLP/JSON conventions the decoder would also accept otherwise.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator, Sequence
from typing import Any

from hypothesis import HealthCheck, given, settings
from tests.encoding.reference import reference_request
from tests.strategies import log_batches, metric_batches, span_batches

from aiotlp.encoding import encode_logs_json, encode_metrics_json, encode_traces_json
from aiotlp.model import LogRecord, Metric, Signal, Span
from aiotlp.testing import otlp_json_to_message

CONFORMANCE = settings(
    max_examples=300,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)

ID_KEYS = {"traceId": 32, "spanId": 16, "parentSpanId": 16}
INT64_KEYS = {
    "timeUnixNano",
    "startTimeUnixNano",
    "endTimeUnixNano",
    "observedTimeUnixNano",
    "count",
    "zeroCount",
    "asInt",
    "intValue",
}
ENUM_KEYS = {"kind", "code", "severityNumber", "aggregationTemporality"}
HEX = re.compile(r"[0-9a-f]*")


def walk(node: Any, key: str | None = None) -> Iterator[tuple[str | None, Any]]:
    """Every (key, value) pair of a JSON document, depth first; list items carry their list's key."""
    if isinstance(node, dict):
        for k, v in node.items():
            yield k, v
            yield from walk(v, k)
    elif isinstance(node, list):
        for item in node:
            yield key, item
            yield from walk(item, key)


def check_conventions(document: Any) -> None:
    for key, value in walk(document):
        if key in ID_KEYS and isinstance(value, str):
            assert len(value) == ID_KEYS[key], (key, value)
            assert HEX.fullmatch(value), (key, value)
        elif key in INT64_KEYS and not isinstance(value, (dict, list)):
            assert isinstance(value, str), (key, value)
            assert re.fullmatch(r"-?\d+", value), (key, value)
        elif key == "bucketCounts" and not isinstance(value, list):
            assert isinstance(value, str), (key, value)
            assert value.isdigit(), (key, value)
        elif key in ENUM_KEYS and not isinstance(value, dict):
            assert type(value) is int, (key, value)
        elif key in ("arrayValue", "kvlistValue"):
            assert isinstance(value["values"], list), value


def check(signal: Signal, items: Sequence[Any], encode: Callable[[Sequence[Any]], bytes]) -> None:
    data = encode(items)
    assert isinstance(data, bytes)
    document = json.loads(data)
    check_conventions(document)
    parsed = otlp_json_to_message(signal, data)
    expected = reference_request(signal, items)
    assert parsed == expected
    assert parsed.SerializeToString(deterministic=True) == expected.SerializeToString(deterministic=True)


@CONFORMANCE
@given(span_batches())
def test_traces(spans: list[Span]) -> None:
    check(Signal.TRACES, spans, encode_traces_json)


@CONFORMANCE
@given(log_batches())
def test_logs(records: list[LogRecord]) -> None:
    check(Signal.LOGS, records, encode_logs_json)


@CONFORMANCE
@given(metric_batches())
def test_metrics(metrics: list[Metric]) -> None:
    check(Signal.METRICS, metrics, encode_metrics_json)
