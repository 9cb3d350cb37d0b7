"""Entry points -> lazy registrations: which installed instrumentation is armed, on which trigger.

The policy only: installed distributions and their entry points come from
:mod:`lazypatch._metadata` (one scan, its records reused from the cache across processes), and
OpenTelemetry's instrumentors are loaded by the adapter, :mod:`lazypatch._otel`.

Arming registers one internal post-import hook per instrumentation on its trigger module; only
when that module is imported is the entry point loaded and instrumented (``Entry.fire``). When
ours and OpenTelemetry's instrument a library of the same name, ours is armed and theirs is
shadowed; disabling ours by its qualified name (``lazypatch:flask``) arms theirs instead. Under
``opentelemetry-instrument`` OpenTelemetry's loader instruments its own eagerly: those are left to
it, and ours of the same name are shadowed by them.
"""

import os
import sys

from . import _boundary, _finder, _hooks, _metadata, _otel
from ._log import logger
from ._metadata import Distribution
from ._state import state

TYPE_CHECKING = False
if TYPE_CHECKING:
    from types import ModuleType
    from typing import Any, Callable, Dict, List, Optional, Tuple, TypeVar

    from ._config import Settings
    from ._hooks import Hook
    from ._metadata import Groups

    R = TypeVar("R")

INSTRUMENTORS = _metadata.INSTRUMENTORS
HOOKS = _metadata.HOOKS
OTEL_INSTRUMENTORS = _metadata.OTEL_INSTRUMENTORS
OTEL_PRE = _metadata.OTEL_PRE
OTEL_POST = _metadata.OTEL_POST


def well_formed(dist: Distribution, groups: "Groups") -> "Groups":
    """``groups`` without the entry points that cannot name a trigger and an object; one warning
    per distribution lists those."""
    kept: Groups = {}
    malformed = []
    for group, pairs in groups.items():
        for name, value in pairs:
            named = group in (OTEL_PRE, OTEL_POST) or _is_dotted(name.replace("-", "_"))
            module, colon, attribute = value.partition(":")
            if named and colon and _is_dotted(module.strip()) and _is_dotted(attribute.strip()):
                kept.setdefault(group, []).append((name, value))
            else:
                malformed.append(f"[{group}] {name!r} = {value!r}")
    if malformed:
        logger().warning(
            "ignoring malformed entry points in %s: %s (expected: name = 'pkg.module:Object')",
            dist.path + os.sep + "entry_points.txt",
            ", ".join(malformed),
        )
    return kept


def _is_dotted(text: str) -> bool:
    return bool(text) and all(part.isidentifier() for part in text.split("."))


class Entry:
    """One discovered instrumentation (or ``lazypatch.hooks`` hook) and what became of it.

    ``state``: ``armed`` (waiting for its trigger), ``disabled``, ``shadowed``, ``active``
    (instrumented), ``pending`` (instrumented, waiting for its targets), ``skipped``, ``failed``.
    """

    __slots__ = (
        "name",
        "source",
        "kind",
        "value",
        "dist",
        "trigger",
        "requirement",
        "state",
        "reason",
        "hook",
        "instrumentor",
        "counted",
    )

    def __init__(self, name: str, source: str, kind: str, value: str, dist: Distribution) -> None:
        self.name = name
        self.source = source
        self.kind = kind
        self.value = value
        self.dist = dist
        self.trigger = _otel.KNOWN_TRIGGERS.get(name, name) if source == "lazypatch" else name
        self.requirement: Optional[str] = None
        self.state = "armed"
        self.reason: Optional[str] = None
        self.hook: Optional[Hook] = None
        self.instrumentor: Any = None  # ours: an Instrumentor, once loaded
        self.counted = 0.0  # the Instrumentor's own time already inside the trigger hook's

    def __repr__(self) -> str:
        return f"<Entry {self.source}:{self.name} on {self.trigger!r}: {self.state}>"

    def outcome(self) -> "Tuple[str, Optional[str]]":
        """``(state, reason)`` now: from the Instrumentor once loaded (it may still be waiting for
        its targets when its trigger's hook returns), from its :class:`Hook` for a hook entry, from
        OpenTelemetry's instrumentor for one left to ``opentelemetry-instrument``."""
        if self.state == "external":
            if _otel.instrumented(self):
                return "active", "instrumented by opentelemetry-instrument"
            return "skipped", "left to opentelemetry-instrument, which has not instrumented it"
        instrumentor = self.instrumentor
        if instrumentor is not None and self.state != "failed":
            state = getattr(instrumentor, "state", "active")
            if state in ("pending", "skipped", "failed"):
                return state, getattr(instrumentor, "reason", None)
            return "active", None
        hook = self.hook
        if self.kind != "hook" or hook is None:
            return self.state, self.reason
        if hook.state == "failed":
            return "failed", _boundary.reason(hook.error)
        return ("active" if hook.state == "fired" else "armed"), None

    def _defer(self) -> bool:
        """Whether the entry point's own module is still executing: it imported the trigger
        itself (``from opentelemetry.instrumentation.urllib3 import ...`` before ``urllib3`` was
        imported). Then instrument once that module has finished, not from the half-built one."""
        if self.kind == "hook":
            return False
        name = self.value.partition(":")[0].strip()
        spec = getattr(sys.modules.get(name), "__spec__", None)
        if not _finder.is_initializing(spec):
            return False
        done: List[bool] = []

        def finished(module: "ModuleType") -> None:
            if not done:
                done.append(True)
                deferred.remove()
                self._load()

        deferred = _hooks.add_internal(name, finished)
        return True

    @property
    def seconds(self) -> float:
        """Time spent at import: at the trigger, plus its Instrumentor's later ``_instrument``."""
        seconds = self.hook._seconds if self.hook is not None else 0.0
        return seconds + getattr(self.instrumentor, "_seconds", 0.0) - self.counted

    def fire(self, module: "ModuleType") -> None:
        """Post-import hook on the trigger: load the entry point, instrument; isolate failures."""
        if not self._defer():
            self._load()

    def _load(self) -> None:
        _boundary.run(_load_entry, self, self._failed)

    def _failed(self, exc: BaseException) -> str:
        self.state = "failed"
        self.reason = _boundary.reason(exc)
        return (
            f"{self.source} instrumentation {self.name!r} ({self.value}) failed; "
            "the application goes on without it"
        )

    def _arm_failed(self, exc: BaseException) -> str:
        self.state, self.reason = "failed", _boundary.reason(exc)
        return f"cannot arm {self.kind} {self.name!r}"


