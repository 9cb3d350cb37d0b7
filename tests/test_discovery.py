"""Discovery: entry points read without importlib.metadata, triggers, shadowing, arming, isolation.

Distributions are throwaway ``*.dist-info`` directories in a temporary directory put on
PYTHONPATH; everything that arms runs in a fresh interpreter.
"""

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from lazypatch import _config, _discovery, _metadata


def make_dist(
    root, name, version="1.0", entry_points=None, requires=(), top_level=None, record=None
):
    """A minimal installed distribution: ``<name>-<version>.dist-info`` with METADATA etc."""
    path = Path(root) / f"{name.replace('-', '_')}-{version}.dist-info"
    path.mkdir(parents=True)
    lines = ["Metadata-Version: 2.1", f"Name: {name}", f"Version: {version}"]
    lines += [f"Requires-Dist: {requirement}" for requirement in requires]
    (path / "METADATA").write_text("\n".join(lines) + "\n\nRequires-Dist: not-a-header\n")
    if entry_points:
        text = ""
        for group, entries in entry_points.items():
            text += f"[{group}]\n" + "".join(f"{k} = {v}\n" for k, v in entries.items()) + "\n"
        (path / "entry_points.txt").write_text(text)
    if top_level is not None:
        (path / "top_level.txt").write_text("\n".join(top_level) + "\n")
    if record is not None:
        (path / "RECORD").write_text("".join(f"{line},,\n" for line in record))
    return path


def discover(path, **environ):
    return {(e.source, e.name): e for e in _discovery.discover(_config.load(environ), path=path)}


# -- reading metadata (in process: pure functions of a directory) ----------------------------


def test_first_distribution_of_a_name_on_the_path_wins(tmp_path):
    first, second = tmp_path / "a", tmp_path / "b"
    make_dist(first, "My.Lib", "2.0", {"lazypatch.hooks": {"json": "one:hook"}})
    make_dist(second, "my_lib", "1.0", {"lazypatch.hooks": {"csv": "two:hook"}})
    make_dist(second, "other", "1.0", {"lazypatch.hooks": {"zlib": "three:hook"}})
    found = discover([str(first), str(second), str(tmp_path / "missing")])
    assert set(found) == {("lazypatch", "json"), ("lazypatch", "zlib")}
    dists = _metadata.distributions([str(first), str(second)])
    assert dists["my_lib"].version == "2.0"


def test_entry_points_txt_parsing(tmp_path):
    dist = make_dist(tmp_path, "pkg")
    (dist / "entry_points.txt").write_text(
        textwrap.dedent(
            """\
            # comment
            [console_scripts]
            tool = pkg.cli:main

            [lazypatch.instrumentors]
            ; another comment
            mylib=pkg.inst:MyLibInstrumentor [extra1]
              other  =  pkg.other:Other
            """
        )
    )
    groups = _metadata.distributions([str(tmp_path)])["pkg"].entry_points()
    assert groups == {
        "lazypatch.instrumentors": [
            ("mylib", "pkg.inst:MyLibInstrumentor"),
            ("other", "pkg.other:Other"),
        ]
    }


def test_otel_trigger_from_instruments_requirement_and_top_level(tmp_path):
    otel = {"opentelemetry_instrumentor": {"mylib": "inst:I"}}
    make_dist(tmp_path, "inst", entry_points=otel, requires=["My-Lib>=1; extra == 'instruments'"])
    make_dist(tmp_path, "my_lib", "2.0", top_level=["mylib_core"])
    entry = discover([str(tmp_path)])["opentelemetry", "mylib"]
    assert entry.trigger == "mylib_core"
    assert entry.requirement == "My-Lib>=1"


def test_otel_trigger_from_record_and_instruments_any(tmp_path):
    otel = {"opentelemetry_instrumentor": {"kafka": "inst:I"}}
    requires = [
        'kafka-python>=2; extra == "instruments-any"',
        'kafka-python-ng>=2; extra == "instruments-any"',
        "packaging>=20",
    ]
    make_dist(tmp_path, "inst", entry_points=otel, requires=requires)
    record = ["kafkang/__init__.py", "kafkang/client.py", "kafka_python_ng-2.0.dist-info/RECORD"]
    make_dist(tmp_path, "kafka-python-ng", "2.0", record=record)
    entry = discover([str(tmp_path)])["opentelemetry", "kafka"]
    assert entry.trigger == "kafkang"
    assert entry.requirement == "kafka-python>=2, kafka-python-ng>=2"


