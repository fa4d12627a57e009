"""Fuzzing: configuration (constructor arguments, every environment variable at once) and response parsing
end to end (arbitrary HTTP answers from a raw server; arbitrary gRPC statuses, messages, details and bodies from
a real gRPC server, for both gRPC clients). Only the declared error types ever escape: ConfigurationError from
configuration, and from an export nothing at all (an ExportError inside the result, the items counted).

The sans-IO parsers alone are fuzzed in tests/encoding/test_response.py and ``ExporterConfig.from_env`` over the
endpoint/header/timeout variables in tests/test_config.py; this module covers what they do not: the exporter's
and the batch processor's own arguments, the batching and metric variables, and real answers through the
transports. Longer runs: ``-m slow`` (more examples), and an atheris run where atheris installs.
"""

from __future__ import annotations

import asyncio
import gzip
import math
import time
from collections.abc import Iterator
from typing import Any

import grpc
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from tests import samples
from tests.faults._support import RawHttpServer, accounted
from tests.faults.summary import Figure

from aiotlp import (
    BatchProcessor,
    ConfigurationError,
    ExportError,
    OTLPExporter,
    RetryPolicy,
    Signal,
)
from aiotlp.config import BatchConfig, ExporterConfig, MetricReaderConfig
from aiotlp.testing import FakeCollector, Reply

# the fixtures (a server, an exporter, the summary row) are shared by every example on purpose
_CHECKS = [HealthCheck.too_slow, HealthCheck.function_scoped_fixture]
QUICK = settings(max_examples=120, deadline=None, suppress_health_check=_CHECKS)
LONG = settings(max_examples=2000, deadline=None, suppress_health_check=_CHECKS)

# -- configuration --------------------------------------------------------------------------------------------

GARBAGE = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=30),
    st.binary(max_size=10),
    st.lists(st.integers(), max_size=3),
    st.dictionaries(st.text(max_size=5), st.text(max_size=5), max_size=3),
    st.sampled_from(["grpc", "http/json", "gzip", "none", "h2", "grpcio", "http://127.0.0.1:1", "localhost:4317"]),
)
EXPORTER_ARGS = (
    "endpoint",
    "protocol",
    "headers",
    "timeout",
    "compression",
    "insecure",
    "certificate_file",
    "client_key_file",
    "client_certificate_file",
    "max_request_bytes",
    "max_concurrent",
    "attempt_timeout",
    "grpc_implementation",
    "retry",
    "max_response_bytes",
)


@QUICK
@given(kwargs=st.dictionaries(st.sampled_from(EXPORTER_ARGS), GARBAGE, max_size=4))
def test_exporter_arguments_raise_only_configuration_error(kwargs: dict[str, Any], figure: Figure) -> None:
    figure.criterion = "only ConfigurationError escapes, naming the argument"
    _construct(lambda: OTLPExporter(**kwargs), figure, kwargs)


def _construct(build: Any, figure: Figure, kwargs: dict[str, Any]) -> None:
    figure.bad_inputs += 1
    try:
        built = build()
    except ConfigurationError:
        return
    assert built is not None  # constructed: nothing to close (sessions and channels are made on first use)


BATCH_ARGS = (
    "max_queue_size",
    "max_queue_bytes",
    "max_export_batch_size",
    "schedule_delay",
    "export_timeout",
    "max_concurrent_exports",
    "policy",
)


@QUICK
@given(
    batch=st.dictionaries(st.sampled_from(BATCH_ARGS), GARBAGE, max_size=4),
    retry=st.dictionaries(
        st.sampled_from(["initial_backoff", "max_backoff", "multiplier", "jitter", "max_attempts"]), GARBAGE, max_size=3
    ),
)
def test_processor_and_retry_arguments_raise_only_configuration_error(
    batch: dict[str, Any], retry: dict[str, Any], figure: Figure
) -> None:
    from tests.processing.helpers import ControlledExporter

    figure.criterion = "only ConfigurationError escapes, naming the argument"
    _construct(lambda: BatchProcessor(ControlledExporter(), Signal.TRACES, **batch), figure, batch)
    _construct(lambda: RetryPolicy(**retry), figure, retry)


ENV_VALUES = st.one_of(
    st.text(max_size=20),
    st.from_regex(r"[0-9]{0,25}", fullmatch=True),
    st.sampled_from(["0", "-1", "1e3", "1_000", " 5 ", "٣", "true", "delta", "LowMemory", "gzip", "grpc", ""]),
)
ENV_NAMES = [
    f"OTEL_{prefix}_{name}"
    for prefix in ("BSP", "BLRP")
    for name in ("SCHEDULE_DELAY", "EXPORT_TIMEOUT", "MAX_QUEUE_SIZE", "MAX_EXPORT_BATCH_SIZE")
] + [
    "OTEL_METRIC_EXPORT_INTERVAL",
    "OTEL_METRIC_EXPORT_TIMEOUT",
    "OTEL_EXPORTER_OTLP_METRICS_TEMPORALITY_PREFERENCE",
    *(f"OTEL_EXPORTER_OTLP_{s}{n}" for s in ("", "TRACES_", "METRICS_", "LOGS_") for n in ("COMPRESSION", "PROTOCOL")),
    *(f"OTEL_EXPORTER_OTLP_{s}{n}" for s in ("", "TRACES_") for n in ("CERTIFICATE", "CLIENT_KEY", "INSECURE")),
]


