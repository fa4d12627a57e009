"""OTLP/HTTP over aiohttp: POST protobuf or JSON, keep-alive, gzip, deflate or zstd, TLS and mTLS, bounded responses.

``Accept-Encoding`` lists exactly what :class:`~aiotlp.transport.BoundedInflater` decodes (gzip, deflate, and zstd
when a zstd binding imports), not aiohttp's default (which adds ``br`` when Brotli is installed)."""

from __future__ import annotations

import asyncio
import base64
import warnings
from collections.abc import Mapping
from typing import TYPE_CHECKING, Final

import aiohttp
import yarl

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
from ._mismatch import HTTP2_FRAMES, http2_frames_in_text, wrong_port

if TYPE_CHECKING:
    from ..config import SignalConfig

__all__ = ["HttpTransport"]

_READ_CHUNK = 64 * 1024


class HttpTransport:
    """Sends one signal's requests to ``config.endpoint`` (the full URL, ``.../v1/traces``).

    The aiohttp session (and its keep-alive connection pool) is made on first use, inside the running loop.
    Redirects are never followed. The response is read at most ``max_response_bytes`` after decompression.
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
        self._session: aiohttp.ClientSession | None = None
        self._closed = False

    def __repr__(self) -> str:
        return f"HttpTransport({self.config.endpoint_for_display!r}, {self.content_type})"

    def _get_session(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            connector = aiohttp.TCPConnector(ssl=self._ssl if self._ssl is not None else False, limit=0)
            self._session = aiohttp.ClientSession(
                connector=connector, auto_decompress=False, skip_auto_headers=("User-Agent",)
            )
        return self._session

    async def send(self, body: bytes, *, content_encoding: str, timeout: float) -> Reply:
        if self._closed:
            raise PermanentError("the HTTP transport is closed")
        headers = self._encoded_headers.get(content_encoding)
        if headers is None:
            raise PermanentError(f"the HTTP transport cannot send a body encoded as {content_encoding[:20]!r}")
        session = self._get_session()
        try:
            async with session.post(
                self.url,
                data=_payload(body, headers),
                headers=headers,
                allow_redirects=False,
                timeout=aiohttp.ClientTimeout(total=timeout),
            ) as response:
                payload = await self._read(response)
                return Reply(
                    response.status,
                    payload,
                    content_type=response.headers.get("content-type", ""),
                    retry_after=response.headers.get("retry-after"),
                )
        except ExportError:
            raise
        except asyncio.TimeoutError:
            raise AttemptTimeoutError(f"no response from {self._where()} within {timeout:.3g}s") from None
        except aiohttp.ClientConnectorCertificateError as exc:
            raise PermanentError(
                f"TLS certificate verification failed for {self._where()}: {exc.certificate_error}"
            ) from None
        except aiohttp.ClientSSLError as exc:
            raise PermanentError(f"TLS error talking to {self._where()}: {_reason(exc)}") from None
        except aiohttp.ClientConnectorError as exc:
            raise ConnectError(f"cannot connect to {self._where()}: {_reason(exc)}") from None
        except (aiohttp.ClientError, OSError) as exc:
            if http2_frames_in_text(str(exc)):  # an OTLP/gRPC port
                raise wrong_port(self._where(), self.config.protocol, HTTP2_FRAMES) from None
            raise ConnectError(f"connection to {self._where()} failed: {_reason(exc)}") from None
        except (ValueError, TypeError, RuntimeError) as exc:
            # Anything else from aiohttp is a bug or a misuse: keep it permanent, and name only its type (its
            # text may quote the request).
            raise PermanentError(f"the HTTP client failed sending to {self._where()}: {type(exc).__name__}") from None

    async def _read(self, response: aiohttp.ClientResponse) -> bytes:
        length = response.content_length
        encoding = response.headers.get("content-encoding", "identity").strip().lower()
        if length is not None and length > self.max_response_bytes and encoding in ("identity", ""):
            raise ResponseError(
                f"the response from {self._where()} announces {length} bytes, more than {self.max_response_bytes}"
            )
        try:
            inflater = BoundedInflater(encoding, limit=self.max_response_bytes)
        except MissingExtraError:  # zstd, which was not asked for (no binding: Accept-Encoding lacks it)
            raise ResponseError(f"the response from {self._where()} is zstd-encoded, which was not asked for") from None
        async for chunk in response.content.iter_chunked(_READ_CHUNK):
            inflater.feed(chunk)
        return inflater.finish()

    def _where(self) -> str:
        return self.config.endpoint_for_display

    async def close(self) -> None:
        self._closed = True
        if self._session is not None:
            await self._session.close()
            self._session = None


def _split_credentials(endpoint: str) -> tuple[str, str | None]:
    """Move ``user:password@`` out of the URL into a Basic ``Authorization`` value (sent as a header)."""
    url = yarl.URL(endpoint)
    if url.user is None and url.password is None:
        return endpoint, None
    token = base64.b64encode(f"{url.user or ''}:{url.password or ''}".encode()).decode("ascii")
    return str(url.with_user(None)), f"Basic {token}"


def _reason(exc: BaseException) -> str:
    """The error text without anything the request carried (aiohttp messages name only host and port)."""
    os_error = getattr(exc, "os_error", None)
    if isinstance(os_error, OSError) and os_error.strerror:
        return os_error.strerror
    return str(exc) or type(exc).__name__


_LARGE_BODY: Final = 2**20  # aiohttp's TOO_LARGE_BYTES_BODY


def _payload(body: bytes, headers: Mapping[str, str]) -> bytes | aiohttp.BytesPayload:
    """``body`` as aiohttp sends it. Over 1 MiB, aiohttp warns (``ResourceWarning``) that raw bytes "might lock
    the event loop", which only holds for bodies built on the fly: ours is encoded already, and is written to the
    socket as is either way. The payload is made here with that advisory warning silenced (synchronously: no
    other code runs meanwhile), so that no warning escapes ``export_*`` where warnings are errors."""
    if len(body) <= _LARGE_BODY:
        return body
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ResourceWarning)
        return aiohttp.BytesPayload(body, content_type=headers["content-type"])
