"""Flask: one SERVER span per request for every app, through Flask's request signals."""

import flask
import pytest
import requests
from flask import Blueprint, Flask, Response, abort, stream_with_context
from instr_support import (
    BrokenTracerProvider,
    lazypatch_errors,
    serve,
    wait_for_spans,
)
from opentelemetry.trace import SpanKind, StatusCode
from werkzeug.middleware.proxy_fix import ProxyFix

from lazypatch.instrumentation.flask import FlaskInstrumentor
from lazypatch.testing import each_order


def make_app(cls=Flask):
    app = cls(__name__)

    @app.route("/items/<int:item_id>")
    def item(item_id):
        return {"id": item_id}

    @app.route("/boom")
    def boom():
        raise KeyError("boom")

    @app.route("/handled")
    def handled():
        raise ValueError("handled")

    @app.errorhandler(ValueError)
    def on_value_error(exc):
        return "teapot", 418

    @app.route("/unavailable")
    def unavailable():
        abort(503)

    blueprint = Blueprint("shop", __name__, url_prefix="/shop")

    @blueprint.route("/cart/<name>")
    def cart(name):
        return name

    app.register_blueprint(blueprint)
    return app


def server_span(exporter, count=1):
    (span,) = [s for s in wait_for_spans(exporter, count) if s.kind is SpanKind.SERVER]
    return span


def test_route_attributes(instrument, exporter):
    app = make_app()
    instrument(FlaskInstrumentor)
    with serve(app) as url:
        response = requests.get(f"{url}/items/7?token=abc", headers={"User-Agent": "ua/1"})
    assert response.json() == {"id": 7}
    span = server_span(exporter)
    assert span.name == "GET /items/<int:item_id>"
    client_port = span.attributes["client.port"]
    assert isinstance(client_port, int) and client_port > 0
    assert dict(span.attributes) == {
        "server.address": "127.0.0.1",
        "server.port": int(url.rsplit(":", 1)[1]),
        "client.port": client_port,
        "network.protocol.version": "1.1",
        "http.request.method": "GET",
        "http.route": "/items/<int:item_id>",
        "url.path": "/items/7",
        "url.query": "token=REDACTED",
        "url.scheme": "http",
        "client.address": "127.0.0.1",
        "user_agent.original": "ua/1",
        "http.response.status_code": 200,
    }
    assert span.status.status_code is StatusCode.UNSET
    assert span.parent is None


def test_every_kind_of_app(instrument, exporter):
    class MyFlask(Flask):
        pass

    before = make_app()
    subclassed = make_app(MyFlask)
    proxied = make_app()
    proxied.wsgi_app = ProxyFix(proxied.wsgi_app, x_for=1)
    instrument(FlaskInstrumentor)
    after = make_app()
    for app in (before, subclassed, proxied, after):
        with serve(app) as url:
            requests.get(f"{url}/shop/cart/x", headers={"X-Forwarded-For": "10.1.2.3"})
    spans = wait_for_spans(exporter, 4)
    assert [s.name for s in spans] == ["GET /shop/cart/<name>"] * 4
    assert [s.attributes["client.address"] for s in spans] == [
        "127.0.0.1",
        "127.0.0.1",
        "10.1.2.3",
        "127.0.0.1",
    ]


def test_unhandled_exception(instrument, exporter):
    app = make_app()
    instrument(FlaskInstrumentor)
    with serve(app) as url:
        assert requests.get(f"{url}/boom").status_code == 500
    span = server_span(exporter)
    assert span.status.status_code is StatusCode.ERROR
    assert span.attributes["error.type"] == "KeyError"
    assert span.attributes["http.response.status_code"] == 500
    (event,) = span.events
    assert event.attributes["exception.type"] == "KeyError"


def test_exception_propagating_out_of_the_app(instrument, exporter):
    app = make_app()
    app.config["PROPAGATE_EXCEPTIONS"] = True
    instrument(FlaskInstrumentor)
    with pytest.raises(KeyError):
        app.wsgi_app({"REQUEST_METHOD": "GET", "PATH_INFO": "/boom", **BASE_ENVIRON}, None)
    span = server_span(exporter)
    assert span.attributes["error.type"] == "KeyError"
    assert "http.response.status_code" not in span.attributes


BASE_ENVIRON = {
    "wsgi.url_scheme": "http",
    "SERVER_NAME": "localhost",
    "SERVER_PORT": "80",
    "wsgi.input": None,
}


@pytest.mark.parametrize(
    ("path", "status", "name", "error"),
    [
        ("/handled", 418, "GET /handled", False),
        ("/unavailable", 503, "GET /unavailable", True),
        ("/missing", 404, "GET", False),
    ],
)
def test_status_codes(instrument, exporter, path, status, name, error):
    app = make_app()
    instrument(FlaskInstrumentor)
    with serve(app) as url:
        assert requests.get(url + path).status_code == status
    span = server_span(exporter)
    assert span.name == name
    assert span.attributes["http.response.status_code"] == status
    assert (span.status.status_code is StatusCode.ERROR) is error
    assert not span.events


