"""OpenTelemetry SDK set-up from the settings, done once, at the first span or measurement.

:func:`ensure_sdk` is called by the first span asked of OpenTelemetry's global API while no
tracer provider is set, :func:`ensure_metrics` by the first measurement made through the global
meter's proxy instruments while no meter provider is set (``lazypatch._triggers`` arranges both).
So the SDK, its exporters and their threads are paid for at the first span or measurement, by an
instrumentation or by application code, and not at all by a process that makes none; and a
provider that the application or a distro sets before then is never overridden.

The SDK reads its own variables (resource, sampler, exporter endpoints, ``OTEL_SDK_DISABLED``,
propagators); lazypatch only picks the exporters, because its ``otlp`` means OTLP over
HTTP/protobuf (the SDK's default protocol is gRPC) and its default is OTLP when installed.
``OTEL_METRICS_EXPORTER`` likewise (``none``: no meter provider at all). Both providers carry
lazypatch's distro attributes on their resource.
"""

import sys

from . import _boundary, _config
from ._log import logger
from ._state import state

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, Callable, List, TypeVar

    from opentelemetry.sdk.metrics.export import MetricReader
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace.export import SpanExporter

    from ._config import Settings

    T = TypeVar("T")

_TRACE_MODULE = "opentelemetry.trace"
_EXPORTER_GROUP = "opentelemetry_traces_exporter"
_METRICS_EXPORTER_GROUP = "opentelemetry_metrics_exporter"
_OTLP_BY_PROTOCOL = {"http/protobuf": "otlp_proto_http", "grpc": "otlp_proto_grpc"}
DISTRO_NAME = "lazypatch"


def flush() -> None:
    """Export the spans and metrics the global providers still hold, if OpenTelemetry is in use."""
    for module, getter in (
        (_TRACE_MODULE, "get_tracer_provider"),
        ("opentelemetry.metrics", "get_meter_provider"),
    ):
        api = sys.modules.get(module)
        if api is None:
            continue
        try:
            force_flush = getattr(getattr(api, getter)(), "force_flush", None)
            if force_flush is not None:
                force_flush()
        except Exception:
            logger().warning("flushing telemetry at the end of a process failed", exc_info=True)


def ensure_sdk() -> bool:
    """Set up the SDK now unless done, in progress in this thread, or a provider is already set.

    True once that is settled (set up, or left to the provider found, or failed): later calls
    have nothing more to do.
    """
    if state.tracing_done:
        return True
    with state.tracing_lock:
        if state.tracing_done or state.tracing_running:
            return state.tracing_done
        state.tracing_running = True
        try:
            _boundary.run(
                _set_up, _config.settings(), _failed("tracing set-up failed; spans are dropped")
            )
        finally:
            state.tracing_done = True
            state.tracing_running = False
    return True


def _failed(message: str) -> "Callable[[BaseException], str]":
    """A boundary ``record`` for what has no handle: what failed, why (the SDK names the variable
    and value it refuses there), and what is lost."""
    return lambda exc: f"{message} ({_boundary.reason(exc)})"


def _start(factory: "Callable[[], T]") -> "T":
    return factory()


def _set_up(settings: "Settings") -> None:
    from opentelemetry import trace

    if not isinstance(trace.get_tracer_provider(), trace.ProxyTracerProvider):
        return
    if settings.sdk_disabled:
        return
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    provider = TracerProvider(resource=resource())
    for exporter in _exporters(settings):
        provider.add_span_processor(BatchSpanProcessor(exporter))
    trace.set_tracer_provider(provider)


def _exporters(settings: "Settings") -> "List[SpanExporter]":
    names = settings.traces_exporters
    if names is None:
        if _exporter_class(_OTLP_BY_PROTOCOL[settings.otlp_protocol]) is None:
            logger().warning(
                "no OTLP exporter is installed and OTEL_TRACES_EXPORTER is unset: spans are "
                "dropped (install lazypatch[otlp], or set OTEL_TRACES_EXPORTER=console or none)"
            )
            return []
        names = ("otlp",)
    exporters = []
    for name in names:
        if name == "none":
            continue
        entry_name = _OTLP_BY_PROTOCOL[settings.otlp_protocol] if name == "otlp" else name
        exporter_class = _exporter_class(entry_name)
        if exporter_class is None:
            logger().warning(
                "OTEL_TRACES_EXPORTER=%r: no trace exporter %r is installed (for otlp: "
                "install lazypatch[otlp]); its spans are dropped",
                ",".join(names),
                entry_name,
            )
            continue
        failed = _failed(f"trace exporter {name!r} failed to start; its spans are dropped")
        exporter = _boundary.run(_start, exporter_class, failed)
        if not isinstance(exporter, _boundary.Failed):
            exporters.append(exporter)
    return exporters


