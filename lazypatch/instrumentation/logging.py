"""logging: trace context on every ``LogRecord``, so log lines can be joined with traces.

Adds OpenTelemetry's logging-instrumentation attributes: ``otelTraceID``, ``otelSpanID``,
``otelTraceSampled`` and ``otelServiceName`` (``"0"``, ``"0"``, ``False`` outside a span, so
that format strings naming them work everywhere). ``LogRecord.__init__`` is wrapped in place
rather than the record factory replaced: every record passes through it, whatever factory an
application installed before or after, and from loggers created at any time. OpenTelemetry is
never imported here: until something else has loaded it, no record can be inside a span.
"""

import sys

from .. import Instrumentor
from . import report

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, Callable, Dict, Optional, Tuple

    from opentelemetry.trace import Span, TracerProvider

    from .._patches import Wrapper

_NAME = "logging"
_TRACE_MODULE = "opentelemetry.trace"


def _record_wrapper(provider: "Optional[TracerProvider]") -> "Wrapper":
    """The wrapper of ``LogRecord.__init__``, reading spans through OpenTelemetry's API.

    It never imports OpenTelemetry: a record made while ``opentelemetry.trace`` is not loaded
    cannot be inside one of its spans, so it gets the outside-a-span values. The module is
    looked up in ``sys.modules`` until it is there and complete (``opentelemetry.trace`` itself
    imports ``logging``, so a record may be made while it is half-initialised).
    """
    modules = sys.modules
    get_current_span: Optional[Callable[[], Span]] = None
    service: Optional[str] = None

    def service_name() -> str:
        # Resolved on the first record inside a span rather than at instrumentation, when the
        # global provider may not be set yet; only an SDK provider has a resource.
        nonlocal service
        if service is None:
            from ._semconv import SERVICE_NAME

            trace = modules[_TRACE_MODULE]
            resource = getattr(provider or trace.get_tracer_provider(), "resource", None)
            if resource is None:
                return ""
            service = str(resource.attributes.get(SERVICE_NAME, ""))
        return service

    def wrapper(
        wrapped: "Callable[..., None]",
        instance: "Any",
        args: "Tuple[Any, ...]",
        kwargs: "Dict[str, Any]",
    ) -> None:
        nonlocal get_current_span
        wrapped(*args, **kwargs)
        try:
            if get_current_span is None:
                get_current_span = getattr(modules.get(_TRACE_MODULE), "get_current_span", None)
            if get_current_span is not None:
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

    def _instrument(self, **kwargs: "Any") -> None:
        import logging

        self.wrap(logging, "LogRecord.__init__", _record_wrapper(kwargs.get("tracer_provider")))
