"""The one place that chooses between the compiled encoder accelerator and the pure-Python encoder.

``aiotlp.encoding._speedups`` is an optional C extension, built by the package's own build when a C compiler is
present (``setup.py``), holding the compiled twins of the protobuf encoder's hot paths: attributes and
``AnyValue`` (``_protobuf._write_attributes`` / ``_write_any``), aiotlp's model spans (``_protobuf._write_spans``)
and OpenTelemetry SDK spans (``sdk._encode_spans._write_spans``, one span's field ``_span_field``, and ``on_end``'s
hot path ``sdk._encode_source._span_item``: the sampled check, the group key and the encode in one call; its put's
twin is ``aiotlp.processing.put_sized``, switched with these in ``sdk._processors``), and SDK log records
(``sdk._encode_logs._write_log_records``, and ``_log_field`` for one record encoded at the source; registered
there like the others). Each twin writes exactly the bytes of the function it replaces; the test suite runs every
encoding test against both implementations.

The choice, made once at import:

- ``AIOTLP_NO_EXTENSIONS`` set to anything but ``""`` or ``"0"``: pure Python, even when the extension is
  built (the kill switch; the documented exception to "environment variables are read only in
  ``aiotlp.config``": it must act before any encoder is imported, and it is about the code, not the exporter's
  configuration);
- otherwise the extension when it imports, else pure Python (no compiler at install time, or an interpreter
  the build does not support).

The same switch holds the one for *encoding at the source* (:class:`aiotlp.sdk._encode_source.SourceEncoder`): the SDK
batch processors encode each span / log record in the thread that ends it and queue bytes. It is on by default;
``AIOTLP_NO_ENCODE_AT_SOURCE`` set to anything but ``""`` or ``"0"`` turns it off (:data:`ENCODE_AT_SOURCE`):
the processors then queue the SDK objects and encode each batch at export, as before (a safety switch: both
paths send the same bytes). A processor's ``encode_at_source=`` argument wins over it.

How the twins are wired: each encoding module defines its pure functions, then calls :func:`accelerate` with
its module namespace and the compiled twins. :func:`accelerate` records (namespace, name, pure, compiled) and
binds the name to the chosen one; the hot loops look these names up per call (they bind them to locals at
the top of each function, once per batch), so rebinding a name switches every caller. :func:`use` rebinds
them all, in every module: the tests run each case against both implementations with it, and the benchmarks
time both side by side in one process. It is not for production code (the choice is not thread-safe while
encoders run).

The same choice gives :data:`SpanCore` (issue 16: a live span's state, for ``aiotlp.sdk.TracerProvider``): the
extension's ``SpanCore`` when the extension is used and has one, else the pure-Python twin
(:class:`aiotlp.encoding._spancore.SpanCore`). It is a class that the SDK layer subclasses once, at import, so
:func:`use` does not switch it; :data:`SPAN_CORES` lists every implementation available (for the tests).
"""

from __future__ import annotations

import os
from collections.abc import Callable, MutableMapping
from types import ModuleType
from typing import TYPE_CHECKING, Any, Final, Literal

if TYPE_CHECKING:
    from ._spancore import SpanCore

__all__ = [
    "ENCODE_AT_SOURCE",
    "IMPLEMENTATIONS",
    "NO_EXTENSIONS",
    "SPAN_CORES",
    "Implementation",
    "SpanCore",
    "accelerate",
    "implementation",
    "set_span_warning_hook",
    "speedups",
    "use",
]

Implementation = Literal["python", "c"]
IMPLEMENTATIONS: Final[tuple[Implementation, ...]] = ("python", "c")

NO_EXTENSIONS: Final = os.environ.get("AIOTLP_NO_EXTENSIONS", "") not in ("", "0")
"""The kill switch is set: the compiled accelerator is never used."""

ENCODE_AT_SOURCE: Final = os.environ.get("AIOTLP_NO_ENCODE_AT_SOURCE", "") in ("", "0")
"""The SDK batch processors encode each item where it ends (unless ``AIOTLP_NO_ENCODE_AT_SOURCE`` is set)."""

speedups: ModuleType | None
"""The compiled accelerator module, or ``None`` (not built, not importable, or switched off)."""
if NO_EXTENSIONS:
    speedups = None
else:
    try:
        from . import _speedups
    except ImportError:  # not built (no compiler at install time), or built for another interpreter
        speedups = None
    else:
        speedups = _speedups

SPAN_CORES: dict[Implementation, type[SpanCore]]
"""Every available SpanCore implementation: ``"python"``, and ``"c"`` when the extension is used and has one."""

_active: Implementation = "c" if speedups is not None else "python"
_bindings: list[tuple[MutableMapping[str, Any], str, object, object]] = []
_pure_of: dict[int, object] = {}  # id(compiled twin) -> its pure function; both stay referenced by _bindings


def accelerate(namespace: MutableMapping[str, Any], **compiled: object) -> None:
    """Register compiled twins of functions in ``namespace`` (a module's ``globals()``) and bind the chosen ones.

    ``namespace[name]`` must hold the pure function, or a compiled twin already registered by another module
    (a module that imported the name from the module that registered it first).
    """
    for name, fast in compiled.items():
        current = namespace[name]
        pure = _pure_of.get(id(current), current)
        _pure_of[id(fast)] = pure
        _bindings.append((namespace, name, pure, fast))
        namespace[name] = fast if _active == "c" else pure


def use(choice: Implementation) -> None:
    """Bind every registered name to the pure functions (``"python"``) or their compiled twins (``"c"``).

    For tests and benchmarks: raises ``RuntimeError`` for ``"c"`` when the accelerator is not available.
    """
    global _active
    if choice not in IMPLEMENTATIONS:
        raise ValueError(f"implementation must be one of {IMPLEMENTATIONS}, got {choice!r}")
    if choice == "c" and speedups is None:
        reason = "AIOTLP_NO_EXTENSIONS is set" if NO_EXTENSIONS else "aiotlp.encoding._speedups is not built"
        raise RuntimeError(f"the compiled accelerator is not available: {reason}")
    _active = choice
    for namespace, name, pure, fast in _bindings:
        namespace[name] = fast if choice == "c" else pure


def implementation() -> Implementation:
    """Which implementation the encoders use now: ``"c"`` (the compiled accelerator) or ``"python"``."""
    return _active


def set_span_warning_hook(hook: Callable[[str], None] | None) -> None:
    """Where every SpanCore implementation reports its warnings (an invalid attribute, a change to an ended
    span): ``hook(text)``, or nowhere with ``None``."""
    from . import _spancore

    _spancore.set_warning_hook(hook)
    compiled = getattr(speedups, "set_warning_hook", None)
    if compiled is not None:
        compiled(hook)


def __getattr__(name: str) -> Any:
    """``SpanCore`` and ``SPAN_CORES``, resolved on first use: ``_spancore`` imports ``_protobuf``, which imports
    this module."""
    if name not in ("SpanCore", "SPAN_CORES"):
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    from . import _spancore

    cores: dict[Implementation, type[SpanCore]] = {"python": _spancore.SpanCore}
    compiled = getattr(speedups, "SpanCore", None)
    if compiled is not None:
        cores["c"] = compiled
    globals()["SPAN_CORES"] = cores
    globals()["SpanCore"] = cores.get("c", cores["python"])
    return globals()[name]
