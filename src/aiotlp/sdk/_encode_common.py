"""What the SDK encoders of the three signals share: packers and tags, grouping by resource and scope, the cached
encodings of resources and scopes, the request around a batch (protobuf and JSON). See :mod:`._encode`.
"""

from __future__ import annotations

import logging
import struct
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, Final, TypeVar

from opentelemetry.attributes import BoundedAttributes
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import Event
from opentelemetry.sdk.util import BoundedList
from opentelemetry.sdk.util.instrumentation import InstrumentationScope

from aiotlp.encoding import (
    VARINT,
    VARINT_TABLE_SIZE,
    varint,
)
from aiotlp.encoding import accelerate as _accelerate
from aiotlp.encoding import json_attributes as _attributes
from aiotlp.encoding import json_document as _finish
from aiotlp.encoding import lp_str as _lp_str
from aiotlp.encoding import patch_length as _patch
from aiotlp.encoding import speedups as _speedups
from aiotlp.encoding import write_attributes as _write_attributes

if TYPE_CHECKING:
    from opentelemetry.sdk.metrics.export import Metric  # not at run time: a span exporter imports no metrics SDK

__all__ = ["MetricItem", "logger"]

logger = logging.getLogger("aiotlp.sdk")

_V: Final = VARINT
_VN: Final = VARINT_TABLE_SIZE
_M64: Final = (1 << 64) - 1

_pack_q: Final = struct.Struct("<Q").pack  # fixed64
_pack_sq: Final = struct.Struct("<q").pack  # sfixed64
_pack_d: Final = struct.Struct("<d").pack  # double
_pack_i: Final = struct.Struct("<I").pack  # fixed32
_pack_two_fixed64: Final = struct.Struct("<BQBQ").pack  # tag, fixed64, tag, fixed64 (one-byte tags)
# Ids are big-endian bytes on the wire; a 128-bit trace id is packed as two big-endian 64-bit halves.
# (tag, len 16, trace id high, low, tag, len 8, span id) and the same followed by the parent span id.
_pack_ids: Final = struct.Struct(">2sQQ2sQ").pack
_pack_ids_parent: Final = struct.Struct(">2sQQ2sQ2sQ").pack
_pack_id8: Final = struct.Struct(">Q").pack

_BA: Final = BoundedAttributes
_BL: Final = BoundedList
_EVENT: Final = Event

# Span.kind (6): the SDK's SpanKind value (INTERNAL=0 .. CONSUMER=4) + 1.
_KIND: Final = tuple(b"\x30" + bytes((value + 1,)) for value in range(5))
# Span.status (15) without a message, indexed by StatusCode value (UNSET, OK, ERROR); Status 3 code.
_STATUS: Final = (b"\x7a\x00", b"\x7a\x02\x18\x01", b"\x7a\x02\x18\x02")
# Span.flags (16, fixed32) / Link.flags (6, fixed32): HAS_IS_REMOTE, and IS_REMOTE for a remote context.
_SPAN_FLAGS_LOCAL: Final = b"\x85\x01" + _pack_i(0x100)
_SPAN_FLAGS_REMOTE: Final = b"\x85\x01" + _pack_i(0x300)
_LINK_FLAGS_LOCAL: Final = b"\x35" + _pack_i(0x100)
_LINK_FLAGS_REMOTE: Final = b"\x35" + _pack_i(0x300)

_I = TypeVar("_I")
_Groups = list[tuple[Resource, list[tuple[InstrumentationScope | None, list[_I]]]]]

MetricItem = tuple[Resource, InstrumentationScope, "Metric"]
"""One metric with the resource and scope it was reported under: the unit a metrics batch is split by."""


# ------------------------------------------------------------------------------------------------------------
# Helpers shared by the three signals


def _plain(attributes: Any) -> Any:
    """The mapping to iterate: a ``BoundedAttributes``' inner dict (C-speed ``items()``), else ``attributes``."""
    return attributes._dict if type(attributes) is _BA else attributes


def _dropped(attributes: Any) -> int:
    return attributes.dropped if type(attributes) is _BA else 0


def _write_counted_attributes(buf: bytearray, field_tag: bytes, dropped_tag: bytes, attributes: Any) -> None:
    """An item's attributes (a ``BoundedAttributes``: its inner dict) and its ``dropped_attributes_count``: the
    SDK's count plus the attributes left out (nested too deep, or holding an int outside int64; written when
    not 0)."""
    if type(attributes) is _BA:
        dropped = _write_attributes(buf, field_tag, attributes._dict) if attributes._dict else 0
        dropped += attributes.dropped
    elif attributes:
        dropped = _write_attributes(buf, field_tag, attributes)
    else:
        return
    if dropped:
        buf += dropped_tag
        buf += varint(dropped)


