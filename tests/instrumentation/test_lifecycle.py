"""Across the built-in instrumentations: discovery, laziness, and exact undo."""

import json
from importlib import import_module

import pytest
from instr_support import SPANHELP, script, spans_of
from opentelemetry.util._importlib_metadata import entry_points

NAMES = {
    "requests": "RequestsInstrumentor",
    "flask": "FlaskInstrumentor",
    "urllib": "UrllibInstrumentor",
    "sqlite3": "SQLite3Instrumentor",
    "logging": "LoggingInstrumentor",
}


def test_entry_points_name_their_trigger_module():
    found = {ep.name: ep.value for ep in entry_points(group="lazypatch.instrumentors")}
    for name, cls in NAMES.items():
        assert found[name] == f"lazypatch.instrumentation.{name}:{cls}"
        instrumentor = getattr(import_module(f"lazypatch.instrumentation.{name}"), cls)
        assert all(t == name or t.startswith(name + ".") for t in instrumentor.targets)


def test_loading_an_instrumentation_imports_nothing_else(pyrun):
    code = script(
        """
        import sys
        before = set(sys.modules)
        """,
        *(f"import lazypatch.instrumentation.{name}\n" for name in NAMES),
        """
        new = {m.split(".")[0] for m in set(sys.modules) - before}
        print(sorted(new))
        for heavy in ("requests", "flask", "sqlite3", "opentelemetry", "wrapt", "werkzeug"):
            assert heavy not in new, heavy
        assert "urllib.request" not in sys.modules and "logging" not in sys.modules
        """,
    )
    pyrun(code)


ALL_ON = """
import logging, sqlite3, urllib.request
import flask, requests
import spanhelp
from lazypatch.instrumentation.flask import FlaskInstrumentor
from lazypatch.instrumentation.logging import LoggingInstrumentor
from lazypatch.instrumentation.requests import RequestsInstrumentor
from lazypatch.instrumentation.sqlite3 import SQLite3Instrumentor
from lazypatch.instrumentation.urllib import UrllibInstrumentor

INSTRUMENTORS = [FlaskInstrumentor(), LoggingInstrumentor(), RequestsInstrumentor(),
                 SQLite3Instrumentor(), UrllibInstrumentor()]
SIGNALS = [flask.signals.request_started, flask.signals.request_finished,
           flask.signals.got_request_exception, flask.signals.request_tearing_down]

def snapshot():
    return (
        requests.Session.__dict__["send"],
        urllib.request.OpenerDirector.__dict__["open"],
        sqlite3.connect,
        sqlite3.dbapi2.connect,
        logging.LogRecord.__dict__["__init__"],
        logging.getLogRecordFactory(),
        [dict(s.receivers) for s in SIGNALS],
    )

def same(a, b):
    return all(x is y for x, y in zip(a[:-1], b[:-1])) and a[-1] == b[-1]

app = flask.Flask("app")

@app.route("/")
def index():
    sqlite3.connect(":memory:").execute("SELECT 1")
    logging.getLogger("app").warning("in view")
    return "ok"

url = spanhelp.serve(app)
original = snapshot()
"""


def test_instrument_uninstrument_cycles_restore_by_identity(pyrun):
    code = script(
        ALL_ON,
        """
        for round in range(2):
            for instrumentor in INSTRUMENTORS:
                instrumentor.instrument()
                instrumentor.instrument()
            assert all(i.state == "active" for i in INSTRUMENTORS), INSTRUMENTORS
            assert not same(snapshot(), original)
            requests.get(url)
            urllib.request.urlopen(url).read()
            for instrumentor in INSTRUMENTORS:
                instrumentor.uninstrument()
            assert same(snapshot(), original), (snapshot(), original)
        requests.get(url)
        spanhelp.dump(8)
        """,
    )
    spans = spans_of(pyrun(code, files={"spanhelp.py": SPANHELP}))
    # per round: 2 client spans, 2 server spans, 2 queries -- one layer each time, none after
    assert sorted(s["kind"] for s in spans) == ["CLIENT"] * 8 + ["SERVER"] * 4


@pytest.mark.parametrize("disabled", ["", "sqlite3,flask"])
def test_auto_instrumentation_arms_them(pyrun, disabled):
    code = script(
        """
        import os
        import lazypatch.auto
        import sqlite3, flask, requests, urllib.request, logging
        from lazypatch.instrumentation.flask import FlaskInstrumentor
        from lazypatch.instrumentation.requests import RequestsInstrumentor
        from lazypatch.instrumentation.sqlite3 import SQLite3Instrumentor
        from lazypatch.instrumentation.urllib import UrllibInstrumentor
        from lazypatch.instrumentation.logging import LoggingInstrumentor
        classes = (FlaskInstrumentor, RequestsInstrumentor, SQLite3Instrumentor,
                   UrllibInstrumentor, LoggingInstrumentor)
        import json
        print(json.dumps({cls().name: cls().state for cls in classes}))
        """
    )
    env = {
        "LAZYPATCH_OTEL_INSTRUMENTORS": "0",
        "OTEL_TRACES_EXPORTER": "none",
        "LAZYPATCH_DISABLED_INSTRUMENTATIONS": disabled,
    }
    states = json.loads(pyrun(code, env=env).stdout.splitlines()[-1])
    off = set(filter(None, disabled.split(",")))
    assert states == {name: "off" if name in off else "active" for name in NAMES}
