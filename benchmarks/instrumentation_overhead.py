"""Added cost per call of lazypatch's instrumentations against OpenTelemetry's own.

Six calls, each measured in-process so that I/O noise does not swamp microseconds:

- requests: ``Session.get`` through an adapter that answers in memory (no socket);
- urllib: ``OpenerDirector.open`` of an opener whose HTTP handler answers in memory (no
  socket);
- Flask: one request through ``app.wsgi_app`` (routing, view, response, ``close()``);
- sqlite3: ``cursor.execute("SELECT ?", (1,))`` on an in-memory database;
- httpx (sync) and httpx (async): ``client.get`` through ``httpx.MockTransport`` (in memory; the
  async one on an event loop that stays open, ``run_until_complete`` per call);
- Starlette: one request through a Starlette application's ASGI entry (routing, endpoint,
  response), no server.

Each is run bare, with lazypatch's instrumentation and with OpenTelemetry's
(``opentelemetry-instrumentation-requests``, ``-urllib``, ``-flask``, ``-sqlite3``, ``-httpx``,
``-starlette``: the ``bench`` extra; OpenTelemetry's httpx instrumentor patches only the default
transports, so its ``instrument_client`` is used on the client), under
the API's no-op tracer, under the SDK with a span processor and an exporter that drops spans, and
under that SDK plus a meter provider whose reader drops what it collects (``sdk+metrics``: both
tools record their duration histograms, with ``OTEL_SEMCONV_STABILITY_OPT_IN=http,database``, the
mode in which OpenTelemetry's sqlite3 instrumentation records one). Without a meter provider,
metrics are off the way a user switches them off, ``OTEL_METRICS_EXPORTER=none`` (which
OpenTelemetry's instrumentations do not read: they record into the API's no-op meter). Every
combination runs in a fresh interpreter.
Prints a Markdown table and writes it to ``benchmarks/results/instrumentation_overhead.md``.
OpenTelemetry's instrumentations that are not installed are reported as such.

    python benchmarks/instrumentation_overhead.py [--quick | --rounds N] [--output F] [--json F]
        [--scenarios httpx_sync,starlette]

``--scenarios`` measures a subset; its table is printed (and written only to an ``--output``
given explicitly, so the results file always holds every call).
"""

import argparse
import json
import os
import subprocess
import sys
import time
from importlib.util import find_spec
from pathlib import Path

import _common

SCENARIOS = ("requests", "urllib", "flask", "sqlite3", "httpx_sync", "httpx_async", "starlette")
# Module of OpenTelemetry's instrumentation that each scenario compares with.
OTEL_MODULES = {"httpx_sync": "httpx", "httpx_async": "httpx"}
MODES = ("bare", "lazypatch", "opentelemetry")
TRACERS = ("noop", "sdk", "sdk+metrics")
RESULTS = Path(__file__).resolve().parent / "results" / "instrumentation_overhead.md"


def _setup_tracer(tracer):
    if tracer == "sdk+metrics":
        from opentelemetry import metrics
        from opentelemetry.sdk.metrics import MeterProvider
        from opentelemetry.sdk.metrics.export import (
            MetricExporter,
            MetricExportResult,
            PeriodicExportingMetricReader,
        )

        class DropMetrics(MetricExporter):
            def export(self, metrics_data, timeout_millis=10_000, **kwargs):
                return MetricExportResult.SUCCESS

            def force_flush(self, timeout_millis=10_000):
                return True

            def shutdown(self, timeout_millis=30_000, **kwargs):
                pass

        reader = PeriodicExportingMetricReader(DropMetrics(), export_interval_millis=60_000)
        metrics.set_meter_provider(MeterProvider(metric_readers=[reader]))
    if tracer.startswith("sdk"):
        from opentelemetry import trace
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import (
            SimpleSpanProcessor,
            SpanExporter,
            SpanExportResult,
        )

        class DropSpans(SpanExporter):
            def export(self, spans):
                return SpanExportResult.SUCCESS

        provider = TracerProvider()
        provider.add_span_processor(SimpleSpanProcessor(DropSpans()))
        trace.set_tracer_provider(provider)


def _requests_call(mode):
    import requests
    from requests.adapters import BaseAdapter

    class InMemory(BaseAdapter):
        def send(self, request, **kwargs):
            response = requests.Response()
            response.status_code = 200
            response.request = request
            response.url = request.url
            response._content = b"ok"
            return response

        def close(self):
            pass

    if mode == "lazypatch":
        from lazypatch.instrumentation.requests import RequestsInstrumentor

        RequestsInstrumentor().instrument()
    elif mode == "opentelemetry":
        from opentelemetry.instrumentation.requests import RequestsInstrumentor

        RequestsInstrumentor().instrument()
    session = requests.Session()
    session.trust_env = False  # no proxy variables or .netrc read per call
    session.mount("http://", InMemory())
    return lambda: session.get("http://service.internal/items/1")


