"""The metadata reader against importlib.metadata, and its cache across processes.

Each cache case runs fresh interpreters on throwaway distributions (a directory on PYTHONPATH, or
a site directory with ``.pth`` files), with ``LAZYPATCH_CACHE_DIR`` in the test's own directory.
A child reports what one scan found as JSON, and which directories it did not list again.
"""

import json
import os
import shutil
import subprocess
import sys
import time
from importlib import metadata
from pathlib import Path

import pytest
from fresh import run_python
from test_discovery import make_dist

from lazypatch import _metadata, _metadata_cache

# -- the real environment ---------------------------------------------------------------------


def _first_of_each_name():
    found = {}
    for dist in metadata.distributions():
        name = dist.metadata["Name"]
        if name:
            found.setdefault(_metadata.normalize(name), dist)
    return found


def test_same_versions_and_entry_points_as_importlib_metadata_for_every_distribution():
    expected = _first_of_each_name()
    ours = _metadata.distributions()
    assert set(ours) == set(expected)
    for key, dist in expected.items():
        assert ours[key].installed_version() == dist.version, key
        groups = {}
        for entry_point in dist.entry_points:
            if entry_point.group in _metadata.GROUPS:
                value = entry_point.value.partition("[")[0].strip()
                groups.setdefault(entry_point.group, []).append((entry_point.name, value))
        assert ours[key].entry_points() == groups, key
        assert _metadata.version(key) == dist.version


def test_the_scan_finds_the_same_entry_point_distributions():
    scan = _metadata.scan()
    expected = {
        _metadata.normalize(d.metadata["Name"])
        for d in _first_of_each_name().values()
        if any(ep.group in _metadata.GROUPS for ep in d.entry_points)
    }
    assert {dist.key for dist in scan.with_entry_points()} == expected
    assert "lazypatch" in expected


# -- the cache, in fresh interpreters --------------------------------------------------------

REPORT = """
import json, logging, os, sys
logging.basicConfig(level=logging.DEBUG)
if os.environ.get("ADD_SITE"):
    import site
    site.addsitedir(os.environ["ADD_SITE"])
from lazypatch import _config, _metadata
scan = _metadata.scan(cache_dir=_config.settings().cache_dir)
dists = {
    key: [dist.installed_version(), dist.entry_points()]
    for key, dist in scan.all().items() if key.startswith("fake")
}
with_eps = [dist.key for dist in scan.with_entry_points() if dist.key.startswith("fake")]
print(json.dumps({"dists": dists, "with": with_eps, "reused": scan.reused}))
"""


def hooks(*modules):
    return {"lazypatch.hooks": {module: f"h_{module}:hook" for module in modules}}


def settle(*paths):
    """Age directories and files by a minute: as long before a start as a real install is."""
    old = time.time() - 60
    for path in paths:
        for root, dirs, files in os.walk(path):
            for name in dirs + files:
                os.utime(os.path.join(root, name), (old, old))
        os.utime(path, (old, old))


class Env:
    def __init__(self, tmp_path):
        self.root = tmp_path
        self.site = tmp_path / "site"
        self.site.mkdir()
        self.cache = tmp_path / "cache"

    def start(self, *, path=None, env=None, python=None, check=True):
        full = {
            "PYTHONPATH": os.pathsep.join(str(p) for p in (path or [self.site])),
            "LAZYPATCH_CACHE_DIR": str(self.cache),
            "LAZYPATCH_LOG_LEVEL": "DEBUG",
        }
        full.update(env or {})
        proc = run_python(REPORT, env=full, python=python, check=check, cwd=self.root)
        report = json.loads(proc.stdout)
        report["stderr"] = proc.stderr
        return report

    def warm(self, **kwargs):
        """Start twice: the second start must reuse every record of the first."""
        settle(self.site)
        self.start(**kwargs)
        report = self.start(**kwargs)
        assert str(self.site) in report["reused"], report
        return report


@pytest.fixture
def env(tmp_path):
    return Env(tmp_path)


def test_a_warm_start_lists_nothing_again(env):
    make_dist(env.site, "fake-a", "1.0", hooks("json"))
    make_dist(env.site, "fake-b", "2.0")
    report = env.warm()
    assert report["dists"] == {
        "fake_a": ["1.0", {"lazypatch.hooks": [["json", "h_json:hook"]]}],
        "fake_b": ["2.0", {}],
    }
    assert report["with"] == ["fake_a"]
    assert report["stderr"] == ""


