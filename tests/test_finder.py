"""The finder and its loader proxy: invisible after import, thread-safe, cheap when not watching."""

import os
import subprocess
import sys
import zipfile

import pytest

RESOURCE_PKG = {
    "respkg/__init__.py": "def where():\n    return 'respkg'\n",
    "respkg/data.txt": "payload\n",
    "respkg/__main__.py": "print('main of respkg ran')\n",
}


def test_loader_attributes_are_the_original_objects(pyfacts):
    facts = pyfacts(
        """
        import sys, lazypatch
        from importlib.machinery import SourceFileLoader
        lazypatch.register_hook("respkg", lambda m: None)
        import respkg
        report(
            loader=repr(type(respkg.__loader__)),
            loader_is_importlibs=type(respkg.__loader__) is SourceFileLoader,
            spec_loader_is_loader=respkg.__spec__.loader is respkg.__loader__,
            spec=repr(type(respkg.__spec__)),
            spec_is_importlibs=type(respkg.__spec__) is type(sys.__spec__),
        )
        """,
        files=RESOURCE_PKG,
    )
    assert facts == {
        "loader": "<class '_frozen_importlib_external.SourceFileLoader'>",
        "loader_is_importlibs": True,
        "spec_loader_is_loader": True,
        "spec": "<class '_frozen_importlib.ModuleSpec'>",
        "spec_is_importlibs": True,
    }


def test_resources_source_and_data_work_on_watched_modules(pyfacts):
    facts = pyfacts(
        """
        import importlib.resources, inspect, pkgutil, lazypatch
        fired = []
        lazypatch.register_hook("respkg", fired.append)
        data = pkgutil.get_data("respkg", "data.txt").decode()
        import respkg
        resource = importlib.resources.files("respkg").joinpath("data.txt").read_text()
        report(
            data=data,
            resource=resource,
            source=inspect.getsource(respkg.where).splitlines()[0],
            fired=len(fired),
        )
        """,
        files=RESOURCE_PKG,
    )
    assert facts == {
        "data": "payload\n",
        "resource": "payload\n",
        "source": "def where():",
        "fired": 1,
    }


