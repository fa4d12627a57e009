"""A fleet of collectors: several endpoints for one exporter (round robin, failover, backoff, recovery).

Three levels: the configuration (lists of endpoints, the AIOTLP_EXPORTER_OTLP_ENDPOINTS variables), the
FleetTransport's rules over scripted inner transports (exact, no network), and real exporters against
FakeCollectors on 127.0.0.1 over OTLP/HTTP, gRPC with aiotlp's h2 client, and grpc.aio's round_robin channel.
The load splits are printed (``-s`` shows them).

Private, on purpose: ``aiotlp._backports.timeout_at`` (``asyncio.timeout_at`` on Python 3.11+, its backport on
3.10) bounds the waits.
"""

from __future__ import annotations

import asyncio
import dataclasses
import functools
import random
from collections.abc import AsyncIterator, Sequence

import pytest

from aiotlp import (
    AttemptTimeoutError,
    ConfigurationError,
    ConnectError,
    ExporterConfig,
    OTLPExporter,
    RejectedError,
    RetryPolicy,
    ServerBusyError,
    Signal,
    SignalConfig,
    Span,
)
from aiotlp._backports import timeout_at
from aiotlp.export import reply_error
from aiotlp.testing import FakeCollector, Outcome, Reply, ScriptedTransport
from aiotlp.transport import (
    FleetPolicy,
    FleetTransport,
    GrpcTransport,
    HttpTransport,
    is_endpoint_fault,
    make_transport,
)
from aiotlp.transport import Reply as WireReply

FAST = FleetPolicy(initial_backoff=0.05, max_backoff=0.2, jitter=0.0)
NO_RETRY = RetryPolicy(max_attempts=1)


def span(i: int) -> Span:
    return Span(
        trace_id=(i + 1).to_bytes(16, "big"),
        span_id=(i + 1).to_bytes(8, "big"),
        name=f"op-{i}",
        start_time_unix_nano=1_700_000_000_000_000_000 + i,
        end_time_unix_nano=1_700_000_000_000_000_100 + i,
    )


def split(collectors: Sequence[FakeCollector]) -> list[int]:
    return [len(c.requests(Signal.TRACES)) for c in collectors]


@pytest.fixture
async def pair() -> AsyncIterator[tuple[FakeCollector, FakeCollector]]:
    async with FakeCollector() as a, FakeCollector() as b:
        yield a, b


# -- configuration ------------------------------------------------------------------------------------------


def test_endpoint_list_argument_gives_every_signal_its_urls() -> None:
    config = ExporterConfig.from_env({}, endpoint=["http://a:4318", " http://b:5318/base/ "])
    assert config.traces.endpoints == ("http://a:4318/v1/traces", "http://b:5318/base/v1/traces")
    assert config.logs.endpoints == ("http://a:4318/v1/logs", "http://b:5318/base/v1/logs")
    assert config.traces.endpoint == config.traces.endpoints[0]  # the first, for display and back-compat
    single = ExporterConfig.from_env({}, endpoint="http://a:4318")
    assert single.traces.endpoints == ("http://a:4318/v1/traces",)


def test_env_list_variables_and_their_precedence() -> None:
    env = {
        "AIOTLP_EXPORTER_OTLP_ENDPOINTS": "http://a:1, http://b:2,",  # whitespace and an empty entry: ignored
        "OTEL_EXPORTER_OTLP_ENDPOINT": "http://ignored:9",
        "OTEL_EXPORTER_OTLP_LOGS_ENDPOINT": "http://logs:3/v1/logs",
        "AIOTLP_EXPORTER_OTLP_METRICS_ENDPOINTS": "http://m1:4/x,http://m2:5/y",
    }
    config = ExporterConfig.from_env(env)
    assert config.traces.endpoints == ("http://a:1/v1/traces", "http://b:2/v1/traces")  # list > single, generic
    assert config.logs.endpoints == ("http://logs:3/v1/logs",)  # a per-signal single URL beats a generic list
    assert config.metrics.endpoints == ("http://m1:4/x", "http://m2:5/y")  # per-signal: verbatim
    grpc = ExporterConfig.from_env(
        {"AIOTLP_EXPORTER_OTLP_ENDPOINTS": "c1:4317,c2:4317", "OTEL_EXPORTER_OTLP_INSECURE": "true"}, protocol="grpc"
    )
    assert grpc.traces.endpoints == ("http://c1:4317", "http://c2:4317")
    assert ExporterConfig.from_env({}, endpoint=["a", "b"], protocol="grpc").traces.use_tls


