"""Flask: a SERVER span and an ``http.server.request.duration`` measurement per request, through
Flask's own request signals.

The signals are sent by every application for every request, whatever the application object
was created from, however its ``wsgi_app`` was wrapped and whenever instrumentation was switched
on: an app created before ``instrument()``, a ``Flask`` subclass, an app behind ``ProxyFix``, a
blueprint's views and error handlers are traced the same way, and disconnecting the receivers
stops the spans of every app.

- ``request_started`` (routing done): the incoming context is extracted, the span started and
  made current for the view, so its children (sqlite3 queries...) nest under it;
- ``got_request_exception``: an unhandled exception is recorded on the span;
- ``request_finished``: the status is noted; a streamed response ties the span's end to its
  ``close()``, which the WSGI server calls once the last chunk has been sent;
- ``request_tearing_down``: the context is detached; the span ends here unless a streamed
  response is still being sent. A response whose body is already built is complete at this
  point, so its span does not wait for a ``close()`` that a test client may never call.
"""

from __future__ import annotations

from .. import Instrumentor
from . import error_type, report

TYPE_CHECKING = False
if TYPE_CHECKING:
    from contextvars import Token
    from types import ModuleType
    from typing import Any, Callable, Dict, Literal, Optional, Tuple, Union

    from blinker import Signal
    from flask import Response
    from opentelemetry.context import Context
    from opentelemetry.metrics import MeterProvider
    from opentelemetry.trace import Span, Tracer, TracerProvider
    from opentelemetry.util.types import AttributeValue

    from ._semconv import Histogram

    Metric = Dict[str, AttributeValue]
    # A signal receiver, ``receiver(sender, **extra)``: started, failed, finished, tearing_down.
    Receiver = Callable[..., None]
    Receivers = Tuple[Receiver, Receiver, Receiver, Receiver]

_NAME = "flask"
_STATE = "_lazypatch_span"


class _Request:
    """One traced request: its span, the context token, what is known of its outcome (``failed``:
    the ``error.type`` of the exception that failed it, else False), its metric attributes."""

    __slots__ = ("span", "token", "status", "failed", "closing", "ended", "metric", "start")

    def __init__(self, span: Span, token: Token[Context], metric: Metric, start: float) -> None:
        self.span = span
        self.token = token
        self.status: Optional[int] = None
        self.failed: Union[str, Literal[False]] = False
        self.closing = False
        self.ended = False
        self.metric = metric
        self.start = start


