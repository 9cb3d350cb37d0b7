"""The command line: ``lazypatch run``, ``lazypatch list``, ``lazypatch path``.

Console scripts ``lazypatch`` (:func:`main`) and ``lazypatch-run`` (:func:`run_main`), and
``python -m lazypatch``.
"""

import os
import sys

from . import _config, _discovery, _metadata, _otel

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Dict, Iterable, List, Optional, Sequence, TypedDict

    from ._discovery import Entry
    from ._metadata import Distribution, Scan

    class Row(TypedDict):
        """One instrumentation in ``lazypatch list``."""

        name: str
        trigger: str
        source: str
        kind: str
        requirement: Optional[str]
        installed: Optional[str]
        state: str
        seconds: Optional[float]
        reason: Optional[str]


BOOTSTRAP_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "_bootstrap")

USAGE = """\
usage: lazypatch run [--service-name NAME] [--traces-exporter EXPORTER] [--] COMMAND [ARGS...]
       lazypatch list [--import] [--json]
       lazypatch path

  run   run COMMAND (looked up on PATH) with auto-instrumentation active in it and in every
        Python process it starts
  list  every discovered instrumentation and what lazypatch.auto does with it
  path  the bootstrap directory: put it first on PYTHONPATH to activate lazypatch by
        environment alone
"""

_RUN_OPTIONS = {"--service-name": "service_name", "--traces-exporter": "traces_exporter"}


def main(argv: "Optional[Sequence[str]]" = None) -> int:
    """``lazypatch COMMAND ...``; returns the exit status."""
    args = sys.argv[1:] if argv is None else list(argv)
    if not args or args[0] in ("-h", "--help", "help"):
        print(USAGE, end="", file=sys.stdout if args else sys.stderr)
        return 0 if args else 2
    command, rest = args[0], args[1:]
    if command == "run":
        return run_main(rest)
    if command == "list":
        return _list(rest)
    if command == "path" and not rest:
        print(BOOTSTRAP_DIR)
        return 0
    return _usage_error(f"unknown command {' '.join(args)!r}")


def _usage_error(message: str) -> int:
    print(f"lazypatch: {message}\n\n{USAGE}", end="", file=sys.stderr)
    return 2


def run_main(argv: "Optional[Sequence[str]]" = None) -> int:
    """``lazypatch run [options] [--] COMMAND ...``: exec COMMAND with lazypatch's bootstrap active.

    Parsed by hand rather than with argparse: everything from COMMAND on belongs to COMMAND,
    which argparse's REMAINDER does not guarantee, and this path is in every instrumented start.
    Only returns on error; on success the process becomes COMMAND (same pid, so its exit status
    and signals are the caller's to see).
    """
    args = sys.argv[1:] if argv is None else list(argv)
    options: Dict[str, str] = {}
    while args:
        arg = args[0]
        if arg == "--":
            del args[0]
            break
        if arg in ("-h", "--help"):
            print(USAGE, end="")
            return 0
        name, eq, value = arg.partition("=")
        if name in _RUN_OPTIONS:
            if not eq:
                if len(args) < 2:
                    return _usage_error(f"{name} needs a value")
                value = args[1]
            del args[: 1 if eq else 2]
            options[_RUN_OPTIONS[name]] = value
            continue
        if arg.startswith("-"):
            return _usage_error(f"unknown option {arg!r} for run")
        break
    if not args:
        return _usage_error("run: no command given")
    env = _config.child_environment(
        bootstrap_dir=BOOTSTRAP_DIR, then_dir=_otel.eager_loader_directory(), **options
    )
    try:
        os.execvpe(args[0], args, env)
    except OSError as exc:
        print(f"lazypatch run: cannot run {args[0]!r}: {exc.strerror}", file=sys.stderr)
        return 127 if isinstance(exc, FileNotFoundError) else 126


# -- lazypatch list -------------------------------------------------------------------------


