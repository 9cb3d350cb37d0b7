"""The OpenTelemetry adapter: its instrumentors in status(), skipped quietly or failed loudly, and
lazypatch beside ``opentelemetry-instrument``. Fresh interpreters throughout."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from fresh import write_modules
from test_discovery import listing, make_dist

BIN = Path(sys.executable).parent

INSTRUMENTORS = {
    "otel_cases.py": """
        from opentelemetry.instrumentation.dependencies import (
            DependencyConflict, DependencyConflictError,
        )
        from opentelemetry.instrumentation.instrumentor import BaseInstrumentor

        class _Base(BaseInstrumentor):
            def instrumentation_dependencies(self):
                return ()

            def _uninstrument(self, **kwargs):
                pass

        class Works(_Base):
            def _instrument(self, **kwargs):
                import lib_works
                lib_works.done = True

        class NeedsMissing(_Base):
            def _instrument(self, **kwargs):
                import not_installed_dependency

        class Conflicting(_Base):
            def _instrument(self, **kwargs):
                raise DependencyConflictError(DependencyConflict("lib_conflict >= 9", "lib_conflict 1.0"))

        class Raising(_Base):
            def _instrument(self, **kwargs):
                raise RuntimeError("boom in their instrument")
        """,
    "lib_works.py": "done = False\n",
    "lib_missing.py": "",
    "lib_conflict.py": "",
    "lib_raising.py": "",
    "lib_waiting.py": "",
}
ENTRY_POINTS = {
    "opentelemetry_instrumentor": {
        "lib_works": "otel_cases:Works",
        "lib_missing": "otel_cases:NeedsMissing",
        "lib_conflict": "otel_cases:Conflicting",
        "lib_raising": "otel_cases:Raising",
        "lib_waiting": "otel_cases:Works",
        "lib_gone": "no_such_instrumentation_module:I",
    }
}

STATUS = """
import json, lazypatch.auto, lazypatch
import lib_works, lib_missing, lib_conflict, lib_raising, lib_gone
print(json.dumps({
    r.name: [r.state, r.reason, r.module, r.calls]
    for r in lazypatch.status() if r.source == "opentelemetry" and r.name.startswith("lib_")
}))
"""


def test_status_lists_their_instrumentors_missing_dependencies_skip_quietly(pyrun, tmp_path):
    make_dist(tmp_path, "otel-cases", entry_points=ENTRY_POINTS)
    files = {**INSTRUMENTORS, "lib_gone.py": ""}
    proc = pyrun(STATUS, files=files, env={"LAZYPATCH_LOG_LEVEL": "INFO"})
    records = json.loads(proc.stdout)
    assert records["lib_works"] == ["active", None, "lib_works", 1]
    assert records["lib_waiting"] == ["pending", None, "lib_waiting", 0]
    assert records["lib_missing"][0] == "skipped"
    assert "not_installed_dependency" in records["lib_missing"][1]
    assert records["lib_conflict"][0] == "skipped"
    assert "lib_conflict >= 9" in records["lib_conflict"][1]
    assert records["lib_raising"][0] == "failed"
    assert "boom in their instrument" in records["lib_raising"][1]
    assert records["lib_gone"][0] == "failed"
    assert "no_such_instrumentation_module" in records["lib_gone"][1]
    stderr = proc.stderr
    info = [line for line in stderr.splitlines() if " INFO: " in line]
    assert sorted(line.split("'")[1] for line in info) == ["lib_conflict", "lib_missing"], stderr
    tracebacks = stderr.split("Traceback")[1:]
    assert len(tracebacks) == 2, stderr
    assert not any("not_installed_dependency" in t or "lib_conflict >=" in t for t in tracebacks)
    assert any("boom in their instrument" in t for t in tracebacks)

    rows = listing(tmp_path, "--import")
    states = {name: rows["opentelemetry", name]["state"] for name in records}
    expected = {name: state for name, (state, *_) in records.items()}
    expected["lib_waiting"] = "active"  # list --import imports every trigger
    assert states == expected
    assert listing(tmp_path)["opentelemetry", "lib_waiting"]["state"] == "armed"


def test_the_httpx2_entry_point_is_skipped_where_only_httpx_is_installed(pyrun):
    pytest.importorskip("opentelemetry.instrumentation.httpx")
    pytest.importorskip("httpx")
    proc = pyrun(
        """
        import json, lazypatch.auto, lazypatch, httpx
        print(json.dumps({
            r.name: [r.state, r.reason] for r in lazypatch.status() if r.source == "opentelemetry"
        }))
        """,
        env={"OTEL_TRACES_EXPORTER": "none", "LAZYPATCH_LOG_LEVEL": "INFO"},
    )
    records = json.loads(proc.stdout)
    if "httpx2" not in records:
        pytest.skip("this opentelemetry-instrumentation-httpx has no httpx2 entry point")
    assert records["httpx2"][0] == "skipped" and "httpx2" in records["httpx2"][1]
    assert "Traceback" not in proc.stderr and " ERROR" not in proc.stderr, proc.stderr
    skipped = [line for line in proc.stderr.splitlines() if "httpx2" in line]
    assert len(skipped) == 1 and " INFO: " in skipped[0], proc.stderr


# -- beside opentelemetry-instrument -----------------------------------------------------------

APP = """
import json, os, sys
if os.environ.get("IMPORT_AUTO"):
    import lazypatch.auto
