"""The documentation builds with `mkdocs build --strict` (broken links, bad nav, missing pages fail it)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import yaml
from tests.docs._blocks import ROOT


def test_mkdocs_build_strict(tmp_path: Path) -> None:
    site = tmp_path / "site"
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "mkdocs",
            "build",
            "--strict",
            "--config-file",
            str(ROOT / "mkdocs.yml"),
            "-d",
            str(site),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        env={**os.environ, "NO_MKDOCS_2_WARNING": "1"},
    )
    assert done.returncode == 0, done.stdout + done.stderr
    pages = ("index.html", "quickstart/index.html", "configuration/index.html", "delivery/index.html")
    for page in (*pages, "troubleshooting/index.html"):
        assert (site / page).is_file(), page
    assert "OTEL_EXPORTER_OTLP_HEADERS" in (site / "configuration" / "index.html").read_text(encoding="utf-8")


def test_the_navigation_has_every_guide_page() -> None:
    """The pages a new user needs are in the navigation (pages written by tools may live outside it)."""
    config = yaml.safe_load((ROOT / "mkdocs.yml").read_text(encoding="utf-8"))
    in_nav = {next(iter(entry.values())) for entry in config["nav"]}
    guide = {
        "index.md",
        "quickstart.md",
        "cli.md",
        "api.md",
        "sdk.md",
        "configuration.md",
        "delivery.md",
        "troubleshooting.md",
    }
    assert guide | {"migration.md", "benchmarks.md"} <= in_nav
