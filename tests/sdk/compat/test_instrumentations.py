"""Real instrumentations from PyPI give the same spans under aiotlp's provider as under the SDK's (issue 16).

Each test is one workload run by the harness under both providers (``tests/sdk/compat/_harness.py``): a FastAPI
app (``opentelemetry-instrumentation-fastapi``) and a plain ASGI app (``-asgi``'s middleware) served in-process
through httpx's ``ASGITransport``, called by an httpx client (``-httpx``), which injects the W3C traceparent
and baggage the server extracts (one trace across client and server); sqlite3 in memory through the DB-API
instrumentation (``-dbapi``, what ``-sqlite3`` wraps: its last release pins an older instrumentation core);
``logging`` (``-logging``: trace ids injected in records, and its ``LoggingHandler`` and the SDK's with the
span context); ``use_span``, ``get_current_span``, baggage, instrumentation hooks, decorators, a synchronous
client and database in a worker thread. The comparison covers names, kinds, attributes, events, links, status,
parent-child structure, resource, scope and ``to_json()``; each test then checks that the workload did what it
meant to, so that two runs that produced nothing cannot pass.

Every workload is compared twice: as a foreign span processor receives the spans (``ReadableSpan``), and as
aiotlp's ``BatchSpanProcessor`` sends them to a FakeCollector (under aiotlp's provider: the bytes come from the
span's core, no Python span object is built); and under each SpanCore implementation.
"""

from __future__ import annotations

import asyncio
import contextvars
import functools
import logging
import sqlite3
from typing import Any

import httpx
import pytest
from fastapi import FastAPI, HTTPException
from opentelemetry import baggage, context, trace
from opentelemetry.instrumentation import dbapi
from opentelemetry.instrumentation.asgi import OpenTelemetryMiddleware
from opentelemetry.instrumentation.fastapi import FastAPIInstrumentor
from opentelemetry.instrumentation.httpx import HTTPXClientInstrumentor
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import SpanLimits
from opentelemetry.sdk.trace.id_generator import IdGenerator
from opentelemetry.sdk.trace.sampling import ALWAYS_OFF, ParentBased, TraceIdRatioBased
from opentelemetry.trace import Link, SpanContext, SpanKind, Status, StatusCode, TraceFlags
from tests.sdk.compat import _harness
from tests.sdk.compat._harness import LOGGER, Run, by_label, compare

from aiotlp.encoding import SPAN_CORES
from aiotlp.testing import FakeCollector

RESOURCE = Resource.create({"service.name": "shop", "service.instance.id": "1", "deployment.environment": "test"})

# ids the workload chooses itself: the same in both runs, so they are compared as they are
REMOTE_TRACE_ID = 0x0AF7651916CD43DD8448EB211C80319C
REMOTE_SPAN_ID = 0xB7AD6B7169203331
FIXED_LINK = SpanContext(
    0x1234567890ABCDEF1234567890ABCDEF, 0x1122334455667788, is_remote=True, trace_flags=TraceFlags(TraceFlags.SAMPLED)
)
CHOSEN = frozenset({REMOTE_TRACE_ID, REMOTE_SPAN_ID, FIXED_LINK.trace_id, FIXED_LINK.span_id})

log = logging.getLogger(LOGGER)


class CountingIds(IdGenerator):
    """Ids from counters, the same in both runs (the harness copies it for each): a ratio sampler then decides
    the same way under both providers. The trace ids' low 64 bits, which the ratio sampler reads, are spread."""

    def __init__(self) -> None:
        self.spans = 0
        self.traces = 0

    def generate_span_id(self) -> int:
        self.spans += 1
        return 0x5EED << 32 | self.spans

    def generate_trace_id(self) -> int:
        self.traces += 1
        return 0x7ACE << 96 | (self.traces * 0x9E3779B97F4A7C15) % 2**64