import flask, lazypatch
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

exporter = InMemorySpanExporter()
provider = trace.get_tracer_provider()
if not isinstance(provider, TracerProvider):
    provider = TracerProvider()
    trace.set_tracer_provider(provider)
provider.add_span_processor(SimpleSpanProcessor(exporter))
app = flask.Flask("app")

@app.route("/x")
def x():
    return "ok"

response = app.test_client().get("/x")
print(json.dumps({
    "status": response.status_code,
    "auto": "lazypatch.auto" in sys.modules,
    "server_spans": sum(s.kind.name == "SERVER" for s in exporter.get_finished_spans()),
    "records": {f"{r.source}:{r.name}": r.state for r in lazypatch.status() if r.kind == "instrumentor"},
}))
"""


@pytest.mark.parametrize(
    "order",
    [
        "lazypatch run -- opentelemetry-instrument python",
        "opentelemetry-instrument lazypatch run -- python",
        "opentelemetry-instrument python, import lazypatch.auto",
    ],
)
def test_beside_opentelemetry_instrument(tmp_path, order):
    """Both tools active in the final process; OpenTelemetry's loader keeps the instrumentors it
    instrumented, lazypatch does not instrument them again (no warning, one server span)."""
    if not (BIN / "opentelemetry-instrument").exists():
        pytest.skip("opentelemetry-instrument is not installed")
    pytest.importorskip("opentelemetry.instrumentation.flask")
    write_modules(tmp_path, {"app.py": APP})
    env = dict(os.environ, OTEL_TRACES_EXPORTER="none", OTEL_METRICS_EXPORTER="none")
    env.update(OTEL_LOGS_EXPORTER="none", PYTHONPATH=str(tmp_path))
    otel, lazypatch, python = BIN / "opentelemetry-instrument", BIN / "lazypatch", sys.executable
    if order.startswith("lazypatch run"):
        argv = [lazypatch, "run", "--", otel, python, "app.py"]
    elif "lazypatch run" in order:
        argv = [otel, lazypatch, "run", "--", python, "app.py"]
    else:
        argv = [otel, python, "app.py"]
        env["IMPORT_AUTO"] = "1"
    proc = subprocess.run(
        [str(a) for a in argv], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout.splitlines()[-1])
    assert result["status"] == 200 and result["auto"] is True, result
    assert result["server_spans"] == 1, result
    assert "already instrumented" not in proc.stderr, proc.stderr
    assert "Traceback" not in proc.stderr, proc.stderr
    records = result["records"]
    assert records["opentelemetry:flask"] == "active", records
    assert "lazypatch:flask" not in records or records["lazypatch:flask"] == "off", records
