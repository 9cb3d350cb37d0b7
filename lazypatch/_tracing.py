"""OpenTelemetry SDK set-up from the settings, deferred until the first span or measurement.

``arm()`` costs one internal post-import hook on ``opentelemetry.trace``. When that module loads,
the hook makes ``ProxyTracer`` (what the global API hands out while no tracer provider is set)
call :func:`ensure_sdk` the first time one of its tracers is asked for a span and there is still no
global provider. So the SDK, its exporter and the export thread are paid for at the first span,
by an instrumentation or by application code, and not at all by a process that makes none; and a
provider that the application or a distro sets before that first span is never overridden.

The SDK reads its own variables (resource, sampler, exporter endpoints, ``OTEL_SDK_DISABLED``,
propagators); lazypatch only picks the exporters, because its ``otlp`` means OTLP over
HTTP/protobuf (the SDK's default protocol is gRPC) and its default is OTLP when installed.

Metrics likewise: ``arm()`` also watches the proxy instruments that OpenTelemetry's global meter
hands out while no meter provider is set; the first measurement through one of them sets the
SDK's meter provider up from ``OTEL_METRICS_EXPORTER`` (``none``: no provider at all), unless the
application set one first. Both providers carry lazypatch's distro attributes on their resource.

``multiprocessing`` ends the children it forks with ``os._exit``, which skips the SDK's exit
handler: ``arm()`` also has every ``multiprocessing`` child flush the global tracer provider when
its ``Process`` has run, so the spans of fork and forkserver workers are exported, not lost.
"""

import sys
from _thread import RLock

from . import _config, _hooks
from ._log import logger

_TRACE_MODULE = "opentelemetry.trace"
_INSTRUMENT_MODULE = "opentelemetry.metrics._internal.instrument"
_PROCESS_MODULE = "multiprocessing.process"
_EXPORTER_GROUP = "opentelemetry_traces_exporter"
_METRICS_EXPORTER_GROUP = "opentelemetry_metrics_exporter"
_OTLP_BY_PROTOCOL = {"http/protobuf": "otlp_proto_http", "grpc": "otlp_proto_grpc"}
# The synchronous instruments of the global meter's proxies, and the method that measures.
_PROXY_MEASURES = (
    ("_ProxyCounter", "add"),
    ("_ProxyUpDownCounter", "add"),
    ("_ProxyHistogram", "record"),
    ("_ProxyGauge", "set"),
)
DISTRO_NAME = "lazypatch"

_lock = RLock()
_done = False
_running = False
_metrics_done = False
_resource = None


def arm() -> None:
    """Have the first span or measurement made through OpenTelemetry's global API set the SDK's
    tracer or meter provider up."""
    _hooks._registry.add(_TRACE_MODULE, _watch_proxy_tracer, internal=True)
    _hooks._registry.add(_INSTRUMENT_MODULE, _watch_proxy_instruments, internal=True)
    _hooks._registry.add(_PROCESS_MODULE, _flush_when_process_ends, internal=True)


def _watch_proxy_tracer(trace) -> None:
    proxy = getattr(trace, "ProxyTracer", None)
    current = getattr(proxy, "__dict__", {}).get("_tracer")
    if not isinstance(current, property) or getattr(current.fget, "_lazypatch", False):
        return
    if not hasattr(trace, "_TRACER_PROVIDER"):
        logger().warning("unknown opentelemetry.trace layout: tracing is not set up automatically")
        return
    real_tracer = current.fget

    def _tracer(self):
        if not _done and self._real_tracer is None and trace._TRACER_PROVIDER is None:
            ensure_sdk()
        return real_tracer(self)

    _tracer._lazypatch = True
    proxy._tracer = property(_tracer, doc=current.__doc__)