@pytest.mark.parametrize(
    ("env", "argument", "expected"),
    [
        ({"AIOTLP_EXPORTER_OTLP_ENDPOINTS": "http://a:1,http://s3cret@b:99999"}, None, "ENDPOINTS entry 2: .*port"),
        ({"AIOTLP_EXPORTER_OTLP_ENDPOINTS": " , ,"}, None, "no endpoint in the list"),
        ({"AIOTLP_EXPORTER_OTLP_TRACES_ENDPOINTS": "http://a:1,ftp://s3cret@b"}, None, "TRACES_ENDPOINTS entry 2"),
        ({}, ["http://a:1", "http://a:1/"], r"endpoint\[1\]: repeats an earlier endpoint"),
        ({}, ["http://a:1", "https://s3cret:pw@b:1"], r"endpoint\[1\]: uses https:// but the first .* http://"),
        ({}, ["http://a:1", 7], r"endpoint\[1\]: must be a str, got int"),
        ({}, [], "endpoint: the list of endpoints is empty"),
        ({}, b"http://a:1", "endpoint: must be a str or a list of str"),
    ],
)
def test_bad_lists_name_the_entry_never_the_secret(env: dict[str, str], argument: object, expected: str) -> None:
    with pytest.raises(ConfigurationError, match=expected) as caught:
        ExporterConfig.from_env(env, endpoint=argument)  # type: ignore[arg-type]
    assert "s3cret" not in str(caught.value)


def test_signal_config_endpoints_are_validated_and_redacted() -> None:
    config = SignalConfig(
        signal=Signal.TRACES,
        protocol="http/protobuf",
        endpoint="http://a:1/v1/traces",
        endpoints=("http://a:1/v1/traces", "http://user:s3cret@b:2/v1/traces"),
    )
    assert config.endpoints_for_display == ("http://a:1/v1/traces", "http://***@b:2/v1/traces")
    assert "s3cret" not in repr(config) and "***@b:2" in repr(config)
    with pytest.raises(ConfigurationError, match=r"endpoint: must be the first of endpoints"):
        dataclasses.replace(config, endpoint="http://b:2/v1/traces")
    with pytest.raises(ConfigurationError, match=r"endpoints\[1\]: the endpoint port"):
        dataclasses.replace(config, endpoints=("http://a:1/v1/traces", "http://b:0/"))
    # one endpoint: ``endpoint`` wins, so replace(endpoint=...) on a plain config keeps working
    plain = ExporterConfig.from_env({}).traces
    moved = dataclasses.replace(plain, endpoint="http://elsewhere:1/v1/traces")
    assert moved.endpoints == ("http://elsewhere:1/v1/traces",)


def test_fleet_policy_validates() -> None:
    for bad in (
        {"initial_backoff": 0},
        {"max_backoff": 0.1, "initial_backoff": 1},
        {"multiplier": 0.5},
        {"jitter": 1},
        {"resolve_interval": float("nan")},
        {"initial_backoff": True},
    ):
        with pytest.raises(ConfigurationError, match="FleetPolicy"):
            FleetPolicy(**bad)  # type: ignore[arg-type]
    policy = FleetPolicy(initial_backoff=1, max_backoff=5, multiplier=2, jitter=0)
    assert [policy.backoff(n, random.Random(0)) for n in (1, 2, 3, 4, 100)] == [1, 2, 4, 5, 5]


