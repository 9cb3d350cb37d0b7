"""Run every benchmark, then write one report: benchmarks/results/README.md, with a chart each.

Each benchmark runs as a child process of this interpreter (under ``make bench``, the bench venv's,
where the peers are installed). It writes its own detailed Markdown table next to the report and
its raw samples as JSON (``--json``), one value per round and variant, grouped as described in
``_common.group``. From those samples this script writes, for each benchmark, one summary table
(median, interquartile range, added cost and ratio against bare, ratio to each peer) and a chart
(``<name>.png``, when matplotlib is installed), under a header that says on what machine, under
what load and with which versions the numbers were taken.

Round counts are chosen so that the whole run takes under 10 minutes on 2 cores; ``--quick`` runs
each benchmark's smoke mode instead (numbers meaningless, for tests).

Run: ``python benchmarks/run_all.py [--quick] [--output-dir DIR]``.
"""

import argparse
import ast
import json
import math
import os
import platform
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Optional

import _common

HERE = Path(__file__).resolve().parent

# name -> (arguments of the full run, arguments of the smoke run), in report order: startup first,
# it is the chart the project's README shows. The round counts fit the whole run in about 7
# minutes on 2 cores shared with other jobs (load average 4 to 5); each benchmark's defaults,
# meant for a run on its own, take about twice as long.
BENCHMARKS = {
    "startup": (["--rounds", "15"], ["--quick"]),
    "app_startup": (["--rounds", "8"], ["--quick"]),
    "instrumentation_overhead": (["--rounds", "3"], ["--quick"]),
    "call_overhead": (
        ["--calls", "200000", "--repeat", "9"],
        ["--calls", "20000", "--repeat", "3"],
    ),
    "import_overhead": (["--warm-rounds", "5", "--cold-rounds", "3"], ["--quick"]),
    "hook_dispatch": (["--rounds", "20"], ["--quick"]),
}

# Distributions whose versions the header names.
VERSIONED = (
    "wrapt",
    "opentelemetry-api",
    "opentelemetry-sdk",
    "opentelemetry-instrumentation",
    "ddtrace",
    "matplotlib",
)

COLOURS = {"bare": "#9e9e9e", "lazypatch": "#1f77b4", "peer": "#ff7f0e", "other": "#c7c7c7"}


@dataclass
class Run:
    """One benchmark's run: its JSON output (None if it failed), wall time and exit status."""

    name: str
    seconds: float
    data: Optional[dict]
    returncode: int


def run_benchmark(name: str, arguments: list, output_dir: Path, json_dir: Path) -> Run:
    """Run ``benchmarks/<name>.py`` with its output going through to ours; read its JSON."""
    print(f"\n=== {name} {' '.join(arguments)}", flush=True)
    json_path = json_dir / f"{name}.json"
    command = [sys.executable, str(HERE / f"{name}.py"), *arguments]
    command += ["--output", str(output_dir / f"{name}.md"), "--json", str(json_path)]
    start = time.perf_counter()
    returncode = subprocess.run(command, cwd=HERE.parent).returncode
    seconds = time.perf_counter() - start
    print(f"=== {name}: {seconds:.0f} s, exit status {returncode}", flush=True)
    data = json.loads(json_path.read_text(encoding="utf-8")) if returncode == 0 else None
    return Run(name, seconds, data, returncode)


def _version(distribution: str) -> str:
    try:
        return version(distribution)
    except PackageNotFoundError:
        return "not installed"


def _memory_gib() -> str:
    try:
        return f"{os.sysconf('SC_PAGE_SIZE') * os.sysconf('SC_PHYS_PAGES') / 2**30:.0f} GiB"
    except (ValueError, OSError, AttributeError):  # not a POSIX system
        return "unknown"


def _load() -> str:
    if not hasattr(os, "getloadavg"):
        return "n/a"
    return ", ".join(f"{x:.2f}" for x in os.getloadavg())


