"""The environment as the readers see it (empty is unset, values stripped) and the small readers of single
settings: metric preferences, the disk queue directory, an endpoint as set, where a value came from."""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping

from .._exceptions import ConfigurationError
from ..model import Signal
from ._values import (
    _T,
    HistogramAggregation,
    OnInvalid,
    TemporalityPreference,
    _check_histogram_aggregation,
    _check_temporality,
    _fail,
    logger,
)


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
