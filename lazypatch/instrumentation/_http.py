"""What the HTTP instrumentations share: secret-free URLs, semantic-convention attributes,
context propagation and the client-call wrapper of requests and urllib.

Imported only from an ``_instrument`` method, so OpenTelemetry is imported here at the top.
"""

from time import perf_counter
from types import MappingProxyType
from urllib.parse import unquote_plus, urlsplit, urlunsplit

from opentelemetry import context, propagate, trace
from opentelemetry.context import _SUPPRESS_HTTP_INSTRUMENTATION_KEY, _SUPPRESS_INSTRUMENTATION_KEY
from opentelemetry.propagators.textmap import Getter, default_setter
from opentelemetry.trace import SpanKind, StatusCode

from . import error_type, report
from ._semconv import (
    CLIENT_ADDRESS,
    CLIENT_PORT,
    ERROR_TYPE,
    HTTP_CLIENT_OLD,
    HTTP_REQUEST_METHOD,
    HTTP_REQUEST_METHOD_ORIGINAL,
    HTTP_RESPONSE_STATUS_CODE,
    HTTP_ROUTE,
    HTTP_SERVER_OLD,
    HTTP_SERVER_OLD_EXTRA,
    NETWORK_PEER_ADDRESS,
    NETWORK_PEER_PORT,
    NETWORK_PROTOCOL_VERSION,
    SERVER_ADDRESS,
    SERVER_PORT,
    URL_FULL,
    URL_PATH,
    URL_QUERY,
    URL_SCHEME,
    USER_AGENT_ORIGINAL,
    add_old,
    keys,
)

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, Callable, Dict, List, Mapping, Optional, Tuple

    from opentelemetry.context import Context
    from opentelemetry.propagators.textmap import Setter
    from opentelemetry.trace import Span, Tracer
    from opentelemetry.util.types import AttributeValue

    from .._patches import Wrapper
    from ._semconv import AttributeDict, Histogram

    Args = Tuple[Any, ...]
    Kwargs = Dict[str, Any]
    #: ``(method, url, carrier, user agent, args, kwargs)`` of a call to trace.
    Prepared = Tuple[str, str, Any, Optional[str], Args, Kwargs]
    #: ``(status code, http.client version number or None)`` of a response.
    Status = Tuple[int, Optional[int]]
    Environ = Mapping[str, Any]
    #: ``(span name, span attributes, metric attributes)`` of a client request.
    Request = Tuple[str, Mapping[str, AttributeValue], AttributeDict]

# Query parameters whose values are credentials: the semantic conventions' list for url.full
# (AWSAccessKeyId, Signature, sig, X-Goog-Signature), the other signed-URL schemes' parts, and
# the usual token names. Compared case-insensitively.
SENSITIVE_QUERY_PARAMS = frozenset(
    name.lower()
    for name in (
        "AWSAccessKeyId",
        "Signature",
        "sig",
        "X-Goog-Signature",
        "X-Goog-Credential",
        "X-Amz-Signature",
        "X-Amz-Credential",
        "X-Amz-Security-Token",
        "token",
        "access_token",
        "refresh_token",
        "id_token",
        "api_key",
        "apikey",
        "key",
        "password",
        "secret",
        "client_secret",
    )
)
REDACTED = "REDACTED"

_KNOWN_METHODS = frozenset(
    ("CONNECT", "DELETE", "GET", "HEAD", "OPTIONS", "PATCH", "POST", "PUT", "TRACE")
)
_DEFAULT_PORTS = {"http": 80, "https": 443}
_CACHE_SIZE = 256


def redact_query(query: str) -> str:
    """``query`` with the value of every sensitive parameter replaced by ``REDACTED``."""
    pieces = query.split("&")
    changed = False
    for index, piece in enumerate(pieces):
        key, sep, value = piece.partition("=")
        if value and unquote_plus(key).lower() in SENSITIVE_QUERY_PARAMS:
            pieces[index] = f"{key}{sep}{REDACTED}"
            changed = True
    return "&".join(pieces) if changed else query


def redact_url(url: str) -> str:
    """``url`` with userinfo as ``REDACTED:REDACTED`` (the semantic conventions' form) and
    sensitive query values redacted; else unchanged."""
    parts = urlsplit(url)
    netloc = parts.netloc
    query = redact_query(parts.query) if parts.query else ""
    if "@" not in netloc and query == parts.query:
        return url
    netloc = "REDACTED:REDACTED@" + netloc.rpartition("@")[2] if "@" in netloc else netloc
    return urlunsplit((parts.scheme, netloc, parts.path, query, parts.fragment))


