"""BatchConfig (the batch processors' settings) and MetricReaderConfig (the periodic metric reader's)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

from ._env import _Env, metric_preferences_from_env
from ._values import (
    HistogramAggregation,
    OnInvalid,
    TemporalityPreference,
    _check_histogram_aggregation,
    _check_positive_int,
    _check_seconds,
    _check_temporality,
    _fail,
    _parse_count,
    _parse_ms,
)


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