def test_incoming_traceparent_continued(instrument, exporter):
    app = make_app()
    instrument(FlaskInstrumentor)
    trace_id, parent_id = 0x0AF7651916CD43DD8448EB211C80319C, 0xB7AD6B7169203331
    header = f"00-{trace_id:032x}-{parent_id:016x}-01"
    with serve(app) as url:
        requests.get(f"{url}/items/1", headers={"traceparent": header})
    span = server_span(exporter)
    assert span.context.trace_id == trace_id
    assert span.parent.span_id == parent_id
    assert span.parent.is_remote


@pytest.mark.parametrize("with_context", [False, True])
def test_span_ends_when_streamed_response_is_closed(instrument, exporter, with_context):
    app = Flask(__name__)
    seen = []

    @app.route("/stream")
    def stream():
        def chunks():
            yield "a"
            yield "b"
            seen.append([s.name for s in exporter.get_finished_spans()])

        body = stream_with_context(chunks()) if with_context else chunks()
        return Response(body, mimetype="text/plain")

    instrument(FlaskInstrumentor)
    with serve(app) as url:
        assert requests.get(f"{url}/stream").text == "ab"
    span = server_span(exporter)
    assert seen == [[]]  # the last chunk was produced while the span was still open
    assert span.name == "GET /stream"


def test_views_run_inside_the_span(instrument, provider, exporter):
    app = Flask(__name__)

    @app.route("/")
    def index():
        with provider.get_tracer("t").start_as_current_span("inner"):
            return "ok"

    instrument(FlaskInstrumentor)
    with serve(app) as url:
        requests.get(url)
    inner, server = sorted(wait_for_spans(exporter, 2), key=lambda s: s.kind is SpanKind.SERVER)
    assert inner.parent.span_id == server.context.span_id


def test_uninstrument_stops_every_app(instrument, exporter):
    signals = (
        flask.signals.request_started,
        flask.signals.request_finished,
        flask.signals.got_request_exception,
        flask.signals.request_tearing_down,
    )
    receivers = [dict(signal.receivers) for signal in signals]
    before = make_app()
    instrument(FlaskInstrumentor).uninstrument()
    assert [dict(signal.receivers) for signal in signals] == receivers
    after = make_app()
    for app in (before, after):
        with serve(app) as url:
            requests.get(f"{url}/items/1")
    assert exporter.get_finished_spans() == ()


def test_instrument_twice_one_span(instrument, provider, exporter):
    app = make_app()
    instrument(FlaskInstrumentor)
    FlaskInstrumentor().instrument(tracer_provider=provider)
    with serve(app) as url:
        requests.get(f"{url}/items/1")
    server_span(exporter)


def test_broken_tracer_never_breaks_requests(instrument, caplog):
    app = make_app()
    instrument(FlaskInstrumentor, tracer_provider=BrokenTracerProvider())
    with serve(app) as url:
        assert requests.get(f"{url}/items/3").json() == {"id": 3}
        assert requests.get(f"{url}/boom").status_code == 500
        assert requests.get(f"{url}/handled").status_code == 418
    assert len(lazypatch_errors(caplog)) == 1


@each_order
def test_order_matrix(lazypatch_scenario, order):
    """An app of a subclass, behind middleware, made before: traced in every order, then not."""
    scenario = lazypatch_scenario(
        instrument="""
            from lazypatch.instrumentation.flask import FlaskInstrumentor
            FlaskInstrumentor().instrument()
        """,
        imports="""
            from urllib.request import urlopen
            from flask import Flask
            from werkzeug.middleware.proxy_fix import ProxyFix
            from instr_support import serve
        """,
        setup="""
            class App(Flask):
                pass
            app = App("app")
            app.wsgi_app = ProxyFix(app.wsgi_app)
            app.add_url_rule("/hello/<name>", "hello", lambda name: name)
        """,
        exercise="""
            with serve(app, threaded=False) as url:  # closed: the request and its span are done
                result = urlopen(url + "/hello/x").read().decode()
        """,
        uninstrument="FlaskInstrumentor().uninstrument()",
        order=order,
    )
    assert scenario.result == "x"
    assert [(s.name, s.kind) for s in scenario.spans] == [("GET /hello/<name>", "SERVER")]
    assert scenario.after_uninstrument == []


def test_a_built_response_ends_its_span_without_close(instrument, exporter):
    """A test client that never closes the response still gets the span of a non-streamed body."""
    app = make_app()
    instrument(FlaskInstrumentor)
    response = app.test_client().get("/items/3")
    assert response.json == {"id": 3}
    span = server_span(exporter)
    assert span.name == "GET /items/<int:item_id>"
    assert span.attributes["http.response.status_code"] == 200


def test_an_error_page_ends_its_span_without_close(instrument, exporter):
    """abort(404) gives a body built already (werkzeug calls it streamed): no wait for close()."""
    app = make_app()
    instrument(FlaskInstrumentor)
    response = app.test_client().get("/unavailable")
    assert response.status_code == 503
    span = server_span(exporter)
    assert span.attributes["http.response.status_code"] == 503
    assert span.status.status_code is StatusCode.ERROR
