"""The bridge across process boundaries: fork, interpreter exit, and the SDK's auto-configuration.

Each scenario runs in a child Python process (started with asyncio, so the FakeCollector keeps serving on the
test's loop) that exports to the FakeCollector; the test then checks what arrived, and that the process exited
cleanly within a bound.

The SDK's own privates, on purpose: auto-configuration runs through ``opentelemetry.sdk._configuration.
_initialize_components`` (what ``opentelemetry-instrument`` calls), and
``test_sdk_auto_configuration_selects_aiotlp_by_entry_point`` reads the provider's processor chain
(``_active_span_processor._span_processors``, the official processor's ``_batch_processor._exporter``) to show
that the one span processor the SDK made exports with aiotlp's ``SpanExporter``: the SDK has no public accessor.

The bridge (``aiotlp.sdk._bridge.get_bridge``) is stopped and restarted as the exit handler and a fork do.
"""

from __future__ import annotations

import asyncio
import os
import sys
import textwrap

import pytest

from aiotlp.testing import FakeCollector

EXIT_BOUND = 30.0  # seconds a child process may take, start-up included

SPAN_HELPER = """
import os
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.trace import SpanContext

def span(name):
    return ReadableSpan(
        name=name, context=SpanContext(1, 2, False), resource=Resource({"pid": os.getpid()}), start_time=1, end_time=2
    )
"""


async def run_python(code: str, *args: str, env: dict[str, str] | None = None) -> tuple[int, str]:
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        textwrap.dedent(code),
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
        env={**os.environ, **(env or {})},
    )
    try:
        output, _ = await asyncio.wait_for(process.communicate(), EXIT_BOUND)
    except asyncio.TimeoutError:
        process.kill()
        await process.wait()
        raise
    text = output.decode(errors="replace")
    for symptom in ("Traceback", "Unclosed", "was destroyed but it is pending", "Exception ignored"):
        assert symptom not in text, text
    return process.returncode if process.returncode is not None else -1, text


def span_names(collector: FakeCollector) -> list[str]:
    return sorted(span.name for span in collector.spans())


@pytest.mark.skipif(not hasattr(os, "fork"), reason="os.fork is POSIX only")
async def test_a_forked_child_exports_only_its_own_data(collector: FakeCollector) -> None:
    code = (
        SPAN_HELPER
        + """
import asyncio, sys, threading
from opentelemetry.sdk.trace.export import SpanExportResult
from aiotlp.sdk import SpanExporter
from aiotlp.sdk._bridge import get_bridge

exporter = SpanExporter(sys.argv[1] + "/v1/traces")
assert exporter.export([span("parent before fork")]) is SpanExportResult.SUCCESS

# Hold the bridge loop and queue an export behind it: at the fork, that export is queued in the parent.
gate = threading.Event()
get_bridge().loop().call_soon_threadsafe(gate.wait)
async def hand_over():  # export called on a running loop: handed over to the bridge without waiting
    assert exporter.export([span("parent queued at fork")]) is SpanExportResult.SUCCESS
thread = threading.Thread(target=asyncio.run, args=(hand_over(),))
thread.start()
thread.join()

pid = os.fork()
if pid == 0:  # the child: the same exporter object, a fresh bridge; the parent's queue is not ours
    ok = exporter.export([span("child")]) is SpanExportResult.SUCCESS
    exporter.shutdown()
    os._exit(0 if ok else 3)
gate.set()
_, status = os.waitpid(pid, 0)
assert os.waitstatus_to_exitcode(status) == 0, status
assert exporter.force_flush(10_000)
assert exporter.export([span("parent after fork")]) is SpanExportResult.SUCCESS
print("parent ok", os.getpid())
"""
    )
    returncode, output = await run_python(code, collector.http_endpoint)
    assert returncode == 0, output
    assert span_names(collector) == ["child", "parent after fork", "parent before fork", "parent queued at fork"]
    parent_pid = int(output.split("parent ok ")[1].split()[0])
    pids = {
        span_request.message.resource_spans[0].resource.attributes[0].value.int_value
        for span_request in collector.received
    }
    assert len(pids) == 2 and parent_pid in pids
    child_requests = [
        request
        for request in collector.received
        if request.message.resource_spans[0].resource.attributes[0].value.int_value != parent_pid
    ]
    assert [request.message.resource_spans[0].scope_spans[0].spans[0].name for request in child_requests] == ["child"]


