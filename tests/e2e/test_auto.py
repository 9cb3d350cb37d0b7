"""``import lazypatch.auto`` in a real environment: lazy, idempotent, and instrumenting."""

import pytest
from e2e_support import SERVER, console_spans, discovered

LAZY = """
import sys, threading
threads = threading.enumerate()
import lazypatch.auto
import lazypatch.auto
loaded = sorted(
    m for m in sys.modules
    if m.split(".")[0] in {"requests", "flask", "werkzeug", "urllib3", "sqlite3", "wrapt"}
    or m.startswith(("opentelemetry", "lazypatch.instrumentation", "importlib.metadata"))
)
assert loaded == [], loaded
assert threading.enumerate() == threads, threading.enumerate()
"""


def test_import_lazypatch_auto_imports_no_target_and_starts_no_thread(pyrun):
    proc = pyrun(LAZY)
    assert proc.stderr == ""


def test_our_instrumentations_trace_requests_and_flask_whenever_imported(pyrun):
    for name in ("requests", "flask"):
        if not discovered("lazypatch", name):
            pytest.skip(f"lazypatch's {name} instrumentation is not installed yet")
    proc = pyrun(
        SERVER
        + """
import lazypatch.auto
import time
time.sleep(0.01)
import requests
requests.get(URL).raise_for_status()
from flask import Flask
app = Flask("app")
app.route("/hi")(lambda: "hi")
assert app.test_client().get("/hi").status_code == 200
""",
        env={"OTEL_TRACES_EXPORTER": "console", "OTEL_METRICS_EXPORTER": "none"},
    )
    spans = console_spans(proc.stdout)
    kinds = sorted(span["kind"] for span in spans)
    assert kinds == ["SpanKind.CLIENT", "SpanKind.SERVER"], proc.stdout + proc.stderr


def test_otel_urllib3_instrumentor_is_loaded_when_urllib3_is_imported(pyrun):
    proc = pyrun(
        SERVER
        + """
import sys
import lazypatch.auto
assert "opentelemetry.instrumentation.urllib3" not in sys.modules
import urllib3
assert "opentelemetry.instrumentation.urllib3" in sys.modules
urllib3.PoolManager().request("GET", URL)
""",
        env={
            "OTEL_TRACES_EXPORTER": "console",
            "OTEL_METRICS_EXPORTER": "none",
            "LAZYPATCH_DISABLED_INSTRUMENTATIONS": "requests",
        },
    )
    (span,) = console_spans(proc.stdout)
    assert span["kind"] == "SpanKind.CLIENT"
    assert span["name"] == "GET"


def test_importing_instrumented_libraries_leaves_importlib_metadata_alone(pyrun):
    """Found by CPython's test_importlib on 3.9: opentelemetry-api imports the importlib_metadata
    backport there, which puts its own distribution finder in sys.meta_path. lazypatch imports
    OpenTelemetry only at the first span, so importing a library makes none of that happen.
    (OpenTelemetry's own instrumentation packages, left out here, import it when they load.)"""
    pyrun(
        """
        import sys
        import lazypatch.auto
        import sqlite3, urllib.request, requests, flask
        import importlib.metadata
        assert "importlib_metadata" not in sys.modules, "the backport was imported"
        assert not any(
            type(f).__module__.startswith("importlib_metadata") for f in sys.meta_path
        ), sys.meta_path
        points = importlib.metadata.entry_points()
        groups = dict.values(points) if isinstance(points, dict) else [points]
        found = {type(point).__module__ for group in groups for point in group}
        assert found == {"importlib.metadata"}, found
        """,
        env={
            "OTEL_TRACES_EXPORTER": "none",
            "OTEL_METRICS_EXPORTER": "none",
            "LAZYPATCH_OTEL_INSTRUMENTORS": "0",
        },
    )
