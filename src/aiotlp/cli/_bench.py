"""``aiotlp bench``: run the benchmark harness of a source checkout (``python -m benchmarks.harness``).

The harness is not part of the installed package (it compares aiotlp with the official exporter against the
rotel collector, both test dependencies), so the command looks for ``benchmarks/harness.py`` in the current
directory and its parents and runs it there with this interpreter, passing the options through.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

from .._exceptions import ConfigurationError

__all__ = ["find_checkout", "run_bench"]


def find_checkout(start: Path) -> Path | None:
    """The nearest directory at or above ``start`` that holds ``benchmarks/harness.py``."""
    for directory in (start, *start.parents):
        if (directory / "benchmarks" / "harness.py").is_file():
            return directory
    return None


def run_bench(args: Sequence[str], cwd: Path | None = None) -> int:
    start = (cwd or Path.cwd()).resolve()
    root = find_checkout(start)
    if root is None:
        raise ConfigurationError(
            f"no benchmarks/harness.py in {start} or its parents: `aiotlp bench` runs the harness of an aiotlp "
            "source checkout; cd into one (install it with `pip install -e '.[test]'`)"
        )
    command = [sys.executable, "-m", "benchmarks.harness", *args]
    print(f"aiotlp bench: running {' '.join(command[1:])} in {root}", flush=True)
    try:
        return subprocess.run(command, cwd=root, check=False).returncode
    except KeyboardInterrupt:
        return 130