def test_make_transport_picks_a_fleet_only_for_several_endpoints() -> None:
    http = ExporterConfig.from_env({}, endpoint=["http://a:1", "http://b:2"]).traces
    assert isinstance(make_transport(http), FleetTransport)
    assert isinstance(make_transport(dataclasses.replace(http, endpoints=())), HttpTransport)
    grpc = ExporterConfig.from_env({}, endpoint=["http://127.0.0.1:1", "http://127.0.0.1:2"], protocol="grpc").traces
    assert isinstance(make_transport(grpc), FleetTransport)  # h2, the default: one transport per endpoint
    channel = make_transport(grpc, grpc_implementation="grpcio")
    assert isinstance(channel, GrpcTransport)  # one round_robin channel over the addresses
    assert channel.target == "ipv4:127.0.0.1:1,127.0.0.1:2"
    assert ("grpc.lb_policy_name", "round_robin") in channel.channel_options
    names = ExporterConfig.from_env({}, endpoint=["http://a:1", "http://b:2"], protocol="grpc").traces
    assert isinstance(make_transport(names, grpc_implementation="grpcio"), FleetTransport)  # names: a channel each
    with pytest.raises(ConfigurationError, match="resolve_dns: applies to gRPC only"):
        make_transport(http, fleet=FleetPolicy(resolve_dns=True))


def test_is_endpoint_fault() -> None:
    assert is_endpoint_fault(ConnectError("refused"))
    assert is_endpoint_fault(AttemptTimeoutError("slow"))
    for status in (429, 502, 503, 504, "UNAVAILABLE", "RESOURCE_EXHAUSTED"):
        assert is_endpoint_fault(ServerBusyError("busy", status=status))
    for status in ("ABORTED", "CANCELLED", "DATA_LOSS", "OUT_OF_RANGE"):
        assert not is_endpoint_fault(ServerBusyError("request-level", status=status))
    assert not is_endpoint_fault(RejectedError("bad request", status=400))


# -- the fleet's rules, over scripted transports ------------------------------------------------------------


async def rest(fleet: FleetTransport, index: int = 0) -> None:
    """Wait (loop time) until the ``index``-th endpoint's backoff has run out: its ``retry_in``, and one tick of
    looptime's clock, which counts whole microseconds while the fleet's deadlines are float sums."""
    await asyncio.sleep(fleet.statistics()[index].retry_in + 1e-6)


def scripted_fleet(*transports: ScriptedTransport, policy: FleetPolicy = FAST) -> FleetTransport:
    return FleetTransport([(f"e{i}", t) for i, t in enumerate(transports)], policy=policy, rng=random.Random(1))


@pytest.mark.looptime
async def test_round_robin_is_exact_with_concurrent_sends() -> None:
    transports = [ScriptedTransport(default=Outcome(delay=0.001)) for _ in range(3)]
    fleet = scripted_fleet(*transports)
    await asyncio.gather(*(fleet.send(b"x", content_encoding="identity", timeout=5) for _ in range(300)))
    assert [len(t.attempts) for t in transports] == [100, 100, 100]
    stats = fleet.statistics()
    assert [(s.requests, s.successes, s.failures, s.state) for s in stats] == [(100, 100, 0, "up")] * 3


async def test_failover_sends_the_same_bytes_once_to_each_endpoint_at_most() -> None:
    down = ScriptedTransport(default=Outcome(error=ConnectError("refused")))
    also_down = ScriptedTransport(default=Outcome(error=ServerBusyError("HTTP 503", status=503)))
    up = ScriptedTransport()
    fleet = scripted_fleet(down, also_down, up)
    await fleet.send(b"payload", content_encoding="identity", timeout=5)
    assert [[a.body for a in t.attempts] for t in (down, also_down, up)] == [[b"payload"]] * 3
    first, second, third = fleet.statistics()
    assert (first.state, first.failovers, first.consecutive_failures) == ("down", 1, 1)
    assert (second.state, second.failovers, second.last_error) == ("down", 1, "ServerBusyError: HTTP 503")
    assert (third.state, third.successes) == ("up", 1)
    # both down ones rest: the next sends all go to the healthy one
    for _ in range(5):
        await fleet.send(b"more", content_encoding="identity", timeout=5)
    assert (len(down.attempts), len(also_down.attempts), len(up.attempts)) == (1, 1, 6)


