"""Build of aiotlp's optional C accelerator; everything else about the package is in pyproject.toml.

``aiotlp.encoding._speedups`` is the compiled twin of the protobuf encoder's hot paths. It is optional: when
there is no C compiler (or no Python headers), or the build fails for any other reason, the build prints one
warning line and goes on, and aiotlp runs on its pure-Python encoder (same bytes, slower). Set
``AIOTLP_NO_EXTENSIONS=1`` while building to skip the extension on purpose; at run time the same variable makes
``aiotlp.encoding._compat`` ignore an extension that was built.

``aiotlp.transport._holdgil`` (Linux) is the second optional extension: non-blocking socket calls that keep the
GIL, used by the SDK bridge's event loop (``aiotlp.transport._keepgil``); without it that loop is asyncio's own.

``aiotlp.transport._lane`` and ``_lane_h2`` (Linux) send requests on native threads; with zlib's header and library
there (``zlib1g-dev``), they compress bodies too (gzip, deflate).

``aiotlp.processing._putfast`` is the third: ``BoundedQueue.put_sized``'s plain case in one C call, for the SDK
batch span processor's ``on_end`` (chosen in ``aiotlp.processing`` as ``put_sized``); without it, the Python method.
"""

from __future__ import annotations

import os
import sys

from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext

_SKIP = os.environ.get("AIOTLP_NO_EXTENSIONS", "") not in ("", "0")


def _zlib() -> dict[str, list[object]]:
    """What a native lane needs to compress bodies in its own threads (zlib's header and library); without them the
    lanes take uncompressed bodies only (an exporter that compresses then sends through its own stack)."""
    for include in ("/usr/include", "/usr/local/include"):
        if os.path.exists(os.path.join(include, "zlib.h")):
            return {"define_macros": [("AIOTLP_LANE_ZLIB", "1")], "libraries": ["z"]}
    return {}


def _warn(reason: object) -> None:
    print(
        f"WARNING: aiotlp's optional C accelerator was not built ({reason}); the pure-Python encoder will be used",
        file=sys.stderr,
    )


class OptionalBuildExt(build_ext):
    """``build_ext`` that never fails the install: a failed extension build is one warning line."""

    def run(self) -> None:
        try:
            super().run()
        except Exception as exc:  # no compiler, no headers, a platform distutils cannot build on, ...
            _warn(exc)

    def build_extension(self, ext: Extension) -> None:
        try:
            super().build_extension(ext)
        except Exception as exc:
            _warn(exc)


_EXTENSIONS = [
    Extension("aiotlp.encoding._speedups", ["src/aiotlp/encoding/_speedups.c"], optional=True),
    # Linux only (epoll): non-blocking socket calls that keep the GIL, for the SDK bridge's loop
    *(
        [
            Extension("aiotlp.transport._holdgil", ["src/aiotlp/transport/_holdgil.c"], optional=True),
            # native threads that send OTLP/HTTP requests without the GIL (aiotlp.transport.lane)
            Extension(
                "aiotlp.transport._lane",
                ["src/aiotlp/transport/_lane.c"],
                depends=["src/aiotlp/transport/_lane_common.h"],
                optional=True,
                **_zlib(),  # type: ignore[arg-type]
            ),
            # the same for OTLP/gRPC over cleartext HTTP/2 (aiotlp.transport._lanes_grpc)
            Extension(
                "aiotlp.transport._lane_h2",
                ["src/aiotlp/transport/_lane_h2.c"],
                depends=["src/aiotlp/transport/_lane_common.h"],
                optional=True,
                **_zlib(),  # type: ignore[arg-type]
            ),
        ]
        if sys.platform.startswith("linux")
        else []
    ),
    # the compiled twin of BoundedQueue.put_sized's plain case, for the SDK's on_end (aiotlp.processing.put_sized)
    Extension("aiotlp.processing._putfast", ["src/aiotlp/processing/_putfast.c"], optional=True),
]

setup(
    ext_modules=[] if _SKIP else _EXTENSIONS,
    cmdclass={"build_ext": OptionalBuildExt},
)
