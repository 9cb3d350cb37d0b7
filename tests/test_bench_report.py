"""The benchmark report of ``make bench``: ``benchmarks/run_all.py`` and its README.

The smoke run needs the ``bench`` extra (matplotlib and the peers), which lives in a venv of its
own, so it is skipped in the test venv; the report writer alone is tested everywhere on made-up
samples. No timing is asserted: the numbers of a smoke run on a busy machine mean nothing.
"""

import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest

BENCHMARKS = Path(__file__).resolve().parent.parent / "benchmarks"
NAMES = [
    "startup",
    "app_startup",
    "instrumentation_overhead",
    "call_overhead",
    "import_overhead",
    "hook_dispatch",
]
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


@pytest.fixture
def run_all(monkeypatch):
    """The ``run_all`` module, imported the way the benchmarks import each other."""
    monkeypatch.syspath_prepend(str(BENCHMARKS))
    import run_all

    return run_all


def _missing_bench_extra() -> list:
    modules = ["matplotlib", "ddtrace", "opentelemetry.instrumentation.requests"]
    missing = []
    for name in modules:
        try:
            found = importlib.util.find_spec(name) is not None
        except ModuleNotFoundError:  # a parent package is missing
            found = False
        if not found:
            missing.append(name)
    if not (Path(sys.executable).parent / "opentelemetry-instrument").exists():
        missing.append("opentelemetry-instrument")
    return missing


@pytest.mark.slow
@pytest.mark.timeout(900)
@pytest.mark.skipif(
    bool(_missing_bench_extra()),
    reason=f"needs the bench extra (make bench's venv); missing: {_missing_bench_extra()}",
)
def test_quick_run_writes_tables_and_charts(tmp_path):
    proc = subprocess.run(
        [sys.executable, str(BENCHMARKS / "run_all.py"), "--quick", "--output-dir", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=840,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    readme = (tmp_path / "README.md").read_text(encoding="utf-8")
    assert "- load average (1, 5, 15 min):" in readme
    assert "not installed" not in readme and "Failed" not in readme, readme
    assert readme.count("| measure | variant | runs | median | IQR |") == len(NAMES), readme
    for row in ["| import lazypatch.auto |", "| opentelemetry-instrument |", "| OpenTelemetry |"]:
        assert row in readme, row
    for name in NAMES:
        assert (tmp_path / f"{name}.md").read_text(encoding="utf-8").strip()
        assert f"]({name}.png)" in readme
        assert (tmp_path / f"{name}.png").read_bytes().startswith(PNG_SIGNATURE), name


def test_report_from_samples_degrades_without_a_peer(run_all, tmp_path):
    """A peer with no samples is 'not installed'; without matplotlib, tables but no chart."""
    import _common  # importable once run_all is

    group = _common.group(
        "startup: wall time",
        "ms",
        {"bare": [10.0, 12.0, 11.0], "lazypatch": [11.0, 13.0, 12.0], "ddtrace": []},
        peers=["ddtrace"],
    )
    data = {"title": "Made-up startup", "groups": [group]}
    runs = [run_all.Run("startup", 1.0, data, 0), run_all.Run("call_overhead", 1.0, None, 1)]
    readme = run_all.write_report(runs, tmp_path, "- machine: test").read_text(encoding="utf-8")

    assert "## Made-up startup" in readme
    assert "| startup: wall time (ms) | bare | 3 | 11.0 | 10.5 – 11.5 | — | 1.000 | — |" in readme
    assert "|  | lazypatch | 3 | 12.0 | 11.5 – 12.5 | +1.00 | 1.091 | — |" in readme
    assert "|  | ddtrace | 0 | not installed | — | — | — | — |" in readme
    assert "## call_overhead\n\nFailed (exit status 1)." in readme
    has_matplotlib = importlib.util.find_spec("matplotlib") is not None
    assert (tmp_path / "startup.png").exists() == has_matplotlib
    assert ("](startup.png)" in readme) == has_matplotlib
    assert ("matplotlib is not installed" in readme) != has_matplotlib