_STATUS_CLIENT = keys(HTTP_RESPONSE_STATUS_CODE, HTTP_CLIENT_OLD)
SERVER_STATUS_KEYS = keys(HTTP_RESPONSE_STATUS_CODE, HTTP_SERVER_OLD)
_VERSION_CLIENT = keys(NETWORK_PROTOCOL_VERSION, HTTP_CLIENT_OLD)
_VERSIONS: "Dict[Optional[int], str]" = {9: "0.9", 10: "1.0", 11: "1.1", 20: "2", 30: "3"}


def _url_attributes(url: str) -> "Tuple[AttributeDict, AttributeDict]":
    parts = urlsplit(url)
    span: AttributeDict = {URL_FULL: redact_url(url)}
    metric: AttributeDict = {}
    if parts.hostname:
        span[SERVER_ADDRESS] = span[NETWORK_PEER_ADDRESS] = parts.hostname
        metric[SERVER_ADDRESS] = parts.hostname
        try:
            port = parts.port
        except ValueError:
            port = None
        port = port or _DEFAULT_PORTS.get(parts.scheme)
        if port:
            span[SERVER_PORT] = span[NETWORK_PEER_PORT] = metric[SERVER_PORT] = port
    return add_old(span, HTTP_CLIENT_OLD), metric


_url_cache: "Dict[str, Tuple[AttributeDict, AttributeDict]]" = {}


def url_attributes(url: str) -> "Tuple[AttributeDict, AttributeDict]":
    """``(span attributes, metric attributes)`` a client request's URL gives (do not mutate):
    ``url.full`` (redacted), ``server.address`` / ``server.port``, ``network.peer.*``, and
    their old names in ``http/dup`` mode.

    Cached per URL: services call the same few endpoints, and parsing and redacting is the
    costliest part of a span's attributes. The cache is emptied when it fills up.
    """
    found = _url_cache.get(url)
    if found is None:
        found = _url_attributes(url)
        if len(_url_cache) >= _CACHE_SIZE:
            _url_cache.clear()
        _url_cache[url] = found
    return found


_request_cache: "Dict[Tuple[str, str, Optional[str]], Request]" = {}


def request_attributes(method: str, url: str, agent: "Optional[str]") -> "Request":
    """Build and cache ``(span name, span attributes, metric attributes)`` of a client request:
    those of :func:`url_attributes`, the method's and ``user_agent.original`` (old names too in
    ``http/dup`` mode); the metric attributes are ``http.client.request.duration``'s before the
    response (do not mutate).

    The client wrapper looks in ``_request_cache`` first, by (method, URL, User-Agent): a client
    span starts with exactly these attributes, so a service calling the same endpoints builds them
    once, not once per call. The span attributes are a read-only view, so that no tracer can alter
    what the next span starts with.
    """
    url_span, url_metric = url_attributes(url)
    attributes = dict(url_span)
    prefix = method_attributes(method, attributes)
    if agent:
        attributes[USER_AGENT_ORIGINAL] = agent
    add_old(attributes, HTTP_CLIENT_OLD)
    metric: AttributeDict = {**url_metric, HTTP_REQUEST_METHOD: attributes[HTTP_REQUEST_METHOD]}
    found = prefix, MappingProxyType(attributes), metric
    if len(_request_cache) >= _CACHE_SIZE:
        _request_cache.clear()
    _request_cache[method, url, agent] = found
    return found


def method_attributes(method: str, attributes: "AttributeDict") -> str:
    """Add ``http.request.method`` (and ``_original``) to ``attributes``; return the span name
    prefix: the method, or ``"HTTP"`` for methods the conventions do not know."""
    if method in _KNOWN_METHODS:
        attributes[HTTP_REQUEST_METHOD] = method
        return method
    attributes[HTTP_REQUEST_METHOD] = "_OTHER"
    attributes[HTTP_REQUEST_METHOD_ORIGINAL] = method
    return "HTTP"


