"""The OpenTelemetry adapter: OpenTelemetry's instrumentation packages, armed lazily by discovery.

An ``opentelemetry_instrumentor`` entry point waits for the module its package instruments (from
its ``instruments`` / ``instruments-any`` requirements, else its name); then it is loaded and
``instrument()``ed, between the ``opentelemetry_pre_instrument`` / ``opentelemetry_post_instrument``
entry points (each run once per process: with lazy arming there is no moment at which "all"
instrumentors are done).

What its own dependencies decide is not an error: a version conflict with the installed library
(OpenTelemetry's ``DependencyConflict``) or a module it needs that is not installed
(``ModuleNotFoundError``, e.g. the ``httpx2`` entry point where only httpx is installed) makes it
``skipped``, with one INFO line, as OpenTelemetry's own loader skips it. A missing instrumentation
module itself, or any other exception, is a failure, logged with its traceback by discovery.

Under ``opentelemetry-instrument`` OpenTelemetry's loader instruments eagerly, at start-up. It runs
the ``opentelemetry_pre_instrument`` entry points first, lazypatch's :func:`before_eager_loader`
among them: from then on lazypatch leaves to that loader every instrumentation it will load, and
arms its own only where OpenTelemetry has none (see :mod:`lazypatch._discovery`).
"""

import os
import sys

from . import _boundary, _hooks
from ._state import state

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, Callable, Optional

    from ._discovery import Entry
    from ._metadata import Scan

OTEL_PRE = "opentelemetry_pre_instrument"
OTEL_POST = "opentelemetry_post_instrument"

# Trigger of an instrumentation whose name is not the module to wait for (ours and OpenTelemetry's
# ``urllib`` wait for ``urllib.request``: ``urllib`` itself is imported by nearly every program),
# or, for OpenTelemetry's, when none of its "instruments" requirements is installed.
KNOWN_TRIGGERS = {
    "aiohttp-client": "aiohttp",
    "aiohttp-server": "aiohttp",
    "boto3sqs": "boto3",
    "grpc_aio_client": "grpc",
    "grpc_aio_server": "grpc",
    "grpc_client": "grpc",
    "grpc_server": "grpc",
    "mysql": "mysql.connector",
    "mysqlclient": "MySQLdb",
    "system_metrics": "psutil",
    "tortoiseorm": "tortoise",
    "urllib": "urllib.request",
}


class Skip(Exception):
    """An OpenTelemetry instrumentor that cannot apply here, for a reason that is not an error."""


def instrument(entry: "Entry") -> None:
    """Load and instrument an OpenTelemetry entry point; raise :class:`Skip` when its own
    dependencies rule it out, anything else when it fails."""
    reason = conflict(entry)
    if reason:
        raise Skip(reason)
    module = entry.value.partition(":")[0].strip()
    try:
        instrumentor_class: Any = _hooks.resolve(entry.value)
        instrumentor = instrumentor_class()
        if getattr(instrumentor, "is_instrumented_by_opentelemetry", False):
            entry.reason = "already instrumented by OpenTelemetry's own loader or the application"
            return
        _pre_post.run(OTEL_PRE)
        try:
            instrumentor.instrument(skip_dep_check=True)
        finally:
            _pre_post.run(OTEL_POST)
    except ModuleNotFoundError as exc:
        missing = exc.name or ""
        if missing and (module == missing or module.startswith(missing + ".")):
            raise
        raise Skip(f"a module it needs is not installed: {exc}") from None
    except Exception as exc:
        error_class = sys.modules.get("opentelemetry.instrumentation.dependencies")
        if isinstance(exc, getattr(error_class, "DependencyConflictError", ())):
            raise Skip(str(getattr(exc, "conflict", exc))) from None
        raise


def conflict(entry: "Entry") -> "Optional[str]":
    """Why installed versions do not match an OpenTelemetry package's ``instruments``, or None."""
    from importlib.metadata import PathDistribution
    from pathlib import Path

    from opentelemetry.instrumentation.dependencies import get_dist_dependency_conflicts

    # Typed for the importlib_metadata backport's Distribution on Python 3.9, the same protocol.
    dist = PathDistribution(Path(entry.dist.path))
    found = get_dist_dependency_conflicts(dist)  # type: ignore[arg-type,unused-ignore]
    return str(found) if found else None


