"""Fault injection: whatever breaks on OpenTelemetry's side (tracer provider, spans, exporter,
propagator), the instrumented calls of requests, urllib, Flask, sqlite3, logging, httpx (sync and
async) and Starlette return what they return without lazypatch, and raise what they raise.

Each test runs the same calls once without instrumentation (the reference) and once with all
seven instrumentations on and one fault injected, and compares. Spans whose start raises are
covered per library in their own test modules; a propagator that raises, for requests.
"""

import asyncio
import json
import logging
import re
import sqlite3
import threading
import urllib.error
import urllib.request

import flask
import httpx
import pytest
import requests
from instr_support import lazypatch_errors
from opentelemetry import context, metrics, propagate, trace
from opentelemetry.propagators.textmap import TextMapPropagator
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import (
    BatchSpanProcessor,
    SimpleSpanProcessor,
    SpanExporter,
    SpanExportResult,
)
from starlette.applications import Starlette
from starlette.responses import JSONResponse
from starlette.routing import Route
from starlette.testclient import TestClient

from lazypatch.instrumentation.flask import FlaskInstrumentor
from lazypatch.instrumentation.httpx import HttpxInstrumentor
from lazypatch.instrumentation.logging import LoggingInstrumentor
from lazypatch.instrumentation.requests import RequestsInstrumentor
from lazypatch.instrumentation.sqlite3 import SQLite3Instrumentor
from lazypatch.instrumentation.starlette import StarletteInstrumentor
from lazypatch.instrumentation.urllib import UrllibInstrumentor

ALL = (RequestsInstrumentor, UrllibInstrumentor, FlaskInstrumentor, SQLite3Instrumentor)
ALL += (LoggingInstrumentor, HttpxInstrumentor, StarletteInstrumentor)


def make_app():
    app = flask.Flask(__name__)

    @app.route("/items/<int:item_id>")
    def item(item_id):
        return {"id": item_id}

    @app.route("/boom")
    def boom():
        raise KeyError("boom")

    return app


def make_asgi_app():
    async def item(request):
        return JSONResponse({"id": int(request.path_params["item_id"])})

    async def boom(request):
        raise KeyError("boom")

    return Starlette(routes=[Route("/items/{item_id:int}", item), Route("/boom", boom)])


async def async_get(url):
    async with httpx.AsyncClient() as client:
        return (await client.get(url)).json()


class Capture(logging.Handler):
    def __init__(self):
        super().__init__()
        self.messages = []

    def emit(self, record):
        self.messages.append(self.format(record))


def outcome(call):
    """What a call gives: its result, or its exception's type and text."""
    try:
        return ("returned", call())
    except Exception as exc:
        return ("raised", type(exc).__name__, str(exc))


def run_calls(echo_url):
    """The calls of every instrumented library, as comparable data."""
    app = make_app()
    client = app.test_client()
    app.testing = False  # an unhandled exception becomes a 500, as in production
    db = sqlite3.connect(":memory:")
    log = logging.getLogger("lazypatch.test.faults")
    handler = Capture()
    handler.setFormatter(logging.Formatter("%(levelname)s %(message)s"))
    log.addHandler(handler)
    log.propagate = False
    asgi = TestClient(make_asgi_app(), raise_server_exceptions=False)
    try:
        results = [
            outcome(lambda: requests.get(echo_url).json()),
            outcome(lambda: requests.get(f"{echo_url}/?status=503").status_code),
            outcome(lambda: requests.get("http://127.0.0.1:9/", timeout=5)),
            outcome(lambda: urllib.request.urlopen(echo_url).read()),
            outcome(lambda: urllib.request.urlopen(f"{echo_url}/?status=404").read()),
            outcome(lambda: client.get("/items/3").get_json()),
            outcome(lambda: client.get("/boom", headers=TRACEPARENT).status_code),
            outcome(lambda: db.execute("SELECT 1 + 1").fetchone()),
            outcome(lambda: db.execute("SELECT * FROM missing")),
            outcome(lambda: log.warning("message %d", 7)),
            outcome(lambda: httpx.get(echo_url).json()),
            outcome(lambda: httpx.get(f"{echo_url}/?status=503").status_code),
            outcome(lambda: httpx.get("http://127.0.0.1:9/", timeout=5)),
            outcome(lambda: asyncio.run(async_get(echo_url))),
            outcome(lambda: asgi.get("/items/3").json()),
            outcome(lambda: asgi.get("/boom", headers=TRACEPARENT).status_code),
        ]
    finally:
        log.removeHandler(handler)
        db.close()
    # The traceparent the echo server saw is propagation's doing, compared on its own.
    sent = []
    for index, parse in ((0, None), (3, json.loads), (10, None), (13, None)):
        answer = results[index]
        if answer[0] != "returned":
            sent.append("no answer")
        else:
            sent.append((parse(answer[1]) if parse else answer[1])["traceparent"])
        results[index] = "echoed"
    return {"results": results, "log": handler.messages, "sent": sent}


def without_sent(calls):
    return {key: value for key, value in calls.items() if key != "sent"}


