"""The OpenTelemetry Collector binary for the interoperability tests.

``./scripts/test`` builds it (``scripts/build-otelcol``) and exports ``AIOTLP_OTELCOL``. When pytest runs without
it, the build script is called here, once, at collection (a cached binary costs a few milliseconds; a first
build a few minutes, outside any test's timeout). Without the Go toolchain the Collector tests skip with the
script's one-line reason.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

BUILD_SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "build-otelcol"
_NO_GO = 3  # the build script's exit status when go is not on PATH

otelcol_missing: str | None = None


def pytest_configure(config: pytest.Config) -> None:
    global otelcol_missing
    if os.environ.get("AIOTLP_OTELCOL"):
        return
    built = subprocess.run([BUILD_SCRIPT], capture_output=True, text=True, check=False)
    if built.returncode == 0:
        os.environ["AIOTLP_OTELCOL"] = built.stdout.strip().splitlines()[-1]
    elif built.returncode == _NO_GO:
        otelcol_missing = built.stderr.strip().splitlines()[-1]
    else:
        raise pytest.UsageError(f"scripts/build-otelcol failed:\n{built.stderr}")


@pytest.fixture(scope="session")
def otelcol_binary() -> str:
    """The Collector binary (skips the test, with the reason, when Go is missing)."""
    if otelcol_missing is not None:
        pytest.skip(otelcol_missing)
    return os.environ["AIOTLP_OTELCOL"]