def header(load_at_start: str, seconds: float, quick: bool) -> str:
    """Machine, load, OS and versions, as a Markdown list; call it when the runs are over."""
    versions = ", ".join(f"{name} {_version(name)}" for name in VERSIONED)
    mode = "smoke run (`--quick`): the numbers mean nothing" if quick else "full run"
    return "\n".join(
        [
            f"- run: {datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC, {mode}, "
            f"{seconds / 60:.1f} minutes in all",
            f"- machine: {_common.cpu_model()}, {os.cpu_count()} cores, {_memory_gib()} memory",
            f"- load average (1, 5, 15 min): {load_at_start} at start, {_load()} at end",
            f"- OS: {platform.platform()}",
            f"- Python: {platform.python_implementation()} {platform.python_version()}",
            f"- lazypatch {_version('lazypatch')} (commit {_common.git_commit()}), {versions}",
        ]
    )


def fmt(value: float, sign: str = "") -> str:
    """A measurement with about three significant digits (``sign="+"``: always signed)."""
    magnitude = abs(value)
    digits = 0 if magnitude >= 100 else 1 if magnitude >= 10 else 2
    return f"{value:{sign}.{digits}f}"


def fmt_ratio(value: float, digits: int = 3) -> str:
    """A ratio: ``digits`` decimals below 10 (import overheads sit near 1), one above."""
    return f"{value:.{digits}f}" if abs(value) < 10 else f"{value:.1f}"


def summary_table(groups: list) -> str:
    """One Markdown table for a benchmark's groups: a row per variant, a column per peer.

    Added cost and ratios are medians over rounds of the variant against the other variant's run
    of the same round, which cancels most of the drift of a shared machine.
    """
    peers = list(dict.fromkeys(peer for group in groups for peer in group["peers"]))
    head = ["measure", "variant", "runs", "median", "IQR", "added vs bare", "× bare"]
    head += [f"× {peer}" for peer in peers]
    rows = []
    for group in groups:
        samples = group["samples"]
        for index, (variant, values) in enumerate(samples.items()):
            label = f"{group['name']} ({group['unit']})" if index == 0 else ""
            if not values:
                rows.append([label, variant, 0, "not installed", *["—"] * (len(head) - 4)])
                continue
            q1, q3 = _common.iqr(values)
            bare = samples["bare"]
            added = _common.median(_common.paired(values, bare))
            row = [label, variant, len(values), fmt(_common.median(values))]
            row += [f"{fmt(q1)} – {fmt(q3)}"]
            row += ["—" if variant == "bare" else fmt(added, "+")]
            row += [fmt_ratio(_common.median(_common.ratios(values, bare)))]
            for peer in peers:
                theirs = samples.get(peer) if peer in group["peers"] else None
                row.append(
                    fmt_ratio(_common.median(_common.ratios(values, theirs))) if theirs else "—"
                )
            rows.append(row)
    return _common.markdown_table(head, rows)


def _pyplot():
    """matplotlib's pyplot drawing to files only, or None when matplotlib is not installed."""
    try:
        import matplotlib
    except ImportError:
        return None
    matplotlib.use("Agg")
    import matplotlib.pyplot

    return matplotlib.pyplot


def _colour(variant: str, group: dict) -> str:
    if variant == "bare":
        return COLOURS["bare"]
    if variant in group["peers"]:
        return COLOURS["peer"]
    return COLOURS["lazypatch"] if "lazypatch" in variant else COLOURS["other"]


