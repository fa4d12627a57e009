"""The value types of the configuration, its constants, and the checks and parsers of single values: every
error names the argument or variable, never a secret (see :mod:`aiotlp.config`)."""

from __future__ import annotations

import logging
import math
import os
import re
import stat
from typing import Final, Literal, NoReturn, TypeVar, get_args

from .._exceptions import ConfigurationError
from .._validate import is_int, is_number

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
_MAX_REQUEST_BYTES: Final = 64 * 1024 * 1024

_DEFAULT_TIMEOUT_MS: Final = 10_000
_DEFAULT_GRPC_ENDPOINT: Final = "http://localhost:4317"
_DEFAULT_HTTP_ENDPOINT: Final = "http://localhost:4318"
_DEFAULT_PROTOCOL: Final[OtlpProtocol] = "http/protobuf"
_ENDPOINTS_VAR: Final = "AIOTLP_EXPORTER_OTLP_ENDPOINTS"

# An integer as written in an environment variable: ASCII digits only (no sign, "_", "1.5", non-ASCII digits).
_INT_RE: Final = re.compile(r"[0-9]{1,18}")
# "scheme:" at the start of an endpoint. "host:4317" is not a scheme (a digit follows the colon).
_SCHEME_RE: Final = re.compile(r"([A-Za-z][A-Za-z0-9+.\-]*):(?![0-9])")
_HOST_RE: Final = re.compile(r"[A-Za-z0-9._\-]+")
_PORT_RE: Final = re.compile(r"[0-9]{1,5}")
_DEFAULT_PORTS: Final = {"http": 80, "https": 443}
_T = TypeVar("_T")
# An exporter timeout under this many milliseconds was probably meant in seconds (the official Python exporters'
# unit): warned about once per variable per process.
_SECONDS_LIKE_MS: Final = 100
_unit_warned: set[str] = set()


def _fail(message: str) -> NoReturn:
    # "from None": what was being parsed when it failed (an OSError naming a pasted key, a ValueError quoting a
    # host) must not ride along as the context of a traceback
    raise ConfigurationError(message) from None


# ------------------------------------------------------------------------------------------- value checkers


def _check_seconds(value: object, name: str) -> float:
    if not is_number(value):
        _fail(f"{name}: must be a number of seconds, got {type(value).__name__}")
    try:
        seconds = float(value)
    except OverflowError:
        seconds = math.inf
    if not (math.isfinite(seconds) and seconds > 0):
        _fail(f"{name}: must be a positive, finite number of seconds")
    return seconds


def _check_positive_int(value: object, name: str) -> int:
    if not is_int(value):
        _fail(f"{name}: must be an int, got {type(value).__name__}")
    if value <= 0:
        _fail(f"{name}: must be a positive integer")
    return value


def _check_max_request_bytes(value: object, name: str) -> int:
    if not is_int(value):
        _fail(f"{name}: must be an int, got {type(value).__name__}")
    if not _MIN_REQUEST_BYTES <= value <= _MAX_REQUEST_BYTES:
        _fail(f"{name}: must be between {_MIN_REQUEST_BYTES} (1 KiB) and {_MAX_REQUEST_BYTES} (64 MiB) bytes")
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