def _load_entry(entry: "Entry") -> None:
    try:
        if entry.source == "opentelemetry":
            _otel.instrument(entry)
            entry.state = "active"
        else:
            _instrument_ours(entry)
    except _otel.Skip as skip:
        entry.state = "skipped"
        entry.reason = str(skip)
        logger().info("skipping opentelemetry instrumentation %r: %s", entry.name, skip)


def _instrument_ours(entry: Entry) -> None:
    instrumentor_class: Any = _hooks.resolve(entry.value)
    instrumentor = entry.instrumentor = instrumentor_class()
    instrumentor.instrument()
    entry.counted = getattr(instrumentor, "_seconds", 0.0)
    entry.state = "active"


# -- discovery and arming ---------------------------------------------------------------------


def discover(
    settings: "Settings",
    path: "Optional[List[str]]" = None,
    pre_post: "Optional[Callable[[str, str], None]]" = None,
    cache_dir: "Optional[str]" = None,
) -> "List[Entry]":
    """Every instrumentation installed on ``path``, with its state under ``settings`` (not armed).

    ``pre_post(group, value)`` receives the ``opentelemetry_pre/post_instrument`` entry points of
    other distributions (lazypatch's own one is for OpenTelemetry's loader). ``cache_dir``: where
    the metadata scan's records are kept across processes (None: not kept).
    """
    scan = _metadata.scan(path, cache_dir)
    ours: List[Entry] = []
    hooks: List[Entry] = []
    theirs: List[Entry] = []
    for dist in scan.with_entry_points():
        groups = well_formed(dist, dist.entry_points())
        for name, value in groups.get(INSTRUMENTORS, ()):
            ours.append(Entry(name, "lazypatch", "instrumentor", value, dist))
        for name, value in groups.get(HOOKS, ()):
            hooks.append(Entry(name, "lazypatch", "hook", value, dist))
        for name, value in groups.get(OTEL_INSTRUMENTORS, ()):
            theirs.append(Entry(name, "opentelemetry", "instrumentor", value, dist))
        if pre_post is not None and dist.key != "lazypatch":
            for group in (OTEL_PRE, OTEL_POST):
                for _, value in groups.get(group, ()):
                    pre_post(group, value)
    eager = _otel.eager()
    winners: Dict[str, Entry] = {}
    for entry in theirs + ours if eager else ours + theirs:
        reason = settings.exclusion(entry.source, entry.name)
        if reason is not None:
            entry.state, entry.reason = "disabled", reason
            continue
        winner = winners.setdefault(entry.name, entry)
        if winner is entry:
            winner = winners[entry.name] = _rival(entry, winners) or entry
        if winner is not entry:
            entry.state = "shadowed"
            entry.reason = _shadowed_by(winner)
        elif entry.source == "opentelemetry":
            _otel.resolve_trigger(entry, scan)
            if eager:
                entry.state = "external"
    for entry in hooks:
        reason = settings.exclusion(entry.source, entry.name)
        if reason is not None:
            entry.state, entry.reason = "disabled", reason
    if eager:
        _log_deferred(ours + theirs)
    _metadata.save_if_changed(scan, cache_dir)
    return ours + theirs + hooks


