"""Never break the host (ARCHITECTURE.md rule 4): bad input loses nothing.

Malformed entry points, hooks raising ``BaseException``s, garbage in every environment variable
lazypatch reads, modules that delete themselves, raise from ``__getattr__`` / ``__getattribute__``
or are not modules at all. Each case runs an application in a fresh interpreter twice, without
lazypatch and under ``import lazypatch.auto``: the application starts, its imports and calls print
the same, and lazypatch says exactly one clear thing about each bad input.

Distributions are throwaway ``*.dist-info`` directories on PYTHONPATH.
"""

import json

import pytest
from preludes import LOG_RECORDS_AT_EXIT
from test_discovery import make_dist

# The records of the ``lazypatch`` logger, written on stderr at exit.
PRELUDE = LOG_RECORDS_AT_EXIT

LIB = {
    "bi_lib.py": """
        def compute(x):
            return x * 2
    """,
}


def run_both(pyrun, app, files=None, env=None, returncode=0):
    """``app`` without lazypatch, then under ``import lazypatch.auto``: same stdout and exit code.

    Returns (stdout, lazypatch's log records, stderr) of the second run.
    """
    bare = pyrun(app, files=files, env=env, check=False)
    assert bare.returncode == returncode, bare.stderr
    auto = pyrun(PRELUDE + "import lazypatch.auto\n" + app, files=files, env=env, check=False)
    assert auto.returncode == returncode, auto.stderr
    assert auto.stdout == bare.stdout, auto.stderr
    marker = [line for line in auto.stderr.splitlines() if line.startswith("RECORDS=")]
    assert len(marker) == 1, auto.stderr
    return auto.stdout, json.loads(marker[0][len("RECORDS=") :]), auto.stderr


def only_record(records, *needles, level=None):
    """The one record that mentions every needle; fails if there are none or several."""
    found = [r for r in records if all(n in r[1] for n in needles)]
    assert len(found) == 1, records
    if level is not None:
        assert found[0][0] == level, found
    return found[0]


# -- configuration ------------------------------------------------------------------------------

VARIABLES = [
    "LAZYPATCH_DISABLED_INSTRUMENTATIONS",
    "OTEL_PYTHON_DISABLED_INSTRUMENTATIONS",
    "LAZYPATCH_ENABLED_INSTRUMENTATIONS",
    "LAZYPATCH_OTEL_INSTRUMENTORS",
    "LAZYPATCH_STRICT",
    "LAZYPATCH_LOG_LEVEL",
    "OTEL_TRACES_EXPORTER",
    "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL",
    "OTEL_EXPORTER_OTLP_PROTOCOL",
    "OTEL_SDK_DISABLED",
]
# A superscript digit (str.isdigit, but not int()), undecodable bytes, list syntax gone wrong.
GARBAGE = ["\u00b2", "\udcff\udcfe :*", " ,:, "]

HOOKED_APP = """
import bi_lib
print(bi_lib.compute(21))
"""
HOOKS_DIST = {"lazypatch.hooks": {"bi_lib": "bi_hooks:mark"}}
HOOKS = {
    **LIB,
    "bi_hooks.py": """
        import sys

        def mark(module):
            sys.stderr.write("CHECK hooked\\n")
    """,
}


# "²" is a valid (if useless) name in a list of names: garbage only for the other variables.
NAME_LISTS = VARIABLES[:3] + ["OTEL_TRACES_EXPORTER"]
CASES = [
    pytest.param(variable, value, id=f"{variable}-{label}")
    for variable in VARIABLES
    for value, label in zip(GARBAGE, ["superscript", "undecodable", "separators"])
    if not (variable in NAME_LISTS and value == GARBAGE[0])
]


@pytest.mark.parametrize(("variable", "value"), CASES)
def test_garbage_in_a_variable_warns_once_and_the_default_applies(tmp_path, pyrun, variable, value):
    make_dist(tmp_path, "bi-hooks", entry_points=HOOKS_DIST)
    out, records, stderr = run_both(pyrun, HOOKED_APP, files=HOOKS, env={variable: value})
    assert out == "42\n"
    assert "CHECK hooked" in stderr, "the default applies: the hook is armed and fires"
    assert "Traceback" not in stderr
    assert len(records) == 1, records
    level, message, traceback = records[0]
    assert level == "WARNING" and not traceback
    assert f"{variable}={value!r}" in message


# -- entry points -------------------------------------------------------------------------------