def assert_as_reference(calls, reference, propagated):
    """The same outcomes as without instrumentation; a traceparent sent iff ``propagated``."""
    assert without_sent(calls) == without_sent(reference)
    assert reference["sent"] == [None] * 4
    if propagated:
        assert all(
            re.fullmatch(r"00-[0-9a-f]{32}-[0-9a-f]{16}-[0-9a-f]{2}", t) for t in calls["sent"]
        ), calls
    else:
        assert calls["sent"] == [None] * 4


TRACEPARENT = {"traceparent": "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"}


@pytest.fixture
def reference(echo_url):
    """The calls' outcomes without any instrumentation."""
    return run_calls(echo_url)


@pytest.fixture
def all_on():
    """``all_on(**kwargs)``: the seven instrumentations on (whatever state they reach)."""
    used = []

    def switch_on(**kwargs):
        for cls in ALL:
            instrumentor = cls()
            instrumentor.instrument(**kwargs)
            used.append(instrumentor)
        return used

    yield switch_on
    for instrumentor in used:
        instrumentor.uninstrument()


def assert_clean_context():
    assert trace.get_current_span() is trace.INVALID_SPAN
    assert context.get_current() == context.Context()


# -- a broken tracer provider --------------------------------------------------------------


class GetTracerRaises(trace.TracerProvider):
    def get_tracer(self, *args, **kwargs):
        raise RuntimeError("get_tracer is broken")


def test_provider_whose_get_tracer_raises(all_on, reference, echo_url, caplog):
    instrumentors = all_on(tracer_provider=GetTracerRaises())
    # The tracer is asked for at the first span, not at instrumentation (OpenTelemetry is not
    # imported before): there the failure is reported once and the calls go on untraced.
    assert {i.name: i.state for i in instrumentors} == dict.fromkeys(
        ("requests", "urllib", "flask", "sqlite3", "logging", "httpx", "starlette"), "active"
    )
    assert_as_reference(run_calls(echo_url), reference, propagated=False)
    assert_as_reference(run_calls(echo_url), reference, propagated=False)
    failed = [record.getMessage().split("'")[1] for record in lazypatch_errors(caplog)]
    assert sorted(failed) == ["flask", "httpx", "requests", "sqlite3", "starlette", "urllib"]
    assert_clean_context()


class BrokenSpan(trace.NonRecordingSpan):
    """A span that starts, then raises from every method but ``get_span_context``."""

    def __init__(self):
        super().__init__(
            trace.SpanContext(
                0x0AF7651916CD43DD8448EB211C80319C,
                0x00F067AA0BA902B7,
                is_remote=False,
                trace_flags=trace.TraceFlags(trace.TraceFlags.SAMPLED),
            )
        )

    def is_recording(self):
        return True

    def _broken(self, *args, **kwargs):
        raise RuntimeError("broken span")

    set_attribute = set_attributes = add_event = add_link = update_name = _broken
    set_status = record_exception = end = _broken


class BrokenSpanTracer(trace.Tracer):
    def start_span(self, *args, **kwargs):
        return BrokenSpan()

    def start_as_current_span(self, *args, **kwargs):
        raise RuntimeError("broken tracer")


class BrokenSpanProvider(trace.TracerProvider):
    def get_tracer(self, *args, **kwargs):
        return BrokenSpanTracer()


def test_spans_that_raise_after_starting(all_on, reference, echo_url, caplog):
    all_on(tracer_provider=BrokenSpanProvider())
    calls = run_calls(echo_url)
    # The started span's context is still propagated (it raises only once started).
    assert_as_reference(calls, reference, propagated=True)
    assert calls["sent"] == ["00-0af7651916cd43dd8448eb211c80319c-00f067aa0ba902b7-01"] * 4
    assert lazypatch_errors(caplog), "the failures are reported"
    assert_clean_context()


def test_current_span_whose_context_raises_in_a_log_record(all_on, reference, echo_url):
    class NoContext(BrokenSpan):
        def get_span_context(self):
            raise RuntimeError("broken span context")

    all_on()
    log = logging.getLogger("lazypatch.test.faults.context")
    handler = Capture()
    log.addHandler(handler)
    log.propagate = False
    try:
        with trace.use_span(NoContext(), end_on_exit=False):
            log.warning("inside %s", "a broken span")
    finally:
        log.removeHandler(handler)
    assert handler.messages == ["inside a broken span"]


# -- exporters that raise or hang -------------------------------------------------------------


class RaisingExporter(SpanExporter):
    def __init__(self):
        self.calls = 0

    def export(self, spans):
        self.calls += 1
        raise RuntimeError("exporter is broken")


@pytest.mark.parametrize("processor", [SimpleSpanProcessor, BatchSpanProcessor])
def test_exporter_that_raises(all_on, reference, echo_url, processor):
    exporter = RaisingExporter()
    provider = TracerProvider()
    provider.add_span_processor(processor(exporter))
    all_on(tracer_provider=provider)
    try:
        assert_as_reference(run_calls(echo_url), reference, propagated=True)
        provider.force_flush()
    finally:
        provider.shutdown()
    assert exporter.calls > 0  # it was called, and raised
    assert_clean_context()


