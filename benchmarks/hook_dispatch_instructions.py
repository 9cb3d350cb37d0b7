"""Instructions per hooked import, counted by valgrind's callgrind: steady on a loaded machine.

The child of ``hook_dispatch.py`` runs under ``valgrind --tool=callgrind`` twice per variant, with
its hooks registered on all 100 generated modules ("hooked"; "unhooked": on one module never
imported, so the finder is in the path of every import but watches none of these): importing
none of them, then all of them. The difference divided by 100 is what one import costs in that
variant, start-up and registration cancelled out; each variant is then compared with bare. Not
part of ``make bench`` (it needs valgrind and takes a few minutes).

Run: ``python benchmarks/hook_dispatch_instructions.py``.
"""

import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import _common
from hook_dispatch import CHILD, MODULE

COUNT = 100
VARIANTS = {
    "bare": ("none", "unhooked"),
    "lazypatch, unhooked": ("lazypatch", "unhooked"),
    "lazypatch, hooked": ("lazypatch", "hooked"),
    "wrapt, unhooked": ("wrapt", "unhooked"),
    "wrapt, hooked": ("wrapt", "hooked"),
}


def instructions(tmp: Path, library: str, hooked: str, imported: int) -> int:
    out = tmp / f"callgrind.{library}.{imported}"
    command = ["valgrind", "--tool=callgrind", f"--callgrind-out-file={out}", sys.executable]
    command += ["-I", f"-Xpycache_prefix={tmp / 'pycache'}", "-c", CHILD]
    command += [library, hooked, str(tmp), str(COUNT), str(imported)]
    # A fixed hash seed: with randomized hashing, dict layouts and so the counts vary by a few
    # thousand instructions per import from one run to the next.
    env = {"SETUPTOOLS_USE_DISTUTILS": "stdlib", "PATH": "/usr/bin:/bin", "PYTHONHASHSEED": "0"}
    subprocess.run(command, env=env, check=True, capture_output=True)
    return int(re.search(r"^totals: (\d+)", out.read_text(), re.MULTILINE)[1])


def main() -> int:
    if shutil.which("valgrind") is None:
        print("valgrind is not installed", file=sys.stderr)
        return 1
    tmp = Path(tempfile.mkdtemp(prefix="lazypatch-bench-"))
    try:
        for i in range(COUNT):
            (tmp / f"lpbench_hooked{i:03d}.py").write_text(MODULE.format(index=i))
        prefix = f"pycache_prefix={tmp / 'pycache'}"
        _common.run_child(CHILD, ("none", "unhooked", tmp, COUNT), [prefix])  # warms the caches
        per_import = {
            name: (instructions(tmp, *spec, COUNT) - instructions(tmp, *spec, 0)) / COUNT
            for name, spec in VARIANTS.items()
        }
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    bare = per_import["bare"]
    rows = [
        [name, f"{value:,.0f}", "—" if name == "bare" else f"{value - bare:+,.0f}"]
        for name, value in per_import.items()
    ]
    print(_common.markdown_table(["variant", "instructions per import", "added vs bare"], rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
