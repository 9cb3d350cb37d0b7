"""Startup cost of auto-instrumentation: lazypatch against opentelemetry-instrument and ddtrace.

Each variant runs in fresh processes, interleaved round by round (so that drift of a shared
machine spreads over all variants); for each run the wall time from spawn to exit and the peak
RSS of the process (``os.wait4``) are recorded, and the table shows medians. Every variant sees
the same environment, padded with empty distributions to about 100 installed ones, since
discovery scans them. A second table measures what lazypatch defers: ``import requests`` and
``from flask import Flask`` with ``lazypatch.auto`` against bare, i.e. the price of loading
the instrumentation and applying its patch at that moment (OpenTelemetry waits for the first
span). The goal, as for the real application of ``app_startup.py``: lazypatch's added time is at
most the floor's plus 10%, the floor being the same import after the ones tracing itself needs
(``opentelemetry.sdk.trace`` and ``opentelemetry.sdk.trace.export``). Each import is also measured
under ``lazypatch.auto`` with lazypatch's own instrumentations only
(``LAZYPATCH_OTEL_INSTRUMENTORS=0``): OpenTelemetry's instrumentation packages installed beside
it are armed by design, and urllib3's, which ``import requests`` fires, brings wrapt, asyncio and
packaging with it; that row is lazypatch's own cost.

A third table measures discovery at scale: ``import lazypatch.auto`` in an environment padded to
1,000 installed distributions (a tenth of them with an ``entry_points.txt``), cold (an empty
metadata cache before every run: the first start after an install) and warm (the cache of the
previous start), against bare in that same environment.

Run: ``python benchmarks/startup.py [--rounds N] [--quick] [--output FILE] [--json FILE]``; writes
benchmarks/results/startup.md (or ``--output``; with ``--quick``, only ``--output``).
"""

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import _common

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results"
BIN = Path(sys.executable).parent
TARGET_DISTRIBUTIONS = 100
AT_SCALE = 1000
# The variants' names in the JSON output (the report's tables and chart): short, and the same for
# the wall time and the RSS groups.
SHORT_NAMES = {
    "python -c pass": "bare",
    "python -c 'import lazypatch.auto'": "import lazypatch.auto",
    "lazypatch run python -c pass": "lazypatch run",
    "opentelemetry-instrument python -c pass": "opentelemetry-instrument",
    "python -c 'import ddtrace.auto'": "import ddtrace.auto",
}
PEERS = ["opentelemetry-instrument", "import ddtrace.auto"]
FLOOR_IMPORTS = "import opentelemetry.sdk.trace, opentelemetry.sdk.trace.export"
OWN_ONLY = "lazypatch.auto, own instrumentations only"
DEFERRED = ("bare", "lazypatch.auto", OWN_ONLY, "floor")
GOAL = 1.10  # lazypatch's added time at most the floor's, plus 10%


def _distribution_count() -> int:
    from importlib.metadata import distributions

    return len({d.metadata["Name"] for d in distributions()})


def _pad(directory: Path, count: int, scripts_every: int = 1) -> None:
    """``count`` empty distributions in ``directory``: METADATA each, and a console script in
    every ``scripts_every``-th one. Dated a minute back, as an install that is not brand new."""
    for index in range(count):
        info = directory / f"padding_{index}-1.0.dist-info"
        info.mkdir()
        (info / "METADATA").write_text(
            f"Metadata-Version: 2.1\nName: padding-{index}\nVersion: 1.0\n"
        )
        if index % scripts_every == 0:
            (info / "entry_points.txt").write_text(f"[console_scripts]\npad{index} = pad:main\n")
    old = time.time() - 60
    os.utime(directory, (old, old))


def _run(command, env):
    start = time.perf_counter()
    proc = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - start
    proc.returncode = os.waitstatus_to_exitcode(status)
    stderr = proc.stderr.read()
    proc.stderr.close()
    if proc.returncode != 0:
        raise RuntimeError(f"{command} failed ({proc.returncode}):\n{stderr.decode()}")
    return wall, usage.ru_maxrss / 1024  # KiB -> MiB on Linux


