"""aiotlp's SDK batch processors open their exporter's connection when they start on the bridge (an application on
plain threads: the first span or log record ended), before the first batch is due: built in code, and auto-configured
(``OTEL_PYTHON_CONFIGURATOR=aiotlp opentelemetry-instrument``, exit without shutdown).

Otherwise the first export made the connection while the application's threads held the GIL, and a flat-out
producer filled the queue behind the first batch (500 to 1,500 spans dropped at start-up). Each signal, over each
client, through a counting TCP proxy in front of the collector: one connection, made before anything is sent, and
the first export goes over it. A collector that is not there: nothing logged above debug by the connect, the
export's own failure counted in the ledger. The zstd binding is chosen when the client is loaded, not at the
first export.
"""

from __future__ import annotations

import contextlib
import logging
import os
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest
from opentelemetry.sdk._logs import LoggerProvider
from opentelemetry.sdk.trace import TracerProvider
from tests.faults._support import ProxyThread, TcpProxy
from tests.sdk.compat.test_selection import INSTRUMENT, SRC, metadata

from aiotlp.sdk import BatchLogRecordProcessor, BatchSpanProcessor, LogExporter, SpanExporter
from aiotlp.sdk._bridge import LANE_EXPORTS_IN_FLIGHT
from aiotlp.testing import CollectorThread, free_port
from aiotlp.transport import lane_available, make_transport

CLIENTS = [("grpc", "h2"), ("grpc", "grpcio"), ("http/protobuf", None)]


def made_ahead(protocol: str, client: str | None = None) -> int:
    """The connections a processor opens when it starts: the exporter's one, or with the default transports
    (``client`` None: OTLP/HTTP protobuf, or gRPC over aiotlp's h2 client) those of the native lane (one per lane
    thread: aiotlp.sdk._bridge.LANE_EXPORTS_IN_FLIGHT, four), which then sends."""
    return LANE_EXPORTS_IN_FLIGHT if client is None and lane_available() else 1


@contextlib.contextmanager
def behind_a_proxy(protocol: str) -> Iterator[tuple[CollectorThread, TcpProxy]]:
    """A collector, and a counting proxy in front of its port for ``protocol``."""
    with CollectorThread() as collector:
        port = collector.collector.grpc_port if protocol == "grpc" else collector.collector.http_port
        with ProxyThread(port) as proxy:
            yield collector, proxy


def exporter_kwargs(protocol: str, client: str | None, port: int, signal: str) -> dict[str, object]:
    if protocol == "grpc":
        return {
            "endpoint": f"http://127.0.0.1:{port}",
            "protocol": "grpc",
            "transport_factory": lambda config: make_transport(config, grpc_implementation=client),  # type: ignore[arg-type]
        }
    return {"endpoint": f"http://127.0.0.1:{port}/v1/{signal}", "protocol": "http/protobuf"}


@pytest.mark.parametrize(("protocol", "client"), CLIENTS)
def test_spans_connection_is_made_at_the_first_span(protocol: str, client: str | None) -> None:
    with behind_a_proxy(protocol) as (collector, proxy):
        exporter = SpanExporter(**exporter_kwargs(protocol, client, proxy.port, "traces"))  # type: ignore[arg-type]
        processor = BatchSpanProcessor(exporter, schedule_delay_millis=60_000)  # no export until the flush
        provider = TracerProvider()
        provider.add_span_processor(processor)
        with provider.get_tracer("app").start_as_current_span("first"):
            pass
        assert proxy.wait_for_connections(made_ahead(protocol, client), 5.0)
        stats = processor.statistics()
        assert (stats.produced, stats.queued, stats.exported) == (1, 1, 0)
        assert collector.requests() == []
        assert processor.force_flush(5_000)
        provider.shutdown()
        assert [span.name for span in collector.spans()] == ["first"]
        assert proxy.connections == made_ahead(protocol, client)  # the export went over a connection made ahead


@pytest.mark.parametrize(("protocol", "client"), CLIENTS)
def test_logs_connection_is_made_at_the_first_record(protocol: str, client: str | None) -> None:
    with behind_a_proxy(protocol) as (collector, proxy):
        exporter = LogExporter(**exporter_kwargs(protocol, client, proxy.port, "logs"))  # type: ignore[arg-type]
        processor = BatchLogRecordProcessor(exporter, schedule_delay_millis=60_000)
        provider = LoggerProvider(shutdown_on_exit=False)
        provider.add_log_record_processor(processor)
        provider.get_logger("app").emit(body="first")
        assert proxy.wait_for_connections(made_ahead(protocol, client), 5.0)
        stats = processor.statistics()
        assert (stats.produced, stats.queued, stats.exported) == (1, 1, 0)
        assert collector.requests() == []
        provider.shutdown()
        assert [record.body.string_value for record in collector.log_records()] == ["first"]
        assert proxy.connections == made_ahead(protocol, client)


def test_no_collector_the_connect_is_quiet_and_the_export_fails_counted(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger="aiotlp")
    exporter = SpanExporter(f"http://127.0.0.1:{free_port()}", protocol="grpc", timeout=1)
    processor = BatchSpanProcessor(exporter, schedule_delay_millis=60_000)
    provider = TracerProvider()
    provider.add_span_processor(processor)
    with provider.get_tracer("app").start_as_current_span("lost"):
        pass
    assert not processor.force_flush(5_000)
    provider.shutdown()
    stats = processor.statistics()
    assert (stats.produced, stats.exported, stats.failed, stats.queued, stats.in_flight) == (1, 0, 1, 0, 0)
    connect_records = [r for r in caplog.records if "connect ahead" in r.getMessage()]
    # (with the native lane, its threads connect ahead instead of the exporter: quietly, logging nothing)
    assert connect_records or lane_available()
    assert all(r.levelno == logging.DEBUG for r in connect_records)