@QUICK
@given(environ=st.dictionaries(st.sampled_from(ENV_NAMES), ENV_VALUES, max_size=6))
def test_every_environment_variable_raises_only_configuration_error(environ: dict[str, str], figure: Figure) -> None:
    figure.criterion = "only ConfigurationError escapes, naming the variable"
    figure.bad_inputs += 1
    for read in (
        lambda: BatchConfig.from_env("span", environ),
        lambda: BatchConfig.from_env("log", environ),
        lambda: MetricReaderConfig.from_env(environ),
        lambda: ExporterConfig.from_env(environ),
    ):
        try:
            config = read()
        except ConfigurationError as exc:
            names_it = "OTEL_" in str(exc)
            assert names_it, exc  # noqa: PT017 - each read is checked, the loop goes on
            continue
        for value in vars(config).values() if hasattr(config, "__dict__") else ():
            assert not (isinstance(value, float) and not math.isfinite(value))


_ONCE_UNVALIDATED = [
    pytest.param(lambda: OTLPExporter(retry=5), id="OTLPExporter-retry-5"),
    pytest.param(lambda: OTLPExporter(protocol="http/protobuf", max_response_bytes=-1), id="http-max_response_bytes-1"),
    pytest.param(
        lambda: OTLPExporter(protocol="http/protobuf", max_response_bytes="x"), id="http-max_response_bytes-x"
    ),
    pytest.param(lambda: OTLPExporter(protocol="grpc", max_response_bytes="x"), id="grpc-max_response_bytes-x"),
    pytest.param(lambda: OTLPExporter(attempt_timeout="1"), id="attempt_timeout-str"),
    pytest.param(lambda: RetryPolicy(initial_backoff=None), id="RetryPolicy-initial_backoff-None"),  # type: ignore[arg-type]
    pytest.param(lambda: RetryPolicy(jitter="0.1"), id="RetryPolicy-jitter-str"),  # type: ignore[arg-type]
]


@pytest.mark.parametrize("build", _ONCE_UNVALIDATED)
def test_every_argument_is_validated_at_construction(build: Any) -> None:
    with pytest.raises(ConfigurationError):
        build()


# -- responses, end to end ------------------------------------------------------------------------------------