def test_install_upgrade_and_uninstall_between_starts_are_seen(env):
    make_dist(env.site, "fake-a", "1.0", hooks("json"))
    env.warm()
    make_dist(env.site, "fake-new", "0.1", hooks("csv"))
    report = env.start()
    assert str(env.site) not in report["reused"]
    assert sorted(report["with"]) == ["fake_a", "fake_new"]
    settle(env.site)
    env.start()
    shutil.rmtree(env.site / "fake_a-1.0.dist-info")  # an upgrade, as pip makes one
    make_dist(env.site, "fake-a", "2.0", hooks("json", "zlib"))
    report = env.start()
    assert report["dists"]["fake_a"] == [
        "2.0",
        {"lazypatch.hooks": [["json", "h_json:hook"], ["zlib", "h_zlib:hook"]]},
    ]
    settle(env.site)
    env.start()
    shutil.rmtree(env.site / "fake_new-0.1.dist-info")
    report = env.start()
    assert "fake_new" not in report["dists"] and report["with"] == ["fake_a"]


def test_editable_installs_and_their_entry_points_rewritten_in_place(env, tmp_path):
    """A setuptools editable install: a ``.pth`` naming the project, whose ``*.egg-info``
    (rewritten in place by ``setup.py develop`` / ``egg_info``) holds the metadata."""
    project = tmp_path / "project"
    egg = project / "fake_proj.egg-info"
    egg.mkdir(parents=True)
    (egg / "PKG-INFO").write_text("Metadata-Version: 2.1\nName: fake-proj\nVersion: 0.1\n")
    site = {"env": {"ADD_SITE": str(env.site)}, "path": [tmp_path / "elsewhere"]}
    settle(project)
    env.warm(**site)
    assert "fake_proj" not in env.start(**site)["dists"]
    (env.site / "fake_proj.pth").write_text(str(project) + "\n")
    report = env.start(**site)
    assert report["dists"]["fake_proj"] == ["0.1", {}]
    settle(env.site, project)
    env.start(**site)
    assert str(project) in env.start(**site)["reused"]
    (egg / "entry_points.txt").write_text("[lazypatch.hooks]\njson = h_json:hook\n")
    report = env.start(**site)
    assert report["with"] == ["fake_proj"]
    settle(project)
    env.start(**site)
    (egg / "entry_points.txt").write_text("[lazypatch.hooks]\ncsv = h_csv:hook\n")
    (egg / "PKG-INFO").write_text("Metadata-Version: 2.1\nName: fake-proj\nVersion: 0.2\n")
    report = env.start(**site)
    assert report["dists"]["fake_proj"] == ["0.2", {"lazypatch.hooks": [["csv", "h_csv:hook"]]}]


def test_a_changed_sys_path_is_seen(env, tmp_path):
    other = tmp_path / "other"
    make_dist(env.site, "fake-a", "1.0", hooks("json"))
    make_dist(other, "fake-a", "9.0", hooks("csv"))
    make_dist(other, "fake-b", "1.0")
    settle(other)
    assert env.warm()["dists"] == {
        "fake_a": ["1.0", {"lazypatch.hooks": [["json", "h_json:hook"]]}]
    }
    report = env.start(path=[other])
    assert report["dists"]["fake_a"][0] == "9.0"
    report = env.start(path=[env.site, other])
    assert report["dists"]["fake_a"][0] == "1.0" and "fake_b" in report["dists"]
    assert report["with"] == ["fake_a"]
    assert {str(env.site), str(other)} <= set(report["reused"])
    report = env.start(path=[other, env.site])
    assert report["dists"]["fake_a"] == ["9.0", {"lazypatch.hooks": [["csv", "h_csv:hook"]]}]


def test_a_directory_changed_within_the_tick_of_its_listing_is_not_trusted(env):
    """The directory's mtime is the same after a second change (a coarse clock, or a change in
    the same tick as the listing): a record read that recently is never reused."""
    make_dist(env.site, "fake-a", "1.0", hooks("json"))
    stamp = os.stat(env.site).st_mtime_ns
    env.start()
    make_dist(env.site, "fake-late", "1.0", hooks("csv"))
    os.utime(env.site, ns=(stamp, stamp))
    report = env.start()
    assert sorted(report["with"]) == ["fake_a", "fake_late"]


