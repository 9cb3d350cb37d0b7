"""Helpers shared by the benchmarks: fresh child interpreters, interleaved runs, stats, Markdown.

Every measurement runs in a fresh interpreter, because an import happens once per process. The
child is started with ``-I`` (no user site, no ``PYTHON*`` variables, no current directory on
``sys.path``) so the environment of whoever runs the benchmark does not leak into the numbers,
and with ``SETUPTOOLS_USE_DISTUTILS=stdlib`` so setuptools' distutils shim does not put a finder of
its own in front of every import. Variants run interleaved, one run of each per round, starting
each round with a different variant, so that drift of a shared machine (other jobs, CPU
frequency, page cache) spreads over all variants instead of biasing one.
"""

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
from importlib.metadata import version
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results"

# Imported by every child of every variant before its timed loop: wrapt (for its finder) pulls in
# about 130 stdlib modules, so importing it in the wrapt variant only would change what the timed
# loop of that variant imports. With the same prelude everywhere, each variant's loop imports
# exactly the same modules and only the finders in ``sys.meta_path`` differ.
PRELUDE = "import wrapt, lazypatch\n"


def parse_args(name: str, doc: str, **rounds: int) -> argparse.Namespace:
    """The command line every benchmark shares: ``--quick``, ``--output``, ``--json``.

    Each keyword adds an option for a round count and its default: ``cold_rounds=3`` gives
    ``--cold-rounds N`` (ignored with ``--quick``).
    """
    parser = argparse.ArgumentParser(description=doc.splitlines()[0])
    for option, default in rounds.items():
        parser.add_argument(
            f"--{option.replace('_', '-')}",
            type=int,
            default=default,
            help=f"interleaved rounds (default {default})",
        )
    parser.add_argument(
        "--quick", action="store_true", help="smoke run: tiny corpus, few rounds, no results file"
    )
    parser.add_argument(
        "--output",
        type=Path,
        help=f"where to write the Markdown table (default: benchmarks/results/{name}.md, "
        "none with --quick)",
    )
    add_json_option(parser)
    args = parser.parse_args()
    if args.output is None and not args.quick:
        args.output = RESULTS / f"{name}.md"
    return args


def add_json_option(parser: argparse.ArgumentParser) -> None:
    """``--json FILE``: the raw samples, for the report and charts of ``run_all.py``."""
    parser.add_argument(
        "--json", type=Path, help="also write every sample as JSON (read by run_all.py)"
    )


def group(name, unit, samples, *, peers=(), chart=True) -> dict:
    """One comparison of the JSON output: variant -> samples (one per round, in round order).

    The variant named ``bare`` is the baseline the others are compared with, and so are ``peers``,
    the other libraries' variants; a variant with no samples was not measured (its library is not
    installed). The variants are the same in every group of a benchmark. ``chart=False`` leaves
    the group out of the benchmark's chart.
    """
    return {
        "name": name,
        "unit": unit,
        "peers": list(peers),
        "chart": chart,
        "samples": {variant: list(values) for variant, values in samples.items()},
    }


def write_json(path, title: str, groups) -> None:
    """Write the benchmark's groups (see :func:`group`) to ``path`` unless that is None."""
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps({"title": title, "groups": list(groups)}, indent=1) + "\n")


def run_child(code: str, args=(), xoptions=()) -> str:
    """Run ``code`` in a fresh isolated interpreter and return its stdout (it must exit 0)."""
    env = dict(os.environ, SETUPTOOLS_USE_DISTUTILS="stdlib")
    cmd = [sys.executable, "-I", *(f"-X{opt}" for opt in xoptions), "-c", code, *map(str, args)]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=120)
    if proc.returncode != 0:
        raise RuntimeError(f"benchmark child failed ({proc.returncode}):\n{proc.stderr}")
    return proc.stdout


def interleave(variants: dict, rounds: int) -> dict:
    """Call each of ``variants`` (name -> no-argument callable) once per round, rotating the order.

    Returns name -> list of the callables' results, one per round, so that index ``i`` of two
    variants comes from the same round (see :func:`paired`).
    """
    names = list(variants)
    results = {name: [] for name in names}
    for i in range(rounds):
        shift = i % len(names)
        for name in names[shift:] + names[:shift]:
            results[name].append(variants[name]())
    return results


def paired(samples, baseline, per=1.0):
    """Per-round differences ``(sample - baseline) / per``, pairing runs of the same round."""
    return [(s - b) / per for s, b in zip(samples, baseline)]


def ratios(samples, baseline):
    """Per-round ratios ``sample / baseline``."""
    return [s / b for s, b in zip(samples, baseline)]


def median(values) -> float:
    return statistics.median(values)


def iqr(values) -> tuple:
    """First and third quartile (the middle half of the runs)."""
    if len(values) < 2:
        return values[0], values[0]
    q1, _, q3 = statistics.quantiles(values, n=4, method="inclusive")
    return q1, q3


def fmt_range(low: float, high: float, digits: int) -> str:
    return f"{low:.{digits}f} – {high:.{digits}f}"


def markdown_table(header, rows) -> str:
    """A GitHub-flavoured Markdown table; numbers are expected already formatted as strings."""
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(cell) for cell in row) + " |" for row in rows]
    return "\n".join(lines)


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def git_commit() -> str:
    try:
        out = subprocess.run(
            ["git", "describe", "--always", "--dirty"],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=10,
        )
    except OSError:
        return "unknown"
    return out.stdout.strip() or "unknown"


def environment() -> str:
    """A Markdown list saying where and with what the numbers are taken; call it before the runs."""
    load = ", ".join(f"{x:.2f}" for x in os.getloadavg()) if hasattr(os, "getloadavg") else "n/a"
    return "\n".join(
        [
            f"- machine: {cpu_model()}, {os.cpu_count()} CPUs, {platform.platform()}",
            f"- load average at start (1, 5, 15 min): {load}",
            f"- Python: {platform.python_implementation()} {sys.version.split()[0]}",
            f"- lazypatch {version('lazypatch')} (commit {git_commit()}), wrapt {version('wrapt')}",
        ]
    )


def report(title: str, intro: str, env: str, body: str, output) -> str:
    """Assemble the Markdown report, print it, and write it to ``output`` unless that is None."""
    text = f"# {title}\n\n{intro.strip()}\n\n{env}\n\n{body.strip()}\n"
    print(text)
    if output is not None:
        output.parent.mkdir(parents=True, exist_ok=True)
        output.write_text(text, encoding="utf-8")
    return text
