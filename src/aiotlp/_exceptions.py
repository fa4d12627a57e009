"""Every exception aiotlp raises, in one tree.

```
AiotlpError
├── ConfigurationError (also a ValueError)      bad argument or environment variable, raised at configuration time
├── MissingExtraError (also an ImportError)     an optional dependency is not installed; names the extra
├── EncodeError (also a ValueError)             telemetry that cannot be encoded (a value out of range, ...)
├── DurableQueueError                           the disk queue's directory cannot be used (unsafe, unreadable)
│   └── QueueLockedError                        another queue (this process or another) holds the directory
└── ExportError                                 an export did not succeed
    ├── RetryableError                          may succeed if sent again; carries the server's delay, if any
    │   ├── ConnectError                        connection refused, reset, or closed without a response
    │   ├── AttemptTimeoutError                 one attempt ran out of time
    │   └── ServerBusyError                     HTTP 429/502/503/504, gRPC UNAVAILABLE and friends
    └── PermanentError                          sending it again will not help
        ├── RejectedError                       the collector refused the request (HTTP 4xx/5xx, gRPC status)
        ├── ProtocolMismatchError               the endpoint speaks the other OTLP protocol (a wrong port)
        ├── ResponseError                       the response could not be read (too large, malformed)
        ├── RequestTooLargeError                one item alone is over the request byte cap
        ├── RetriesExhaustedError               every attempt failed; ``last`` is the final RetryableError
        ├── DeadlineExceededError               the export deadline passed before success
        ├── ExporterShutdownError               the exporter was shut down
        ├── QueueFullError                      the disk queue is full (its byte cap, or the disk): batch dropped
        └── QueueWriteError                     the disk queue could not write the batch (EIO, ...): dropped
```

Errors from grpc, aiohttp and the OS are translated into this tree at the transport boundary, so callers never
catch a foreign exception. No message ever contains a header value.
"""

from __future__ import annotations

__all__ = [
    "AiotlpError",
    "AttemptTimeoutError",
    "ConfigurationError",
    "ConnectError",
    "DeadlineExceededError",
    "DurableQueueError",
    "EncodeError",
    "ExportError",
    "ExporterShutdownError",
    "MissingExtraError",
    "PermanentError",
    "ProtocolMismatchError",
    "QueueFullError",
    "QueueLockedError",
    "QueueWriteError",
    "RejectedError",
    "RequestTooLargeError",
    "ResponseError",
    "RetriesExhaustedError",
    "RetryableError",
    "ServerBusyError",
]


class AiotlpError(Exception):
    """Base class of every aiotlp exception."""


class ConfigurationError(AiotlpError, ValueError):
    """An argument or environment variable is invalid. The message names it, never a secret value."""


class MissingExtraError(AiotlpError, ImportError):
    """An optional dependency is missing."""

    def __init__(self, extra: str, module: str) -> None:
        super().__init__(f"{module} is not installed: install it with `pip install 'aiotlp[{extra}]'`")
        self.extra = extra
        self.module = module


class EncodeError(AiotlpError, ValueError):
    """Telemetry that cannot be encoded."""


class DurableQueueError(AiotlpError):
    """The disk queue's directory cannot be used: a symlink where a file or the directory should be, owned by
    another user, or an I/O error while opening it. The message names the path."""

    def __init__(self, message: str, *, directory: str) -> None:
        super().__init__(message)
        self.directory = directory


class QueueLockedError(DurableQueueError):
    """Another :class:`~aiotlp.durable.DurableQueue`, in this process or another one, holds the directory."""


class ExportError(AiotlpError):
    """An export did not succeed.

    ``status`` is the HTTP status code or gRPC status code name when the collector answered, else ``None``.
    """

    retryable: bool = False

    def __init__(self, message: str, *, status: int | str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.status = status


class RetryableError(ExportError):
    """Sending the same request again may succeed.

    ``retry_after`` is the delay in seconds the server asked for (HTTP ``Retry-After`` or gRPC ``RetryInfo``),
    or ``None`` when it gave none.
    """

    retryable = True

    def __init__(self, message: str, *, status: int | str | None = None, retry_after: float | None = None) -> None:
        super().__init__(message, status=status)
        self.retry_after = retry_after


class ConnectError(RetryableError):
    """The connection was refused, reset, or closed before a response arrived."""


class AttemptTimeoutError(RetryableError):
    """One attempt did not finish within its timeout."""


class ServerBusyError(RetryableError):
    """The collector answered with a retryable status (throttled or unavailable)."""


class PermanentError(ExportError):
    """Sending the same request again will not help."""


class RejectedError(PermanentError):
    """The collector refused the request with a non-retryable status."""


class ProtocolMismatchError(PermanentError):
    """The endpoint answered in the other OTLP protocol: OTLP/HTTP sent to an OTLP/gRPC port (HTTP/2 frames came
    back), or OTLP/gRPC to an OTLP/HTTP port (an HTTP/1.x reply). A misconfiguration: never retried; the message
    says what was seen and what to change."""


class ResponseError(PermanentError):
    """The collector's response could not be read: too large, or malformed."""


class RequestTooLargeError(PermanentError):
    """A single item encodes to more than the request byte cap, so it cannot be sent; ``items`` counts it."""

    def __init__(self, message: str, *, items: int = 1) -> None:
        super().__init__(message)
        self.items = items


class RetriesExhaustedError(PermanentError):
    """Every allowed attempt failed with a retryable error; ``last`` is the final one."""

    def __init__(self, message: str, *, last: RetryableError, attempts: int) -> None:
        super().__init__(message, status=last.status)
        self.last = last
        self.attempts = attempts


class DeadlineExceededError(PermanentError):
    """The export deadline passed before the request succeeded."""

    def __init__(self, message: str, *, last: ExportError | None = None, attempts: int = 0) -> None:
        super().__init__(message, status=None if last is None else last.status)
        self.last = last
        self.attempts = attempts


class ExporterShutdownError(PermanentError):
    """The exporter was shut down; nothing more is sent."""


class QueueFullError(PermanentError):
    """The disk queue had no room for a batch: its byte cap is reached, or the disk is full (ENOSPC, EDQUOT).

    The batch was dropped and counted as ``disk_full``; it is never raised to the application by
    :class:`~aiotlp.durable.DurableExporter`, only carried in the :class:`~aiotlp.export.ExportResult`.
    """


class QueueWriteError(PermanentError):
    """The disk queue could not write a batch (an I/O error other than a full disk); it was dropped, counted."""