def test_a_path_entry_that_does_not_exist_is_reused_until_it_does(env, tmp_path):
    """Most installations have ``pythonXY.zip`` on ``sys.path`` and not on disk: its record holds
    while it is absent (it was listed again, and the cache rewritten, at every start)."""
    missing = tmp_path / "missing"
    make_dist(env.site, "fake-a", "1.0", hooks("json"))
    report = env.warm(path=[env.site, missing])
    assert str(missing) in report["reused"]
    make_dist(missing, "fake-b", "1.0", hooks("csv"))
    report = env.start(path=[env.site, missing])
    assert str(missing) not in report["reused"]
    assert sorted(report["with"]) == ["fake_a", "fake_b"]


def test_a_directory_modified_a_moment_ago_does_not_rewrite_the_cache(env, tmp_path):
    """An application's own directory, on ``sys.path`` and written to at each run: listed again
    at every start, and never worth a cache write."""
    app = tmp_path / "app"
    app.mkdir()
    make_dist(env.site, "fake-a", "1.0", hooks("json"))
    env.warm(path=[env.site, app])
    before = os.stat(_cache_file(env))
    (app / "app.log").write_text("a run\n")
    report = env.start(path=[env.site, app])
    assert str(app) not in report["reused"] and str(env.site) in report["reused"]
    after = os.stat(_cache_file(env))
    assert (after.st_ino, after.st_mtime_ns) == (before.st_ino, before.st_mtime_ns)
    assert report["with"] == ["fake_a"]


def _cache_file(env):
    (name,) = [n for n in os.listdir(env.cache) if n.endswith(".marshal")]
    return env.cache / name


def _garbage(path):
    path.write_bytes(os.urandom(5000))


def _truncated(path):
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


def _other_format(path):
    import marshal

    header, records = marshal.loads(path.read_bytes())
    path.write_bytes(marshal.dumps(((header[0], header[1] + 1, *header[2:]), records)))


def _other_python(path):
    import marshal

    header, records = marshal.loads(path.read_bytes())
    path.write_bytes(marshal.dumps(((*header[:2], header[2] - 0x10000, header[3]), records)))


def _empty(path):
    path.write_bytes(b"")


@pytest.mark.parametrize("damage", [_garbage, _truncated, _other_format, _other_python, _empty])
def test_a_damaged_or_foreign_cache_is_ignored_and_replaced(env, damage):
    make_dist(env.site, "fake-a", "1.0", hooks("json"))
    env.warm()
    cache = _cache_file(env)
    damage(cache)
    settle(env.cache)
    # The damaged file claims the directory is unchanged, yet a new distribution is there.
    make_dist(env.site, "fake-b", "1.0", hooks("csv"))
    report = env.start()
    assert sorted(report["with"]) == ["fake_a", "fake_b"]
    assert report["reused"] == [] or str(env.site) not in report["reused"]
    lines = report["stderr"].splitlines()
    assert len(lines) <= 1 and all("DEBUG" in line for line in lines), report["stderr"]
    settle(env.site)
    env.start()
    assert str(env.site) in env.start()["reused"]


def test_a_cache_file_others_may_write_is_not_trusted(env):
    make_dist(env.site, "fake-a", "1.0", hooks("json"))
    env.warm()
    cache = _cache_file(env)
    cache.chmod(0o666)
    report = env.start()
    assert str(env.site) not in report["reused"]
    assert "mode" in report["stderr"] and "DEBUG" in report["stderr"]


@pytest.mark.skipif(not hasattr(os, "getuid") or os.getuid() != 0, reason="chown needs root")
def test_a_cache_file_of_another_user_is_not_trusted(env):
    make_dist(env.site, "fake-a", "1.0", hooks("json"))
    env.warm()
    os.chown(_cache_file(env), 65534, 65534)
    report = env.start()
    assert str(env.site) not in report["reused"]
    assert "owned by uid 65534" in report["stderr"]


def test_another_python_version_keeps_its_own_cache(env):
    others = sorted(
        str(p)
        for p in Path(os.environ.get("PYENV_ROOT", Path.home() / ".pyenv")).glob(
            "versions/3.*/bin/python3.*[0-9]"
        )
        if f"{sys.version_info[0]}.{sys.version_info[1]}" not in p.name
    )
    if not others:
        pytest.skip("no other CPython installed here")
    make_dist(env.site, "fake-a", "1.0", hooks("json"))
    env.warm()
    mine = _cache_file(env).read_bytes()
    repo = str(Path(__file__).resolve().parent.parent)
    path = [env.site, repo]
    report = env.start(path=path, python=others[0])
    assert report["with"] == ["fake_a"] and str(env.site) not in report["reused"]
    assert len(os.listdir(env.cache)) == 2 and _cache_file_bytes(env, mine)


