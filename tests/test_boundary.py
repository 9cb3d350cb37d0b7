"""The error boundary: every failure of foreign code (and of lazypatch's own finder) is isolated,
recorded on its handle, logged once with its traceback, and re-raised under LAZYPATCH_STRICT=1.

Each program runs in a fresh interpreter and asserts there; a handler counts the records of the
``lazypatch`` logger.
"""

import json
from pathlib import Path

from preludes import LOG_RECORDS

import lazypatch

TARGET = {
    "target.py": """
        import os
        if os.environ.get("TARGET_BROKEN") == "1":
            raise_now = True
        def f():
            return "f"
    """
}

LOGGED = (
    """
import sys
import lazypatch
"""
    + LOG_RECORDS
)


def test_a_hook_error_is_cleared_by_a_later_successful_run(pyrun):
    pyrun(
        LOGGED
        + """
import importlib
calls = []
def hook(module):
    calls.append(module)
    if len(calls) == 1:
        raise ValueError("first run")
h = lazypatch.register_hook("target", hook)
import target
assert h.state == "failed" and isinstance(h.error, ValueError), (h.state, h.error)
[record] = [r for r in lazypatch.status() if r.kind == "hook"]
assert record.state == "failed" and record.reason == "ValueError: first run", record
assert len(errors()) == 1 and errors()[0][1], errors()
assert "post-import hook" in errors()[0][0] and "'target'" in errors()[0][0], errors()
importlib.reload(target)
assert h.state == "fired" and h.error is None and h.calls == 2, (h.state, h.error, h.calls)
[record] = [r for r in lazypatch.status() if r.kind == "hook"]
assert record.reason is None, record
assert len(errors()) == 1, errors()
""",
        files=TARGET,
    )


def test_a_patch_error_is_cleared_by_a_later_successful_application(pyrun):
    pyrun(
        LOGGED
        + """
import importlib, os
def wrapper(wrapped, instance, args, kwargs):
    return wrapped(*args, **kwargs) + "+w"
patch = lazypatch.wrap("target", "g", wrapper)
import target
assert patch.state == "failed" and isinstance(patch.error, AttributeError), patch.error
assert len(errors()) == 1 and errors()[0][1] and "target:g" in errors()[0][0], errors()
with open(target.__file__, "a") as f:
    f.write("def g():\\n    return 'g'\\n")
importlib.invalidate_caches()
os.utime(target.__file__, (0, 2**31 - 1))
importlib.reload(target)
assert patch.state == "applied" and patch.error is None, (patch.state, patch.error)
assert target.g() == "g+w"
""",
        files=TARGET,
    )


def test_instrument_and_uninstrument_errors_are_recorded_and_logged_once(pyrun):
    pyrun(
        LOGGED
        + """
class Fails(lazypatch.Instrumentor):
    def _instrument(self, **kwargs):
        raise RuntimeError("cannot")

class Undo(lazypatch.Instrumentor):
    def _uninstrument(self, **kwargs):
        raise RuntimeError("cannot undo")

Fails().instrument()
assert Fails().state == "failed" and Fails().reason == "RuntimeError: cannot", Fails().reason
Undo().instrument()
Undo().uninstrument()
assert Undo().state == "off", Undo().state
assert Undo().reason == "_uninstrument failed: RuntimeError: cannot undo", Undo().reason
assert [message for message, _ in errors()] == [
    "instrumentor fails failed, the import goes on",
    "uninstrumenting undo failed",
], errors()
assert all(traceback for _, traceback in errors()), errors()
Undo().instrument()
assert Undo().state == "active" and Undo().reason is None
""",
    )


def test_strict_re_raises_from_every_kind_of_handle(pyrun):
    pyrun(
        """
import lazypatch

def boom(*args):
    raise LookupError("boom")

class Fails(lazypatch.Instrumentor):
    _instrument = boom

class Undo(lazypatch.Instrumentor):
    _uninstrument = boom

attempts = {
    "hook": lambda: (lazypatch.register_hook("target", boom), __import__("target")),
    "patch": lambda: (lazypatch.wrap("target2", "missing", boom), __import__("target2")),
    "instrument": lambda: Fails().instrument(),
    "uninstrument": lambda: (Undo().instrument(), Undo().uninstrument()),
}
raised = {}
for name, attempt in attempts.items():
    try:
        attempt()
    except (LookupError, AttributeError) as exc:
        raised[name] = type(exc).__name__
assert raised == {
    "hook": "LookupError",
    "patch": "AttributeError",
    "instrument": "LookupError",
    "uninstrument": "LookupError",
}, raised
assert Fails().state == "failed" and Fails().reason == "LookupError: boom"
""",
        files={**TARGET, "target2.py": "X = 1\n"},
        env={"LAZYPATCH_STRICT": "1"},
    )


def test_a_failure_of_the_finder_itself_is_logged_and_recorded(pyrun):
    pyrun(
        LOGGED
        + """
from lazypatch import _finder

class Broken(dict):
    def get(self, key, default=None):
        raise RuntimeError("finder bug")

_finder._watch_loaders = Broken()  # looked up for each watched module's loader
seen = []
h = lazypatch.register_hook("target", seen.append)
import target
assert target.f() == "f"
assert seen == [] and h.state == "failed" and isinstance(h.error, RuntimeError), (seen, h.state)
message = "lazypatch's finder failed on module 'target': its hooks miss this execution"
assert errors() == [(message, True)], errors()
# The next chance (here status()) runs the hook late, as for a module another finder loaded.
[record] = lazypatch.status()
assert seen == [target] and record.state == "fired" and record.reason is None, record
""",
        files=TARGET,
    )


def test_a_failure_of_the_finder_propagates_under_strict(pyrun):
    pyrun(
        """
import lazypatch
from lazypatch import _finder

class Broken(dict):
    def get(self, key, default=None):
        raise RuntimeError("finder bug")

_finder._watch_loaders = Broken()  # looked up for each watched module's loader
lazypatch.register_hook("target", print)
try:
    import target
except RuntimeError as exc:
    assert str(exc) == "finder bug"
else:
    raise AssertionError("the import went on")
""",
        files=TARGET,
        env={"LAZYPATCH_STRICT": "1"},
    )


SITECUSTOMIZE = str(Path(lazypatch.__file__).parent / "_bootstrap" / "sitecustomize.py")


def run_bootstrap(pyrun, blocked):
    """Run the bootstrap sitecustomize with module ``blocked`` not found; return the process."""
    return pyrun(
        f"""
import json, runpy, sys

class NotInstalled:
    def find_spec(self, name, path=None, target=None):
        if name == {blocked!r}:
            raise ModuleNotFoundError(f"No module named {{name!r}}", name=name)

sys.meta_path.insert(0, NotInstalled())
runpy.run_path({SITECUSTOMIZE!r})
print(json.dumps("lazypatch.auto" in sys.modules))
"""
    )


def test_sitecustomize_is_quiet_when_lazypatch_is_not_importable(pyrun):
    proc = run_bootstrap(pyrun, "lazypatch")
    assert json.loads(proc.stdout) is False
    assert proc.stderr == ""


def test_sitecustomize_reports_a_broken_dependency(pyrun):
    proc = run_bootstrap(pyrun, "lazypatch._discovery")
    assert json.loads(proc.stdout) is False
    assert proc.stderr.startswith("lazypatch: auto-instrumentation failed to start"), proc.stderr
    assert "_discovery" in proc.stderr and "Traceback" in proc.stderr, proc.stderr
