"""httpx: a CLIENT span per HTTP request of every sync and async client and transport.

Patched on the classes, where every request passes at call time, so clients and transports
created before instrumentation, and subclasses, are traced alike:

- ``Client._send_single_request`` / ``AsyncClient._send_single_request``: each request a client
  sends (one span per redirect hop or authentication retry), whatever transport serves it (the
  default one, ``MockTransport``, ``ASGITransport``, a mounted or custom transport);
- ``HTTPTransport.handle_request`` / ``AsyncHTTPTransport.handle_async_request``: the default
  transports called directly. Under a client's span the context carries
  ``_SUPPRESS_HTTP_INSTRUMENTATION_KEY``, so they add no second span (nor does any other HTTP
  instrumentation underneath).

The span ends when the response's body is closed: inside the call for ``client.get()`` (the
body is read before it returns), when the stream is closed or fully read for
``client.stream()`` / ``send(stream=True)``. An error while reading the body is recorded on it.
"""

from .. import Instrumentor

_NAME = "httpx"


def _wrappers(httpx, tracer):
    """``(sync_wrapper, async_wrapper)`` tracing one request, closures over the tracer."""
    from opentelemetry import context, propagate, trace
    from opentelemetry.context import (
        _SUPPRESS_HTTP_INSTRUMENTATION_KEY,
        _SUPPRESS_INSTRUMENTATION_KEY,
    )
    from opentelemetry.semconv.attributes.network_attributes import NETWORK_PROTOCOL_VERSION

    from . import _http

    get_current = context.get_current
    set_value = context.set_value
    attach = context.attach
    detach = context.detach
    set_span_in_context = trace.set_span_in_context
    inject = propagate.inject
    start_span = tracer.start_span
    client = trace.SpanKind.CLIENT
    url_attributes = _http.url_attributes
    method_attributes = _http.method_attributes
    status_code = _http.HTTP_RESPONSE_STATUS_CODE
    error_type = _http.ERROR_TYPE
    error = _http.StatusCode.ERROR

    def end(body) -> None:
        span, body.span = body.span, None
        if span is not None:
            try:
                span.end()
            except Exception:
                _http.report(_NAME)

    def fail(body, exc) -> None:
        if body.span is not None:
            try:
                _http.record_exception(body.span, exc)
            except Exception:
                _http.report(_NAME)

    class SyncBody(httpx.SyncByteStream):
        """The response body; the span ends when it is closed."""

        def __init__(self, stream, span):
            self.stream = stream
            self.span = span

        def __iter__(self):
            try:
                yield from self.stream
            except Exception as exc:
                fail(self, exc)
                raise

        def close(self):
            try:
                self.stream.close()
            finally:
                end(self)

    class AsyncBody(httpx.AsyncByteStream):
        """The response body of an async request; the span ends when it is closed."""

        def __init__(self, stream, span):
            self.stream = stream
            self.span = span

        async def __aiter__(self):
            try:
                async for chunk in self.stream:
                    yield chunk
            except Exception as exc:
                fail(self, exc)
                raise

        async def aclose(self):
            try:
                await self.stream.aclose()
            finally:
                end(self)

    def start(args, kwargs, ctx):
        request = args[0] if args else kwargs["request"]
        attributes = dict(url_attributes(str(request.url)))
        span = start_span(method_attributes(request.method, attributes), ctx, client, attributes)
        try:
            span_ctx = set_span_in_context(span, ctx)
            inject(request.headers, span_ctx)
            return span, attach(set_value(_SUPPRESS_HTTP_INSTRUMENTATION_KEY, True, span_ctx))
        except Exception:
            _http.abandon(_NAME, span)
            return None, None

    def finish(span, response, body_class) -> None:
        code = response.status_code
        span.set_attribute(status_code, code)
        version = response.extensions.get("http_version")
        if version:
            span.set_attribute(NETWORK_PROTOCOL_VERSION, version.decode("ascii")[5:] or "1.1")
        if code >= 400:
            span.set_attribute(error_type, str(code))
            span.set_status(error)
        if response.is_closed:  # the transport gave the body already read (MockTransport...)
            span.end()
        else:
            response.stream = body_class(response.stream, span)

    def sync_wrapper(wrapped, instance, args, kwargs):
        ctx = get_current()
        if ctx.get(_SUPPRESS_INSTRUMENTATION_KEY) or ctx.get(_SUPPRESS_HTTP_INSTRUMENTATION_KEY):
            return wrapped(*args, **kwargs)
        try:
            span, token = start(args, kwargs, ctx)
        except Exception:
            _http.report(_NAME)
            span = None
        if span is None:
            return wrapped(*args, **kwargs)
        try:
            response = wrapped(*args, **kwargs)
        except BaseException as exc:
            detach(token)
            _http.end_with_exception(_NAME, span, exc)
            raise
        detach(token)
        try:
            finish(span, response, SyncBody)
        except Exception:
            _http.abandon(_NAME, span)
        return response

    async def async_wrapper(wrapped, instance, args, kwargs):
        ctx = get_current()
        if ctx.get(_SUPPRESS_INSTRUMENTATION_KEY) or ctx.get(_SUPPRESS_HTTP_INSTRUMENTATION_KEY):
            return await wrapped(*args, **kwargs)
        try:
            span, token = start(args, kwargs, ctx)
        except Exception:
            _http.report(_NAME)
            span = None
        if span is None:
            return await wrapped(*args, **kwargs)
        try:
            response = await wrapped(*args, **kwargs)
        except BaseException as exc:
            detach(token)
            _http.end_with_exception(_NAME, span, exc)
            raise
        detach(token)
        try:
            finish(span, response, AsyncBody)
        except Exception:
            _http.abandon(_NAME, span)
        return response

    return sync_wrapper, async_wrapper


class HttpxInstrumentor(Instrumentor):
    """Traces every HTTP request sent by httpx: sync and async clients and transports."""

    targets = ("httpx",)
    requirements = ("httpx >= 0.23",)

    def _instrument(self, **kwargs):
        import httpx
        from opentelemetry import trace

        tracer = trace.get_tracer(__name__, tracer_provider=kwargs.get("tracer_provider"))
        sync_wrapper, async_wrapper = _wrappers(httpx, tracer)
        self.wrap("httpx", "Client._send_single_request", sync_wrapper)
        self.wrap("httpx", "AsyncClient._send_single_request", async_wrapper)
        self.wrap("httpx", "HTTPTransport.handle_request", sync_wrapper)
        self.wrap("httpx", "AsyncHTTPTransport.handle_async_request", async_wrapper)