@pytest.fixture(autouse=True, params=list(SPAN_CORES))
def span_core(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Each test with each SpanCore implementation under aiotlp's provider: ``"python"``, and ``"c"`` when the
    extension has it (as in tests/sdk/test_provider.py)."""
    core: str = request.param
    monkeypatch.setitem(
        _harness.PROVIDERS, "aiotlp", functools.partial(_harness.AiotlpTracerProvider, _implementation=core)
    )
    return core


@pytest.fixture(params=["processor", "collector"])
def capture(request: pytest.FixtureRequest) -> FakeCollector | None:
    """How the spans are captured (tests/sdk/compat/_harness.py's ``run``): as a foreign processor receives them
    (``None``), and as aiotlp's batch processor sends them to a collector (under aiotlp's provider: from the
    span's core). The collector is tests/sdk/conftest.py's fixture, started outside the test's body."""
    if request.param == "processor":
        return None
    collector: FakeCollector = request.getfixturevalue("collector")
    return collector


def shop(run: Run) -> FastAPI:
    """A FastAPI app whose handlers use the tracer, baggage, logging and the instrumented database."""
    tracer = run.tracer
    app = FastAPI()
    database = dbapi.instrument_connection(
        "compat.sqlite3", sqlite3.connect(":memory:"), "sqlite", tracer_provider=run.provider
    )
    cursor = database.cursor()
    cursor.execute("CREATE TABLE items (id INTEGER PRIMARY KEY, name TEXT)")
    cursor.executemany("INSERT INTO items (id, name) VALUES (?, ?)", [(7, "lamp"), (8, "desk")])

    @app.get("/items/{item_id}")
    async def read_item(item_id: int, q: str = "") -> dict[str, Any]:
        log.info("reading item %d", item_id, extra={"item.id": item_id})
        with tracer.start_as_current_span("load item", attributes={"item.id": item_id}) as span:
            span.set_attribute("baggage.user", str(baggage.get_baggage("user.id")))
            rows = database.cursor().execute("SELECT name FROM items WHERE id = ?", (item_id,)).fetchall()
            span.add_event("loaded", {"rows": len(rows), "query": q})
            assert trace.get_current_span() is span
        if not rows:
            raise HTTPException(status_code=404, detail="no such item")
        return {"item_id": item_id, "name": rows[0][0]}

    @app.post("/orders")
    async def order(payload: dict[str, Any]) -> dict[str, Any]:
        with tracer.start_as_current_span("charge", kind=SpanKind.CLIENT) as span:
            span.set_attributes({"order.items": [1, 2, 3], "order.total": 9.99, "order.paid": True})
            if payload.get("card") == "declined":
                span.set_status(Status(StatusCode.ERROR, "card declined"))
                log.warning("card declined")
        return {"ok": True}

    @app.get("/fail")
    async def fail() -> None:
        raise ValueError("the handler failed")

    @app.get("/sql-error")
    async def sql_error() -> None:
        try:
            database.cursor().execute("SELECT * FROM no_such_table")
        except sqlite3.OperationalError:
            log.exception("query failed")
            raise HTTPException(status_code=500, detail="database") from None

    def server_request_hook(span: Any, scope: dict[str, Any]) -> None:
        if span is not None and span.is_recording():
            span.set_attribute("hook.path", scope["path"])

    FastAPIInstrumentor.instrument_app(app, tracer_provider=run.provider, server_request_hook=server_request_hook)
    return app


async def response_hook(span: Any, request: Any, response: Any) -> None:
    """httpx's hook, as applications write them: reads the live span's attributes, adds an event."""
    if span.is_recording():
        span.add_event("response", {"seen.method": str(dict(span.attributes).get("http.method"))})


def elsewhere(app: Any) -> Any:
    """The ASGI app as a server in another process sees it: each request starts from an empty context, so all it
    knows of the caller's trace is what the request's headers carry (httpx's ASGITransport would otherwise run
    the app in the client's own context, where the client's span is current)."""

    async def isolated(scope: dict[str, Any], receive: Any, send: Any) -> None:
        await contextvars.Context().run(asyncio.ensure_future, app(scope, receive, send))

    return isolated


def client(run: Run, app: Any) -> httpx.AsyncClient:
    instance = httpx.AsyncClient(
        transport=httpx.ASGITransport(app=elsewhere(app), raise_app_exceptions=False), base_url="http://shop"
    )
    HTTPXClientInstrumentor.instrument_client(instance, tracer_provider=run.provider, response_hook=response_hook)
    return instance


async def fastapi_workload(run: Run) -> None:
    tracer = run.tracer
    async with client(run, shop(run)) as http:
        with tracer.start_as_current_span(
            "checkout", attributes={"checkout.step": 1}, links=[Link(FIXED_LINK, {"link.reason": "retry of"})]
        ) as root:
            token = context.attach(baggage.set_baggage("user.id", "42"))
            try:
                log.info("checkout starts")
                assert (await http.get("/items/7", params={"q": "x"})).json() == {"item_id": 7, "name": "lamp"}
                assert (await http.get("/items/99")).status_code == 404
                assert (await http.post("/orders", json={"card": "declined"})).json() == {"ok": True}
                assert (await http.get("/fail")).status_code == 500
                assert (await http.get("/sql-error")).status_code == 500
                assert (await http.get("/missing")).status_code == 404
            finally:
                context.detach(token)
            root.add_event("done", {"requests": 6})


async def test_fastapi_httpx_sqlite_logging(capture: FakeCollector | None) -> None:
    shape = await compare(fastapi_workload, capture=capture, chosen=CHOSEN, resource=RESOURCE)
    spans = by_label(shape["spans"])
    root = spans["checkout#0"]
    assert root["parent"] is None
    assert root["links"] == [
        {
            "span": "1122334455667788",
            "trace": "1234567890abcdef1234567890abcdef",
            "attributes": {"link.reason": "retry of"},
        }
    ]
    # one trace across the client and the server: httpx injected traceparent, the ASGI middleware extracted it
    setup = {"CREATE#0", "INSERT#0"}  # the database's set-up, before the checkout: traces of their own
    assert {span["trace"] for span in shape["spans"] if span["label"] not in setup} == {root["trace"]}
    server = spans["GET /items/{item_id}#0"]
    assert server["kind"] == "SERVER"
    assert server["parent"]["remote"] is True
    assert spans[server["parent"]["span"]]["kind"] == "CLIENT"
    assert spans[server["parent"]["span"]]["parent"]["span"] == "checkout#0"
    assert server["attributes"]["hook.path"] == "/items/7"  # the server hook's
    assert spans["GET#0"]["events"] == [{"name": "response", "attributes": {"seen.method": "GET"}}]  # httpx's hook
    load = spans["load item#0"]
    assert load["parent"]["span"] == "GET /items/{item_id}#0"
    assert load["attributes"]["baggage.user"] == "42"  # baggage crossed the wire too
    selects = [span for span in shape["spans"] if span["name"].startswith("SELECT")]
    assert selects
    assert selects[0]["parent"]["span"] == "load item#0"
    assert selects[0]["attributes"]["db.system"] == "sqlite" or "db.system.name" in selects[0]["attributes"]
    statuses = {span["label"]: span["status"][0] for span in shape["spans"]}
    assert statuses["charge#0"] == "ERROR"
    assert spans["charge#0"]["status"][1] == "card declined"
    assert "ERROR" in {status for label, status in statuses.items() if label.startswith("GET /fail")}
    exceptions = [e for span in shape["spans"] for e in span["events"] if e["name"] == "exception"]
    assert any(e["attributes"]["exception.type"] == "ValueError" for e in exceptions)
    assert selects[-1]["status"] == ["ERROR", "OperationalError: no such table: no_such_table"]
    assert [span["scope"][0] for span in shape["spans"] if span["name"] == "checkout"] == ["compat.workload"]
    assert root["resource"][0]["service.name"] == "shop"
    # logging: ids injected in the records, and both handlers' records carry the span current at the time
    records = {record["message"]: record for record in shape["records"]}
    assert records["checkout starts"]["otelSpanID"] == "checkout#0"
    assert records["reading item 7"]["otelSpanID"] == "GET /items/{item_id}#0"
    assert records["card declined"]["otelSpanID"] == "charge#0"
    assert records["reading item 7"]["otelServiceName"] == "shop"
    for logs in (shape["logs"], shape["sdk_logs"]):
        bodies = {entry["body"]: entry for entry in logs}
        assert bodies["checkout starts"]["span"] == "checkout#0"
        assert bodies["card declined"]["span"] == "charge#0"
        assert bodies["query failed"]["attributes"]["exception.type"] == "OperationalError"


async def plain_asgi(scope: dict[str, Any], receive: Any, send: Any) -> None:
    assert scope["type"] == "http"
    span = trace.get_current_span()
    body = f"{trace.format_span_id(span.get_span_context().span_id)} {baggage.get_baggage('tenant')}".encode()
    await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"text/plain")]})
    await send({"type": "http.response.body", "body": body})


