"""Fixtures for end-to-end tests: the console scripts of this environment."""

import os
import subprocess

import pytest
from e2e_support import BIN


@pytest.fixture
def cli(tmp_path):
    """``cli("run", "--", "python", ...)``: run a console script of this environment."""

    def run(*args, script="lazypatch", env=None, cwd=None, check=True, timeout=120):
        full = dict(os.environ)
        full["PATH"] = os.pathsep.join([str(BIN), full.get("PATH", "")])
        for key, value in (env or {}).items():
            if value is None:
                full.pop(key, None)
            else:
                full[key] = value
        proc = subprocess.run(
            [str(BIN / script), *args],
            env=full,
            cwd=cwd or tmp_path,
            capture_output=True,
            text=True,
            timeout=timeout,
        )
        if check:
            assert proc.returncode == 0, f"{proc.returncode}\n{proc.stdout}\n{proc.stderr}"
        return proc

    return run
