"""mypy --strict accepts the public API's inferred types (api_types.py) and rejects a wrong call.

Uses the project's mypy configuration (strict, the oldest supported Python) and its cache, which
`./scripts/test` has warmed by checking src/ first.
"""

from __future__ import annotations

from pathlib import Path

import pytest

mypy_api = pytest.importorskip("mypy.api")

HERE = Path(__file__).parent
ROOT = HERE.parents[1]


def mypy(path: Path) -> tuple[str, int]:
    out, err, status = mypy_api.run(["--config-file", str(ROOT / "pyproject.toml"), "--no-error-summary", str(path)])
    return out + err, status


def test_public_api_types() -> None:
    out, status = mypy(HERE / "api_types.py")
    assert status == 0, out
    assert out.strip() == "", out


def test_mypy_reports_a_wrong_call(tmp_path: Path) -> None:
    wrong = tmp_path / "wrong.py"
    wrong.write_text(
        "from aiotlp import OTLPExporter, Span\n"
        "from typing_extensions import assert_type\n"
        "async def f(exporter: OTLPExporter, span: Span) -> None:\n"
        "    await exporter.export_traces(span)\n"  # one span instead of a sequence
        "    OTLPExporter(timeout='10s')\n"
        "    assert_type((await exporter.export_traces([span])).accepted, str)\n",
        encoding="utf-8",
    )
    out, status = mypy(wrong)
    assert status == 1, out
    assert 'Argument 1 to "export_traces" of "OTLPExporter" has incompatible type "Span"' in out, out
    assert 'Argument "timeout" to "OTLPExporter" has incompatible type "str"' in out, out
    assert "Expression is of type" in out and '"int", not "str"' in out.replace("\n", " "), out
    assert out.count("error:") == 3, out
