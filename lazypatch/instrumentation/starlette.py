"""Starlette: a SERVER span per HTTP request of every Starlette application, FastAPI's included.

``Starlette.__call__``, the ASGI entry of every application, is patched on the class: an app
created before instrumentation, a ``FastAPI`` app (its ``__call__`` ends in Starlette's), a
subclass, an app behind ASGI middleware are traced the same way. The patch is an
``async def __call__(self, scope, receive, send)`` of its own that calls the one it replaced
(``Patch.original``, so a reload is followed): servers inspect this entry (uvicorn calls it with
no arguments to tell an app from an app factory, then asks whether it is a coroutine function),
and it answers as Starlette's does.

- Each request is also measured in ``http.server.request.duration``.
- Only ``http`` scopes make a span: ``lifespan`` and ``websocket`` pass through untouched.
- One span per request: a mounted Starlette or FastAPI application finds the request's span in
  the scope and adds none. FastAPI versions with telemetry of their own step aside for an
  external instrumentation (they do so for OpenTelemetry's ASGI middleware): ``FastAPI.__call__``
  is patched likewise to mark each HTTP scope as not FastAPI's to trace, as FastAPI's own
  ``exclude`` setting does. Otherwise FastAPI would switch its tracing on in the middle of a
  process, once lazypatch's first span had set the tracer provider up.
- The incoming context is extracted from the headers; the span is current while the
  application runs, so its children (database queries, outgoing httpx calls) nest under it.
- Named ``METHOD /route/{param}`` from the template of the route that matched (the mount
  prefixes included), or ``METHOD`` when none did.
- The span ends when the last body message has been sent: after the whole stream for a
  ``StreamingResponse``, before background tasks run. A 5xx response waits for the end of the
  call, so the exception that Starlette re-raises after sending its 500 is recorded on it.
"""

from __future__ import annotations

from .. import Instrumentor
from . import error_type, report

TYPE_CHECKING = False
if TYPE_CHECKING:
    from contextvars import Token
    from typing import Any, Awaitable, Callable, Dict, Iterable, List, Optional, Sequence, Tuple

    from opentelemetry.context import Context
    from opentelemetry.trace import Span, Tracer
    from opentelemetry.util.types import AttributeValue
    from starlette.applications import Starlette
    from starlette.routing import BaseRoute
    from starlette.types import Message, Receive, Scope, Send  # noqa: F401 (Message: a type comment)

    from .._patches import Patch
    from ._semconv import Histogram

    Metric = Dict[str, AttributeValue]
    Headers = Iterable[Tuple[bytes, bytes]]
    Record = Callable[[float, Metric], None]
    # ``Starlette.__call__`` (or ``FastAPI.__call__``) as found on the class: (app, scope,
    # receive, send).
    Call = Callable[[Starlette, Scope, Receive, Send], Awaitable[None]]
    # One request through the original ``__call__``: (original, app, scope, receive, send).
    Traced = Callable[[Call, Starlette, Scope, Receive, Send], Awaitable[None]]

_NAME = "starlette"
_SCOPE_KEY = "lazypatch.span"
_FASTAPI_KEY = "fastapi.telemetry"


class _Request:
    """One traced request: its span, what routing is measured against, what is known so far."""

    __slots__ = ("span", "app", "path", "root_path", "status", "ended", "metric", "start")

    def __init__(
        self, span: Span, app: Starlette, path: str, root_path: str, metric: Metric, start: float
    ) -> None:
        self.span = span
        self.app = app
        self.path = path
        self.root_path = root_path
        self.status: Optional[int] = None
        self.ended = False
        self.metric = metric
        self.start = start


def _route_path(routes: Sequence[BaseRoute], scope: Scope) -> Optional[str]:
    """The template of the route that ``scope`` matches in ``routes``, mount prefixes included."""
    from starlette.routing import Match

    prefix = ""
    while True:
        found: Optional[Tuple[BaseRoute, Scope]] = None
        partial: Optional[Tuple[BaseRoute, Scope]] = None
        for route in routes:
            match, child = route.matches(scope)
            if match is Match.FULL:
                found = (route, child)
                break
            if match is Match.PARTIAL and partial is None:
                partial = (route, child)
        found = found or partial
        if found is None:
            return None
        route, child = found
        prefix += getattr(route, "path", "")
        routes = getattr(route, "routes", ())
        if not routes:
            return prefix or None
        scope = {**scope, **child}


def route_of(state: _Request, scope: Scope) -> Optional[str]:
    """``http.route`` of a finished request, or None if no route matched."""
    route = scope.get("route")
    if (
        route is not None
        and scope.get("root_path", "") == state.root_path
        and getattr(route, "routes", None) is None
    ):
        return getattr(route, "path", None)
    # Mounted applications (the scope's root path changed on the way) and Starlette versions
    # that do not note the route in the scope: match again from the top, as routing did.
    routes = getattr(state.app, "routes", None)
    if not routes:
        return None
    return _route_path(routes, {**scope, "path": state.path, "root_path": state.root_path})