def _urllib_call(mode):
    import io
    import urllib.request
    from email.message import Message
    from urllib.response import addinfourl

    if mode == "lazypatch":
        from lazypatch.instrumentation.urllib import UrllibInstrumentor

        UrllibInstrumentor().instrument()
    elif mode == "opentelemetry":
        from opentelemetry.instrumentation.urllib import URLLibInstrumentor

        URLLibInstrumentor().instrument()

    class InMemory(urllib.request.HTTPHandler):
        def http_open(self, request):
            response = addinfourl(io.BytesIO(b"ok"), Message(), request.full_url, 200)
            response.msg = "OK"
            return response

    opener = urllib.request.build_opener(InMemory())
    return lambda: opener.open("http://service.internal/items/1").read()


def _flask_call(mode):
    import flask
    from werkzeug.test import EnvironBuilder

    if mode == "lazypatch":
        from lazypatch.instrumentation.flask import FlaskInstrumentor

        FlaskInstrumentor().instrument()
    app = flask.Flask("bench")

    @app.route("/items/<int:item_id>")
    def item(item_id):
        return "ok"

    if mode == "opentelemetry":
        from opentelemetry.instrumentation.flask import FlaskInstrumentor

        FlaskInstrumentor().instrument_app(app)
    environ = EnvironBuilder(path="/items/1").get_environ()

    def start_response(status, headers, exc_info=None):
        pass

    def call():
        body = app(dict(environ), start_response)
        b"".join(body)
        body.close()

    return call


def _sqlite3_call(mode):
    if mode == "lazypatch":
        from lazypatch.instrumentation.sqlite3 import SQLite3Instrumentor

        SQLite3Instrumentor().instrument()
    elif mode == "opentelemetry":
        from opentelemetry.instrumentation.sqlite3 import SQLite3Instrumentor

        SQLite3Instrumentor().instrument()
    import sqlite3

    cursor = sqlite3.connect(":memory:").cursor()
    return lambda: cursor.execute("SELECT ?", (1,))


def _httpx_client(mode, cls):
    import httpx

    if mode == "lazypatch":
        from lazypatch.instrumentation.httpx import HttpxInstrumentor

        HttpxInstrumentor().instrument()
    client = cls(transport=httpx.MockTransport(lambda request: httpx.Response(200, content=b"ok")))
    if mode == "opentelemetry":
        from opentelemetry.instrumentation.httpx import HTTPXClientInstrumentor

        HTTPXClientInstrumentor.instrument_client(client)
    return client


def _httpx_sync_call(mode):
    import httpx

    client = _httpx_client(mode, httpx.Client)
    return lambda: client.get("http://service.internal/items/1")


def _httpx_async_call(mode):
    import asyncio

    import httpx

    client = _httpx_client(mode, httpx.AsyncClient)
    loop = asyncio.new_event_loop()
    return lambda: loop.run_until_complete(client.get("http://service.internal/items/1"))


def _starlette_call(mode):
    import asyncio

    if mode == "lazypatch":
        from lazypatch.instrumentation.starlette import StarletteInstrumentor

        StarletteInstrumentor().instrument()
    from starlette.applications import Starlette
    from starlette.responses import PlainTextResponse
    from starlette.routing import Route

    async def item(request):
        return PlainTextResponse("ok")

    app = Starlette(routes=[Route("/items/{item_id:int}", item)])
    if mode == "opentelemetry":
        from opentelemetry.instrumentation.starlette import StarletteInstrumentor

        StarletteInstrumentor.instrument_app(app)
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "GET",
        "scheme": "http",
        "path": "/items/1",
        "raw_path": b"/items/1",
        "root_path": "",
        "query_string": b"",
        "headers": [(b"host", b"service.internal"), (b"user-agent", b"bench")],
        "client": ("127.0.0.1", 40000),
        "server": ("127.0.0.1", 8000),
    }

    async def receive():
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message):
        pass

    loop = asyncio.new_event_loop()
    return lambda: loop.run_until_complete(app(dict(scope), receive, send))


def _span_call(mode):
    from opentelemetry import trace

    tracer = trace.get_tracer("bench")
    kind = trace.SpanKind.CLIENT
    attributes = {"db.system.name": "sqlite", "db.namespace": ":memory:", "db.query.text": "S"}
    return lambda: tracer.start_span("SELECT", None, kind, attributes).end()


def worker(scenario, mode, tracer, seconds):
    """Print the best mean time per call, in microseconds, of one combination."""
    _setup_tracer(tracer)
    call = globals()[f"_{scenario}_call"](mode)
    for _ in range(200):
        call()
    number = 1
    while True:
        start = time.perf_counter()
        for _ in range(number):
            call()
        if time.perf_counter() - start > seconds / 10:
            break
        number *= 2
    best = float("inf")
    for _ in range(7):
        start = time.perf_counter()
        for _ in range(number):
            call()
        best = min(best, (time.perf_counter() - start) / number)
    print(json.dumps(best * 1e6))


