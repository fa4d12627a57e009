"""The one place that chooses the zstd binding.

zstd is aiotlp's extension of the specification's ``gzip``/``none`` (the OpenTelemetry Collector's receivers
decode it over HTTP and gRPC). Python has no zstd before 3.14, so the binding is chosen once, on first use:

- the standard library's ``compression.zstd`` (Python 3.14+, PEP 784), when it imports (a CPython built
  without libzstd has the package but not ``_zstd``);
- else the ``zstandard`` package (PyPI, python-zstandard), which ``aiotlp[zstd]`` installs;
- else :func:`binding` raises :class:`~aiotlp.MissingExtraError` naming ``aiotlp[zstd]``; the transports call it
  in their constructors when ``compression="zstd"``, so a missing extra is one line at construction.

Both are driven through :class:`Zstd`: ``compress(data)`` (one frame, level 3, zstd's default, with the content
size in its header) and ``decompress(data, limit)``, which decodes every frame of ``data`` and stops as soon as
the output passes ``limit`` bytes (a zstd bomb never decompresses in memory). Decoders accept windows up to
8 MiB, the most RFC 9659 lets an HTTP ``zstd`` encoder use; a larger window is invalid data, not memory spent.
:func:`load` builds a named binding (the tests run every zstd test against each one installed, including
``backports.zstd``, the standard library's API for older Pythons, which drives the standard library's code path).
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass
from types import ModuleType
from typing import Any, Final

from .._exceptions import MissingExtraError

__all__ = ["BINDINGS", "Zstd", "ZstdDataError", "available", "binding", "load"]

LEVEL: Final = 3
"""zstd's own default level (gzip's default, 6, costs about as much CPU as zstd level 3 and compresses less)."""

WINDOW_LOG_MAX: Final = 23
"""Decoders refuse frames whose window is over 8 MiB (RFC 9659's limit for HTTP ``Content-Encoding: zstd``)."""

_SLICE: Final = 256
"""python-zstandard's streaming decoder has no output bound per call: it is fed this many bytes at a time, so one
call makes at most ~8 MiB (a 3-byte block header can stand for a 128 KiB block)."""

BINDINGS: Final = ("compression.zstd", "zstandard")
"""The bindings :func:`binding` tries, in order."""


class ZstdDataError(ValueError):
    """Not a valid zstd stream: a bad frame, a truncated one, trailing bytes, or a window over 8 MiB."""


@dataclass(frozen=True)
class Zstd:
    """A zstd binding: which module, and the two functions aiotlp needs from it."""

    name: str
    compress: Callable[[bytes], bytes]
    decompress: Callable[[bytes, int], bytes]
    """``decompress(data, limit)``: every frame of ``data``; returns early (longer than ``limit``) once the output
    passes ``limit``; raises :class:`ZstdDataError` for invalid data."""


def _stdlib(module: ModuleType) -> Zstd:
    """``compression.zstd`` (or ``backports.zstd``, the same API)."""
    options = {module.DecompressionParameter.window_log_max: WINDOW_LOG_MAX}
    error: type[Exception] = module.ZstdError
    decompressor = module.ZstdDecompressor

    def compress(data: bytes) -> bytes:
        result: bytes = module.compress(data, LEVEL)
        return result

    def decompress(data: bytes, limit: int) -> bytes:
        out = bytearray()
        while data:
            frame = decompressor(options=options)
            try:
                out += frame.decompress(data, limit + 1 - len(out))
                while len(out) <= limit and not frame.eof and not frame.needs_input:
                    out += frame.decompress(b"", limit + 1 - len(out))
            except error as exc:
                raise ZstdDataError(str(exc)) from None
            if len(out) > limit:
                break
            if not frame.eof:
                raise ZstdDataError("truncated zstd frame")
            data = frame.unused_data
        return bytes(out)

    return Zstd(module.__name__, compress, decompress)


def _zstandard(module: ModuleType) -> Zstd:
    """python-zstandard (``aiotlp[zstd]``)."""
    compressor = module.ZstdCompressor(level=LEVEL)
    error: type[Exception] = module.ZstdError
    max_window = 1 << WINDOW_LOG_MAX

    def compress(data: bytes) -> bytes:
        # ZstdCompressor.compress is thread-safe (it resets its context per call), unlike its streaming API
        result: bytes = compressor.compress(data)
        return result

    def decompress(data: bytes, limit: int) -> bytes:
        parts: list[bytes] = []
        size = 0
        frame: Any = None  # None: between frames (nothing fed to a decoder yet)
        position = 0
        try:
            while position < len(data):
                if frame is None:
                    frame = module.ZstdDecompressor(max_window_size=max_window).decompressobj()
                piece = data[position : position + _SLICE]
                position += len(piece)
                chunk: bytes = frame.decompress(piece)
                if chunk:
                    parts.append(chunk)
                    size += len(chunk)
                    if size > limit:
                        break
                if frame.eof:
                    rest: bytes = frame.unused_data
                    if rest:
                        data = rest + data[position:]
                        position = 0
                    frame = None
        except error as exc:
            raise ZstdDataError(str(exc)) from None
        if size <= limit and frame is not None:
            raise ZstdDataError("truncated zstd frame")
        return b"".join(parts)

    return Zstd(module.__name__, compress, decompress)


_ADAPTERS: Final[dict[str, Callable[[ModuleType], Zstd]]] = {
    "compression.zstd": _stdlib,
    "backports.zstd": _stdlib,
    "zstandard": _zstandard,
}


def load(name: str) -> Zstd:
    """The binding ``name`` (one of :data:`BINDINGS`, or ``"backports.zstd"``); raises ``ImportError`` if it does
    not import."""
    adapter = _ADAPTERS[name]
    return adapter(importlib.import_module(name))


_chosen: Zstd | None = None
_missing = False


def binding() -> Zstd:
    """The zstd binding (chosen on the first call, then the same); :class:`~aiotlp.MissingExtraError` if none."""
    global _chosen, _missing
    if _chosen is None:
        if not _missing:
            for name in BINDINGS:
                try:
                    _chosen = load(name)
                except ImportError:
                    continue
                return _chosen
            _missing = True
        raise MissingExtraError("zstd", "zstandard (for compression 'zstd')")
    return _chosen


def available() -> bool:
    """A zstd binding imports (so responses in zstd can be decoded, and may be asked for)."""
    try:
        binding()
    except MissingExtraError:
        return False
    return True