async def asgi_workload(run: Run) -> None:
    app = OpenTelemetryMiddleware(plain_asgi, tracer_provider=run.provider)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=elsewhere(app)), base_url="http://api") as http:
        # a request from elsewhere: its traceparent and baggage, written by hand
        traceparent = f"00-{REMOTE_TRACE_ID:032x}-{REMOTE_SPAN_ID:016x}-01"
        response = await http.get("/remote", headers={"traceparent": traceparent, "baggage": "tenant=acme"})
        span_id, tenant = response.text.split()
        assert tenant == "acme"
        assert span_id != "0000000000000000"
        # an unsampled caller: the server's span is not recorded (parent-based sampling)
        unsampled = f"00-{REMOTE_TRACE_ID:032x}-{REMOTE_SPAN_ID:016x}-00"
        await http.get("/unsampled", headers={"traceparent": unsampled})
        await http.get("/fresh", headers={"traceparent": "00-garbage"})


async def test_asgi_middleware_continues_the_callers_trace(capture: FakeCollector | None) -> None:
    shape = await compare(asgi_workload, capture=capture, chosen=CHOSEN, resource=RESOURCE)
    names = [span["name"] for span in shape["spans"] if span["kind"] == "SERVER"]
    assert names == ["GET /remote", "GET /fresh"]
    remote = shape["spans"][0]
    assert remote["trace"] == f"{REMOTE_TRACE_ID:032x}"
    assert remote["parent"] == {"span": f"{REMOTE_SPAN_ID:016x}", "trace": f"{REMOTE_TRACE_ID:032x}", "remote": True}
    fresh = next(span for span in shape["spans"] if span["name"] == "GET /fresh")
    assert fresh["parent"] is None