def client_wrapper(
    name: str,
    tracer: "Tracer",
    prepare: "Callable[[Args, Kwargs], Optional[Prepared]]",
    response_of: "Callable[[Any], Status]",
    status_of_error: "Optional[Callable[[BaseException], Optional[Status]]]" = None,
    setter: "Optional[Setter[Any]]" = None,
    histogram: "Optional[Histogram]" = None,
) -> "Wrapper":
    """A ``wrapper(wrapped, instance, args, kwargs)`` that traces one HTTP client call.

    ``prepare(args, kwargs)`` returns ``(method, url, carrier, user_agent, args, kwargs)`` (the
    call's arguments, possibly rewritten so that ``carrier`` is what gets sent) or None to pass
    the call through untraced. ``traceparent`` is injected into ``carrier`` with ``setter``.
    ``response_of(result)`` gives ``(status code, http.client version number or None)``, and
    ``status_of_error(exception)`` the same of the response an exception carries, or None. The
    call's duration goes to ``histogram`` (``http.client.request.duration``) unless it is None.
    While the call runs, the context carries ``_SUPPRESS_HTTP_INSTRUMENTATION_KEY``, so the
    HTTP layers below (urllib3, http.client, ours or OpenTelemetry's) add no second span.
    """
    get_current = context.get_current
    set_value = context.set_value
    attach = context.attach
    detach = context.detach
    set_span_in_context = trace.set_span_in_context
    # The global propagator's inject, not propagate.inject: that is one more call per request.
    textmap = propagate.get_global_textmap
    inject_setter = default_setter if setter is None else setter
    start_span = tracer.start_span
    client = SpanKind.CLIENT
    request_cache = _request_cache

    def wrapper(
        wrapped: "Callable[..., Any]", instance: object, args: "Args", kwargs: "Kwargs"
    ) -> "Any":
        ctx = get_current()
        if ctx.get(_SUPPRESS_INSTRUMENTATION_KEY) or ctx.get(_SUPPRESS_HTTP_INSTRUMENTATION_KEY):
            return wrapped(*args, **kwargs)
        span = None
        try:
            call = prepare(args, kwargs)
            if call is not None:
                method, url, carrier, agent, args, kwargs = call
                prefix, attributes, metric = request_cache.get(
                    (method, url, agent)
                ) or request_attributes(method, url, agent)
                span = start_span(prefix, ctx, client, attributes)
                span_ctx = set_span_in_context(span, ctx)
                textmap().inject(carrier, span_ctx, inject_setter)
                token = attach(set_value(_SUPPRESS_HTTP_INSTRUMENTATION_KEY, True, span_ctx))
                if histogram is not None:
                    start = perf_counter()
        except Exception:
            abandon(name, span)
            span = None
        if span is None:
            return wrapped(*args, **kwargs)
        try:
            result = wrapped(*args, **kwargs)
        except BaseException as exc:
            detach(token)
            if histogram is not None:
                elapsed = perf_counter() - start
            code, version = end_with_exception(name, span, exc, status_of_error, 400)
            if histogram is not None:
                _record_error(name, histogram, elapsed, dict(metric), exc, code, version)
            raise
        detach(token)
        if histogram is not None:
            elapsed = perf_counter() - start
        try:
            code, number = response_of(result)
            version = _VERSIONS.get(number)
            if version is not None:
                for key in _VERSION_CLIENT:
                    span.set_attribute(key, version)
            end_with_status(span, code, 400, _STATUS_CLIENT)
        except Exception:
            abandon(name, span)
            return result
        if histogram is not None:  # a failed measurement must not end the span again
            try:
                point = {**metric, HTTP_RESPONSE_STATUS_CODE: code}
                if version is not None:
                    point[NETWORK_PROTOCOL_VERSION] = version
                if code >= 400:
                    point[ERROR_TYPE] = str(code)
                histogram.record(elapsed, point)
            except Exception:
                report(name)
        return result

    return wrapper


def _record_error(
    name: str,
    histogram: "Histogram",
    elapsed: float,
    metric: "AttributeDict",
    exc: BaseException,
    code: "Optional[int]",
    version: "Optional[str]",
) -> None:
    try:
        if code is None:
            metric[ERROR_TYPE] = error_type(exc)
        else:
            metric[HTTP_RESPONSE_STATUS_CODE] = code
            metric[ERROR_TYPE] = str(code) if code >= 400 else error_type(exc)
        if version is not None:
            metric[NETWORK_PROTOCOL_VERSION] = version
        histogram.record(elapsed, metric)
    except Exception:
        report(name)


def abandon(name: str, span: "Optional[Span]") -> None:
    """Report the failure being handled; end ``span`` if one was started."""
    report(name)
    if span is not None:
        try:
            span.end()
        except Exception:
            pass


def end_with_status(
    span: "Span", code: int, error_from: int, status_keys: "Tuple[str, ...]" = _STATUS_CLIENT
) -> None:
    """Record the response status (ERROR from ``error_from`` up) and end ``span``."""
    for key in status_keys:
        span.set_attribute(key, code)
    if code >= error_from:
        span.set_attribute(ERROR_TYPE, str(code))
        span.set_status(StatusCode.ERROR)
    span.end()


def end_with_exception(
    name: str,
    span: "Span",
    exc: BaseException,
    status_of_error: "Optional[Callable[[BaseException], Optional[Status]]]" = None,
    error_from: int = 400,
) -> "Tuple[Optional[int], Optional[str]]":
    """Record ``exc`` (and the response it carries, if any) as the client span's error; end it.

    ``status_of_error(exc)`` gives ``(status code, http.client version number or None)`` of the
    response ``exc`` carries, or None. Returns that status code and ``network.protocol.version``
    (None each when unknown).
    """
    code: Optional[int] = None
    version: Optional[str] = None
    try:
        response = status_of_error(exc) if status_of_error is not None else None
        if response is not None:
            code, version = response[0], _VERSIONS.get(response[1])
            for key in _STATUS_CLIENT:
                span.set_attribute(key, code)
            if version is not None:
                for key in _VERSION_CLIENT:
                    span.set_attribute(key, version)
        record_exception(span, exc, str(code) if code is not None and code >= error_from else None)
        span.end()
    except Exception:
        abandon(name, span)
    return code, version


