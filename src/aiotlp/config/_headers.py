"""Headers: the validated, immutable, redacting mapping of header names to values, and its gRPC check."""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator, Mapping
from typing import Final, NoReturn
from urllib.parse import unquote

from ._values import (
    OnInvalid,
    _fail,
    logger,
)

# RFC 7230 token (tchar+).
_TOKEN_RE: Final = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
_FORBIDDEN_VALUE_CHARS: Final = frozenset("\r\n\x00")
_HEADERS_FORMAT: Final = " (expected name=value pairs separated by ','; write 'Name: value' as 'Name=value')"


class Headers(Mapping[str, str]):
    """An immutable mapping of header name to value, validated once.

    Names are lowercased (gRPC metadata requires it) and must be RFC 7230 tokens; lookups are
    case-insensitive. Values must not contain CR, LF or NUL. When a name repeats, the last value wins.
    ``repr()`` and ``str()`` show every value as ``***``. Equal (and hashing equal) to any Headers with the
    same content.

    ``source`` names where the headers came from (an environment variable or an argument); error messages use
    it and the header name, never the value.
    """

    __slots__ = ("_data",)

    _data: Mapping[str, str]

    def __init__(
        self,
        headers: Mapping[str, str] | Iterable[tuple[str, str]] | None = None,
        /,
        *,
        source: str = "headers",
    ) -> None:
        data: dict[str, str] = {}
        if isinstance(headers, (str, bytes)):
            _fail(f"{source}: expected a mapping or (name, value) pairs; parse text with Headers.parse()")
        if headers is not None:
            items: Iterable[object] = headers.items() if isinstance(headers, Mapping) else headers
            try:
                iterator = iter(items)
            except TypeError:
                _fail(f"{source}: expected a mapping or (name, value) pairs, got {type(headers).__name__}")
            for position, item in enumerate(iterator, start=1):
                if not (isinstance(item, tuple) and len(item) == 2):
                    _fail(f"{source}: expected (name, value) pairs")
                key, value = item
                problem = _header_problem(key, value)
                if problem is not None:
                    _fail(f"{source}: header {position} (in the order given) is invalid: {problem}")
                assert isinstance(key, str) and isinstance(value, str)
                data[key.lower()] = value
        object.__setattr__(self, "_data", data)

    @classmethod
    def parse(
        cls, text: str, source: str = "OTEL_EXPORTER_OTLP_HEADERS", *, on_invalid: OnInvalid = "raise"
    ) -> Headers:
        """Parse the OTLP ``k=v,k2=v2`` format: strip whitespace around names and values, then percent-decode.

        Entries that are empty (``a=1,,b=2``, a trailing comma) are skipped. A bad entry (no ``=``, an empty
        name or one that is not an HTTP token, a value with CR, LF or NUL) is an error naming ``source`` and
        the entry's position, never any of its text (``Authorization: Basic <token>`` written with ``:`` holds
        the secret in what would be the name). With ``on_invalid="warn"`` a bad entry is left out with a
        warning saying the same, as the official Python exporters do.
        """
        pairs: list[tuple[str, str]] = []
        for index, entry in enumerate(text.split(","), start=1):
            if not entry.strip():
                continue
            raw_key, sep, raw_value = entry.partition("=")
            key, value = unquote(raw_key.strip()), unquote(raw_value.strip())
            if not sep:
                problem: str | None = "there is no '='" + _HEADERS_FORMAT
            elif not key:
                problem = "the name is empty" + _HEADERS_FORMAT
            else:
                problem = _header_problem(key, value)
                if problem is not None and problem.startswith("the name"):
                    problem += _HEADERS_FORMAT
            if problem is not None:
                _refuse(f"{source}: entry {index} is not a valid name=value pair: {problem}", on_invalid, "entry")
                continue
            pairs.append((key, value))
        return cls(pairs, source=source)

    def __getitem__(self, key: str) -> str:
        if not isinstance(key, str):
            raise KeyError(key)
        return self._data[key.lower()]

    def __contains__(self, key: object) -> bool:
        return isinstance(key, str) and key.lower() in self._data

    def __iter__(self) -> Iterator[str]:
        return iter(self._data)

    def __len__(self) -> int:
        return len(self._data)

    def __hash__(self) -> int:
        return hash(frozenset(self._data.items()))

    def __eq__(self, other: object) -> bool:
        if isinstance(other, Headers):
            return self._data == other._data
        return super().__eq__(other)

    def __repr__(self) -> str:
        return f"Headers({ {key: '***' for key in self._data}!r})"

    __str__ = __repr__

    def __setattr__(self, name: str, value: object) -> NoReturn:
        raise AttributeError(f"Headers is immutable: cannot set {name!r}")

    def __delattr__(self, name: str) -> NoReturn:
        raise AttributeError(f"Headers is immutable: cannot delete {name!r}")

    def __reduce__(self) -> tuple[type[Headers], tuple[dict[str, str]]]:
        return (Headers, (dict(self._data),))


def _header_problem(key: object, value: object) -> str | None:
    """What is wrong with a header, in words that quote none of it (a name may hold a secret), or None."""
    if not isinstance(key, str):
        return f"the name must be a str, got {type(key).__name__}"
    if not _TOKEN_RE.fullmatch(key):
        return "the name is not a valid HTTP token (RFC 7230)"
    if not isinstance(value, str):
        return f"the value must be a str, got {type(value).__name__}"
    if not _FORBIDDEN_VALUE_CHARS.isdisjoint(value):
        return "the value contains CR, LF or NUL"
    return None


def _refuse(message: str, on_invalid: OnInvalid, what: str) -> None:
    """Raise ``message``; or, with ``on_invalid="warn"``, warn that the ``what`` is left out (and return)."""
    if on_invalid == "raise":
        _fail(message)
    logger.warning("%s; the %s is left out", message, what)


def _check_grpc_metadata(headers: Headers, source: str, on_invalid: OnInvalid = "raise") -> Headers:
    """gRPC metadata values are printable ASCII (binary values only under names ending in ``-bin``).

    Messages give the header's position in ``headers``, never its name. ``on_invalid="warn"``: such headers are
    left out (with a warning) rather than refused."""
    kept: list[tuple[str, str]] = []
    for position, (key, value) in enumerate(headers.items(), start=1):
        if not key.endswith("-bin") and not all(" " <= ch <= "~" for ch in value):
            message = f"{source}: the value of header {position} is not printable ASCII, which gRPC metadata requires"
            _refuse(message, on_invalid, "header")
            continue
        kept.append((key, value))
    return headers if len(kept) == len(headers) else Headers(kept, source=source)


def _as_headers(value: object, name: str) -> Headers:
    if isinstance(value, Headers):
        return value
    if isinstance(value, Mapping):
        return Headers(value, source=name)
    _fail(f"{name}: must be a Mapping[str, str] or Headers, got {type(value).__name__}")