class _Loop:
    """A private event loop for a sync hypothesis test: one server and one exporter serve every example."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()

    def run(self, coro: Any) -> Any:
        return self.loop.run_until_complete(coro)

    def close(self) -> None:
        self.loop.run_until_complete(self.loop.shutdown_asyncgens())
        self.loop.close()


_TOKEN = st.text(st.characters(min_codepoint=0x21, max_codepoint=0x7E), min_size=0, max_size=30)
_HTTP_ANSWERS = st.fixed_dictionaries(
    {
        "status": st.one_of(st.integers(200, 599), st.sampled_from([200, 400, 429, 503])),
        "retry_after": st.none() | st.sampled_from(["0", "1e9", "-1", "Wed, 21 Oct 2015 07:28:00 GMT"]) | _TOKEN,
        "content_type": st.sampled_from(
            ["application/x-protobuf", "application/json", "application/protobuf; x=1", "text/html", ""]
        ),
        "gzip": st.booleans(),
        "body": st.one_of(
            st.binary(max_size=200),
            st.sampled_from([b"{}", b'{"partialSuccess":{"rejectedSpans":"9"}}', b"\x0a\x02\x08\x05", b"null"]),
            st.text(max_size=100).map(str.encode),
        ),
    }
)


def _http_response(answer: dict[str, Any]) -> bytes:
    body = gzip.compress(answer["body"]) if answer["gzip"] else answer["body"]
    head = [f"HTTP/1.1 {answer['status']} X", f"Content-Length: {len(body)}"]
    if answer["content_type"]:
        head.append(f"Content-Type: {answer['content_type']}")
    if answer["gzip"]:
        head.append("Content-Encoding: gzip")
    if answer["retry_after"] is not None:
        head.append(f"Retry-After: {answer['retry_after']}")
    return ("\r\n".join(head) + "\r\n\r\n").encode("latin-1") + body


@pytest.fixture
def http_fuzz() -> Iterator[tuple[_Loop, list[bytes], OTLPExporter, RawHttpServer]]:
    private = _Loop()
    pending: list[bytes] = []

    async def answer(writer: asyncio.StreamWriter) -> None:
        writer.write(pending.pop(0) if pending else _http_response({**_EMPTY, "status": 200}))
        await writer.drain()

    server = RawHttpServer(answer)
    private.run(server.__aenter__())
    exporter = private.run(_make_http_exporter(server.url))
    try:
        yield private, pending, exporter, server
    finally:
        private.run(exporter.shutdown())
        private.run(server.__aexit__(None, None, None))
        private.close()


_EMPTY = {"retry_after": None, "content_type": "", "gzip": False, "body": b""}


async def _make_http_exporter(url: str) -> OTLPExporter:
    retry = RetryPolicy(initial_backoff=0.001, max_backoff=0.002, max_attempts=2)
    return OTLPExporter(endpoint=url, protocol="http/protobuf", timeout=2, retry=retry)


def _check(result: Any, started: float, timeout: float) -> None:
    accounted(result)
    assert result.error is None or isinstance(result.error, ExportError)
    if result.error is not None:
        assert str(result.error).isprintable()
        retry_after = getattr(getattr(result.error, "last", None), "retry_after", None)
        assert retry_after is None or (math.isfinite(retry_after) and retry_after >= 0)
    assert 0 <= result.rejected <= result.items
    assert time.perf_counter() - started <= timeout * 1.15


def _http_examples(http_fuzz: Any, answers: list[dict[str, Any]], figure: Figure) -> None:
    figure.criterion = "no exception escapes export; error is an ExportError; items counted; bounded time"
    figure.bad_inputs += len(answers)
    figure.load += 2
    private, pending, exporter, _ = http_fuzz
    pending[:] = [_http_response(answer) for answer in answers]
    started = time.perf_counter()
    result = private.run(exporter.export_traces(samples.spans(2)))
    _check(result, started, 2)


def _any_http_answer(http_fuzz: Any, answers: list[dict[str, Any]], figure: Figure) -> None:
    _http_examples(http_fuzz, answers, figure)


_HTTP_GIVEN = given(answers=st.lists(_HTTP_ANSWERS, min_size=1, max_size=2))
test_any_http_answer_ends_in_a_counted_result = QUICK(_HTTP_GIVEN(_any_http_answer))
test_any_http_answer_ends_in_a_counted_result_long = pytest.mark.slow(LONG(_HTTP_GIVEN(_any_http_answer)))


_CODES = st.sampled_from(list(grpc.StatusCode))
_GRPC_REPLIES = st.builds(
    Reply,
    grpc_code=st.none() | _CODES,
    message=st.text(max_size=60),
    retry_delay=st.none() | st.floats(0, 1e6) | st.sampled_from([0.0, 1e-9]),
    body=st.none() | st.binary(max_size=120) | st.sampled_from([b"\x0a\x02\x08\x05", b"\x0a\x00", b"\xff"]),
    rejected=st.integers(0, 2**31),
)


@pytest.mark.parametrize("implementation", ["h2", "grpcio"])
def test_any_grpc_answer_ends_in_a_counted_result(implementation: str, figure: Figure) -> None:
    figure.criterion = "no exception escapes export; error is an ExportError; items counted; bounded time"
    private = _Loop()
    collector = FakeCollector()
    private.run(collector.start())
    exporter = OTLPExporter(
        endpoint=collector.grpc_endpoint,
        protocol="grpc",
        timeout=2,
        retry=RetryPolicy(initial_backoff=0.001, max_backoff=0.002, max_attempts=2),
        grpc_implementation=implementation,  # type: ignore[arg-type]
    )
    tried: list[int] = []
    try:

        @QUICK
        @given(replies=st.lists(_GRPC_REPLIES, min_size=1, max_size=2))
        def examples(replies: list[Reply]) -> None:
            collector.script(*replies)
            started = time.perf_counter()
            result = private.run(exporter.export_traces(samples.spans(2)))
            collector.clear_script()  # a permanent error left the second reply unused
            _check(result, started, 2)
            tried.append(len(replies))

        examples()
    finally:
        private.run(exporter.shutdown())
        private.run(collector.stop())
        private.close()
    figure.bad_inputs = sum(tried)
    figure.load = 2 * len(tried)
    figure.measured = f"{len(tried)} exports against fuzzed gRPC answers; only ExportErrors, all counted"


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_atheris_response_parsers(figure: Figure) -> None:
    """Coverage-guided fuzzing of the sans-IO response parsers, where atheris installs (``pip install atheris``)."""
    atheris = pytest.importorskip("atheris", reason="atheris is not installed (optional: pip install atheris)")
    import subprocess
    import sys

    done = subprocess.run(
        [sys.executable, "-m", "tests.faults.atheris_target", "-max_total_time=60", "-max_len=512"],
        capture_output=True,
        text=True,
        timeout=280,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert atheris is not None
    figure.criterion = "60 s of coverage-guided fuzzing: only ResponseError escapes the decoders"
    runs = [line for line in done.stderr.splitlines() if line.startswith("Done ")]
    figure.measured = runs[-1] if runs else "done"
    figure.bad_inputs = int(runs[-1].split()[1]) if runs else 0