def _cache_file_bytes(env, data):
    return any((env.cache / name).read_bytes() == data for name in os.listdir(env.cache))


def test_a_cache_location_that_cannot_be_written(env, tmp_path):
    make_dist(env.site, "fake-a", "1.0", hooks("json"))
    settle(env.site)
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    report = env.start(env={"LAZYPATCH_CACHE_DIR": str(blocker / "cache")})
    assert report["with"] == ["fake_a"]
    lines = report["stderr"].splitlines()
    assert len(lines) == 1 and "DEBUG" in lines[0] and "not written" in lines[0], lines


@pytest.mark.skipif(
    not hasattr(os, "getuid") or os.getuid() == 0, reason="root writes to read-only directories"
)
def test_a_read_only_cache_directory(env):
    make_dist(env.site, "fake-a", "1.0", hooks("json"))
    env.warm()
    env.cache.chmod(0o555)
    make_dist(env.site, "fake-b", "1.0", hooks("csv"))
    report = env.start()
    assert sorted(report["with"]) == ["fake_a", "fake_b"]
    lines = report["stderr"].splitlines()
    assert len(lines) == 1 and "DEBUG" in lines[0] and "not written" in lines[0], lines


def test_a_full_disk_leaves_no_file_behind(env):
    """Writes fail with EFBIG past a few bytes (RLIMIT_FSIZE): nothing torn is left."""
    resource = pytest.importorskip("resource")
    make_dist(env.site, "fake-a", "1.0", hooks("json"))
    settle(env.site)
    full = {
        "PYTHONPATH": str(env.site),
        "LAZYPATCH_CACHE_DIR": str(env.cache),
        "LAZYPATCH_LOG_LEVEL": "DEBUG",
    }
    prelude = (
        "import resource, signal\n"
        "signal.signal(signal.SIGXFSZ, signal.SIG_IGN)\n"
        f"resource.setrlimit(resource.RLIMIT_FSIZE, (64, {resource.RLIM_INFINITY}))\n"
    )
    proc = run_python(prelude + REPORT, env=full)
    assert json.loads(proc.stdout)["with"] == ["fake_a"]
    assert "not written" in proc.stderr and "Traceback" not in proc.stderr
    assert os.listdir(env.cache) == []


KILLED = """
import os, sys
from lazypatch import _config, _metadata
real_write = os.write
def write(fd, data):
    if os.environ["DIE"] == "writing":
        real_write(fd, bytes(data)[: len(data) // 2])
        os._exit(9)
    return real_write(fd, data)
def replace(src, dst):
    os._exit(9)
os.write = write
if os.environ["DIE"] == "renaming":
    os.replace = replace
_metadata.scan(cache_dir=_config.settings().cache_dir)
"""


@pytest.mark.parametrize("die", ["writing", "renaming"])
def test_a_writer_killed_midway_leaves_the_cache_whole(env, die):
    make_dist(env.site, "fake-a", "1.0", hooks("json"))
    env.warm()
    before = _cache_file(env).read_bytes()
    make_dist(env.site, "fake-b", "1.0", hooks("csv"))
    settle(env.site)  # a record worth writing
    full = {"PYTHONPATH": str(env.site), "LAZYPATCH_CACHE_DIR": str(env.cache), "DIE": die}
    assert run_python(KILLED, env=full, check=False).returncode == 9
    assert _cache_file(env).read_bytes() == before
    report = env.start()
    assert sorted(report["with"]) == ["fake_a", "fake_b"]
    assert report["stderr"] == ""


def test_concurrent_starts_never_read_a_torn_cache(env):
    for index in range(40):
        make_dist(env.site, f"fake-{index}", "1.0", hooks(f"m{index}"))
    settle(env.site)
    full = dict(
        os.environ,
        PYTHONPATH=str(env.site),
        LAZYPATCH_CACHE_DIR=str(env.cache),
        LAZYPATCH_LOG_LEVEL="DEBUG",
    )
    children = [
        subprocess.Popen(
            [sys.executable, "-c", REPORT], env=full, stdout=subprocess.PIPE, stderr=subprocess.PIPE
        )
        for _ in range(6)
    ]
    for child in children:
        out, err = child.communicate(timeout=120)
        assert child.returncode == 0, err
        assert len(json.loads(out)["with"]) == 40 and err == b"", err
    assert [n for n in os.listdir(env.cache) if n.endswith(".tmp")] == []
    assert str(env.site) in env.start()["reused"]