def _receivers(flask: ModuleType, tracer: Tracer, histogram: Optional[Histogram]) -> Receivers:
    """The four signal receivers, as closures over the tracer, the ``http.server.request.duration``
    histogram (or None) and OpenTelemetry's functions: ``(started, failed, finished,
    tearing_down)``."""
    from time import perf_counter

    from opentelemetry import context, trace
    from opentelemetry.context import _SUPPRESS_INSTRUMENTATION_KEY

    # An error page (``abort(404)``) reaches request_finished as a WSGI app forced into a
    # response: its body, built already, is wrapped in a ClosingIterator and so "streamed".
    from werkzeug.wsgi import ClosingIterator

    from . import _http, _semconv

    current_request = flask.request._get_current_object
    get_value = context.get_value
    attach = context.attach
    detach = context.detach
    set_span_in_context = trace.set_span_in_context
    start_span = tracer.start_span
    server = trace.SpanKind.SERVER
    status_keys = _http.SERVER_STATUS_KEYS

    def end(state: _Request) -> None:
        if state.ended:
            return
        state.ended = True
        span = state.span
        try:
            if state.status is None:
                span.end()
            elif state.failed:
                for key in status_keys:
                    span.set_attribute(key, state.status)
                span.end()
            else:
                _http.end_with_status(span, state.status, 500, status_keys)
        except Exception:
            _http.abandon(_NAME, state.span)
            return
        if histogram is not None:  # a failed measurement must not end the span again
            try:
                measure(state, histogram)
            except Exception:
                report(_NAME)

    def measure(state: _Request, histogram: Histogram) -> None:
        elapsed = perf_counter() - state.start
        metric = state.metric
        status = state.status
        if status is not None:
            metric[_semconv.HTTP_RESPONSE_STATUS_CODE] = status
            if status >= 500:
                metric[_semconv.ERROR_TYPE] = str(status)
        if state.failed:
            metric[_semconv.ERROR_TYPE] = state.failed
        histogram.record(elapsed, metric)

    def started(sender: object, **extra: Any) -> None:
        if get_value(_SUPPRESS_INSTRUMENTATION_KEY):
            return
        span = None
        try:
            request = current_request()
            environ = request.environ
            rule = request.url_rule
            name, attributes, metric = _http.server_attributes(
                environ, request.method, request.path, None if rule is None else rule.rule
            )
            parent = _http.extract(environ)
            span = start_span(name, parent, server, attributes)
            token = attach(set_span_in_context(span, parent))
            state = _Request(span, token, metric, perf_counter())
            request.__dict__[_STATE] = state
        except Exception:
            _http.abandon(_NAME, span)

    def failed(sender: object, exception: Optional[BaseException] = None, **extra: Any) -> None:
        try:
            state = current_request().__dict__.get(_STATE)
            if state is not None and exception is not None and not state.failed:
                state.failed = error_type(exception)
                _http.record_exception(state.span, exception, state.failed)
        except Exception:
            report(_NAME)

    def finished(sender: object, response: Optional[Response] = None, **extra: Any) -> None:
        try:
            state = current_request().__dict__.get(_STATE)
            if state is not None and response is not None:
                state.status = response.status_code
                if response.is_streamed and not isinstance(response.response, ClosingIterator):
                    state.closing = True
                    response.call_on_close(lambda: end(state))
        except Exception:
            report(_NAME)

    def tearing_down(sender: object, exc: Optional[BaseException] = None, **extra: Any) -> None:
        try:
            state = current_request().__dict__.pop(_STATE, None)
        except Exception:
            report(_NAME)
            return
        if state is None:
            return
        detach(state.token)
        if exc is not None and not state.failed:
            state.failed = error_type(exc)
            try:
                _http.record_exception(state.span, exc, state.failed)
            except Exception:
                report(_NAME)
        if not state.closing:
            end(state)

    return started, failed, finished, tearing_down


def _deferred_receivers(
    flask: ModuleType,
    tracer_provider: Optional[TracerProvider],
    meter_provider: Optional[MeterProvider],
) -> Receivers:
    """Receivers that build the real ones (importing OpenTelemetry) at the first request.

    Only ``request_started`` makes a span; the other three have nothing to do for a request
    that has none, so until then they return at once.
    """
    real: Optional[Receivers] = None

    def build() -> Receivers:
        nonlocal real
        if real is None:
            from . import _semconv

            tracer, histogram = _semconv.signals(
                __name__, _semconv.HTTP_SERVER_REQUEST_DURATION, tracer_provider, meter_provider
            )
            real = _receivers(flask, tracer, histogram)
        return real

    def started(sender: object, **extra: Any) -> None:
        try:
            receiver = build()[0]
        except Exception:
            report(_NAME)
            return
        receiver(sender, **extra)

    def later(index: int) -> Receiver:
        def receiver(sender: object, **extra: Any) -> None:
            if real is not None:
                real[index](sender, **extra)

        return receiver

    return started, later(1), later(2), later(3)


class FlaskInstrumentor(Instrumentor):
    """Traces every request handled by every Flask application of the process."""

    targets = ("flask",)
    requirements = ("flask >= 2.3",)
    _connected: Tuple[Tuple[Signal, Receiver], ...]

    def _instrument(self, **kwargs: Any) -> None:
        import flask

        signals = flask.signals
        receivers = _deferred_receivers(
            flask, kwargs.get("tracer_provider"), kwargs.get("meter_provider")
        )
        self._connected = tuple(
            zip(
                (
                    signals.request_started,
                    signals.got_request_exception,
                    signals.request_finished,
                    signals.request_tearing_down,
                ),
                receivers,
            )
        )
        for signal, receiver in self._connected:
            signal.connect(receiver, weak=False)

    def _uninstrument(self, **kwargs: Any) -> None:
        for signal, receiver in getattr(self, "_connected", ()):
            signal.disconnect(receiver)
        self._connected = ()
