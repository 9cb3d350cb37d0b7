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

Each request is also measured in ``http.client.request.duration`` (until the response's headers
have arrived, as OpenTelemetry's httpx instrumentation does). The span ends when the response's
body is closed: inside the call for ``client.get()`` (the
body is read before it returns), when the stream is closed or fully read for
``client.stream()`` / ``send(stream=True)``. An error while reading the body is recorded on it.
"""

from __future__ import annotations

from .. import Instrumentor
from . import deferred, error_type, report

TYPE_CHECKING = False
if TYPE_CHECKING:
    from contextvars import Token
    from typing import (
        Any,
        AsyncIterator,
        Awaitable,
        Callable,
        Dict,
        Iterator,
        List,
        Optional,
        Tuple,
        Union,
    )

    from httpx import AsyncByteStream, Request, Response, SyncByteStream
    from opentelemetry.context import Context
    from opentelemetry.trace import Span, Tracer
    from opentelemetry.util.types import AttributeValue

    from .._patches import Wrapper
    from ._semconv import Histogram

    Metric = Dict[str, AttributeValue]
    SyncWrapper = Callable[
        [Callable[..., Response], object, Tuple[Any, ...], Dict[str, Any]], Response
    ]
    AsyncWrapper = Callable[
        [Callable[..., Awaitable[Response]], object, Tuple[Any, ...], Dict[str, Any]],
        Awaitable[Response],
    ]
    # What wraps a response's stream, SyncBody or AsyncBody: the stream is the kind its client
    # or transport gives (sync or async), which httpx types as either.
    BodyClass = Callable[[Any, Span], Union[SyncByteStream, AsyncByteStream]]

_NAME = "httpx"


def _wrappers(tracer: Tracer, histogram: Optional[Histogram]) -> Tuple[SyncWrapper, AsyncWrapper]:
    """``(sync_wrapper, async_wrapper)`` tracing one request, closures over the tracer and the
    ``http.client.request.duration`` histogram (or None)."""
    from time import perf_counter

    import httpx
    from opentelemetry import context, propagate, trace
    from opentelemetry.context import (
        _SUPPRESS_HTTP_INSTRUMENTATION_KEY,
        _SUPPRESS_INSTRUMENTATION_KEY,
    )

    from . import _http, _semconv

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
    old_names = _semconv.HTTP_CLIENT_OLD
    add_old = _semconv.add_old
    status_keys = _semconv.keys(_semconv.HTTP_RESPONSE_STATUS_CODE, old_names)
    version_keys = _semconv.keys(_semconv.NETWORK_PROTOCOL_VERSION, old_names)
    status_code = _semconv.HTTP_RESPONSE_STATUS_CODE
    protocol_version = _semconv.NETWORK_PROTOCOL_VERSION
    error_key = _semconv.ERROR_TYPE
    error = trace.StatusCode.ERROR
    record = None if histogram is None else histogram.record

    def end(body: Union[SyncBody, AsyncBody]) -> None:
        span, body.span = body.span, None
        if span is not None:
            try:
                span.end()
            except Exception:
                report(_NAME)

    def fail(body: Union[SyncBody, AsyncBody], exc: Exception) -> None:
        if body.span is not None:
            try:
                _http.record_exception(body.span, exc)
            except Exception:
                report(_NAME)

    class SyncBody(httpx.SyncByteStream):
        """The response body; the span ends when it is closed."""

        def __init__(self, stream: SyncByteStream, span: Span) -> None:
            self.stream = stream
            self.span: Optional[Span] = span

        def __iter__(self) -> Iterator[bytes]:
            try:
                yield from self.stream
            except Exception as exc:
                fail(self, exc)
                raise

        def close(self) -> None:
            try:
                self.stream.close()
            finally:
                end(self)

    class AsyncBody(httpx.AsyncByteStream):
        """The response body of an async request; the span ends when it is closed."""

        def __init__(self, stream: AsyncByteStream, span: Span) -> None:
            self.stream = stream
            self.span: Optional[Span] = span

        async def __aiter__(self) -> AsyncIterator[bytes]:
            try:
                async for chunk in self.stream:
                    yield chunk
            except Exception as exc:
                fail(self, exc)
                raise

        async def aclose(self) -> None:
            try:
                await self.stream.aclose()
            finally:
                end(self)

    class Call:
        """One traced request: its span, the context token, its metric point and start time."""

        __slots__ = ("span", "token", "metric", "start")
        span: Span
        token: Token[Context]
        metric: Metric
        start: float

    def start(args: Tuple[Any, ...], kwargs: Dict[str, Any], ctx: Context) -> Optional[Call]:
        request: Request = args[0] if args else kwargs["request"]
        url_span, url_metric = url_attributes(str(request.url))
        attributes = dict(url_span)
        prefix = method_attributes(request.method, attributes)
        agent = request.headers.get("user-agent")
        if agent:
            attributes[_semconv.USER_AGENT_ORIGINAL] = agent
        if old_names:
            add_old(attributes, old_names)
        call = Call()
        call.span = span = start_span(prefix, ctx, client, attributes)
        try:
            span_ctx = set_span_in_context(span, ctx)
            inject(request.headers, span_ctx)
            call.token = attach(set_value(_SUPPRESS_HTTP_INSTRUMENTATION_KEY, True, span_ctx))
        except Exception:
            _http.abandon(_NAME, span)
            return None
        if record is not None:
            method = attributes[_semconv.HTTP_REQUEST_METHOD]
            call.metric = {**url_metric, _semconv.HTTP_REQUEST_METHOD: method}
            call.start = perf_counter()
        return call

    def failed(call: Call, exc: BaseException) -> None:
        if record is not None:
            elapsed = perf_counter() - call.start
        _http.end_with_exception(_NAME, call.span, exc)
        if record is not None:
            try:
                call.metric[error_key] = error_type(exc)
                record(elapsed, call.metric)
            except Exception:
                report(_NAME)

    def finish(call: Call, response: Response, body_class: BodyClass) -> None:
        if record is not None:
            elapsed = perf_counter() - call.start
        span = call.span
        code = response.status_code
        for key in status_keys:
            span.set_attribute(key, code)
        version = response.extensions.get("http_version")
        if version:
            version = version.decode("ascii")[5:] or "1.1"
            for key in version_keys:
                span.set_attribute(key, version)
        if code >= 400:
            span.set_attribute(error_key, str(code))
            span.set_status(error)
        if response.is_closed:  # the transport gave the body already read (MockTransport...)
            span.end()
        else:
            response.stream = body_class(response.stream, span)
        if record is not None:  # a failed measurement must not end the span the body holds
            try:
                metric = call.metric
                metric[status_code] = code
                if version:
                    metric[protocol_version] = version
                if code >= 400:
                    metric[error_key] = str(code)
                record(elapsed, metric)
            except Exception:
                report(_NAME)

    def sync_wrapper(
        wrapped: Callable[..., Response],
        instance: object,
        args: Tuple[Any, ...],
        kwargs: Dict[str, Any],
    ) -> Response:
        ctx = get_current()
        if ctx.get(_SUPPRESS_INSTRUMENTATION_KEY) or ctx.get(_SUPPRESS_HTTP_INSTRUMENTATION_KEY):
            return wrapped(*args, **kwargs)
        try:
            call = start(args, kwargs, ctx)
        except Exception:
            report(_NAME)
            call = None
        if call is None:
            return wrapped(*args, **kwargs)
        try:
            response = wrapped(*args, **kwargs)
        except BaseException as exc:
            detach(call.token)
            failed(call, exc)
            raise
        detach(call.token)
        try:
            finish(call, response, SyncBody)
        except Exception:
            _http.abandon(_NAME, call.span)
        return response

    async def async_wrapper(
        wrapped: Callable[..., Awaitable[Response]],
        instance: object,
        args: Tuple[Any, ...],
        kwargs: Dict[str, Any],
    ) -> Response:
        ctx = get_current()
        if ctx.get(_SUPPRESS_INSTRUMENTATION_KEY) or ctx.get(_SUPPRESS_HTTP_INSTRUMENTATION_KEY):
            return await wrapped(*args, **kwargs)
        try:
            call = start(args, kwargs, ctx)
        except Exception:
            report(_NAME)
            call = None
        if call is None:
            return await wrapped(*args, **kwargs)
        try:
            response = await wrapped(*args, **kwargs)
        except BaseException as exc:
            detach(call.token)
            failed(call, exc)
            raise
        detach(call.token)
        try:
            finish(call, response, AsyncBody)
        except Exception:
            _http.abandon(_NAME, call.span)
        return response

    return sync_wrapper, async_wrapper


class HttpxInstrumentor(Instrumentor):
    """Traces every HTTP request sent by httpx: sync and async clients and transports."""

    targets = ("httpx",)
    requirements = ("httpx >= 0.23",)

    def _instrument(self, **kwargs: Any) -> None:
        tracer_provider = kwargs.get("tracer_provider")
        meter_provider = kwargs.get("meter_provider")
        built: List[Tuple[SyncWrapper, AsyncWrapper]] = []

        def builder(index: int) -> Callable[[], Wrapper]:
            # At the first request: OpenTelemetry is imported then, not before.
            def build() -> Wrapper:
                if not built:
                    from . import _semconv

                    tracer, histogram = _semconv.signals(
                        __name__,
                        _semconv.HTTP_CLIENT_REQUEST_DURATION,
                        tracer_provider,
                        meter_provider,
                    )
                    built.append(_wrappers(tracer, histogram))
                return built[0][index]

            return build

        sync_wrapper = deferred(_NAME, builder(0))
        async_wrapper = deferred(_NAME, builder(1))
        self.wrap("httpx", "Client._send_single_request", sync_wrapper)
        self.wrap("httpx", "AsyncClient._send_single_request", async_wrapper)
        self.wrap("httpx", "HTTPTransport.handle_request", sync_wrapper)
        self.wrap("httpx", "AsyncHTTPTransport.handle_async_request", async_wrapper)