async def test_permanent_errors_are_not_failed_over_and_keep_the_endpoint_up() -> None:
    picky = ScriptedTransport([Outcome(error=RejectedError("HTTP 400 Bad Request", status=400))])
    other = ScriptedTransport()
    fleet = scripted_fleet(picky, other)
    with pytest.raises(RejectedError):
        await fleet.send(b"x", content_encoding="identity", timeout=5)
    assert other.attempts == []
    assert fleet.statistics()[0].state == "up" and fleet.statistics()[0].failures == 1
    # a request-level retryable gRPC status is not an endpoint fault either: the Retry layer handles it
    aborting = ScriptedTransport([Outcome(error=ServerBusyError("ABORTED", status="ABORTED"))])
    fleet = scripted_fleet(aborting, other)
    with pytest.raises(ServerBusyError):
        await fleet.send(b"x", content_encoding="identity", timeout=5)
    assert len(other.attempts) == 0 and fleet.statistics()[0].state == "up"


def reading_fleet(*transports: ScriptedTransport, policy: FleetPolicy = FAST) -> FleetTransport:
    """A fleet that reads replies with the exporter's reader, as ``OTLPExporter`` builds it."""
    members = [(f"e{i}", t) for i, t in enumerate(transports)]
    return FleetTransport(members, policy=policy, rng=random.Random(1), classify=reply_error)


async def test_replies_are_read_by_the_classifier_and_endpoint_faults_fail_over() -> None:
    busy = ScriptedTransport(default=Outcome(response=WireReply(503, retry_after="7")))
    picky = ScriptedTransport(default=Outcome(response=WireReply(400)))
    fine = ScriptedTransport()
    fleet = reading_fleet(busy, picky, fine)
    reply = await fleet.send(b"x", content_encoding="identity", timeout=5)
    assert reply.status == 400  # 503 failed over; 400 is the request's fault: returned to be read, not failed over
    assert fine.attempts == []
    first, second, third = fleet.statistics()
    assert (first.state, first.failovers, first.last_error) == (
        "down",
        1,
        "ServerBusyError: HTTP 503 Service Unavailable from collector",
    )
    assert 6.9 < first.retry_in <= 7  # the server's Retry-After, longer than the backoff
    assert (second.state, second.failures, second.last_error) == (
        "up",
        1,
        "RejectedError: HTTP 400 Bad Request from collector",
    )
    assert third.requests == 0
    # every endpoint answers a fault: the last reply is returned (the reader raises it, retryable)
    grpc = [ScriptedTransport(default=Outcome(response=WireReply(200, grpc_status=14))) for _ in range(2)]
    for transport in grpc:
        transport.content_type = "application/grpc"
    fleet = reading_fleet(*grpc)
    reply = await fleet.send(b"x", content_encoding="identity", timeout=5)
    assert reply.grpc_status == 14 and [len(t.attempts) for t in grpc] == [1, 1]
    assert [s.state for s in fleet.statistics()] == ["down", "down"]


async def test_without_a_classifier_every_reply_is_an_answer() -> None:
    busy = ScriptedTransport(default=Outcome(response=WireReply(503)))
    other = ScriptedTransport()
    fleet = scripted_fleet(busy, other)
    assert (await fleet.send(b"x", content_encoding="identity", timeout=5)).status == 503
    assert other.attempts == [] and fleet.statistics()[0].state == "up"


async def test_all_down_raises_a_retryable_error_without_touching_the_network() -> None:
    a = ScriptedTransport(default=Outcome(error=ConnectError("refused a")))
    b = ScriptedTransport(default=Outcome(error=ConnectError("refused b")))
    fleet = scripted_fleet(a, b, policy=FleetPolicy(initial_backoff=10, max_backoff=10, jitter=0))
    with pytest.raises(ConnectError, match="refused b"):  # both tried: the last fault
        await fleet.send(b"x", content_encoding="identity", timeout=5)
    with pytest.raises(ConnectError, match="all 2 collector endpoints are down") as caught:
        await fleet.send(b"x", content_encoding="identity", timeout=5)
    assert caught.value.retryable
    assert (len(a.attempts), len(b.attempts)) == (1, 1)
    assert all(9 < s.retry_in <= 10 for s in fleet.statistics())


