"""Configuration: frozen dataclasses, and the ONE place aiotlp reads environment variables.

Every duration inside aiotlp is a ``float`` number of seconds; milliseconds exist only at the environment
edge. Everything is validated once, when the dataclass is built; every error is a
:class:`~aiotlp._exceptions.ConfigurationError` (also a ``ValueError``) whose message names the environment
variable or the argument at fault. No message ever contains any text of a header entry (name or value: a header
written ``Authorization: Basic <token>`` puts the token in the name), any part of an endpoint URL (not even its
scheme: in a scheme-less ``user:password@host`` it is the user), nor a value that does not look like a file path
(a pasted PEM key); a header is named by its position. ``repr()`` redacts header values and URL credentials.
The readers either raise or, with ``on_invalid="warn"`` (:data:`OnInvalid`), warn with the same message and use
the default.

Precedence, highest first: an explicit keyword argument of ``from_env``; the per-signal variable
(``OTEL_EXPORTER_OTLP_TRACES_TIMEOUT``, ``..._METRICS_...``, ``..._LOGS_...``); the generic variable; the
default. An empty or all-whitespace variable counts as unset; surrounding whitespace is ignored. Only the
variables actually used are read, so a bad variable that something else overrides is never reported.

Exporter, :meth:`ExporterConfig.from_env` (every ``OTEL_EXPORTER_OTLP_X`` also has the per-signal variants):

| variable                                | default                   | rule (note)                          |
|-----------------------------------------|---------------------------|--------------------------------------|
| OTEL_EXPORTER_OTLP_ENDPOINT             | ``http://localhost:4317`` | base URL (1)                         |
|                                         | gRPC, else ``...:4318``   |                                      |
| OTEL_EXPORTER_OTLP_<SIGNAL>_ENDPOINT    | the generic one           | HTTP: the URL to POST to, verbatim   |
| OTEL_EXPORTER_OTLP_PROTOCOL             | ``http/protobuf``         | ``grpc``/``http/protobuf``/          |
|                                         |                           | ``http/json``, any case              |
| OTEL_EXPORTER_OTLP_HEADERS              | none                      | ``k=v,k2=v2`` (2)                    |
| OTEL_EXPORTER_OTLP_TIMEOUT              | ``10000``                 | positive integer ms, per export (3)  |
| OTEL_EXPORTER_OTLP_COMPRESSION          | ``none``                  | ``gzip``/``deflate``/``zstd``/       |
|                                         |                           | ``none``, any case (7)               |
| OTEL_EXPORTER_OTLP_CERTIFICATE          | system CAs                | readable PEM file of trusted CAs     |
| OTEL_EXPORTER_OTLP_CLIENT_KEY           | none                      | readable PEM mTLS key (4)            |
| OTEL_EXPORTER_OTLP_CLIENT_CERTIFICATE   | none                      | readable PEM mTLS certificate (4)    |
| OTEL_EXPORTER_OTLP_INSECURE             | ``false``                 | only ``true``, any case, is true (5) |
| AIOTLP_EXPORTER_OTLP_ENDPOINTS          | none                      | base URLs, comma-separated (6)       |
| AIOTLP_EXPORTER_OTLP_<SIGNAL>_ENDPOINTS | none                      | per-signal URLs, comma-separated (6) |

1. The scheme must be ``http`` or ``https``, the host non-empty, the port 1..65535 (80 for http and 443 for
   https when the URL has none). HTTP appends ``v1/<signal>`` to a base URL's path: ``http://h:4318`` and
   ``http://h:4318/`` give ``http://h:4318/v1/traces``, ``http://h/otlp`` gives ``http://h/otlp/v1/traces``.
   The ``endpoint=`` argument is a base URL too. A per-signal URL with an empty path gets ``/``. gRPC
   normalizes any endpoint to ``http://host:port`` or ``https://host:port`` (the path is ignored), accepts a
   scheme-less ``host:port`` and refuses ``user:password@`` (send credentials as headers).
2. Names and values are whitespace-stripped, then percent-decoded; names are lowercased and must be RFC 7230
   tokens; a value must not contain CR, LF or NUL. Empty entries are skipped; a repeated name: the last wins.
   Errors give the entry's position, never its text.
3. Integers in variables are ASCII digits only (no sign, ``_``, fraction or exponent), at most 18 of them.
   Timeouts are milliseconds, as the specification says; the official Python exporters read seconds, so a value
   under 100 is warned about (once per variable and process) and a fraction like ``2.5`` is refused with the
   unit spelled out.
4. The client key and the client certificate must be set together.
5. gRPC only, and only for a scheme-less endpoint (plaintext if true, else TLS): a scheme always wins.
6. aiotlp's own: several collectors for one exporter (a fleet, see ``docs/fleet.md``). The OTLP specification
   types ``OTEL_EXPORTER_OTLP_ENDPOINT`` as one URL (a ``String``), and a comma is a legal URL character (an RFC
   3986 sub-delimiter), so a list there would change the meaning of valid values: the list has its own
   variables. Entries are separated by ``,`` (write a comma inside a URL as ``%2C``), whitespace around them is
   ignored, empty entries are skipped; each entry follows the rule of its single-URL twin (1). Every entry must
   use the same scheme, and none may repeat. Precedence for a signal: ``AIOTLP_EXPORTER_OTLP_<SIGNAL>_ENDPOINTS``
   > ``OTEL_EXPORTER_OTLP_<SIGNAL>_ENDPOINT`` > ``AIOTLP_EXPORTER_OTLP_ENDPOINTS`` >
   ``OTEL_EXPORTER_OTLP_ENDPOINT``. The ``endpoint=`` argument takes a list too.
7. The specification defines ``gzip`` and ``none``; ``deflate`` (a zlib stream) is accepted as the official
   Python exporters accept it, and ``zstd`` is aiotlp's extension (the OpenTelemetry Collector decodes both over
   HTTP, and zstd over gRPC too). zstd needs a binding: the standard library's ``compression.zstd`` (Python
   3.14+) or ``aiotlp[zstd]``; the transport says so when it is built. grpc.aio cannot send zstd (use the h2
   gRPC client). :data:`COMPRESSIONS` is the list.

Batching, :meth:`BatchConfig.from_env` (``OTEL_BSP_*`` for spans, ``OTEL_BLRP_*`` for logs), and the metric
reader, :meth:`MetricReaderConfig.from_env`:

| variable                                           | default        | rule                          |
|----------------------------------------------------|----------------|-------------------------------|
| OTEL_BSP_SCHEDULE_DELAY / OTEL_BLRP_SCHEDULE_DELAY | 5000 / 1000    | positive integer ms           |
| OTEL_BSP_EXPORT_TIMEOUT / OTEL_BLRP_EXPORT_TIMEOUT | 30000          | positive integer ms           |
| OTEL_BSP_MAX_QUEUE_SIZE / OTEL_BLRP_MAX_QUEUE_SIZE | 2048           | positive integer              |
| OTEL_BSP_MAX_EXPORT_BATCH_SIZE                     | 512            | positive integer, at most the |
| / OTEL_BLRP_MAX_EXPORT_BATCH_SIZE                  |                | max queue size                |
| OTEL_METRIC_EXPORT_INTERVAL                        | 60000          | positive integer ms           |
| OTEL_METRIC_EXPORT_TIMEOUT                         | 30000          | positive integer ms           |
| OTEL_EXPORTER_OTLP_METRICS_TEMPORALITY_PREFERENCE  | ``cumulative`` | ``cumulative``, ``delta`` or  |
|                                                    |                | ``lowmemory``, any case       |
| OTEL_EXPORTER_OTLP_METRICS_DEFAULT_HISTOGRAM_      | ``explicit_    | or ``base2_exponential_       |
| AGGREGATION                                        | bucket_histo-  | bucket_histogram``, any case  |
|                                                    | gram``         |                               |

Invalid values raise a :class:`~aiotlp._exceptions.ConfigurationError`; with ``on_invalid="warn"`` (which
:mod:`aiotlp.sdk` uses, see :data:`OnInvalid`) the values the official Python exporters replace by a default are
warned about and replaced the same way.
"""

