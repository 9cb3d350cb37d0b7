"""Other import hooks beside lazypatch, each installed before and after it: wrapt's post-import
hooks, pytest's assertion rewriting, ``importlib.util.LazyLoader``, a setuptools editable
install, a legacy ``find_module``/``load_module`` importer, typeguard's import hook,
``opentelemetry-instrument`` and ddtrace's ``ModuleWatchdog``. Every hook fires once and every
module imports as it does without lazypatch.
"""

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from fresh import run_python, write_modules

BIN = Path(sys.executable).parent
ORDERS = ["lazypatch first", "other first"]

# A package with a submodule and a data file: what an import hook could get wrong.
PACKAGE = {
    "watchpkg/__init__.py": "VALUE = 'pkg'\n",
    "watchpkg/sub.py": "def double(x: int) -> int:\n    return 2 * x\n",
    "watchpkg/data.txt": "payload",
}

# Run in the fresh interpreter after both hooks are registered: what the modules look like.
DESCRIBE = """
import importlib.resources, inspect, json, sys
import watchpkg.sub
if "lazypatch" in sys.modules:  # a finder in front resolved watchpkg: its hooks run at
    sys.modules["lazypatch"].status()  # lazypatch's next chance, status() being one (API.md §4)
print("STATE " + json.dumps({
    "value": watchpkg.VALUE,
    "double": watchpkg.sub.double(21),
    "bound": watchpkg.sub is getattr(watchpkg, "sub", None),
    "loader": type(watchpkg.sub.__loader__).__name__,
    "spec_loader": type(watchpkg.sub.__spec__.loader).__name__,
    "source": "return 2 * x" in inspect.getsource(watchpkg.sub),
    "data": importlib.resources.files("watchpkg").joinpath("data.txt").read_text(),
    "lazypatch": [h for h in HOOKS if h[0] == "lazypatch"],
    "other": [h for h in HOOKS if h[0] == "other"],
}))
"""


def state(proc):
    for line in proc.stdout.splitlines():
        if line.startswith("STATE "):
            return json.loads(line[len("STATE ") :])
    raise AssertionError(f"no state printed\n{proc.stdout}\n{proc.stderr}")


def lazypatch_hooks(code_for_other, order):
    """Source registering lazypatch's hooks and the other tool's (``code_for_other``) in order."""
    ours = """
import lazypatch
for _name in ("watchpkg", "watchpkg.sub"):
    lazypatch.register_hook(_name, lambda m: HOOKS.append(("lazypatch", m.__name__)))
"""
    parts = [ours, code_for_other] if order == "lazypatch first" else [code_for_other, ours]
    return "HOOKS = []\n" + "\n".join(parts) + DESCRIBE


def baseline(pyrun, code_for_other):
    """The modules as the other tool leaves them without lazypatch."""
    return state(pyrun("HOOKS = []\n" + code_for_other + DESCRIBE, files=PACKAGE))


EXPECTED_LAZYPATCH = [["lazypatch", "watchpkg"], ["lazypatch", "watchpkg.sub"]]


def assert_same_as_without_lazypatch(pyrun, code_for_other, order):
    alone = baseline(pyrun, code_for_other)
    both = state(pyrun(lazypatch_hooks(code_for_other, order), files=PACKAGE))
    assert both["lazypatch"] == EXPECTED_LAZYPATCH
    assert {k: v for k, v in both.items() if k != "lazypatch"} == {
        k: v for k, v in alone.items() if k != "lazypatch"
    }
    return both


WRAPT = """
import wrapt
for _name in ("watchpkg", "watchpkg.sub"):
    wrapt.register_post_import_hook(lambda m: HOOKS.append(("other", m.__name__)), _name)
"""


@pytest.mark.parametrize("order", ORDERS)
def test_wrapt_post_import_hooks(pyrun, order):
    both = assert_same_as_without_lazypatch(pyrun, WRAPT, order)
    assert both["other"] == [["other", "watchpkg"], ["other", "watchpkg.sub"]]
    assert both["loader"] == "SourceFileLoader"


TYPEGUARD = """
import typeguard
typeguard.install_import_hook("watchpkg")
"""


@pytest.mark.parametrize("order", ORDERS)
def test_typeguard_import_hook(pyrun, order):
    both = assert_same_as_without_lazypatch(pyrun, TYPEGUARD, order)
    assert both["loader"] == "TypeguardLoader"
    # typeguard's instrumentation is still in the code lazypatch's hooks saw.
    pyrun(
        lazypatch_hooks(TYPEGUARD, order)
        + """
import typeguard
try:
    watchpkg.sub.double("not an int")
except typeguard.TypeCheckError:
    pass
else:
    raise AssertionError("typeguard's check is gone from the code lazypatch's hooks saw")
""",
        files=PACKAGE,
    )


