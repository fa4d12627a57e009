"""Encoding at the source: each span (log record) encoded as it ends, framed into requests later
(:class:`SourceEncoder`). See :mod:`._encode` and :mod:`._processors`.
"""

from __future__ import annotations

import itertools
import operator
from collections.abc import Callable, Sequence
from typing import Any, Final

from opentelemetry.sdk.resources import Resource

from aiotlp.encoding import accelerate as _accelerate
from aiotlp.encoding import lp_str as _lp_str
from aiotlp.encoding import speedups as _speedups
from aiotlp.encoding import (
    varint,
)

from . import _encode_logs as _logs_module
from . import _encode_spans as _spans_module
from ._encode_common import (
    _NOTHING,
    _resource_pb,
    _scope_pb,
)
from ._encode_logs import (
    _log_field,
)
from ._encode_spans import (
    _DIRECT,
    _reads_directly,
    _snapshot,
    _span_field,
)

__all__ = ["MAX_SOURCE_GROUPS", "SourceEncoder", "SourceItem"]

# ------------------------------------------------------------------------------------------------------------
# Encoding at the source: each span (log record) encoded as it ends, framed into requests later

SourceItem = tuple[int, bytes]
"""A span or log record encoded where it ended: ``(group key, its Scope* field bytes)`` (see :class:`SourceEncoder`)."""

# A group: (resource index, resource, scope, the resource's field, the scope's field, the scope's schema_url
# field, the resource's schema_url field); the index is the same for equal resources.
_Group = tuple[int, Resource, Any, bytes, bytes, bytes, bytes]

MAX_SOURCE_GROUPS: Final = 1024
"""Distinct (resource, scope) pairs a :class:`SourceEncoder` keys; items of further pairs are queued as objects."""

_MAX_IDENTITIES: Final = 4 * MAX_SOURCE_GROUPS  # (resource, scope) objects a SourceEncoder remembers by identity


def _schema_field(schema_url: str | None) -> bytes:
    return b"\x1a" + _lp_str(schema_url) if schema_url else b""  # Resource*/Scope* 3 schema_url


def _span_one(span: Any) -> tuple[Any, Any, bytes]:
    """(resource, scope, the span's ``ScopeSpans.spans`` field)."""
    direct = _DIRECT.get(type(span))
    if direct is None:
        direct = _reads_directly(type(span))
    if not direct:
        span = _snapshot(span)
    return span._resource, span._instrumentation_scope, _span_field(span)


def _log_one(record: Any) -> tuple[Any, Any, bytes]:
    """(resource, scope, the record's ``ScopeLogs.log_records`` field: :func:`_log_field`, the compiled
    ``sdk_log_field`` or the batch writer's for one record)."""
    return record.resource, record.instrumentation_scope, _log_field(record)


def _span_item(
    types: tuple[Any, ...],
    direct: dict[type, bool],
    memo: tuple[object, object, int],
    ids: dict[tuple[int, int], tuple[object, object, int]],
    span: Any,
) -> Any:
    """``on_end``'s hot path, in one call (its compiled twin: ``_speedups.sdk_span_item``): ``None`` when the span
    is not sampled; its :data:`SourceItem` ``(key, field)`` when its class is read directly (``direct``, that is
    ``_DIRECT``), its (resource, scope) are, by identity, those of ``memo`` (a :class:`SourceEncoder`'s last pair:
    resource, scope, key) or of ``ids[(id(resource), id(scope))]`` (its pairs seen), the key is not negative, and
    it encodes; otherwise the span itself, for the caller's slow path (:meth:`SourceEncoder.item`, which reads it
    again). Never raises (``types``: the compiled writer's)."""
    try:
        if not span._context[3] & 1:  # SpanContext is a tuple whose item 3 is trace_flags
            return None
        if direct.get(type(span)) is True:
            resource = span._resource
            scope = span._instrumentation_scope
            if memo[0] is not resource or memo[1] is not scope:  # not the last pair: the pairs seen
                memo = ids.get((id(resource), id(scope)), _NO_MEMO)
                if memo[0] is not resource or memo[1] is not scope:
                    return span
            key = memo[2]
            if key >= 0:
                return (key, _span_field(span))
    except Exception:  # the slow path decides (a span that cannot be encoded is queued as the object)
        pass
    return span