@pytest.mark.looptime
async def test_backoff_grows_per_endpoint_and_a_successful_probe_brings_it_back() -> None:
    flaky = ScriptedTransport(
        [Outcome(error=ConnectError("refused"))] * 2
        + [Outcome(error=ServerBusyError("429", status=429, retry_after=0.3))]
    )
    steady = ScriptedTransport()
    policy = FleetPolicy(initial_backoff=0.05, multiplier=2, max_backoff=1, jitter=0)
    fleet = scripted_fleet(flaky, steady, policy=policy)
    loop = asyncio.get_running_loop()
    rests = []
    for _ in range(3):
        # fails on flaky (a probe, after the first), served by steady: the rotation is back at flaky
        await fleet.send(b"x", content_encoding="identity", timeout=5)
        stats = fleet.statistics()[0]
        rests.append(round(stats.retry_in, 2))
        await rest(fleet)  # its backoff: then it may be probed again
    assert rests == [0.05, 0.1, 0.3]  # 0.05, 0.05*2, then the server's Retry-After (longer than 0.2)
    start = loop.time()
    await fleet.send(b"x", content_encoding="identity", timeout=5)  # the probe succeeds
    assert loop.time() - start < 1
    stats = fleet.statistics()[0]
    assert (stats.state, stats.consecutive_failures, stats.requests, stats.successes) == ("up", 0, 4, 1)


@pytest.mark.looptime
async def test_one_probe_at_a_time_while_a_down_endpoint_recovers() -> None:
    recovering = ScriptedTransport([Outcome(error=ConnectError("refused")), Outcome(delay=0.05)])
    steady = ScriptedTransport(default=Outcome(delay=0.01))
    fleet = scripted_fleet(recovering, steady, policy=FleetPolicy(initial_backoff=0.01, jitter=0))
    await fleet.send(b"x", content_encoding="identity", timeout=5)  # recovering fails, steady serves: recovering next
    await rest(fleet)
    await asyncio.gather(*(fleet.send(b"y", content_encoding="identity", timeout=5) for _ in range(10)))
    assert len(recovering.attempts) == 2  # the failure, then exactly one probe while the others went to steady
    assert fleet.statistics()[0].state == "up"


@pytest.mark.looptime
async def test_a_probe_answered_with_a_request_level_error_brings_the_endpoint_back() -> None:
    flaky = ScriptedTransport(
        [Outcome(error=ConnectError("refused")), Outcome(error=ServerBusyError("ABORTED", status="ABORTED"))]
    )
    other = ScriptedTransport()
    fleet = scripted_fleet(flaky, other, policy=FleetPolicy(initial_backoff=0.01, jitter=0))
    await fleet.send(b"x", content_encoding="identity", timeout=5)  # flaky fails, other serves: flaky is next
    await rest(fleet)
    with pytest.raises(ServerBusyError):  # not an endpoint fault: raised for the Retry layer, not failed over
        await fleet.send(b"x", content_encoding="identity", timeout=5)
    stats = fleet.statistics()[0]
    assert (stats.state, stats.failures, stats.consecutive_failures) == ("up", 2, 0)
    for _ in range(2):  # and it is in the rotation again (not stuck probing): other's turn, then flaky's
        await fleet.send(b"x", content_encoding="identity", timeout=5)
    assert (len(flaky.attempts), len(other.attempts)) == (3, 2)


@pytest.mark.looptime
async def test_a_timeout_marks_the_endpoint_down_and_the_next_attempt_goes_elsewhere() -> None:
    hung = ScriptedTransport(default=Outcome(delay=30))
    fine = ScriptedTransport()
    fleet = scripted_fleet(hung, fine)
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 0.05
    with pytest.raises(asyncio.TimeoutError):  # TimeoutError itself from 3.11
        async with timeout_at(deadline):  # as the Timeout layer does (asyncio.timeout_at from 3.11)
            await fleet.send(b"x", content_encoding="identity", timeout=deadline - loop.time())
    stats = fleet.statistics()[0]
    assert (stats.state, stats.failures, stats.last_error) == ("down", 1, stats.last_error)
    assert stats.last_error is not None and stats.last_error.startswith("AttemptTimeoutError")
    await fleet.send(b"x", content_encoding="identity", timeout=5)
    assert len(fine.attempts) == 1