async def use_span_workload(run: Run) -> None:
    tracer = run.tracer
    outer = tracer.start_span("outer", kind=SpanKind.PRODUCER, attributes={"n": 1})
    assert trace.get_current_span() is trace.INVALID_SPAN
    with trace.use_span(outer, end_on_exit=False):
        assert trace.get_current_span() is outer
        log.info("in outer")
        inner = tracer.start_span("inner", links=[Link(outer.get_span_context())])
        try:
            with trace.use_span(inner, end_on_exit=True):
                assert trace.get_current_span() is inner
                raise KeyError("missing")
        except KeyError:
            pass
        assert trace.get_current_span() is outer
        ctx = trace.set_span_in_context(outer)
        sibling = tracer.start_span("sibling", context=ctx, kind=SpanKind.CONSUMER)
        sibling.set_status(Status(StatusCode.OK))
        sibling.set_status(Status(StatusCode.ERROR, "too late"))  # OK is final
        sibling.end()
        orphan = tracer.start_span("orphan", context=context.Context())
        orphan.record_exception(RuntimeError("recorded"), attributes={"extra": "x"})
        orphan.end()
    assert trace.get_current_span() is trace.INVALID_SPAN
    outer.update_name("outer renamed")
    outer.end()
    assert not outer.is_recording()
    # the other ways of starting spans that applications use
    with tracer.start_span("span as context manager", kind=SpanKind.CLIENT) as managed:
        managed.set_attributes({"a": 1, "b": [True, False]})
    assert not managed.is_recording()
    with tracer.start_as_current_span("kept open", end_on_exit=False) as kept:
        pass
    assert kept.is_recording()
    kept.end()
    try:
        with tracer.start_as_current_span("quiet", record_exception=False, set_status_on_exception=False):
            raise LookupError("not recorded")
    except LookupError:
        pass

    @tracer.start_as_current_span("decorated sync")
    def decorated(n: int) -> int:
        trace.get_current_span().set_attribute("n", n)
        return n + 1

    @tracer.start_as_current_span("decorated async", attributes={"async": True})
    async def decorated_async(n: int) -> int:
        await asyncio.sleep(0)
        trace.get_current_span().set_attribute("n", n)
        return n * 2

    assert decorated(1) == 2
    assert await decorated_async(2) == 4
    # not sampled: nothing recorded, the context still carried
    with tracer.start_as_current_span(
        "parent of unsampled",
        context=trace.set_span_in_context(
            trace.NonRecordingSpan(SpanContext(REMOTE_TRACE_ID, REMOTE_SPAN_ID, is_remote=True))
        ),
    ) as unsampled:
        assert not unsampled.is_recording()
        assert unsampled.get_span_context().trace_id == REMOTE_TRACE_ID
        log.info("in unsampled")