def _exporter_class(name: str, group: str = _EXPORTER_GROUP) -> "Any":
    from opentelemetry.util._importlib_metadata import entry_points

    for entry_point in entry_points(group=group, name=name):
        return entry_point.load()
    return None


def resource() -> "Resource":
    """The SDK's resource from the environment, with the distro's ``telemetry.distro.name`` and
    ``telemetry.distro.version`` (which ``OTEL_RESOURCE_ATTRIBUTES`` may still override)."""
    if state.resource is None:
        from opentelemetry.sdk.resources import Resource

        from . import _metadata
        from .instrumentation._semconv import TELEMETRY_DISTRO_NAME, TELEMETRY_DISTRO_VERSION

        distro_version = _metadata.version(DISTRO_NAME) or "unknown"
        distro = Resource(
            {TELEMETRY_DISTRO_NAME: DISTRO_NAME, TELEMETRY_DISTRO_VERSION: distro_version}
        )
        state.resource = distro.merge(Resource.create())
    return state.resource


def ensure_metrics() -> bool:
    """Set up the SDK's meter provider now unless done or one is already set. True: settled, as
    for :func:`ensure_sdk`."""
    if state.metrics_done:
        return True
    with state.tracing_lock:
        if state.metrics_done:
            return True
        state.metrics_done = True
        failed = _failed("metrics set-up failed; measurements are dropped")
        _boundary.run(_set_up_metrics, _config.settings(), failed)
    return True


def _set_up_metrics(settings: "Settings") -> None:
    from opentelemetry import metrics

    if (
        type(metrics.get_meter_provider()).__name__ != "_ProxyMeterProvider"
        or settings.sdk_disabled
    ):
        return
    readers = _metric_readers(settings)
    if not readers:
        return
    from opentelemetry.sdk.metrics import MeterProvider

    metrics.set_meter_provider(MeterProvider(metric_readers=readers, resource=resource()))


def _metric_readers(settings: "Settings") -> "List[MetricReader]":
    names = settings.metrics_exporters
    otlp = _OTLP_BY_PROTOCOL[settings.metrics_otlp_protocol]
    if names is None:
        if _exporter_class(otlp, _METRICS_EXPORTER_GROUP) is None:
            logger().info(
                "no OTLP metric exporter is installed and OTEL_METRICS_EXPORTER is unset: "
                "measurements are dropped (install lazypatch[otlp], or set OTEL_METRICS_EXPORTER)"
            )
            return []
        names = ("otlp",)
    if all(name == "none" for name in names):
        return []
    from opentelemetry.sdk.metrics.export import MetricReader, PeriodicExportingMetricReader

    readers = []
    for name in names:
        if name == "none":
            continue
        exporter_class = _exporter_class(otlp if name == "otlp" else name, _METRICS_EXPORTER_GROUP)
        if exporter_class is None:
            logger().warning(
                "OTEL_METRICS_EXPORTER=%r: no metric exporter %r is installed (for otlp: "
                "install lazypatch[otlp]); its measurements are dropped",
                ",".join(names),
                name,
            )
            continue
        if not (isinstance(exporter_class, type) and issubclass(exporter_class, MetricReader)):
            exporter_class = _periodic(PeriodicExportingMetricReader, exporter_class)
        failed = _failed(f"metric exporter {name!r} failed to start")
        reader = _boundary.run(_start, exporter_class, failed)
        if not isinstance(reader, _boundary.Failed):
            readers.append(reader)
    return readers


def _periodic(
    reader_class: "Callable[[Any], MetricReader]", exporter_class: "Callable[[], Any]"
) -> "Callable[[], MetricReader]":
    return lambda: reader_class(exporter_class())