def test_lazypatch_auto_arms_what_was_installed_since_the_last_start(pyfacts, tmp_path):
    site = tmp_path / "site"
    make_dist(site, "fake-a", "1.0", hooks("json"))
    settle(site)
    code = """
        import lazypatch.auto, json
        from lazypatch import _discovery
        triggers = sorted(
            e.trigger for e in _discovery.armed_entries() if e.dist.key.startswith("fake")
        )
        report(triggers=triggers)
        """
    env = {"PYTHONPATH": str(site), "LAZYPATCH_CACHE_DIR": str(tmp_path / "cache")}
    assert pyfacts(code, env=env) == {"triggers": ["json"]}
    assert pyfacts(code, env=env) == {"triggers": ["json"]}  # from the cache
    make_dist(site, "fake-b", "1.0", hooks("csv"))
    assert pyfacts(code, env=env) == {"triggers": ["csv", "json"]}


def test_an_empty_cache_dir_switches_the_cache_off(pyrun, tmp_path):
    home = tmp_path / "home"
    env = {"LAZYPATCH_CACHE_DIR": "", "HOME": str(home), "XDG_CACHE_HOME": None}
    pyrun("import lazypatch.auto", env=env)
    assert not home.exists()
    pyrun("import lazypatch.auto", env={**env, "LAZYPATCH_CACHE_DIR": None})
    assert [p.name for p in (home / ".cache" / "lazypatch").iterdir()] == [
        Path(_metadata_cache.path("x")).name
    ]


REQUIREMENT = """
import os, sys
import lazypatch.auto, lazypatch

class Needs(lazypatch.Instrumentor):
    targets = ("target_mod",)
    requirements = ("fake-lib >= 2",)

class NeedsNothing(lazypatch.Instrumentor):
    targets = ("plain_mod",)

class NeedsCompatible(lazypatch.Instrumentor):  # ~= is left to packaging
    targets = ("other_mod",)
    requirements = ("fake-lib ~= 2.0",)

Needs().instrument()
NeedsNothing().instrument()
import plain_mod
assert NeedsNothing().state == "active"
assert "packaging" not in sys.modules and "importlib.metadata" not in sys.modules
late = os.path.join(os.environ["LATE_SITE"], "fake_lib-2.5.dist-info")  # installed after start-up
os.makedirs(late)
with open(os.path.join(late, "METADATA"), "w") as file:
    file.write("Metadata-Version: 2.1\\nName: fake-lib\\nVersion: 2.5\\n")
import target_mod
facts = dict(
    state=Needs().state,
    reason=Needs().reason,
    packaging="packaging" in sys.modules,
    importlib_metadata="importlib.metadata" in sys.modules,
)
NeedsCompatible().instrument()
import other_mod
report(
    **facts,
    compatible=NeedsCompatible().state,
    packaging_then="packaging" in sys.modules,
    importlib_metadata_then="importlib.metadata" in sys.modules,
)
"""


def test_requirements_are_checked_against_the_scan_packaging_only_where_needed(pyfacts, tmp_path):
    early, late = tmp_path / "early", tmp_path / "late"
    make_dist(early, "fake-lib", "1.0")
    late.mkdir()
    settle(early, late)
    env = {
        "PYTHONPATH": os.pathsep.join([str(tmp_path), str(late), str(early)]),
        "LATE_SITE": str(late),
        "LAZYPATCH_CACHE_DIR": str(tmp_path / "cache"),
        # packaging imports logging: its instrumentation's own imports are not the point here
        "LAZYPATCH_DISABLED_INSTRUMENTATIONS": "*",
    }
    files = {"target_mod.py": "", "plain_mod.py": "", "other_mod.py": ""}
    assert pyfacts(REQUIREMENT, files=files, env=env) == {
        "state": "active",
        "reason": None,
        "packaging": False,
        "importlib_metadata": False,
        "compatible": "active",
        "packaging_then": True,
        "importlib_metadata_then": False,
    }
    shutil.rmtree(late / "fake_lib-2.5.dist-info")
    env["LATE_SITE"] = str(tmp_path / "elsewhere")
    facts = pyfacts(REQUIREMENT, files=files, env=env)
    assert facts["state"] == "skipped", facts
    assert facts["reason"] == "requirement unmet: 'fake-lib >= 2' (fake-lib 1.0 is installed)"
    assert facts["compatible"] == "skipped", facts