def _host_and_port(scope: Scope, host: Optional[bytes]) -> Tuple[Optional[str], Optional[int]]:
    """``(server.address, server.port)``: the Host header, else the server the scope names."""
    if host:
        name = host.decode("latin-1")
        if name.endswith("]") or ":" not in name:
            return name.strip("[]"), _DEFAULT_PORTS.get(scope.get("scheme", "http"))
        address, _, port = name.rpartition(":")
        return address.strip("[]"), int(port) if port.isdecimal() else None
    server = scope.get("server")
    return (server[0], server[1]) if server else (None, None)


_DEFAULT_PORTS = {"http": 80, "https": 443, "ws": 80, "wss": 443}


def _entry(patch: List[Patch], build: Callable[[], Traced]) -> Call:
    """The ``Starlette.__call__`` that traces, calling ``patch[0].original``: ``build()`` makes
    the tracing call at the first request (OpenTelemetry is imported then, not before); if it
    raises, the failure is reported once and requests go on untraced."""
    traced: Optional[Traced] = None

    async def __call__(self: Starlette, scope: Scope, receive: Receive, send: Send) -> None:
        nonlocal traced
        if traced is None:
            try:
                traced = build()
            except Exception:
                report(_NAME)
                traced = _untraced
        # Patch.original is an object to Patch: here, the Starlette.__call__ it replaced.
        await traced(patch[0].original, self, scope, receive, send)  # type: ignore[arg-type]

    return __call__


async def _untraced(
    original: Call, app: Starlette, scope: Scope, receive: Receive, send: Send
) -> None:
    await original(app, scope, receive, send)


