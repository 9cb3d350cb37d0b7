"""``lazypatch run`` and activation by PYTHONPATH alone: children, sitecustomize, exit, signals."""

import json
import os
import signal
import subprocess
import sys
import textwrap
from collections import Counter

from e2e_support import BIN, console_spans

REPORT = """
import os, sys
print("report", os.getpid(), "lazypatch.auto" in sys.modules, flush=True)
"""

PARENT = """
import multiprocessing, os, subprocess, sys

def child():
    print("report", os.getpid(), "lazypatch.auto" in sys.modules, flush=True)

if __name__ == "__main__":
    child()
    subprocess.run([sys.executable, "-c", CHILD], check=True)
    multiprocessing.set_start_method("spawn")
    process = multiprocessing.Process(target=child)
    process.start()
    process.join()
    sys.exit(process.exitcode)
""".replace("CHILD", repr(REPORT))


def armed_pids(stderr):
    return Counter(
        line.split("]")[0].split("[")[1]
        for line in stderr.splitlines()
        if "lazypatch.auto armed" in line
    )


def test_every_python_child_is_instrumented_exactly_once(cli, tmp_path):
    script = tmp_path / "app.py"
    script.write_text(PARENT)
    proc = cli("run", "--", "python", str(script), env={"LAZYPATCH_LOG_LEVEL": "debug"})
    reports = [line.split() for line in proc.stdout.splitlines() if line.startswith("report")]
    assert len(reports) == 3, proc.stdout
    assert all(flag == "True" for _, _, flag in reports)
    pids = armed_pids(proc.stderr)
    assert {pid for _, pid, _ in reports} <= set(pids)  # multiprocessing adds its resource tracker
    assert set(pids.values()) == {1}


def test_exit_code_and_same_process(cli):
    proc = cli(
        "run", "python", "-c", "import os; print(os.getpid()); raise SystemExit(7)", check=False
    )
    assert proc.returncode == 7
    alias = cli("-c", "raise SystemExit(3)", script="lazypatch-run", check=False)
    assert alias.returncode == 2  # options are not a command
    alias = cli("--", "python", "-c", "raise SystemExit(3)", script="lazypatch-run", check=False)
    assert alias.returncode == 3


def test_command_not_found(cli):
    proc = cli("run", "--", "no-such-command-lazypatch", check=False)
    assert proc.returncode == 127
    assert "no-such-command-lazypatch" in proc.stderr


def test_sigterm_reaches_the_application_which_is_the_same_process(tmp_path):
    env = dict(os.environ, PATH=os.pathsep.join([str(BIN), os.environ.get("PATH", "")]))
    code = "import os, time; print(os.getpid(), flush=True); time.sleep(60)"
    proc = subprocess.Popen(
        [str(BIN / "lazypatch"), "run", "python", "-c", code],
        env=env,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert int(proc.stdout.readline()) == proc.pid
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == -signal.SIGTERM
    finally:
        proc.kill()
        proc.stdout.close()


APP_SITECUSTOMIZE = """
import sys
sys.app_sitecustomize_ran = getattr(sys, "app_sitecustomize_ran", 0) + 1
"""

CHECK_SITE = """
import json, os, sys
import sitecustomize, applib
try:
    import cwdmod
    cwd_importable = True
except ImportError:
    cwd_importable = False
print(json.dumps({
    "app sitecustomize runs": sys.app_sitecustomize_ran,
    "app sitecustomize is the module": (
        sitecustomize.__file__ == os.path.join(sys.argv[1], "sitecustomize.py")
    ),
    "activated": "lazypatch.auto" in sys.modules,
    "cwd on sys.path": os.getcwd() in sys.path or "" in sys.path,
    "cwd importable": cwd_importable,
}))
"""
EXPECTED_SITE = {
    "app sitecustomize runs": 1,
    "app sitecustomize is the module": True,
    "activated": True,
    "cwd on sys.path": False,
    "cwd importable": False,
}


def prepare_site(tmp_path):
    app_dir, cwd, scripts = tmp_path / "applib", tmp_path / "cwd", tmp_path / "scripts"
    for directory in (app_dir, cwd, scripts):
        directory.mkdir()
    (app_dir / "sitecustomize.py").write_text(APP_SITECUSTOMIZE)
    (app_dir / "applib.py").write_text("")
    (cwd / "cwdmod.py").write_text("")
    (scripts / "check.py").write_text(CHECK_SITE)
    return app_dir, cwd, scripts / "check.py"


def test_app_sitecustomize_and_pythonpath_are_kept_and_cwd_is_not_added(cli, tmp_path):
    app_dir, cwd, script = prepare_site(tmp_path)
    proc = cli(
        "run", "python", str(script), str(app_dir), env={"PYTHONPATH": str(app_dir)}, cwd=cwd
    )
    assert json.loads(proc.stdout) == EXPECTED_SITE


def test_activation_by_environment_alone(cli, tmp_path):
    app_dir, cwd, script = prepare_site(tmp_path)
    bootstrap = cli("path").stdout.strip()
    assert os.path.isfile(os.path.join(bootstrap, "sitecustomize.py"))
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([bootstrap, str(app_dir)]))
    proc = subprocess.run(
        [sys.executable, str(script), str(app_dir)],
        env=env,
        cwd=cwd,
        capture_output=True,
        text=True,
    )
    assert json.loads(proc.stdout) == EXPECTED_SITE, proc.stderr


def test_python_dash_m_package(cli, tmp_path):
    pkg = tmp_path / "mypkg"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "__main__.py").write_text(
        textwrap.dedent(
            """
            import sys
            assert __name__ == "__main__", __name__
            assert "lazypatch.auto" in sys.modules, "not activated"
            raise SystemExit(5)
            """
        )
    )
    proc = cli("run", "python", "-m", "mypkg", check=False)
    assert proc.returncode == 5, proc.stderr


def test_options_reach_the_sdk(cli):
    code = (
        "from opentelemetry import trace\n"
        "with trace.get_tracer('t').start_as_current_span('s'): pass\n"
    )
    proc = cli(
        "run",
        "--service-name",
        "shop",
        "--traces-exporter=console",
        "--",
        "python",
        "-c",
        code,
        env={"OTEL_TRACES_EXPORTER": "none"},
    )
    (span,) = console_spans(proc.stdout)
    assert span["resource"]["attributes"]["service.name"] == "shop"


def test_python_dash_m_lazypatch_is_the_same_cli():
    proc = subprocess.run(
        [sys.executable, "-m", "lazypatch", "path"], capture_output=True, text=True, check=True
    )
    assert proc.stdout.strip().endswith("_bootstrap")
