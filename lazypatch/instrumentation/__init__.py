"""Built-in instrumentations: requests, Flask, urllib, sqlite3, logging.

Each submodule holds one :class:`lazypatch.Instrumentor` and imports its library and
OpenTelemetry only inside ``_instrument``: discovery loads an instrumentation when its trigger
module (``urllib``, ``logging``...) is imported, which can be long before the instrumented part
(``urllib.request``) is, so loading one must stay as cheap as this module.

What they share is here: the "never break the host" report.
"""

_reported = set()


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