async def test_resolving_fleet_follows_the_names_addresses() -> None:
    answers: dict[str, list[tuple[str, int]]] = {"collectors.test": [("10.0.0.1", 4317), ("10.0.0.2", 4317)]}
    made: dict[tuple[str, int], ScriptedTransport] = {}

    async def resolver(host: str, port: int) -> list[tuple[str, int]]:
        if host not in answers:
            raise OSError(-2, "Name or service not known")
        return answers[host]

    def factory(index: int, address: tuple[str, int]) -> ScriptedTransport:
        made[address] = ScriptedTransport()
        return made[address]

    fleet = FleetTransport.resolving(
        ScriptedTransport(), [("http://collectors.test:4317", "collectors.test", 4317)], factory, resolver=resolver
    )
    for _ in range(4):
        await fleet.send(b"x", content_encoding="identity", timeout=5)
    assert {a: len(t.attempts) for a, t in made.items()} == {("10.0.0.1", 4317): 2, ("10.0.0.2", 4317): 2}
    assert [s.endpoint for s in fleet.statistics()] == [
        "http://collectors.test:4317 (10.0.0.1:4317)",
        "http://collectors.test:4317 (10.0.0.2:4317)",
    ]
    answers["collectors.test"] = [("10.0.0.2", 4317), ("10.0.0.3", 4317)]  # one leaves, one joins
    await fleet.resolve_now()
    await asyncio.sleep(0)  # let the retired transport's close run
    assert made[("10.0.0.1", 4317)].closed
    assert [s.endpoint.rsplit(" ", 1)[1] for s in fleet.statistics()] == ["(10.0.0.2:4317)", "(10.0.0.3:4317)"]
    assert fleet.statistics()[0].requests == 2  # the surviving address keeps its counters
    del answers["collectors.test"]  # resolution fails: the known addresses stay
    await fleet.resolve_now()
    assert len(fleet.statistics()) == 2
    await fleet.close()
    assert all(t.closed for t in made.values())


async def test_resolving_fleet_that_cannot_resolve_fails_retryably() -> None:
    async def resolver(host: str, port: int) -> list[tuple[str, int]]:
        raise OSError(-2, "Name or service not known")

    fleet = FleetTransport.resolving(
        ScriptedTransport(),
        [("http://nowhere.test:4317", "nowhere.test", 4317)],
        lambda i, a: ScriptedTransport(),
        resolver=resolver,
    )
    with pytest.raises(ConnectError, match="no collector address is known"):
        await fleet.send(b"x", content_encoding="identity", timeout=5)
    await fleet.close()


# -- real exporters against FakeCollectors ------------------------------------------------------------------


async def test_http_round_robin_split_is_even(pair: tuple[FakeCollector, FakeCollector]) -> None:
    a, b = pair
    async with OTLPExporter(endpoint=[a.http_endpoint, b.http_endpoint], max_concurrent=8) as exporter:
        results = await asyncio.gather(*(exporter.export_traces([span(i)]) for i in range(100)))
        stats = exporter.endpoints_statistics()
    assert all(r.ok for r in results)
    print(f"\nHTTP fleet split over 100 requests: {split(pair)}")
    assert split(pair) == [50, 50]
    assert [(s.requests, s.successes, s.state) for s in stats] == [(50, 50, "up")] * 2
    assert sorted(s.span_id for c in pair for s in c.spans()) == sorted(span(i).span_id for i in range(100))


async def test_http_failover_when_one_endpoint_refuses(pair: tuple[FakeCollector, FakeCollector]) -> None:
    a, b = pair
    await b.stop()  # its port now refuses connections
    async with OTLPExporter(endpoint=[b.http_endpoint, a.http_endpoint], retry=NO_RETRY, fleet=FAST) as exporter:
        results = [await exporter.export_traces([span(i)]) for i in range(20)]
        dead, alive = exporter.endpoints_statistics()
    assert all(r.ok for r in results), [r.error for r in results if not r.ok]  # no retry: failover did it
    assert split(pair) == [20, 0]
    assert exporter.retries == 0
    assert dead.state == "down" and dead.failures >= 1 and dead.failovers == dead.failures
    assert dead.last_error is not None and dead.last_error.startswith("ConnectError")
    assert (alive.state, alive.successes) == ("up", 20)


