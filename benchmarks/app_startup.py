"""Startup of a real application: the shop demo's service, from spawn to its first answers.

The service is ``examples/shop/shop.py`` (Flask, requests, sqlite3, and logging through
werkzeug's request log). Each run spawns it, waits until it listens, then sends the two requests
that go through every instrumented path: ``GET /products/1`` (a server span, a sqlite3 query, a
``requests`` call to the stock service, log records) and ``POST /orders`` (the same with an
``INSERT``). The time is taken from spawn until the second answer has arrived; the process is
then stopped, and its CPU time (which a loaded machine does not inflate) read too. The stock
service is a stub in the benchmark's own process, so only the shop's start-up is measured.
Variants run interleaved, round by round, in fresh processes:

- ``bare``: the service as it is;
- ``import lazypatch.auto``: the same script with that line first;
- ``lazypatch run``: ``lazypatch run python shop.py``;
- ``lazypatch.auto, own instrumentations only``: ``import lazypatch.auto`` with
  ``LAZYPATCH_OTEL_INSTRUMENTORS=0`` (through ``env``): without the OpenTelemetry instrumentation
  packages installed beside it (urllib3's, armed when requests imports urllib3, brings wrapt,
  asyncio and packaging), that is, lazypatch's own cost;
- ``opentelemetry-instrument`` and ``ddtrace-run``, where installed;
- ``floor``: the bare service plus the imports that tracing itself needs
  (``opentelemetry.sdk.trace`` and ``opentelemetry.sdk.trace.export``, where the span processors
  and the in-memory and console exporters live), and nothing else;
- ``floor + provider and propagators``: the floor, plus what any tracer of this service has made
  by its first answer besides its spans: the global tracer provider with the environment's
  resource (``Resource.create()``), and the propagators that read and write ``traceparent``
  (``opentelemetry.propagate``: OpenTelemetry's default, W3C trace context and baggage). The
  first floor has neither, so no tracer that propagates context can come within 10% of it; this
  one says how far lazypatch's own work is from what tracing the service cannot avoid.

Every variant exports to nothing: ``OTEL_TRACES_EXPORTER=none`` (the SDK's spans are made and
dropped) and ``OTEL_METRICS_EXPORTER=none`` (no meter provider: lazypatch's instrumentations then
make no histograms, so neither floor needs the metrics SDK), and ddtrace's agent URL is a closed
local port. The goal: lazypatch's added time is at most the floor's added time plus 10%; the
verdicts are given against both floors.

Run: ``python benchmarks/app_startup.py [--rounds N] [--quick] [--output FILE] [--json FILE]``;
writes benchmarks/results/app_startup.md (or ``--output``; with ``--quick``, only ``--output``).
"""

import http.client
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import _common

ROOT = Path(__file__).resolve().parent.parent
SHOP = ROOT / "examples" / "shop"
BIN = Path(sys.executable).parent
PEERS = ["opentelemetry-instrument", "ddtrace-run"]
FLOOR_IMPORTS = "import opentelemetry.sdk.trace, opentelemetry.sdk.trace.export\n"
FLOOR_TRACING = FLOOR_IMPORTS + (
    "import opentelemetry.propagate\n"
    "from opentelemetry import trace\n"
    "from opentelemetry.sdk.resources import Resource\n"
    "trace.set_tracer_provider(opentelemetry.sdk.trace.TracerProvider(resource=Resource.create()))\n"
)
FLOORS = ("floor", "floor + provider and propagators")
OWN_ONLY = "lazypatch.auto, own instrumentations only"
GOAL = 1.10  # lazypatch's added time at most the floor's, plus 10%
TIMEOUT = 60.0


class _Stock(BaseHTTPRequestHandler):
    """The stock service's two endpoints, answered at once (it is not what is measured)."""

    def do_GET(self):
        product_id = int(self.path.rsplit("/", 1)[-1])
        self._reply(200, {"product_id": product_id, "available": 12})

    def do_POST(self):
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        self._reply(200, {"product_id": body["product_id"], "reserved": body["quantity"]})

    def _reply(self, status, payload):
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args):
        pass


def _request(port: int, method: str, path: str, body=None) -> int:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=TIMEOUT)
    try:
        headers = {"Content-Type": "application/json"} if body is not None else {}
        connection.request(method, path, None if body is None else json.dumps(body), headers)
        response = connection.getresponse()
        response.read()
        return response.status
    finally:
        connection.close()