from __future__ import annotations

import ipaddress
import logging
import math
import os
import re
import stat
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Final, Literal, NoReturn, TypeVar, get_args
from urllib.parse import unquote

from aiotlp._exceptions import ConfigurationError
from aiotlp.model._signal import Signal

__all__ = [
    "COMPRESSIONS",
    "DEFAULT_MAX_REQUEST_BYTES",
    "MAX_REQUEST_BYTES",
    "BatchConfig",
    "Compression",
    "ExporterConfig",
    "Headers",
    "HistogramAggregation",
    "MetricReaderConfig",
    "OnInvalid",
    "OtlpProtocol",
    "SignalConfig",
    "TemporalityPreference",
    "endpoint_from_env",
    "metric_preferences_from_env",
    "queue_dir_from_env",
    "sdk_internal_metrics_from_env",
    "variable_source",
]

OtlpProtocol = Literal["grpc", "http/protobuf", "http/json"]
Compression = Literal["gzip", "deflate", "zstd", "none"]
TemporalityPreference = Literal["cumulative", "delta", "lowmemory"]
HistogramAggregation = Literal["explicit_bucket_histogram", "base2_exponential_bucket_histogram"]
OnInvalid = Literal["raise", "warn"]
"""What the ``from_env`` readers do with an invalid variable: ``"raise"`` a ConfigurationError (aiotlp's own
API), or ``"warn"`` (a warning naming the variable, never a secret) and use the default, as the official Python
exporters do for the same variables (:mod:`aiotlp.sdk` turns it on, so the drop-in never stops an application
that runs with the official exporters)."""

_PROTOCOLS: Final[tuple[str, ...]] = get_args(OtlpProtocol)
COMPRESSIONS: Final[tuple[Compression, ...]] = get_args(Compression)
"""Every ``compression`` value, ``"none"`` last: the one list (transports, the SDK exporters, tests and the
interoperability matrices take it from here)."""
_TEMPORALITIES: Final[tuple[str, ...]] = get_args(TemporalityPreference)
_HISTOGRAM_AGGREGATIONS: Final[tuple[str, ...]] = get_args(HistogramAggregation)

logger = logging.getLogger("aiotlp.config")

DEFAULT_MAX_REQUEST_BYTES: Final = 4 * 1024 * 1024
_MIN_REQUEST_BYTES: Final = 1024
MAX_REQUEST_BYTES: Final = 64 * 1024 * 1024
"""The largest request OTLP allows (64 MiB, before compression): ``max_request_bytes`` is at most this."""

_DEFAULT_TIMEOUT_MS: Final = 10_000
_DEFAULT_GRPC_ENDPOINT: Final = "http://localhost:4317"
_DEFAULT_HTTP_ENDPOINT: Final = "http://localhost:4318"
_DEFAULT_PROTOCOL: Final[OtlpProtocol] = "http/protobuf"
_ENDPOINTS_VAR: Final = "AIOTLP_EXPORTER_OTLP_ENDPOINTS"

# RFC 7230 token (tchar+).
_TOKEN_RE: Final = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
_FORBIDDEN_VALUE_CHARS: Final = frozenset("\r\n\x00")
# An integer as written in an environment variable: ASCII digits only (no sign, "_", "1.5", non-ASCII digits).
_INT_RE: Final = re.compile(r"[0-9]{1,18}")
# "scheme:" at the start of an endpoint. "host:4317" is not a scheme (a digit follows the colon).
_SCHEME_RE: Final = re.compile(r"([A-Za-z][A-Za-z0-9+.\-]*):(?![0-9])")
_HOST_RE: Final = re.compile(r"[A-Za-z0-9._\-]+")
_PORT_RE: Final = re.compile(r"[0-9]{1,5}")
_DEFAULT_PORTS: Final = {"http": 80, "https": 443}
_T = TypeVar("_T")
_HEADERS_FORMAT: Final = " (expected name=value pairs separated by ','; write 'Name: value' as 'Name=value')"
# An exporter timeout under this many milliseconds was probably meant in seconds (the official Python exporters'
# unit): warned about once per variable per process.
_SECONDS_LIKE_MS: Final = 100
_unit_warned: set[str] = set()


def _fail(message: str) -> NoReturn:
    # "from None": what was being parsed when it failed (an OSError naming a pasted key, a ValueError quoting a
    # host) must not ride along as the context of a traceback
    raise ConfigurationError(message) from None


# --------------------------------------------------------------------------------------------------- Headers


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
                message = f"{source}: entry {index} is not a valid name=value pair: {problem}"
                if on_invalid == "raise":
                    _fail(message)
                logger.warning("%s; the entry is left out", message)
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


def _check_grpc_metadata(headers: Headers, source: str, on_invalid: OnInvalid = "raise") -> Headers:
    """gRPC metadata values are printable ASCII (binary values only under names ending in ``-bin``).

    Messages give the header's position in ``headers``, never its name. ``on_invalid="warn"``: such headers are
    left out (with a warning) rather than refused."""
    kept: list[tuple[str, str]] = []
    for position, (key, value) in enumerate(headers.items(), start=1):
        if not key.endswith("-bin") and not all(" " <= ch <= "~" for ch in value):
            message = f"{source}: the value of header {position} is not printable ASCII, which gRPC metadata requires"
            if on_invalid == "raise":
                _fail(message)
            logger.warning("%s; the header is left out", message)
            continue
        kept.append((key, value))
    return headers if len(kept) == len(headers) else Headers(kept, source=source)


def _as_headers(value: object, name: str) -> Headers:
    if isinstance(value, Headers):
        return value
    if isinstance(value, Mapping):
        return Headers(value, source=name)
    _fail(f"{name}: must be a Mapping[str, str] or Headers, got {type(value).__name__}")


# ------------------------------------------------------------------------------------------- value checkers


