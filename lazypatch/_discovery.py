"""Entry points -> lazy registrations: find every installed instrumentation, arm it on its trigger.

Runs at interpreter startup, so it reads entry points without ``importlib.metadata`` (about 20 ms
to import, against a goal of 5 ms for all of ``import lazypatch.auto``): every directory on
``sys.path`` is listed once, and for each ``*.dist-info`` / ``*.egg-info`` in it whose name was not
seen on an earlier entry (the first distribution of a name wins, as in ``importlib.metadata``) its
``entry_points.txt`` is read. Nothing is cached across processes: what is installed or removed is
what the next process sees.

Arming registers one internal post-import hook per instrumentation on its trigger module; only
when that module is imported is the entry point loaded and instrumented (``Entry.fire``). When
ours and OpenTelemetry's instrument a library of the same name, ours is armed and theirs is
shadowed; disabling ours by its qualified name (``lazypatch:flask``) arms theirs instead.

OpenTelemetry's ``opentelemetry_pre_instrument`` / ``opentelemetry_post_instrument`` entry points
run once each, around the first OpenTelemetry instrumentor that is instrumented: with lazy arming
there is no moment at which "all" instrumentors are done.
"""

import os
import sys
from _thread import allocate_lock

from . import _hooks
from ._log import logger

INSTRUMENTORS = "lazypatch.instrumentors"
HOOKS = "lazypatch.hooks"
OTEL_INSTRUMENTORS = "opentelemetry_instrumentor"
OTEL_PRE = "opentelemetry_pre_instrument"
OTEL_POST = "opentelemetry_post_instrument"
_GROUPS = (INSTRUMENTORS, HOOKS, OTEL_INSTRUMENTORS, OTEL_PRE, OTEL_POST)

