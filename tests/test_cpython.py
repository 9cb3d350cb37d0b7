"""The fence around CPython's private import names (``lazypatch/_cpython.py``) and its reduced mode."""

import ast
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

# Imports lazypatch while the private modules it reads look like a future CPython's: copies of
# the real ones without the names listed in MISSING. importlib itself keeps the real ones.
REDUCED = """
import importlib, importlib.machinery, importlib.util, logging, sys, types
import _frozen_importlib, _frozen_importlib_external, _thread

records = []
class Keep(logging.Handler):
    def emit(self, record):
        records.append(record)
logging.getLogger("lazypatch").addHandler(Keep())

def without(module, names):
    fake = types.ModuleType(module.__name__)
    fake.__dict__.update({k: v for k, v in vars(module).items() if k not in names})
    return fake

MISSING = %r
real = {name: sys.modules[name] for name in ("_frozen_importlib", "_frozen_importlib_external", "_thread")}
bootstrap = without(real["_frozen_importlib"], MISSING)
if "_load_unlocked" in MISSING:
    def _load_unlocked(spec):
        return real["_frozen_importlib"]._load_unlocked(spec)
    bootstrap._load_unlocked = _load_unlocked
sys.modules["_frozen_importlib"] = bootstrap
sys.modules["_frozen_importlib_external"] = without(real["_frozen_importlib_external"], MISSING)
sys.modules["_thread"] = without(real["_thread"], MISSING)
try:
    import lazypatch
    from lazypatch import _cpython
finally:
    sys.modules.update(real)

warnings = [r.getMessage() for r in records if r.levelname == "WARNING"]
"""

EXERCISE = """
fired = []
lazypatch.register_hook("target", lambda m: fired.append(("target", m.DONE)))
import target
lazypatch.register_hook("_symtable", lambda m: fired.append(("builtin", hasattr(m, "symtable"))))
import _symtable
importlib.reload(target)
import threading
results = []
def worker():
    import json
    results.append(json.dumps([1]))
lazypatch.register_hook("json", lambda m: fired.append(("json", hasattr(m, "dumps"))))
t = threading.Thread(target=worker)
t.start(); t.join()
late = []
import selfwatch
"""

FILES = {
    "target.py": "DONE = False\nimport colorsys\nDONE = True\n",
    "selfwatch.py": (
        "import lazypatch, builtins\n"
        "lazypatch.register_hook(__name__, lambda m: builtins.SEEN.append(m.COMPLETE))\n"
        "COMPLETE = True\n"
    ),
}


def _run(pyrun, missing):
    code = (
        REDUCED % (missing,)
        + "import builtins\nbuiltins.SEEN = []\n"
        + EXERCISE
        + "print(repr((_cpython.MISSING, warnings, fired, builtins.SEEN)))\n"
    )
    return ast.literal_eval(pyrun(code, files=FILES).stdout.strip().splitlines()[-1])


def test_nothing_is_missing_on_this_interpreter(pyrun):
    missing, warnings, fired, seen = _run(pyrun, ())
    assert missing == () and warnings == []
    assert fired == [("target", True), ("builtin", True), ("target", True), ("json", True)]
    assert seen == [True]  # registered from its own body: fired once, after the body


@pytest.mark.parametrize(
    "names, lost",
    [
        (("_module_locks",), ("importlib._bootstrap._module_locks",)),
        (("_lock_unlock_module",), ("importlib._bootstrap._lock_unlock_module",)),
        (("_ModuleLock",), ("importlib._bootstrap._ModuleLock.owner",)),
        (("_LoaderBasics",), ("importlib._bootstrap_external._LoaderBasics",)),
        (("_local",), ("_thread._local",)),
    ],
)
def test_a_missing_name_logs_once_and_every_guarantee_still_holds(pyrun, names, lost):
    missing, warnings, fired, seen = _run(pyrun, names)
    assert missing == lost
    assert len(warnings) == 1 and "reduced mode" in warnings[0] and lost[0] in warnings[0]
    assert fired == [("target", True), ("builtin", True), ("target", True), ("json", True)]
    assert seen == [True]


def test_without_the_initializing_flag_a_hook_from_the_modules_own_body_runs_at_once(pyrun):
    """The documented loss: without ``spec._initializing``, a module half-way through its import
    looks imported, so a hook registered from its own body runs at once, on the half-built
    module. Every other hook still runs once per execution, after the body."""
    missing, warnings, fired, seen = _run(pyrun, ("_load_unlocked",))
    assert missing == ("importlib._bootstrap._load_unlocked sets spec._initializing",)
    assert len(warnings) == 1 and "half-built" in warnings[0]
    assert fired == [("target", True), ("builtin", True), ("target", True), ("json", True)]
    assert seen == []  # ran before COMPLETE was set: the hook itself failed, and was isolated


def test_private_names_are_looked_up_only_in_the_fence():
    """Only ``_cpython`` imports CPython's private import names; only ``_finder`` (the spec
    watch, checked by the fence) touches ``spec._initializing``."""
    private = ("_frozen_importlib", "_module_locks", "_lock_unlock_module", "_LoaderBasics")
    private += ("import _local", "_thread._local")
    offenders = {}
    for path in (ROOT / "lazypatch").rglob("*.py"):
        text = path.read_text()
        found = [name for name in private if name in text]
        if path.name != "_finder.py" and re.search(r"\b_initializing\b", text):
            found.append("_initializing")
        if found and path.name != "_cpython.py":
            offenders[path.name] = found
    assert offenders == {}