async def test_use_span_get_current_span_and_links(capture: FakeCollector | None) -> None:
    shape = await compare(use_span_workload, capture=capture, chosen=CHOSEN, resource=RESOURCE)
    spans = by_label(shape["spans"])
    assert set(spans) == {
        "outer renamed#0",
        "inner#0",
        "sibling#0",
        "orphan#0",
        "span as context manager#0",
        "kept open#0",
        "quiet#0",
        "decorated sync#0",
        "decorated async#0",
    }
    assert spans["quiet#0"]["events"] == []
    assert spans["quiet#0"]["status"] == ["UNSET", None]
    assert spans["decorated sync#0"]["attributes"] == {"n": 1}
    assert spans["decorated async#0"]["attributes"] == {"async": True, "n": 2}
    assert spans["inner#0"]["parent"]["span"] == "outer renamed#0"
    assert spans["inner#0"]["links"][0]["span"] == "outer renamed#0"
    assert spans["inner#0"]["status"] == ["ERROR", "KeyError: 'missing'"]
    assert spans["sibling#0"]["status"] == ["OK", None]
    assert spans["orphan#0"]["parent"] is None
    assert spans["orphan#0"]["trace"] != spans["outer renamed#0"]["trace"]
    assert spans["orphan#0"]["events"][0]["attributes"]["extra"] == "x"
    records = {record["message"]: record for record in shape["records"]}
    assert records["in outer"]["otelSpanID"] == "outer renamed#0"
    assert records["in unsampled"]["otelTraceSampled"] is False
    assert records["in unsampled"]["otelTraceID"] == f"{REMOTE_TRACE_ID:032x}"


@pytest.mark.parametrize(
    "provider_kwargs",
    [
        pytest.param({"sampler": ParentBased(ALWAYS_OFF)}, id="parent-based-always-off"),
        pytest.param({"sampler": TraceIdRatioBased(0.0)}, id="ratio-0"),
        pytest.param(
            {"span_limits": SpanLimits(max_attributes=3, max_events=1, max_span_attribute_length=6)}, id="span-limits"
        ),
        pytest.param({}, id="default-resource"),
        pytest.param({"sampler": ParentBased(TraceIdRatioBased(0.5)), "id_generator": CountingIds()}, id="ratio-half"),
    ],
)
async def test_fastapi_workload_with_provider_arguments(
    provider_kwargs: dict[str, Any], capture: FakeCollector | None
) -> None:
    shape = await compare(fastapi_workload, capture=capture, chosen=CHOSEN, **provider_kwargs)
    if "id_generator" in provider_kwargs:
        # the same ids drawn in the same order under both providers: the same traces sampled, the rest not
        assert shape["spans"]  # some traces sampled (the database's set-up: its own traces) ...
        assert not any(record["otelTraceSampled"] for record in shape["records"])  # ... and not the checkout's
    elif "sampler" in provider_kwargs:
        assert shape["spans"] == []
        assert all(record["otelTraceSampled"] is False for record in shape["records"])
        assert {record["otelTraceID"] for record in shape["records"]} != {"0"}  # the context still carried
    elif "span_limits" in provider_kwargs:
        assert shape["spans"]
        assert any(span["dropped_attributes"] for span in shape["spans"])
        assert all(len(span["events"]) <= 1 for span in shape["spans"])
        assert all(len(v) <= 6 for span in shape["spans"] for v in span["attributes"].values() if isinstance(v, str))
    else:
        assert shape["spans"][0]["resource"][0]["service.name"].startswith("unknown_service")
        assert "telemetry.sdk.version" in shape["spans"][0]["resource"][0]


