"""Instructions per instrumented call, counted by valgrind's callgrind: steady on a loaded machine.

Runs the calls of ``instrumentation_overhead.py`` (same scenarios, same tracer set-ups, same
environment) in a child under ``valgrind --tool=callgrind``: 200 warm-up calls, then ``--calls``
more inside ``sys.call_tracing``, the only code callgrind counts (``--toggle-collect``), so
start-up and first-call work are left out. Prints, per scenario and tracer, the instructions of
one call bare and those lazypatch and OpenTelemetry add, with their ratio. Not part of
``make bench`` (it needs valgrind and takes a few minutes).

    python benchmarks/instrumentation_instructions.py [--calls N] [--scenarios requests,sqlite3]
        [--tracers sdk,sdk+metrics] [--modes bare,lazypatch] [--dump DIR]

``--dump DIR`` keeps each run's callgrind output there (``callgrind.SCENARIO.MODE.TRACER.N``),
for ``callgrind_annotate --inclusive=yes``.
"""

import argparse
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import _common
import instrumentation_overhead as overhead

CHILD = """
import sys
sys.path.insert(0, {here!r})
import instrumentation_overhead as overhead
scenario, mode, tracer, calls = sys.argv[1:5]
overhead._setup_tracer(tracer)
call = getattr(overhead, f"_{{scenario}}_call")(mode)
for _ in range(200):
    call()


def measured(count):
    for _ in range(count):
        call()


sys.call_tracing(measured, (int(calls),))
"""


def per_call(dump: Path, scenario: str, mode: str, tracer: str, calls: int) -> float:
    out = dump / f"callgrind.{scenario}.{mode}.{tracer.replace('+', '_')}"
    command = ["valgrind", "--tool=callgrind", f"--callgrind-out-file={out}"]
    command += ["--collect-atstart=no", "--toggle-collect=sys_call_tracing", sys.executable]
    command += ["-c", CHILD.format(here=str(Path(__file__).resolve().parent))]
    command += [scenario, mode, tracer, str(calls)]
    subprocess.run(command, env=overhead.environment(tracer), check=True, capture_output=True)
    return int(re.search(r"^totals: (\d+)", out.read_text(), re.MULTILINE)[1]) / calls


def main(argv) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    split = lambda text: tuple(text.split(","))  # noqa: E731
    parser.add_argument("--calls", type=int, default=200)
    parser.add_argument("--scenarios", type=split, default=overhead.SCENARIOS)
    parser.add_argument("--tracers", type=split, default=overhead.TRACERS)
    parser.add_argument("--modes", type=split, default=overhead.MODES)
    parser.add_argument("--dump", type=Path, help="keep the callgrind outputs in this directory")
    args = parser.parse_args(argv)
    if shutil.which("valgrind") is None:
        print("valgrind is not installed", file=sys.stderr)
        return 1
    dump = args.dump or Path(tempfile.mkdtemp(prefix="lazypatch-bench-"))
    dump.mkdir(parents=True, exist_ok=True)
    rows = []
    try:
        for scenario in args.scenarios:
            for tracer in args.tracers:
                counts = {
                    mode: per_call(dump, scenario, mode, tracer, args.calls)
                    for mode in args.modes
                    if overhead.installed(scenario, mode)
                }
                bare = counts.get("bare")
                added = {
                    mode: None if bare is None or mode not in counts else counts[mode] - bare
                    for mode in ("lazypatch", "opentelemetry")
                }
                ours, theirs = added["lazypatch"], added["opentelemetry"]
                cells = [
                    "—" if value is None else f"{value / 1000:+,.1f}k" for value in added.values()
                ]
                ratio = f"{ours / theirs:.2f}" if ours is not None and theirs else "—"
                base = f"{bare / 1000:,.1f}k" if bare is not None else "—"
                rows.append([scenario, tracer, base, *cells, ratio])
                raw = ", ".join(f"{mode} {value:,.0f}" for mode, value in counts.items())
                print(f"{scenario}, {tracer}: {raw}", file=sys.stderr, flush=True)
    finally:
        if args.dump is None:
            shutil.rmtree(dump, ignore_errors=True)
    header = ["call", "tracer", "bare", "+ lazypatch", "+ OpenTelemetry", "ratio"]
    print(_common.markdown_table(header, rows))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