async def test_batched_spans_are_flushed_at_exit_without_shutdown(collector: FakeCollector) -> None:
    code = """
import sys
from aiotlp.sdk import SpanExporter
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor

provider = TracerProvider()  # shutdown_on_exit: its atexit handler flushes the batch processor
provider.add_span_processor(BatchSpanProcessor(SpanExporter(sys.argv[1] + "/v1/traces"), schedule_delay_millis=60_000))
with provider.get_tracer("exit").start_as_current_span("batched, flushed at exit"):
    pass
"""
    returncode, output = await run_python(code, collector.http_endpoint)
    assert returncode == 0, output
    assert span_names(collector) == ["batched, flushed at exit"]


async def test_batched_spans_are_flushed_at_exit_when_no_thread_can_start(collector: FakeCollector) -> None:
    """Python 3.12 refuses to start threads while atexit handlers run: the bridge, started by the provider's exit
    flush, then runs its loop on the flushing thread. Simulated here (on every version) by an atexit handler,
    registered last so it runs first, that makes Thread.start raise as 3.12 does."""
    code = """
import atexit, sys, threading
from aiotlp.sdk import SpanExporter
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor

provider = TracerProvider()
provider.add_span_processor(BatchSpanProcessor(SpanExporter(sys.argv[1] + "/v1/traces"), schedule_delay_millis=60_000))
with provider.get_tracer("exit").start_as_current_span("flushed without a bridge thread"):
    pass

def refuse(self):
    raise RuntimeError("can't create new thread at interpreter shutdown")

atexit.register(lambda: setattr(threading.Thread, "start", refuse))
"""
    returncode, output = await run_python(code, collector.http_endpoint)
    assert returncode == 0, output
    assert span_names(collector) == ["flushed without a bridge thread"]


async def test_an_export_handed_over_is_delivered_at_exit(collector: FakeCollector) -> None:
    code = (
        SPAN_HELPER
        + """
import asyncio, sys
from aiotlp.sdk import SpanExporter

exporter = SpanExporter(sys.argv[1] + "/v1/traces")

async def main():
    exporter.export([span("handed over, then exit")])  # on a running loop: returns before it is sent

asyncio.run(main())
# no shutdown, no flush: the bridge's atexit handler lets the export finish
"""
    )
    returncode, output = await run_python(code, collector.http_endpoint)
    assert returncode == 0, output
    assert span_names(collector) == ["handed over, then exit"]


async def test_a_provider_flushing_after_the_bridge_stopped_still_exports(collector: FakeCollector) -> None:
    # The provider exists before aiotlp.sdk is imported, so its atexit handler runs AFTER the bridge's: the
    # bridge stops (closing connections), then the provider's final flush starts a new one.
    code = """
import sys
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor

provider = TracerProvider()
from aiotlp.sdk import SpanExporter

provider.add_span_processor(BatchSpanProcessor(SpanExporter(sys.argv[1] + "/v1/traces"), schedule_delay_millis=60_000))
tracer = provider.get_tracer("exit")
with tracer.start_as_current_span("flushed before exit"):
    pass
assert provider.force_flush()
with tracer.start_as_current_span("flushed by the provider after the bridge stopped"):
    pass
"""
    returncode, output = await run_python(code, collector.http_endpoint)
    assert returncode == 0, output
    assert span_names(collector) == ["flushed before exit", "flushed by the provider after the bridge stopped"]


@pytest.mark.parametrize("protocol", ["http/protobuf", "grpc"])
async def test_sdk_auto_configuration_selects_aiotlp_by_entry_point(protocol: str, collector: FakeCollector) -> None:
    code = """
from opentelemetry import metrics, trace
from opentelemetry._logs import get_logger_provider
from opentelemetry.sdk._configuration import _initialize_components

_initialize_components()
from aiotlp.sdk import LogExporter, MetricExporter, SpanExporter

provider = trace.get_tracer_provider()
processors = provider._active_span_processor._span_processors
assert [type(p._batch_processor._exporter) for p in processors] == [SpanExporter], processors
with trace.get_tracer("auto").start_as_current_span("auto-configured"):
    get_logger_provider().get_logger("auto").emit(body="logged through aiotlp")
metrics.get_meter("auto").create_counter("auto.counter").add(5)
# exit: the providers' atexit handlers flush everything through aiotlp
"""
    endpoint = collector.grpc_endpoint if protocol == "grpc" else collector.http_endpoint
    env = {
        "OTEL_TRACES_EXPORTER": "aiotlp",
        "OTEL_LOGS_EXPORTER": "aiotlp",
        "OTEL_METRICS_EXPORTER": "aiotlp",
        "OTEL_EXPORTER_OTLP_ENDPOINT": endpoint,
        "OTEL_EXPORTER_OTLP_PROTOCOL": protocol,
        "OTEL_SERVICE_NAME": "auto-configured-service",
        "OTEL_METRIC_EXPORT_INTERVAL": "600000",
    }
    returncode, output = await run_python(code, env=env)
    assert returncode == 0, output
    assert span_names(collector) == ["auto-configured"]
    assert [record.body.string_value for record in collector.log_records()] == ["logged through aiotlp"]
    assert [metric.name for metric in collector.metrics()] == ["auto.counter"]
    for request in collector.received:
        assert "aiotlp/" in request.headers["user-agent"]
        field = {"traces": "resource_spans", "logs": "resource_logs", "metrics": "resource_metrics"}
        resource = getattr(request.message, field[request.signal.value])[0].resource
        assert {kv.key: kv.value.string_value for kv in resource.attributes}["service.name"] == (
            "auto-configured-service"
        )