LAZY_LOADER = """
import importlib.util, sys
def _lazy(name):
    spec = importlib.util.find_spec(name)
    spec.loader = importlib.util.LazyLoader(spec.loader)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module
_pkg = _lazy("watchpkg")
HOOKS.append(("other", "loaded lazily, not executed yet"))
"""


def test_lazy_loader_executes_on_first_attribute(pyrun):
    both = assert_same_as_without_lazypatch(pyrun, LAZY_LOADER, "other first")
    assert both["other"] == [["other", "loaded lazily, not executed yet"]]
    assert both["loader"] == "SourceFileLoader"


LEGACY = """
import sys, types, warnings
warnings.simplefilter("ignore", ImportWarning)

class SixStyleImporter:
    '''Only the legacy protocol: find_module / load_module, as six's _SixMetaPathImporter.'''
    def find_module(self, fullname, path=None):
        return self if fullname == "legacy_moved" else None
    def load_module(self, fullname):
        module = sys.modules[fullname] = types.ModuleType(fullname)
        module.__loader__ = self
        module.MOVED = True
        return module

sys.meta_path.%s
"""

# status() is lazypatch's next chance for a hook whose module a finder in front resolved.
LEGACY_IMPORT = """
try:
    import legacy_moved
    result = ["imported", legacy_moved.MOVED, type(legacy_moved.__loader__).__name__]
except ImportError as exc:
    result = ["ImportError", type(exc).__name__]
if "lazypatch" in sys.modules:
    sys.modules["lazypatch"].status()
print("LEGACY " + json.dumps([result, HOOKS]))
"""


@pytest.mark.parametrize(
    "order, where",
    [
        ("lazypatch first", "append(SixStyleImporter())"),
        ("other first", "append(SixStyleImporter())"),
        ("lazypatch first", "insert(0, SixStyleImporter())"),
        ("other first", "insert(0, SixStyleImporter())"),
    ],
)
def test_six_style_legacy_importer(pyrun, order, where):
    """Before 3.12 importlib falls back to ``find_module``; since, it ignores such importers.
    Either way lazypatch changes nothing, and its hook fires iff the module is imported."""
    other = LEGACY % where
    ours = 'import lazypatch\nlazypatch.register_hook("legacy_moved", lambda m: HOOKS.append(m.MOVED))\n'
    parts = [ours, other] if order == "lazypatch first" else [other, ours]

    def run(*parts):
        proc = pyrun("import json\nHOOKS = []\n" + "\n".join(parts) + LEGACY_IMPORT)
        line = next(line for line in proc.stdout.splitlines() if line.startswith("LEGACY "))
        return json.loads(line[len("LEGACY ") :])

    alone, hooks_alone = run(other)
    both, hooks = run(*parts)
    assert both == alone
    if sys.version_info >= (3, 12):
        assert alone[0] == "ImportError"
    else:
        assert alone == ["imported", True, "SixStyleImporter"]
    assert hooks == ([True] if alone[0] == "imported" else [])


# pytest's assertion rewriting of a test module lazypatch watches, in an inner pytest session.
# With lazypatch first, pytest's rewriter is then inserted in front of its finder and resolves
# the test module itself: the hook runs at lazypatch's next chance, here status().
INNER_TEST = """
import json, os, sys

def test_rewritten():
    x = 1
    try:
        assert x + 1 == 3
    except AssertionError as exc:
        message = str(exc)
    module = sys.modules[__name__]
    hooks_at_import = list(HOOKS_SEEN)
    if "lazypatch" in sys.modules:
        sys.modules["lazypatch"].status()
    with open(os.environ["INNER_REPORT"], "w") as f:
        json.dump({
            "message": message,
            "loader": type(module.__loader__).__name__,
            "hooks_at_import": hooks_at_import,
            "hooks": HOOKS_SEEN,
        }, f)

HOOKS_SEEN = []
"""

INNER_CONFTEST = """
import lazypatch, sys
def _hook(module):
    module.HOOKS_SEEN.append(module.__name__)
def pytest_configure(config):
    lazypatch.register_hook("test_inner", _hook)
"""

INNER_MAIN_FIRST = """
import sys
import lazypatch
def _hook(module):
    module.HOOKS_SEEN.append(module.__name__)
lazypatch.register_hook("test_inner", _hook)
import pytest
sys.exit(pytest.main(["-q", "-p", "no:cacheprovider", "-p", "no:xdist", "-p", "no:randomly", "test_inner.py"]))
"""

INNER_MAIN_PLAIN = """
import sys
import pytest
sys.exit(pytest.main(["-q", "-p", "no:cacheprovider", "-p", "no:xdist", "-p", "no:randomly", "test_inner.py"]))
"""


