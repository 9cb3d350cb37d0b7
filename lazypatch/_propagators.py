"""``OTEL_PROPAGATORS`` naming a propagator that is not installed: one warning, the default applies.

OpenTelemetry's API raises ``ValueError`` from ``import opentelemetry.propagate`` then, so every
instrumentation that propagates context would fail, each with a traceback naming neither the
variable nor its value. ``opentelemetry.propagate`` imports ``opentelemetry.environment_variables``
just before it reads the variable: a hook on that module checks the names, and if one is not an
installed propagator, the variable is unset (OpenTelemetry's default) until
``opentelemetry.propagate`` has loaded, then restored as the application set it.
"""

import os
import sys

from . import _config, _hooks

TYPE_CHECKING = False
if TYPE_CHECKING:
    from types import ModuleType
    from typing import List

VARIABLE = "OTEL_PROPAGATORS"
_GROUP = "opentelemetry_propagator"
# The opentelemetry-api's own: a value naming only these is not worth a scan of the metadata.
_API_PROPAGATORS = frozenset(("tracecontext", "baggage"))


def arm() -> None:
    """Check ``OTEL_PROPAGATORS`` when OpenTelemetry is about to read it (imported only if set)."""
    _hooks.add_internal("opentelemetry.environment_variables", _check)


def _check(module: "ModuleType") -> None:
    raw = _config.propagators()
    if not raw or hasattr(sys.modules.get("opentelemetry.propagate"), "inject"):
        return  # empty, or read already: opentelemetry.propagate has loaded
    missing = _missing([name.strip() for name in raw.split(",")])
    if not missing:
        return
    original = os.environ.pop(VARIABLE, raw)
    _config.warn(
        VARIABLE,
        original,
        "a comma list of installed propagators (tracecontext, baggage...) or none; "
        f"not installed: {', '.join(repr(name) for name in missing)}",
    )
    restored: List[bool] = []

    def restore(module: "ModuleType") -> None:
        if not restored:
            restored.append(True)
            os.environ.setdefault(VARIABLE, original)
            hook.remove()

    hook = _hooks.add_internal("opentelemetry.propagate", restore)


def _missing(names: "List[str]") -> "List[str]":
    """The names OpenTelemetry would not find, in its order: it stops at the first ``none``."""
    if all(name in _API_PROPAGATORS or name.lower() == "none" for name in names):
        return []
    from importlib.metadata import entry_points

    found = entry_points()
    group = found.select(group=_GROUP) if hasattr(found, "select") else found.get(_GROUP, ())
    installed = {entry.name for entry in group}
    missing = []
    for name in names:
        if name.lower() == "none":
            break
        if name not in installed:
            missing.append(name)
    return missing
