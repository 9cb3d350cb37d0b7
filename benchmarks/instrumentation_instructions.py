"""Instructions per instrumented call, counted by valgrind's callgrind: steady on a loaded machine.

Runs the calls of ``instrumentation_overhead.py`` (same scenarios, same tracer set-ups, same
environment) in a child under ``valgrind --tool=callgrind``: 200 warm-up calls, then ``--calls``
more inside ``sys.call_tracing``, the only code callgrind counts (``--toggle-collect``), so
start-up and first-call work are left out. Prints, per scenario and tracer, the instructions of
one call bare and those lazypatch and OpenTelemetry add, with their ratio. Not part of
``make bench`` (it needs valgrind and takes a few minutes).

For requests, urllib and sqlite3 it also counts their *floor* with the SDK: the OpenTelemetry
API and SDK calls that lazypatch's instrumentation makes per call, with the same attributes, and
nothing else (span started and ended, context made current, ``traceparent`` injected, one histogram
record). No instrumentation that records what lazypatch records costs less than that, so the
floor over OpenTelemetry's added count is the lowest ratio reachable.

    python benchmarks/instrumentation_instructions.py [--calls N] [--scenarios requests,sqlite3]
        [--tracers sdk,sdk+metrics] [--modes bare,lazypatch,floor] [--dump DIR]

``--dump DIR`` keeps each run's callgrind output there (``callgrind.SCENARIO.MODE.TRACER``),
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
import instrumentation_instructions
import instrumentation_overhead as overhead
scenario, mode, tracer, calls = sys.argv[1:5]
overhead._setup_tracer(tracer)
if mode == "floor":
    call = getattr(instrumentation_instructions, f"_{{scenario}}_floor")(tracer)
else:
    call = getattr(overhead, f"_{{scenario}}_call")(mode)
for _ in range(200):
    call()


def measured(count):
    for _ in range(count):
        call()


sys.call_tracing(measured, (int(calls),))
"""


def _histogram(setup, name):
    if not setup.endswith("metrics"):
        return None
    from lazypatch.instrumentation import _semconv

    return _semconv.duration_histogram(name, "floor")


def _client_floor(setup, agent):
    """What lazypatch's HTTP client wrapper asks of OpenTelemetry per call, and nothing else."""
    from opentelemetry import context, propagate, trace
    from opentelemetry.context import _SUPPRESS_HTTP_INSTRUMENTATION_KEY as suppress

    from lazypatch.instrumentation import _http, _semconv

    url_span, metric = _http.url_attributes("http://service.internal/items/1")
    attributes = dict(url_span)
    _http.method_attributes("GET", attributes)
    if agent:
        attributes[_semconv.USER_AGENT_ORIGINAL] = agent
    metric = {
        **metric,
        _semconv.HTTP_REQUEST_METHOD: "GET",
        _semconv.HTTP_RESPONSE_STATUS_CODE: 200,
    }
    tracer = trace.get_tracer("floor")
    histogram = _histogram(setup, _semconv.HTTP_CLIENT_REQUEST_DURATION)
    client = trace.SpanKind.CLIENT

    def call():
        ctx = context.get_current()
        span = tracer.start_span("GET", ctx, client, attributes)
        span_ctx = trace.set_span_in_context(span, ctx)
        propagate.inject({}, span_ctx)
        context.detach(context.attach(context.set_value(suppress, True, span_ctx)))
        span.set_attribute(_semconv.HTTP_RESPONSE_STATUS_CODE, 200)
        span.end()
        if histogram is not None:
            histogram.record(0.0001, metric)

    return call


def _requests_floor(setup):
    from requests.utils import default_user_agent

    return _client_floor(setup, default_user_agent())


def _urllib_floor(setup):
    return _client_floor(setup, None)  # an opener sends its User-Agent below open()


