"""Test helpers: fakes for every boundary, public so users' tests can use them too.

- :class:`FakeCollector` (with :class:`Reply`, :class:`ReceivedRequest`, :class:`BadRequest`): a real OTLP
  receiver, gRPC and HTTP on 127.0.0.1, scripted and recording; :class:`CollectorThread` runs one in a thread;
- :func:`otlp_json_to_message` / :func:`message_to_otlp_json`: OTLP/JSON <-> the official protobuf messages;
  :func:`request_class` / :func:`response_class`: the official message class of a signal's request and response;
- :class:`ScriptedTransport` (with :class:`Outcome`, :class:`Attempt`) and :class:`RecordingExporter`:
  in-memory fakes of the transport and of an exporter; :class:`ScriptedLane`, of a processor's native lane;
- :class:`Rotel`, :func:`find_rotel`, :func:`free_port`: the real ``rotel`` collector as a child process;
- :class:`OtelCollector` (with :class:`OtelCollectorTLS`), :func:`find_otelcol`: the OpenTelemetry Collector
  (Go) as a child process, built by ``scripts/build-otelcol``.

Needs aiohttp (the HTTP server), grpcio, opentelemetry-proto and googleapis-common-protos:
``pip install 'aiotlp[testing]'``.
"""

from __future__ import annotations

from aiotlp._exceptions import MissingExtraError

try:
    import aiohttp  # noqa: F401
    import google.rpc.status_pb2  # type: ignore[import-untyped]  # noqa: F401
    import grpc  # noqa: F401
    import opentelemetry.proto  # noqa: F401
except ImportError as exc:  # pragma: no cover - depends on the environment
    raise MissingExtraError("testing", exc.name or "a test dependency") from exc

from aiotlp.testing._collector import BadRequest, FakeCollector, ReceivedRequest, Reply
from aiotlp.testing._lane import ScriptedLane
from aiotlp.testing._otelcol import OtelCollector, OtelCollectorTLS, find_otelcol
from aiotlp.testing._otlp_json import message_to_otlp_json, otlp_json_to_message, request_class, response_class
from aiotlp.testing._rotel import Rotel, find_rotel, free_port
from aiotlp.testing._threaded import CollectorThread
from aiotlp.testing._transport import Attempt, Outcome, RecordingExporter, ScriptedTransport

__all__ = [
    "Attempt",
    "BadRequest",
    "CollectorThread",
    "FakeCollector",
    "OtelCollector",
    "OtelCollectorTLS",
    "Outcome",
    "ReceivedRequest",
    "RecordingExporter",
    "Reply",
    "Rotel",
    "ScriptedLane",
    "ScriptedTransport",
    "find_otelcol",
    "find_rotel",
    "free_port",
    "message_to_otlp_json",
    "otlp_json_to_message",
    "request_class",
    "response_class",
]