@pytest.mark.parametrize("protocol", ["grpc", "http/protobuf"])
def test_loading_the_client_chooses_the_zstd_binding(protocol: str) -> None:
    """An exporter's transports ask for the zstd binding when they are made (on the bridge, at the first export):
    it is imported when the client is loaded instead, on the application's thread."""
    script = textwrap.dedent(
        f"""
        import sys
        from aiotlp.transport import require_client
        assert "zstandard" not in sys.modules
        require_client({protocol!r}, load=True)
        print("zstandard" in sys.modules)
        """
    )
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=True)
    assert out.stdout.strip() == "True"


APP = """
import sys

from opentelemetry import trace

with trace.get_tracer("app").start_as_current_span("first"):
    pass
print("ended", flush=True)
sys.stdin.readline()
# exit without shutdown: the provider's exit hook flushes
"""


@pytest.mark.parametrize("protocol", ["grpc", "http/protobuf"])
def test_auto_configured_app_connects_at_its_first_span(tmp_path: Path, protocol: str) -> None:
    """``OTEL_PYTHON_CONFIGURATOR=aiotlp OTEL_TRACES_EXPORTER=aiotlp opentelemetry-instrument python app.py``: the
    processor is aiotlp's, behind aiotlp's provider; it connects when the first span ends."""
    (tmp_path / "app.py").write_text(APP, encoding="utf-8")
    with behind_a_proxy(protocol) as (collector, proxy):
        env = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}
        env.update(
            PYTHONPATH=os.pathsep.join([str(metadata(tmp_path / "metadata")), str(SRC)]),
            OTEL_PYTHON_CONFIGURATOR="aiotlp",
            OTEL_TRACES_EXPORTER="aiotlp",
            OTEL_METRICS_EXPORTER="none",
            OTEL_LOGS_EXPORTER="none",
            OTEL_EXPORTER_OTLP_PROTOCOL=protocol,
            OTEL_EXPORTER_OTLP_ENDPOINT=f"http://127.0.0.1:{proxy.port}",
            OTEL_BSP_SCHEDULE_DELAY="60000",
        )
        # connected, nothing sent yet, when the span has ended
        run_app([str(INSTRUMENT), sys.executable, "app.py"], tmp_path, env, proxy, collector, made_ahead(protocol), [])
        assert [span.name for span in collector.spans()] == ["first"]
        assert proxy.connections == made_ahead(protocol)


FORKING_APP = """
import os
import sys

from opentelemetry.sdk.trace import TracerProvider

from aiotlp.sdk import BatchSpanProcessor, SpanExporter

processor = BatchSpanProcessor(SpanExporter(sys.argv[1], protocol="grpc"), schedule_delay_millis=60_000)
provider = TracerProvider(shutdown_on_exit=False)
provider.add_span_processor(processor)
tracer = provider.get_tracer("app")
with tracer.start_as_current_span("parent"):
    pass
assert processor.force_flush(10_000)
pid = os.fork()
if pid == 0:  # a worker: its own processor state, its own bridge, its own connection, made at its first span
    with tracer.start_as_current_span("child"):
        pass
    print("ended", flush=True)
    sys.stdin.readline()
    provider.shutdown()
    stats = processor.statistics()
    os._exit(0 if (stats.produced, stats.exported) == (1, 1) else 3)
_, status = os.waitpid(pid, 0)
provider.shutdown()
sys.exit(os.waitstatus_to_exitcode(status))
"""


def test_a_forked_worker_connects_at_its_first_span(tmp_path: Path) -> None:
    (tmp_path / "app.py").write_text(FORKING_APP, encoding="utf-8")
    with CollectorThread() as collector, ProxyThread(collector.collector.grpc_port) as proxy:
        command = [sys.executable, "app.py", f"http://127.0.0.1:{proxy.port}"]
        env = {**os.environ, "PYTHONPATH": str(SRC)}
        # the child's connection(s), made before it sent anything
        run_app(command, tmp_path, env, proxy, collector, 2 * made_ahead("grpc"), ["parent"])
        assert sorted(span.name for span in collector.spans()) == ["child", "parent"]
        assert proxy.connections == 2 * made_ahead("grpc")


def run_app(
    command: list[str],
    cwd: Path,
    env: dict[str, str],
    proxy: TcpProxy,
    collector: CollectorThread,
    connections: int,
    sent: list[str],
) -> None:
    """Run an app that prints ``ended`` once its span has ended, then waits for a line: by then the proxy must
    have taken ``connections`` connections while the collector holds only the spans named ``sent``; then let it
    exit, and it must exit with 0."""
    app = subprocess.Popen(
        command, cwd=cwd, env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    try:
        assert app.stdout is not None and app.stdout.readline().strip() == "ended"
        assert proxy.wait_for_connections(connections, 10.0)
        assert [span.name for span in collector.spans()] == sent
        out, err = app.communicate("\n", timeout=60)
    finally:
        if app.poll() is None:
            app.kill()
            app.communicate()
    assert app.returncode == 0, out + err
