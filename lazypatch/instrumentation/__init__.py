"""Built-in instrumentations: requests, Flask, urllib, sqlite3, logging, httpx, Starlette.

Each submodule holds one :class:`lazypatch.Instrumentor`. Discovery loads an instrumentation
when its trigger module (``urllib``, ``logging``...) is imported, and ``_instrument`` patches the
library when it has loaded; neither imports OpenTelemetry. The OpenTelemetry API (and the SDK
behind it) is imported by the first instrumented call that makes a span: see :func:`deferred`.
A program that imports ``sqlite3`` or ``urllib.request`` and never uses them pays for
lazypatch's own few modules and nothing else.

What they share is here: the "never break the host" report and the deferred wrapper.
"""

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, Callable, Dict, Optional, Set, Tuple

    from .._patches import Wrapper

_reported: "Set[str]" = set()


def report(name: str) -> None:
    """Log the exception being handled as a failure of instrumentation ``name``, once per process.

    Called from the ``except`` clause that guards lazypatch's own work in an instrumented call;
    the call then goes on untraced. The name is remembered before logging, so a failure inside
    the logging instrumentation cannot recurse through this log line.
    """
    if name in _reported:
        return
    _reported.add(name)
    from .._log import logger

    logger().warning(
        "lazypatch instrumentation %r failed; the call goes on untraced (logged once)",
        name,
        exc_info=True,
    )


def error_type(exc: BaseException) -> str:
    """``error.type`` of an exception: its qualified class name (builtins without module)."""
    cls = type(exc)
    module = cls.__module__
    if module == "builtins":
        return cls.__qualname__
    return f"{module}.{cls.__qualname__}"


def deferred(name: str, build: "Callable[[], Wrapper]") -> "Wrapper":
    """A ``wrapper(wrapped, instance, args, kwargs)`` that makes the real one with ``build()`` at
    its first call, and calls it from then on.

    ``build`` is where OpenTelemetry gets imported and a tracer asked for. If it raises, the
    failure is reported once and the calls go on untraced. Two threads making the first call
    together may both build; the one stored last serves from then on.
    """
    real: Optional[Wrapper] = None

    def wrapper(
        wrapped: "Callable[..., Any]",
        instance: object,
        args: "Tuple[Any, ...]",
        kwargs: "Dict[str, Any]",
    ) -> "Any":
        nonlocal real
        if real is None:
            try:
                real = build()
            except Exception:
                report(name)
                real = _untraced
        return real(wrapped, instance, args, kwargs)

    return wrapper


def _untraced(
    wrapped: "Callable[..., Any]",
    instance: object,
    args: "Tuple[Any, ...]",
    kwargs: "Dict[str, Any]",
) -> "Any":
    return wrapped(*args, **kwargs)