def _variants():
    python = sys.executable
    startup = {
        "python -c pass": [python, "-c", "pass"],
        "python -c 'import lazypatch.auto'": [python, "-c", "import lazypatch.auto"],
        "lazypatch run python -c pass": [str(BIN / "lazypatch"), "run", python, "-c", "pass"],
    }
    skipped = []
    if (BIN / "opentelemetry-instrument").exists():
        startup["opentelemetry-instrument python -c pass"] = [
            str(BIN / "opentelemetry-instrument"),
            python,
            "-c",
            "pass",
        ]
    else:
        skipped.append("opentelemetry-instrument (install the bench extra)")
    if shutil.which("ddtrace-run", path=str(BIN)) or _importable("ddtrace"):
        startup["python -c 'import ddtrace.auto'"] = [python, "-c", "import ddtrace.auto"]
    else:
        skipped.append("ddtrace (install the bench extra)")
    deferred = {}
    for label, code in (
        ("import requests", "import requests"),
        ("from flask import Flask", "from flask import Flask"),
    ):
        deferred[f"{label}: bare"] = [python, "-c", code]
        deferred[f"{label}: lazypatch.auto"] = [python, "-c", f"import lazypatch.auto; {code}"]
        deferred[f"{label}: {OWN_ONLY}"] = [
            python,
            "-c",
            f"import os; os.environ['LAZYPATCH_OTEL_INSTRUMENTORS'] = '0'; "
            f"import lazypatch.auto; {code}",
        ]
        deferred[f"{label}: floor"] = [python, "-c", f"{FLOOR_IMPORTS}; {code}"]
    return startup, deferred, skipped


def _importable(name: str) -> bool:
    from importlib.util import find_spec

    return find_spec(name) is not None


def _measure(variants, env, rounds):
    names = list(variants)
    samples = {name: [] for name in names}
    for index in range(rounds):
        shift = index % len(names)
        for name in names[shift:] + names[:shift]:
            samples[name].append(_run(variants[name], env))
    return samples


AT_SCALE_NAMES = {
    "python -c pass": "bare",
    "python -c 'import lazypatch.auto', cold cache": "lazypatch.auto, cold",
    "python -c 'import lazypatch.auto', warm cache": "lazypatch.auto, warm",
}


def _measure_at_scale(base_env, rounds):
    """bare, cold and warm at :data:`AT_SCALE` distributions; cold and warm use two caches."""
    python = sys.executable
    with tempfile.TemporaryDirectory() as root:
        padding, cold, warm = (Path(root) / name for name in ("padding", "cold", "warm"))
        padding.mkdir()
        env = dict(base_env, PYTHONPATH=str(padding))
        _pad(padding, max(0, AT_SCALE - _distribution_count()), scripts_every=10)
        auto = [python, "-c", "import lazypatch.auto"]
        variants = {
            "python -c pass": ([python, "-c", "pass"], env),
            "python -c 'import lazypatch.auto', cold cache": (
                auto,
                dict(env, LAZYPATCH_CACHE_DIR=str(cold)),
            ),
            "python -c 'import lazypatch.auto', warm cache": (
                auto,
                dict(env, LAZYPATCH_CACHE_DIR=str(warm)),
            ),
        }
        _run(*variants["python -c 'import lazypatch.auto', warm cache"])
        names = list(variants)
        samples = {name: [] for name in names}
        for index in range(rounds):
            shift = index % len(names)
            for name in names[shift:] + names[:shift]:
                shutil.rmtree(cold, ignore_errors=True)
                samples[name].append(_run(*variants[name]))
    return samples


def _table(samples, baseline):
    base_wall = statistics.median(w for w, _ in samples[baseline])
    base_rss = statistics.median(r for _, r in samples[baseline])
    lines = [
        f"| command | wall ms | +ms vs `{baseline}` | peak RSS MiB | +MiB |",
        "|---|---:|---:|---:|---:|",
    ]
    for name, runs in samples.items():
        wall = statistics.median(w for w, _ in runs) * 1000
        rss = statistics.median(r for _, r in runs)
        extra_wall, extra_rss = wall - base_wall * 1000, rss - base_rss
        lines.append(
            f"| `{name}` | {wall:.1f} | {extra_wall:+.1f} | {rss:.1f} | {extra_rss:+.1f} |"
        )
    return "\n".join(lines)


def verdict(samples, label: str) -> str:
    """Whether ``label`` under lazypatch.auto meets the goal against its floor (paired medians)."""
    bare = [w for w, _ in samples[f"{label}: bare"]]

    def added(variant):
        walls = [w for w, _ in samples[f"{label}: {variant}"]]
        return statistics.median(w - b for w, b in zip(walls, bare)) * 1000

    floor = added("floor")
    verdicts = []
    for variant in ("lazypatch.auto", OWN_ONLY):
        ours = added(variant)
        met = "met" if ours <= floor * GOAL else "missed"
        verdicts.append(f"{variant} adds {ours:+.1f} ms: {met}")
    return (
        f"Goal for `{label}`: at most {floor * GOAL:+.1f} ms (the floor adds {floor:+.1f} ms); "
        + "; ".join(verdicts)
        + "."
    )


