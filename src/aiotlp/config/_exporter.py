"""SignalConfig (one signal's export settings) and ExporterConfig (all three, :meth:`ExporterConfig.from_env`)."""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from ..model import Signal
from ._endpoints import (
    _endpoint_arguments,
    _endpoint_list,
    _normalize_endpoint,
    _normalize_endpoints,
    _redact_endpoint,
)
from ._env import _Env
from ._headers import Headers, _as_headers, _check_grpc_metadata
from ._values import (
    _DEFAULT_GRPC_ENDPOINT,
    _DEFAULT_HTTP_ENDPOINT,
    _DEFAULT_PROTOCOL,
    _DEFAULT_TIMEOUT_MS,
    _ENDPOINTS_VAR,
    DEFAULT_MAX_REQUEST_BYTES,
    Compression,
    OnInvalid,
    OtlpProtocol,
    _check_compression,
    _check_file,
    _check_max_request_bytes,
    _check_optional_file,
    _check_protocol,
    _check_seconds,
    _fail,
    _parse_timeout_ms,
    logger,
)


@dataclass(frozen=True, slots=True, kw_only=True, repr=False)
class SignalConfig:
    """How to export one signal.

    ``endpoint``: for HTTP the full URL to POST to (an empty path becomes ``/``); for gRPC it is normalized
    to ``http://host:port`` or ``https://host:port`` (path dropped; a scheme-less ``host:port`` means TLS
    here, use :meth:`ExporterConfig.from_env` with ``insecure=True`` for plaintext). ``endpoints``: every
    collector of a fleet, same rules, same scheme for all, none repeated; ``endpoint`` must be its first (the
    one shown in logs); empty or of one element it becomes ``(endpoint,)``. ``insecure`` is derived
    from the scheme (``http`` -> True), not passed. ``timeout`` is float seconds per export. Certificate files
    must be readable; the client key and client certificate come together.
    """

    signal: Signal
    protocol: OtlpProtocol
    endpoint: str
    endpoints: tuple[str, ...] = ()
    headers: Headers = field(default_factory=Headers)
    timeout: float = _DEFAULT_TIMEOUT_MS / 1000
    compression: Compression = "none"
    certificate_file: str | None = None
    client_key_file: str | None = None
    client_certificate_file: str | None = None
    max_request_bytes: int = DEFAULT_MAX_REQUEST_BYTES
    insecure: bool = field(init=False)
    _host: str = field(init=False, compare=False)
    _port: int = field(init=False, compare=False)

    def __post_init__(self) -> None:
        set_ = object.__setattr__
        try:
            signal = Signal(self.signal)
        except ValueError:
            _fail(f"signal: must be one of {', '.join(repr(s.value) for s in Signal)}")
        set_(self, "signal", signal)
        protocol = _check_protocol(self.protocol, "protocol")
        set_(self, "protocol", protocol)
        if not isinstance(self.endpoint, str):
            _fail(f"endpoint: must be a str, got {type(self.endpoint).__name__}")
        endpoint, url = _normalize_endpoint(
            self.endpoint.strip(), "endpoint", protocol=protocol, signal=signal, base=False, insecure=False
        )
        set_(self, "endpoint", endpoint)
        if isinstance(self.endpoints, str) or not isinstance(self.endpoints, (tuple, list)):
            _fail(f"endpoints: must be a tuple of str, got {type(self.endpoints).__name__}")
        if len(self.endpoints) > 1:
            endpoints = _normalize_endpoints(
                _endpoint_arguments(self.endpoints, "endpoints"),
                protocol=protocol,
                signal=signal,
                base=False,
                insecure=False,
            )
            if endpoints[0] != endpoint:
                _fail("endpoint: must be the first of endpoints (endpoints[0])")
        else:  # one endpoint: ``endpoint`` wins, so ``dataclasses.replace(config, endpoint=...)`` keeps working
            endpoints = (endpoint,)
        set_(self, "endpoints", endpoints)
        set_(self, "headers", _as_headers(self.headers, "headers"))
        if protocol == "grpc":
            _check_grpc_metadata(self.headers, "headers")
        set_(self, "timeout", _check_seconds(self.timeout, "timeout"))
        set_(self, "compression", _check_compression(self.compression, "compression"))
        for attr in ("certificate_file", "client_key_file", "client_certificate_file"):
            set_(self, attr, _check_optional_file(getattr(self, attr), attr))
        if (self.client_key_file is None) != (self.client_certificate_file is None):
            _fail("client_key_file and client_certificate_file must be given together (mTLS needs both)")
        set_(self, "max_request_bytes", _check_max_request_bytes(self.max_request_bytes, "max_request_bytes"))
        set_(self, "insecure", url.scheme == "http")
        set_(self, "_host", url.host)
        set_(self, "_port", url.effective_port)

    @property
    def host(self) -> str:
        """The endpoint's host (an IPv6 address without brackets)."""
        return self._host

    @property
    def port(self) -> int:
        """The endpoint's port (80 or 443 when the URL has none)."""
        return self._port

    @property
    def use_tls(self) -> bool:
        return not self.insecure

    @property
    def endpoint_for_display(self) -> str:
        """The endpoint with any ``user:password@`` replaced by ``***@``: safe for logs and messages."""
        return _redact_endpoint(self.endpoint)

    @property
    def endpoints_for_display(self) -> tuple[str, ...]:
        """:attr:`endpoints`, each as :attr:`endpoint_for_display` shows it."""
        return tuple(_redact_endpoint(endpoint) for endpoint in self.endpoints)

    def __repr__(self) -> str:
        return (
            f"SignalConfig(signal={self.signal!r}, protocol={self.protocol!r}, "
            f"endpoint={_redact_endpoint(self.endpoint)!r}, "
            + (f"endpoints={self.endpoints_for_display!r}, " if len(self.endpoints) > 1 else "")
            + f"headers={self.headers!r}, "
            f"timeout={self.timeout!r}, "
            f"compression={self.compression!r}, certificate_file={self.certificate_file!r}, "
            f"client_key_file={self.client_key_file!r}, "
            f"client_certificate_file={self.client_certificate_file!r}, "
            f"max_request_bytes={self.max_request_bytes!r}, insecure={self.insecure!r})"
        )

    __str__ = __repr__