def instrumented(entry: "Entry") -> bool:
    """Whether the entry's instrumentor is instrumented now (by anyone), without importing it."""
    module, _, attribute = entry.value.partition(":")
    instrumentor_class = sys.modules.get(module.strip())
    for name in attribute.strip().split("."):
        instrumentor_class = getattr(instrumentor_class, name, None)
    instance = getattr(instrumentor_class, "_instance", None)
    return bool(getattr(instance, "_is_instrumented_by_opentelemetry", False))


class _OncePerGroup:
    """Runs the ``opentelemetry_pre/post_instrument`` entry points, each group once per process.

    What is still to run lives in the process state (``otel_hooks``).
    """

    def add(self, group: str, value: str) -> None:
        with state.otel_hooks_lock:
            state.otel_hooks.setdefault(group, []).append(value)

    def run(self, group: str) -> None:
        with state.otel_hooks_lock:
            values = state.otel_hooks.pop(group, [])
        for value in values:
            _boundary.run(_run_entry_point, value, _entry_point_failed(group, value))


def _run_entry_point(value: str) -> None:
    _hooks.resolve(value)()  # type: ignore[operator]


def _entry_point_failed(group: str, value: str) -> "Callable[[BaseException], str]":
    return lambda exc: f"{group} entry point {value} failed"


_pre_post = _OncePerGroup()


def add_pre_post(group: str, value: str) -> None:
    """Queue an ``opentelemetry_pre/post_instrument`` entry point for the first instrumentation."""
    _pre_post.add(group, value)


def resolve_trigger(entry: "Entry", scan: "Scan") -> None:
    """Set the trigger module and requirement of an OpenTelemetry entry from its distribution."""
    requirements = entry.dist.instruments()
    entry.requirement = ", ".join(requirements) or None
    from ._metadata import KNOWN_MODULES, requirement_name

    candidates = []
    for requirement in requirements:
        target = scan.find(requirement_name(requirement))
        if target is None:
            continue
        if target.key == entry.name and target.key not in KNOWN_MODULES:
            entry.trigger = entry.name
            return
        candidates.append(target.import_name())
    for module in candidates:
        if module == entry.name:
            entry.trigger = module
            return
    entry.trigger = candidates[0] if candidates else KNOWN_TRIGGERS.get(entry.name, entry.name)


# -- under opentelemetry-instrument -------------------------------------------------------------


def eager() -> bool:
    """Whether OpenTelemetry's own loader (``opentelemetry-instrument``) runs in this process."""
    return state.otel_eager


def before_eager_loader() -> None:
    """``opentelemetry_pre_instrument`` entry point: OpenTelemetry's loader is about to instrument
    every installed instrumentation eagerly.

    lazypatch leaves those to it (no second instrumentation, no second server span). If lazypatch
    was asked for, by ``lazypatch run`` or ``lazypatch path`` (its bootstrap directory on
    ``sys.path``), whose ``sitecustomize`` OpenTelemetry's has hidden, ``lazypatch.auto`` starts
    here, so that both are active in the process.
    """
    state.otel_eager = True
    discovery = sys.modules.get("lazypatch._discovery")
    if discovery is not None and discovery.armed_entries() is not None:
        discovery.defer_to_eager_loader()
        return
    bootstrap = os.path.join(os.path.dirname(os.path.abspath(__file__)), "_bootstrap")
    if any(entry and os.path.abspath(entry) == bootstrap for entry in sys.path):
        import lazypatch.auto  # noqa: F401


def eager_loader_directory() -> "Optional[str]":
    """The directory of OpenTelemetry's ``sitecustomize`` when it ran in this process.

    ``opentelemetry-instrument lazypatch run -- python app.py``: OpenTelemetry's loader ran in
    ``lazypatch run`` itself, and releases before 0.63b0 take its directory off ``PYTHONPATH``
    for good, so that the command would run without it. ``lazypatch run`` puts it back after its
    own, so that both are active in the command whatever OpenTelemetry's release.
    """
    if not state.otel_eager:
        return None
    loader = sys.modules.get("opentelemetry.instrumentation.auto_instrumentation")
    filename = getattr(loader, "__file__", None)
    return os.path.dirname(os.path.abspath(filename)) if filename else None
