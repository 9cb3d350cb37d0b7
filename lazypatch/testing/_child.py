"""The child interpreter of a scenario: the sections run in one namespace; spans go to a file.

The runner starts ``python -c BOOTSTRAP SPEC``; BOOTSTRAP puts the caller's ``sys.path`` in place
and calls :func:`main`. The global tracer provider (the SDK's, with a synchronous in-memory
exporter) is set by a post-import hook the moment ``opentelemetry.trace`` is first imported, so
that nothing of OpenTelemetry, nor ``logging`` and the rest it imports, is loaded before a section
needs it: "before_import" is true for every library. The report file gets a line per section as
it starts, so that a child that dies or hangs still says where, then one JSON line with the
outcome. stdout and stderr belong to the sections. The child ends with ``os._exit`` once the
report is written: threads a section left running, and exit handlers, are not waited for.
"""

from __future__ import annotations

import faulthandler
import os
import sys
import time

from .. import _hooks

TYPE_CHECKING = False
if TYPE_CHECKING:
    from types import ModuleType
    from typing import IO, Any, NoReturn

_TRACE_MODULE = "opentelemetry.trace"


class _Tracing:
    """The exporter once the provider is set, or why it could not be."""

    exporter: Any = None
    error: Exception | None = None


def _set_provider(trace: ModuleType) -> None:
    try:
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import SimpleSpanProcessor
        from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

        exporter = InMemorySpanExporter()
        provider = TracerProvider()
        provider.add_span_processor(SimpleSpanProcessor(exporter))
        trace.set_tracer_provider(provider)
        _Tracing.exporter = exporter
    except Exception as exc:
        _Tracing.error = exc


def _finished() -> list[dict[str, Any]]:
    if _Tracing.exporter is None:
        return []
    return [
        {
            "name": span.name,
            "kind": span.kind.name,
            "attributes": dict(span.attributes or {}),
            "status": span.status.status_code.name,
            "trace_id": span.context.trace_id,
            "span_id": span.context.span_id,
            "parent_id": span.parent.span_id if span.parent is not None else None,
        }
        for span in _Tracing.exporter.get_finished_spans()
    ]


def _formatted(exc: BaseException, skip_frames: int, sources: dict[str, str]) -> str:
    """The traceback of ``exc`` from the section's frame on, with the sections' source lines."""
    import linecache
    import traceback

    for filename, source in sources.items():
        linecache.cache[filename] = (len(source), None, source.splitlines(True), filename)
    tb = exc.__traceback__
    for _ in range(skip_frames):  # the child's own frames; none left for a SyntaxError
        tb = tb.tb_next if tb is not None else None
    return "".join(traceback.format_exception(type(exc), exc, tb))


def _end(report: IO[str], status: str, payload: dict[str, Any], code: int) -> NoReturn:
    import json

    report.write(f"{status} {json.dumps(payload)}\n")
    report.close()
    for stream in (sys.stdout, sys.stderr, sys.__stdout__, sys.__stderr__):
        try:
            if stream is not None:
                stream.flush()
        except Exception:  # a stream a section replaced, or closed
            pass
    os._exit(code)


def main(spec: dict[str, Any]) -> None:
    """Run ``spec["steps"]`` (``(section, source)`` pairs) in ``__main__``'s namespace; report."""
    namespace = sys.modules["__main__"].__dict__
    namespace.pop("_lazypatch_scenario", None)
    sys.argv[:] = ["-c"]
    report = open(spec["report"], "w", encoding="utf-8")
    hang = open(spec["hang"], "w", encoding="utf-8")
    faulthandler.enable()
    remaining = max(spec["deadline"] - time.time(), 0.001)
    faulthandler.dump_traceback_later(remaining, exit=True, file=hang)
    _hooks.add_internal(_TRACE_MODULE, _set_provider)

    sources: dict[str, str] = {}
    exercised = False
    result = boundary = None
    for name, source in spec["steps"]:
        again = name == "exercise" and exercised
        if again:
            boundary = len(_Tracing.exporter.get_finished_spans()) if _Tracing.exporter else 0
        report.write(f"section {name}\n")
        report.flush()
        filename = f"<{name}>"
        sources[filename] = source
        try:
            exec(compile(source, filename, "exec", dont_inherit=True), namespace)
        except BaseException as exc:
            problem = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
            _fail(report, name, again, problem, _formatted(exc, 1, sources))
        if _Tracing.error is not None:
            problem = "the SDK tracer provider could not be set up"
            _fail(report, name, again, problem, _formatted(_Tracing.error, 0, sources))
        if name == "exercise" and not exercised:
            exercised = True
            result = _result(namespace, report)

    spans = _finished()
    if boundary is None:
        boundary = len(spans)
    payload = {"spans": spans[:boundary], "after_uninstrument": spans[boundary:], "result": result}
    _end(report, "done", payload, 0)


def _fail(report: IO[str], section: str, again: bool, problem: str, traceback: str) -> NoReturn:
    payload = {
        "section": section,
        "again": again,
        "problem": problem,
        "traceback": traceback,
        "spans": _finished(),
    }
    _end(report, "failed", payload, 1)


def _result(namespace: dict[str, Any], report: IO[str]) -> Any:
    """``result`` as JSON round-trips it, taken now (a later run of exercise may change it)."""
    import json

    try:
        return json.loads(json.dumps(namespace.get("result")))
    except (TypeError, ValueError) as exc:
        problem = f"`result` cannot go through JSON: {type(exc).__name__}: {exc}"
        _fail(report, "exercise", False, problem, "")