def test_runpy_and_python_dash_m(pyrun, tmp_path):
    pyrun(
        """
        import runpy, lazypatch
        fired = []
        lazypatch.register_hook("respkg", fired.append)
        lazypatch.register_hook("runme", fired.append)
        ns = runpy.run_module("runme", run_name="not_main")
        assert ns["VALUE"] == "ran" and fired == [], (ns.get("VALUE"), fired)
        runpy.run_module("respkg", run_name="__main__")
        assert [m.__name__ for m in fired] == ["respkg"], fired  # the package, not its __main__
        """,
        files={**RESOURCE_PKG, "runme.py": "VALUE = 'ran'\n"},
    )
    env = dict(os.environ, PYTHONPATH=str(tmp_path))
    main = subprocess.run(
        [
            sys.executable,
            "-c",
            "import lazypatch, runpy, sys;"
            "lazypatch.register_hook('respkg', lambda m: print('hook', m.__name__));"
            "sys.argv = ['respkg']; runpy.run_module('respkg', run_name='__main__', alter_sys=True)",
        ],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    assert main.stdout.splitlines() == ["hook respkg", "main of respkg ran"]


def test_python_dash_m_with_a_hook_from_sitecustomize(pyrun, tmp_path):
    pyrun(
        "",
        files={
            **RESOURCE_PKG,
            "sitecustomize.py": (
                "import lazypatch\nlazypatch.register_hook('respkg', lambda m: print('hook', m.__name__))\n"
            ),
        },
    )
    env = dict(os.environ, PYTHONPATH=str(tmp_path))
    proc = subprocess.run(
        [sys.executable, "-m", "respkg"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    assert proc.stdout.splitlines() == ["hook respkg", "main of respkg ran"]


def test_namespace_package(pyfacts, tmp_path):
    facts = pyfacts(
        """
        import lazypatch
        fired = []
        lazypatch.register_hook("nspkg", lambda m: fired.append(list(m.__path__)))
        lazypatch.register_hook("nspkg.leaf", lambda m: fired.append(m.LEAF))
        import nspkg.leaf
        report(
            fired=fired,
            spec=type(nspkg.__spec__).__name__,
            spec_loader_is_loader=nspkg.__spec__.loader is nspkg.__loader__,
        )
        """,
        files={"nspkg/leaf.py": "LEAF = 'leaf'\n"},
    )
    path, leaf = facts.pop("fired")
    assert str(tmp_path / "nspkg") in path and leaf == "leaf", (path, leaf)
    assert facts == {"spec": "ModuleSpec", "spec_loader_is_loader": True}


def test_module_inside_a_zip_file(pyfacts, tmp_path):
    archive = tmp_path / "bundle.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr("zipped.py", "WHERE = 'zip'\n")
    facts = pyfacts(
        f"""
        import sys, lazypatch
        sys.path.insert(0, {str(archive)!r})
        fired = []
        lazypatch.register_hook("zipped", lambda m: fired.append(m.WHERE))
        import zipped
        report(
            fired=fired,
            loader=type(zipped.__loader__).__name__,
            spec_loader_is_loader=zipped.__spec__.loader is zipped.__loader__,
        )
        """
    )
    assert facts == {"fired": ["zip"], "loader": "zipimporter", "spec_loader_is_loader": True}


def test_extension_module_is_keyed_by_its_import_name(pyfacts):
    facts = pyfacts(
        """
        import sys, lazypatch
        assert "_decimal" not in sys.modules
        fired = []
        lazypatch.register_hook("_decimal", lambda m: fired.append(("_decimal", m.Decimal.__name__)))
        lazypatch.register_hook("decimal", lambda m: fired.append(("decimal", m.__name__)))
        import decimal
        report(fired=fired, loader=type(sys.modules["_decimal"].__loader__).__name__)
        """
    )
    assert facts["fired"] == [["_decimal", "Decimal"], ["decimal", "decimal"]]
    assert facts["loader"] in ("ExtensionFileLoader", "BuiltinImporter")


def test_lazy_loader(pyfacts):
    facts = pyfacts(
        """
        import importlib.util, sys, lazypatch
        fired = []
        lazypatch.register_hook("target", lambda m: fired.append(m.VALUE))
        spec = importlib.util.find_spec("target")
        loader = importlib.util.LazyLoader(spec.loader)
        spec.loader = loader
        module = importlib.util.module_from_spec(spec)
        sys.modules["target"] = module
        loader.exec_module(module)
        before_use = list(fired)
        report(
            before_use=before_use,
            value=module.VALUE,
            fired=fired,
            loader=type(module.__loader__).__name__,
        )
        """,
        files={"target.py": "VALUE = 42\n"},
    )
    assert facts == {"before_use": [], "value": 42, "fired": [42], "loader": "SourceFileLoader"}


def test_no_warning_under_dash_w_error(pyrun):
    proc = pyrun(
        """
        import lazypatch, importlib, sys
        lazypatch.register_hook("respkg", lambda m: None)
        lazypatch.register_hook("nspkg", lambda m: None)
        lazypatch.register_hook("decimal", lambda m: None)
        import respkg, nspkg.leaf, decimal
        importlib.reload(respkg)
        """,
        files={**RESOURCE_PKG, "nspkg/leaf.py": ""},
        args=("-W", "error"),
    )
    assert proc.stderr == ""


@pytest.mark.skipif(sys.version_info < (3, 11), reason="contract holds from Python 3.11")
def test_traceback_of_a_failing_target_has_no_lazypatch_frames(pyrun):
    proc = pyrun(
        """
        import lazypatch
        lazypatch.register_hook("broken", print)
        import broken
        """,
        files={"broken.py": "def explode():\n    raise ValueError('boom')\nexplode()\n"},
        check=False,
    )
    assert proc.returncode == 1
    assert "ValueError: boom" in proc.stderr
    assert "lazypatch" not in proc.stderr and "frozen importlib" not in proc.stderr


def test_sixteen_threads_import_one_watched_module(pyfacts):
    facts = pyfacts(
        """
        import sys, threading, lazypatch
        calls = []
        def hook(module):
            calls.append(1)
            module.PATCHED = True
        lazypatch.register_hook("slowmod", hook)
        barrier = threading.Barrier(16)
        results = []
        def worker():
            barrier.wait()
            import slowmod
            results.append(getattr(slowmod, "PATCHED", False))
        threads = [threading.Thread(target=worker) for _ in range(16)]
        for t in threads: t.start()
        for t in threads: t.join(30)
        report(hook_calls=len(calls), imported=len(results), patched=all(results))
        """,
        files={"slowmod.py": "import time\ntime.sleep(0.05)\n"},
    )
    assert facts == {"hook_calls": 1, "imported": 16, "patched": True}


def test_registration_racing_an_import_fires_exactly_once(pyfacts):
    facts = pyfacts(
        """
        import sys, threading, lazypatch
        counts = []
        for i in range(60):
            name = f"race{i}"
            seen = []
            start = threading.Barrier(2)
            def register():
                start.wait()
                lazypatch.register_hook(name, seen.append)
            def importer():
                start.wait()
                __import__(name)
            threads = [threading.Thread(target=register), threading.Thread(target=importer)]
            for t in threads: t.start()
            for t in threads: t.join(10)
            counts.append(len(seen))
        report(fired={f"race{i}": n for i, n in enumerate(counts) if n != 1})
        """,
        files={f"race{i}.py": "X = [i * i for i in range(2000)]\n" for i in range(60)},
    )
    assert facts == {"fired": {}}  # each module's hook once, whoever won the race


def test_package_init_joining_a_thread_that_imports_a_watched_submodule(pyfacts):
    facts = pyfacts(
        """
        import lazypatch
        fired = []
        lazypatch.register_hook("tpkg.worker", lambda m: fired.append(m.NAME))
        import tpkg
        report(result=tpkg.RESULT, fired=fired)
        """,
        files={
            "tpkg/__init__.py": """
                import importlib, threading
                RESULT = []
                def load():
                    worker = importlib.import_module("tpkg.worker")
                    RESULT.append(worker.NAME)
                t = threading.Thread(target=load)
                t.start()
                t.join(20)
            """,
            "tpkg/worker.py": "NAME = 'worker'\n",
        },
        timeout=60,
    )
    assert facts == {"result": ["worker"], "fired": ["worker"]}


def test_fast_path_asks_no_other_finder_for_unwatched_names():
    import lazypatch
    from lazypatch._hooks import _registry

    lazypatch.register_hook("some.watched.name", lambda m: None)
    calls = []

    class Counting:
        def find_spec(self, name, path=None, target=None):
            calls.append(name)
            return None

    finder = _registry.finder
    saved = sys.meta_path[:]
    sys.meta_path[:] = [finder, Counting()]
    try:
        for name in ("unwatched_a", "unwatched.b", "json"):
            assert finder.find_spec(name, None) is None
        assert calls == []
        finder.find_spec("some.watched.name", None)
        assert calls == ["some.watched.name"]
    finally:
        sys.meta_path[:] = saved


def test_fast_path_is_constant_time_code():
    """No loop, allocation or lock on the unwatched path: the dict test and the length check of
    ``sys.modules`` (inspected on the bytecode, so the test cannot be fooled by timing)."""
    import dis

    from lazypatch._finder import Finder

    instructions = list(dis.get_instructions(Finder.find_spec))
    first_return = next(i for i, ins in enumerate(instructions) if ins.opname.startswith("RETURN"))
    fast = [ins.opname for ins in instructions[: first_return + 1]]
    assert "CONTAINS_OP" in fast or "COMPARE_OP" in fast
    assert not any(
        op.startswith(("BUILD_", "FOR_ITER", "SETUP_WITH", "BEFORE_WITH")) for op in fast
    )


def test_a_replaced_meta_path_is_left_as_it_is(pyrun):
    """lazypatch never moves its finder back in front: a finder put before it keeps its place,
    and watched modules it does not resolve still go through lazypatch's finder."""
    pyrun(
        """
        import sys, lazypatch
        from lazypatch._hooks import _registry
        fired = []
        lazypatch.register_hook("target", fired.append)

        class Foreign:
            def find_spec(self, name, path=None, target=None):
                return None

        foreign = Foreign()
        sys.meta_path = [foreign, *sys.meta_path]
        import colorsys, target
        assert type(sys.meta_path) is list
        assert sys.meta_path[:2] == [foreign, _registry.finder], sys.meta_path
        assert fired == [target], fired
        """,
        files={"target.py": ""},
    )


# CPython's test_pkgutil does exactly this with a catch-all importer: under an earlier lazypatch,
# the `del` removed lazypatch's finder and left the catch-all installed for the rest of the run.
PLAIN_LIST = """
import importlib.abc, importlib.machinery, sys
import lazypatch
from lazypatch._hooks import _registry

fired = []
lazypatch.register_hook("json", lambda m: fired.append(getattr(m, "FAKE", "real")))

class CatchAll(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    def find_spec(self, name, path=None, target=None):
        return importlib.machinery.ModuleSpec(name, self)
    def create_module(self, spec):
        return None
    def exec_module(self, module):
        module.FAKE = "fake"

before = list(sys.meta_path)
finder = CatchAll()
sys.meta_path.insert(0, finder)
assert sys.meta_path[0] is finder and sys.meta_path[1:] == before
import json
assert json.FAKE == "fake" and fired == []
%s
assert sys.meta_path == before and type(sys.meta_path) is list, sys.meta_path
assert sys.meta_path[0] is _registry.finder
%s
assert fired == ["fake"], fired
del sys.modules["json"]
import json
assert fired == ["fake", "real"], fired
"""


@pytest.mark.parametrize(
    "remove", ["del sys.meta_path[0]", "assert sys.meta_path.pop(0) is finder"]
)
@pytest.mark.parametrize(
    "chance", ["import colorsys", "lazypatch.status()", "lazypatch.register_hook('x', print)"]
)
def test_meta_path_stays_a_plain_list_and_bypassed_hooks_run_at_the_next_chance(
    pyrun, remove, chance
):
    pyrun(PLAIN_LIST % (remove, chance))


def test_a_hook_on_a_builtin_module_keeps_its_contents(pyrun):
    """BuiltinImporter is a class used as the loader: its create_module is the one to call."""
    pyrun(
        """
        import lazypatch
        seen = []
        for name in ("itertools", "gc", "atexit", "_functools"):
            lazypatch.register_hook(name, seen.append)
        import collections, itertools, gc
        assert itertools.chain and gc.collect and collections.OrderedDict
        """
    )


# Every stdlib module this interpreter has, watched by a no-op hook from a sitecustomize, as a
# user of `lazypatch run` might; each module is then imported and described.
STDLIB_NAMES = """
import sys
def stdlib_names():
    names = getattr(sys, "stdlib_module_names", None)
    if names is None:  # Python 3.9
        import pkgutil, sysconfig
        names = set(sys.builtin_module_names)
        names.update(m.name for m in pkgutil.iter_modules([sysconfig.get_paths()["stdlib"]]))
    return sorted(names)
"""

WATCH_ALL = (
    STDLIB_NAMES
    + """
import lazypatch.auto, lazypatch
for name in stdlib_names():
    lazypatch.register_hook(name, lambda module: None)
"""
)

DESCRIBE = (
    STDLIB_NAMES
    + """
import io, json, contextlib, warnings
SKIP = {"antigravity", "this", "idlelib", "tkinter", "turtle", "turtledemo", "test", "__hello__",
        "__phello__", "lib2to3", "ensurepip", "venv", "pydoc_data", "rlcompleter", "readline"}
described = {}
for name in stdlib_names():
    if name in SKIP:
        continue
    with contextlib.redirect_stdout(io.StringIO()), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            __import__(name)
        except Exception:
            continue
for name, module in list(sys.modules.items()):
    if name.partition(".")[0] in SKIP or not hasattr(module, "__dict__"):
        continue
    described[name] = {
        "file": getattr(module, "__file__", None),
        "names": sorted(k for k in vars(module) if not k.startswith("_")),
    }
print(json.dumps(described))
"""
)


def test_a_noop_hook_on_every_stdlib_module_changes_no_module(pyrun, tmp_path):
    """Bare, then with a sitecustomize watching every stdlib name: the interpreter starts, and
    every module keeps its __file__ (frozen ones included, 3.11+) and its public names."""
    import json

    bare = json.loads(pyrun(DESCRIBE).stdout)
    site = tmp_path / "site"
    site.mkdir()
    (site / "sitecustomize.py").write_text(WATCH_ALL)
    watched = json.loads(pyrun(DESCRIBE, env={"PYTHONPATH": str(site)}).stdout)
    assert "lazypatch._hooks" in watched
    changed = {
        name: (described, watched.get(name))
        for name, described in bare.items()
        if watched.get(name, described) != described
    }
    assert changed == {}
    assert set(bare) - set(watched) == set()
