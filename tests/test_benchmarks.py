"""Smoke test of the benchmarks: each runs with ``--quick`` and writes a Markdown table.

No timing is asserted: the numbers of a smoke run on a busy machine mean nothing. ``make bench``
runs on the main interpreter only, and so do these.
"""

import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = [pytest.mark.slow, pytest.mark.main_interpreter]

BENCHMARKS = Path(__file__).resolve().parent.parent / "benchmarks"


@pytest.mark.parametrize("name", ["import_overhead", "hook_dispatch", "app_startup"])
def test_quick_run_writes_a_table(name, tmp_path):
    output = tmp_path / f"{name}.md"
    proc = subprocess.run(
        [sys.executable, str(BENCHMARKS / f"{name}.py"), "--quick", "--output", str(output)],
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert proc.returncode == 0, proc.stderr
    text = output.read_text(encoding="utf-8")
    assert text.strip() in proc.stdout
    assert "| variant |" in text and "|---|" in text and "| bare |" in text, text