@pytest.mark.parametrize("order", [*ORDERS, "without lazypatch"])
def test_pytest_assertion_rewriting_of_a_watched_test_module(tmp_path, order):
    files = {"test_inner.py": INNER_TEST}
    if order == "other first":  # registered from conftest: pytest's rewriting hook is installed
        files["conftest.py"] = INNER_CONFTEST
    write_modules(tmp_path, files)
    report = tmp_path / "report.json"
    main = INNER_MAIN_FIRST if order == "lazypatch first" else INNER_MAIN_PLAIN
    run_python(
        main, cwd=tmp_path, env={"INNER_REPORT": str(report), "PYTHONDONTWRITEBYTECODE": "1"}
    )
    result = json.loads(report.read_text())
    assert result["loader"] == "AssertionRewritingHook"
    assert "assert (1 + 1) == 3" in result["message"], result["message"]
    expected = [] if order == "without lazypatch" else ["test_inner"]
    assert result["hooks"] == expected
    assert result["hooks_at_import"] == (expected if order == "other first" else [])


def test_a_finder_inserted_in_front_of_lazypatch_after_it(pyrun):
    """Any finder inserted in front of lazypatch's after it, resolving a watched module on the
    very next import: it stays in front, and the hook fires once, at lazypatch's next chance (the
    next import that reaches its finder)."""
    proc = pyrun(
        """
        import importlib.machinery, sys, lazypatch
        fired = []
        lazypatch.register_hook("target", fired.append)

        class InFront:
            def find_spec(self, name, path=None, target=None):
                if name == "target":
                    return importlib.machinery.PathFinder.find_spec(name, path)
                return None

        front = InFront()
        sys.meta_path.insert(0, front)
        import target
        assert sys.meta_path[0] is front and fired == [], (sys.meta_path, fired)
        import colorsys
        assert fired == [target], fired
        lazypatch.status()
        import decimal
        assert fired == [target], fired
        """,
        files={"target.py": "VALUE = 1\n"},
    )
    assert proc.returncode == 0


OTEL_APP = """
import json, os, sys
if os.environ.get("IMPORT_AUTO"):
    import lazypatch.auto
import lazypatch, flask, urllib3
HOOKS = []
lazypatch.register_hook("watchpkg.sub", lambda m: HOOKS.append(m.__name__))
import watchpkg.sub
app = flask.Flask("app")

@app.route("/x")
def x():
    return "ok"

response = app.test_client().get("/x")
print("APP", json.dumps({
    "status": response.status_code,
    "body": response.get_data(as_text=True),
    "hooks": HOOKS,
    "auto": "lazypatch.auto" in sys.modules,
    "double": watchpkg.sub.double(2),
}), flush=True)
"""


