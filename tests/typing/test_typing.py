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


def test_mypy_checks_each_argument_of_the_sdk_exporters(tmp_path: Path) -> None:
    """The SDK exporters' keywords are typed one by one (``**options: Unpack[...]`` of one TypedDict), and the
    official classes' positions are typed in their order: a wrong type, an unknown keyword or a positional too
    many is an error at the call."""
    wrong = tmp_path / "wrong_sdk.py"
    wrong.write_text(
        "import aiotlp.sdk, aiotlp.sdk.grpc, aiotlp.sdk.http\n"
        "aiotlp.sdk.SpanExporter(timeout='10s')\n"
        "aiotlp.sdk.LogExporter('http://x/v1/logs', max_concurrent='4')\n"
        "aiotlp.sdk.MetricExporter(max_export_batch_size='many')\n"
        "aiotlp.sdk.SpanExporter(tiemout=1.0)\n"
        "aiotlp.sdk.SpanExporter('a', 'b')\n"
        "aiotlp.sdk.grpc.OTLPSpanExporter('x', 'yes')\n"
        "aiotlp.sdk.http.OTLPMetricExporter(max_concurrent='4')\n"
        "aiotlp.sdk.MetricExporter(endpoint=3)\n"
        "aiotlp.sdk.SpanExporter('http://x/v1/traces', protocol='http/json', max_concurrent=2, environ={})\n",
        encoding="utf-8",
    )
    out, status = mypy(wrong)
    assert status == 1, out
    for line, expected in [
        (2, 'Argument "timeout" to "SpanExporter" has incompatible type "str"; expected "float | None"'),
        (3, 'Argument "max_concurrent" to "LogExporter" has incompatible type "str"; expected "int"'),
        (4, 'Argument "max_export_batch_size" to "MetricExporter" has incompatible type "str"'),
        (5, 'Unexpected keyword argument "tiemout" for "SpanExporter"'),
        (6, 'Too many positional arguments for "SpanExporter"'),
        (7, 'Argument 2 to "GrpcSpanExporter" has incompatible type "str"; expected "bool | None"'),
        (8, 'Argument "max_concurrent" to "HttpMetricExporter" has incompatible type "str"; expected "int"'),
        (9, 'Argument "endpoint" to "MetricExporter" has incompatible type "int"'),
    ]:
        assert f"wrong_sdk.py:{line}: error: {expected}" in out, out
    assert "wrong_sdk.py:10:" not in out, out
