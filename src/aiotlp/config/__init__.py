"""Configuration: frozen dataclasses, and the ONE place aiotlp reads environment variables.

Every duration inside aiotlp is a ``float`` number of seconds; milliseconds exist only at the environment
edge. Everything is validated once, when the dataclass is built; every error is a
:class:`~aiotlp._exceptions.ConfigurationError` (also a ``ValueError``) whose message names the environment
variable or the argument at fault. No message ever contains any text of a header entry (name or value: a header
written ``Authorization: Basic <token>`` puts the token in the name), any part of an endpoint URL (not even its
scheme: in a scheme-less ``user:password@host`` it is the user), nor a value that does not look like a file path
(a pasted PEM key); a header is named by its position. ``repr()`` redacts header values and URL credentials.
The readers either raise or, with ``on_invalid="warn"`` (:data:`OnInvalid`), warn with the same message and use
the default.

Precedence, highest first: an explicit keyword argument of ``from_env``; the per-signal variable
(``OTEL_EXPORTER_OTLP_TRACES_TIMEOUT``, ``..._METRICS_...``, ``..._LOGS_...``); the generic variable; the
default. An empty or all-whitespace variable counts as unset; surrounding whitespace is ignored. Only the
variables actually used are read, so a bad variable that something else overrides is never reported.

Exporter, :meth:`ExporterConfig.from_env` (every ``OTEL_EXPORTER_OTLP_X`` also has the per-signal variants):

| variable                                | default                   | rule (note)                          |
|-----------------------------------------|---------------------------|--------------------------------------|
| OTEL_EXPORTER_OTLP_ENDPOINT             | ``http://localhost:4317`` | base URL (1)                         |
|                                         | gRPC, else ``...:4318``   |                                      |
| OTEL_EXPORTER_OTLP_<SIGNAL>_ENDPOINT    | the generic one           | HTTP: the URL to POST to, verbatim   |
| OTEL_EXPORTER_OTLP_PROTOCOL             | ``http/protobuf``         | ``grpc``/``http/protobuf``/          |
|                                         |                           | ``http/json``, any case              |
| OTEL_EXPORTER_OTLP_HEADERS              | none                      | ``k=v,k2=v2`` (2)                    |
| OTEL_EXPORTER_OTLP_TIMEOUT              | ``10000``                 | positive integer ms, per export (3)  |
| OTEL_EXPORTER_OTLP_COMPRESSION          | ``none``                  | ``gzip``/``deflate``/``zstd``/       |
|                                         |                           | ``none``, any case (7)               |
| OTEL_EXPORTER_OTLP_CERTIFICATE          | system CAs                | readable PEM file of trusted CAs     |
| OTEL_EXPORTER_OTLP_CLIENT_KEY           | none                      | readable PEM mTLS key (4)            |
| OTEL_EXPORTER_OTLP_CLIENT_CERTIFICATE   | none                      | readable PEM mTLS certificate (4)    |
| OTEL_EXPORTER_OTLP_INSECURE             | ``false``                 | only ``true``, any case, is true (5) |
| AIOTLP_EXPORTER_OTLP_ENDPOINTS          | none                      | base URLs, comma-separated (6)       |
| AIOTLP_EXPORTER_OTLP_<SIGNAL>_ENDPOINTS | none                      | per-signal URLs, comma-separated (6) |

1. The scheme must be ``http`` or ``https``, the host non-empty, the port 1..65535 (80 for http and 443 for
   https when the URL has none). HTTP appends ``v1/<signal>`` to a base URL's path: ``http://h:4318`` and
   ``http://h:4318/`` give ``http://h:4318/v1/traces``, ``http://h/otlp`` gives ``http://h/otlp/v1/traces``.
   The ``endpoint=`` argument is a base URL too. A per-signal URL with an empty path gets ``/``. gRPC
   normalizes any endpoint to ``http://host:port`` or ``https://host:port`` (the path is ignored), accepts a
   scheme-less ``host:port`` and refuses ``user:password@`` (send credentials as headers).
2. Names and values are whitespace-stripped, then percent-decoded; names are lowercased and must be RFC 7230
   tokens; a value must not contain CR, LF or NUL. Empty entries are skipped; a repeated name: the last wins.
   Errors give the entry's position, never its text.
3. Integers in variables are ASCII digits only (no sign, ``_``, fraction or exponent), at most 18 of them.
   Timeouts are milliseconds, as the specification says; the official Python exporters read seconds, so a value
   under 100 is warned about (once per variable and process) and a fraction like ``2.5`` is refused with the
   unit spelled out.
4. The client key and the client certificate must be set together.
5. gRPC only, and only for a scheme-less endpoint (plaintext if true, else TLS): a scheme always wins.
6. aiotlp's own: several collectors for one exporter (a fleet, see ``docs/fleet.md``). The OTLP specification
   types ``OTEL_EXPORTER_OTLP_ENDPOINT`` as one URL (a ``String``), and a comma is a legal URL character (an RFC
   3986 sub-delimiter), so a list there would change the meaning of valid values: the list has its own
   variables. Entries are separated by ``,`` (write a comma inside a URL as ``%2C``), whitespace around them is
   ignored, empty entries are skipped; each entry follows the rule of its single-URL twin (1). Every entry must
   use the same scheme, and none may repeat. Precedence for a signal: ``AIOTLP_EXPORTER_OTLP_<SIGNAL>_ENDPOINTS``
   > ``OTEL_EXPORTER_OTLP_<SIGNAL>_ENDPOINT`` > ``AIOTLP_EXPORTER_OTLP_ENDPOINTS`` >
   ``OTEL_EXPORTER_OTLP_ENDPOINT``. The ``endpoint=`` argument takes a list too.
7. The specification defines ``gzip`` and ``none``; ``deflate`` (a zlib stream) is accepted as the official
   Python exporters accept it, and ``zstd`` is aiotlp's extension (the OpenTelemetry Collector decodes both over
   HTTP, and zstd over gRPC too). zstd needs a binding: the standard library's ``compression.zstd`` (Python
   3.14+) or ``aiotlp[zstd]``; the transport says so when it is built. grpc.aio cannot send zstd (use the h2
   gRPC client). :data:`COMPRESSIONS` is the list.

Batching, :meth:`BatchConfig.from_env` (``OTEL_BSP_*`` for spans, ``OTEL_BLRP_*`` for logs), and the metric
reader, :meth:`MetricReaderConfig.from_env`:

| variable                                           | default        | rule                          |
|----------------------------------------------------|----------------|-------------------------------|
| OTEL_BSP_SCHEDULE_DELAY / OTEL_BLRP_SCHEDULE_DELAY | 5000 / 1000    | positive integer ms           |
| OTEL_BSP_EXPORT_TIMEOUT / OTEL_BLRP_EXPORT_TIMEOUT | 30000          | positive integer ms           |
| OTEL_BSP_MAX_QUEUE_SIZE / OTEL_BLRP_MAX_QUEUE_SIZE | 2048           | positive integer              |
| OTEL_BSP_MAX_EXPORT_BATCH_SIZE                     | 512            | positive integer, at most the |
| / OTEL_BLRP_MAX_EXPORT_BATCH_SIZE                  |                | max queue size                |
| OTEL_METRIC_EXPORT_INTERVAL                        | 60000          | positive integer ms           |
| OTEL_METRIC_EXPORT_TIMEOUT                         | 30000          | positive integer ms           |
| OTEL_EXPORTER_OTLP_METRICS_TEMPORALITY_PREFERENCE  | ``cumulative`` | ``cumulative``, ``delta`` or  |
|                                                    |                | ``lowmemory``, any case       |
| OTEL_EXPORTER_OTLP_METRICS_DEFAULT_HISTOGRAM_      | ``explicit_    | or ``base2_exponential_       |
| AGGREGATION                                        | bucket_histo-  | bucket_histogram``, any case  |
|                                                    | gram``         |                               |

Invalid values raise a :class:`~aiotlp._exceptions.ConfigurationError`; with ``on_invalid="warn"`` (which
:mod:`aiotlp.sdk` uses, see :data:`OnInvalid`) the values the official Python exporters replace by a default are
warned about and replaced the same way.
"""

from ._batch import BatchConfig, MetricReaderConfig
from ._env import endpoint_from_env, metric_preferences_from_env, queue_dir_from_env, variable_source
from ._exporter import ExporterConfig, SignalConfig
from ._headers import Headers
from ._values import (
    COMPRESSIONS,
    DEFAULT_MAX_REQUEST_BYTES,
    Compression,
    HistogramAggregation,
    OnInvalid,
    OtlpProtocol,
    TemporalityPreference,
)

__all__ = [
    "COMPRESSIONS",
    "DEFAULT_MAX_REQUEST_BYTES",
    "BatchConfig",
    "Compression",
    "ExporterConfig",
    "Headers",
    "HistogramAggregation",
    "MetricReaderConfig",
    "OnInvalid",
    "OtlpProtocol",
    "SignalConfig",
    "TemporalityPreference",
    "endpoint_from_env",
    "metric_preferences_from_env",
    "queue_dir_from_env",
    "variable_source",
]