@pytest.mark.parametrize("protocol", ["http/protobuf", "grpc"])
async def test_a_fleet_from_a_transport_factory_reads_replies_too(
    pair: tuple[FakeCollector, FakeCollector], protocol: str
) -> None:
    """``transport_factory=make_transport`` (the SDK exporters' way to pick a client) makes the fleet without a
    reader: the exporter gives it its own, so an UNAVAILABLE / 503 still fails over."""
    a, b = pair
    endpoints = [a.grpc_endpoint, b.grpc_endpoint] if protocol == "grpc" else [a.http_endpoint, b.http_endpoint]
    resting = FleetPolicy(initial_backoff=60, max_backoff=60)
    factory = functools.partial(make_transport, fleet=resting)
    async with OTLPExporter(endpoint=endpoints, protocol=protocol, retry=NO_RETRY, transport_factory=factory) as e:
        a.script(Reply(http_status=503))  # gRPC: UNAVAILABLE
        assert (await e.export_traces([span(1)])).ok
        assert (len(a.requests()), len(b.requests())) == (1, 1)  # refused by a, taken by b
        assert [s.state for s in e.endpoints_statistics()] == ["down", "up"]


async def test_http_503_fails_over_but_400_and_401_do_not(pair: tuple[FakeCollector, FakeCollector]) -> None:
    a, b = pair
    resting = FleetPolicy(initial_backoff=60, max_backoff=60)  # a stays down for the rest of the test
    async with OTLPExporter(endpoint=[a.http_endpoint, b.http_endpoint], retry=NO_RETRY, fleet=resting) as exporter:
        a.script(Reply(http_status=503))
        assert (await exporter.export_traces([span(1)])).ok
        assert (len(a.requests()), len(b.requests())) == (1, 1)  # refused by a, taken by b
        assert [s.state for s in exporter.endpoints_statistics()] == ["down", "up"]
        for status in (400, 401):
            b.script(Reply(http_status=status, message="no"))
            result = await exporter.export_traces([span(status)])
            assert isinstance(result.error, RejectedError) and result.error.status == status
        assert len(a.requests()) == 1  # a is resting: both went to b, failed there, and stayed failed
        assert len(b.requests()) == 3
        assert exporter.endpoints_statistics()[1].state == "up"


async def test_http_killed_endpoint_comes_back_after_restart(pair: tuple[FakeCollector, FakeCollector]) -> None:
    a, b = pair
    async with OTLPExporter(endpoint=[a.http_endpoint, b.http_endpoint], retry=NO_RETRY, fleet=FAST) as exporter:
        for i in range(4):
            assert (await exporter.export_traces([span(i)])).ok
        assert split(pair) == [2, 2]
        await b.stop()
        for i in range(10):
            assert (await exporter.export_traces([span(i)])).ok
        assert split(pair) == [12, 2]
        assert exporter.endpoints_statistics()[1].state == "down"
        await b.start()  # same port again
        await asyncio.sleep(exporter.endpoints_statistics()[1].retry_in)  # its backoff: then it may be probed
        for i in range(10):
            assert (await exporter.export_traces([span(i)])).ok
        stats = exporter.endpoints_statistics()
    print(f"\nHTTP fleet split with a restart: {split(pair)}; {[(s.requests, s.failures) for s in stats]}")
    assert stats[1].state == "up"
    assert len(b.requests()) >= 2 + 4  # it took its share again (a probe, then round robin)


async def test_h2_grpc_fleet_round_robin_and_failover(pair: tuple[FakeCollector, FakeCollector]) -> None:
    a, b = pair
    endpoints = [a.grpc_endpoint, b.grpc_endpoint]
    async with OTLPExporter(endpoint=endpoints, protocol="grpc", retry=NO_RETRY, fleet=FAST) as exporter:
        results = await asyncio.gather(*(exporter.export_traces([span(i)]) for i in range(60)))
        assert all(r.ok for r in results)
        print(f"\nh2 gRPC fleet split over 60 requests: {split(pair)}")
        assert split(pair) == [30, 30]
        # a fleet (grpc.aio's channel has no per-endpoint statistics) of aiotlp's h2 clients, as the collectors saw
        assert [s.requests for s in exporter.endpoints_statistics()] == [30, 30]
        agents = {r.headers.get("user-agent", "") for c in pair for r in c.requests()}
        assert agents and all(" grpc-python-aiotlp-h2/" in agent for agent in agents), agents
        await a.stop()
        results = [await exporter.export_traces([span(i)]) for i in range(10)]
        assert all(r.ok for r in results), [r.error for r in results if not r.ok]
        assert split(pair) == [30, 40]
        assert [s.state for s in exporter.endpoints_statistics()] == ["down", "up"]