def _put_attributes(out: dict[str, Any], attributes: Any) -> None:
    """The JSON twin of :func:`_write_counted_attributes`: ``attributes`` and ``droppedAttributesCount``."""
    plain = _plain(attributes)
    dropped = _dropped(attributes)
    if plain:
        listed = _attributes(plain)
        if listed:
            out["attributes"] = listed
        dropped += len(plain) - len(listed)  # left out: nested too deep, or an int outside int64
    if dropped:
        out["droppedAttributesCount"] = dropped


def _trace_state(trace_state: Mapping[str, str]) -> str:
    """A ``TraceState`` as the official encoder writes it: ``k=v,k2=v2``."""
    return ",".join([f"{key}={value}" for key, value in trace_state.items()])


_NOTHING: Final = object()


def _group(items: Sequence[_I], key: Callable[[_I], tuple[Any, Any]]) -> _Groups[_I]:
    """Group by resource, then scope, in first-seen order, with the official encoder's equality semantics.

    Items are grouped by object identity first (cheap: one process has one resource per provider, one scope
    object per tracer). Only when two distinct resource (or scope) objects compare equal are the groups built
    again by equality, as the official encoder's dictionaries do.
    """
    keys = list(map(key, items))
    if keys and keys.count(keys[0]) == len(keys):
        # The common batch: one resource and one scope (a C-speed check: tuple comparison tries identity first).
        resource, scope = keys[0]
        return [(resource, [(scope, items if type(items) is list else list(items))])]
    buckets: dict[tuple[int, int], list[_I]] = {}
    order: list[tuple[Any, Any, list[_I]]] = []
    last_resource: object = _NOTHING
    last_scope: object = _NOTHING
    last: list[_I] = []
    for item, (resource, scope) in zip(items, keys, strict=True):
        if resource is last_resource and scope is last_scope:
            last.append(item)
            continue
        ids = (id(resource), id(scope))
        bucket = buckets.get(ids)
        if bucket is None:
            bucket = buckets[ids] = []
            order.append((resource, scope, bucket))
        last_resource, last_scope, last = resource, scope, bucket
        bucket.append(item)
    if len(order) > 1 and _has_equal_twins(order):
        return _group_by_equality(items, key)
    grouped: dict[int, tuple[Resource, list[tuple[InstrumentationScope | None, list[_I]]]]] = {}
    for resource, scope, bucket in order:
        entry = grouped.get(id(resource))
        if entry is None:
            entry = grouped[id(resource)] = (resource, [])
        entry[1].append((scope, bucket))
    return list(grouped.values())


def _has_equal_twins(order: list[tuple[Any, Any, list[_I]]]) -> bool:
    resources = {id(resource): resource for resource, _, _ in order}
    scopes = {id(scope): scope for _, scope, _ in order}
    if len(scopes) > 1 and len(set(scopes.values())) < len(scopes):
        return True
    return len(resources) > 1 and len(set(resources.values())) < len(resources)


def _group_by_equality(items: Sequence[_I], key: Callable[[_I], tuple[Any, Any]]) -> _Groups[_I]:
    grouped: dict[Any, dict[Any, list[_I]]] = {}
    for item in items:
        resource, scope = key(item)
        grouped.setdefault(resource, {}).setdefault(scope, []).append(item)
    return [(resource, list(scopes.items())) for resource, scopes in grouped.items()]


_CACHE_MAX: Final = 256
_RESOURCE_PB: dict[int, tuple[object, bytes]] = {}
_SCOPE_PB: dict[int, tuple[object, bytes]] = {}
_RESOURCE_JSON: dict[int, tuple[object, dict[str, Any]]] = {}
_SCOPE_JSON: dict[int, tuple[object, dict[str, Any]]] = {}
# Each cache keeps the object it describes, so its id() cannot be reused while the entry exists. The SDK's
# resources and scopes are immutable. Bounded by clearing when full; under threads the worst case is a redo.


def _cached(cache: dict[int, tuple[object, _I]], obj: object, make: Callable[[Any], _I]) -> _I:
    hit = cache.get(id(obj))
    if hit is not None and hit[0] is obj:
        return hit[1]
    value = make(obj)
    if len(cache) >= _CACHE_MAX:
        cache.clear()
    cache[id(obj)] = (obj, value)
    return value