def sync_work(run: Run) -> None:
    """In a worker thread (asyncio.to_thread copies the context): a synchronous httpx client on a MockTransport,
    whose handler reports the traceparent it received, and a sqlite3 query."""

    def handler(request: httpx.Request) -> httpx.Response:
        _, trace_id, span_id, flags = request.headers["traceparent"].split("-")
        log.info("request received", extra={"sent.trace": trace_id, "sent.span": span_id, "sent.flags": flags})
        return httpx.Response(204)

    with httpx.Client(transport=httpx.MockTransport(handler), base_url="http://mock") as http:
        HTTPXClientInstrumentor.instrument_client(http, tracer_provider=run.provider)
        assert http.delete("/carts/1").status_code == 204
    database = dbapi.instrument_connection(
        "compat.sqlite3", sqlite3.connect(":memory:"), "sqlite", tracer_provider=run.provider
    )
    assert database.cursor().execute("SELECT 1").fetchall() == [(1,)]
    database.close()


async def thread_workload(run: Run) -> None:
    with run.tracer.start_as_current_span("clear cart", kind=SpanKind.SERVER):
        await asyncio.to_thread(sync_work, run)


async def test_sync_client_and_database_in_a_thread(capture: FakeCollector | None) -> None:
    shape = await compare(thread_workload, capture=capture, chosen=CHOSEN, resource=RESOURCE)
    spans = by_label(shape["spans"])
    assert spans["DELETE#0"]["parent"]["span"] == "clear cart#0"
    assert spans["SELECT#0"]["parent"]["span"] == "clear cart#0"
    (received,) = [entry for entry in shape["logs"] if entry["body"] == "request received"]
    # the traceparent httpx injected names its own span, in the thread's span's trace
    assert received["attributes"]["sent.span"] == "DELETE#0"
    assert received["attributes"]["sent.trace"] == spans["clear cart#0"]["trace"]
    assert int(received["attributes"]["sent.flags"], 16) & 1  # sampled (the SDK also sets W3C's random flag, 02)
    assert received["span"] == "DELETE#0"


async def test_the_comparison_sees_a_difference(monkeypatch: pytest.MonkeyPatch) -> None:
    """A provider that behaves differently in one way (here: at most one attribute per span) fails the comparison,
    with the first differing span shown."""

    def one_attribute(**kwargs: Any) -> Any:
        return _harness.SDKTracerProvider(span_limits=SpanLimits(max_attributes=1), **kwargs)

    monkeypatch.setitem(_harness.PROVIDERS, "aiotlp", one_attribute)
    with pytest.raises(AssertionError, match=r"spans\[\d+\] differs"):
        await compare(fastapi_workload, chosen=CHOSEN, resource=RESOURCE)


async def test_the_aiotlp_side_runs_aiotlps_provider(span_core: str) -> None:
    async def nothing(run: Run) -> None:
        with run.tracer.start_as_current_span("one") as span:
            assert type(span).__module__ == "aiotlp.sdk._span"

    result = await _harness.run("aiotlp", nothing)
    assert type(result.provider).__module__ == "aiotlp.sdk._provider"
    assert [span.name for span in result.spans.get_finished_spans()] == ["one"]
