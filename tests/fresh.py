"""Fresh interpreters for everything that depends on import state (imported by tests and conftest)."""

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

# Set by CI (.ci/run) for every interpreter but the main one: tests marked ``main_interpreter``
# are skipped there, and the ordering state machine runs fewer examples.
SECONDARY_INTERPRETER = os.environ.get("LAZYPATCH_TESTS_SECONDARY") == "1"


def run_python(code, *, env=None, cwd=None, timeout=120, check=True, args=(), python=None):
    """Run ``code`` in a fresh interpreter; return the CompletedProcess (text mode).

    ``env`` entries are added to a copy of the current environment (``None`` values remove one).
    With ``check`` the process must exit 0, else the assertion shows its output.
    """
    full_env = dict(os.environ)
    full_env.pop("PYTHONSTARTUP", None)
    for key, value in (env or {}).items():
        if value is None:
            full_env.pop(key, None)
        else:
            full_env[key] = value
    proc = subprocess.run(
        [python or sys.executable, *args, "-c", textwrap.dedent(code)],
        cwd=cwd,
        env=full_env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    if check:
        assert proc.returncode == 0, (
            f"exit {proc.returncode}\n--- stdout\n{proc.stdout}\n--- stderr\n{proc.stderr}"
        )
    return proc


def write_modules(root, files):
    """Create ``{relative path: source}`` under ``root``; return ``root`` as a string."""
    root = Path(root)
    for rel, source in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(source))
    return str(root)


def facts(proc):
    """What the child passed to ``report(...)`` (tests/preludes.py): its last line, as JSON."""
    lines = proc.stdout.splitlines()
    assert lines, f"the child reported nothing\n--- stderr\n{proc.stderr}"
    return json.loads(lines[-1])