BAD_ENTRY_POINTS = {
    "lazypatch.instrumentors": {
        "bi_syntax": "not a valid value!",
        "bi_nocolon": "bi_inst",
        "bi_missing": "bi_no_such_module:Instrumentor",
        "bi_noattr": "bi_inst:NoSuchClass",
        "bi_notcallable": "bi_inst:NOT_CALLABLE",
        "bi_notinstrumentor": "bi_inst:NotAnInstrumentor",
    },
    "lazypatch.hooks": {
        "bi_hook_syntax": "no colon here",
        "bi_hook_missing": "bi_no_such_module:hook",
        "bi_hook_notcallable": "bi_inst:NOT_CALLABLE",
    },
    "opentelemetry_instrumentor": {"bi_otel_missing": "bi_no_such_otel_module:Instrumentor"},
}
TRIGGERS = [name for group in BAD_ENTRY_POINTS.values() for name in group]
TRIGGER_FILES = {f"{name}.py": f"VALUE = {name!r}\n" for name in TRIGGERS}
INST = {
    "bi_inst.py": """
        NOT_CALLABLE = 42

        class NotAnInstrumentor:
            pass
    """,
}


def test_malformed_entry_points_each_log_once_and_the_imports_go_on(tmp_path, pyrun):
    make_dist(tmp_path, "bi-bad", entry_points=BAD_ENTRY_POINTS)
    app = "".join(f"import {name}; print({name}.VALUE)\n" for name in TRIGGERS)
    # Before 3.10 OpenTelemetry reads entry points through the importlib_metadata backport, which
    # rejects this distribution's malformed ones when the logging instrumentation first asks for
    # the current span: a failure of OpenTelemetry, logged once, not the subject here.
    env = {"LAZYPATCH_DISABLED_INSTRUMENTATIONS": "logging"}
    out, records, stderr = run_both(pyrun, app, files={**TRIGGER_FILES, **INST}, env=env)
    assert out.split() == TRIGGERS
    # Malformed values: one warning for the distribution, at startup, naming each.
    malformed = ["bi_syntax", "bi_nocolon", "bi_hook_syntax"]
    only_record(records, "bi_bad-1.0.dist-info", *map(repr, malformed), level="WARNING")
    # Well-formed but wrong: one error each, when its trigger is imported.
    for group in BAD_ENTRY_POINTS.values():
        for name, value in group.items():
            if name not in malformed:
                only_record(records, name, value, level="ERROR")
    assert len(records) == len(TRIGGERS) - len(malformed) + 1, records


def test_garbage_entry_points_txt_is_skipped_and_the_good_ones_still_work(tmp_path, pyrun):
    garbage = make_dist(tmp_path, "bi-garbage")
    (garbage / "entry_points.txt").write_bytes(
        b"\xff\xfe\x00[lazypatch.instrumentors\n= \n==\n[lazypatch.hooks]\n = :\n=x:y\n"
        b"\x00\x01=\x02\n[lazypatch.instrumentors]\n\xc3\x28 = \xa0\xa1\n[unterminated\n"
    )
    make_dist(tmp_path, "bi-hooks", entry_points=HOOKS_DIST)
    out, records, stderr = run_both(pyrun, HOOKED_APP, files=HOOKS)
    assert out == "42\n"
    assert "CHECK hooked" in stderr
    assert "Traceback" not in stderr
    assert len(records) <= 1, records


# -- hooks raising ------------------------------------------------------------------------------

RAISING = {
    **LIB,
    "bi_raise.py": """
        import os

        def hook(module):
            kind = os.environ["BI_RAISE"]
            raise {"SystemExit": SystemExit(3), "KeyboardInterrupt": KeyboardInterrupt("stop"),
                   "Exception": ValueError("hook failed")}[kind]

        class Instrumentor:
            def instrument(self):
                hook(None)
    """,
}
RAISE_APP = """
try:
    import bi_lib
except BaseException as exc:
    print("import raised", type(exc).__name__, exc)
else:
    print("imported", bi_lib.compute(2))
"""


@pytest.mark.parametrize("group", ["lazypatch.hooks", "lazypatch.instrumentors"])
@pytest.mark.parametrize("kind", ["SystemExit", "KeyboardInterrupt"])
def test_base_exceptions_from_entry_points_propagate(tmp_path, pyrun, group, kind):
    value = "bi_raise:hook" if group == "lazypatch.hooks" else "bi_raise:Instrumentor"
    make_dist(tmp_path, "bi-raise", entry_points={group: {"bi_lib": value}})
    bare = pyrun(RAISE_APP, files=RAISING, env={"BI_RAISE": kind}).stdout
    assert bare == "imported 4\n"
    proc = pyrun(
        PRELUDE + "import lazypatch.auto\n" + RAISE_APP, files=RAISING, env={"BI_RAISE": kind}
    )
    expected = {"SystemExit": "SystemExit 3", "KeyboardInterrupt": "KeyboardInterrupt stop"}[kind]
    assert proc.stdout == f"import raised {expected}\n"