def draw_chart(pyplot, title: str, groups: list, path: Path) -> None:
    """Horizontal bars, one panel per charted group: median, IQR whiskers, ratio to bare."""
    groups = [group for group in groups if group["chart"]]
    variants = list(groups[0]["samples"])
    columns = min(2, len(groups))
    rows = math.ceil(len(groups) / columns)
    figure, axes = pyplot.subplots(
        rows,
        columns,
        figsize=(10, rows * (0.55 * len(variants) + 1.1) + 0.9),
        sharey=True,
        squeeze=False,
    )
    for axis, group in zip(axes.flat, groups):
        samples = group["samples"]
        right = max(_common.iqr(values)[1] for values in samples.values() if values)
        for y, variant in enumerate(variants):
            values = samples[variant]
            if not values:
                axis.text(0, y, " not installed", va="center", fontsize=10, color="#555555")
                continue
            middle = _common.median(values)
            low, high = _common.iqr(values)
            axis.barh(y, middle, color=_colour(variant, group), height=0.65)
            axis.errorbar(
                middle, y, xerr=[[middle - low], [high - middle]], color="black", capsize=3
            )
            label = fmt(middle)
            if variant != "bare":
                ratio = _common.median(_common.ratios(values, samples["bare"]))
                label += f"  ×{fmt_ratio(ratio, 2)}"
            axis.text(max(high, middle) + right * 0.02, y, label, va="center", fontsize=10)
        axis.set_yticks(range(len(variants)))
        axis.set_yticklabels(variants, fontsize=11)
        axis.set_xlim(0, right * 1.45)
        axis.set_title(group["name"], fontsize=12)
        axis.set_xlabel(group["unit"], fontsize=10)
        axis.grid(axis="x", alpha=0.3)
    axes[0][0].invert_yaxis()  # first variant on top (the y axis is shared)
    for axis in list(axes.flat)[len(groups) :]:
        axis.set_visible(False)
    figure.suptitle(
        f"{title}\nmedian; whiskers: interquartile range; ×: median of per-round ratios to bare",
        fontsize=13,
    )
    legend = {"bare": "bare", "lazypatch": "lazypatch", "peer": "peer", "other": "reference"}
    used = {_colour(variant, group) for group in groups for variant in variants}
    handles = [
        pyplot.Rectangle((0, 0), 1, 1, color=COLOURS[key], label=label)
        for key, label in legend.items()
        if COLOURS[key] in used
    ]
    figure.legend(handles=handles, loc="lower center", ncol=len(handles), frameon=False)
    figure.tight_layout(rect=(0, 0.06, 1, 1))
    figure.savefig(path, dpi=120)
    pyplot.close(figure)


def summary(path: Path) -> str:
    """What a benchmark measures: its docstring after the title, up to how to run it."""
    doc = ast.get_docstring(ast.parse(path.read_text(encoding="utf-8"))) or ""
    kept = []
    for paragraph in doc.split("\n\n")[1:]:
        if paragraph.startswith(("Run:", "Prints", " ")):
            break
        kept.append(paragraph)
    return "\n\n".join(kept)


def write_report(runs: list, output_dir: Path, machine: str) -> Path:
    """Write README.md (and the charts, when matplotlib is installed) into ``output_dir``."""
    pyplot = _pyplot()
    parts = [
        "# Benchmark results",
        "",
        "Written by `make bench` (`benchmarks/run_all.py`). Every measurement is taken in fresh "
        "processes, variants interleaved round by round. Tables: median and interquartile range "
        "(IQR: the middle half of the runs) of each variant; added cost and ratios are medians "
        "over rounds of the variant against the other variant's run of the same round. The "
        "machine is shared, so its load (below) moves absolute numbers: compare ratios and "
        "variants within one run. Each benchmark's own table, linked under its section, gives "
        "further detail.",
        "",
        machine,
    ]
    if pyplot is None:
        parts += ["", "Charts: none (matplotlib is not installed)."]
    for run in runs:
        script = HERE / f"{run.name}.py"
        if run.data is None:
            parts += ["", f"## {run.name}", "", f"Failed (exit status {run.returncode})."]
            continue
        parts += ["", f"## {run.data['title']}", "", summary(script), ""]
        if pyplot is not None and any(group["chart"] for group in run.data["groups"]):
            draw_chart(
                pyplot, run.data["title"], run.data["groups"], output_dir / f"{run.name}.png"
            )
            parts += [f"![{run.data['title']}]({run.name}.png)", ""]
        parts += [
            summary_table(run.data["groups"]),
            "",
            f"Ran in {run.seconds:.0f} s. Details: [{run.name}.md]({run.name}.md); "
            f"source: [`benchmarks/{run.name}.py`](../{run.name}.py).",
        ]
    path = output_dir / "README.md"
    path.write_text("\n".join(parts) + "\n", encoding="utf-8")
    return path


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smoke run of every benchmark")
    parser.add_argument(
        "--output-dir", type=Path, default=_common.RESULTS, help="default: benchmarks/results"
    )
    args = parser.parse_args()
    args.output_dir.mkdir(parents=True, exist_ok=True)
    load_at_start = _load()
    start = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="lazypatch-bench-") as json_dir:
        runs = [
            run_benchmark(name, quick if args.quick else full, args.output_dir, Path(json_dir))
            for name, (full, quick) in BENCHMARKS.items()
        ]
    machine = header(load_at_start, time.perf_counter() - start, args.quick)
    report = write_report(runs, args.output_dir, machine)
    print(f"\nWrote {report}")
    return 1 if any(run.data is None for run in runs) else 0


if __name__ == "__main__":
    sys.exit(main())