def _list(argv: "List[str]") -> int:
    import argparse

    parser = argparse.ArgumentParser(
        prog="lazypatch list",
        description="Every discovered instrumentation: its trigger module, source, requirement, "
        "installed version and state under the current environment.",
    )
    parser.add_argument(
        "--import",
        dest="fire",
        action="store_true",
        help="import every armed trigger module now, in this process, and show what happened "
        "(loaded, instrumented, skipped or failed, and the time it took)",
    )
    parser.add_argument("--json", action="store_true", help="one JSON object per line")
    options = parser.parse_args(argv)
    if options.fire:
        import lazypatch.auto  # noqa: F401

        _fire(_discovery.armed_entries() or [])
    entries = _discovery.armed_entries()
    if entries is None:
        settings = _config.settings()
        entries = _discovery.discover(settings, cache_dir=settings.cache_dir)
    rows = _rows(entries)
    if options.json:
        import json

        for row in rows:
            print(json.dumps(row))
    else:
        print(_table(rows))
    return 0


def _fire(entries: "Iterable[Entry]") -> None:
    """Import each armed entry's trigger, then the targets its instrumentor still waits for (an
    instrumentation of ``starlette`` that patches ``starlette.applications``)."""
    import importlib

    for entry in entries:
        if entry.outcome()[0] != "armed":
            continue
        module = entry.trigger
        try:
            importlib.import_module(module)
            if entry.outcome()[0] == "pending":
                for module in getattr(entry.instrumentor, "targets", ()):
                    importlib.import_module(module)
        except Exception as exc:
            if entry.outcome()[0] == "armed":
                entry.reason = f"importing {module!r} failed: {type(exc).__name__}: {exc}"


def _rows(entries: "Iterable[Entry]") -> "List[Row]":
    scan = _metadata.scan()
    dists = scan.all()
    rows: List[Row] = []
    for entry in sorted(entries, key=lambda e: (e.name, e.source != "lazypatch", e.kind)):
        state, reason = entry.outcome()
        requirement = None
        try:
            requirement = _requirement(entry, scan)
            if state == "armed" and requirement:
                unmet = _unmet(entry, requirement)
                if unmet:
                    state, reason = "requirement unmet", unmet
        except Exception as exc:
            if state == "armed":
                state, reason = "failed", f"{type(exc).__name__}: {exc}"
        fired = entry.hook is not None and entry.hook.calls > 0
        rows.append(
            {
                "name": entry.name,
                "trigger": entry.trigger,
                "source": entry.source,
                "kind": entry.kind,
                "requirement": requirement,
                "installed": _installed(entry, requirement, dists),
                "state": state,
                "seconds": round(entry.seconds, 6) if fired else None,
                "reason": reason,
            }
        )
    return rows


def _requirement(entry: "Entry", scan: "Scan") -> "Optional[str]":
    if entry.kind == "hook":
        return None
    if entry.source == "opentelemetry":
        if entry.requirement is None:
            _otel.resolve_trigger(entry, scan)
        return entry.requirement
    from ._hooks import resolve

    return ", ".join(getattr(resolve(entry.value), "requirements", ())) or None


def _unmet(entry: "Entry", requirement: str) -> "Optional[str]":
    if entry.source == "opentelemetry":
        return _otel.conflict(entry)
    from ._instrumentor import unmet

    return unmet(requirement.split(", "))


def _installed(
    entry: "Entry", requirement: "Optional[str]", dists: "Dict[str, Distribution]"
) -> "Optional[str]":
    names = [_metadata.requirement_name(r) for r in (requirement or "").split(", ") if r]
    for name in names:
        dist = dists.get(_metadata.normalize(name))
        if dist is not None:
            return f"{name} {dist.installed_version()}"
    top = entry.trigger.partition(".")[0]
    if top in getattr(sys, "stdlib_module_names", ()):
        return "(stdlib)"
    return "(not installed)" if names else None


_COLUMNS = ("name", "trigger", "source", "requirement", "installed", "state", "time", "reason")


def _table(rows: "Iterable[Row]") -> str:
    cells = [[c.upper() for c in _COLUMNS]]
    for row in rows:
        seconds = row["seconds"]
        values = dict(row, time=f"{seconds * 1000:.1f} ms" if seconds is not None else "")
        if row["kind"] == "hook":
            values["source"] = f"{row['source']} (hook)"
        cells.append(["-" if values[c] is None else str(values[c]) for c in _COLUMNS])
    widths = [max(len(line[i]) for line in cells) for i in range(len(_COLUMNS) - 1)]
    lines = []
    for line in cells:
        padded = [cell.ljust(width) for cell, width in zip(line, widths)]
        lines.append("  ".join([*padded, line[-1]]).rstrip())
    if len(cells) == 1:
        lines.append("(no instrumentation installed)")
    return "\n".join(lines)
