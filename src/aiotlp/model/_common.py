"""Values shared by every signal: attribute values, Resource and InstrumentationScope.

Everything is validated once, in the public constructor, with errors that name the field. After that the
encoders trust the objects and do no further checks.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Union

from .._validate import is_int, is_number

__all__ = [
    "MAX_NESTING_DEPTH",
    "AnyValue",
    "Attributes",
    "InstrumentationScope",
    "Resource",
    "validate_attributes",
    "validate_value",
]

MAX_NESTING_DEPTH = 24
"""How deep lists and mappings may nest inside an attribute value or log body (24 containers around the leaf).

Chosen so that no collector's decoder refuses a request for its depth. A decoder limits the nesting of the
whole request: protobuf runtimes at 100 messages (upb and the pure-Python runtime, prost in rotel and Rust
collectors), rotel's OTLP/JSON decoder (serde_json) at 128 JSON levels. The deepest place for an AnyValue is an
exemplar's filtered attribute: request > ResourceMetrics > ScopeMetrics > Metric > Gauge > NumberDataPoint >
Exemplar > KeyValue > AnyValue is 9 messages (15 JSON levels); each mapping adds 3 messages (AnyValue >
KeyValueList > KeyValue) or 4 JSON levels, each list 2 messages (AnyValue > ArrayValue). Measured (upb, pure
Python, rotel 0.0.1a15): 30 mappings pass in protobuf on that path, 28 in rotel's OTLP/JSON (31 and 29 under a
span attribute). 24 keeps a margin of 4 mappings (12 messages, 16 JSON levels) on the tightest of them. The
encoders enforce it too, for values that bypass the model (the SDK adapters): see aiotlp.encoding._protobuf.
"""

INT64_MIN = -(2**63)
INT64_MAX = 2**63 - 1
UINT64_MAX = 2**64 - 1
UINT32_MAX = 2**32 - 1

AnyValue = Union[str, bool, int, float, bytes, Sequence["AnyValue"], Mapping[str, "AnyValue"], None]
"""An OTLP ``AnyValue``: a scalar, bytes, a (possibly mixed) list, a nested mapping, or ``None`` (empty)."""

Attributes = Mapping[str, AnyValue]


def validate_value(value: object, where: str, depth: int = 0) -> AnyValue:
    """Check that ``value`` is an OTLP AnyValue; return it with lists made tuples and mappings made dicts.

    Integers of any size are accepted: the encoders apply the rule for those outside int64 (see
    :mod:`aiotlp.encoding`), so that the item is still delivered.

    ``where`` names the field for the error message, e.g. ``"Span.attributes['http.method']"``.
    """
    if value is None or isinstance(value, (str, bool)):
        return value
    if isinstance(value, int):
        # Any int: one outside int64 (a uint64 id from another system) cannot be sent as an int_value; the
        # encoders leave out the attribute that holds it (counted) or replace the log body (aiotlp.encoding).
        return int(value)
    if isinstance(value, float):
        return value
    if isinstance(value, (bytes, bytearray, memoryview)):
        return bytes(value)
    if depth >= MAX_NESTING_DEPTH:
        raise ValueError(
            f"{where}: lists and mappings nested deeper than {MAX_NESTING_DEPTH} levels "
            "(MAX_NESTING_DEPTH: collectors refuse a request nested deeper)"
        )
    if isinstance(value, Mapping):
        return _validate_mapping(value, where, depth + 1)
    if isinstance(value, (list, tuple)):
        return tuple(validate_value(v, f"{where}[{i}]", depth + 1) for i, v in enumerate(value))
    raise TypeError(
        f"{where}: {type(value).__name__} is not an attribute value "
        "(use str, bool, int, float, bytes, a list of them, a mapping, or None)"
    )


def _validate_mapping(value: Mapping[Any, object], where: str, depth: int) -> dict[str, AnyValue]:
    out: dict[str, AnyValue] = {}
    for key, item in value.items():
        if not isinstance(key, str):
            raise TypeError(f"{where}: key {key!r} is not a str")
        out[key] = validate_value(item, f"{where}[{key!r}]", depth)
    return out


def validate_attributes(attributes: Mapping[str, object] | None, where: str) -> dict[str, AnyValue]:
    """Validate an attribute mapping (``None`` means empty) and return a private dict copy."""
    if attributes is None:
        return {}
    if not isinstance(attributes, Mapping):
        raise TypeError(f"{where}: expected a mapping of str to attribute values, got {type(attributes).__name__}")
    return _validate_mapping(attributes, where, 0)


def check_uint(value: int, where: str, maximum: int = UINT32_MAX) -> int:
    if not is_int(value):
        raise TypeError(f"{where}: expected an int, got {type(value).__name__}")
    if not 0 <= value <= maximum:
        raise ValueError(f"{where}: {value} is outside 0..{maximum}")
    return value


def check_time(value: int, where: str) -> int:
    """Times are nanoseconds since the Unix epoch, as unsigned 64-bit integers."""
    return check_uint(value, where, UINT64_MAX)


def check_str(value: str, where: str) -> str:
    if not isinstance(value, str):
        raise TypeError(f"{where}: expected a str, got {type(value).__name__}")
    return value


def check_float(value: float, where: str, *, finite: bool = False) -> float:
    if not is_number(value):
        raise TypeError(f"{where}: expected a float, got {type(value).__name__}")
    value = float(value)
    if finite and not math.isfinite(value):
        raise ValueError(f"{where}: must be finite, got {value}")
    return value


def check_id(value: bytes | int | None, size: int, where: str, *, optional: bool = False) -> bytes:
    """A trace id (16 bytes) or span id (8 bytes), as bytes or an int. Empty or all zeros means absent (optional)."""
    if value is None or value == b"":
        if optional:
            return b""
        raise ValueError(f"{where}: is required")
    if is_int(value):
        if not 0 <= value < 2 ** (8 * size):
            raise ValueError(f"{where}: {value} does not fit in {size} bytes")
        if value == 0 and not optional:
            raise ValueError(f"{where}: must not be all zeros")
        return value.to_bytes(size, "big") if value else b""
    if isinstance(value, (bytes, bytearray, memoryview)):
        value = bytes(value)
        if len(value) != size:
            raise ValueError(f"{where}: must be {size} bytes, got {len(value)}")
        if not any(value):  # all zeros is the W3C "invalid" id
            if optional:
                return b""
            raise ValueError(f"{where}: must not be all zeros")
        return value
    raise TypeError(f"{where}: expected bytes or int, got {type(value).__name__}")


@dataclass(frozen=True, slots=True, eq=True)
class Resource:
    """The entity producing telemetry (``service.name`` and friends)."""

    attributes: Attributes = field(default_factory=dict)
    dropped_attributes_count: int = 0
    schema_url: str = ""

    def __post_init__(self) -> None:
        object.__setattr__(self, "attributes", validate_attributes(self.attributes, "Resource.attributes"))
        check_uint(self.dropped_attributes_count, "Resource.dropped_attributes_count")
        check_str(self.schema_url, "Resource.schema_url")


@dataclass(frozen=True, slots=True, eq=True)
class InstrumentationScope:
    """The library that produced the telemetry."""

    name: str = ""
    version: str = ""
    attributes: Attributes = field(default_factory=dict)
    dropped_attributes_count: int = 0
    schema_url: str = ""

    def __post_init__(self) -> None:
        check_str(self.name, "InstrumentationScope.name")
        check_str(self.version, "InstrumentationScope.version")
        object.__setattr__(self, "attributes", validate_attributes(self.attributes, "InstrumentationScope.attributes"))
        check_uint(self.dropped_attributes_count, "InstrumentationScope.dropped_attributes_count")
        check_str(self.schema_url, "InstrumentationScope.schema_url")


EMPTY_RESOURCE = Resource()
EMPTY_SCOPE = InstrumentationScope()