def test_starlette_shadows_opentelemetrys_fastapi_too(tmp_path):
    ours = {"lazypatch.instrumentors": {"starlette": "ours:S"}}
    theirs = {"opentelemetry_instrumentor": {"fastapi": "theirs:F", "starlette": "theirs:S"}}
    make_dist(tmp_path, "ours", entry_points=ours)
    make_dist(tmp_path, "theirs", entry_points=theirs)
    found = discover([str(tmp_path)])
    assert found["lazypatch", "starlette"].state == "armed"
    for name in ("fastapi", "starlette"):
        entry = found["opentelemetry", name]
        assert entry.state == "shadowed"
        assert "LAZYPATCH_DISABLED_INSTRUMENTATIONS=lazypatch:starlette" in entry.reason
    found = discover([str(tmp_path)], LAZYPATCH_DISABLED_INSTRUMENTATIONS="lazypatch:starlette")
    assert found["opentelemetry", "fastapi"].state == "armed"
    assert found["opentelemetry", "starlette"].state == "armed"


@pytest.mark.parametrize(("name", "trigger"), [("urllib", "urllib.request"), ("mylib", "mylib")])
def test_otel_trigger_falls_back_to_the_entry_point_name(tmp_path, name, trigger):
    make_dist(tmp_path, "inst", entry_points={"opentelemetry_instrumentor": {name: "inst:I"}})
    assert discover([str(tmp_path)])["opentelemetry", name].trigger == trigger


def test_states_under_configuration(tmp_path):
    make_dist(tmp_path, "ours", entry_points={"lazypatch.instrumentors": {"a": "o:A", "b": "o:B"}})
    make_dist(
        tmp_path, "theirs", entry_points={"opentelemetry_instrumentor": {"a": "t:A", "c": "t:C"}}
    )

    def states(**environ):
        return {key: e.state for key, e in discover([str(tmp_path)], **environ).items()}

    assert states() == {
        ("lazypatch", "a"): "armed",
        ("lazypatch", "b"): "armed",
        ("opentelemetry", "a"): "shadowed",
        ("opentelemetry", "c"): "armed",
    }
    assert (
        states(LAZYPATCH_DISABLED_INSTRUMENTATIONS="lazypatch:a")[("opentelemetry", "a")] == "armed"
    )
    assert set(states(OTEL_PYTHON_DISABLED_INSTRUMENTATIONS="a").values()) == {"armed", "disabled"}
    assert set(states(LAZYPATCH_DISABLED_INSTRUMENTATIONS="*").values()) == {"disabled"}
    assert states(LAZYPATCH_ENABLED_INSTRUMENTATIONS="c") == {
        ("lazypatch", "a"): "disabled",
        ("lazypatch", "b"): "disabled",
        ("opentelemetry", "a"): "disabled",
        ("opentelemetry", "c"): "armed",
    }
    off = states(LAZYPATCH_OTEL_INSTRUMENTORS="0")
    assert off[("opentelemetry", "a")] == off[("opentelemetry", "c")] == "disabled"
    assert off[("lazypatch", "a")] == "armed"


# -- arming, in fresh interpreters -----------------------------------------------------------

LIBRARY = {"mylib.py": "instrumented_by = []\n"}
OURS = {
    "ours_inst.py": """
        class MyLibInstrumentor:
            def instrument(self):
                import mylib
                mylib.instrumented_by.append("lazypatch")
        """
}
THEIRS = {
    "otel_inst.py": """
        from opentelemetry.instrumentation.instrumentor import BaseInstrumentor

        class MyLibInstrumentor(BaseInstrumentor):
            def instrumentation_dependencies(self):
                return ("mylib < 1.0",)

            def _instrument(self, **kwargs):
                import mylib
                mylib.instrumented_by.append("opentelemetry")

            def _uninstrument(self, **kwargs):
                pass
        """,
    "otel_hooks.py": """
        import mylib
        def pre():
            mylib.instrumented_by.append("pre")
        def post():
            mylib.instrumented_by.append("post")
        """,
}


def ours_dist(root):
    make_dist(
        root,
        "ours",
        entry_points={"lazypatch.instrumentors": {"mylib": "ours_inst:MyLibInstrumentor"}},
    )


