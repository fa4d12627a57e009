"""The command reads OTEL_* variables: tests that run it in this process start from none of them."""

from __future__ import annotations

import os

import pytest


@pytest.fixture(autouse=True)
def _no_otel_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.startswith("OTEL_"):
            monkeypatch.delenv(name)
