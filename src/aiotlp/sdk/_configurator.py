"""Auto-configuration on aiotlp's tracer provider: ``OTEL_PYTHON_CONFIGURATOR=aiotlp opentelemetry-instrument ...``.

``opentelemetry-instrument`` (``opentelemetry.instrumentation.auto_instrumentation``) loads, in this order: one
*distro* (group ``opentelemetry_distro``: the one named by ``OTEL_PYTHON_DISTRO``, else the first installed),
whose ``configure`` may set default variables (``opentelemetry-distro`` sets ``OTEL_*_EXPORTER=otlp`` and
``OTEL_EXPORTER_OTLP_PROTOCOL=grpc`` when unset); then one *configurator* (group ``opentelemetry_configurator``:
the one named by ``OTEL_PYTHON_CONFIGURATOR``, else the first installed, the others skipped with a logged
warning); then the instrumentations. The SDK's configurator (``opentelemetry-distro``'s ``configurator`` entry
point) builds ``opentelemetry.sdk.trace.TracerProvider`` itself and sets it as the global provider, so the
API's ``OTEL_PYTHON_TRACER_PROVIDER`` is not consulted there.

aiotlp registers :class:`Configurator` as ``aiotlp`` in that group. Named by ``OTEL_PYTHON_CONFIGURATOR=aiotlp``,
it configures everything exactly as the SDK's configurator (the same function, the same variables: resource,
sampler, id generator, exporters of ``OTEL_*_EXPORTER``, metrics, logs and the logging handler), except that the
tracer provider is :class:`aiotlp.sdk.TracerProvider`, and that an aiotlp span exporter (``OTEL_TRACES_EXPORTER=
aiotlp``, ``aiotlp_proto_grpc``, ``aiotlp_proto_http``) is put behind :class:`aiotlp.sdk.BatchSpanProcessor`
(spans encoded from the provider's native state) instead of the SDK's ``BatchSpanProcessor``; other exporters
(``otlp``, ``console``) get the SDK's, as there.

Installing aiotlp must not change what an unconfigured ``opentelemetry-instrument`` does. When the variable does
not name it, this configurator can still be loaded, as the first one installed; it then hands over to the
configurator that would have been loaded without it (the next one in the group, usually
``opentelemetry-distro``'s), or does nothing when there is none.

The same functions apply to a configurator of one's own: ``configure(**kwargs)`` takes the SDK configurator's
keyword arguments (``_initialize_components``'s).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from opentelemetry.sdk import _configuration as sdk_configuration
from opentelemetry.sdk.trace import SpanProcessor
from opentelemetry.sdk.trace.export import BatchSpanProcessor as SdkBatchSpanProcessor
from opentelemetry.sdk.trace.export import SpanExporter as SdkSpanExporter
from opentelemetry.trace import set_tracer_provider
from opentelemetry.util._importlib_metadata import entry_points

from aiotlp._exceptions import ConfigurationError

__all__ = ["NAME", "Configurator", "configure"]

NAME = "aiotlp"
"""This configurator's entry point name, the value of ``OTEL_PYTHON_CONFIGURATOR`` that selects it."""

_logger = logging.getLogger(__name__)


def _provider_class() -> Any:
    from aiotlp.sdk import TracerProvider  # imported when it is made: handing over never imports it

    return TracerProvider


def _export_processor(exporter: SdkSpanExporter) -> SpanProcessor:
    from ._exporters import SpanExporter
    from ._processors import BatchSpanProcessor

    if isinstance(exporter, SpanExporter):
        return BatchSpanProcessor(exporter)
    return SdkBatchSpanProcessor(exporter)


def _init_tracing(
    exporters: dict[str, type[SdkSpanExporter]],
    id_generator: Any = None,
    sampler: Any = None,
    resource: Any = None,
    exporter_args_map: dict[Any, dict[str, Any]] | None = None,
    span_processors: Sequence[SpanProcessor] | None = None,
    export_span_processor: Callable[..., SpanProcessor] | None = None,
    tracer_configurator: Any = None,
) -> None:
    """``opentelemetry.sdk._configuration._init_tracing``'s work, with aiotlp's provider."""
    if tracer_configurator is not None:
        raise ConfigurationError(
            "OTEL_PYTHON_TRACER_CONFIGURATOR is set, and aiotlp's tracer provider (OTEL_PYTHON_CONFIGURATOR=aiotlp) "
            "does not support tracer configurators: unset it, or use the SDK's configurator"
        )
    provider = _provider_class()(id_generator=id_generator, sampler=sampler, resource=resource)
    set_tracer_provider(provider)
    arguments = exporter_args_map or {}
    for span_processor in span_processors or ():
        provider.add_span_processor(span_processor)
    for exporter_class in exporters.values():
        exporter = exporter_class(**arguments.get(exporter_class, {}))
        provider.add_span_processor(
            export_span_processor(exporter) if export_span_processor is not None else _export_processor(exporter)
        )


@contextmanager
def _with_aiotlp_tracing() -> Iterator[None]:
    """The SDK's ``_initialize_components`` with its tracing step replaced by :func:`_init_tracing` (a module
    attribute it looks up when it runs; put back afterwards)."""
    original = sdk_configuration._init_tracing
    setattr(sdk_configuration, "_init_tracing", _init_tracing)  # noqa: B010 - a module attribute of another type
    try:
        yield
    finally:
        setattr(sdk_configuration, "_init_tracing", original)  # noqa: B010


def configure(**kwargs: Any) -> None:
    """Configure the SDK from the environment as its own configurator does, on aiotlp's tracer provider."""
    if os.environ.get("OTEL_CONFIG_FILE"):
        raise ConfigurationError(
            "OTEL_CONFIG_FILE is set: a declarative configuration file builds the SDK's own tracer provider, "
            "which OTEL_PYTHON_CONFIGURATOR=aiotlp would replace; unset one of them"
        )
    with _with_aiotlp_tracing():
        sdk_configuration._initialize_components(**kwargs)


def _hand_over(kwargs: dict[str, Any]) -> None:
    """Run the configurator that would have been loaded without aiotlp installed, if there is one."""
    for entry_point in entry_points(group="opentelemetry_configurator"):
        if entry_point.name != NAME:
            _logger.debug("%s is not %s: configuring with %s", "OTEL_PYTHON_CONFIGURATOR", NAME, entry_point.name)
            entry_point.load()().configure(**kwargs)
            return


class Configurator(sdk_configuration._BaseConfigurator):
    """The ``aiotlp`` entry point of ``opentelemetry_configurator`` (see the module docstring)."""

    def _configure(self, **kwargs: Any) -> None:
        if os.environ.get("OTEL_PYTHON_CONFIGURATOR") == NAME:  # compared as opentelemetry-instrument does
            configure(**kwargs)
        else:
            _hand_over(kwargs)