def environment(tracer):
    """The environment of a worker: metrics on (an SDK meter provider) or off."""
    env = dict(os.environ)
    if tracer.endswith("metrics"):
        env.pop("OTEL_METRICS_EXPORTER", None)
        # OpenTelemetry's sqlite3 records db.client.operation.duration only in this mode.
        env["OTEL_SEMCONV_STABILITY_OPT_IN"] = "http,database"
    else:
        env["OTEL_METRICS_EXPORTER"] = "none"
    return env


def measure(scenario, mode, tracer, seconds):
    proc = subprocess.run(
        [sys.executable, __file__, "--worker", scenario, mode, tracer, str(seconds)],
        capture_output=True,
        text=True,
        check=True,
        env=environment(tracer),
    )
    return json.loads(proc.stdout.splitlines()[-1])


def installed(scenario, mode) -> bool:
    """Whether the instrumentation that ``mode`` needs for ``scenario`` is installed."""
    if mode != "opentelemetry":
        return True
    module = OTEL_MODULES.get(scenario, scenario)
    try:
        return find_spec(f"opentelemetry.instrumentation.{module}") is not None
    except ModuleNotFoundError:  # not even opentelemetry-instrumentation
        return False


def table(results, scenarios=SCENARIOS):
    lines = [
        "| call | tracer | bare (µs) | + lazypatch (µs) | + OpenTelemetry (µs) | ratio |",
        "|---|---|---:|---:|---:|---:|",
    ]
    for scenario in scenarios:
        for tracer in TRACERS:
            bare = results[scenario, "bare", tracer]
            ours = results[scenario, "lazypatch", tracer] - bare
            if (scenario, "opentelemetry", tracer) in results:
                theirs = results[scenario, "opentelemetry", tracer] - bare
                ratio = f"{ours / theirs:.2f}" if theirs > 0 else "n/a"
                theirs = f"{theirs:+.1f}"
            else:
                theirs = ratio = "not installed"
            lines.append(
                f"| {scenario} | {tracer} | {bare:.1f} | {ours:+.1f} | {theirs} | {ratio} |"
            )
    floor = " / ".join(
        f"{tracer} {results['span', 'bare', tracer]:.1f} µs" for tracer in TRACERS[:2]
    )
    lines.append("")
    lines.append(f"Cost of one span with three attributes, started and ended: {floor}.")
    return "\n".join(lines)


def json_groups(samples, scenarios=SCENARIOS):
    """Per-round µs per call of each (call, tracer): bare, lazypatch, OpenTelemetry."""
    names = {"bare": "bare", "lazypatch": "lazypatch", "opentelemetry": "OpenTelemetry"}
    return [
        _common.group(
            f"{scenario}, {tracer}",
            "µs per call",
            {names[mode]: samples.get((scenario, mode, tracer), []) for mode in MODES},
            peers=["OpenTelemetry"],
        )
        for scenario in scenarios
        for tracer in TRACERS
    ]


def main(argv):
    if argv[:1] == ["--worker"]:
        scenario, mode, tracer, seconds = argv[1:5]
        worker(scenario, mode, tracer, float(seconds))
        return
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smoke run: 1 short round")
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds (default 3)")
    parser.add_argument("--output", type=Path)
    parser.add_argument(
        "--scenarios",
        type=lambda text: tuple(name for name in SCENARIOS if name in text.split(",")),
        default=SCENARIOS,
        help="comma list of calls to measure (default: all)",
    )
    _common.add_json_option(parser)
    args = parser.parse_args(argv)
    scenarios = args.scenarios
    if args.output is None and scenarios == SCENARIOS:
        args.output = RESULTS
    seconds, rounds = (0.3, 1) if args.quick else (1.0, args.rounds)
    cells = [(s, m, t) for s in scenarios for t in TRACERS for m in MODES if installed(s, m)]
    cells += [("span", "bare", t) for t in TRACERS[:2]]
    samples = {cell: [] for cell in cells}
    for _ in range(rounds):  # interleaved rounds, best of each: load drifts between cells
        for cell in cells:
            samples[cell].append(measure(*cell, seconds))
    text = table({cell: min(values) for cell, values in samples.items()}, scenarios)
    print(text)
    groups = json_groups(samples, scenarios)
    _common.write_json(args.json, "Instrumentation overhead per call", groups)
    if args.output is None:
        return
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(
        "# Instrumentation overhead per call\n\n"
        f"Best mean of 7 runs times {rounds} interleaved rounds, fresh interpreter per cell; "
        "`noop`: API without SDK, `sdk`: SDK, simple processor, exporter that drops spans "
        "(metrics off: `OTEL_METRICS_EXPORTER=none`), `sdk+metrics`: the same and an SDK meter "
        "provider whose periodic reader drops what it exports; "
        "ratio: lazypatch's added cost over OpenTelemetry's. Produced by "
        "`python benchmarks/instrumentation_overhead.py`.\n\n" + text + "\n"
    )


if __name__ == "__main__":
    main(sys.argv[1:])