class HangingExporter(SpanExporter):
    """Blocks in ``export`` until released (bounded, so a failing test cannot hang the run)."""

    def __init__(self):
        self.entered = threading.Event()
        self.release = threading.Event()

    def export(self, spans):
        self.entered.set()
        self.release.wait(30)
        return SpanExportResult.SUCCESS


def test_exporter_that_hangs_never_blocks_calls_behind_a_batch_processor(
    all_on, reference, echo_url
):
    """What lazypatch sets up (a BatchSpanProcessor) keeps a hanging exporter off the call path:
    the calls return while the export is stuck, and spans beyond the queue are dropped. (A
    SimpleSpanProcessor exports inside ``span.end()``, so a hanging exporter there blocks the
    instrumented call by design of that processor: lazypatch does not set one up.)"""
    exporter = HangingExporter()
    provider = TracerProvider()
    provider.add_span_processor(
        BatchSpanProcessor(
            exporter, max_queue_size=4, schedule_delay_millis=1, max_export_batch_size=1
        )
    )
    all_on(tracer_provider=provider)
    done = {}
    try:

        def calls():
            done["first"] = run_calls(echo_url)
            assert exporter.entered.wait(10), "the exporter was never called"
            done["while stuck"] = run_calls(echo_url)  # the queue overflows: spans dropped

        worker = threading.Thread(target=calls, daemon=True)
        worker.start()
        worker.join(60)
        assert not worker.is_alive(), "an instrumented call blocked on the hanging exporter"
    finally:
        exporter.release.set()
        provider.shutdown()
    assert_as_reference(done["first"], reference, propagated=True)
    assert_as_reference(done["while stuck"], reference, propagated=True)


# -- a propagator that raises -------------------------------------------------------------------


class RaisingPropagator(TextMapPropagator):
    def inject(self, *args, **kwargs):
        raise ValueError("broken propagator")

    def extract(self, *args, **kwargs):
        raise ValueError("broken propagator")

    @property
    def fields(self):
        return {"traceparent"}


def test_propagator_that_raises(all_on, reference, echo_url, caplog):
    """Requests' case is in test_requests; here urllib and httpx (inject), Flask and Starlette
    (extract) too."""
    provider = TracerProvider()
    all_on(tracer_provider=provider)
    previous = propagate.get_global_textmap()
    propagate.set_global_textmap(RaisingPropagator())
    try:
        assert_as_reference(run_calls(echo_url), reference, propagated=False)
    finally:
        propagate.set_global_textmap(previous)
    failed = {record.getMessage().split("'")[1] for record in lazypatch_errors(caplog)}
    assert failed == {"requests", "urllib", "flask", "httpx", "starlette"}
    assert_clean_context()


# -- a meter provider that raises ------------------------------------------------------------


class GetMeterRaises(metrics.NoOpMeterProvider):
    def get_meter(self, *args, **kwargs):
        raise RuntimeError("get_meter is broken")


def stream_answer(request):
    return httpx.Response(200, stream=httpx.ByteStream(b"chunk"))


def test_measurement_that_raises_leaves_the_spans_alone(instrument, exporter, echo_url, caplog):
    """A failed duration measurement is reported once; the span it follows is not ended a
    second time (OpenTelemetry would warn at every request), nor a streamed body's span early."""
    instrumentors = (FlaskInstrumentor, HttpxInstrumentor, StarletteInstrumentor)
    for cls in (*instrumentors, RequestsInstrumentor, UrllibInstrumentor):
        instrument(cls, meter_provider=GetMeterRaises())
    app = make_app().test_client()
    asgi = TestClient(make_asgi_app())  # its requests go through httpx: a client span each
    mock = httpx.Client(transport=httpx.MockTransport(lambda request: httpx.Response(200)))
    for _ in range(2):
        assert app.get("/items/3").get_json() == {"id": 3}
        assert asgi.get("/items/3").json() == {"id": 3}
        assert mock.get("http://service.internal/items/3").status_code == 200
        assert requests.get(echo_url).status_code == 200
        assert urllib.request.urlopen(echo_url).status == 200
    kinds = sorted(span.kind.name for span in exporter.get_finished_spans())
    assert kinds == ["CLIENT"] * 8 + ["SERVER"] * 4
    streaming = httpx.Client(transport=httpx.MockTransport(stream_answer))
    with streaming.stream("GET", "http://service.internal/stream") as response:
        assert len(exporter.get_finished_spans()) == 12, "ended before its body was read"
        assert response.read() == b"chunk"
    assert len(exporter.get_finished_spans()) == 13
    failed = sorted(record.getMessage().split("'")[1] for record in lazypatch_errors(caplog))
    assert failed == ["flask", "httpx", "requests", "starlette", "urllib"]
    ended_again = [r for r in caplog.records if "on an ended span" in r.getMessage()]
    assert ended_again == []
    assert_clean_context()
