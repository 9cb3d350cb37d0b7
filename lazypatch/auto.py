"""``import lazypatch.auto``: arm every installed instrumentation, set tracing up at the first span.

Idempotent (a module body runs once per process) and never raises into the application: a
failure here is logged and the application starts uninstrumented. Costs a scan of the metadata
directories on ``sys.path`` and nothing else until a watched module is imported.
"""

from . import _config, _discovery, _hooks, _triggers
from ._log import logger


def _show_log(level: int) -> None:
    """``LAZYPATCH_LOG_LEVEL``: lazypatch's own records at ``level`` and above go to stderr."""
    import logging

    log = logger()
    log.setLevel(level)
    if not log.handlers:
        handler = logging.StreamHandler()
        handler.setFormatter(logging.Formatter("lazypatch[%(process)d] %(levelname)s: %(message)s"))
        log.addHandler(handler)
        log.propagate = False


def _start() -> None:
    try:
        settings = _config.settings()
        if settings.log_level is not None:
            _show_log(settings.log_level)
        _hooks.install()
        _triggers.arm()
        if _config.propagators():
            from . import _propagators

            _propagators.arm()
        entries = _discovery.arm(settings)
        if settings.log_level is not None:
            armed = [f"{e.source}:{e.name}" for e in entries if e.state == "armed"]
            logger().debug("lazypatch.auto armed: %s", ", ".join(armed) or "nothing")
    except Exception:
        logger().error("lazypatch.auto failed; the application runs uninstrumented", exc_info=True)


_start()