def _watch_proxy_instruments(instrument) -> None:
    """Make the global meter's proxy instruments call :func:`ensure_metrics` at their first
    measurement while no meter provider is set."""
    for class_name, method_name in _PROXY_MEASURES:
        proxy = getattr(instrument, class_name, None)
        measure = getattr(proxy, "__dict__", {}).get(method_name)
        if not callable(measure) or getattr(measure, "_lazypatch", False):
            continue
        proxy_measure = _first_measurement(measure)
        setattr(proxy, method_name, proxy_measure)


def _first_measurement(measure):
    from functools import wraps

    @wraps(measure)
    def proxy_measure(self, *args, **kwargs):
        if not _metrics_done and self._real_instrument is None:
            ensure_metrics()
        return measure(self, *args, **kwargs)

    proxy_measure._lazypatch = True
    return proxy_measure


def _flush_when_process_ends(process) -> None:
    """Make ``BaseProcess._bootstrap`` (what a child runs, then ``os._exit``) flush at its end."""
    base = getattr(process, "BaseProcess", None)
    bootstrap = getattr(base, "__dict__", {}).get("_bootstrap")
    if not callable(bootstrap) or getattr(bootstrap, "_lazypatch", False):
        return

    # A plain function rather than lazypatch.wrap: this runs when multiprocessing is imported,
    # and wrap would import wrapt (about 70 ms) into every program that merely imports it.
    from functools import wraps

    @wraps(bootstrap)
    def _bootstrap(self, *args, **kwargs):
        try:
            return bootstrap(self, *args, **kwargs)
        finally:
            flush()

    _bootstrap._lazypatch = True
    base._bootstrap = _bootstrap


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


def ensure_sdk() -> None:
    """Set up the SDK now unless done, in progress in this thread, or a provider is already set."""
    global _done, _running
    if _done:
        return
    with _lock:
        if _done or _running:
            return
        _running = True
        try:
            _set_up(_config.settings())
        except Exception:
            logger().warning("tracing set-up failed; spans are dropped", exc_info=True)
        finally:
            _done = True
            _running = False


def _set_up(settings) -> None:
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


def _exporters(settings) -> list:
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
        try:
            exporters.append(exporter_class())
        except Exception:
            logger().warning("trace exporter %r failed to start", name, exc_info=True)
    return exporters


def _exporter_class(name: str, group: str = _EXPORTER_GROUP):
    from opentelemetry.util._importlib_metadata import entry_points

    for entry_point in entry_points(group=group, name=name):
        return entry_point.load()
    return None


def resource():
    """The SDK's resource from the environment, with the distro's ``telemetry.distro.name`` and
    ``telemetry.distro.version`` (which ``OTEL_RESOURCE_ATTRIBUTES`` may still override)."""
    global _resource
    if _resource is None:
        from importlib.metadata import PackageNotFoundError, version

        from opentelemetry.sdk.resources import Resource
        from opentelemetry.semconv._incubating.attributes.telemetry_attributes import (
            TELEMETRY_DISTRO_NAME,
            TELEMETRY_DISTRO_VERSION,
        )

        try:
            distro_version = version(DISTRO_NAME)
        except PackageNotFoundError:
            distro_version = "unknown"
        distro = Resource(
            {TELEMETRY_DISTRO_NAME: DISTRO_NAME, TELEMETRY_DISTRO_VERSION: distro_version}
        )
        _resource = distro.merge(Resource.create())
    return _resource


def ensure_metrics() -> None:
    """Set up the SDK's meter provider now unless done, in progress in this thread, or one is
    already set."""
    global _metrics_done
    if _metrics_done:
        return
    with _lock:
        if _metrics_done:
            return
        _metrics_done = True
        try:
            _set_up_metrics(_config.settings())
        except Exception:
            logger().warning("metrics set-up failed; measurements are dropped", exc_info=True)


def _set_up_metrics(settings) -> None:
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


def _metric_readers(settings) -> list:
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
        try:
            if isinstance(exporter_class, type) and issubclass(exporter_class, MetricReader):
                readers.append(exporter_class())
            else:
                readers.append(PeriodicExportingMetricReader(exporter_class()))
        except Exception:
            logger().warning("metric exporter %r failed to start", name, exc_info=True)
    return readers
