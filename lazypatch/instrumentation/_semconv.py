"""Semantic-convention names, and which of them each ``OTEL_SEMCONV_STABILITY_OPT_IN`` mode emits.

Every mode emits the stable names (``http.request.method``, ``url.full``, ``db.query.text``...).
``http/dup`` and ``database/dup`` add the names OpenTelemetry's own instrumentations emit by
default (``http.method``, ``http.url``, ``db.statement``...), so that dashboards built on either
keep working. The names are those of ``opentelemetry-semantic-conventions`` (written out, see
below); the mode comes from :func:`lazypatch._config.settings`, read once per process.

For an instrumentation:

- build a span's attributes with the stable names (the constants below), then call
  :func:`add_old` with ``HTTP_CLIENT_OLD``, ``HTTP_SERVER_OLD`` or ``DATABASE_OLD``: the
  ``(stable, old)`` pairs of the chosen mode, empty unless it is ``/dup``, so the stable modes pay
  one empty loop;
- for an attribute set later on a started span, :func:`keys` gives every name to set it under;
- metric points carry the stable names only, in every mode, as OpenTelemetry's do;
- :func:`duration_histogram` gives one of the three duration histograms (seconds, the buckets
  the conventions advise), or None when metrics are off: measure with
  ``histogram.record(seconds, attributes)``, looked up at each call.
"""

import sys

from .. import _config

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, Callable, Dict, Mapping, Optional, Tuple, TypeVar

    from opentelemetry.metrics import MeterProvider
    from opentelemetry.trace import Tracer, TracerProvider
    from opentelemetry.util.types import AttributeValue

    # (stable name, old name) pairs of one mode.
    Pairs = Tuple[Tuple[str, str], ...]
    AttributeDict = Dict[str, AttributeValue]
    Attributes = TypeVar("Attributes", bound=Dict[str, Any])
    Record = Callable[[float, Optional[Mapping[str, AttributeValue]]], None]

# The semantic conventions' strings, written out rather than imported from
# ``opentelemetry-semantic-conventions``: its modules cost about 9 ms at the first span, nearly
# all of it building enums of values that lazypatch does not use. tests/test_semconv.py holds
# each one to that package's constant of the same name.
CLIENT_ADDRESS = "client.address"
CLIENT_PORT = "client.port"
DB_NAMESPACE = "db.namespace"
DB_OPERATION_NAME = "db.operation.name"
DB_QUERY_TEXT = "db.query.text"
DB_SYSTEM_NAME = "db.system.name"
ERROR_TYPE = "error.type"
HTTP_REQUEST_METHOD = "http.request.method"
HTTP_REQUEST_METHOD_ORIGINAL = "http.request.method_original"
HTTP_RESPONSE_STATUS_CODE = "http.response.status_code"
HTTP_ROUTE = "http.route"
NETWORK_PEER_ADDRESS = "network.peer.address"
NETWORK_PEER_PORT = "network.peer.port"
NETWORK_PROTOCOL_VERSION = "network.protocol.version"
SERVER_ADDRESS = "server.address"
SERVER_PORT = "server.port"
URL_FULL = "url.full"
URL_PATH = "url.path"
URL_QUERY = "url.query"
URL_SCHEME = "url.scheme"
USER_AGENT_ORIGINAL = "user_agent.original"
SQLITE = "sqlite"  # the value of db.system.name for SQLite
SERVICE_NAME = "service.name"
TELEMETRY_DISTRO_NAME = "telemetry.distro.name"
TELEMETRY_DISTRO_VERSION = "telemetry.distro.version"

HTTP_CLIENT_REQUEST_DURATION = "http.client.request.duration"
HTTP_SERVER_REQUEST_DURATION = "http.server.request.duration"
DB_CLIENT_OPERATION_DURATION = "db.client.operation.duration"

# The deprecated names that OpenTelemetry's instrumentations still emit by default.
OLD_DB_NAME = "db.name"
OLD_DB_OPERATION = "db.operation"
OLD_DB_STATEMENT = "db.statement"
OLD_DB_SYSTEM = "db.system"
OLD_HTTP_FLAVOR = "http.flavor"
OLD_HTTP_HOST = "http.host"
OLD_HTTP_METHOD = "http.method"
OLD_HTTP_SCHEME = "http.scheme"
OLD_HTTP_SERVER_NAME = "http.server_name"
OLD_HTTP_STATUS_CODE = "http.status_code"
OLD_HTTP_TARGET = "http.target"
OLD_HTTP_URL = "http.url"
OLD_HTTP_USER_AGENT = "http.user_agent"
OLD_NET_HOST_NAME = "net.host.name"
OLD_NET_HOST_PORT = "net.host.port"
OLD_NET_PEER_IP = "net.peer.ip"
OLD_NET_PEER_NAME = "net.peer.name"
OLD_NET_PEER_PORT = "net.peer.port"