def _json_groups(startup_samples, deferred_samples, scale_samples):
    """Wall time (ms) and peak RSS (MiB) per variant: startup (charted), then what is deferred.

    A peer that is not installed has no samples.
    """
    quantities = (
        ("wall time", "ms", lambda run: run[0] * 1000),
        ("peak RSS", "MiB", lambda run: run[1]),
    )
    startup = {short: startup_samples.get(name, []) for name, short in SHORT_NAMES.items()}
    groups = [
        _common.group(
            f"startup: {quantity}",
            unit,
            {name: [pick(run) for run in runs] for name, runs in startup.items()},
            peers=PEERS,
        )
        for quantity, unit, pick in quantities
    ]
    for label in ("import requests", "from flask import Flask"):
        deferred = {v: deferred_samples[f"{label}: {v}"] for v in DEFERRED}
        groups += [
            _common.group(
                f"{label}: {quantity}",
                unit,
                {name: [pick(run) for run in runs] for name, runs in deferred.items()},
                chart=False,
            )
            for quantity, unit, pick in quantities
        ]
    scale = {short: scale_samples[name] for name, short in AT_SCALE_NAMES.items()}
    groups += [
        _common.group(
            f"{AT_SCALE:,} distributions: {quantity}",
            unit,
            {name: [pick(run) for run in runs] for name, runs in scale.items()},
            chart=False,
        )
        for quantity, unit, pick in quantities
    ]
    return groups


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=30, help="interleaved rounds (default 30)")
    parser.add_argument("--quick", action="store_true", help="3 rounds, no results file")
    parser.add_argument("--output", type=Path, help="where to write the Markdown table")
    _common.add_json_option(parser)
    args = parser.parse_args()
    if args.output is None and not args.quick:
        args.output = RESULTS / "startup.md"
    rounds = 3 if args.quick else args.rounds
    startup, deferred, skipped = _variants()
    with tempfile.TemporaryDirectory() as padding:
        installed = _distribution_count()
        _pad(Path(padding), max(0, TARGET_DISTRIBUTIONS - installed))
        env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "OTEL_", "DD_"))}
        env.update(
            PYTHONPATH=padding,
            SETUPTOOLS_USE_DISTUTILS="stdlib",
            OTEL_TRACES_EXPORTER="none",
            OTEL_METRICS_EXPORTER="none",
            OTEL_LOGS_EXPORTER="none",
            DD_INSTRUMENTATION_TELEMETRY_ENABLED="false",
            DD_REMOTE_CONFIGURATION_ENABLED="false",
            DD_TRACE_ENABLED="true",
        )
        startup_samples = _measure(startup, env, rounds)
        deferred_samples = _measure(deferred, env, rounds)
    scale_samples = _measure_at_scale(env, rounds)
    parts = [
        "# Startup cost of auto-instrumentation",
        "",
        f"CPython {sys.version.split()[0]}, {os.cpu_count()} cores, "
        f"{max(installed, TARGET_DISTRIBUTIONS)} distributions, medians of {rounds} interleaved "
        "fresh processes (wall time spawn to exit, peak RSS).",
        "",
        _table(startup_samples, "python -c pass"),
        "",
        *(f"Skipped: {line}." for line in skipped),
        "",
        "## Deferred to the first import of an instrumented library",
        "",
        _table(
            {k: v for k, v in deferred_samples.items() if k.startswith("import requests")},
            "import requests: bare",
        ),
        "",
        verdict(deferred_samples, "import requests"),
        "",
        _table(
            {k: v for k, v in deferred_samples.items() if k.startswith("from flask")},
            "from flask import Flask: bare",
        ),
        "",
        verdict(deferred_samples, "from flask import Flask"),
        "",
        f"## At {AT_SCALE:,} installed distributions (a tenth with an entry_points.txt)",
        "",
        "Cold: the metadata cache is emptied before every run (the first start after an "
        "install). Warm: the cache the previous start left.",
        "",
        _table(scale_samples, "python -c pass"),
        "",
    ]
    report = "\n".join(parts)
    print(report)
    if args.output is not None:
        args.output.parent.mkdir(parents=True, exist_ok=True)
        args.output.write_text(report)
    groups = _json_groups(startup_samples, deferred_samples, scale_samples)
    _common.write_json(args.json, "Startup cost of auto-instrumentation", groups)
    return 0


if __name__ == "__main__":
    sys.exit(main())
