"""Endpoint URLs: parsing (with the OTLP rules for schemes, ports and paths), normalizing and redacting."""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence
from dataclasses import dataclass

from ..model import Signal
from ._values import (
    _DEFAULT_PORTS,
    _HOST_RE,
    _PORT_RE,
    _SCHEME_RE,
    OtlpProtocol,
    _fail,
)


@dataclass(frozen=True, slots=True)
class _Url:
    scheme: str  # "http" or "https"
    userinfo: str | None
    host: str  # IPv6 without brackets
    port: int | None
    authority: str  # as written (userinfo included)
    path: str
    suffix: str  # "?query#fragment" as written

    @property
    def effective_port(self) -> int:
        return _DEFAULT_PORTS[self.scheme] if self.port is None else self.port

    @property
    def host_for_url(self) -> str:
        return f"[{self.host}]" if ":" in self.host else self.host


def _parse_url(text: str, name: str, *, grpc: bool, insecure: bool) -> _Url:
    """Split and validate an endpoint. Never puts any part of ``text`` in a message (the scheme neither: a
    scheme-less ``user:password@host`` would show the user)."""
    if not text:
        _fail(f"{name}: the endpoint is empty")
    if any(ch.isspace() or ord(ch) < 0x20 or ord(ch) == 0x7F or ch == "\\" for ch in text):
        _fail(f"{name}: the endpoint contains whitespace, control characters or a backslash")
    match = _SCHEME_RE.match(text)
    if match is None:
        if not grpc:
            _fail(f"{name}: an OTLP/HTTP endpoint must start with http:// or https://")
        scheme, rest = ("http" if insecure else "https"), "//" + text
    else:
        scheme, rest = match.group(1).lower(), text[match.end() :]
        if scheme not in _DEFAULT_PORTS:
            # never quote it: in "user:password@host" the "scheme" is the user name
            _fail(
                f"{name}: unsupported URL scheme: use http:// or https://"
                + (" (or host:port)" if grpc else "")
                + " (the scheme is not shown: in a scheme-less user:password@host it would be the user name)"
            )
    if not rest.startswith("//"):
        _fail(f"{name}: expected '//' after '{scheme}:' in the endpoint")
    rest = rest[2:]
    end = min((i for i in (rest.find(c) for c in "/?#") if i != -1), default=len(rest))
    authority, tail = rest[:end], rest[end:]
    cut = min((i for i in (tail.find(c) for c in "?#") if i != -1), default=len(tail))
    path, suffix = tail[:cut], tail[cut:]

    userinfo, at, hostport = authority.rpartition("@")
    if hostport.startswith("["):
        close = hostport.find("]")
        if close == -1:
            _fail(f"{name}: the endpoint has an unterminated IPv6 address")
        host, after = hostport[1:close], hostport[close + 1 :]
        if after and not after.startswith(":"):
            _fail(f"{name}: unexpected characters after the IPv6 address in the endpoint")
        port_text: str | None = after[1:] if after else None
        try:
            ipaddress.IPv6Address(host)
        except ValueError:
            _fail(f"{name}: the endpoint host is not a valid IPv6 address")
    else:
        host, colon, port_text_ = hostport.partition(":")
        port_text = port_text_ if colon else None
        if not host:
            _fail(f"{name}: the endpoint has no host")
        if not host.isascii():
            try:
                host = host.encode("idna").decode("ascii")
            except UnicodeError:
                _fail(f"{name}: the endpoint host is not a valid internationalized domain name")
        if not _HOST_RE.fullmatch(host):
            _fail(f"{name}: the endpoint host contains characters not allowed in a host name")
    port: int | None = None
    if port_text:  # "http://h:" (empty port) means the default port, as in RFC 3986
        if not _PORT_RE.fullmatch(port_text) or not 1 <= int(port_text) <= 65535:
            _fail(f"{name}: the endpoint port must be a number between 1 and 65535")
        port = int(port_text)
    return _Url(
        scheme=scheme,
        userinfo=userinfo if at else None,
        host=host,
        port=port,
        authority=authority,
        path=path,
        suffix=suffix,
    )


def _normalize_endpoint(
    text: str, name: str, *, protocol: OtlpProtocol, signal: Signal, base: bool, insecure: bool
) -> tuple[str, _Url]:
    """Validate ``text`` and return the endpoint a SignalConfig stores (see the module docstring)."""
    grpc = protocol == "grpc"
    url = _parse_url(text, name, grpc=grpc, insecure=insecure)
    if grpc:
        if url.userinfo is not None:
            _fail(f"{name}: a gRPC endpoint cannot carry user credentials ('user:password@'); use headers")
        return f"{url.scheme}://{url.host_for_url}:{url.effective_port}", url
    path = url.path.rstrip("/") + signal.http_path if base else url.path or "/"
    return f"{url.scheme}://{url.authority}{path}{url.suffix}", url


def _endpoint_arguments(value: object, name: str) -> list[tuple[str, str]]:
    """``(text, name for errors)`` per endpoint of an argument: one ``str``, or a non-empty list/tuple of them."""
    if isinstance(value, str):
        return [(value.strip(), name)]
    if not isinstance(value, Sequence) or isinstance(value, (bytes, bytearray)):
        _fail(f"{name}: must be a str or a list of str, got {type(value).__name__}")
    if not value:
        _fail(f"{name}: the list of endpoints is empty")
    texts: list[tuple[str, str]] = []
    for index, item in enumerate(value):
        if not isinstance(item, str):
            _fail(f"{name}[{index}]: must be a str, got {type(item).__name__}")
        texts.append((item.strip(), f"{name}[{index}]"))
    return texts


def _endpoint_list(text: str, name: str) -> list[tuple[str, str]]:
    """Split a comma-separated list of endpoints from an environment variable; empty entries are skipped."""
    texts = [(entry.strip(), f"{name} entry {index}") for index, entry in enumerate(text.split(","), start=1)]
    texts = [(entry, where) for entry, where in texts if entry]
    if not texts:
        _fail(f"{name}: no endpoint in the list (expected URLs separated by ',')")
    return texts


def _normalize_endpoints(
    texts: Sequence[tuple[str, str]], *, protocol: OtlpProtocol, signal: Signal, base: bool, insecure: bool
) -> tuple[str, ...]:
    """Validate every endpoint of a list: the same scheme for all, none repeated. Messages name the entry."""
    endpoints: list[str] = []
    first_scheme = ""
    for text, name in texts:
        endpoint, url = _normalize_endpoint(text, name, protocol=protocol, signal=signal, base=base, insecure=insecure)
        if not endpoints:
            first_scheme = url.scheme
        elif url.scheme != first_scheme:
            _fail(
                f"{name}: uses {url.scheme}:// but the first endpoint uses {first_scheme}://: every endpoint of "
                "one signal must use the same scheme"
            )
        if endpoint in endpoints:
            _fail(f"{name}: repeats an earlier endpoint of the list (give each collector once)")
        endpoints.append(endpoint)
    return tuple(endpoints)


def _redact_endpoint(endpoint: str) -> str:
    """Replace any ``user:password@`` in a (validated) endpoint by ``***@``."""
    scheme, sep, rest = endpoint.partition("://")
    if not sep:
        return endpoint
    end = min((i for i in (rest.find(c) for c in "/?#") if i != -1), default=len(rest))
    _, at, hostport = rest[:end].rpartition("@")
    return f"{scheme}://***@{hostport}{rest[end:]}" if at else endpoint
