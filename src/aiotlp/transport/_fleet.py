"""A fleet of collectors behind one transport: round robin over the healthy ones, failover, backoff, recovery.

:class:`FleetTransport` holds one inner transport per collector (an :class:`~aiotlp.transport.HttpTransport` per
URL, an :class:`~aiotlp.transport.H2GrpcTransport` per address, ...) and has the same one-verb interface as each
of them, so it sits where a single transport sits: under ``ConcurrencyLimit -> Retry -> Timeout``.

For each ``send``:

1. pick the next endpoint in round-robin order that is *up*, or that is *down* but whose backoff has run out and
   is not already being probed (the send itself is the probe: at most one at a time per endpoint);
2. send; on success the endpoint is (again) up. A transport returns the collector's reply unread: the fleet has
   it read by the ``classify`` it was given (the export step's reader, see :data:`ReplyClassifier`);
3. on an *endpoint fault* (:func:`is_endpoint_fault`: connection refused, reset or closed before the response,
   the attempt timed out, HTTP 502/503/504 or gRPC UNAVAILABLE, and throttling (HTTP 429, gRPC
   RESOURCE_EXHAUSTED with RetryInfo)) the endpoint goes down for ``min(initial_backoff * multiplier**(n-1),
   max_backoff)`` seconds, jittered (n: its consecutive failures), or the server's ``Retry-After`` if longer, and
   the same bytes go to the next eligible endpoint while the attempt's deadline allows. Each endpoint gets a
   request at most once per ``send``;
4. any other error (a permanent one: 400, 401, 413, ..., or a request-level retryable gRPC status such as
   ABORTED) is passed on at once (the reply returned, a transport's error raised), never failed over: another
   collector would answer the same;
5. when no endpoint is left to try, the last endpoint fault is passed on (retryable), or, if every endpoint was
   already down, a :class:`~aiotlp.ConnectError` raised: the Retry layer above backs off and tries again.

At-least-once, and duplicates. OTLP delivery is at-least-once: the Retry layer re-sends the same bytes after any
retryable error, including those after which the collector may have taken the request (a timeout, a connection
reset after the body was written, a 502/504 from a proxy whose backend processed it). Failing over re-sends it
once too, only sooner and to another collector, so it adds no duplicate a retry would not have made; what it
never does is send the request twice to the endpoint that may have it, within one attempt. A connection that
could not be opened, a GOAWAY before the stream was taken, or an explicit 503/429/UNAVAILABLE means the request
was not processed, and then the failover is duplicate-free.

Names with several addresses (``FleetPolicy.resolve_dns``): :meth:`FleetTransport.resolving` resolves each host
name on the first send and again every ``resolve_interval`` seconds (in the background, the sends go on with the
known addresses), with one inner transport per address: new addresses join the rotation, vanished ones leave it
(their transport is closed once idle). A failed re-resolution keeps the addresses known so far.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import random
import socket
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Final, Literal

from .._exceptions import (
    AttemptTimeoutError,
    ConfigurationError,
    ConnectError,
    ExportError,
    PermanentError,
    RetryableError,
    ServerBusyError,
)
from .._validate import is_number
from ._base import Reply, Transport

__all__ = [
    "EndpointState",
    "EndpointStatistics",
    "FleetPolicy",
    "FleetTransport",
    "ReplyClassifier",
    "Resolver",
    "is_endpoint_fault",
    "resolve_host",
]

logger = logging.getLogger("aiotlp.transport.fleet")

EndpointState = Literal["up", "down"]

Resolver = Callable[[str, int], Awaitable[Sequence[tuple[str, int]]]]
"""``async resolver(host, port)`` -> the ``(address, port)`` pairs to connect to, in preference order."""

ReplyClassifier = Callable[[Reply, str], "ExportError | None"]
"""``classify(reply, content_type)`` -> the error a collector's reply to a request of ``content_type`` means, or
``None`` for a success. The export step supplies it (:func:`aiotlp.export.reply_error`): a transport does not
read replies, but a fleet must know which ones say that the endpoint cannot serve now."""

#: How much earlier than this send's own deadline a cancellation still counts as the attempt timing out.
_DEADLINE_SLACK: Final = 0.005

#: Statuses (HTTP codes, gRPC code names) that say the *endpoint* cannot serve now, not that the request is bad.
_ENDPOINT_STATUSES: Final = frozenset({429, 502, 503, 504, "UNAVAILABLE", "RESOURCE_EXHAUSTED"})


def is_endpoint_fault(error: ExportError) -> bool:
    """Whether ``error`` says the endpoint (not the request) failed, so that another collector may succeed.

    True for a connection refused/reset/closed (:class:`~aiotlp.ConnectError`), an attempt timeout, and the
    retryable statuses of an unavailable or throttling server (HTTP 429, 502, 503, 504; gRPC UNAVAILABLE, and
    RESOURCE_EXHAUSTED when it carries RetryInfo, the only way it is retryable). False for every permanent error
    and for request-level retryable gRPC statuses (CANCELLED, ABORTED, OUT_OF_RANGE, DATA_LOSS).
    """
    if isinstance(error, ConnectError | AttemptTimeoutError):
        return True
    return isinstance(error, ServerBusyError) and error.status in _ENDPOINT_STATUSES


@dataclass(frozen=True, slots=True)
class FleetPolicy:
    """How a fleet treats its endpoints. Durations in seconds.

    A down endpoint rests ``min(initial_backoff * multiplier**(n-1), max_backoff)`` after its n-th consecutive
    failure, scaled by a random factor in ``[1 - jitter, 1 + jitter]`` (so a fleet of exporters does not probe
    a recovering collector in lockstep), or the server's ``Retry-After`` when longer.

    ``resolve_dns``: gRPC only. Connect to *every* address a host name resolves to, round robin among them, as
    grpc's ``round_robin`` policy does over a DNS name with several A/AAAA records (without it a name is
    connected to as one endpoint, its first reachable address). Names are resolved on the first send and again
    every ``resolve_interval`` seconds.
    """

    initial_backoff: float = 0.5
    max_backoff: float = 30.0
    multiplier: float = 2.0
    jitter: float = 0.2
    resolve_dns: bool = False
    resolve_interval: float = 30.0

    def __post_init__(self) -> None:
        for name in ("initial_backoff", "max_backoff", "multiplier", "jitter", "resolve_interval"):
            value = getattr(self, name)
            if not is_number(value) or not math.isfinite(value):
                raise ConfigurationError(f"FleetPolicy.{name}: must be a finite number, got {value!r}")
        if not self.initial_backoff > 0:
            raise ConfigurationError(f"FleetPolicy.initial_backoff: must be > 0 seconds, got {self.initial_backoff!r}")
        if not self.max_backoff >= self.initial_backoff:
            raise ConfigurationError(
                f"FleetPolicy.max_backoff ({self.max_backoff!r}) must be >= initial_backoff ({self.initial_backoff!r})"
            )
        if not self.multiplier >= 1:
            raise ConfigurationError(f"FleetPolicy.multiplier: must be >= 1, got {self.multiplier!r}")
        if not 0 <= self.jitter < 1:
            raise ConfigurationError(f"FleetPolicy.jitter: must be in [0, 1), got {self.jitter!r}")
        if not self.resolve_interval > 0:
            raise ConfigurationError(
                f"FleetPolicy.resolve_interval: must be > 0 seconds, got {self.resolve_interval!r}"
            )
        if not isinstance(self.resolve_dns, bool):
            raise ConfigurationError(f"FleetPolicy.resolve_dns: must be a bool, got {type(self.resolve_dns).__name__}")

    def backoff(self, failures: int, rng: random.Random) -> float:
        """How long an endpoint rests after its ``failures``-th consecutive failure (1-based), jitter included."""
        base = min(self.initial_backoff * self.multiplier ** min(failures - 1, 64), self.max_backoff)
        if self.jitter:
            base *= 1 + rng.uniform(-self.jitter, self.jitter)
        return base


@dataclass(frozen=True, slots=True)
class EndpointStatistics:
    """One endpoint of a fleet, as :meth:`FleetTransport.statistics` saw it.

    * ``endpoint``: the URL (credentials shown as ``***``), and the address after it for a resolved name;
    * ``state``: ``"up"`` or ``"down"``; ``retry_in``: seconds until a down endpoint may be probed (0 when it
      may be now; 0 when up);
    * ``requests``: sends started to it; ``successes`` + ``failures`` + the sends still in flight == requests;
    * ``failovers``: of its failures, those whose request was then sent to another endpoint in the same attempt;
    * ``consecutive_failures``: its endpoint faults since its last success (sets the backoff);
    * ``sent_bytes``: the bytes of the requests it was sent (as sent: compressed when they were);
    * ``last_error``: ``"ErrorClass: message"`` of its last failure (aiotlp's messages hold no secrets).
    """

    endpoint: str
    state: EndpointState
    requests: int
    successes: int
    failures: int
    failovers: int
    consecutive_failures: int
    sent_bytes: int
    retry_in: float = 0.0
    last_error: str | None = None


class _Member:
    """One endpoint's transport and health. Mutated only on the event loop."""

    __slots__ = (
        "down_until",
        "failovers",
        "failures",
        "in_flight",
        "key",
        "label",
        "last_error",
        "probing",
        "requests",
        "retired",
        "sent_bytes",
        "streak",
        "successes",
        "transport",
        "up",
    )

    def __init__(self, label: str, transport: Transport, key: object = None) -> None:
        self.label = label
        self.transport = transport
        self.key = key if key is not None else label
        self.up = True
        self.down_until = 0.0
        self.probing = False
        self.streak = 0
        self.requests = 0
        self.successes = 0
        self.failures = 0
        self.failovers = 0
        self.in_flight = 0
        self.sent_bytes = 0
        self.retired = False
        self.last_error: str | None = None


@dataclass(frozen=True, slots=True)
class _Name:
    label: str  # the configured endpoint, for display
    host: str
    port: int


async def resolve_host(host: str, port: int) -> list[tuple[str, int]]:
    """The default :data:`Resolver`: ``getaddrinfo`` (TCP), every distinct address in the resolver's order."""
    loop = asyncio.get_running_loop()
    infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    addresses: list[tuple[str, int]] = []
    for _family, _type, _proto, _name, sockaddr in infos:
        address = (str(sockaddr[0]), int(sockaddr[1]))
        if address not in addresses:
            addresses.append(address)
    return addresses


class FleetTransport:
    """Sends each request to one of several collectors: round robin, failover, backoff (module docstring).

    ``members`` pairs a label (the endpoint as shown in logs and statistics: no credentials) with its transport;
    every transport must have the same configuration but the endpoint (``compression`` and ``content_type`` are
    taken from the first). ``rng`` drives the backoff jitter (inject one for reproducible tests). ``classify``
    reads a reply (:data:`ReplyClassifier`): without it every reply counts as an answer and only failures of
    the transport itself (refused, reset, timeout) fail over.
    """

    def __init__(
        self,
        members: Sequence[tuple[str, Transport]],
        *,
        policy: FleetPolicy | None = None,
        rng: random.Random | None = None,
        classify: ReplyClassifier | None = None,
    ) -> None:
        if not members:
            raise ConfigurationError("FleetTransport: needs at least one endpoint")
        self.policy = policy if policy is not None else FleetPolicy()
        self.classify = classify
        """How replies are read (:data:`ReplyClassifier`); an exporter sets it on a fleet made without one."""
        self._rng = rng if rng is not None else random.Random()
        self._members: list[_Member] = [_Member(label, transport) for label, transport in members]
        self._prototype: Transport = members[0][1]
        self.content_type: str = self._prototype.content_type
        self.compression: str = self._prototype.compression
        self._next = 0
        self._closed = False
        self._names: tuple[_Name, ...] = ()
        self._factory: Callable[[int, tuple[str, int]], Transport] | None = None
        self._resolver: Resolver = resolve_host
        self._resolve_at = 0.0
        self._resolving: asyncio.Task[None] | None = None
        self._idle_closes: set[asyncio.Task[None]] = set()
        self._owns_prototype = False

    @classmethod
    def resolving(
        cls,
        prototype: Transport,
        names: Sequence[tuple[str, str, int]],
        factory: Callable[[int, tuple[str, int]], Transport],
        *,
        policy: FleetPolicy | None = None,
        rng: random.Random | None = None,
        resolver: Resolver | None = None,
        classify: ReplyClassifier | None = None,
    ) -> FleetTransport:
        """A fleet over every address of each ``(label, host, port)`` in ``names``, resolved on the first send
        and every ``policy.resolve_interval`` seconds; ``factory(index, address)`` makes the transport of one
        address of ``names[index]``.

        ``prototype`` is a transport of the same configuration, used only for ``compression`` and
        ``content_type`` (it never sends) and closed with the fleet. ``resolver`` replaces ``getaddrinfo``.
        """
        if not names:
            raise ConfigurationError("FleetTransport: needs at least one endpoint")
        fleet = cls.__new__(cls)
        fleet.policy = policy if policy is not None else FleetPolicy()
        fleet._rng = rng if rng is not None else random.Random()
        fleet._members = []
        fleet._prototype = prototype
        fleet.content_type = prototype.content_type
        fleet.compression = prototype.compression
        fleet.classify = classify
        fleet._next = 0
        fleet._closed = False
        fleet._names = tuple(_Name(label, host, port) for label, host, port in names)
        fleet._factory = factory
        fleet._resolver = resolver if resolver is not None else resolve_host
        fleet._resolve_at = 0.0
        fleet._resolving = None
        fleet._idle_closes = set()
        fleet._owns_prototype = True
        return fleet

    def __repr__(self) -> str:
        where = ", ".join(m.label for m in self._members) or ", ".join(n.label for n in self._names)
        return f"FleetTransport([{where}])"

    # -- the Transport interface

    async def send(self, body: bytes, *, content_encoding: str, timeout: float) -> Reply:
        if self._closed:
            raise PermanentError("the fleet transport is closed")
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        if self._names:
            await self._maybe_resolve(loop)
        tried: list[_Member] = []
        last: RetryableError | Reply | None = None
        while True:
            now = loop.time()
            member = self._pick(now, tried)
            if member is None:
                break
            remaining = deadline - now
            if remaining <= 0:
                if member.probing and not member.up:
                    member.probing = False
                break
            if last is not None:
                tried[-1].failovers += 1
            tried.append(member)
            probe = not member.up
            member.requests += 1
            member.in_flight += 1
            member.sent_bytes += len(body)
            try:
                reply = await member.transport.send(body, content_encoding=content_encoding, timeout=remaining)
                classify = self.classify
                error = classify(reply, self.content_type) if classify is not None else None
            except RetryableError as exc:
                fault = is_endpoint_fault(exc)
                self._failed(member, exc, loop.time(), probe=probe, fault=fault)
                if not fault:  # it answered: reachable; the request-level error is the Retry layer's to handle
                    self._mark_up(member)
                    raise
                last = exc
                continue
            except ExportError as exc:
                # It answered (or the request is at fault): the endpoint is reachable, the error is final.
                self._failed(member, exc, loop.time(), probe=probe, fault=False)
                self._mark_up(member)
                raise
            except asyncio.CancelledError:
                # The Timeout layer cancels at its deadline, computed a moment before ours: that is a timeout.
                if loop.time() >= deadline - _DEADLINE_SLACK:
                    error = AttemptTimeoutError(f"no response from {member.label} before the attempt's deadline")
                    self._failed(member, error, loop.time(), probe=probe, fault=True)
                else:  # cancelled by the caller (shutdown, ...): counted, but says nothing about the endpoint
                    member.failures += 1
                    member.last_error = "CancelledError: the send was cancelled"
                    if probe:
                        member.probing = False
                raise
            finally:
                member.in_flight -= 1
                if member.retired and member.in_flight == 0:
                    self._close_later(member)
            if error is None:
                member.successes += 1
                self._mark_up(member)
                return reply
            # It answered with a failure: an endpoint fault fails over, anything else is the caller's to read.
            fault = is_endpoint_fault(error)
            self._failed(member, error, loop.time(), probe=probe, fault=fault)
            if not fault:
                self._mark_up(member)
                return reply
            last = reply
        if isinstance(last, Reply):
            return last
        if last is not None:
            raise last
        if not tried and loop.time() >= deadline:
            raise AttemptTimeoutError("no time left for another attempt before the export deadline")
        raise self._all_down(loop.time())

    async def close(self) -> None:
        """Close every endpoint's transport (their pending sends fail as each transport's ``close`` says).

        :meth:`statistics` still reports the final counters afterwards."""
        self._closed = True
        task = self._resolving
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        for closing in list(self._idle_closes):
            with contextlib.suppress(Exception):
                await closing
        transports = [m.transport for m in self._members]
        if self._owns_prototype:
            transports.append(self._prototype)
        results = await asyncio.gather(*(t.close() for t in transports), return_exceptions=True)
        for result in results:
            if isinstance(result, BaseException) and not isinstance(result, Exception):
                raise result

    async def resolve_now(self) -> None:
        """Resolve the names again now and wait for it (a fleet made by :meth:`resolving`; else nothing to do).

        For an application that learns of a DNS change (or a test); the periodic re-resolution goes on as well.
        """
        if not self._names or self._closed:
            return
        loop = asyncio.get_running_loop()
        task = self._resolving
        if task is None:
            task = self._resolving = loop.create_task(self._resolve(loop))
        await asyncio.shield(task)

    # -- statistics

    def statistics(self) -> tuple[EndpointStatistics, ...]:
        """A snapshot per endpoint (for a resolved name: per address currently in rotation), in rotation order."""
        try:
            now = asyncio.get_running_loop().time()
        except RuntimeError:  # another thread: the default loop clock is time.monotonic()
            now = time.monotonic()
        return tuple(
            EndpointStatistics(
                endpoint=m.label,
                state="up" if m.up else "down",
                requests=m.requests,
                successes=m.successes,
                failures=m.failures,
                failovers=m.failovers,
                consecutive_failures=m.streak,
                sent_bytes=m.sent_bytes,
                retry_in=0.0 if m.up else max(0.0, m.down_until - now),
                last_error=m.last_error,
            )
            for m in self._members
        )

    # -- health

    def _pick(self, now: float, tried: list[_Member]) -> _Member | None:
        members = self._members
        count = len(members)
        for step in range(count):
            index = (self._next + step) % count
            member = members[index]
            if member in tried or member.retired:
                continue
            if member.up or (not member.probing and now >= member.down_until):
                if not member.up:
                    member.probing = True  # one probe at a time: the others skip it until it answers
                self._next = (index + 1) % count
                return member
        return None

    def _failed(self, member: _Member, error: ExportError, now: float, *, probe: bool, fault: bool) -> None:
        member.failures += 1
        member.last_error = f"{type(error).__name__}: {error.message}"
        if probe:
            member.probing = False
        if not fault:
            return
        if member.up or probe:
            member.streak += 1
            delay = self.policy.backoff(member.streak, self._rng)
            if isinstance(error, RetryableError) and error.retry_after is not None:
                delay = max(delay, error.retry_after)
            if member.up:
                logger.warning("collector %s is down (%s); probing it again in %.3gs", member.label, error, delay)
            member.up = False
            member.down_until = now + delay
        # else: a send that began before the endpoint went down; its failure is already accounted for

    def _mark_up(self, member: _Member) -> None:
        if not member.up:
            logger.info("collector %s is back up", member.label)
        member.up = True
        member.probing = False
        member.streak = 0

    def _all_down(self, now: float) -> ConnectError:
        live = [m for m in self._members if not m.retired]
        if not live:
            return ConnectError("no collector address is known yet (name resolution failed)")
        soonest = min(max(0.0, m.down_until - now) for m in live)
        return ConnectError(
            f"all {len(live)} collector endpoints are down (the first may be probed in {soonest:.3g}s): "
            f"{live[0].last_error or 'no error recorded'}"
        )

    # -- name resolution

    async def _maybe_resolve(self, loop: asyncio.AbstractEventLoop) -> None:
        if loop.time() < self._resolve_at:
            return
        task = self._resolving
        if task is None:
            task = self._resolving = loop.create_task(self._resolve(loop))
        if not self._members:  # nothing known yet: this send waits for the first answer
            await asyncio.shield(task)

    async def _resolve(self, loop: asyncio.AbstractEventLoop) -> None:
        try:
            answers = await asyncio.gather(
                *(self._resolver(n.host, n.port) for n in self._names), return_exceptions=True
            )
        finally:
            self._resolving = None
        if self._closed:
            return
        assert self._factory is not None
        known = {m.key: m for m in self._members if not m.retired}
        members: list[_Member] = []
        for index, (name, answer) in enumerate(zip(self._names, answers, strict=True)):
            if isinstance(answer, BaseException):
                if not isinstance(answer, Exception):
                    raise answer
                logger.warning("cannot resolve %s: %s", name.label, _describe(answer))
                members += [m for m in self._members if isinstance(m.key, tuple) and m.key[0] == name.label]
                continue
            for address in answer:
                key = (name.label, address)
                member = known.get(key)
                if member is None:
                    host = f"[{address[0]}]" if ":" in address[0] else address[0]
                    member = _Member(f"{name.label} ({host}:{address[1]})", self._factory(index, address), key)
                members.append(member)
        unique: list[_Member] = []
        for member in members:
            if member not in unique:
                unique.append(member)
        for member in self._members:
            if member not in unique and not member.retired:
                member.retired = True
                if member.in_flight == 0:
                    self._close_later(member)
        self._members = unique
        self._next = self._next % len(unique) if unique else 0
        # Again after the interval; with no address known, at the next send (the Retry layer paces those).
        self._resolve_at = loop.time() + (self.policy.resolve_interval if unique else 0.0)

    def _close_later(self, member: _Member) -> None:
        task = asyncio.get_running_loop().create_task(member.transport.close())
        self._idle_closes.add(task)
        task.add_done_callback(self._idle_closes.discard)


def _describe(error: BaseException) -> str:
    if isinstance(error, OSError) and error.strerror:
        return error.strerror
    return type(error).__name__
