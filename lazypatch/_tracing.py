"""OpenTelemetry SDK set-up from the settings, deferred until the first span is about to start.

``arm()`` costs one internal post-import hook on ``opentelemetry.trace``. When that module loads,
the hook makes ``ProxyTracer`` (what the global API hands out while no tracer provider is set)
call :func:`ensure_sdk` the first time one of its tracers is asked for a span and there is still no
global provider. So the SDK, its exporter and the export thread are paid for at the first span,
by an instrumentation or by application code, and not at all by a process that makes none; and a
provider that the application or a distro sets before that first span is never overridden.

The SDK reads its own variables (resource, sampler, exporter endpoints, ``OTEL_SDK_DISABLED``,
propagators); lazypatch only picks the exporters, because its ``otlp`` means OTLP over
HTTP/protobuf (the SDK's default protocol is gRPC) and its default is OTLP when installed.

``multiprocessing`` ends the children it forks with ``os._exit``, which skips the SDK's exit
handler: ``arm()`` also has every ``multiprocessing`` child flush the global tracer provider when
its ``Process`` has run, so the spans of fork and forkserver workers are exported, not lost.
"""

import sys
from _thread import RLock

from . import _config, _hooks
from ._log import logger

_TRACE_MODULE = "opentelemetry.trace"
_PROCESS_MODULE = "multiprocessing.process"
_EXPORTER_GROUP = "opentelemetry_traces_exporter"
_OTLP_BY_PROTOCOL = {"http/protobuf": "otlp_proto_http", "grpc": "otlp_proto_grpc"}

_lock = RLock()
_done = False
_running = False


def arm() -> None:
    """Have the first span started through OpenTelemetry's global API set the SDK up."""
    _hooks._registry.add(_TRACE_MODULE, _watch_proxy_tracer, internal=True)
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
    """Export the spans the global tracer provider still holds, if OpenTelemetry is in use."""
    trace = sys.modules.get(_TRACE_MODULE)
    if trace is None:
        return
    try:
        force_flush = getattr(trace.get_tracer_provider(), "force_flush", None)
        if force_flush is not None:
            force_flush()
    except Exception:
        logger().warning("flushing spans at the end of a process failed", exc_info=True)


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

    provider = TracerProvider()
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


def _exporter_class(name: str):
    from opentelemetry.util._importlib_metadata import entry_points

    for entry_point in entry_points(group=_EXPORTER_GROUP, name=name):
        return entry_point.load()
    return None
