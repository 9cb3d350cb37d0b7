"""Helpers of the instrumentation tests: loopback servers, span waiting, broken tracers, and
the same in fresh interpreters (``SPANHELP``)."""

import contextlib
import inspect
import json
import textwrap
import threading
import time

from opentelemetry import context, trace
from werkzeug.serving import make_server


@contextlib.contextmanager
def serve(app, threaded=True):
    """Serve a WSGI app on loopback in a thread; yield its base URL. Unthreaded, every request
    has been handled to its end (the app's iterable closed) once the block is left."""
    server = make_server("127.0.0.1", 0, app, threaded=threaded)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        thread.join()
        server.server_close()


@contextlib.contextmanager
def serve_asgi(app):
    """Serve an ASGI app with uvicorn on loopback in a thread; yield its base URL."""
    import socket

    import uvicorn

    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    config = uvicorn.Config(app, log_level="warning", lifespan="off", loop="asyncio")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.01)
    try:
        yield f"http://127.0.0.1:{sock.getsockname()[1]}"
    finally:
        server.should_exit = True
        thread.join(30)
        sock.close()


def echo_app(environ, start_response):
    """A WSGI app answering the status in ``?status=`` with the request's traceparent as body."""
    query = dict(p.partition("=")[::2] for p in environ.get("QUERY_STRING", "").split("&") if p)
    status = int(query.get("status", 200))
    body = json.dumps({"traceparent": environ.get("HTTP_TRACEPARENT")}).encode()
    start_response(f"{status} X", [("Content-Type", "application/json")])
    return [body]


def wait_for_spans(exporter, count, timeout=10.0):
    """The finished spans once there are ``count`` (server spans end in the server thread,
    after the client has its response); fails if they never come."""
    deadline = time.monotonic() + timeout
    while True:
        spans = exporter.get_finished_spans()
        if len(spans) >= count or time.monotonic() > deadline:
            assert len(spans) == count, [span.name for span in spans]
            return spans
        time.sleep(0.01)


@contextlib.contextmanager
def context_value(key, value=True):
    token = context.attach(context.set_value(key, value))
    try:
        yield
    finally:
        context.detach(token)


class BrokenTracer(trace.Tracer):
    def start_span(self, *args, **kwargs):
        raise RuntimeError("broken tracer")

    def start_as_current_span(self, *args, **kwargs):
        raise RuntimeError("broken tracer")


class BrokenTracerProvider(trace.TracerProvider):
    """A provider whose tracers raise on every span."""

    def get_tracer(self, *args, **kwargs):
        return BrokenTracer()


def lazypatch_errors(caplog):
    return [r for r in caplog.records if r.name == "lazypatch" and r.levelno >= 30]


# Source of a module ``spanhelp`` for fresh interpreters: the SDK as global tracer provider with
# an in-memory exporter, a loopback server, and the collected spans as plain data.
SPANHELP = """
import json, sys, threading, time
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

exporter = InMemorySpanExporter()
provider = TracerProvider()
provider.add_span_processor(SimpleSpanProcessor(exporter))
trace.set_tracer_provider(provider)


def serve(app):
    from werkzeug.serving import make_server
    server = make_server("127.0.0.1", 0, app, threaded=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return f"http://127.0.0.1:{server.server_port}"


def spans(count=None, timeout=10.0):
    deadline = time.monotonic() + timeout
    while count is not None and len(exporter.get_finished_spans()) < count:
        if time.monotonic() > deadline:
            break
        time.sleep(0.01)
    return [
        {
            "name": s.name,
            "kind": s.kind.name,
            "trace_id": s.context.trace_id,
            "span_id": s.context.span_id,
            "parent_id": s.parent.span_id if s.parent else None,
            "attributes": dict(s.attributes),
            "status": s.status.status_code.name,
        }
        for s in exporter.get_finished_spans()
    ]


def dump(count=None):
    print("SPANS " + json.dumps(spans(count)))
"""


SPANHELP += "\n\n" + inspect.getsource(echo_app)


def script(*parts):
    """Python source made of dedented ``parts``, for ``pyrun``."""
    return "\n".join(textwrap.dedent(part) for part in parts)


def spans_of(proc):
    """The spans a fresh interpreter printed with ``spanhelp.dump()``."""
    for line in proc.stdout.splitlines():
        if line.startswith("SPANS "):
            return json.loads(line[len("SPANS ") :])
    raise AssertionError(f"no spans printed\n{proc.stdout}\n{proc.stderr}")