__all__ = [
    "CLIENT_ADDRESS",
    "CLIENT_PORT",
    "DATABASE_OLD",
    "DB_CLIENT_OPERATION_DURATION",
    "DB_NAMESPACE",
    "DB_OPERATION_NAME",
    "DB_QUERY_TEXT",
    "DB_SYSTEM_NAME",
    "ERROR_TYPE",
    "HTTP_CLIENT_OLD",
    "HTTP_CLIENT_REQUEST_DURATION",
    "HTTP_REQUEST_METHOD",
    "HTTP_REQUEST_METHOD_ORIGINAL",
    "HTTP_RESPONSE_STATUS_CODE",
    "HTTP_ROUTE",
    "HTTP_SERVER_OLD",
    "HTTP_SERVER_OLD_EXTRA",
    "HTTP_SERVER_REQUEST_DURATION",
    "Histogram",
    "NETWORK_PEER_ADDRESS",
    "NETWORK_PEER_PORT",
    "NETWORK_PROTOCOL_VERSION",
    "SERVER_ADDRESS",
    "SERVER_PORT",
    "SQLITE",
    "URL_FULL",
    "URL_PATH",
    "URL_QUERY",
    "URL_SCHEME",
    "USER_AGENT_ORIGINAL",
    "add_old",
    "duration_histogram",
    "signals",
    "keys",
    "mode",
]

_HTTP_COMMON_OLD = (
    (HTTP_REQUEST_METHOD, OLD_HTTP_METHOD),
    (HTTP_RESPONSE_STATUS_CODE, OLD_HTTP_STATUS_CODE),
    (NETWORK_PROTOCOL_VERSION, OLD_HTTP_FLAVOR),
    (USER_AGENT_ORIGINAL, OLD_HTTP_USER_AGENT),
)
_HTTP_CLIENT_OLD = (
    *_HTTP_COMMON_OLD,
    (URL_FULL, OLD_HTTP_URL),
    (SERVER_ADDRESS, OLD_NET_PEER_NAME),
    (SERVER_ADDRESS, OLD_HTTP_HOST),
    (SERVER_PORT, OLD_NET_PEER_PORT),
)
_HTTP_SERVER_OLD = (
    *_HTTP_COMMON_OLD,
    (URL_SCHEME, OLD_HTTP_SCHEME),
    (SERVER_ADDRESS, OLD_NET_HOST_NAME),
    (SERVER_PORT, OLD_NET_HOST_PORT),
    (CLIENT_ADDRESS, OLD_NET_PEER_IP),
    (CLIENT_PORT, OLD_NET_PEER_PORT),
)
_DATABASE_OLD = (
    (DB_SYSTEM_NAME, OLD_DB_SYSTEM),
    (DB_NAMESPACE, OLD_DB_NAME),
    (DB_OPERATION_NAME, OLD_DB_OPERATION),
    (DB_QUERY_TEXT, OLD_DB_STATEMENT),
)

# Old server names that no stable attribute holds as such: the WSGI server's name, the Host
# header as sent, and the request target (path and query), which the server instrumentation
# fills in when HTTP_SERVER_OLD is not empty.
HTTP_SERVER_OLD_EXTRA = (OLD_HTTP_SERVER_NAME, OLD_HTTP_HOST, OLD_HTTP_TARGET)

# The buckets the semantic conventions advise for these histograms (seconds).
_HTTP_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0)
_DB_BUCKETS = (0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1.0, 5.0, 10.0)
_HISTOGRAMS = {
    HTTP_CLIENT_REQUEST_DURATION: ("Duration of HTTP client requests.", _HTTP_BUCKETS),
    HTTP_SERVER_REQUEST_DURATION: ("Duration of HTTP server requests.", _HTTP_BUCKETS),
    DB_CLIENT_OPERATION_DURATION: ("Duration of database client operations.", _DB_BUCKETS),
}