@pytest.mark.parametrize("protocol", ["http/protobuf", "grpc"])
async def test_sdk_auto_configuration_with_official_style_variables(protocol: str, collector: FakeCollector) -> None:
    """What a service configured for the official exporters sets (a timeout in seconds, a header written with
    ':', deflate, exponential histograms, another signal's bad variables) starts with aiotlp selected by entry
    point: warnings naming the variables (no secret), the defaults, and the telemetry arrives, compressed."""
    canary = "s3cr3t-canary-auto"
    code = """
from opentelemetry import metrics, trace
from opentelemetry.sdk._configuration import _initialize_components

_initialize_components()
from aiotlp.sdk import SpanExporter, exporters

(exporter,) = [e for e in exporters() if isinstance(e, SpanExporter)]  # what auto-configuration made
print("timeout", exporter.config.traces.timeout, "compression", exporter.config.traces.compression)
with trace.get_tracer("auto").start_as_current_span("configured the official way"):
    pass
metrics.get_meter("auto").create_histogram("auto.latency").record(12.5)
"""
    endpoint = collector.grpc_endpoint if protocol == "grpc" else collector.http_endpoint
    env = {
        "OTEL_TRACES_EXPORTER": "aiotlp",
        "OTEL_METRICS_EXPORTER": "aiotlp",
        "OTEL_LOGS_EXPORTER": "none",
        "OTEL_EXPORTER_OTLP_ENDPOINT": endpoint,
        "OTEL_EXPORTER_OTLP_PROTOCOL": protocol,
        "OTEL_EXPORTER_OTLP_TIMEOUT": "2.5",  # seconds to the official exporters
        "OTEL_EXPORTER_OTLP_HEADERS": f"x-tenant=acme,Authorization: Basic {canary}=",
        "OTEL_EXPORTER_OTLP_COMPRESSION": "deflate",
        "OTEL_EXPORTER_OTLP_METRICS_DEFAULT_HISTOGRAM_AGGREGATION": "base2_exponential_bucket_histogram",
        "OTEL_EXPORTER_OTLP_LOGS_HEADERS": f"{canary}",  # logs are off: never read
        "OTEL_METRIC_EXPORT_INTERVAL": "600000",
        "OTEL_PYTHON_LOGGING_AUTO_INSTRUMENTATION_ENABLED": "false",
    }
    returncode, output = await run_python(code, env=env)
    assert returncode == 0, output
    assert "timeout 10.0 compression deflate" in output
    assert canary not in output
    # the warnings (Python's last-resort handler prints them on stderr): one per signal for each variable
    assert (
        output.count("OTEL_EXPORTER_OTLP_TIMEOUT: must be a positive integer number of milliseconds (the OTLP unit")
        == 2
    )
    assert output.count("2.5 s is 2500); using the default, 10000 ms") == 2
    assert output.count("OTEL_EXPORTER_OTLP_HEADERS: entry 2 is not a valid name=value pair") == 2
    assert "OTEL_EXPORTER_OTLP_LOGS_HEADERS" not in output
    assert span_names(collector) == ["configured the official way"]
    (metric,) = collector.metrics()
    assert metric.WhichOneof("data") == "exponential_histogram"
    assert {(r.signal.value, r.compression) for r in collector.received} == {
        ("traces", "deflate"),
        ("metrics", "deflate"),
    }
    assert {r.headers["x-tenant"] for r in collector.received} == {"acme"}
    assert not any("authorization" in r.headers for r in collector.received)


