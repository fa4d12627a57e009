"""One plan: the README's layer list, docs/design.md and import-linter's layers contract name the same layers, in the
same order, with the same independent siblings; and every package of aiotlp is in the plan."""

from __future__ import annotations

import re
import sys

import pytest
from tests.docs._blocks import ROOT

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    tomllib = pytest.importorskip("tomli")

_LAYER_LINE = re.compile(r"^((?:[a-z_]+/)(?: \| [a-z_]+/)*)\s")


def contract_layers() -> list[list[str]]:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    (layers,) = [c for c in config["tool"]["importlinter"]["contracts"] if c["type"] == "layers"]
    return [[name.strip().removeprefix("aiotlp.") for name in layer.split("|")] for layer in layers["layers"]]


def drawn_layers(page: str) -> list[list[str]]:
    """The layers of the first ``text`` block after the page's "## Layers" heading, one line each."""
    text = (ROOT / page).read_text(encoding="utf-8")
    block = text.split("## Layers", 1)[1].split("```text\n", 1)[1].split("```", 1)[0]
    lines = [_LAYER_LINE.match(line) for line in block.splitlines()]
    return [[name.rstrip("/") for name in m.group(1).split(" | ")] for m in lines if m]


@pytest.mark.parametrize("page", ["README.md", "docs/design.md"])
def test_the_page_draws_the_contract(page: str) -> None:
    assert drawn_layers(page) == contract_layers()


def test_every_package_is_a_layer_or_said_to_be_beside_them() -> None:
    packages = {p.name for p in (ROOT / "src" / "aiotlp").iterdir() if (p / "__init__.py").is_file()}
    layered = {name for layer in contract_layers() for name in layer}
    assert packages - layered == {"config"}
    design = (ROOT / "docs" / "design.md").read_text(encoding="utf-8")
    assert "- `config/`:" in design