def _log_item(
    types: tuple[Any, ...],
    direct: object,
    memo: tuple[object, object, int],
    ids: dict[tuple[int, int], tuple[object, object, int]],
    record: Any,
) -> Any:
    """``on_emit``'s hot path, in one call (its compiled twin: ``_speedups.sdk_log_item``): the record's
    :data:`SourceItem` ``(key, field)`` when its (resource, instrumentation scope) are, by identity, those of
    ``memo`` or of ``ids[(id(resource), id(scope))]`` (as :func:`_span_item`), the key is not negative, and it
    encodes; otherwise the record itself (no resource, a pair not seen yet, a record that cannot be encoded), for
    the caller's other path. Never raises (``types``: the compiled writer's; ``direct``: unused, the signature is
    :func:`_span_item`'s)."""
    try:
        resource = record.resource
        if resource is not None:
            scope = record.instrumentation_scope
            if memo[0] is not resource or memo[1] is not scope:
                memo = ids.get((id(resource), id(scope)), _NO_MEMO)
            if memo[0] is resource and memo[1] is scope and memo[2] >= 0:
                return (memo[2], _log_field(record))
    except Exception:  # the other path decides (a record that cannot be encoded is queued as the object)
        pass
    return record


_NO_MEMO: Final = (_NOTHING, _NOTHING, -1)


_TUPLE_ONLY: Final = {tuple}
_first: Final = operator.itemgetter(0)
_second: Final = operator.itemgetter(1)


def _frame_one(items: Sequence[Any], groups: dict[int, _Group]) -> bytes | None:
    """:meth:`SourceEncoder.frame`'s common batch: the request of ``items`` when every one is a
    :data:`SourceItem` tuple and all have one key that ``groups`` holds; else ``None`` (the general path frames
    them, with the same bytes). Its compiled twin (``_speedups.frame_source``) makes one pass that checks and
    sums, one allocation and one copy; it also leaves to the general path a batch whose parts are not exactly
    ``bytes`` or whose keys are not exactly ``int`` (which :meth:`SourceEncoder.item` never makes)."""
    if set(map(type, items)) != _TUPLE_ONLY:
        return None
    keys = set(map(_first, items))
    if len(keys) != 1:
        return None
    group = groups.get(keys.pop())
    if group is None:
        return None  # the general path raises for the unknown key
    parts = list(map(_second, items))
    # Export* 1 resource_{spans,logs}: the resource, 2 scope_{spans,logs} (the scope, the items, the scope's
    # schema_url), the resource's schema_url
    size = len(group[4]) + sum(map(len, parts)) + len(group[5])
    head = varint(size)
    body = len(group[3]) + 1 + len(head) + size + len(group[6])
    return b"".join((b"\x0a", varint(body), group[3], b"\x12", head, group[4], *parts, group[5], group[6]))