@pytest.mark.skipif(not hasattr(os, "fork"), reason="os.fork is POSIX only")
@pytest.mark.parametrize(
    ("protocol", "implementation"), [("http/protobuf", "h2"), ("grpc", "h2"), ("grpc", "grpcio")], ids=str
)
async def test_batch_processor_exports_from_a_forked_child(
    protocol: str, implementation: str, collector: FakeCollector
) -> None:
    """gunicorn --preload with the drop-in processor: spans exported in the parent, then fork; the child's spans
    arrive (grpc.aio cannot be used in the child: aiotlp's h2 client takes over), its shutdown is quick, and it
    exits as gunicorn's workers do (interpreter finalization)."""
    code = """
import os, sys, time
from opentelemetry.sdk.trace import TracerProvider
from aiotlp.sdk import BatchSpanProcessor, SpanExporter
from aiotlp.transport import make_transport

endpoint, protocol, implementation = sys.argv[1:4]
exporter = SpanExporter(
    endpoint,
    protocol=protocol,
    transport_factory=lambda config: make_transport(config, grpc_implementation=implementation),
)
provider = TracerProvider(shutdown_on_exit=False)
provider.add_span_processor(BatchSpanProcessor(exporter, schedule_delay_millis=60_000))
tracer = provider.get_tracer("fork")

def traced(name):
    with tracer.start_as_current_span(name) as span:
        span.set_attribute("pid", os.getpid())

traced("parent before fork")
assert provider.force_flush(10_000)
sys.stdout.flush()
pid = os.fork()
if pid == 0:
    traced("child")
    flushed = provider.force_flush(10_000)
    started = time.monotonic()
    provider.shutdown()
    took = time.monotonic() - started
    print("child", flushed, f"{took:.3f}", flush=True)
    sys.exit(0 if flushed and took < 2 else 3)
_, status = os.waitpid(pid, 0)
assert os.waitstatus_to_exitcode(status) == 0, status
traced("parent after fork")
provider.shutdown()
print("parent ok", os.getpid())
"""
    endpoint = collector.grpc_endpoint if protocol == "grpc" else collector.http_endpoint + "/v1/traces"
    for _ in range(2):
        collector.clear()
        returncode, output = await run_python(code, endpoint, protocol, implementation)
        assert returncode == 0, output
        assert "child True" in output, output
        assert span_names(collector) == ["child", "parent after fork", "parent before fork"]
        parent_pid = int(output.split("parent ok ")[1].split()[0])
        by_pid = {
            span.name: {kv.key: kv.value.int_value for kv in span.attributes}["pid"] for span in collector.spans()
        }
        assert by_pid["child"] != parent_pid and by_pid["parent after fork"] == parent_pid


@pytest.mark.parametrize("protocol", ["http/protobuf", "http/json", "grpc"])
async def test_sdk_auto_configuration_with_zstd(protocol: str) -> None:
    """OTEL_EXPORTER_OTLP_COMPRESSION=zstd with aiotlp chosen by entry point: every signal arrives in zstd, byte
    for byte as aiotlp encodes it (gRPC: the FakeCollector's h2 server, as grpc core has no zstd)."""
    code = """
from opentelemetry import metrics, trace
from opentelemetry.sdk._configuration import _initialize_components

_initialize_components()
from aiotlp.sdk import SpanExporter, exporters

(exporter,) = [e for e in exporters() if isinstance(e, SpanExporter)]  # what auto-configuration made
print("compression", exporter.config.traces.compression)
with trace.get_tracer("auto").start_as_current_span("squeezed"):
    pass
metrics.get_meter("auto").create_counter("auto.count").add(3)
"""
    async with FakeCollector(grpc_server="h2") as collector:
        env = {
            "OTEL_TRACES_EXPORTER": "aiotlp",
            "OTEL_METRICS_EXPORTER": "aiotlp",
            "OTEL_LOGS_EXPORTER": "none",
            "OTEL_EXPORTER_OTLP_ENDPOINT": collector.grpc_endpoint if protocol == "grpc" else collector.http_endpoint,
            "OTEL_EXPORTER_OTLP_PROTOCOL": protocol,
            "OTEL_EXPORTER_OTLP_COMPRESSION": "zstd",
            "OTEL_METRIC_EXPORT_INTERVAL": "600000",
            "OTEL_PYTHON_LOGGING_AUTO_INSTRUMENTATION_ENABLED": "false",
        }
        returncode, output = await run_python(code, env=env)
        assert returncode == 0, output
        assert "compression zstd" in output
        assert span_names(collector) == ["squeezed"]
        assert {(r.signal.value, r.compression) for r in collector.received} == {
            ("traces", "zstd"),
            ("metrics", "zstd"),
        }


async def test_sdk_zstd_without_a_binding_is_one_line_at_construction() -> None:
    code = """
import sys
for name in ("zstandard", "compression", "compression.zstd", "backports.zstd"):
    sys.modules[name] = None
from aiotlp import MissingExtraError
from aiotlp.sdk import SpanExporter
try:
    SpanExporter(compression="zstd")
except MissingExtraError as exc:
    print("refused:", exc)
"""
    returncode, output = await run_python(code)
    assert returncode == 0, output
    assert output.strip() == (
        "refused: zstandard (for compression 'zstd') is not installed: install it with `pip install 'aiotlp[zstd]'`"
    )
