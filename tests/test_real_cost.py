"""What lazypatch costs a real program, counted in modules (not time) in fresh interpreters.

Arming the built-in instrumentations and applying patches loads lazypatch's own modules and
nothing else: wrapt only for a proxy, OpenTelemetry only at the first span.
"""

import json
import os
import subprocess
import sys

from fresh import run_python

# Imports nearly every program makes, then uses that make no span.
APPLICATION = """
import logging, json, sqlite3, urllib.request
logging.getLogger("app").warning("started")
sqlite3.connect(":memory:").close()
urllib.request.Request("http://127.0.0.1/")
"""

REPORT = "\nimport sys, json as _json\nprint(_json.dumps(sorted(sys.modules)))\n"


def modules_after(code, **env):
    proc = run_python(code + REPORT, env={"OTEL_TRACES_EXPORTER": "none", **env})
    return set(json.loads(proc.stdout.splitlines()[-1]))


def not_lazypatch(names):
    return sorted(
        name for name in names if name != "lazypatch" and not name.startswith("lazypatch.")
    )


def test_auto_and_common_imports_load_nothing_the_bare_imports_do_not():
    bare = modules_after(APPLICATION)
    armed = modules_after("import lazypatch.auto\n" + APPLICATION)
    assert not_lazypatch(armed - bare) == []
    # The instrumentations did arm: the logging one patched LogRecord, the others wait.
    states = run_python(
        "import lazypatch.auto, lazypatch\n"
        + APPLICATION
        + "print(json.dumps({r.name: r.state for r in lazypatch.status() if r.kind == 'instrumentor'}))"
    ).stdout.splitlines()[-1]
    assert {"logging": "active", "sqlite3": "active"}.items() <= json.loads(states).items(), states


def test_instrumenting_flask_and_requests_loads_only_lazypatch():
    """Their requirements (``flask >= 2.3``...) are checked without packaging. OpenTelemetry's
    instrumentation packages, which bring imports of their own, are left out."""
    code = "import flask, requests\n"
    bare = modules_after(code)
    armed = modules_after(
        "import lazypatch.auto\n" + code + "import lazypatch\n"
        "assert {r.name: r.state for r in lazypatch.status() if r.kind == 'instrumentor'}"
        "['flask'] == 'active'\n",
        LAZYPATCH_OTEL_INSTRUMENTORS="0",
    )
    assert "lazypatch.instrumentation.requests" in armed
    assert not_lazypatch(armed - bare) == []


FIRST_SPAN = """
import sys, sqlite3, logging
connection = sqlite3.connect(":memory:")
logging.getLogger("app").warning("no span yet")
before = sorted(m for m in sys.modules if m.split(".")[0] == "opentelemetry")
connection.execute("select 1")
after = {m: m in sys.modules for m in ("opentelemetry.trace", "opentelemetry.sdk.trace")}
import json
print(json.dumps({"before the first span": before, "after": after}))
"""
FIRST_SPAN_FACTS = {
    "before the first span": [],
    "after": {"opentelemetry.trace": True, "opentelemetry.sdk.trace": True},
}
# The statement's duration is a measurement too; with no collector to take it, the default OTLP
# exporter would retry for seconds at exit.
NO_EXPORT = {"OTEL_TRACES_EXPORTER": "none", "OTEL_METRICS_EXPORTER": "none"}


def test_opentelemetry_is_imported_by_the_first_span():
    """sqlite3 armed and connected, a log record made: no OpenTelemetry until a statement runs."""
    proc = run_python("import lazypatch.auto\n" + FIRST_SPAN, env=NO_EXPORT)
    assert json.loads(proc.stdout.splitlines()[-1]) == FIRST_SPAN_FACTS, proc.stderr


def test_under_lazypatch_run_too(tmp_path):
    script = tmp_path / "app.py"
    script.write_text("import sys\nassert 'lazypatch.auto' in sys.modules\n" + FIRST_SPAN)
    env = {**os.environ, **NO_EXPORT}
    proc = subprocess.run(
        [sys.executable, "-m", "lazypatch", "run", "--", sys.executable, str(script)],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout.splitlines()[-1]) == FIRST_SPAN_FACTS, proc.stderr


WRAPS = """
import sys, json, logging, lazypatch

def wrapper(wrapped, instance, args, kwargs):
    return wrapped(*args, **kwargs)

class Target:
    def method(self): return "method"
    @classmethod
    def klass(cls): return "klass"
    @staticmethod
    def static(): return "static"

module = type(sys)("target")
module.Target = Target
module.function = lambda: "function"

patches = [
    lazypatch.wrap(module, "function", wrapper),
    lazypatch.wrap(module, "Target.method", wrapper),
    lazypatch.wrap(module, "Target.klass", wrapper),
    lazypatch.wrap(module, "Target.static", wrapper),
    lazypatch.wrap("json", "dumps", wrapper),
    lazypatch.wrap("logging", "Logger.info", wrapper),
    lazypatch.wrap("not_imported_yet", "anything", wrapper),
    lazypatch.replace(module, "function", lambda: "replaced"),
    lazypatch.replace("json", "loads", json.loads),
]
assert module.Target().method() == "method" and module.Target.klass() == "klass"
assert module.Target.static() == "static" and json.dumps(1) == "1"
hooks = [lazypatch.register_hook("json", lambda m: None), lazypatch.register_hook("csv", lambda m: None)]

class Demo(lazypatch.Instrumentor):
    targets = ("json",)
    def _instrument(self, **kwargs):
        self.wrap("json", "JSONEncoder.encode", wrapper)
        self.register_hook("json", lambda m: None)

Demo().instrument()
assert Demo().state == "active", Demo().state
lazypatch.status()
for handle in patches + hooks:
    handle.remove()
Demo().uninstrument()
wrapt = "wrapt" in sys.modules
"""


def test_wrap_replace_hooks_and_instrumentors_of_functions_and_methods_leave_wrapt_out():
    run_python(WRAPS + "assert not wrapt, 'wrapt was imported'\n")


def test_wrapt_is_imported_for_a_proxy_of_a_class():
    code = WRAPS.replace(
        'lazypatch.wrap(module, "function", wrapper),',
        'lazypatch.wrap(module, "function", wrapper), lazypatch.wrap(module, "Target", wrapper),',
    )
    run_python(code + "assert wrapt, 'wrapt was not imported'\n")
