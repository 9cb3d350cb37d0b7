"""``run_scenario``: one fresh interpreter runs the sections in the order asked for.

The parent imports nothing of OpenTelemetry: the child sets its tracer provider up and sends back
plain data. Three channels are kept apart: the child's stdout and stderr (the sections' own) and
a report file in a private temporary directory (progress, then spans and ``result`` as JSON).
"""

from __future__ import annotations

import contextlib
import json
import marshal
import os
import subprocess
import sys
import tempfile
import textwrap
import time

from ._scenario import ORDERS, SEQUENCES, Scenario, ScenarioError, SpanRecord

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, Iterator, Mapping, Union

    Call = dict[str, Any]  # the keyword arguments of one run_scenario call
    Outcome = Union[Scenario, ScenarioError]

# Extra time the parent gives a child whose own watchdog should already have stopped it.
_GRACE = 5.0

# Runs in the child before anything else: the caller's sys.path, then the scenario.
_BOOTSTRAP = """\
def _lazypatch_scenario():
    import marshal, sys
    with open(sys.argv[1], "rb") as file:
        spec = marshal.load(file)
    sys.path[:] = spec["path"]
    from lazypatch.testing._child import main
    main(spec)
_lazypatch_scenario()
"""

# Variables of the caller's environment that the child does not inherit (pass them in ``env``):
# a scenario gives the same spans on every machine, and a caller running under ``lazypatch run``
# does not auto-instrument its scenarios (sys.path is passed directly, PYTHONPATH is not needed).
_NOT_INHERITED = ("OTEL_", "LAZYPATCH_")
_NOT_INHERITED_NAMES = ("PYTHONPATH",)

# The calls made while a pytest test runs, for the plugin's comparison of orders on failure.
_recorders: list[list[tuple[Call, Outcome]]] = []


@contextlib.contextmanager
def recording() -> Iterator[list[tuple[Call, Outcome]]]:
    """Collect ``(call, Scenario or ScenarioError)`` of each ``run_scenario`` made meanwhile."""
    calls: list[tuple[Call, Outcome]] = []
    _recorders.append(calls)
    try:
        yield calls
    finally:
        del _recorders[next(i for i, kept in enumerate(_recorders) if kept is calls)]


def run_scenario(
    *,
    instrument: str,
    imports: str,
    exercise: str,
    setup: str = "",
    order: str = "before_import",
    uninstrument: str = "",
    env: Mapping[str, str] | None = None,
    timeout: float = 60.0,
) -> Scenario:
    """Run the sections in a fresh interpreter, in the order ``order`` names; return its spans.

    Raises :class:`ScenarioError` if a section raises or the child dies or runs past ``timeout``
    seconds, ``ValueError`` for an unknown ``order``.
    """
    __tracebackhide__ = True  # pytest shows the caller's line, not the runner's
    if order not in SEQUENCES:
        raise ValueError(f"unknown order {order!r}: expected one of {', '.join(ORDERS)}")
    call = {
        "instrument": instrument,
        "imports": imports,
        "exercise": exercise,
        "setup": setup,
        "order": order,
        "uninstrument": uninstrument,
        "env": dict(env) if env is not None else None,
        "timeout": timeout,
    }
    try:
        scenario = _run(call)
    except ScenarioError as error:
        _record(call, error)
        raise
    _record(call, scenario)
    return scenario


def run_again(call: Call, order: str) -> Scenario:
    """The scenario of an earlier ``run_scenario`` call, in ``order``; not recorded."""
    return _run({**call, "order": order})


def _record(call: Call, outcome: Outcome) -> None:
    if _recorders:
        _recorders[-1].append((call, outcome))


def _run(call: Call) -> Scenario:
    __tracebackhide__ = True
    order = call["order"]
    sources = {name: _source(call[name]) for name in ("instrument", "imports", "setup", "exercise")}
    steps = [(name, sources[name]) for name in SEQUENCES[order]]
    if call["uninstrument"]:
        steps += [
            ("uninstrument", _source(call["uninstrument"])),
            ("exercise", sources["exercise"]),
        ]
    with tempfile.TemporaryDirectory(prefix="lazypatch-scenario-") as directory:
        paths = {name: os.path.join(directory, name) for name in ("spec", "report", "hang")}
        spec = {
            "path": [entry for entry in sys.path if isinstance(entry, str)],
            "steps": steps,
            "report": paths["report"],
            "hang": paths["hang"],
            "deadline": time.time() + call["timeout"],
        }
        with open(paths["spec"], "wb") as file:
            marshal.dump(spec, file)
        timed_out = False
        try:
            proc = subprocess.run(
                [sys.executable, "-c", _BOOTSTRAP, paths["spec"]],
                env=_environment(call["env"]),
                stdin=subprocess.DEVNULL,
                capture_output=True,
                text=True,
                errors="backslashreplace",
                timeout=call["timeout"] + _GRACE,
            )
            returncode, stdout, stderr = proc.returncode, proc.stdout, proc.stderr
        except subprocess.TimeoutExpired as expired:
            timed_out = True
            returncode, stdout, stderr = None, _text(expired.stdout), _text(expired.stderr)
        report = _read(paths["report"])
        hang = _read(paths["hang"])

    sections, status, payload = _parse(report)
    if status == "done":
        return Scenario(
            spans=_spans(payload["spans"]),
            after_uninstrument=_spans(payload["after_uninstrument"]),
            result=payload["result"],
            stdout=stdout,
            stderr=stderr,
        )
    where = sections[-1] if sections else "(start-up)"
    details = {"order": order, "stdout": stdout, "stderr": stderr}
    if status == "failed":
        problem = payload["problem"]
        if payload["again"]:
            problem = f"(its run after uninstrument) {problem}"
        raise ScenarioError(
            problem,
            section=payload["section"],
            traceback=payload["traceback"],
            spans=_spans(payload["spans"]),
            **details,
        )
    if timed_out or hang:
        problem = f"ran past the timeout of {call['timeout']:g} s"
        if hang.startswith("Timeout ("):  # faulthandler's header: the child's own clock
            hang = hang.partition("\n")[2]
        raise ScenarioError(problem, section=where, traceback=hang, **details)
    problem = f"the child exited with code {returncode} before the end of the scenario"
    raise ScenarioError(problem, section=where, **details)


def _source(code: str) -> str:
    if not isinstance(code, str):
        raise TypeError(f"a section is Python source (str), got {type(code).__name__}")
    return textwrap.dedent(code)


def _environment(extra: Mapping[str, str] | None) -> dict[str, str]:
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(_NOT_INHERITED) and key not in _NOT_INHERITED_NAMES
    }
    env.update(extra or {})
    return env


def _read(path: str) -> str:
    try:
        with open(path, encoding="utf-8", errors="backslashreplace") as file:
            return file.read()
    except FileNotFoundError:
        return ""


def _text(output: bytes | str | None) -> str:
    if isinstance(output, bytes):
        return output.decode(errors="backslashreplace")
    return output or ""


def _parse(report: str) -> tuple[list[str], str | None, Any]:
    """(sections started, "done" / "failed" / None, payload) from the report file."""
    sections = []
    for line in report.splitlines():
        word, _, rest = line.partition(" ")
        if word == "section":
            sections.append(rest)
        elif word in ("done", "failed"):
            return sections, word, json.loads(rest)
    return sections, None, None


def _spans(data: list[dict[str, Any]]) -> list[SpanRecord]:
    return [SpanRecord(**span) for span in data]