@dataclass(frozen=True, slots=True, kw_only=True)
class ExporterConfig:
    """The configuration of all three signals. Build it with :meth:`from_env`."""

    traces: SignalConfig
    metrics: SignalConfig
    logs: SignalConfig

    def __post_init__(self) -> None:
        for signal in Signal:
            config = getattr(self, signal.value)
            if not isinstance(config, SignalConfig) or config.signal is not signal:
                _fail(f"{signal.value}: must be a SignalConfig for signal {signal.value!r}")

    def for_signal(self, signal: Signal | str) -> SignalConfig:
        try:
            sig = Signal(signal)
        except ValueError:
            _fail(f"signal: must be one of {', '.join(repr(s.value) for s in Signal)}")
        config: SignalConfig = getattr(self, sig.value)
        return config

    @classmethod
    def from_env(
        cls,
        environ: Mapping[str, str] | None = None,
        *,
        endpoint: str | Sequence[str] | None = None,
        protocol: OtlpProtocol | None = None,
        headers: Mapping[str, str] | Headers | None = None,
        timeout: float | None = None,
        compression: Compression | None = None,
        certificate_file: str | os.PathLike[str] | None = None,
        client_key_file: str | os.PathLike[str] | None = None,
        client_certificate_file: str | os.PathLike[str] | None = None,
        insecure: bool | None = None,
        max_request_bytes: int | None = None,
        signal_endpoints: Mapping[Signal, str | Sequence[str]] | None = None,
        signals: Iterable[Signal | str] | None = None,
        on_invalid: OnInvalid = "raise",
    ) -> ExporterConfig:
        """Resolve every signal: explicit argument > per-signal variable > generic variable > default.

        ``environ=None`` reads ``os.environ``. ``endpoint`` is a *base* endpoint, like
        ``OTEL_EXPORTER_OTLP_ENDPOINT`` (HTTP appends ``v1/<signal>``); ``timeout`` is in seconds. Only the
        values actually used are read and validated, so a bad variable that is overridden is never reported.

        ``signal_endpoints`` maps a signal (a :class:`Signal` or its value) to an explicit *per-signal*
        endpoint, used like ``OTEL_EXPORTER_OTLP_<SIGNAL>_ENDPOINT`` (HTTP: the URL to POST to, verbatim) and
        winning over ``endpoint`` and every variable for that signal. This is how the official OTLP/HTTP
        exporters treat their ``endpoint=`` argument.

        ``endpoint`` and the values of ``signal_endpoints`` may also be lists: several collectors (a fleet),
        like ``AIOTLP_EXPORTER_OTLP_ENDPOINTS``; the signal's ``endpoints`` holds them all, ``endpoint`` the first.

        ``signals``: resolve only these from the arguments and the variables (an SDK exporter uses one signal and
        reads only the generic and that signal's variables); the others get the defaults, with the protocol of
        the first listed one, and nothing is read for them. ``on_invalid="warn"``: a variable whose value is
        invalid is warned about and replaced by its default where the official Python exporters do so (timeout,
        compression, certificate files, header entries; see :data:`OnInvalid`); endpoints and the protocol are
        always refused. Arguments are always checked strictly.
        """
        env = _Env(environ, on_invalid)
        explicit_endpoints = _check_signal_endpoints(signal_endpoints)
        explicit_headers = None if headers is None else _as_headers(headers, "headers")
        if insecure is not None and not isinstance(insecure, bool):
            _fail(f"insecure: must be a bool, got {type(insecure).__name__}")
        chosen = _check_signals(signals)
        configs = {
            signal: _resolve_signal(
                env,
                signal,
                endpoint=endpoint,
                signal_endpoint=explicit_endpoints.get(signal),
                protocol=protocol,
                headers=explicit_headers,
                timeout=timeout,
                compression=compression,
                certificate_file=certificate_file,
                client_key_file=client_key_file,
                client_certificate_file=client_certificate_file,
                insecure=insecure,
                max_request_bytes=max_request_bytes,
            )
            for signal in chosen
        }
        for signal in Signal:
            if signal not in configs:  # not used: the defaults, nothing read
                configs[signal] = _default_signal(signal, configs[chosen[0]].protocol)
        return cls(traces=configs[Signal.TRACES], metrics=configs[Signal.METRICS], logs=configs[Signal.LOGS])


