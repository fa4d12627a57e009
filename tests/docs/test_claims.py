"""What the documentation says is said one way, and no more than is true: the extras examples need, one figure for
the on_end cost and one length for the demo, the exit flush's limits, the project files a user looks for.

Private, on purpose: the command's parser (``aiotlp.cli._parser``) gives the demo's default duration, read as
``aiotlp demo`` parses its arguments.
"""

from __future__ import annotations

import re

from tests.docs._blocks import PAGES, ROOT, blocks

from aiotlp.cli import _parser


def text(page: str) -> str:
    return (ROOT / page).read_text(encoding="utf-8")


def test_examples_that_need_the_testing_extra_say_so() -> None:
    for block in blocks():
        if "aiotlp.testing" not in block.code:
            continue
        page = block.page.read_text(encoding="utf-8")
        start = page.index(block.code)
        before = page[:start].rsplit("```", 1)[0][-900:]  # the prose since the previous block (or 900 characters)
        assert "aiotlp[testing]" in before, f"{block.id}: say that the example needs aiotlp[testing]"


def test_the_on_end_cost_is_stated_one_way() -> None:
    figures = []
    for page in PAGES:
        if page.name == "benchmarks.md":  # measurements of experiments, with their dates and settings
            continue
        figures += re.findall(r"on_end`[^.]{0,40}?(?:about|~) ?([\d.]+) ?(?:us|µs)", page.read_text(encoding="utf-8"))
    assert len(figures) >= 3 and set(figures) == {"1"}, figures


def test_the_demo_length_is_stated_one_way() -> None:
    stated = re.findall(r"service for about (\w+) seconds", text("docs/cli.md") + text("docs/quickstart.md"))
    assert stated == ["4", "4"], stated
    assert _parser().parse_args(["demo"]).duration == 4.0  # the command's default, as `aiotlp demo` takes it


def test_no_page_claims_more_than_is_true() -> None:
    for page in PAGES:
        content = re.sub(r"\s+", " ", page.read_text(encoding="utf-8"))
        for claim in ("flushed at exit", "flush at interpreter exit", "as the official exporters read it"):
            assert claim not in content, (page.name, claim)
    assert "normal interpreter exit" in text("README.md")
    assert "milliseconds" in text("docs/migration.md").split("##", 1)[0]  # said before anything else


def test_the_cli_says_which_extra_each_command_needs() -> None:
    extras = dict(re.findall(r"^(\w+) = (\[.*\])$", text("pyproject.toml"), re.MULTILINE))
    assert extras["receiver"] == extras["testing"]
    for page in ("README.md", "docs/cli.md"):
        content = text(page)
        assert "aiotlp[receiver]" in content
        for command in ("receive", "send", "demo", "check", "queue"):
            assert f"`aiotlp {command}" in content or f"`{command}`" in content, (page, command)


def test_license_and_changelog() -> None:
    license_text = text("LICENSE")
    assert "Apache License" in license_text and "Version 2.0, January 2004" in license_text
    assert "END OF TERMS AND CONDITIONS" in license_text
    assert 'license = "Apache-2.0"' in text("pyproject.toml")
    changelog = text("CHANGELOG.md")
    assert "keepachangelog.com" in changelog and "## [Unreleased]" in changelog