def theirs_dist(root, version="0.5"):
    make_dist(
        root,
        "otel-inst-mylib",
        entry_points={
            "opentelemetry_instrumentor": {"mylib": "otel_inst:MyLibInstrumentor"},
            "opentelemetry_pre_instrument": {"pre": "otel_hooks:pre"},
            "opentelemetry_post_instrument": {"post": "otel_hooks:post"},
        },
        requires=["mylib<1.0; extra == 'instruments'"],
    )
    make_dist(root, "mylib", version)


def listing(tmp_path, *args, env=None):
    """``lazypatch list --json`` with ``tmp_path`` on PYTHONPATH: (source, name) -> row."""
    full = dict(os.environ, PYTHONPATH=str(tmp_path), **(env or {}))
    proc = subprocess.run(
        [sys.executable, "-m", "lazypatch", "list", "--json", *args],
        env=full,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    rows = map(json.loads, proc.stdout.splitlines())
    return {(r["source"] if r["kind"] == "instrumentor" else "hook", r["name"]): r for r in rows}


def test_otel_instrumentor_is_armed_lazily_with_pre_and_post_hooks(tmp_path, pyrun):
    theirs_dist(tmp_path)
    pyrun(
        """
        import sys
        import lazypatch.auto
        assert "otel_inst" not in sys.modules and "mylib" not in sys.modules
        assert not any(m.startswith("opentelemetry.instrumentation") for m in sys.modules)
        import mylib
        assert mylib.instrumented_by == ["pre", "opentelemetry", "post"], mylib.instrumented_by
        """,
        files={**LIBRARY, **THEIRS},
    )


def test_otel_instrumentor_outside_its_version_range_is_skipped(tmp_path, pyrun):
    theirs_dist(tmp_path, version="2.0")
    pyrun(
        """
        import sys
        import lazypatch.auto
        import mylib
        assert mylib.instrumented_by == [], mylib.instrumented_by
        assert "otel_inst" not in sys.modules, "the skipped instrumentor was imported"
        """,
        files={**LIBRARY, **THEIRS},
    )
    row = listing(tmp_path, "--import")["opentelemetry", "mylib"]
    assert row["state"] == "skipped"
    assert "mylib<1.0" in row["reason"] and "2.0" in row["reason"]
    assert row["installed"] == "mylib 2.0"
    assert listing(tmp_path)["opentelemetry", "mylib"]["state"] == "requirement unmet"


def test_our_instrumentation_with_an_unmet_requirement_is_listed_as_such(tmp_path):
    make_dist(tmp_path, "mylib", version="1.5")
    make_dist(
        tmp_path,
        "ours",
        entry_points={"lazypatch.instrumentors": {"mylib": "needs_two:MyLibInstrumentor"}},
    )
    (tmp_path / "mylib.py").write_text("")
    (tmp_path / "needs_two.py").write_text(
        "import lazypatch\n\n"
        "class MyLibInstrumentor(lazypatch.Instrumentor):\n"
        "    targets = ('mylib',)\n"
        "    requirements = ('mylib >= 2',)\n"
    )
    row = listing(tmp_path)["lazypatch", "mylib"]
    assert (row["state"], row["installed"]) == ("requirement unmet", "mylib 1.5"), row
    assert "mylib >= 2" in row["reason"] and "1.5" in row["reason"], row
    row = listing(tmp_path, "--import")["lazypatch", "mylib"]
    assert row["state"] == "skipped" and "mylib >= 2" in row["reason"], row


@pytest.mark.parametrize(
    ("disabled", "expected"),
    [
        (None, ["lazypatch"]),
        ("lazypatch:mylib", ["pre", "opentelemetry", "post"]),
        ("opentelemetry:mylib", ["lazypatch"]),
        ("mylib", []),
    ],
)
def test_ours_shadows_theirs_and_either_can_be_chosen(tmp_path, pyrun, disabled, expected):
    ours_dist(tmp_path)
    theirs_dist(tmp_path)
    env = {"LAZYPATCH_DISABLED_INSTRUMENTATIONS": disabled}
    pyrun(
        "import lazypatch.auto, mylib\n"
        f"assert mylib.instrumented_by == {expected!r}, mylib.instrumented_by\n",
        files={**LIBRARY, **OURS, **THEIRS},
        env=env,
    )
    if disabled is None:
        rows = listing(tmp_path)
        assert rows["lazypatch", "mylib"]["state"] == "armed"
        assert rows["opentelemetry", "mylib"]["state"] == "shadowed"
        assert "lazypatch:mylib" in rows["opentelemetry", "mylib"]["reason"]


FAILING = {
    "good.py": "done = []\n",
    "broken.py": "",
    "raising.py": "",
    "theirs_broken.py": "",
    "insts.py": """
        class Good:
            def instrument(self):
                import good
                good.done.append(True)

        class Raising:
            def instrument(self):
                raise RuntimeError("boom in instrument")
        """,
}


# One of ours that cannot be loaded, one whose instrument() raises, one that works.
MIXED_OURS = {
    "broken": "no_such_module:Instrumentor",
    "raising": "insts:Raising",
    "good": "insts:Good",
}


def test_failures_are_isolated_logged_and_listed(tmp_path, pyrun):
    make_dist(
        tmp_path,
        "mixed",
        entry_points={
            "lazypatch.instrumentors": MIXED_OURS,
            "opentelemetry_instrumentor": {"theirs_broken": "no_such_otel_module:I"},
            "lazypatch.hooks": {"good": "no_such_hook_module:hook"},
        },
    )
    proc = pyrun(
        """
        import lazypatch.auto
        import broken, raising, theirs_broken, good
        print("good", good.done)
        """,
        files=FAILING,
    )
    assert "good [True]" in proc.stdout
    for name in (
        "no_such_module",
        "boom in instrument",
        "no_such_otel_module",
        "no_such_hook_module",
    ):
        assert name in proc.stderr
    rows = listing(tmp_path, "--import")
    assert rows["lazypatch", "good"]["state"] == "active"
    assert rows["lazypatch", "good"]["seconds"] is not None
    for key, reason in [
        (("lazypatch", "broken"), "no_such_module"),
        (("lazypatch", "raising"), "boom in instrument"),
        (("opentelemetry", "theirs_broken"), "no_such_otel_module"),
    ]:
        assert rows[key]["state"] == "failed"
        assert reason in rows[key]["reason"]
    assert rows["hook", "good"]["state"] == "failed"
    assert "no_such_hook_module" in rows["hook", "good"]["reason"]


def test_status_lists_our_armed_instrumentations_and_those_that_fail_to_load(tmp_path, pyfacts):
    """One record per armed ``lazypatch.instrumentors`` entry, as for OpenTelemetry's: ``pending``
    until its trigger is imported, then what it became, a failure to load included."""
    make_dist(tmp_path, "mixed", entry_points={"lazypatch.instrumentors": MIXED_OURS})
    found = pyfacts(
        """
        import lazypatch.auto, lazypatch

        def ours():
            return {
                r.name: [r.kind, r.state, r.module, r.reason]
                for r in lazypatch.status()
                if r.source == "lazypatch" and r.name in ("broken", "raising", "good")
            }

        before = ours()
        import broken, raising, good
        report(before=before, after=ours())
        """,
        files=FAILING,
    )
    assert found["before"] == {
        name: ["instrumentor", "pending", name, None] for name in ("broken", "raising", "good")
    }
    after = found["after"]
    assert after["good"][:3] == ["instrumentor", "active", "good"]
    assert after["broken"][:3] == ["instrumentor", "failed", "broken"]
    assert "no_such_module" in after["broken"][3]
    assert after["raising"][:3] == ["instrumentor", "failed", "raising"]
    assert "boom in instrument" in after["raising"][3]


def test_lazypatch_hooks_group_runs_a_lazy_post_import_hook(tmp_path, pyrun):
    make_dist(tmp_path, "hooks", entry_points={"lazypatch.hooks": {"mylib": "on_mylib:hook"}})
    files = {
        **LIBRARY,
        "on_mylib.py": "def hook(module):\n    module.instrumented_by.append('hook')\n",
    }
    pyrun(
        """
        import sys
        import lazypatch.auto
        assert "on_mylib" not in sys.modules
        import mylib
        assert mylib.instrumented_by == ["hook"], mylib.instrumented_by
        """,
        files=files,
    )


def test_otel_instrumentors_can_be_ignored(tmp_path, pyrun):
    theirs_dist(tmp_path)
    pyrun(
        "import lazypatch.auto, mylib\nassert mylib.instrumented_by == [], mylib.instrumented_by\n",
        files={**LIBRARY, **THEIRS},
        env={"LAZYPATCH_OTEL_INSTRUMENTORS": "0"},
    )
