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
        + "print(sorted((r.name, r.state) for r in lazypatch.status() if r.kind == 'instrumentor'))"
    ).stdout
    assert "('logging', 'active')" in states and "('sqlite3', 'active')" in states, states


FIRST_SPAN = """
import sys, sqlite3, logging
connection = sqlite3.connect(":memory:")
logging.getLogger("app").warning("no span yet")
before = sorted(m for m in sys.modules if m.split(".")[0] == "opentelemetry")
connection.execute("select 1")
print(before, "opentelemetry.trace" in sys.modules, "opentelemetry.sdk.trace" in sys.modules)
"""


def test_opentelemetry_is_imported_by_the_first_span():
    """sqlite3 armed and connected, a log record made: no OpenTelemetry until a statement runs."""
    proc = run_python("import lazypatch.auto\n" + FIRST_SPAN, env={"OTEL_TRACES_EXPORTER": "none"})
    assert proc.stdout.splitlines()[-1] == "[] True True", proc.stdout + proc.stderr


def test_under_lazypatch_run_too(tmp_path):
    script = tmp_path / "app.py"
    script.write_text("import sys\nassert 'lazypatch.auto' in sys.modules\n" + FIRST_SPAN)
    env = {**os.environ, "OTEL_TRACES_EXPORTER": "none"}
    proc = subprocess.run(
        [sys.executable, "-m", "lazypatch", "run", "--", sys.executable, str(script)],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines()[-1] == "[] True True", proc.stdout + proc.stderr


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
print("wrapt" in sys.modules)
"""


def test_wrap_replace_hooks_and_instrumentors_of_functions_and_methods_leave_wrapt_out():
    assert run_python(WRAPS).stdout.split() == ["False"]


def test_wrapt_is_imported_for_a_proxy_of_a_class():
    code = WRAPS.replace(
        'lazypatch.wrap(module, "function", wrapper),',
        'lazypatch.wrap(module, "function", wrapper), lazypatch.wrap(module, "Target", wrapper),',
    )
    assert run_python(code).stdout.split() == ["True"]