def mode(signal: str) -> str:
    """The mode of ``signal`` (``"http"`` or ``"database"``): ``"default"``, ``signal`` or
    ``f"{signal}/dup"``."""
    return _config.settings().semconv[signal]


def _old_pairs(signal: str, pairs: "Pairs") -> "Pairs":
    return pairs if mode(signal).endswith("/dup") else ()


HTTP_CLIENT_OLD = _old_pairs("http", _HTTP_CLIENT_OLD)
HTTP_SERVER_OLD = _old_pairs("http", _HTTP_SERVER_OLD)
DATABASE_OLD = _old_pairs("database", _DATABASE_OLD)


def add_old(attributes: "Attributes", pairs: "Pairs") -> "Attributes":
    """Copy each stable attribute of ``pairs`` present in ``attributes`` under its old name."""
    for stable, old in pairs:
        if stable in attributes:
            attributes[old] = attributes[stable]
    return attributes


def keys(stable: str, pairs: "Pairs") -> "Tuple[str, ...]":
    """Every name to set the attribute ``stable`` under, given the mode's ``pairs``."""
    return (stable, *(old for name, old in pairs if name == stable))


def _metrics_off(meter_provider: "Optional[MeterProvider]") -> bool:
    """``OTEL_METRICS_EXPORTER=none`` or ``OTEL_SDK_DISABLED``, and no meter provider given or
    set by the application (which would have imported ``opentelemetry.metrics`` to set it)."""
    settings = _config.settings()
    if meter_provider is not None or not (
        settings.sdk_disabled or settings.metrics_exporters == ("none",)
    ):
        return False
    api = sys.modules.get("opentelemetry.metrics")
    if api is None:
        return True
    provider = api.get_meter_provider()
    return isinstance(provider, api.NoOpMeterProvider) or type(provider).__name__.startswith(
        "_Proxy"
    )


class Histogram:
    """One of the three duration histograms of an instrumentation scope: ``record(seconds,
    attributes)``. The OpenTelemetry histogram is made at the first measurement, so that
    instrumenting imports nothing of OpenTelemetry's metrics API; from then on ``record`` is the
    OpenTelemetry histogram's own method, so look it up at each call (a ``record`` taken before
    the first measurement still works, through one more call)."""

    __slots__ = ("name", "scope", "meter_provider", "record", "_record")

    record: "Record"

    def __init__(
        self, name: str, scope: str, meter_provider: "Optional[MeterProvider]" = None
    ) -> None:
        self.name = name
        self.scope = scope
        self.meter_provider = meter_provider
        self._record: Optional[Record] = None
        self.record = self._first_record

    def _first_record(
        self, amount: float, attributes: "Optional[Mapping[str, AttributeValue]]"
    ) -> None:
        record = self._record
        if record is None:
            from opentelemetry import metrics

            description, buckets = _HISTOGRAMS[self.name]
            meter = metrics.get_meter(self.scope, meter_provider=self.meter_provider)
            histogram = meter.create_histogram(
                self.name,
                unit="s",
                description=description,
                explicit_bucket_boundaries_advisory=buckets,
            )
            record = self._record = self.record = histogram.record
        record(amount, attributes)


def signals(
    scope: str,
    histogram_name: str,
    tracer_provider: "Optional[TracerProvider]" = None,
    meter_provider: "Optional[MeterProvider]" = None,
) -> "Tuple[Tracer, Optional[Histogram]]":
    """The tracer of instrumentation ``scope`` and its duration histogram ``histogram_name``
    (None when metrics are off): what every HTTP instrumentation builds at its first call."""
    from opentelemetry import trace

    tracer = trace.get_tracer(scope, tracer_provider=tracer_provider)
    return tracer, duration_histogram(histogram_name, scope, meter_provider)


def duration_histogram(
    name: str, scope: str, meter_provider: "Optional[MeterProvider]" = None
) -> "Optional[Histogram]":
    """The :class:`Histogram` ``name`` (one of the three duration histograms) of instrumentation
    ``scope``, in seconds with the advised buckets; None when metrics are switched off
    (``OTEL_METRICS_EXPORTER=none``, or ``OTEL_SDK_DISABLED``) and no provider is given or set by
    the application."""
    if _metrics_off(meter_provider):
        return None
    return Histogram(name, scope, meter_provider)