def _traced(tracer: Tracer, histogram: Optional[Histogram]) -> Traced:
    """``traced(original, app, scope, receive, send)``: one request through ``original`` under
    a server span; measured in ``histogram`` (``http.server.request.duration``) unless None."""
    from time import perf_counter

    from opentelemetry import context, propagate, trace
    from opentelemetry.context import _SUPPRESS_INSTRUMENTATION_KEY
    from opentelemetry.propagators.textmap import Getter

    from . import _http, _semconv

    # Getter is generic in its carrier for type checkers only: subscribing it at run time would
    # cost the first request a couple of milliseconds in typing's machinery.
    if TYPE_CHECKING:
        HeadersGetterBase = Getter[Headers]
    else:
        HeadersGetterBase = Getter

    class HeadersGetter(HeadersGetterBase):
        """Reads propagation headers from an ASGI scope's ``headers`` (lowercase bytes)."""

        def get(self, carrier: Headers, key: str) -> Optional[List[str]]:
            name = key.lower().encode("latin-1")
            values = [value.decode("latin-1") for header, value in carrier if header == name]
            return values or None

        def keys(self, carrier: Headers) -> List[str]:
            return [header.decode("latin-1") for header, _ in carrier]

    getter = HeadersGetter()
    extract = propagate.extract
    get_value = context.get_value
    attach = context.attach
    detach = context.detach
    set_span_in_context = trace.set_span_in_context
    start_span = tracer.start_span
    server = trace.SpanKind.SERVER
    old_names = _semconv.HTTP_SERVER_OLD
    status_keys = _http.SERVER_STATUS_KEYS
    route_keys = (_semconv.HTTP_ROUTE,)
    record = None if histogram is None else histogram.record

    def attributes_of(scope: Scope, headers: Headers) -> Tuple[str, Metric, Metric]:
        """``(span name prefix, span attributes, metric attributes)`` of a request."""
        metric: Metric = {_semconv.URL_SCHEME: scope.get("scheme", "http")}
        prefix = _http.method_attributes(scope["method"], metric)
        version = scope.get("http_version")
        if version:
            metric[_semconv.NETWORK_PROTOCOL_VERSION] = version
        attributes: Metric = {**metric, _semconv.URL_PATH: scope["path"]}
        query = scope.get("query_string")
        if query:
            attributes[_semconv.URL_QUERY] = _http.redact_query(query.decode("latin-1"))
        client = scope.get("client")
        if client:
            attributes[_semconv.CLIENT_ADDRESS] = client[0]
            attributes[_semconv.CLIENT_PORT] = client[1]
        host: Optional[bytes] = None
        agent: Optional[bytes] = None
        for header, value in headers:
            if header == b"host":
                host = value
            elif header == b"user-agent":
                agent = value
        try:
            address, port = _host_and_port(scope, host)
        except ValueError:
            address = port = None
        if address:
            attributes[_semconv.SERVER_ADDRESS] = address
        if port:
            attributes[_semconv.SERVER_PORT] = port
        if agent:
            attributes[_semconv.USER_AGENT_ORIGINAL] = agent.decode("latin-1")
        if old_names:
            _add_old(scope, attributes, host, query)
        return prefix, attributes, metric

    def _add_old(
        scope: Scope, attributes: Metric, host: Optional[bytes], query: Optional[bytes]
    ) -> None:
        _semconv.add_old(attributes, old_names)
        server_name, host_key, target = _semconv.HTTP_SERVER_OLD_EXTRA
        path = scope["path"]
        attributes[target] = path  # OpenTelemetry's ASGI target: no query
        if host:
            attributes[host_key] = attributes[server_name] = name = host.decode("latin-1")
            url = f"{scope.get('scheme', 'http')}://{name}{path}"
            # url.query holds the redacted query text that attributes_of put there (newer
            # opentelemetry-api counts bytes among attribute values, older does not).
            attributes[_semconv.OLD_HTTP_URL] = (
                f"{url}?{attributes[_semconv.URL_QUERY]}"  # type: ignore[str-bytes-safe, unused-ignore]
                if query
                else url
            )

    def start(instance: Starlette, scope: Scope) -> Tuple[_Request, Token[Context], str]:
        headers = scope.get("headers") or ()
        prefix, attributes, metric = attributes_of(scope, headers)
        parent = extract(headers, getter=getter)
        span = start_span(prefix, parent, server, attributes)
        state = _Request(
            span, instance, scope["path"], scope.get("root_path", ""), metric, perf_counter()
        )
        scope[_SCOPE_KEY] = state
        return state, attach(set_span_in_context(span, parent)), prefix

    def measure(
        record: Record, state: _Request, route: Optional[str], failed: Optional[str]
    ) -> None:
        elapsed = perf_counter() - state.start
        metric = state.metric
        if route is not None:
            metric[_semconv.HTTP_ROUTE] = route
        status = state.status
        if status is not None:
            metric[_semconv.HTTP_RESPONSE_STATUS_CODE] = status
            if status >= 500:
                metric[_semconv.ERROR_TYPE] = str(status)
        if failed is not None:
            metric[_semconv.ERROR_TYPE] = failed
        record(elapsed, metric)

    def end(
        state: _Request, scope: Scope, prefix: str, exc: Optional[BaseException] = None
    ) -> None:
        if state.ended:
            return
        state.ended = True
        span = state.span
        try:
            route = route_of(state, scope)
            if route is not None:
                for key in route_keys:
                    span.set_attribute(key, route)
                span.update_name(f"{prefix} {route}")
            failed = None
            if exc is not None:
                if state.status is not None:
                    for key in status_keys:
                        span.set_attribute(key, state.status)
                failed = error_type(exc)
                _http.record_exception(span, exc, failed)
                span.end()
            elif state.status is not None:
                _http.end_with_status(span, state.status, 500, status_keys)
            else:
                span.end()
        except Exception:
            _http.abandon(_NAME, span)
            return
        if record is not None:  # a failed measurement must not end the span again
            try:
                measure(record, state, route, failed)
            except Exception:
                report(_NAME)

    async def traced(
        original: Call, self: Starlette, scope: Scope, receive: Receive, send: Send
    ) -> None:
        if (
            scope["type"] != "http"
            or _SCOPE_KEY in scope
            or get_value(_SUPPRESS_INSTRUMENTATION_KEY)
            or getattr(scope.get(_FASTAPI_KEY), "span", None) is not None
        ):
            return await original(self, scope, receive, send)
        try:
            state, token, prefix = start(self, scope)
        except Exception:
            report(_NAME)
            return await original(self, scope, receive, send)

        # A type comment: annotations would make Python 3.9 build a dict per request.
        async def traced_send(message):  # type: (Message) -> None
            last = False
            try:
                kind = message["type"]
                if kind == "http.response.start":
                    state.status = message["status"]
                elif kind == "http.response.body" and not message.get("more_body", False):
                    last = state.status is not None and state.status < 500
            except Exception:
                report(_NAME)
            await send(message)
            if last:
                end(state, scope, prefix)

        try:
            await original(self, scope, receive, traced_send)
        except BaseException as exc:
            detach(token)
            end(state, scope, prefix, exc)
            raise
        detach(token)
        end(state, scope, prefix)

    return traced


def _fastapi_entry(patch: List[Patch]) -> Call:
    """The ``FastAPI.__call__`` that leaves an HTTP request's tracing to lazypatch."""

    async def __call__(self: Starlette, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and _FASTAPI_KEY not in scope:
            scope[_FASTAPI_KEY] = None
        # Patch.original is an object to Patch: here, the FastAPI.__call__ it replaced.
        await patch[0].original(self, scope, receive, send)  # type: ignore[operator]

    return __call__


class StarletteInstrumentor(Instrumentor):
    """Traces every HTTP request served by every Starlette (and FastAPI) application."""

    targets = ("starlette.applications",)
    requirements = ("starlette >= 0.13",)

    def _instrument(self, **kwargs: Any) -> None:
        tracer_provider = kwargs.get("tracer_provider")
        meter_provider = kwargs.get("meter_provider")

        def build() -> Traced:
            from . import _semconv

            tracer, histogram = _semconv.signals(
                __name__, _semconv.HTTP_SERVER_REQUEST_DURATION, tracer_provider, meter_provider
            )
            return _traced(tracer, histogram)

        patch: List[Patch] = []
        entry = _entry(patch, build)
        patch.append(self.replace("starlette.applications", "Starlette.__call__", entry))
        fastapi: List[Patch] = []  # applied if and when FastAPI is imported
        entry = _fastapi_entry(fastapi)
        fastapi.append(self.replace("fastapi.applications", "FastAPI.__call__", entry))
