"""The async half of the parity app: a Starlette application served by uvicorn over loopback,
called with httpx (sync and async), instrumented by OpenTelemetry's own packages
(``opentelemetry``) or by lazypatch's (``lazypatch``): the first argument. Prints its spans and
metric points as parity_app.py does. Run by test_parity_async.py in fresh interpreters.
"""

import asyncio
import json
import socket
import sys
import threading
import time

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
    from opentelemetry.instrumentation.httpx import HTTPXClientInstrumentor as HttpxInstrumentor
    from opentelemetry.instrumentation.starlette import StarletteInstrumentor
else:
    from lazypatch.instrumentation.httpx import HttpxInstrumentor
    from lazypatch.instrumentation.starlette import StarletteInstrumentor
HttpxInstrumentor().instrument()
StarletteInstrumentor().instrument()

import httpx  # noqa: E402
import uvicorn  # noqa: E402
from starlette.applications import Starlette  # noqa: E402
from starlette.exceptions import HTTPException  # noqa: E402
from starlette.responses import JSONResponse  # noqa: E402
from starlette.routing import Route  # noqa: E402


async def item(request):
    return JSONResponse({"item": request.path_params["item"]})


async def fail(request):
    raise HTTPException(503)


app = Starlette(
    routes=[Route("/items/{item:int}", item, methods=["GET", "POST"]), Route("/fail", fail)]
)
sock = socket.socket()
sock.bind(("127.0.0.1", 0))
port = sock.getsockname()[1]
server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="off"))
thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
thread.start()
while not server.started:
    time.sleep(0.01)
base = f"http://127.0.0.1:{port}"

with httpx.Client() as client:
    client.get(f"{base}/items/7?x=1", headers={"User-Agent": "parity/1"})
    client.post(f"{base}/items/8", content=b"{}")
    client.get(f"{base}/fail")
    client.get(base.replace("://", "://user:pw@") + "/items/5")


async def calls():
    async with httpx.AsyncClient() as client:
        await client.get(f"{base}/items/9", headers={"User-Agent": "parity/2"})
        await client.delete(f"{base}/missing")


asyncio.run(calls())
server.should_exit = True
thread.join(10)


def portless(value):
    if value == port:
        return "{port}"
    if isinstance(value, str):
        return value.replace(f":{port}", ":{port}")
    return value


def attributes(mapping):
    return {key: portless(value) for key, value in mapping.items()}


def library(scope):
    name = scope.rpartition(".")[2]
    return "starlette" if name in ("asgi", "starlette") else name


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