def _run(command, env, workdir: Path):
    """Spawn the service, send the two requests: (seconds to the second answer, CPU seconds of
    the process, peak RSS MiB)."""
    stderr_path = workdir / "service.stderr"
    with open(stderr_path, "w") as stderr:
        start = time.perf_counter()
        proc = subprocess.Popen(
            command,
            cwd=workdir,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=stderr,
            text=True,
        )
        try:
            port = None
            for line in proc.stdout:
                if line.startswith("listening on http://127.0.0.1:"):
                    port = int(line.rsplit(":", 1)[1])
                    break
            if port is None:
                raise RuntimeError("the service exited before listening")
            statuses = [
                _request(port, "GET", "/products/1"),
                _request(port, "POST", "/orders", {"product_id": 1, "quantity": 1}),
            ]
            wall = time.perf_counter() - start
            if statuses != [200, 201]:
                raise RuntimeError(f"the service answered {statuses}")
        except BaseException as exc:
            proc.kill()
            proc.wait()
            raise RuntimeError(f"{command} failed: {exc}\n{stderr_path.read_text()}") from exc
        proc.terminate()
        _, _, usage = os.wait4(proc.pid, 0)
        proc.returncode = 0
        proc.stdout.close()
    cpu = usage.ru_utime + usage.ru_stime  # up to the kill: the service idles once it answered
    return wall, cpu, usage.ru_maxrss / 1024  # KiB -> MiB on Linux


def _scripts(workdir: Path) -> dict:
    """The service's script as it is, and with one line of imports first (same directory)."""
    source = (SHOP / "shop.py").read_text(encoding="utf-8")
    scripts = {}
    for name, first in (
        ("shop.py", ""),
        ("shop_auto.py", "import lazypatch.auto\n"),
        ("shop_floor.py", FLOOR_IMPORTS),
        ("shop_floor_tracing.py", FLOOR_TRACING),
    ):
        (workdir / name).write_text(first + source, encoding="utf-8")
        scripts[name] = str(workdir / name)
    return scripts


def _variants(scripts: dict):
    python = sys.executable
    shop = scripts["shop.py"]
    variants = {
        "bare": [python, shop],
        "import lazypatch.auto": [python, scripts["shop_auto.py"]],
        "lazypatch run": [str(BIN / "lazypatch"), "run", python, shop],
        OWN_ONLY: ["env", "LAZYPATCH_OTEL_INSTRUMENTORS=0", python, scripts["shop_auto.py"]],
        "opentelemetry-instrument": [str(BIN / "opentelemetry-instrument"), python, shop],
        "ddtrace-run": [str(BIN / "ddtrace-run"), python, shop],
        FLOORS[0]: [python, scripts["shop_floor.py"]],
        FLOORS[1]: [python, scripts["shop_floor_tracing.py"]],
    }
    skipped = [name for name in PEERS if not Path(variants[name][0]).exists()]
    for name in skipped:
        del variants[name]
    return variants, skipped


def _environment(workdir: Path, stock_port: int) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "OTEL_", "DD_"))}
    env.update(
        SETUPTOOLS_USE_DISTUTILS="stdlib",
        PORT="0",
        SHOP_DB=str(workdir / "shop.sqlite3"),
        STOCK_URL=f"http://127.0.0.1:{stock_port}",
        OTEL_SERVICE_NAME="shop",
        OTEL_TRACES_EXPORTER="none",
        OTEL_METRICS_EXPORTER="none",
        OTEL_LOGS_EXPORTER="none",
        DD_SERVICE="shop",
        DD_TRACE_AGENT_URL="http://127.0.0.1:9",
        DD_INSTRUMENTATION_TELEMETRY_ENABLED="false",
        DD_REMOTE_CONFIGURATION_ENABLED="false",
    )
    return env


def _added(values: dict, name: str) -> float:
    """Median over rounds of ``name``'s value minus bare's in the same round."""
    return _common.median(_common.paired(values[name], values["bare"]))


