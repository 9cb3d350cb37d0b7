"""The public API as a type checker sees it (``py.typed``; names loaded lazily at run time)."""

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

USER = """
import lazypatch
from types import ModuleType
from typing import Any, Dict, List, Tuple


def mark(wrapped: Any, instance: Any, args: Tuple[Any, ...], kwargs: Dict[str, Any]) -> Any:
    return wrapped(*args, **kwargs)


def hook(module: ModuleType) -> None:
    pass


class Demo(lazypatch.Instrumentor):
    targets = ("json",)

    def _instrument(self, **kwargs: Any) -> None:
        self.wrap("json", "dumps", mark)


patch: lazypatch.Patch = lazypatch.wrap("json", "dumps", mark)
replaced: lazypatch.Patch = lazypatch.replace("json", "loads", len)
handle: lazypatch.Hook = lazypatch.register_hook("json", hook)
records: List[lazypatch.Record] = lazypatch.status()
seconds: float = records[0].seconds
Demo().instrument()
"""


def mypy(tmp_path, source):
    path = tmp_path / "user.py"
    path.write_text(source)
    return subprocess.run(
        [
            *(sys.executable, "-m", "mypy", "--strict", "--no-incremental"),
            *("--config-file", str(ROOT / "pyproject.toml"), str(path)),
        ],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        # An editable install is found through an import hook, which mypy does not run.
        env={**os.environ, "MYPYPATH": str(ROOT)},
        timeout=300,
    )


def test_public_names_are_typed_for_users(tmp_path):
    proc = mypy(tmp_path, USER)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_a_wrong_call_is_caught(tmp_path):
    proc = mypy(tmp_path, USER + "\nlazypatch.wrap(1, 'dumps', mark)\nlazypatch.status().kind\n")
    assert proc.returncode == 1, proc.stdout
    assert 'Argument 1 to "wrap" has incompatible type "int"' in proc.stdout, proc.stdout
    assert '"list[Record]" has no attribute "kind"' in proc.stdout, proc.stdout


def test_the_package_ships_py_typed():
    assert (ROOT / "lazypatch" / "py.typed").is_file()
