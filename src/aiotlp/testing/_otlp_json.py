"""OTLP/JSON <-> official protobuf messages, for tests (uses ``google.protobuf``; never on the export path).

OTLP/JSON is the proto3 JSON mapping with three differences (opentelemetry-proto ``docs/specification.md``):
trace and span ids are hex strings, not base64; enums are integers, not names; keys are lowerCamelCase, the
original snake_case field names are not valid. The id fields are exactly ``Span.trace_id``, ``span_id``,
``parent_span_id``, ``Span.Link.trace_id`` / ``span_id``, ``LogRecord.trace_id`` / ``span_id`` and
``Exemplar.trace_id`` / ``span_id``; every other ``bytes`` field (``AnyValue.bytes_value``) stays base64.

:func:`otlp_json_to_message` is strict, as a receiver in tests should be: it rejects snake_case keys, enum
names, ids of the wrong length and unknown fields. :func:`message_to_otlp_json` is its inverse.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Callable
from typing import Any, TypeAlias

from google.protobuf import json_format  # type: ignore[import-untyped]
from google.protobuf.descriptor import Descriptor, FieldDescriptor  # type: ignore[import-untyped]
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import (
    ExportLogsServiceRequest,
    ExportLogsServiceResponse,
)
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import (
    ExportMetricsServiceRequest,
    ExportMetricsServiceResponse,
)
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)

from aiotlp._validate import is_int
from aiotlp.model import Signal

__all__ = [
    "ExportRequest",
    "ExportResponse",
    "message_to_otlp_json",
    "otlp_json_to_message",
    "request_class",
    "response_class",
]

ExportRequest: TypeAlias = ExportTraceServiceRequest | ExportMetricsServiceRequest | ExportLogsServiceRequest
ExportResponse: TypeAlias = ExportTraceServiceResponse | ExportMetricsServiceResponse | ExportLogsServiceResponse

_REQUESTS: dict[Signal, type[ExportRequest]] = {
    Signal.TRACES: ExportTraceServiceRequest,
    Signal.METRICS: ExportMetricsServiceRequest,
    Signal.LOGS: ExportLogsServiceRequest,
}
_RESPONSES: dict[Signal, type[ExportResponse]] = {
    Signal.TRACES: ExportTraceServiceResponse,
    Signal.METRICS: ExportMetricsServiceResponse,
    Signal.LOGS: ExportLogsServiceResponse,
}

# message full name -> {field name: id length in bytes}
_ID_FIELDS: dict[str, dict[str, int]] = {
    "opentelemetry.proto.trace.v1.Span": {"trace_id": 16, "span_id": 8, "parent_span_id": 8},
    "opentelemetry.proto.trace.v1.Span.Link": {"trace_id": 16, "span_id": 8},
    "opentelemetry.proto.logs.v1.LogRecord": {"trace_id": 16, "span_id": 8},
    "opentelemetry.proto.metrics.v1.Exemplar": {"trace_id": 16, "span_id": 8},
}

_Json: TypeAlias = dict[str, Any]
_IdConverter: TypeAlias = Callable[[object, str, int], str]


def request_class(signal: Signal) -> type[ExportRequest]:
    """The official ``Export*ServiceRequest`` class of a signal."""
    return _REQUESTS[signal]


def response_class(signal: Signal) -> type[ExportResponse]:
    """The official ``Export*ServiceResponse`` class of a signal."""
    return _RESPONSES[signal]


def _is_repeated(field: Any) -> bool:
    repeated = getattr(field, "is_repeated", None)  # protobuf >= 6; ``label`` before
    if repeated is None:
        return bool(field.label == FieldDescriptor.LABEL_REPEATED)
    return bool(repeated)


def _hex_to_base64(value: object, where: str, size: int) -> str:
    if not isinstance(value, str):
        raise ValueError(f"OTLP/JSON {where} must be a hex string, got {type(value).__name__}")
    if value == "":
        return ""
    if len(value) != 2 * size:
        raise ValueError(f"OTLP/JSON {where} must be {2 * size} hex digits, got {len(value)} characters")
    try:
        raw = bytes.fromhex(value)
    except ValueError:
        raise ValueError(f"OTLP/JSON {where} is not hex: {value[:64]!r}") from None
    return base64.b64encode(raw).decode("ascii")


def _base64_to_hex(value: object, where: str, size: int) -> str:
    if not isinstance(value, str):
        raise ValueError(f"{where} must be a base64 string, got {type(value).__name__}")
    try:
        return base64.b64decode(value, validate=True).hex()
    except binascii.Error:
        raise ValueError(f"{where} is not base64: {value[:64]!r}") from None


def _walk(obj: _Json, descriptor: Any, convert: _IdConverter, strict: bool, path: str) -> None:
    """Convert the id fields of ``obj`` (a JSON object of message ``descriptor``) in place, recursively."""
    ids = _ID_FIELDS.get(descriptor.full_name, {})
    by_json_name = {field.json_name: field for field in descriptor.fields}
    for key, value in obj.items():
        where = f"{path}.{key}" if path else key
        field = by_json_name.get(key)
        if field is None:
            if strict and key in descriptor.fields_by_name:
                raise ValueError(f"OTLP/JSON keys are lowerCamelCase: {where} should be {key!r} in camelCase")
            continue  # unknown: json_format rejects it
        if value is None:
            continue
        if field.name in ids:
            obj[key] = convert(value, where, ids[field.name])
        elif field.type == FieldDescriptor.TYPE_ENUM and strict:
            items = value if _is_repeated(field) and isinstance(value, list) else [value]
            for item in items:
                if not is_int(item):
                    raise ValueError(f"OTLP/JSON enums are integers: {where} is {item!r}")
        elif field.type == FieldDescriptor.TYPE_MESSAGE:
            children = value if _is_repeated(field) and isinstance(value, list) else [value]
            for index, child in enumerate(children):
                if isinstance(child, dict):
                    child_path = f"{where}[{index}]" if children is value else where
                    _walk(child, field.message_type, convert, strict, child_path)


def otlp_json_to_message(signal: Signal, data: bytes | str | dict[str, Any]) -> ExportRequest:
    """Parse an OTLP/JSON ``Export*ServiceRequest`` of ``signal`` into the official message.

    Raises :class:`ValueError` (naming the offending key) for invalid JSON, snake_case keys, enum names, ids
    that are not hex of the right length (``""`` is an empty id) and unknown fields. ``data`` as a dict is
    not modified.
    """
    if isinstance(data, dict):
        obj: object = json.loads(json.dumps(data))  # a private copy to rewrite the ids in
    else:
        try:
            obj = json.loads(data)
        except (ValueError, RecursionError) as exc:
            raise ValueError(f"invalid OTLP/JSON: {exc}") from None
    if not isinstance(obj, dict):
        raise ValueError(f"invalid OTLP/JSON: expected an object, got {type(obj).__name__}")
    cls = _REQUESTS[signal]
    descriptor: Descriptor = cls.DESCRIPTOR
    try:
        _walk(obj, descriptor, _hex_to_base64, True, "")
        message: ExportRequest = json_format.ParseDict(obj, cls(), ignore_unknown_fields=False)
    except json_format.ParseError as exc:
        raise ValueError(f"invalid OTLP/JSON {signal.value} request: {exc}") from None
    except RecursionError:
        raise ValueError(f"invalid OTLP/JSON {signal.value} request: nested too deeply") from None
    return message


def message_to_otlp_json(message: Any) -> dict[str, Any]:
    """The OTLP/JSON form of an official message (request or response): ids as hex, enums as integers."""
    obj: dict[str, Any] = json_format.MessageToDict(message, use_integers_for_enums=True)
    _walk(obj, message.DESCRIPTOR, _base64_to_hex, False, "")
    return obj