def verdict(values: dict, quantity: str) -> list:
    """Lines saying, for each lazypatch variant, whether it meets the goal against each floor."""
    lines = []
    for floor_name in FLOORS:
        floor = _added(values, floor_name)
        for name in ("import lazypatch.auto", "lazypatch run", OWN_ONLY):
            added = _added(values, name)
            met = "met" if added <= floor * GOAL else "missed"
            lines.append(
                f"- {quantity}, {name}: {added:+.1f} ms against {floor_name}'s {floor:+.1f} ms "
                f"(goal: at most {floor * GOAL:+.1f} ms): {met}."
            )
    return lines


def _table(values: dict, unit: str, rss: dict) -> str:
    """Per variant: median, added and ratio against bare, ratio to each peer, peak RSS."""
    head = [
        "variant",
        unit,
        "added ms",
        "× bare",
        *(f"× {peer}" for peer in PEERS),
        "peak RSS MiB",
    ]
    rows = []
    for name, samples in values.items():
        row = [name, f"{_common.median(samples):.1f}"]
        row.append("—" if name == "bare" else f"{_added(values, name):+.1f}")
        row.append(f"{_common.median(_common.ratios(samples, values['bare'])):.2f}")
        for peer in PEERS:
            if peer in values and peer != name:
                row.append(f"{_common.median(_common.ratios(samples, values[peer])):.2f}")
            else:
                row.append("—")
        row.append(f"{_common.median(rss[name]):.1f}")
        rows.append(row)
    return _common.markdown_table(head, rows)


def main() -> int:
    args = _common.parse_args("app_startup", __doc__, rounds=10)
    rounds = 2 if args.quick else args.rounds
    sys.path.insert(0, str(SHOP))
    import catalog

    stock = ThreadingHTTPServer(("127.0.0.1", 0), _Stock)
    threading.Thread(target=stock.serve_forever, daemon=True).start()
    with tempfile.TemporaryDirectory(prefix="lazypatch-app-") as directory:
        workdir = Path(directory)
        catalog.seed(str(workdir / "shop.sqlite3"), catalog.SHOP_SCHEMA)
        variants, skipped = _variants(_scripts(workdir))
        env = _environment(workdir, stock.server_address[1])
        samples = _common.interleave(
            {name: (lambda c=command: _run(c, env, workdir)) for name, command in variants.items()},
            rounds,
        )
    stock.shutdown()
    walls = {name: [run[0] * 1000 for run in runs] for name, runs in samples.items()}
    cpus = {name: [run[1] * 1000 for run in runs] for name, runs in samples.items()}
    rss = {name: [run[2] for run in runs] for name, runs in samples.items()}
    parts = [
        "# Startup of a real application (the shop demo's service)",
        "",
        f"CPython {sys.version.split()[0]}, {os.cpu_count()} cores, load average "
        f"{', '.join(f'{x:.2f}' for x in os.getloadavg())} at the end; medians of {rounds} "
        "interleaved fresh processes: wall time from spawn to the second answer "
        "(`GET /products/1`, `POST /orders`), CPU time of the service (user + system, up to its "
        "end: it idles once it has answered), peak RSS. On a loaded machine the wall time "
        "includes waiting for a core; the CPU time does not.",
        "",
        _table(walls, "wall ms", rss),
        "",
        _table(cpus, "CPU ms", rss),
        "",
        *verdict(walls, "wall time"),
        *verdict(cpus, "CPU time"),
        *(f"- Skipped: {name} (not installed; install the bench extra)." for name in skipped),
        "",
    ]
    report = "\n".join(parts)
    print(report)
    if args.output is not None:
        args.output.parent.mkdir(parents=True, exist_ok=True)
        args.output.write_text(report)
    groups = [
        _common.group(
            "first answers: wall time",
            "ms",
            {name: walls.get(name, []) for name in _ORDER},
            peers=PEERS,
        ),
        _common.group(
            "first answers: CPU time",
            "ms",
            {name: cpus.get(name, []) for name in _ORDER},
            peers=PEERS,
        ),
        _common.group(
            "first answers: peak RSS",
            "MiB",
            {name: rss.get(name, []) for name in _ORDER},
            peers=PEERS,
            chart=False,
        ),
    ]
    _common.write_json(args.json, "Startup of a real application (shop service)", groups)
    return 0


_ORDER = [
    "bare",
    "import lazypatch.auto",
    "lazypatch run",
    OWN_ONLY,
    "opentelemetry-instrument",
    "ddtrace-run",
    *FLOORS,
]


if __name__ == "__main__":
    sys.exit(main())