def record_exception(span: "Span", exc: BaseException, kind: "Optional[str]" = None) -> None:
    """Mark ``span`` failed by ``exc``: event, ERROR status, ``error.type`` (``kind`` if given);
    the URLs the exception quotes are redacted."""
    from ._redact import record_exception as record  # the error path only

    message = record(span, exc)
    span.set_attribute(ERROR_TYPE, kind or error_type(exc))
    span.set_status(StatusCode.ERROR, f"{type(exc).__name__}: {message}")


class _EnvironGetter(Getter["Environ"]):
    """Reads propagation headers (``traceparent``...) from a WSGI environ."""

    def __init__(self) -> None:
        self._names: Dict[str, str] = {}

    def _environ_name(self, key: str) -> str:
        name = self._names.get(key)
        if name is None:
            name = self._names[key] = "HTTP_" + key.upper().replace("-", "_")
        return name

    def get(self, carrier: "Environ", key: str) -> "Optional[List[str]]":
        value = carrier.get(self._environ_name(key))
        return None if value is None else [value]

    def keys(self, carrier: "Environ") -> "List[str]":
        return [name[5:].lower().replace("_", "-") for name in carrier if name.startswith("HTTP_")]


environ_getter = _EnvironGetter()


def extract(environ: "Environ") -> "Context":
    """The remote context an incoming WSGI request carries (empty if none)."""
    return propagate.extract(environ, getter=environ_getter)


def _host_and_port(environ: "Environ") -> "Tuple[Optional[str], Optional[int]]":
    """``(server.address, server.port)`` of a WSGI request: the Host header, else the server's."""
    scheme = environ.get("wsgi.url_scheme", "http")
    host = environ.get("HTTP_HOST")
    if host:
        if host.endswith("]") or ":" not in host:
            return host.strip("[]"), _DEFAULT_PORTS.get(scheme)
        address, _, port = host.rpartition(":")
        return address.strip("[]"), int(port) if port.isdecimal() else None
    port = environ.get("SERVER_PORT")
    return environ.get("SERVER_NAME"), int(port) if port and port.isdecimal() else None


def server_attributes(
    environ: "Environ", method: str, path: str, route: "Optional[str]"
) -> "Tuple[str, AttributeDict, AttributeDict]":
    """``(span name, span attributes, metric attributes)`` of a server span for a WSGI request.

    The metric attributes are those of ``http.server.request.duration``: method, scheme,
    protocol version and route (the status is added at the end of the request).
    """
    scheme = environ.get("wsgi.url_scheme", "http")
    metric: AttributeDict = {URL_SCHEME: scheme}
    prefix = method_attributes(method, metric)
    attributes = {**metric, URL_PATH: path}
    query = environ.get("QUERY_STRING")
    if query:
        attributes[URL_QUERY] = redact_query(query)
    protocol = environ.get("SERVER_PROTOCOL", "")
    if protocol.startswith("HTTP/"):
        attributes[NETWORK_PROTOCOL_VERSION] = metric[NETWORK_PROTOCOL_VERSION] = protocol[5:]
    if route is not None:
        attributes[HTTP_ROUTE] = metric[HTTP_ROUTE] = route
    try:
        address, port = _host_and_port(environ)
    except ValueError:
        address = port = None
    if address:
        attributes[SERVER_ADDRESS] = address
    if port:
        attributes[SERVER_PORT] = port
    client = environ.get("REMOTE_ADDR")
    if client:
        attributes[CLIENT_ADDRESS] = client
    client_port = environ.get("REMOTE_PORT")
    if client_port and str(client_port).isdecimal():
        attributes[CLIENT_PORT] = int(client_port)
    agent = environ.get("HTTP_USER_AGENT")
    if agent:
        attributes[USER_AGENT_ORIGINAL] = agent
    if HTTP_SERVER_OLD:
        _add_old_server(environ, attributes, path, query)
    return (prefix if route is None else f"{prefix} {route}"), attributes, metric


def _add_old_server(
    environ: "Environ", attributes: "AttributeDict", path: str, query: "Optional[str]"
) -> None:
    add_old(attributes, HTTP_SERVER_OLD)
    server_name, host, target = HTTP_SERVER_OLD_EXTRA
    if environ.get("SERVER_NAME"):
        attributes[server_name] = environ["SERVER_NAME"]
    if environ.get("HTTP_HOST"):
        attributes[host] = environ["HTTP_HOST"]
    attributes[target] = f"{path}?{redact_query(query)}" if query else path