def _check_signals(value: object) -> list[Signal]:
    """The ``signals`` argument of :meth:`ExporterConfig.from_env`: all of them when None."""
    if value is None:
        return list(Signal)
    if isinstance(value, (str, bytes)) or not isinstance(value, Iterable):
        _fail(f"signals: must be an iterable of signals, got {type(value).__name__}")
    chosen: list[Signal] = []
    for item in value:
        try:
            signal = Signal(item)
        except ValueError:
            _fail(f"signals: items must be signals ({', '.join(repr(s.value) for s in Signal)})")
        if signal not in chosen:
            chosen.append(signal)
    if not chosen:
        _fail("signals: give at least one signal")
    return chosen


def _default_signal(signal: Signal, protocol: OtlpProtocol) -> SignalConfig:
    endpoint = _DEFAULT_GRPC_ENDPOINT if protocol == "grpc" else _DEFAULT_HTTP_ENDPOINT + signal.http_path
    return SignalConfig(signal=signal, protocol=protocol, endpoint=endpoint)


def _check_signal_endpoints(value: object) -> dict[Signal, str | Sequence[str]]:
    """Validate the ``signal_endpoints`` argument of :meth:`ExporterConfig.from_env`."""
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        _fail(f"signal_endpoints: must be a Mapping of signal to endpoint, got {type(value).__name__}")
    checked: dict[Signal, str | Sequence[str]] = {}
    for key, endpoint in value.items():
        try:
            signal = Signal(key)
        except ValueError:
            _fail(f"signal_endpoints: keys must be signals ({', '.join(repr(s.value) for s in Signal)})")
        if not isinstance(endpoint, str) and (
            not isinstance(endpoint, (list, tuple)) or not all(isinstance(item, str) for item in endpoint)
        ):
            _fail(f"signal_endpoints[{signal.value!r}]: must be a str or a list of str, got {type(endpoint).__name__}")
        checked[signal] = endpoint
    return checked