class SourceEncoder:
    """Encodes SDK spans or log records one at a time, as they end, and frames batches of them into requests.

    An item becomes a :data:`SourceItem`: a small group key (its resource and scope) and the bytes of its
    ``ScopeSpans.spans`` / ``ScopeLogs.log_records`` field (tag, length, message), written by the writer of the
    batch encoder (:func:`_write_spans`, compiled or pure; :func:`_write_log_records`). The tuple of an int and
    bytes holds no reference to the span, which is freed by the thread that ended it, and the garbage
    collector stops tracking it. :meth:`frame` puts an ``Export*ServiceRequest`` around any subset of such
    items (a batch, or a part of a batch split by size) without encoding them again: the bytes are those of
    :func:`encode_spans` / :func:`encode_log_records` for the same items, in the same order.

    Groups are by *equality* of (resource, scope), as the batch encoders group: one key per distinct pair,
    kept for the encoder's life (SDK resources and scopes are immutable), the last pair seen remembered by
    identity (one check per item). Past ``max_groups`` pairs, or when an item cannot be encoded, :meth:`item`
    returns the object itself; :meth:`frame` accepts such objects mixed with encoded items and encodes them
    then (one that cannot be raises there, and the exporter drops it as ``invalid``, counted). Any thread: keys
    are taken without a lock (a lost race registers a spare group, never a wrong one), so a forked child can
    go on using it.
    """

    def __init__(self, kind: str, *, max_groups: int = MAX_SOURCE_GROUPS) -> None:
        if kind == "spans":
            self._one: Callable[[Any], tuple[Any, Any, bytes]] = _span_one
        elif kind == "logs":
            self._one = _log_one
        else:
            raise ValueError(f"kind must be 'spans' or 'logs', got {kind!r}")
        self._logs = kind == "logs"  # item()'s log hot path
        self._max_groups = max_groups
        self._keys: dict[tuple[Any, Any], int] = {}  # (resource, scope), by equality -> key
        self._resources: dict[Any, int] = {}  # resource, by equality -> resource index
        self._groups: dict[int, _Group] = {}
        self._next = itertools.count()
        self._memo: tuple[object, object, int] = (_NOTHING, _NOTHING, -1)
        # (id(resource), id(scope)) -> (resource, scope, key): the pairs seen, by identity (the tuple keeps both
        # alive, so their ids are not reused); an SDK Resource hashes its attributes as JSON (~10 us), which a
        # span of another scope than the last one's would otherwise pay for
        self._ids: dict[tuple[int, int], tuple[object, object, int]] = {}

    def key(self, resource: Any, scope: Any) -> int:
        """The key of (resource, scope): registered on first sight; -1 past ``max_groups`` pairs."""
        memo = self._memo  # one tuple, replaced whole: other threads see an old or a new one, never a mix
        if memo[0] is resource and memo[1] is scope:
            return memo[2]
        ids = (id(resource), id(scope))
        known = self._ids.get(ids)
        if known is not None and known[0] is resource and known[1] is scope:
            self._memo = known
            return known[2]
        pair = (resource, scope)
        key = self._keys.get(pair)
        if key is None:
            if len(self._groups) >= self._max_groups:
                key = -1  # and so it stays: groups are never removed
            else:
                candidate = next(self._next)
                index = self._resources.setdefault(resource, candidate)
                self._groups[candidate] = self._group(index, resource, scope)
                key = self._keys.setdefault(pair, candidate)  # another thread may have won: its key
        memo = (resource, scope, key)
        if len(self._ids) < _MAX_IDENTITIES:  # past it (new equal objects made over and over): by equality
            self._ids[ids] = memo
        self._memo = memo
        return key

    @staticmethod
    def _group(index: int, resource: Any, scope: Any) -> _Group:
        scope_schema = _schema_field(scope.schema_url) if scope is not None else b""
        return (
            index,
            resource,
            scope,
            _resource_pb(resource),
            _scope_pb(scope),
            scope_schema,
            _schema_field(resource.schema_url),
        )

    def item(self, item: Any) -> Any:
        """``item`` encoded (a :data:`SourceItem`), or ``item`` itself when it cannot be (encoded at export).

        A log record of the last (resource, scope) seen (``on_emit``'s hot path) costs one identity check and the
        writer's call."""
        try:
            if self._logs:
                memo = self._memo
                if memo[0] is item.resource and memo[1] is item.instrumentation_scope and memo[2] >= 0:
                    return (memo[2], _log_field(item))
            resource, scope, data = self._one(item)
            key = self.key(resource, scope)
        except Exception:  # framed from the object at export: dropped there as invalid, and counted
            return item
        return item if key < 0 else (key, data)

    def span_item(self, span: Any) -> Any:
        """:meth:`item` for a span (``on_end``'s hot path): a span of a class read directly, of the last
        (resource, scope) seen, costs one dictionary lookup, one identity check and the encoder's call."""
        if _DIRECT.get(type(span)) is True:
            resource = span._resource
            scope = span._instrumentation_scope
            memo = self._memo
            if memo[0] is resource and memo[1] is scope and memo[2] >= 0:
                try:
                    return (memo[2], _span_field(span))
                except Exception:  # framed from the object at export: dropped there as invalid, and counted
                    return span
        return self.item(span)

    def frame(self, items: Sequence[Any]) -> bytes:
        """The request of ``items`` (:data:`SourceItem` tuples, or objects :meth:`item` left as they are).
        Raises if an object among them cannot be encoded; an empty sequence gives ``b""``."""
        groups = self._groups
        if items:  # the common batch (one group, all encoded): one pass (compiled), else the general path below
            request = _frame_one(items, groups)
            if request is not None:
                return request
        buckets: dict[int, list[bytes]] = {}
        local: dict[tuple[Any, Any], int] | None = None  # pairs past max_groups, by equality -> a batch key
        for item in items:
            if type(item) is tuple:
                key, data = item
            else:
                resource, scope, data = self._one(item)
                key = self.key(resource, scope)
                if key < 0:
                    if local is None:
                        local = {}
                        groups = dict(groups)
                    key = local.get((resource, scope), 0)
                    if key >= 0:  # first in this batch: a negative key, its resource's index or a new one
                        key = -1 - len(local)
                        index = self._resources.get(resource)
                        if index is None:
                            same = [g[0] for k, g in groups.items() if k < 0 and g[1] == resource]
                            index = same[0] if same else key
                        groups[key] = self._group(index, resource, scope)
                        local[(resource, scope)] = key
            bucket = buckets.get(key)
            if bucket is None:
                buckets[key] = [data]
            else:
                bucket.append(data)
        # ResourceSpans in first-seen order of (equal) resources; within one, its scopes in first-seen order
        by_resource: dict[int, list[tuple[_Group, list[bytes]]]] = {}
        for key, parts in buckets.items():
            group = groups[key]
            scopes = by_resource.get(group[0])
            if scopes is None:
                by_resource[group[0]] = [(group, parts)]
            else:
                scopes.append((group, parts))
        out: list[bytes] = []
        for scopes in by_resource.values():
            resource_parts = [scopes[0][0][3]]
            for group, parts in scopes:
                # Resource* 2 scope_{spans,logs}: the scope, the items, the scope's schema_url
                size = len(group[4]) + sum(map(len, parts)) + len(group[5])
                resource_parts += (b"\x12", varint(size), group[4], *parts, group[5])
            resource_parts.append(scopes[0][0][6])
            out += (b"\x0a", varint(sum(map(len, resource_parts))), *resource_parts)  # Export* 1 resource_*
        return b"".join(out)


# The compiled one-span writer, when the accelerator is chosen (bound here too: on_end's hot path reads it as a
# global of this module).
if _speedups is not None:
    _accelerate(globals(), _span_field=_spans_module._span_field_compiled)
    _accelerate(globals(), _log_field=_logs_module._log_field_compiled)  # and the one-record log writer
    if hasattr(_speedups, "sdk_span_item"):  # an extension built before it: the pure one over the compiled field
        _accelerate(globals(), _span_item=_speedups.sdk_span_item)
    if hasattr(_speedups, "sdk_log_item"):  # as sdk_span_item
        _accelerate(globals(), _log_item=_speedups.sdk_log_item)
    if hasattr(_speedups, "frame_source"):  # an extension built before it: the pure one
        _accelerate(globals(), _frame_one=_speedups.frame_source)