def _log_deferred(entries: "List[Entry]") -> None:
    external = sorted(e.name for e in entries if e.state == "external")
    logger().info(
        "under opentelemetry-instrument: OpenTelemetry's loader instruments %s at start-up; "
        "lazypatch leaves those to it and arms the rest",
        ", ".join(external) or "nothing",
    )


# Instrumentations that trace the same library under other names: of two sources, one wins.
_SAME_LIBRARY = {"fastapi": ("starlette",), "starlette": ("fastapi",)}


def _rival(entry: Entry, winners: "Dict[str, Entry]") -> "Optional[Entry]":
    """The winner of another source that instruments ``entry``'s library under another name."""
    for name in _SAME_LIBRARY.get(entry.name, ()):
        other = winners.get(name)
        if other is not None and other.source != entry.source:
            return other
    return None


def _shadowed_by(winner: Entry) -> str:
    if winner.state == "external":
        return f"opentelemetry-instrument instruments {winner.name!r} with OpenTelemetry's own"
    return (
        f"{winner.source}'s {winner.name!r} instrumentation is armed instead "
        f"(disable it with LAZYPATCH_DISABLED_INSTRUMENTATIONS={winner.source}:{winner.name})"
    )


def arm(settings: "Settings") -> "List[Entry]":
    """Discover and arm every instrumentation of this process, once; return the entries."""
    if state.entries is not None:
        return state.entries
    entries = discover(settings, pre_post=_otel.add_pre_post, cache_dir=settings.cache_dir)
    state.entries = entries
    for entry in entries:
        if entry.state == "armed":
            _boundary.run(_arm_entry, entry, entry._arm_failed)
    return entries


def _arm_entry(entry: "Entry") -> None:
    if entry.kind == "hook":
        entry.hook = _hooks.register_hook(entry.trigger, entry.value)
    else:
        entry.hook = _hooks.add_internal(entry.trigger, entry.fire)


def defer_to_eager_loader() -> None:
    """OpenTelemetry's loader is about to instrument its instrumentors (``opentelemetry-instrument``
    started after ``lazypatch.auto``): disarm ours of the same names, and its, where not fired."""
    entries = state.entries or []
    external: Dict[str, Entry] = {}
    for entry in entries:
        if entry.source == "opentelemetry" and entry.state in ("armed", "shadowed"):
            if entry.hook is not None:
                entry.hook.remove()
                entry.hook = None
            if entry.state == "shadowed":
                _otel.resolve_trigger(entry, _metadata.scan())
            entry.state, entry.reason = "external", None
            external[entry.name] = entry
    for entry in entries:
        winner = external.get(entry.name)
        if entry.source == "lazypatch" and entry.kind != "hook" and winner is not None:
            if entry.state == "armed" and entry.hook is not None and not entry.hook.calls:
                entry.hook.remove()
                entry.hook = None
                entry.state, entry.reason = "shadowed", _shadowed_by(winner)
    _log_deferred(entries)


_STATUS = {"armed": "pending"}


def records(record_class: "Callable[..., R]") -> "List[R]":
    """``record_class(...)`` for ``status()``: each instrumentation armed here that is not a live
    :class:`~lazypatch.Instrumentor` (listed as one): ours not loaded yet or that failed to load,
    then OpenTelemetry's."""
    from ._instrumentor import Instrumentor

    entries = state.entries or ()
    ours = [
        e
        for e in entries
        if e.source == "lazypatch"
        and e.kind == "instrumentor"
        and not isinstance(e.instrumentor, Instrumentor)
    ]
    theirs = [e for e in entries if e.source == "opentelemetry"]
    result = []
    for entry in ours + theirs:
        if entry.state in ("disabled", "shadowed"):
            continue
        outcome, reason = entry.outcome()
        outcome = _STATUS.get(outcome, outcome)
        calls = 1 if entry.hook is not None and entry.hook.calls and outcome == "active" else 0
        seconds = entry.seconds
        result.append(
            record_class(
                "instrumentor",
                entry.name,
                entry.trigger,
                outcome,
                reason,
                calls,
                seconds,
                source=entry.source,
            )
        )
    return result


def armed_entries() -> "Optional[List[Entry]]":
    """The entries armed in this process by ``import lazypatch.auto``; None if not imported."""
    return state.entries
