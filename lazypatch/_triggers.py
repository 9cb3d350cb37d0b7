"""The patches of foreign code that the SDK set-up relies on, made with ``lazypatch.wrap``.

- ``opentelemetry.trace.ProxyTracer.start_span`` / ``start_as_current_span``: what the global API
  hands out while no tracer provider is set. The first span asked of one sets the SDK up
  (:func:`lazypatch._tracing.ensure_sdk`), unless a provider was set before.
- The measuring methods of the global meter's proxy instruments (``_ProxyHistogram.record``...):
  the first measurement sets the SDK's meter provider up
  (:func:`lazypatch._tracing.ensure_metrics`).
- ``multiprocessing.process.BaseProcess._bootstrap``: what a ``multiprocessing`` child runs
  before ``os._exit``, which skips the SDK's exit handler; the child flushes first.

Once a set-up is settled, its patches take themselves out. ``arm()`` costs three internal
post-import hooks; ``_patches`` is imported when one fires.
"""

from . import _hooks, _tracing
from ._state import state

TYPE_CHECKING = False
if TYPE_CHECKING:
    from types import ModuleType
    from typing import Any, Callable, Dict, Tuple, TypeVar

    R = TypeVar("R")

_TRACE_MODULE = "opentelemetry.trace"
_SPAN_METHODS = ("ProxyTracer.start_span", "ProxyTracer.start_as_current_span")
_INSTRUMENT_MODULE = "opentelemetry.metrics._internal.instrument"
# The synchronous instruments of the global meter's proxies, and the method that measures (a
# class missing from an older API is skipped).
_MEASURES = (
    ("_ProxyCounter", "add"),
    ("_ProxyUpDownCounter", "add"),
    ("_ProxyHistogram", "record"),
    ("_ProxyGauge", "set"),
)
_PROCESS_MODULE = "multiprocessing.process"


def arm() -> None:
    """Have the first span or measurement set the SDK up, and ``multiprocessing`` children
    flush at their end."""
    _hooks.add_internal(_TRACE_MODULE, _patch_proxy_tracer)
    _hooks.add_internal(_INSTRUMENT_MODULE, _patch_proxy_instruments)
    _hooks.add_internal(_PROCESS_MODULE, _patch_process)


# Each hook patches once: a patch re-applies itself when its module is reloaded.


def _patch_proxy_tracer(trace: "ModuleType") -> None:
    from ._patches import wrap

    if not state.span_triggers:
        state.span_triggers.extend(wrap(trace, path, _set_up_first) for path in _SPAN_METHODS)


def _patch_proxy_instruments(instrument: "ModuleType") -> None:
    from ._patches import wrap

    if not state.measure_triggers:
        state.measure_triggers.extend(
            wrap(instrument, f"{cls}.{method}", _set_up_metrics_first)
            for cls, method in _MEASURES
            if hasattr(instrument, cls)
        )


def _patch_process(process: "ModuleType") -> None:
    from ._patches import wrap

    if not state.process_triggers:
        state.process_triggers.append(wrap(process, "BaseProcess._bootstrap", _flush_at_end))


def _set_up_first(
    wrapped: "Callable[..., R]", instance: object, args: "Tuple[Any, ...]", kwargs: "Dict[str, Any]"
) -> "R":
    if _tracing.ensure_sdk():
        for patch in state.span_triggers:
            patch.remove()
    return wrapped(*args, **kwargs)


def _set_up_metrics_first(
    wrapped: "Callable[..., R]", instance: object, args: "Tuple[Any, ...]", kwargs: "Dict[str, Any]"
) -> "R":
    if _tracing.ensure_metrics():
        for patch in state.measure_triggers:
            patch.remove()
    return wrapped(*args, **kwargs)


def _flush_at_end(
    wrapped: "Callable[..., R]", instance: object, args: "Tuple[Any, ...]", kwargs: "Dict[str, Any]"
) -> "R":
    try:
        return wrapped(*args, **kwargs)
    finally:
        _tracing.flush()