@pytest.mark.parametrize("group", ["lazypatch.hooks", "lazypatch.instrumentors"])
def test_exceptions_from_entry_points_do_not_propagate(tmp_path, pyrun, group):
    value = "bi_raise:hook" if group == "lazypatch.hooks" else "bi_raise:Instrumentor"
    make_dist(tmp_path, "bi-raise", entry_points={group: {"bi_lib": value}})
    out, records, stderr = run_both(pyrun, RAISE_APP, files=RAISING, env={"BI_RAISE": "Exception"})
    assert out == "imported 4\n"
    assert only_record(records, "bi_raise:", level="ERROR")[2], "logged with its traceback"
    assert len(records) == 1, records


# -- hostile modules ----------------------------------------------------------------------------

HOSTILE = {
    # Deletes itself from sys.modules at the end of its body.
    "bi_selfdel.py": """
        import sys
        VALUE = 1
        del sys.modules[__name__]
    """,
    # Raises from a module __getattr__ for every missing attribute.
    "bi_getattr.py": """
        VALUE = 2

        def compute(x):
            return x + 1

        def __getattr__(name):
            raise RuntimeError(f"bi_getattr has no {name}")
    """,
    # Its class raises from __getattribute__ for all but a few names (a hostile lazy module).
    "bi_getattribute.py": """
        import sys, types
        VALUE = 3

        def compute(x):
            return x + 2

        class Hostile(types.ModuleType):
            def __getattribute__(self, name):
                if name in ("VALUE", "compute", "__dict__", "__class__"):
                    return super().__getattribute__(name)
                raise RuntimeError(f"bi_getattribute refuses {name}")

        sys.modules[__name__].__class__ = Hostile
    """,
    # Replaces itself in sys.modules with an object that is not a module and raises everywhere.
    "bi_notmodule.py": """
        import sys

        class NotAModule:
            def __getattribute__(self, name):
                if name == "VALUE":
                    return 4
                raise RuntimeError(f"not a module: {name}")

            def __eq__(self, other):
                raise RuntimeError("no comparisons")

            __hash__ = object.__hash__

        sys.modules[__name__] = NotAModule()
    """,
    "bi_hostile_hooks.py": """
        import sys

        def mark(module):
            sys.stderr.write(f"CHECK hook ran on {type(module).__name__}\\n")
    """,
}
HOSTILE_APP = """
import sys

def attempt(label, func):
    try:
        print(label, func())
    except BaseException as exc:
        print(label, "raised", type(exc).__name__, exc)

attempt("selfdel import", lambda: __import__("bi_selfdel").VALUE)
attempt("selfdel in sys.modules", lambda: "bi_selfdel" in sys.modules)
attempt("selfdel again", lambda: __import__("bi_selfdel").VALUE)
attempt("getattr import", lambda: __import__("bi_getattr").VALUE)
attempt("getattr call", lambda: __import__("bi_getattr").compute(1))
attempt("getattr missing", lambda: __import__("bi_getattr").missing)
attempt("getattribute import", lambda: __import__("bi_getattribute").VALUE)
attempt("getattribute call", lambda: __import__("bi_getattribute").compute(1))
attempt("getattribute spec", lambda: __import__("bi_getattribute").__spec__)
attempt("notmodule import", lambda: __import__("bi_notmodule").VALUE)
attempt("notmodule from", lambda: __import__("bi_notmodule", fromlist=["VALUE"]).VALUE)
sys.modules["bi_int"] = 42
sys.modules["bi_none"] = None
attempt("int", lambda: __import__("bi_int"))
attempt("none", lambda: __import__("bi_none"))
"""
HOSTILE_NAMES = ["bi_selfdel", "bi_getattr", "bi_getattribute", "bi_notmodule", "bi_int", "bi_none"]


def test_hostile_modules_import_as_without_lazypatch(tmp_path, pyrun):
    """Each watched by a ``lazypatch.hooks`` entry point and by a wrap of its ``compute``."""
    make_dist(
        tmp_path,
        "bi-hostile",
        entry_points={"lazypatch.hooks": {n: "bi_hostile_hooks:mark" for n in HOSTILE_NAMES}},
    )
    app = (
        "import lazypatch\n"
        "for _name in "
        + repr(HOSTILE_NAMES)
        + ":\n"
        + "    lazypatch.wrap(_name, 'compute', lambda w, i, a, k: w(*a, **k))\n"
        + HOSTILE_APP
    )
    bare = pyrun(HOSTILE_APP, files=HOSTILE, check=False)
    assert bare.returncode == 0, bare.stderr
    auto = pyrun(PRELUDE + "import lazypatch.auto\n" + app, files=HOSTILE)
    assert auto.stdout == bare.stdout, auto.stderr
    assert "Traceback" not in auto.stderr
    records = json.loads(auto.stderr.split("RECORDS=")[1])
    # The hooks ran on the modules and objects that loaded; the patches of modules that have
    # no ``compute`` fail with one line each, naming module and path.
    for hooked in ("module", "Hostile", "NotAModule"):
        assert f"CHECK hook ran on {hooked}" in auto.stderr
    only_record(records, "bi_notmodule:compute", "not a module", level="ERROR")
    assert len(records) == 1, records