def _resource_pb(resource: Resource) -> bytes:
    """``Resource*.resource`` (field 1), always present: the resource's attributes."""
    buf = bytearray(b"\x0a\x00")
    # Resource 1 attributes, 2 dropped_attributes_count (only for values left out)
    _write_counted_attributes(buf, b"\x0a", b"\x10", _plain(resource.attributes))
    _patch(buf, 2)
    return bytes(buf)


def _scope_pb(scope: InstrumentationScope | None) -> bytes:
    """``Scope*.scope`` (field 1), always present (empty for no scope): name, version, attributes."""
    buf = bytearray(b"\x0a\x00")
    if scope is not None:
        if scope.name:
            buf += b"\x0a"  # InstrumentationScope 1 name
            buf += _lp_str(scope.name)
        if scope.version:
            buf += b"\x12"  # InstrumentationScope 2 version
            buf += _lp_str(scope.version)
        # InstrumentationScope 3 attributes, 4 dropped_attributes_count (only for values left out)
        _write_counted_attributes(buf, b"\x1a", b"\x20", _plain(scope.attributes))
    _patch(buf, 2)
    return bytes(buf)


def _resource_json(resource: Resource) -> dict[str, Any]:
    out: dict[str, Any] = {}
    _put_attributes(out, _plain(resource.attributes))
    return out


def _scope_json(scope: InstrumentationScope | None) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if scope is not None:
        if scope.name:
            out["name"] = scope.name
        if scope.version:
            out["version"] = scope.version
        _put_attributes(out, _plain(scope.attributes))
    return out


def _write_schema_url(buf: bytearray, schema_url: str | None) -> None:
    if schema_url:
        buf += b"\x1a"  # Resource*/Scope* 3 schema_url
        buf += _lp_str(schema_url)


def _write_request(groups: _Groups[_I], write_items: Callable[[bytearray, list[_I]], None]) -> bytes:
    """The ``Export*ServiceRequest`` around grouped items; ``write_items(buf, items)`` writes one scope's.

    Each ``Scope*`` body is written into its own buffer and the request is joined once at the end, with the
    lengths known: the items (almost all of the bytes) are copied once, instead of being moved by each length
    patch of the two enclosing messages and copied again into the result.
    """
    parts: list[bytes | bytearray] = []
    for resource, scopes in groups:
        resource_parts: list[bytes | bytearray] = [_cached(_RESOURCE_PB, resource, _resource_pb)]
        for scope, items in scopes:
            body = bytearray(_cached(_SCOPE_PB, scope, _scope_pb))
            write_items(body, items)
            if scope is not None:
                _write_schema_url(body, scope.schema_url)
            resource_parts += (b"\x12", varint(len(body)), body)  # Resource* 2 scope_{spans,logs,metrics}
        if resource.schema_url:
            resource_parts += (b"\x1a", _lp_str(resource.schema_url))  # Resource* 3 schema_url
        size = sum(map(len, resource_parts))
        parts += (b"\x0a", varint(size), *resource_parts)  # Export*ServiceRequest 1 resource_{spans,logs,metrics}
    return b"".join(parts)


def _json_request(groups: _Groups[_I], keys: tuple[str, str, str], convert: Callable[[_I], dict[str, Any]]) -> bytes:
    if not groups:
        return b"{}"
    resource_key, scope_key, items_key = keys
    resources: list[dict[str, Any]] = []
    for resource, scopes in groups:
        scope_list: list[dict[str, Any]] = []
        for scope, items in scopes:
            scope_out: dict[str, Any] = {
                "scope": _cached(_SCOPE_JSON, scope, _scope_json),
                items_key: [convert(item) for item in items],
            }
            if scope is not None and scope.schema_url:
                scope_out["schemaUrl"] = scope.schema_url
            scope_list.append(scope_out)
        resource_out: dict[str, Any] = {
            "resource": _cached(_RESOURCE_JSON, resource, _resource_json),
            scope_key: scope_list,
        }
        if resource.schema_url:
            resource_out["schemaUrl"] = resource.schema_url
        resources.append(resource_out)
    return _finish({resource_key: resources})


# The compiled writers, when the accelerator is chosen: bound in this module too (see aiotlp.encoding._compat).
if _speedups is not None:
    _accelerate(globals(), _write_attributes=_speedups.write_attributes)
