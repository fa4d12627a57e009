"""OTLP/HTTP over aiotlp's own HTTP/1.1 client (:mod:`aiotlp.transport._h1`): POST protobuf or JSON, keep-alive,
gzip, deflate or zstd, TLS and mTLS, bounded responses.

``Accept-Encoding`` lists exactly what :class:`~aiotlp.transport.BoundedInflater` decodes (gzip, deflate, and zstd
when a zstd binding imports). Proxy environment variables (``HTTP_PROXY``, ``HTTPS_PROXY``) are not used, as they
were not with aiohttp before (``trust_env`` off): the transport connects to the collector directly."""

from __future__ import annotations

import asyncio
import base64
import functools
import urllib.parse
from collections.abc import Awaitable, Callable, Mapping
from types import MappingProxyType
from typing import TYPE_CHECKING, TypeVar

from .._backports import timeout as async_timeout
from .._exceptions import (
    AttemptTimeoutError,
    ConfigurationError,
    ConnectError,
    ExportError,
    MissingExtraError,
    PermanentError,
    ResponseError,
)
from . import _zstd
from ._base import IDENTITY, Reply, make_ssl_context, user_agent
from ._compression import ENCODINGS, MAX_RESPONSE_BYTES, BoundedInflater, accepted_encodings
from ._h1 import BadResponse, ConnectFailed, Disconnected, H1Client, H1Error, TLSFailed
from ._mismatch import HTTP2_FRAMES, wrong_port

if TYPE_CHECKING:
    from ..config import SignalConfig

__all__ = ["HttpTransport"]

_T = TypeVar("_T")


