"""logging: trace context on every ``LogRecord``, so log lines can be joined with traces.

Adds OpenTelemetry's logging-instrumentation attributes: ``otelTraceID``, ``otelSpanID``,
``otelTraceSampled`` and ``otelServiceName`` (``"0"``, ``"0"``, ``False`` outside a span, so
that format strings naming them work everywhere). ``LogRecord.__init__`` is wrapped in place
rather than the record factory replaced: every record passes through it, whatever factory an
application installed before or after, and from loggers created at any time.
"""

from .. import Instrumentor
from . import report

_NAME = "logging"


def _record_wrapper(provider):
    """The wrapper of ``LogRecord.__init__``, reading spans through OpenTelemetry's API.

    OpenTelemetry is looked up on the first record, not here: ``opentelemetry.trace`` itself
    imports ``logging``, so this may run while it is half-initialised. Records made before it
    is importable get the outside-a-span values.
    """
    get_current_span = None
    service = None

    def load():
        nonlocal get_current_span
        try:
            from opentelemetry.trace import get_current_span
        except ImportError:
            return False
        return True

    def service_name():
        # Resolved on the first record inside a span rather than at instrumentation, when the
        # global provider may not be set yet; only an SDK provider has a resource.
        nonlocal service
        if service is None:
            from opentelemetry.semconv.attributes.service_attributes import SERVICE_NAME
            from opentelemetry.trace import get_tracer_provider

            resource = getattr(provider or get_tracer_provider(), "resource", None)
            if resource is None:
                return ""
            service = str(resource.attributes.get(SERVICE_NAME, ""))
        return service

    def wrapper(wrapped, instance, args, kwargs):
        wrapped(*args, **kwargs)
        try:
            if get_current_span is not None or load():
                span_context = get_current_span().get_span_context()
                if span_context.is_valid:
                    instance.otelTraceID = format(span_context.trace_id, "032x")
                    instance.otelSpanID = format(span_context.span_id, "016x")
                    instance.otelTraceSampled = span_context.trace_flags.sampled
                    instance.otelServiceName = service_name()
                    return
            instance.otelTraceID = "0"
            instance.otelSpanID = "0"
            instance.otelTraceSampled = False
            instance.otelServiceName = service or ""
        except Exception:
            report(_NAME)

    return wrapper


class LoggingInstrumentor(Instrumentor):
    """Puts the current trace and span ids on every log record."""

    targets = ("logging",)

    def _instrument(self, **kwargs):
        import logging

        self.wrap(logging, "LogRecord.__init__", _record_wrapper(kwargs.get("tracer_provider")))