def _resolve_signal(
    env: _Env,
    signal: Signal,
    *,
    endpoint: str | Sequence[str] | None,
    signal_endpoint: str | Sequence[str] | None = None,
    protocol: str | None,
    headers: Headers | None,
    timeout: float | None,
    compression: str | None,
    certificate_file: str | os.PathLike[str] | None,
    client_key_file: str | os.PathLike[str] | None,
    client_certificate_file: str | os.PathLike[str] | None,
    insecure: bool | None,
    max_request_bytes: int | None,
) -> SignalConfig:
    # protocol
    if protocol is not None:
        proto = _check_protocol(protocol, "protocol")
    elif (found := env.otlp(signal, "PROTOCOL")) is not None:
        proto = _check_protocol(*found)
    else:
        proto = _DEFAULT_PROTOCOL

    # insecure (only matters for a scheme-less gRPC endpoint)
    if insecure is None:
        found = env.otlp(signal, "INSECURE")
        insecure = found is not None and found[0].lower() == "true"

    # endpoint(s): see note 6 of the module docstring for the lists
    per_signal = f"OTEL_EXPORTER_OTLP_{signal.value.upper()}_ENDPOINT"
    per_signal_list = f"AIOTLP_EXPORTER_OTLP_{signal.value.upper()}_ENDPOINTS"
    texts: list[tuple[str, str]]
    if signal_endpoint is not None:
        texts, base = _endpoint_arguments(signal_endpoint, f"signal_endpoints[{signal.value!r}]"), False
    elif endpoint is not None:
        texts, base = _endpoint_arguments(endpoint, "endpoint"), True
    elif (value := env.get(per_signal_list)) is not None:
        texts, base = _endpoint_list(value, per_signal_list), False
    elif (value := env.get(per_signal)) is not None:
        texts, base = [(value, per_signal)], False
    elif (value := env.get(_ENDPOINTS_VAR)) is not None:
        texts, base = _endpoint_list(value, _ENDPOINTS_VAR), True
    elif (value := env.get("OTEL_EXPORTER_OTLP_ENDPOINT")) is not None:
        texts, base = [(value, "OTEL_EXPORTER_OTLP_ENDPOINT")], True
    else:
        text = _DEFAULT_GRPC_ENDPOINT if proto == "grpc" else _DEFAULT_HTTP_ENDPOINT
        texts, base = [(text, "the default endpoint")], True
    urls = _normalize_endpoints(texts, protocol=proto, signal=signal, base=base, insecure=insecure)

    # headers
    if headers is None:
        found = env.otlp(signal, "HEADERS")
        headers = Headers() if found is None else Headers.parse(*found, on_invalid=env.on_invalid)
        if proto == "grpc" and found is not None:
            headers = _check_grpc_metadata(headers, found[1], env.on_invalid)
    elif proto == "grpc":
        _check_grpc_metadata(headers, "headers")

    # timeout
    default_seconds = _DEFAULT_TIMEOUT_MS / 1000
    if timeout is not None:
        seconds = _check_seconds(timeout, "timeout")
    elif (found := env.otlp(signal, "TIMEOUT")) is not None:
        seconds = env.parse(_parse_timeout_ms, found, default_seconds, f"{_DEFAULT_TIMEOUT_MS} ms")
    else:
        seconds = default_seconds

    # compression
    comp: Compression
    if compression is not None:
        comp = _check_compression(compression, "compression")
    elif (found := env.otlp(signal, "COMPRESSION")) is not None:
        comp = env.parse(_check_compression, found, "none", "no compression")
    else:
        comp = "none"

    # TLS files
    files: dict[str, tuple[str, str] | None] = {}
    for key, explicit, arg in (
        ("CERTIFICATE", certificate_file, "certificate_file"),
        ("CLIENT_KEY", client_key_file, "client_key_file"),
        ("CLIENT_CERTIFICATE", client_certificate_file, "client_certificate_file"),
    ):
        if explicit is not None:
            files[key] = (_check_file(explicit, arg), arg)
        elif (found := env.otlp(signal, key)) is not None:
            default_text = "the system's CAs" if key == "CERTIFICATE" else "no client certificate (no mTLS)"
            path = env.parse(_check_file, found, None, default_text)
            files[key] = None if path is None else (path, found[1])
        else:
            files[key] = None
    key_file, cert_file = files["CLIENT_KEY"], files["CLIENT_CERTIFICATE"]
    for lone, missing in ((key_file, "client certificate"), (cert_file, "client key")):
        if lone is None or (key_file is not None and cert_file is not None):
            continue
        other = "client_certificate_file" if missing == "client certificate" else "client_key_file"
        suffix = "CLIENT_CERTIFICATE" if missing == "client certificate" else "CLIENT_KEY"
        message = (
            f"{lone[1]} is set without a {missing} ({other} or "
            f"OTEL_EXPORTER_OTLP_[{signal.value.upper()}_]{suffix}): mTLS needs both"
        )
        if env.on_invalid == "raise" or not lone[1].startswith("OTEL_"):
            _fail(message)
        logger.warning("%s; using no client certificate (no mTLS)", message)
        key_file = cert_file = None

    if max_request_bytes is not None:
        max_bytes = _check_max_request_bytes(max_request_bytes, "max_request_bytes")
    else:
        max_bytes = DEFAULT_MAX_REQUEST_BYTES

    ca = files["CERTIFICATE"]
    return SignalConfig(
        signal=signal,
        protocol=proto,
        endpoint=urls[0],
        endpoints=urls,
        headers=headers,
        timeout=seconds,
        compression=comp,
        certificate_file=None if ca is None else ca[0],
        client_key_file=None if key_file is None else key_file[0],
        client_certificate_file=None if cert_file is None else cert_file[0],
        max_request_bytes=max_bytes,
    )