async def test_h2_grpc_fleet_over_the_addresses_of_one_name(pair: tuple[FakeCollector, FakeCollector]) -> None:
    a, b = pair

    async def resolver(host: str, port: int) -> list[tuple[str, int]]:
        assert (host, port) == ("collectors.test", 4317)
        return [("127.0.0.1", a.grpc_port), ("127.0.0.1", b.grpc_port)]  # as if two A records

    config = ExporterConfig.from_env({}, endpoint="http://collectors.test:4317", protocol="grpc")

    def factory(cfg: SignalConfig) -> FleetTransport:
        transport = make_transport(cfg, fleet=FleetPolicy(resolve_dns=True), resolver=resolver)
        assert isinstance(transport, FleetTransport)
        return transport

    async with OTLPExporter(config, transport_factory=factory) as exporter:
        results = [await exporter.export_traces([span(i)]) for i in range(20)]
        stats = exporter.endpoints_statistics()
    assert all(r.ok for r in results), [r.error for r in results if not r.ok]
    assert split(pair) == [10, 10]
    assert [s.endpoint for s in stats] == [
        f"http://collectors.test:4317 (127.0.0.1:{a.grpc_port})",
        f"http://collectors.test:4317 (127.0.0.1:{b.grpc_port})",
    ]


async def test_h2_resolve_dns_with_the_system_resolver(pair: tuple[FakeCollector, FakeCollector]) -> None:
    a, _ = pair
    endpoint = f"http://localhost:{a.grpc_port}"  # 127.0.0.1, and ::1 where localhost has it (refused: failover)
    policy = FleetPolicy(resolve_dns=True, initial_backoff=60, max_backoff=60)
    async with OTLPExporter(endpoint=endpoint, protocol="grpc", retry=NO_RETRY, fleet=policy) as exporter:
        results = [await exporter.export_traces([span(i)]) for i in range(6)]
        stats = exporter.endpoints_statistics()
    assert all(r.ok for r in results), [r.error for r in results if not r.ok]
    assert len(a.requests()) == 6
    by_address = {s.endpoint.rsplit(" ", 1)[1]: s for s in stats}
    ipv4 = by_address[f"(127.0.0.1:{a.grpc_port})"]
    assert (ipv4.state, ipv4.successes) == ("up", 6)
    assert all(s.endpoint.startswith(endpoint + " (") for s in stats)


async def test_grpcio_round_robin_channel_spreads_calls(pair: tuple[FakeCollector, FakeCollector]) -> None:
    a, b = pair
    endpoints = [a.grpc_endpoint, b.grpc_endpoint]
    async with OTLPExporter(endpoint=endpoints, protocol="grpc", grpc_implementation="grpcio") as exporter:
        assert exporter.endpoints_statistics() == ()  # grpc balances inside the channel: no per-address counts
        # the first calls may all go to the subchannel that connected first; then round robin alternates
        results = [await exporter.export_traces([span(i)]) for i in range(60)]
    assert all(r.ok for r in results)
    counts = split(pair)
    print(f"\ngrpcio round_robin channel split over 60 calls: {counts}")
    assert sum(counts) == 60
    assert min(counts) >= 20, counts
    peers = {r.peer for c in pair for r in c.requests()}
    assert len(peers) == 2  # one connection to each collector


async def test_sdk_exporter_accepts_a_list(pair: tuple[FakeCollector, FakeCollector]) -> None:
    pytest.importorskip("opentelemetry.sdk")
    from aiotlp.sdk import SpanExporter

    a, b = pair
    urls = [a.http_endpoint + "/v1/traces", b.http_endpoint + "/v1/traces"]
    exporter = SpanExporter(endpoint=urls, environ={})
    try:
        config = exporter.config.traces
        assert config.endpoints == tuple(urls)  # verbatim, as the official exporter uses its endpoint=
    finally:
        exporter.shutdown()