def _sqlite3_floor(setup):
    """What lazypatch's sqlite3 cursor asks of OpenTelemetry per statement, and nothing else."""
    from opentelemetry import context, trace

    from lazypatch.instrumentation import _semconv as names

    metric = {
        names.DB_SYSTEM_NAME: names.SQLITE,
        names.DB_NAMESPACE: ":memory:",
        names.DB_OPERATION_NAME: "SELECT",
    }
    attributes = {**metric, names.DB_QUERY_TEXT: "SELECT ?"}
    tracer = trace.get_tracer("floor")
    histogram = _histogram(setup, names.DB_CLIENT_OPERATION_DURATION)
    client = trace.SpanKind.CLIENT

    def call():
        ctx = context.get_current()
        span = tracer.start_span("SELECT :memory:", ctx, client, attributes)
        context.detach(context.attach(trace.set_span_in_context(span, ctx)))
        span.end()
        if histogram is not None:
            histogram.record(0.0001, metric)

    return call


FLOORS = ("requests", "urllib", "sqlite3")


def per_call(dump: Path, scenario: str, mode: str, tracer: str, calls: int) -> float:
    out = dump / f"callgrind.{scenario}.{mode}.{tracer.replace('+', '_')}"
    command = ["valgrind", "--tool=callgrind", f"--callgrind-out-file={out}"]
    command += ["--collect-atstart=no", "--toggle-collect=sys_call_tracing", sys.executable]
    command += ["-c", CHILD.format(here=str(Path(__file__).resolve().parent))]
    command += [scenario, mode, tracer, str(calls)]
    # A fixed hash seed: randomised hashing moves a count by a few thousand between runs.
    env = {**overhead.environment(tracer), "PYTHONHASHSEED": "0"}
    subprocess.run(command, env=env, check=True, capture_output=True)
    return int(re.search(r"^totals: (\d+)", out.read_text(), re.MULTILINE)[1]) / calls


def main(argv) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    split = lambda text: tuple(text.split(","))  # noqa: E731
    parser.add_argument("--calls", type=int, default=200)
    parser.add_argument("--scenarios", type=split, default=overhead.SCENARIOS)
    parser.add_argument("--tracers", type=split, default=overhead.TRACERS)
    parser.add_argument("--modes", type=split, default=(*overhead.MODES, "floor"))
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
                    if _measured(scenario, mode, tracer)
                }
                raw = ", ".join(f"{mode} {value:,.0f}" for mode, value in counts.items())
                print(f"{scenario}, {tracer}: {raw}", file=sys.stderr, flush=True)
                rows.append([scenario, tracer, *_cells(counts)])
    finally:
        if args.dump is None:
            shutil.rmtree(dump, ignore_errors=True)
    header = ["call", "tracer", "bare", "+ lazypatch", "+ OpenTelemetry", "ratio"]
    header += ["SDK floor", "floor / OpenTelemetry"]
    print(_common.markdown_table(header, rows))
    return 0


def _measured(scenario, mode, tracer) -> bool:
    if mode == "floor":
        return scenario in FLOORS and tracer.startswith("sdk")
    return overhead.installed(scenario, mode)


def _cells(counts) -> list:
    """Bare, the two added counts, their ratio, the floor and its ratio to OpenTelemetry's."""
    bare = counts.get("bare")
    added = {
        mode: counts[mode] - bare if bare is not None and mode in counts else None
        for mode in ("lazypatch", "opentelemetry")
    }
    ours, theirs = added["lazypatch"], added["opentelemetry"]
    floor = counts.get("floor")

    def thousands(value, sign=""):
        return "—" if value is None else f"{value / 1000:{sign},.1f}k"

    return [
        thousands(bare),
        thousands(ours, "+"),
        thousands(theirs, "+"),
        f"{ours / theirs:.2f}" if ours is not None and theirs else "—",
        thousands(floor),
        f"{floor / theirs:.2f}" if floor is not None and theirs else "—",
    ]


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