class HttpTransport:
    """Sends one signal's requests to ``config.endpoint`` (the full URL, ``.../v1/traces``).

    Its keep-alive connections (an :class:`~aiotlp.transport._h1.H1Client`) are made on first use, inside the
    running loop. Redirects are never followed. The response is read at most ``max_response_bytes`` after
    decompression.
    """

    def __init__(self, config: SignalConfig, *, max_response_bytes: int = MAX_RESPONSE_BYTES) -> None:
        self.config = config
        self.url, basic_auth = _split_credentials(config.endpoint)
        self.json = config.protocol == "http/json"
        self.content_type = "application/json" if self.json else "application/x-protobuf"
        self.max_response_bytes = max_response_bytes
        self.compression: str = config.compression
        if self.compression == "zstd":
            _zstd.binding()  # MissingExtraError now, not at the first export
        self._ssl = make_ssl_context(config)
        headers = {
            "user-agent": user_agent(),
            "accept-encoding": ", ".join(accepted_encodings()),
            **config.headers,
            "content-type": self.content_type,
        }
        if basic_auth is not None:
            if "authorization" in config.headers:
                raise ConfigurationError(
                    "the endpoint carries user:password credentials and an authorization header is also set: "
                    "give only one"
                )
            headers["authorization"] = basic_auth
        self._headers = headers
        self._encoded_headers = {IDENTITY: headers}  # by the body's content-encoding
        for encoding in ENCODINGS:
            self._encoded_headers[encoding] = {**headers, "content-encoding": encoding}
        self._client = H1Client(config.host, config.port, ssl=self._ssl if config.use_tls else None)
        target = _target(self.url)
        # the request line and headers, encoded once per content-encoding
        self._heads = {name: self._client.request_head(target, value) for name, value in self._encoded_headers.items()}
        self._closed = False

    def __repr__(self) -> str:
        return f"HttpTransport({self.config.endpoint_for_display!r}, {self.content_type})"

    @property
    def request_headers(self) -> Mapping[str, str]:
        """The headers every request carries (before ``Content-Encoding``, which each body's encoding adds): the
        user agent, ``Accept-Encoding``, the configured headers, ``Content-Type`` and ``Authorization``."""
        return MappingProxyType(self._headers)

    @property
    def host(self) -> str:
        """Where the requests go: the host to connect to (a name, or an address without brackets)."""
        return self._client.host

    @property
    def port(self) -> int:
        return self._client.port

    @property
    def keepalive(self) -> float:
        """Seconds an idle connection is kept for reuse."""
        return self._client.keepalive

    def head(self, content_encoding: str) -> bytes:
        """The request line and headers of a body in ``content_encoding`` (without ``Content-Length``)."""
        return self._heads[content_encoding]

    @property
    def idle_connections(self) -> int:
        """The keep-alive connections waiting for a request."""
        return self._client.idle

    @property
    def busy_connections(self) -> int:
        """The connections with a request in flight."""
        return self._client.busy

    async def send(self, body: bytes, *, content_encoding: str, timeout: float) -> Reply:
        if self._closed:
            raise PermanentError("the HTTP transport is closed")
        head = self._heads.get(content_encoding)
        if head is None:
            raise PermanentError(f"the HTTP transport cannot send a body encoded as {content_encoding[:20]!r}")
        post = functools.partial(self._client.post, head, body, self._sink)
        response = await self._classified(post, timeout, "no response")
        return Reply(
            response.status,
            response.body,
            content_type=response.headers.get("content-type", ""),
            retry_after=response.headers.get("retry-after"),
        )

    async def connect(self, timeout: float) -> None:
        """Open a keep-alive connection now (none when one is open already), ahead of the first send."""
        if self._closed:
            raise PermanentError("the HTTP transport is closed")
        await self._classified(self._client.preconnect, timeout, "no connection")

    async def _classified(self, step: Callable[[], Awaitable[_T]], timeout: float, late: str) -> _T:
        """``step()``'s result within ``timeout`` seconds (its coroutine made inside the timeout), the HTTP
        client's failures raised as classified :class:`~aiotlp.ExportError` subclasses (``late`` says what did
        not come in time)."""
        try:
            async with async_timeout(timeout):
                return await step()
        except ExportError:
            raise
        except asyncio.TimeoutError:
            raise AttemptTimeoutError(f"{late} from {self._where()} within {timeout:.3g}s") from None
        except TLSFailed as exc:
            if exc.verification:
                raise PermanentError(f"TLS certificate verification failed for {self._where()}: {exc}") from None
            raise PermanentError(f"TLS error talking to {self._where()}: {exc}") from None
        except ConnectFailed as exc:
            raise ConnectError(f"cannot connect to {self._where()}: {exc}") from None
        except BadResponse as exc:
            if exc.http2:  # an OTLP/gRPC port
                raise wrong_port(self._where(), self.config.protocol, HTTP2_FRAMES) from None
            raise ConnectError(f"connection to {self._where()} failed: {exc}") from None
        except Disconnected as exc:
            raise ConnectError(f"connection to {self._where()} failed: {exc}") from None
        except H1Error as exc:
            raise PermanentError(f"the HTTP client failed sending to {self._where()}: {exc}") from None

    def _sink(self, status: int, headers: Mapping[str, str]) -> BoundedInflater:
        """The response body's reader: refuses an announced length over the cap, decodes and bounds the rest."""
        encoding = headers.get("content-encoding", "identity").strip().lower()
        length = headers.get("content-length", "")
        if encoding in ("identity", "") and length.isdigit() and int(length) > self.max_response_bytes:
            raise ResponseError(
                f"the response from {self._where()} announces {int(length)} bytes, more than {self.max_response_bytes}"
            )
        try:
            return BoundedInflater(encoding, limit=self.max_response_bytes)
        except MissingExtraError:  # zstd, which was not asked for (no binding: Accept-Encoding lacks it)
            raise ResponseError(f"the response from {self._where()} is zstd-encoded, which was not asked for") from None

    def _where(self) -> str:
        return self.config.endpoint_for_display

    async def close(self) -> None:
        self._closed = True
        await self._client.close()


def _split_credentials(endpoint: str) -> tuple[str, str | None]:
    """Move ``user:password@`` out of the URL into a Basic ``Authorization`` value (sent as a header)."""
    parts = urllib.parse.urlsplit(endpoint)
    if parts.username is None and parts.password is None:
        return endpoint, None
    user = urllib.parse.unquote(parts.username or "")
    password = urllib.parse.unquote(parts.password or "")
    token = base64.b64encode(f"{user}:{password}".encode()).decode("ascii")
    netloc = parts.netloc.rpartition("@")[2]
    return urllib.parse.urlunsplit(parts._replace(netloc=netloc)), f"Basic {token}"


def _target(url: str) -> str:
    """The request target of ``url``: its path (``/`` when empty) and query, percent-encoded where needed."""
    parts = urllib.parse.urlsplit(url)
    path = urllib.parse.quote(parts.path or "/", safe="/%:@!$&'()*+,;=-._~")
    if parts.query:
        return path + "?" + urllib.parse.quote(parts.query, safe="/?%:@!$&'()*+,;=-._~")
    return path
