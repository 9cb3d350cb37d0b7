"""What the HTTP instrumentations share: secret-free URLs, semantic-convention attributes,
context propagation and the client-call wrapper of requests and urllib.

Imported only from an ``_instrument`` method, so OpenTelemetry is imported here at the top.
"""

from urllib.parse import unquote_plus, urlsplit, urlunsplit

from opentelemetry import context, propagate, trace
from opentelemetry.context import _SUPPRESS_HTTP_INSTRUMENTATION_KEY, _SUPPRESS_INSTRUMENTATION_KEY
from opentelemetry.propagators.textmap import Getter
from opentelemetry.semconv.attributes.client_attributes import CLIENT_ADDRESS
from opentelemetry.semconv.attributes.error_attributes import ERROR_TYPE
from opentelemetry.semconv.attributes.http_attributes import (
    HTTP_REQUEST_METHOD,
    HTTP_REQUEST_METHOD_ORIGINAL,
    HTTP_RESPONSE_STATUS_CODE,
    HTTP_ROUTE,
)
from opentelemetry.semconv.attributes.server_attributes import SERVER_ADDRESS, SERVER_PORT
from opentelemetry.semconv.attributes.url_attributes import (
    URL_FULL,
    URL_PATH,
    URL_QUERY,
    URL_SCHEME,
)
from opentelemetry.semconv.attributes.user_agent_attributes import USER_AGENT_ORIGINAL
from opentelemetry.trace import SpanKind, StatusCode

from . import error_type, report

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
    """``url`` without userinfo and with sensitive query values redacted; else unchanged."""
    parts = urlsplit(url)
    netloc = parts.netloc
    query = redact_query(parts.query) if parts.query else ""
    if "@" not in netloc and query == parts.query:
        return url
    netloc = netloc.rpartition("@")[2]
    return urlunsplit((parts.scheme, netloc, parts.path, query, parts.fragment))


def _url_attributes(url: str) -> dict:
    parts = urlsplit(url)
    attributes = {URL_FULL: redact_url(url)}
    if parts.hostname:
        attributes[SERVER_ADDRESS] = parts.hostname
        try:
            port = parts.port
        except ValueError:
            port = None
        port = port or _DEFAULT_PORTS.get(parts.scheme)
        if port:
            attributes[SERVER_PORT] = port
    return attributes


_url_cache = {}


def url_attributes(url: str) -> dict:
    """``url.full``, ``server.address``, ``server.port`` of a client request (do not mutate).

    Cached per URL: services call the same few endpoints, and parsing and redacting is the
    costliest part of a span's attributes. The cache is emptied when it fills up.
    """
    attributes = _url_cache.get(url)
    if attributes is None:
        attributes = _url_attributes(url)
        if len(_url_cache) >= _CACHE_SIZE:
            _url_cache.clear()
        _url_cache[url] = attributes
    return attributes


def method_attributes(method: str, attributes: dict) -> str:
    """Add ``http.request.method`` (and ``_original``) to ``attributes``; return the span name
    prefix: the method, or ``"HTTP"`` for methods the conventions do not know."""
    if method in _KNOWN_METHODS:
        attributes[HTTP_REQUEST_METHOD] = method
        return method
    attributes[HTTP_REQUEST_METHOD] = "_OTHER"
    attributes[HTTP_REQUEST_METHOD_ORIGINAL] = method
    return "HTTP"