# Import name of a distribution whose top-level package does not say it (namespace packages,
# several top-level names), by normalized distribution name.
_KNOWN_MODULES = {
    "grpcio": "grpc",
    "mysql_connector_python": "mysql.connector",
    "mysqlclient": "MySQLdb",
    "protobuf": "google.protobuf",
    "pymssql": "pymssql",
}
# Trigger of an instrumentation whose name is not the module to wait for (ours and OpenTelemetry's
# ``urllib`` wait for ``urllib.request``: ``urllib`` itself is imported by nearly every program),
# or, for OpenTelemetry's, when none of its "instruments" requirements is installed.
_KNOWN_TRIGGERS = {
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


def normalize(name: str) -> str:
    """PEP 503 normalization with ``_``, as ``importlib.metadata`` compares distribution names."""
    key = name.lower().replace("-", "_").replace(".", "_")
    while "__" in key:
        key = key.replace("__", "_")
    return key


class Distribution:
    """An installed distribution: its metadata directory, normalized name and version."""

    __slots__ = ("key", "path", "version")

    def __init__(self, key: str, path: str, version) -> None:
        self.key = key
        self.path = path
        self.version = version

    def read(self, filename: str):
        """Text of a metadata file, or None if absent or unreadable."""
        data = self.read_bytes(filename)
        return None if data is None else data.decode("utf-8", "replace")

    def read_bytes(self, filename: str):
        """Bytes of a metadata file, or None. ``os.read`` rather than ``open()``: startup path."""
        try:
            fd = os.open(self.path + os.sep + filename, os.O_RDONLY)
        except OSError:
            return None
        try:
            chunks = []
            while True:
                chunk = os.read(fd, 65536)
                if not chunk:
                    return b"".join(chunks)
                chunks.append(chunk)
        except OSError:
            return None
        finally:
            os.close(fd)

    def installed_version(self):
        """The version: from the directory name, else from METADATA / PKG-INFO."""
        if self.version:
            return self.version
        text = self.read("METADATA") or self.read("PKG-INFO") or ""
        for line in text.splitlines():
            if line.startswith("Version:"):
                return line[8:].strip()
            if not line:
                break
        return None


def distributions(path=None) -> dict:
    """Normalized name -> :class:`Distribution` on ``path`` (default ``sys.path``); first wins."""
    found = {}
    for entry in sys.path if path is None else path:
        if entry.__class__ is not str:
            continue
        try:
            names = os.listdir(entry or ".")
        except OSError:
            continue
        for name in names:
            if name.endswith(".dist-info"):
                stem = name[:-10]
            elif name.endswith(".egg-info"):
                stem = name[:-9]
            else:
                continue
            dist_name, _, version = stem.partition("-")
            key = normalize(dist_name)
            if key not in found:
                directory = (entry or ".") + os.sep + name
                found[key] = Distribution(key, directory, version.partition("-")[0])
    return found


def entry_points(dist: Distribution) -> dict:
    """Group -> [(name, "pkg.mod:attr")] of the groups lazypatch reads, from entry_points.txt."""
    data = dist.read_bytes("entry_points.txt")
    if not data or (b"lazypatch." not in data and b"opentelemetry_" not in data):
        return {}
    text = data.decode("utf-8", "replace")
    groups = {}
    group = None
    for line in text.splitlines():
        line = line.strip()
        if not line or line[0] in "#;":
            continue
        if line[0] == "[" and line[-1] == "]":
            group = line[1:-1].strip()
        elif group in _GROUPS:
            name, sep, value = line.partition("=")
            if sep:
                groups.setdefault(group, []).append((name.strip(), value.partition("[")[0].strip()))
    return groups


def well_formed(dist: Distribution, groups: dict) -> dict:
    """``groups`` without the entry points that cannot name a trigger and an object; one warning
    per distribution lists those."""
    kept, malformed = {}, []
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

    __slots__ = ("name", "source", "kind", "value", "dist", "trigger", "requirement", "state")
    __slots__ += ("reason", "hook", "instrumentor", "counted")

    def __init__(self, name: str, source: str, kind: str, value: str, dist: Distribution) -> None:
        self.name = name
        self.source = source
        self.kind = kind
        self.value = value
        self.dist = dist
        self.trigger = _KNOWN_TRIGGERS.get(name, name) if source == "lazypatch" else name
        self.requirement = None
        self.state = "armed"
        self.reason = None
        self.hook = None
        self.instrumentor = None
        self.counted = 0.0  # the Instrumentor's own time already inside the trigger hook's

    def __repr__(self) -> str:
        return f"<Entry {self.source}:{self.name} on {self.trigger!r}: {self.state}>"

    def outcome(self) -> tuple:
        """``(state, reason)`` now: from the Instrumentor once loaded (it may still be waiting for
        its targets when its trigger's hook returns), from its :class:`Hook` for a hook entry."""
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
            return "failed", f"{type(hook.error).__name__}: {hook.error}"
        return ("active" if hook.state == "fired" else "armed"), None

    def _defer(self) -> bool:
        """Whether the entry point's own module is still executing: it imported the trigger
        itself (``from opentelemetry.instrumentation.urllib3 import ...`` before ``urllib3`` was
        imported). Then instrument once that module has finished, not from the half-built one."""
        if self.kind == "hook":
            return False
        name = self.value.partition(":")[0].strip()
        spec = getattr(sys.modules.get(name), "__spec__", None)
        if not getattr(spec, "_initializing", False):
            return False
        done = []

        def finished(module) -> None:
            if not done:
                done.append(True)
                deferred.remove()
                self._load()

        deferred = _hooks._registry.add(name, finished, internal=True)
        return True

    @property
    def seconds(self) -> float:
        """Time spent at import: at the trigger, plus its Instrumentor's later ``_instrument``."""
        seconds = self.hook._seconds if self.hook is not None else 0.0
        return seconds + getattr(self.instrumentor, "_seconds", 0.0) - self.counted

    def fire(self, module) -> None:
        """Post-import hook on the trigger: load the entry point, instrument; isolate failures."""
        if not self._defer():
            self._load()

    def _load(self) -> None:
        try:
            if self.source == "opentelemetry":
                _instrument_otel(self)
            else:
                _instrument_ours(self)
        except Exception as exc:
            self.state = "failed"
            self.reason = f"{type(exc).__name__}: {exc}"
            from . import _config

            if _config.strict():
                raise
            logger().error(
                "%s instrumentation %r (%s) failed; the application goes on without it",
                self.source,
                self.name,
                self.value,
                exc_info=True,
            )


def _instrument_ours(entry: Entry) -> None:
    instrumentor = _hooks.resolve(entry.value)()
    instrumentor.instrument()
    entry.counted = getattr(instrumentor, "_seconds", 0.0)
    entry.instrumentor = instrumentor
    entry.state = "active"


def _instrument_otel(entry: Entry) -> None:
    conflict = otel_conflict(entry)
    if conflict:
        entry.state = "skipped"
        entry.reason = conflict
        logger().info("skipping opentelemetry instrumentation %r: %s", entry.name, conflict)
        return
    instrumentor_class = _hooks.resolve(entry.value)
    _otel_hooks.run(OTEL_PRE)
    try:
        instrumentor_class().instrument(skip_dep_check=True)
    finally:
        _otel_hooks.run(OTEL_POST)
    entry.state = "active"


def otel_conflict(entry: Entry):
    """Why installed versions do not match an OpenTelemetry package's ``instruments``, or None."""
    from importlib.metadata import PathDistribution
    from pathlib import Path

    from opentelemetry.instrumentation.dependencies import get_dist_dependency_conflicts

    conflict = get_dist_dependency_conflicts(PathDistribution(Path(entry.dist.path)))
    return str(conflict) if conflict else None


class _OncePerGroup:
    """Runs the ``opentelemetry_pre/post_instrument`` entry points, each group once per process."""

    def __init__(self) -> None:
        self.lock = allocate_lock()
        self.pending = {OTEL_PRE: [], OTEL_POST: []}

    def add(self, group: str, value: str) -> None:
        self.pending[group].append(value)

    def run(self, group: str) -> None:
        with self.lock:
            values, self.pending[group] = self.pending[group], []
        for value in values:
            try:
                _hooks.resolve(value)()
            except Exception:
                logger().error("%s entry point %s failed", group, value, exc_info=True)


_otel_hooks = _OncePerGroup()


# -- OpenTelemetry packages: which module triggers them ---------------------------------------


def otel_requirements(dist: Distribution) -> list:
    """The ``instruments`` / ``instruments-any`` requirements in a distribution's METADATA."""
    requirements = []
    for line in (dist.read("METADATA") or dist.read("PKG-INFO") or "").splitlines():
        if not line:
            break
        if line.startswith("Requires-Dist:") and "instruments" in line:
            requirement, _, marker = line[14:].partition(";")
            if "'instruments" in marker or '"instruments' in marker:
                requirements.append(requirement.strip())
    return requirements


def requirement_name(requirement: str) -> str:
    """The distribution name at the start of a PEP 508 requirement."""
    for index, char in enumerate(requirement):
        if not (char.isalnum() or char in "-_."):
            return requirement[:index]
    return requirement


def import_name(dist: Distribution) -> str:
    """The top-level module a distribution provides (top_level.txt, else RECORD, else its name)."""
    known = _KNOWN_MODULES.get(dist.key)
    if known:
        return known
    names = _top_level_names(dist)
    for name in names:
        if normalize(name) == dist.key:
            return name
    public = [name for name in names if not name.startswith("_")]
    return public[0] if len(public) == 1 else dist.key


def _top_level_names(dist: Distribution) -> list:
    text = dist.read("top_level.txt")
    if text is not None:
        return [line.strip() for line in text.splitlines() if line.strip()]
    names = []
    for line in (dist.read("RECORD") or "").splitlines():
        first, slash, _ = line.partition(",")[0].partition("/")
        if not slash:
            first = first.partition(".")[0] if first.endswith((".py", ".so", ".pyd")) else ""
        elif first.endswith((".dist-info", ".egg-info", ".data")) or first in ("..", "__pycache__"):
            first = ""
        if first and first.isidentifier() and first not in names:
            names.append(first)
    return names


def resolve_otel_trigger(entry: Entry, dists: dict) -> None:
    """Set the trigger module and requirement of an OpenTelemetry entry from its distribution."""
    requirements = otel_requirements(entry.dist)
    entry.requirement = ", ".join(requirements) or None
    candidates = []
    for requirement in requirements:
        target = dists.get(normalize(requirement_name(requirement)))
        if target is None:
            continue
        if target.key == entry.name and target.key not in _KNOWN_MODULES:
            entry.trigger = entry.name
            return
        candidates.append(import_name(target))
    for module in candidates:
        if module == entry.name:
            entry.trigger = module
            return
    entry.trigger = candidates[0] if candidates else _KNOWN_TRIGGERS.get(entry.name, entry.name)


# -- discovery and arming ---------------------------------------------------------------------


def discover(settings, path=None, otel_hooks=None) -> list:
    """Every instrumentation installed on ``path``, with its state under ``settings`` (not armed).

    ``otel_hooks`` collects the ``opentelemetry_pre/post_instrument`` entry points.
    """
    dists = distributions(path)
    ours, hooks, theirs = [], [], []
    for dist in dists.values():
        groups = well_formed(dist, entry_points(dist))
        if not groups:
            continue
        for name, value in groups.get(INSTRUMENTORS, ()):
            ours.append(Entry(name, "lazypatch", "instrumentor", value, dist))
        for name, value in groups.get(HOOKS, ()):
            hooks.append(Entry(name, "lazypatch", "hook", value, dist))
        for name, value in groups.get(OTEL_INSTRUMENTORS, ()):
            theirs.append(Entry(name, "opentelemetry", "instrumentor", value, dist))
        for group in (OTEL_PRE, OTEL_POST):
            for _, value in groups.get(group, ()) if otel_hooks is not None else ():
                otel_hooks.add(group, value)
    winners = {}
    for entry in ours + theirs:
        reason = settings.exclusion(entry.source, entry.name)
        if reason is not None:
            entry.state, entry.reason = "disabled", reason
            continue
        winner = winners.setdefault(entry.name, entry)
        if winner is not entry:
            entry.state = "shadowed"
            entry.reason = (
                f"{winner.source}'s {entry.name!r} instrumentation is armed instead "
                "(disable it with LAZYPATCH_DISABLED_INSTRUMENTATIONS="
                f"{winner.source}:{entry.name})"
            )
        elif entry.source == "opentelemetry":
            resolve_otel_trigger(entry, dists)
    for entry in hooks:
        reason = settings.exclusion(entry.source, entry.name)
        if reason is not None:
            entry.state, entry.reason = "disabled", reason
    return ours + theirs + hooks


_entries = None


def arm(settings) -> list:
    """Discover and arm every instrumentation of this process, once; return the entries."""
    global _entries
    if _entries is not None:
        return _entries
    _entries = discover(settings, otel_hooks=_otel_hooks)
    for entry in _entries:
        if entry.state != "armed":
            continue
        try:
            if entry.kind == "hook":
                entry.hook = _hooks.register_hook(entry.trigger, entry.value)
            else:
                entry.hook = _hooks._registry.add(entry.trigger, entry.fire, internal=True)
        except Exception as exc:
            entry.state, entry.reason = "failed", f"{type(exc).__name__}: {exc}"
            logger().error("cannot arm %s %r: %s", entry.kind, entry.name, exc)
    return _entries


def armed_entries():
    """The entries armed in this process by ``import lazypatch.auto``; None if not imported."""
    return _entries