def _check_seconds(value: object, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        _fail(f"{name}: must be a number of seconds, got {type(value).__name__}")
    try:
        seconds = float(value)
    except OverflowError:
        seconds = math.inf
    if not (math.isfinite(seconds) and seconds > 0):
        _fail(f"{name}: must be a positive, finite number of seconds")
    return seconds


def _check_positive_int(value: object, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        _fail(f"{name}: must be an int, got {type(value).__name__}")
    if value <= 0:
        _fail(f"{name}: must be a positive integer")
    return value


def _check_max_request_bytes(value: object, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        _fail(f"{name}: must be an int, got {type(value).__name__}")
    if not _MIN_REQUEST_BYTES <= value <= MAX_REQUEST_BYTES:
        _fail(f"{name}: must be between {_MIN_REQUEST_BYTES} (1 KiB) and {MAX_REQUEST_BYTES} (64 MiB) bytes")
    return value


def _check_choice(value: object, name: str, allowed: tuple[str, ...]) -> str:
    if isinstance(value, str):
        choice = value.strip().lower()
        if choice in allowed:
            return choice
    _fail(f"{name}: must be one of {', '.join(repr(a) for a in allowed)}")


def _check_protocol(value: object, name: str) -> OtlpProtocol:
    choice = _check_choice(value, name, _PROTOCOLS)
    return "grpc" if choice == "grpc" else "http/json" if choice == "http/json" else "http/protobuf"


def _check_compression(value: object, name: str) -> Compression:
    choice = _check_choice(value, name, COMPRESSIONS)
    for compression in COMPRESSIONS:
        if choice == compression:
            return compression
    return "none"  # not reached: _check_choice raised


def _check_temporality(value: object, name: str) -> TemporalityPreference:
    choice = _check_choice(value, name, _TEMPORALITIES)
    return "delta" if choice == "delta" else "lowmemory" if choice == "lowmemory" else "cumulative"


def _check_histogram_aggregation(value: object, name: str) -> HistogramAggregation:
    choice = _check_choice(value, name, _HISTOGRAM_AGGREGATIONS)
    return "base2_exponential_bucket_histogram" if choice.startswith("base2") else "explicit_bucket_histogram"


def _check_file(value: object, name: str) -> str:
    if not isinstance(value, (str, os.PathLike)):
        _fail(f"{name}: must be a file path, got {type(value).__name__}")
    path = os.fspath(value)
    if not isinstance(path, str):
        _fail(f"{name}: must be a str file path, got {type(path).__name__}")
    if not path:
        _fail(f"{name}: the file path is empty")
    # stat + access rather than open(): opening a FIFO would block.
    shown = _display_path(path)
    try:
        mode = os.stat(path).st_mode
    except (OSError, ValueError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else "invalid path"
        _fail(f"{name}: cannot read file {shown}: {reason}")
    if not stat.S_ISREG(mode):
        _fail(f"{name}: cannot read file {shown}: not a regular file")
    if not os.access(path, os.R_OK):
        _fail(f"{name}: cannot read file {shown}: permission denied")
    return path


def _display_path(path: str) -> str:
    """``path`` quoted for a message, unless it does not look like a path: a PEM key pasted into
    ``OTEL_EXPORTER_OTLP_CLIENT_KEY`` instead of its file name must not be echoed."""
    if len(path) > 256 or "-----" in path or any((ch.isspace() and ch != " ") or ord(ch) < 0x20 for ch in path):
        return "(the value does not look like a file path: not shown)"
    return repr(path)


def _check_optional_file(value: object, name: str) -> str | None:
    return None if value is None else _check_file(value, name)


def _parse_ms(text: str, name: str) -> float:
    """Positive integer milliseconds from an environment variable, as float seconds."""
    if not _INT_RE.fullmatch(text) or int(text) == 0:
        _fail(f"{name}: must be a positive integer number of milliseconds")
    return int(text) / 1000


def _parse_timeout_ms(text: str, name: str) -> float:
    """An exporter timeout variable: positive integer milliseconds (the OTLP specification's unit), as float
    seconds. The official Python exporters read seconds: a fraction is refused with the unit spelled out, and a
    value under 100 ms gets a warning (once per variable per process) that the unit is milliseconds."""
    if not _INT_RE.fullmatch(text) or int(text) == 0:
        hint = ""
        try:
            seconds = float(text)
        except ValueError:
            seconds = math.nan
        if math.isfinite(seconds) and seconds > 0:
            hint = (
                f" (the OTLP unit is milliseconds, not seconds as in the official Python exporters: "
                f"{seconds:g} s is {round(seconds * 1000)})"
            )
        _fail(f"{name}: must be a positive integer number of milliseconds{hint}")
    milliseconds = int(text)
    if milliseconds < _SECONDS_LIKE_MS and name not in _unit_warned:
        _unit_warned.add(name)
        logger.warning(
            "%s=%d: the unit is milliseconds (the OTLP specification's), so exports time out after %d ms; the "
            "official Python exporters read seconds: for %d s write %d",
            name,
            milliseconds,
            milliseconds,
            milliseconds,
            milliseconds * 1000,
        )
    return milliseconds / 1000


def _parse_count(text: str, name: str) -> int:
    if not _INT_RE.fullmatch(text) or int(text) == 0:
        _fail(f"{name}: must be a positive integer")
    return int(text)


# ----------------------------------------------------------------------------------------------- endpoints


@dataclass(frozen=True, slots=True)
class _Url:
    scheme: str  # "http" or "https"
    userinfo: str | None
    host: str  # IPv6 without brackets
    port: int | None
    authority: str  # as written (userinfo included)
    path: str
    suffix: str  # "?query#fragment" as written

    @property
    def effective_port(self) -> int:
        return _DEFAULT_PORTS[self.scheme] if self.port is None else self.port

    @property
    def host_for_url(self) -> str:
        return f"[{self.host}]" if ":" in self.host else self.host


def _parse_url(text: str, name: str, *, grpc: bool, insecure: bool) -> _Url:
    """Split and validate an endpoint. Never puts any part of ``text`` in a message (the scheme neither: a
    scheme-less ``user:password@host`` would show the user)."""
    if not text:
        _fail(f"{name}: the endpoint is empty")
    if any(ch.isspace() or ord(ch) < 0x20 or ord(ch) == 0x7F or ch == "\\" for ch in text):
        _fail(f"{name}: the endpoint contains whitespace, control characters or a backslash")
    match = _SCHEME_RE.match(text)
    if match is None:
        if not grpc:
            _fail(f"{name}: an OTLP/HTTP endpoint must start with http:// or https://")
        scheme, rest = ("http" if insecure else "https"), "//" + text
    else:
        scheme, rest = match.group(1).lower(), text[match.end() :]
        if scheme not in _DEFAULT_PORTS:
            # never quote it: in "user:password@host" the "scheme" is the user name
            _fail(
                f"{name}: unsupported URL scheme: use http:// or https://"
                + (" (or host:port)" if grpc else "")
                + " (the scheme is not shown: in a scheme-less user:password@host it would be the user name)"
            )
    if not rest.startswith("//"):
        _fail(f"{name}: expected '//' after '{scheme}:' in the endpoint")
    rest = rest[2:]
    end = min((i for i in (rest.find(c) for c in "/?#") if i != -1), default=len(rest))
    authority, tail = rest[:end], rest[end:]
    cut = min((i for i in (tail.find(c) for c in "?#") if i != -1), default=len(tail))
    path, suffix = tail[:cut], tail[cut:]

    userinfo, at, hostport = authority.rpartition("@")
    if hostport.startswith("["):
        close = hostport.find("]")
        if close == -1:
            _fail(f"{name}: the endpoint has an unterminated IPv6 address")
        host, after = hostport[1:close], hostport[close + 1 :]
        if after and not after.startswith(":"):
            _fail(f"{name}: unexpected characters after the IPv6 address in the endpoint")
        port_text: str | None = after[1:] if after else None
        try:
            ipaddress.IPv6Address(host)
        except ValueError:
            _fail(f"{name}: the endpoint host is not a valid IPv6 address")
    else:
        host, colon, port_text_ = hostport.partition(":")
        port_text = port_text_ if colon else None
        if not host:
            _fail(f"{name}: the endpoint has no host")
        if not host.isascii():
            try:
                host = host.encode("idna").decode("ascii")
            except UnicodeError:
                _fail(f"{name}: the endpoint host is not a valid internationalized domain name")
        if not _HOST_RE.fullmatch(host):
            _fail(f"{name}: the endpoint host contains characters not allowed in a host name")
    port: int | None = None
    if port_text:  # "http://h:" (empty port) means the default port, as in RFC 3986
        if not _PORT_RE.fullmatch(port_text) or not 1 <= int(port_text) <= 65535:
            _fail(f"{name}: the endpoint port must be a number between 1 and 65535")
        port = int(port_text)
    return _Url(
        scheme=scheme,
        userinfo=userinfo if at else None,
        host=host,
        port=port,
        authority=authority,
        path=path,
        suffix=suffix,
    )


def _normalize_endpoint(
    text: str, name: str, *, protocol: OtlpProtocol, signal: Signal, base: bool, insecure: bool
) -> tuple[str, _Url]:
    """Validate ``text`` and return the endpoint a SignalConfig stores (see the module docstring)."""
    grpc = protocol == "grpc"
    url = _parse_url(text, name, grpc=grpc, insecure=insecure)
    if grpc:
        if url.userinfo is not None:
            _fail(f"{name}: a gRPC endpoint cannot carry user credentials ('user:password@'); use headers")
        return f"{url.scheme}://{url.host_for_url}:{url.effective_port}", url
    path = url.path.rstrip("/") + signal.http_path if base else url.path or "/"
    return f"{url.scheme}://{url.authority}{path}{url.suffix}", url


def _endpoint_arguments(value: object, name: str) -> list[tuple[str, str]]:
    """``(text, name for errors)`` per endpoint of an argument: one ``str``, or a non-empty list/tuple of them."""
    if isinstance(value, str):
        return [(value.strip(), name)]
    if not isinstance(value, Sequence) or isinstance(value, (bytes, bytearray)):
        _fail(f"{name}: must be a str or a list of str, got {type(value).__name__}")
    if not value:
        _fail(f"{name}: the list of endpoints is empty")
    texts: list[tuple[str, str]] = []
    for index, item in enumerate(value):
        if not isinstance(item, str):
            _fail(f"{name}[{index}]: must be a str, got {type(item).__name__}")
        texts.append((item.strip(), f"{name}[{index}]"))
    return texts


def _endpoint_list(text: str, name: str) -> list[tuple[str, str]]:
    """Split a comma-separated list of endpoints from an environment variable; empty entries are skipped."""
    texts = [(entry.strip(), f"{name} entry {index}") for index, entry in enumerate(text.split(","), start=1)]
    texts = [(entry, where) for entry, where in texts if entry]
    if not texts:
        _fail(f"{name}: no endpoint in the list (expected URLs separated by ',')")
    return texts


def _normalize_endpoints(
    texts: Sequence[tuple[str, str]], *, protocol: OtlpProtocol, signal: Signal, base: bool, insecure: bool
) -> tuple[str, ...]:
    """Validate every endpoint of a list: the same scheme for all, none repeated. Messages name the entry."""
    endpoints: list[str] = []
    first_scheme = ""
    for text, name in texts:
        endpoint, url = _normalize_endpoint(text, name, protocol=protocol, signal=signal, base=base, insecure=insecure)
        if not endpoints:
            first_scheme = url.scheme
        elif url.scheme != first_scheme:
            _fail(
                f"{name}: uses {url.scheme}:// but the first endpoint uses {first_scheme}://: every endpoint of "
                "one signal must use the same scheme"
            )
        if endpoint in endpoints:
            _fail(f"{name}: repeats an earlier endpoint of the list (give each collector once)")
        endpoints.append(endpoint)
    return tuple(endpoints)


def _redact_endpoint(endpoint: str) -> str:
    """Replace any ``user:password@`` in a (validated) endpoint by ``***@``."""
    scheme, sep, rest = endpoint.partition("://")
    if not sep:
        return endpoint
    end = min((i for i in (rest.find(c) for c in "/?#") if i != -1), default=len(rest))
    _, at, hostport = rest[:end].rpartition("@")
    return f"{scheme}://***@{hostport}{rest[end:]}" if at else endpoint


# ------------------------------------------------------------------------------------------- SignalConfig


@dataclass(frozen=True, slots=True, kw_only=True, repr=False)
class SignalConfig:
    """How to export one signal.

    ``endpoint``: for HTTP the full URL to POST to (an empty path becomes ``/``); for gRPC it is normalized
    to ``http://host:port`` or ``https://host:port`` (path dropped; a scheme-less ``host:port`` means TLS
    here, use :meth:`ExporterConfig.from_env` with ``insecure=True`` for plaintext). ``endpoints``: every
    collector of a fleet, same rules, same scheme for all, none repeated; ``endpoint`` must be its first (the
    one shown in logs); empty or of one element it becomes ``(endpoint,)``. ``insecure`` is derived
    from the scheme (``http`` -> True), not passed. ``timeout`` is float seconds per export. Certificate files
    must be readable; the client key and client certificate come together.
    """

    signal: Signal
    protocol: OtlpProtocol
    endpoint: str
    endpoints: tuple[str, ...] = ()
    headers: Headers = field(default_factory=Headers)
    timeout: float = _DEFAULT_TIMEOUT_MS / 1000
    compression: Compression = "none"
    certificate_file: str | None = None
    client_key_file: str | None = None
    client_certificate_file: str | None = None
    max_request_bytes: int = DEFAULT_MAX_REQUEST_BYTES
    insecure: bool = field(init=False)
    _host: str = field(init=False, compare=False)
    _port: int = field(init=False, compare=False)

    def __post_init__(self) -> None:
        set_ = object.__setattr__
        try:
            signal = Signal(self.signal)
        except ValueError:
            _fail(f"signal: must be one of {', '.join(repr(s.value) for s in Signal)}")
        set_(self, "signal", signal)
        protocol = _check_protocol(self.protocol, "protocol")
        set_(self, "protocol", protocol)
        if not isinstance(self.endpoint, str):
            _fail(f"endpoint: must be a str, got {type(self.endpoint).__name__}")
        endpoint, url = _normalize_endpoint(
            self.endpoint.strip(), "endpoint", protocol=protocol, signal=signal, base=False, insecure=False
        )
        set_(self, "endpoint", endpoint)
        if isinstance(self.endpoints, str) or not isinstance(self.endpoints, (tuple, list)):
            _fail(f"endpoints: must be a tuple of str, got {type(self.endpoints).__name__}")
        if len(self.endpoints) > 1:
            endpoints = _normalize_endpoints(
                _endpoint_arguments(self.endpoints, "endpoints"),
                protocol=protocol,
                signal=signal,
                base=False,
                insecure=False,
            )
            if endpoints[0] != endpoint:
                _fail("endpoint: must be the first of endpoints (endpoints[0])")
        else:  # one endpoint: ``endpoint`` wins, so ``dataclasses.replace(config, endpoint=...)`` keeps working
            endpoints = (endpoint,)
        set_(self, "endpoints", endpoints)
        set_(self, "headers", _as_headers(self.headers, "headers"))
        if protocol == "grpc":
            _check_grpc_metadata(self.headers, "headers")
        set_(self, "timeout", _check_seconds(self.timeout, "timeout"))
        set_(self, "compression", _check_compression(self.compression, "compression"))
        for attr in ("certificate_file", "client_key_file", "client_certificate_file"):
            set_(self, attr, _check_optional_file(getattr(self, attr), attr))
        if (self.client_key_file is None) != (self.client_certificate_file is None):
            _fail("client_key_file and client_certificate_file must be given together (mTLS needs both)")
        set_(self, "max_request_bytes", _check_max_request_bytes(self.max_request_bytes, "max_request_bytes"))
        set_(self, "insecure", url.scheme == "http")
        set_(self, "_host", url.host)
        set_(self, "_port", url.effective_port)

    @property
    def host(self) -> str:
        """The endpoint's host (an IPv6 address without brackets)."""
        return self._host

    @property
    def port(self) -> int:
        """The endpoint's port (80 or 443 when the URL has none)."""
        return self._port

    @property
    def use_tls(self) -> bool:
        return not self.insecure

    @property
    def endpoint_for_display(self) -> str:
        """The endpoint with any ``user:password@`` replaced by ``***@``: safe for logs and messages."""
        return _redact_endpoint(self.endpoint)

    @property
    def endpoints_for_display(self) -> tuple[str, ...]:
        """:attr:`endpoints`, each as :attr:`endpoint_for_display` shows it."""
        return tuple(_redact_endpoint(endpoint) for endpoint in self.endpoints)

    def __repr__(self) -> str:
        return (
            f"SignalConfig(signal={self.signal!r}, protocol={self.protocol!r}, "
            f"endpoint={_redact_endpoint(self.endpoint)!r}, "
            + (f"endpoints={self.endpoints_for_display!r}, " if len(self.endpoints) > 1 else "")
            + f"headers={self.headers!r}, "
            f"timeout={self.timeout!r}, "
            f"compression={self.compression!r}, certificate_file={self.certificate_file!r}, "
            f"client_key_file={self.client_key_file!r}, "
            f"client_certificate_file={self.client_certificate_file!r}, "
            f"max_request_bytes={self.max_request_bytes!r}, insecure={self.insecure!r})"
        )

    __str__ = __repr__


# ------------------------------------------------------------------------------------------ ExporterConfig


class _Env:
    """Read-only view of the environment: empty or all-whitespace values are unset; values are stripped.

    ``on_invalid`` (see :data:`OnInvalid`) is what :meth:`parse` does with a value its parser refuses."""

    __slots__ = ("_environ", "on_invalid")

    def __init__(self, environ: Mapping[str, str] | None, on_invalid: OnInvalid = "raise") -> None:
        self._environ: Mapping[str, str] = os.environ if environ is None else environ
        if on_invalid not in ("raise", "warn"):
            _fail("on_invalid: must be 'raise' or 'warn'")
        self.on_invalid: OnInvalid = on_invalid

    def parse(self, parser: Callable[[str, str], _T], found: tuple[str, str], default: _T, default_text: str) -> _T:
        """``parser(value, variable)``; when it refuses the value: raise, or warn (its message, which names the
        variable and never quotes a secret) and return ``default``."""
        try:
            return parser(*found)
        except ConfigurationError as exc:
            if self.on_invalid == "raise":
                raise
            logger.warning("%s; using the default, %s", exc, default_text)
            return default

    def get(self, name: str) -> str | None:
        value = self._environ.get(name)
        if value is None:
            return None
        value = value.strip()
        return value or None

    def otlp(self, signal: Signal, key: str) -> tuple[str, str] | None:
        """``(value, variable name)`` of the per-signal variable, else of the generic one, else None."""
        for name in (f"OTEL_EXPORTER_OTLP_{signal.value.upper()}_{key}", f"OTEL_EXPORTER_OTLP_{key}"):
            value = self.get(name)
            if value is not None:
                return value, name
        return None


@dataclass(frozen=True, slots=True, kw_only=True)
class ExporterConfig:
    """The configuration of all three signals. Build it with :meth:`from_env`."""

    traces: SignalConfig
    metrics: SignalConfig
    logs: SignalConfig

    def __post_init__(self) -> None:
        for signal in Signal:
            config = getattr(self, signal.value)
            if not isinstance(config, SignalConfig) or config.signal is not signal:
                _fail(f"{signal.value}: must be a SignalConfig for signal {signal.value!r}")

    def for_signal(self, signal: Signal | str) -> SignalConfig:
        try:
            sig = Signal(signal)
        except ValueError:
            _fail(f"signal: must be one of {', '.join(repr(s.value) for s in Signal)}")
        config: SignalConfig = getattr(self, sig.value)
        return config

    @classmethod
    def from_env(
        cls,
        environ: Mapping[str, str] | None = None,
        *,
        endpoint: str | Sequence[str] | None = None,
        protocol: OtlpProtocol | None = None,
        headers: Mapping[str, str] | Headers | None = None,
        timeout: float | None = None,
        compression: Compression | None = None,
        certificate_file: str | os.PathLike[str] | None = None,
        client_key_file: str | os.PathLike[str] | None = None,
        client_certificate_file: str | os.PathLike[str] | None = None,
        insecure: bool | None = None,
        max_request_bytes: int | None = None,
        signal_endpoints: Mapping[Signal, str | Sequence[str]] | None = None,
        signals: Iterable[Signal | str] | None = None,
        on_invalid: OnInvalid = "raise",
    ) -> ExporterConfig:
        """Resolve every signal: explicit argument > per-signal variable > generic variable > default.

        ``environ=None`` reads ``os.environ``. ``endpoint`` is a *base* endpoint, like
        ``OTEL_EXPORTER_OTLP_ENDPOINT`` (HTTP appends ``v1/<signal>``); ``timeout`` is in seconds. Only the
        values actually used are read and validated, so a bad variable that is overridden is never reported.

        ``signal_endpoints`` maps a signal (a :class:`Signal` or its value) to an explicit *per-signal*
        endpoint, used like ``OTEL_EXPORTER_OTLP_<SIGNAL>_ENDPOINT`` (HTTP: the URL to POST to, verbatim) and
        winning over ``endpoint`` and every variable for that signal. This is how the official OTLP/HTTP
        exporters treat their ``endpoint=`` argument.

        ``endpoint`` and the values of ``signal_endpoints`` may also be lists: several collectors (a fleet),
        like ``AIOTLP_EXPORTER_OTLP_ENDPOINTS``; the signal's ``endpoints`` holds them all, ``endpoint`` the first.

        ``signals``: resolve only these from the arguments and the variables (an SDK exporter uses one signal and
        reads only the generic and that signal's variables); the others get the defaults, with the protocol of
        the first listed one, and nothing is read for them. ``on_invalid="warn"``: a variable whose value is
        invalid is warned about and replaced by its default where the official Python exporters do so (timeout,
        compression, certificate files, header entries; see :data:`OnInvalid`); endpoints and the protocol are
        always refused. Arguments are always checked strictly.
        """
        env = _Env(environ, on_invalid)
        explicit_endpoints = _check_signal_endpoints(signal_endpoints)
        explicit_headers = None if headers is None else _as_headers(headers, "headers")
        if insecure is not None and not isinstance(insecure, bool):
            _fail(f"insecure: must be a bool, got {type(insecure).__name__}")
        chosen = _check_signals(signals)
        configs = {
            signal: _resolve_signal(
                env,
                signal,
                endpoint=endpoint,
                signal_endpoint=explicit_endpoints.get(signal),
                protocol=protocol,
                headers=explicit_headers,
                timeout=timeout,
                compression=compression,
                certificate_file=certificate_file,
                client_key_file=client_key_file,
                client_certificate_file=client_certificate_file,
                insecure=insecure,
                max_request_bytes=max_request_bytes,
            )
            for signal in chosen
        }
        for signal in Signal:
            if signal not in configs:  # not used: the defaults, nothing read
                configs[signal] = _default_signal(signal, configs[chosen[0]].protocol)
        return cls(traces=configs[Signal.TRACES], metrics=configs[Signal.METRICS], logs=configs[Signal.LOGS])


def _check_signals(value: object) -> list[Signal]:
    """The ``signals`` argument of :meth:`ExporterConfig.from_env`: all of them when None."""
    if value is None:
        return list(Signal)
    if isinstance(value, (str, bytes)) or not isinstance(value, Iterable):
        _fail(f"signals: must be an iterable of signals, got {type(value).__name__}")
    chosen: list[Signal] = []
    for item in value:
        try:
            signal = Signal(item)
        except ValueError:
            _fail(f"signals: items must be signals ({', '.join(repr(s.value) for s in Signal)})")
        if signal not in chosen:
            chosen.append(signal)
    if not chosen:
        _fail("signals: give at least one signal")
    return chosen


def _default_signal(signal: Signal, protocol: OtlpProtocol) -> SignalConfig:
    endpoint = _DEFAULT_GRPC_ENDPOINT if protocol == "grpc" else _DEFAULT_HTTP_ENDPOINT + signal.http_path
    return SignalConfig(signal=signal, protocol=protocol, endpoint=endpoint)


def _check_signal_endpoints(value: object) -> dict[Signal, str | Sequence[str]]:
    """Validate the ``signal_endpoints`` argument of :meth:`ExporterConfig.from_env`."""
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        _fail(f"signal_endpoints: must be a Mapping of signal to endpoint, got {type(value).__name__}")
    checked: dict[Signal, str | Sequence[str]] = {}
    for key, endpoint in value.items():
        try:
            signal = Signal(key)
        except ValueError:
            _fail(f"signal_endpoints: keys must be signals ({', '.join(repr(s.value) for s in Signal)})")
        if not isinstance(endpoint, str) and (
            not isinstance(endpoint, (list, tuple)) or not all(isinstance(item, str) for item in endpoint)
        ):
            _fail(f"signal_endpoints[{signal.value!r}]: must be a str or a list of str, got {type(endpoint).__name__}")
        checked[signal] = endpoint
    return checked


def _resolve_signal(
    env: _Env,
    signal: Signal,
    *,
    endpoint: str | Sequence[str] | None,
    signal_endpoint: str | Sequence[str] | None = None,
    protocol: str | None,
    headers: Headers | None,
    timeout: float | None,
    compression: str | None,
    certificate_file: str | os.PathLike[str] | None,
    client_key_file: str | os.PathLike[str] | None,
    client_certificate_file: str | os.PathLike[str] | None,
    insecure: bool | None,
    max_request_bytes: int | None,
) -> SignalConfig:
    # protocol
    if protocol is not None:
        proto = _check_protocol(protocol, "protocol")
    elif (found := env.otlp(signal, "PROTOCOL")) is not None:
        proto = _check_protocol(*found)
    else:
        proto = _DEFAULT_PROTOCOL

    # insecure (only matters for a scheme-less gRPC endpoint)
    if insecure is None:
        found = env.otlp(signal, "INSECURE")
        insecure = found is not None and found[0].lower() == "true"

    # endpoint(s): see note 6 of the module docstring for the lists
    per_signal = f"OTEL_EXPORTER_OTLP_{signal.value.upper()}_ENDPOINT"
    per_signal_list = f"AIOTLP_EXPORTER_OTLP_{signal.value.upper()}_ENDPOINTS"
    texts: list[tuple[str, str]]
    if signal_endpoint is not None:
        texts, base = _endpoint_arguments(signal_endpoint, f"signal_endpoints[{signal.value!r}]"), False
    elif endpoint is not None:
        texts, base = _endpoint_arguments(endpoint, "endpoint"), True
    elif (value := env.get(per_signal_list)) is not None:
        texts, base = _endpoint_list(value, per_signal_list), False
    elif (value := env.get(per_signal)) is not None:
        texts, base = [(value, per_signal)], False
    elif (value := env.get(_ENDPOINTS_VAR)) is not None:
        texts, base = _endpoint_list(value, _ENDPOINTS_VAR), True
    elif (value := env.get("OTEL_EXPORTER_OTLP_ENDPOINT")) is not None:
        texts, base = [(value, "OTEL_EXPORTER_OTLP_ENDPOINT")], True
    else:
        text = _DEFAULT_GRPC_ENDPOINT if proto == "grpc" else _DEFAULT_HTTP_ENDPOINT
        texts, base = [(text, "the default endpoint")], True
    urls = _normalize_endpoints(texts, protocol=proto, signal=signal, base=base, insecure=insecure)

    # headers
    if headers is None:
        found = env.otlp(signal, "HEADERS")
        headers = Headers() if found is None else Headers.parse(*found, on_invalid=env.on_invalid)
        if proto == "grpc" and found is not None:
            headers = _check_grpc_metadata(headers, found[1], env.on_invalid)
    elif proto == "grpc":
        _check_grpc_metadata(headers, "headers")

    # timeout
    default_seconds = _DEFAULT_TIMEOUT_MS / 1000
    if timeout is not None:
        seconds = _check_seconds(timeout, "timeout")
    elif (found := env.otlp(signal, "TIMEOUT")) is not None:
        seconds = env.parse(_parse_timeout_ms, found, default_seconds, f"{_DEFAULT_TIMEOUT_MS} ms")
    else:
        seconds = default_seconds

    # compression
    comp: Compression
    if compression is not None:
        comp = _check_compression(compression, "compression")
    elif (found := env.otlp(signal, "COMPRESSION")) is not None:
        comp = env.parse(_check_compression, found, "none", "no compression")
    else:
        comp = "none"

    # TLS files
    files: dict[str, tuple[str, str] | None] = {}
    for key, explicit, arg in (
        ("CERTIFICATE", certificate_file, "certificate_file"),
        ("CLIENT_KEY", client_key_file, "client_key_file"),
        ("CLIENT_CERTIFICATE", client_certificate_file, "client_certificate_file"),
    ):
        if explicit is not None:
            files[key] = (_check_file(explicit, arg), arg)
        elif (found := env.otlp(signal, key)) is not None:
            default_text = "the system's CAs" if key == "CERTIFICATE" else "no client certificate (no mTLS)"
            path = env.parse(_check_file, found, None, default_text)
            files[key] = None if path is None else (path, found[1])
        else:
            files[key] = None
    key_file, cert_file = files["CLIENT_KEY"], files["CLIENT_CERTIFICATE"]
    for lone, missing in ((key_file, "client certificate"), (cert_file, "client key")):
        if lone is None or (key_file is not None and cert_file is not None):
            continue
        other = "client_certificate_file" if missing == "client certificate" else "client_key_file"
        suffix = "CLIENT_CERTIFICATE" if missing == "client certificate" else "CLIENT_KEY"
        message = (
            f"{lone[1]} is set without a {missing} ({other} or "
            f"OTEL_EXPORTER_OTLP_[{signal.value.upper()}_]{suffix}): mTLS needs both"
        )
        if env.on_invalid == "raise" or not lone[1].startswith("OTEL_"):
            _fail(message)
        logger.warning("%s; using no client certificate (no mTLS)", message)
        key_file = cert_file = None

    if max_request_bytes is not None:
        max_bytes = _check_max_request_bytes(max_request_bytes, "max_request_bytes")
    else:
        max_bytes = DEFAULT_MAX_REQUEST_BYTES

    ca = files["CERTIFICATE"]
    return SignalConfig(
        signal=signal,
        protocol=proto,
        endpoint=urls[0],
        endpoints=urls,
        headers=headers,
        timeout=seconds,
        compression=comp,
        certificate_file=None if ca is None else ca[0],
        client_key_file=None if key_file is None else key_file[0],
        client_certificate_file=None if cert_file is None else cert_file[0],
        max_request_bytes=max_bytes,
    )


# -------------------------------------------------------------------------------- batching and metric reader


def _ms_setting(env: _Env, explicit: float | None, arg: str, var: str, default_ms: int) -> tuple[float, str]:
    if explicit is not None:
        return _check_seconds(explicit, arg), arg
    text = env.get(var)
    return (
        default_ms / 1000 if text is None else env.parse(_parse_ms, (text, var), default_ms / 1000, f"{default_ms} ms")
    ), var


def _count_setting(env: _Env, explicit: int | None, arg: str, var: str, default: int) -> tuple[int, str]:
    if explicit is not None:
        return _check_positive_int(explicit, arg), arg
    text = env.get(var)
    return (default if text is None else env.parse(_parse_count, (text, var), default, str(default))), var


@dataclass(frozen=True, slots=True, kw_only=True)
class BatchConfig:
    """Batch processor settings (seconds). The defaults are the span ones; see :meth:`from_env`."""

    schedule_delay: float = 5.0
    export_timeout: float = 30.0
    max_queue_size: int = 2048
    max_export_batch_size: int = 512

    def __post_init__(self) -> None:
        set_ = object.__setattr__
        set_(self, "schedule_delay", _check_seconds(self.schedule_delay, "schedule_delay"))
        set_(self, "export_timeout", _check_seconds(self.export_timeout, "export_timeout"))
        _check_positive_int(self.max_queue_size, "max_queue_size")
        _check_positive_int(self.max_export_batch_size, "max_export_batch_size")
        if self.max_export_batch_size > self.max_queue_size:
            _fail("max_export_batch_size must not be larger than max_queue_size")

    @classmethod
    def from_env(
        cls,
        kind: Literal["span", "log"],
        environ: Mapping[str, str] | None = None,
        *,
        schedule_delay: float | None = None,
        export_timeout: float | None = None,
        max_queue_size: int | None = None,
        max_export_batch_size: int | None = None,
        on_invalid: OnInvalid = "raise",
    ) -> BatchConfig:
        """Read ``OTEL_BSP_*`` for ``kind="span"`` (schedule delay 5000 ms), ``OTEL_BLRP_*`` for ``"log"``.

        ``OTEL_BLRP_SCHEDULE_DELAY`` defaults to 1000 ms. Explicit arguments (seconds, counts) win.
        ``on_invalid="warn"``: a variable that is not a positive integer is warned about and its default used
        (the official processors do so for a value that is not an integer); a batch size over the queue size is
        always refused, as officially.
        """
        if kind == "span":
            prefix, default_delay_ms = "OTEL_BSP_", 5000
        elif kind == "log":
            prefix, default_delay_ms = "OTEL_BLRP_", 1000
        else:
            _fail("kind: must be 'span' or 'log'")
        env = _Env(environ, on_invalid)
        delay, _ = _ms_setting(env, schedule_delay, "schedule_delay", prefix + "SCHEDULE_DELAY", default_delay_ms)
        timeout, _ = _ms_setting(env, export_timeout, "export_timeout", prefix + "EXPORT_TIMEOUT", 30_000)
        queue, queue_name = _count_setting(env, max_queue_size, "max_queue_size", prefix + "MAX_QUEUE_SIZE", 2048)
        batch, batch_name = _count_setting(
            env, max_export_batch_size, "max_export_batch_size", prefix + "MAX_EXPORT_BATCH_SIZE", 512
        )
        if batch > queue:
            _fail(f"{batch_name} ({batch}) must not be larger than {queue_name} ({queue})")
        return cls(schedule_delay=delay, export_timeout=timeout, max_queue_size=queue, max_export_batch_size=batch)


@dataclass(frozen=True, slots=True, kw_only=True)
class MetricReaderConfig:
    """Periodic metric reader settings (seconds) and the OTLP metric exporter's preferences (temporality and the
    default histogram aggregation)."""

    export_interval: float = 60.0
    export_timeout: float = 30.0
    temporality_preference: TemporalityPreference = "cumulative"
    default_histogram_aggregation: HistogramAggregation = "explicit_bucket_histogram"

    def __post_init__(self) -> None:
        set_ = object.__setattr__
        set_(self, "export_interval", _check_seconds(self.export_interval, "export_interval"))
        set_(self, "export_timeout", _check_seconds(self.export_timeout, "export_timeout"))
        set_(
            self,
            "temporality_preference",
            _check_temporality(self.temporality_preference, "temporality_preference"),
        )
        set_(
            self,
            "default_histogram_aggregation",
            _check_histogram_aggregation(self.default_histogram_aggregation, "default_histogram_aggregation"),
        )

    @classmethod
    def from_env(
        cls,
        environ: Mapping[str, str] | None = None,
        *,
        export_interval: float | None = None,
        export_timeout: float | None = None,
        temporality_preference: TemporalityPreference | None = None,
        default_histogram_aggregation: HistogramAggregation | None = None,
    ) -> MetricReaderConfig:
        """``OTEL_METRIC_EXPORT_INTERVAL`` (60000 ms), ``OTEL_METRIC_EXPORT_TIMEOUT`` (30000 ms) and the
        preferences of :func:`metric_preferences_from_env`; explicit arguments win."""
        env = _Env(environ)
        interval, _ = _ms_setting(env, export_interval, "export_interval", "OTEL_METRIC_EXPORT_INTERVAL", 60_000)
        timeout, _ = _ms_setting(env, export_timeout, "export_timeout", "OTEL_METRIC_EXPORT_TIMEOUT", 30_000)
        temporality, aggregation = metric_preferences_from_env(
            environ,
            temporality_preference=temporality_preference,
            default_histogram_aggregation=default_histogram_aggregation,
        )
        return cls(
            export_interval=interval,
            export_timeout=timeout,
            temporality_preference=temporality,
            default_histogram_aggregation=aggregation,
        )


def metric_preferences_from_env(
    environ: Mapping[str, str] | None = None,
    *,
    temporality_preference: TemporalityPreference | None = None,
    default_histogram_aggregation: HistogramAggregation | None = None,
    on_invalid: OnInvalid = "raise",
) -> tuple[TemporalityPreference, HistogramAggregation]:
    """What an OTLP metric exporter reads, and only that: ``OTEL_EXPORTER_OTLP_METRICS_TEMPORALITY_PREFERENCE``
    (``cumulative``, ``delta`` or ``lowmemory``; default ``cumulative``) and
    ``OTEL_EXPORTER_OTLP_METRICS_DEFAULT_HISTOGRAM_AGGREGATION`` (``explicit_bucket_histogram``, the default, or
    ``base2_exponential_bucket_histogram``), any case; explicit arguments win. ``on_invalid="warn"``: an unknown
    value is warned about and the default used, as the official exporters do."""
    env = _Env(environ, on_invalid)
    temporality: TemporalityPreference = "cumulative"
    if temporality_preference is not None:
        temporality = _check_temporality(temporality_preference, "temporality_preference")
    elif (text := env.get(var := "OTEL_EXPORTER_OTLP_METRICS_TEMPORALITY_PREFERENCE")) is not None:
        temporality = env.parse(_check_temporality, (text, var), "cumulative", "cumulative")
    aggregation: HistogramAggregation = "explicit_bucket_histogram"
    if default_histogram_aggregation is not None:
        aggregation = _check_histogram_aggregation(default_histogram_aggregation, "default_histogram_aggregation")
    elif (text := env.get(var := "OTEL_EXPORTER_OTLP_METRICS_DEFAULT_HISTOGRAM_AGGREGATION")) is not None:
        aggregation = env.parse(
            _check_histogram_aggregation, (text, var), "explicit_bucket_histogram", "explicit_bucket_histogram"
        )
    return temporality, aggregation


# ------------------------------------------------------------------------------------------ the disk queue


def queue_dir_from_env(
    environ: Mapping[str, str] | None = None, *, queue_dir: str | os.PathLike[str] | None = None
) -> str | None:
    """The directory of the crash-safe disk queue (:mod:`aiotlp.durable`), or ``None`` when it is off.

    ``queue_dir`` (an argument) wins over ``AIOTLP_QUEUE_DIR``; an empty or all-whitespace variable is unset.
    The path is returned as given (relative paths are relative to the working directory when the queue opens);
    one with a NUL character is refused.
    """
    if queue_dir is not None:
        name = "queue_dir"
        value = os.fspath(queue_dir) if isinstance(queue_dir, os.PathLike) else queue_dir
    else:
        name = "AIOTLP_QUEUE_DIR"
        found = _Env(environ).get(name)
        if found is None:
            return None
        value = found
    if not isinstance(value, str) or not value.strip():
        _fail(f"{name}: must be a non-empty directory path")
    if "\0" in value:
        _fail(f"{name}: must not contain a NUL character")
    return value


def sdk_internal_metrics_from_env(environ: Mapping[str, str] | None = None) -> bool:
    """Whether ``OTEL_PYTHON_SDK_INTERNAL_METRICS_ENABLED`` turns the SDK's self-metrics on: ``true`` in any case,
    as the OpenTelemetry Python SDK reads it (its processors and exporters; :mod:`aiotlp.sdk`'s exporters too)."""
    return (_Env(environ).get("OTEL_PYTHON_SDK_INTERNAL_METRICS_ENABLED") or "").lower() == "true"


def endpoint_from_env(signal: Signal | str = Signal.TRACES, environ: Mapping[str, str] | None = None) -> str | None:
    """The endpoint the environment sets for ``signal`` (``OTEL_EXPORTER_OTLP_<SIGNAL>_ENDPOINT``, else
    ``OTEL_EXPORTER_OTLP_ENDPOINT``), unvalidated, or None when neither is set (or both are blank).

    For tools that choose a destination themselves when none is configured (``aiotlp demo``).
    """
    env = os.environ if environ is None else environ
    name = Signal(signal).value.upper()
    for variable in (f"OTEL_EXPORTER_OTLP_{name}_ENDPOINT", "OTEL_EXPORTER_OTLP_ENDPOINT"):
        value = env.get(variable, "").strip()
        if value:
            return value
    return None


def variable_source(*names: str, environ: Mapping[str, str] | None = None) -> str | None:
    """The first of ``names`` that is set (an empty or all-whitespace variable is unset, as everywhere here), or
    None. For tools that say where a value came from (``aiotlp check``): pass the names in precedence order."""
    env = _Env(environ)
    return next((name for name in names if env.get(name) is not None), None)