def client_wrapper(name, tracer, prepare, status_of, status_of_error=None, setter=None):
    """A ``wrapper(wrapped, instance, args, kwargs)`` that traces one HTTP client call.

    ``prepare(args, kwargs)`` returns ``(method, url, carrier, args, kwargs)`` (the call's
    arguments, possibly rewritten so that ``carrier`` is what gets sent) or None to pass the
    call through untraced. ``traceparent`` is injected into ``carrier`` with ``setter``.
    ``status_of(result)`` and ``status_of_error(exception)`` give the response status code.
    While the call runs, the context carries ``_SUPPRESS_HTTP_INSTRUMENTATION_KEY``, so the
    HTTP layers below (urllib3, http.client, ours or OpenTelemetry's) add no second span.
    """
    get_current = context.get_current
    set_value = context.set_value
    attach = context.attach
    detach = context.detach
    set_span_in_context = trace.set_span_in_context
    inject = propagate.inject
    start_span = tracer.start_span
    client = SpanKind.CLIENT
    inject_args = () if setter is None else (setter,)

    def wrapper(wrapped, instance, args, kwargs):
        ctx = get_current()
        if ctx.get(_SUPPRESS_INSTRUMENTATION_KEY) or ctx.get(_SUPPRESS_HTTP_INSTRUMENTATION_KEY):
            return wrapped(*args, **kwargs)
        span = None
        try:
            call = prepare(args, kwargs)
            if call is not None:
                method, url, carrier, args, kwargs = call
                attributes = dict(url_attributes(url))
                span = start_span(method_attributes(method, attributes), ctx, client, attributes)
                span_ctx = set_span_in_context(span, ctx)
                inject(carrier, span_ctx, *inject_args)
                token = attach(set_value(_SUPPRESS_HTTP_INSTRUMENTATION_KEY, True, span_ctx))
        except Exception:
            abandon(name, span)
            span = None
        if span is None:
            return wrapped(*args, **kwargs)
        try:
            result = wrapped(*args, **kwargs)
        except BaseException as exc:
            detach(token)
            end_with_exception(name, span, exc, status_of_error, 400)
            raise
        detach(token)
        try:
            end_with_status(span, status_of(result), 400)
        except Exception:
            abandon(name, span)
        return result

    return wrapper


def abandon(name: str, span) -> None:
    """Report the failure being handled; end ``span`` if one was started."""
    report(name)
    if span is not None:
        try:
            span.end()
        except Exception:
            pass


def end_with_status(span, code: int, error_from: int) -> None:
    """Record the response status (ERROR from ``error_from`` up) and end ``span``."""
    span.set_attribute(HTTP_RESPONSE_STATUS_CODE, code)
    if code >= error_from:
        span.set_attribute(ERROR_TYPE, str(code))
        span.set_status(StatusCode.ERROR)
    span.end()


def end_with_exception(name, span, exc, status_of_error=None, error_from=400) -> None:
    """Record ``exc`` (and the status it carries, if any) as the span's error; end it."""
    try:
        code = status_of_error(exc) if status_of_error is not None else None
        if code is not None:
            span.set_attribute(HTTP_RESPONSE_STATUS_CODE, code)
        record_exception(span, exc, str(code) if code is not None and code >= error_from else None)
        span.end()
    except Exception:
        abandon(name, span)


def record_exception(span, exc, kind=None) -> None:
    """Mark ``span`` failed by ``exc``: event, ERROR status, ``error.type`` (``kind`` if given)."""
    span.record_exception(exc)
    span.set_attribute(ERROR_TYPE, kind or error_type(exc))
    span.set_status(StatusCode.ERROR, f"{type(exc).__name__}: {exc}")


class _EnvironGetter(Getter):
    """Reads propagation headers (``traceparent``...) from a WSGI environ."""

    def __init__(self):
        self._names = {}

    def _environ_name(self, key):
        name = self._names.get(key)
        if name is None:
            name = self._names[key] = "HTTP_" + key.upper().replace("-", "_")
        return name

    def get(self, carrier, key):
        value = carrier.get(self._environ_name(key))
        return None if value is None else [value]

    def keys(self, carrier):
        return [name[5:].lower().replace("_", "-") for name in carrier if name.startswith("HTTP_")]


environ_getter = _EnvironGetter()


def extract(environ):
    """The remote context an incoming WSGI request carries (empty if none)."""
    return propagate.extract(environ, getter=environ_getter)


def server_attributes(environ, method: str, path: str, route) -> tuple:
    """``(span name, attributes)`` of a server span for a WSGI request."""
    attributes = {URL_PATH: path, URL_SCHEME: environ.get("wsgi.url_scheme", "http")}
    prefix = method_attributes(method, attributes)
    query = environ.get("QUERY_STRING")
    if query:
        attributes[URL_QUERY] = redact_query(query)
    if route is not None:
        attributes[HTTP_ROUTE] = route
    client = environ.get("REMOTE_ADDR")
    if client:
        attributes[CLIENT_ADDRESS] = client
    agent = environ.get("HTTP_USER_AGENT")
    if agent:
        attributes[USER_AGENT_ORIGINAL] = agent
    return (prefix if route is None else f"{prefix} {route}"), attributes
