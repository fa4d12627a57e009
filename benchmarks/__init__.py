"""aiotlp benchmarks: run ``python -m benchmarks.harness`` (see :mod:`benchmarks.harness`)."""
