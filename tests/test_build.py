"""``python -m build``: a wheel and an sdist that install in a clean venv and work there.

The build runs without isolation (this environment's setuptools and wheel, which ``build``
checks against ``build-system.requires``), so it needs no network. Installing resolves the
runtime dependencies through pip's configured index. Each install goes into a venv made without
pip (pip is this environment's, pointed at it with ``--python``), and runs from a directory that
is not the source tree, with a clean environment: what is imported is the installed copy.
"""

import os
import re
import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path

import pytest
from fresh import ROOT

pytestmark = pytest.mark.slow

ENTRY_POINTS = {
    "console_scripts": {"lazypatch", "lazypatch-run"},
    "lazypatch.instrumentors": {"requests", "flask", "urllib", "sqlite3", "logging"},
    "opentelemetry_traces_exporter": {"lazypatch_tree"},
}


def project_version() -> str:
    text = (ROOT / "pyproject.toml").read_text(encoding="utf-8")
    return re.search(r'^version = "([^"]+)"', text, re.M).group(1)


def run(command, cwd, timeout=300):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "OTEL_", "LAZY"))}
    proc = subprocess.run(
        [str(c) for c in command], cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout
    )
    assert proc.returncode == 0, f"{command}\n{proc.stdout}\n{proc.stderr}"
    return proc


@pytest.fixture(scope="module")
def dist(tmp_path_factory):
    pytest.importorskip("build")
    out = tmp_path_factory.mktemp("dist")
    run([sys.executable, "-m", "build", "--no-isolation", "--outdir", out, ROOT], cwd=out)
    wheels = list(out.glob("*.whl"))
    sdists = list(out.glob("*.tar.gz"))
    assert len(wheels) == 1 and len(sdists) == 1, list(out.iterdir())
    return wheels[0], sdists[0]


def installed(tmp_path: Path, artifact: Path) -> Path:
    """A fresh venv with ``artifact`` installed; returns its bin directory."""
    venv = tmp_path / "venv"
    run([sys.executable, "-m", "venv", "--without-pip", venv], cwd=tmp_path)
    python = venv / "bin" / "python"
    pip = [sys.executable, "-m", "pip", "--python", python, "--disable-pip-version-check"]
    run([*pip, "install", "--quiet", artifact], cwd=tmp_path)
    return venv / "bin"


def check_installed(bin_dir: Path, cwd: Path) -> None:
    python = bin_dir / "python"
    code = (
        "import lazypatch, lazypatch.auto, sys; "
        "assert lazypatch.__file__.startswith(sys.prefix), lazypatch.__file__; "
        "print(lazypatch.__file__)"
    )
    run([python, "-c", code], cwd=cwd)
    listing = run([bin_dir / "lazypatch", "list"], cwd=cwd).stdout
    assert re.search(r"^sqlite3\s+sqlite3\s+lazypatch\s", listing, re.M), listing
    bootstrap = run([bin_dir / "lazypatch", "path"], cwd=cwd).stdout.strip()
    assert bootstrap.startswith(str(bin_dir.parent)), bootstrap
    activated = subprocess.run(
        [python, "-c", "import sys; assert 'lazypatch.auto' in sys.modules, 'not activated'"],
        cwd=cwd,
        env={"PYTHONPATH": bootstrap, "PATH": os.environ.get("PATH", "")},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert activated.returncode == 0, activated.stderr


def test_wheel_ships_the_bootstrap_and_the_entry_points(dist):
    wheel, _ = dist
    version = project_version()
    assert wheel.name.startswith(f"lazypatch-{version}-py3-none-any")
    with zipfile.ZipFile(wheel) as archive:
        names = set(archive.namelist())
        assert "lazypatch/_bootstrap/sitecustomize.py" in names
        assert "lazypatch/_bootstrap/__init__.py" in names
        assert not any(name.startswith(("tests/", "examples/", "benchmarks/")) for name in names)
        text = archive.read(f"lazypatch-{version}.dist-info/entry_points.txt").decode()
    groups, group = {}, None
    for line in text.splitlines():
        if line.startswith("["):
            group = line.strip("[]")
        elif "=" in line:
            groups.setdefault(group, set()).add(line.partition("=")[0].strip())
    for group, names in ENTRY_POINTS.items():
        assert names <= groups.get(group, set()), (group, groups)


def test_sdist_has_what_a_build_from_it_needs(dist):
    _, sdist = dist
    top = f"lazypatch-{project_version()}"
    with tarfile.open(sdist) as archive:
        names = set(archive.getnames())
    for name in ("pyproject.toml", "README.md", "lazypatch/_bootstrap/sitecustomize.py"):
        assert f"{top}/{name}" in names, sorted(names)


def test_wheel_installs_in_a_clean_venv_and_works(dist, tmp_path):
    wheel, _ = dist
    check_installed(installed(tmp_path, wheel), tmp_path)


def test_sdist_installs_in_a_clean_venv_and_works(dist, tmp_path):
    _, sdist = dist
    check_installed(installed(tmp_path, sdist), tmp_path)


def test_the_changelog_has_a_section_for_this_version():
    changelog = (ROOT / "CHANGELOG.md").read_text(encoding="utf-8")
    assert "## [Unreleased]" in changelog
    assert f"## [{project_version()}]" in changelog