@pytest.mark.slow
@pytest.mark.parametrize("order", ORDERS)
def test_opentelemetry_instrument(tmp_path, order):
    """``opentelemetry-instrument`` (OpenTelemetry's own sitecustomize, which instruments at
    start-up by importing each instrumentation, and with it its library) beside lazypatch."""
    command = BIN / "opentelemetry-instrument"
    if not command.exists():
        pytest.skip("opentelemetry-instrument is not installed")
    write_modules(tmp_path, {"main.py": OTEL_APP, **PACKAGE})
    env = dict(os.environ, OTEL_TRACES_EXPORTER="none", PYTHONPATH=str(tmp_path))
    # opentelemetry-distro's defaults for the other signals: OTLP over gRPC, not installed here
    env.update(OTEL_METRICS_EXPORTER="none", OTEL_LOGS_EXPORTER="none")
    if order == "lazypatch first":  # lazypatch's sitecustomize runs, then OpenTelemetry's
        argv = [command, BIN / "lazypatch", "run", "--", sys.executable, "main.py"]
    else:  # OpenTelemetry instruments at start-up; the application imports lazypatch.auto
        argv = [command, sys.executable, "main.py"]
        env["IMPORT_AUTO"] = "1"
    proc = subprocess.run(
        [str(a) for a in argv], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 0, proc.stderr
    (app,) = [json.loads(line[4:]) for line in proc.stdout.splitlines() if line.startswith("APP ")]
    assert app == {
        "status": 200,
        "body": "ok",
        "hooks": ["watchpkg.sub"],
        "auto": True,
        "double": 4,
    }
    assert "Traceback" not in proc.stderr and "failed" not in proc.stderr, proc.stderr


def test_an_opentelemetry_instrumentation_imported_before_its_library(pyrun):
    """``from opentelemetry.instrumentation.urllib3 import ...`` imports urllib3 from inside that
    module: lazypatch's adapter instruments once the module has finished, not half-built."""
    pytest.importorskip("opentelemetry.instrumentation.urllib3")
    proc = pyrun(
        """
        import lazypatch.auto
        from opentelemetry.instrumentation.urllib3 import URLLib3Instrumentor
        import urllib3
        assert URLLib3Instrumentor().is_instrumented_by_opentelemetry, "not instrumented"
        """,
        env={"OTEL_TRACES_EXPORTER": "none", "LAZYPATCH_LOG_LEVEL": "WARNING"},
    )
    assert "lazypatch" not in proc.stderr, proc.stderr


DDTRACE = """
from ddtrace.internal.module import ModuleWatchdog
for _name in ("watchpkg", "watchpkg.sub"):
    ModuleWatchdog.register_module_hook(_name, lambda m: HOOKS.append(("other", m.__name__)))
"""


@pytest.mark.parametrize("order", ORDERS)
def test_ddtrace_module_watchdog(pyrun, order):
    if importlib.util.find_spec("ddtrace") is None:
        pytest.skip("ddtrace is not installed here (a benchmark-only dependency)")
    both = assert_same_as_without_lazypatch(pyrun, DDTRACE, order)
    assert both["other"] == [["other", "watchpkg"], ["other", "watchpkg.sub"]]


EDITABLE_PROJECT = {
    "pyproject.toml": """
        [build-system]
        requires = ["setuptools>=64"]
        build-backend = "setuptools.build_meta"

        [project]
        name = "edpkg"
        version = "0.1"

        [tool.setuptools]
        packages = ["edpkg"]

        [tool.setuptools.package-data]
        edpkg = ["data.txt"]
    """,
    # A stray top-level module: setuptools then maps the package with a meta-path finder
    # rather than putting the project directory on sys.path.
    "stray.py": "",
    "edpkg/__init__.py": "VALUE = 'editable'\n",
    "edpkg/sub.py": "def double(x):\n    return 2 * x\n",
    "edpkg/data.txt": "payload",
}

EDITABLE_CHECK = """
import importlib.resources, json, sys
HOOKS = []
if sys.argv[1] == "with lazypatch":
    import lazypatch
    for name in ("edpkg", "edpkg.sub"):
        lazypatch.register_hook(name, lambda m: HOOKS.append(m.__name__))
import edpkg.sub
print(json.dumps({
    "file": edpkg.sub.__file__,
    "loader": type(edpkg.sub.__loader__).__name__,
    "double": edpkg.sub.double(4),
    "data": importlib.resources.files("edpkg").joinpath("data.txt").read_text(),
    "editable_finder": any("editable" in type(f).__module__ or "editable" in repr(f)
                           for f in sys.meta_path),
    "stray": importlib.util.find_spec("stray") is not None,
    "hooks": HOOKS,
}))
"""


@pytest.mark.slow
def test_setuptools_editable_install(tmp_path):
    """``pip install -e`` of a generated project into a throw-away venv that sees this
    environment's packages (lazypatch, setuptools, pip) through a ``.pth`` file; the project is
    then imported through setuptools' editable finder, with and without lazypatch watching it."""
    project = tmp_path / "project"
    write_modules(project, EDITABLE_PROJECT)
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    python = venv / "bin" / "python"
    if not python.exists():
        pytest.skip("no POSIX venv layout here")
    site = run_python(
        "import sysconfig; print(sysconfig.get_paths()['purelib'])", python=str(python)
    )
    ours = run_python("import sysconfig; print(sysconfig.get_paths()['purelib'])")
    # addsitedir, not a bare path: this environment's own .pth files (lazypatch is editable
    # here too) must be processed as well.
    line = f"import site; site.addsitedir({ours.stdout.strip()!r})\n"
    Path(site.stdout.strip(), "parent_env.pth").write_text(line)
    install = subprocess.run(
        [
            str(python),
            "-m",
            "pip",
            "install",
            "-q",
            "--no-deps",
            "--no-build-isolation",
            "--no-index",
            "-e",
            str(project),
        ],
        capture_output=True,
        text=True,
        timeout=240,
        env={**os.environ, "PIP_DISABLE_PIP_VERSION_CHECK": "1"},
    )
    assert install.returncode == 0, install.stderr
    outside = tmp_path / "elsewhere"  # not the project directory: imports go through the install
    outside.mkdir()
    results = {}
    for mode in ("without lazypatch", "with lazypatch"):
        proc = subprocess.run(
            [str(python), "-c", EDITABLE_CHECK, mode],
            cwd=outside,
            capture_output=True,
            text=True,
            timeout=60,
            env={k: v for k, v in os.environ.items() if k != "PYTHONPATH"},
        )
        assert proc.returncode == 0, proc.stderr
        results[mode] = json.loads(proc.stdout)
    alone, both = results["without lazypatch"], results["with lazypatch"]
    assert alone["file"].startswith(str(project)) and alone["data"] == "payload"
    assert alone["editable_finder"] and not alone["stray"]  # setuptools' finder, not a path
    assert alone["hooks"] == [] and both.pop("hooks") == ["edpkg", "edpkg.sub"]
    alone.pop("hooks")
    assert both == alone
