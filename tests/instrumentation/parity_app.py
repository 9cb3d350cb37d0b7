"""One tiny app (Flask served over loopback, requests, urllib, an SQLite file), instrumented by
OpenTelemetry's own packages (``opentelemetry``) or by lazypatch's (``lazypatch``): the first
argument. Prints its spans and metric points as JSON, with the server's port written as
``{port}`` so that two runs compare. Run by test_parity.py in fresh interpreters, with the
``OTEL_SEMCONV_STABILITY_OPT_IN`` of the mode under test.
"""

import json
import os
import sqlite3
import sys
import tempfile
import threading
import urllib.request

from opentelemetry import metrics, trace
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

exporter = InMemorySpanExporter()
tracer_provider = TracerProvider()
tracer_provider.add_span_processor(SimpleSpanProcessor(exporter))
trace.set_tracer_provider(tracer_provider)
reader = InMemoryMetricReader()
metrics.set_meter_provider(MeterProvider(metric_readers=[reader]))

if sys.argv[1] == "opentelemetry":
    from opentelemetry.instrumentation.flask import FlaskInstrumentor
    from opentelemetry.instrumentation.requests import RequestsInstrumentor
    from opentelemetry.instrumentation.sqlite3 import SQLite3Instrumentor
    from opentelemetry.instrumentation.urllib import URLLibInstrumentor as UrllibInstrumentor
else:
    from lazypatch.instrumentation.flask import FlaskInstrumentor
    from lazypatch.instrumentation.requests import RequestsInstrumentor
    from lazypatch.instrumentation.sqlite3 import SQLite3Instrumentor
    from lazypatch.instrumentation.urllib import UrllibInstrumentor
for instrumentor in (
    FlaskInstrumentor,
    RequestsInstrumentor,
    SQLite3Instrumentor,
    UrllibInstrumentor,
):
    instrumentor().instrument()

import flask  # noqa: E402
import requests  # noqa: E402
from werkzeug.serving import make_server  # noqa: E402

app = flask.Flask("parity")


@app.route("/items/<int:item>", methods=["GET", "POST"])
def item(item):
    return {"item": item}


@app.route("/fail")
def fail():
    flask.abort(503)


server = make_server("127.0.0.1", 0, app)
threading.Thread(target=server.serve_forever, daemon=True).start()
port = server.server_port
base = f"http://127.0.0.1:{port}"

requests.get(f"{base}/items/7?x=1", headers={"User-Agent": "parity/1"})
requests.post(f"{base}/items/8", data=b"{}")
requests.get(f"{base}/fail")
requests.get(f"http://user:pw@127.0.0.1:{port}/items/5")
requests.delete(f"{base}/missing")
request = urllib.request.Request(f"{base}/items/9", headers={"User-Agent": "parity/2"})
urllib.request.urlopen(request).read()
try:
    urllib.request.urlopen(f"{base}/fail")
except urllib.error.HTTPError:
    pass

database = sqlite3.connect(os.path.join(tempfile.mkdtemp(), "parity.db"))
cursor = database.cursor()
cursor.execute("CREATE TABLE t (x INTEGER)")
cursor.execute("INSERT INTO t VALUES (?)", (1,))
cursor.execute("SELECT x FROM t WHERE x = ?", (1,)).fetchall()
try:
    cursor.execute("SELECT nope FROM t")
except sqlite3.OperationalError:
    pass
database.close()
server.shutdown()


def portless(value):
    if value == port:
        return "{port}"
    if isinstance(value, str):
        return value.replace(f":{port}", ":{port}")
    return value


def attributes(mapping):
    return {key: portless(value) for key, value in mapping.items()}


def library(scope):
    return scope.rpartition(".")[2]


spans = [
    {
        "library": library(s.instrumentation_scope.name),
        "kind": s.kind.name,
        "name": s.name,
        "attributes": attributes(s.attributes),
    }
    for s in exporter.get_finished_spans()
]
points = [
    {
        "library": library(scope.scope.name),
        "name": metric.name,
        "unit": metric.unit,
        "attributes": attributes(point.attributes),
        "bounds": list(getattr(point, "explicit_bounds", None) or ()),
    }
    for resource in reader.get_metrics_data().resource_metrics
    for scope in resource.scope_metrics
    for metric in scope.metrics
    for point in metric.data.data_points
]
print(json.dumps({"spans": spans, "points": points}))
