"""Starlette: one SERVER span per HTTP request of every Starlette and FastAPI application."""

import asyncio
import inspect
import json

import httpx
import pytest
from fastapi import FastAPI, HTTPException
from instr_support import (
    SPANHELP,
    BrokenTracerProvider,
    lazypatch_errors,
    script,
    serve_asgi,
    spans_of,
    wait_for_spans,
)
from opentelemetry import trace
from opentelemetry.trace import SpanKind, StatusCode
from starlette.applications import Starlette
from starlette.responses import PlainTextResponse, StreamingResponse
from starlette.routing import Mount, Route, WebSocketRoute
from starlette.testclient import TestClient

from lazypatch.instrumentation.httpx import HttpxInstrumentor
from lazypatch.instrumentation.starlette import StarletteInstrumentor

# FastAPI from 0.16x traces itself once a tracer provider is set, unless an instrumentation is.
NATIVE = "telemetry" in inspect.signature(FastAPI).parameters


def make_fastapi(**kwargs):
    app = FastAPI(**kwargs)

    @app.get("/items/{item_id}")
    async def item(item_id: int):
        return {"id": item_id}

    @app.get("/sync/{name}")
    def sync_view(name: str):  # run in a worker thread
        return {"span": trace.get_current_span().get_span_context().span_id}

    @app.get("/boom")
    async def boom():
        raise KeyError("boom")

    @app.get("/unavailable")
    async def unavailable():
        raise HTTPException(503)

    return app


async def hello(request):
    return PlainTextResponse("hello " + request.path_params["name"])


def server_spans(exporter, count=1):
    spans = [s for s in wait_for_spans(exporter, count) if s.kind is SpanKind.SERVER]
    return spans


def only_server_span(exporter, count=1):
    (span,) = server_spans(exporter, count)
    return span


def test_fastapi_under_uvicorn(instrument, exporter):
    app = make_fastapi()  # created before instrumentation
    instrument(StarletteInstrumentor)
    trace_id, parent_id = 0x0AF7651916CD43DD8448EB211C80319C, 0xB7AD6B7169203331
    headers = {"traceparent": f"00-{trace_id:032x}-{parent_id:016x}-01", "User-Agent": "ua/1"}
    with serve_asgi(app) as url:
        response = httpx.get(f"{url}/items/7?token=abc", headers=headers)
        port = int(url.rsplit(":", 1)[1])
    assert response.json() == {"id": 7}
    span = only_server_span(exporter)
    assert span.name == "GET /items/{item_id}"
    attributes = dict(span.attributes)
    assert isinstance(attributes.pop("client.port"), int)
    assert attributes == {
        "http.request.method": "GET",
        "http.route": "/items/{item_id}",
        "url.path": "/items/7",
        "url.query": "token=REDACTED",
        "url.scheme": "http",
        "client.address": "127.0.0.1",
        "server.address": "127.0.0.1",
        "server.port": port,
        "network.protocol.version": "1.1",
        "user_agent.original": "ua/1",
        "http.response.status_code": 200,
    }
    assert span.status.status_code is StatusCode.UNSET
    assert span.context.trace_id == trace_id
    assert span.parent.span_id == parent_id
    assert span.parent.is_remote


@pytest.mark.parametrize(
    ("path", "status", "name", "error"),
    [
        ("/unavailable", 503, "GET /unavailable", "503"),
        ("/missing", 404, "GET", None),
        ("/boom", 500, "GET /boom", "KeyError"),
    ],
)
def test_status_and_exceptions(instrument, exporter, path, status, name, error):
    instrument(StarletteInstrumentor)
    client = TestClient(make_fastapi(), raise_server_exceptions=False)
    assert client.get(path).status_code == status
    span = only_server_span(exporter)
    assert span.name == name
    assert span.attributes["http.response.status_code"] == status
    assert span.attributes.get("error.type") == error
    assert (span.status.status_code is StatusCode.ERROR) is (error is not None)
    assert [event.name for event in span.events] == (["exception"] if status == 500 else [])


def test_views_run_inside_the_span_in_threads_too(instrument, exporter):
    instrument(StarletteInstrumentor)
    body = TestClient(make_fastapi()).get("/sync/x").json()
    assert body["span"] == only_server_span(exporter).context.span_id


@pytest.mark.parametrize("outer", ["starlette", "fastapi"])
def test_mounted_apps_give_one_span(instrument, exporter, outer):
    inner = Starlette(routes=[Route("/hello/{name}", hello)])
    api = make_fastapi()
    if outer == "starlette":
        app = Starlette(routes=[Mount("/api", api), Mount("/sub", inner)])
    else:
        app = make_fastapi()
        app.mount("/sub", inner)
        app.mount("/api", make_fastapi())
    instrument(StarletteInstrumentor)
    client = TestClient(app)
    assert client.get("/sub/hello/x").text == "hello x"
    assert client.get("/api/items/3").json() == {"id": 3}
    assert [s.name for s in server_spans(exporter, 2)] == [
        "GET /sub/hello/{name}",
        "GET /api/items/{item_id}",
    ]


def test_streaming_response_ends_its_span_after_the_last_chunk(instrument, exporter):
    seen = []

    async def chunks():
        yield b"a"
        yield b"b"
        seen.append([s.name for s in exporter.get_finished_spans() if s.kind is SpanKind.SERVER])

    async def stream(request):
        return StreamingResponse(chunks())

    instrument(StarletteInstrumentor)
    app = Starlette(routes=[Route("/stream", stream)])
    with serve_asgi(app) as url:
        assert httpx.get(f"{url}/stream").text == "ab"
    assert only_server_span(exporter).name == "GET /stream"
    assert seen == [[]]  # the last chunk was produced while the span was still open


def test_no_span_for_lifespan_or_websocket(instrument, exporter):
    events = []

    async def echo(websocket):
        await websocket.accept()
        await websocket.send_text(await websocket.receive_text())
        await websocket.close()

    async def lifespan(app):
        events.append("startup")
        yield
        events.append("shutdown")

    import contextlib

    app = Starlette(
        routes=[WebSocketRoute("/ws", echo)], lifespan=contextlib.asynccontextmanager(lifespan)
    )
    instrument(StarletteInstrumentor)
    with TestClient(app) as client:
        with client.websocket_connect("/ws") as websocket:
            websocket.send_text("ping")
            assert websocket.receive_text() == "ping"
    assert events == ["startup", "shutdown"]
    assert [s for s in exporter.get_finished_spans() if s.kind is SpanKind.SERVER] == []


@pytest.mark.skipif(not NATIVE, reason="this FastAPI has no telemetry of its own")
def test_fastapis_own_telemetry_steps_aside(instrument, provider, exporter):
    """As it does for OpenTelemetry's ASGI middleware; it is back once uninstrumented."""
    app = FastAPI(telemetry={"tracer_provider": provider})

    @app.get("/items/{item_id}")
    async def item(item_id: int):
        return {"id": item_id}

    client = TestClient(app)
    instrumentor = instrument(StarletteInstrumentor)
    client.get("/items/1")
    (span,) = exporter.get_finished_spans()
    assert span.instrumentation_scope.name == "lazypatch.instrumentation.starlette"
    exporter.clear()
    instrumentor.uninstrument()
    client.get("/items/1")
    servers = [s for s in exporter.get_finished_spans() if s.kind is SpanKind.SERVER]
    assert [s.instrumentation_scope.name for s in servers] == ["fastapi"]


async def asgi_echo(scope, receive, send):
    """A bare ASGI app (no Starlette: no span) answering with the traceparent it was sent."""
    headers = dict(scope["headers"])
    body = json.dumps({"traceparent": headers.get(b"traceparent", b"").decode()}).encode()
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": body})


def test_concurrent_requests_each_have_their_own_client_spans(instrument, exporter):
    """50 concurrent requests: each handler's httpx.AsyncClient call is a child of its own
    request's server span, and carries that child's context to the next service."""
    count = 50
    with serve_asgi(asgi_echo) as echo_url:
        app = make_fastapi()

        @app.get("/fan/{index}")
        async def fan(index: int):
            async with httpx.AsyncClient(timeout=60) as client:
                await asyncio.sleep(0)
                answer = await client.get(f"{echo_url}/?index={index}")
            return {"sent": answer.json()["traceparent"]}

        instrument(StarletteInstrumentor)
        instrument(HttpxInstrumentor)

        async def all_requests(url):
            limits = httpx.Limits(max_connections=count)
            async with httpx.AsyncClient(base_url=url, limits=limits, timeout=60) as client:
                return await asyncio.gather(*(client.get(f"/fan/{i}") for i in range(count)))

        with serve_asgi(app) as url:
            responses = asyncio.run(all_requests(url))
    assert [r.status_code for r in responses] == [200] * count
    spans = wait_for_spans(exporter, 3 * count)
    by_id = {s.context.span_id: s for s in spans}
    servers = {s.attributes["url.path"]: s for s in spans if s.kind is SpanKind.SERVER}
    assert len(servers) == count
    for index, response in enumerate(responses):
        server = servers[f"/fan/{index}"]
        inner = by_id[int(response.json()["sent"].split("-")[2], 16)]
        assert inner.kind is SpanKind.CLIENT
        assert inner.attributes["url.full"].endswith(f"/?index={index}")
        assert inner.parent.span_id == server.context.span_id
        outer = by_id[server.parent.span_id]  # the test's own client call
        assert outer.attributes["url.full"].endswith(f"/fan/{index}")


def test_uninstrument_and_instrument_again(instrument, provider, exporter):
    app = make_fastapi()
    client = TestClient(app)
    instrumentor = instrument(StarletteInstrumentor)
    instrumentor.uninstrument()
    client.get("/items/1")
    assert exporter.get_finished_spans() == ()
    instrumentor.instrument(tracer_provider=provider)
    StarletteInstrumentor().instrument(tracer_provider=provider)
    client.get("/items/1")
    only_server_span(exporter)


def test_broken_tracer_never_breaks_requests(instrument, caplog):
    instrument(StarletteInstrumentor, tracer_provider=BrokenTracerProvider())
    client = TestClient(make_fastapi(), raise_server_exceptions=False)
    assert client.get("/items/3").json() == {"id": 3}
    assert client.get("/boom").status_code == 500
    assert client.get("/unavailable").status_code == 503
    assert len(lazypatch_errors(caplog)) == 1


def test_the_asgi_entry_answers_servers_as_starlettes_does(instrument):
    """Servers ask before calling: uvicorn calls the app with no arguments (a TypeError says it
    is not a factory), then asks whether ``__call__`` is a coroutine function (ASGI 3 or 2);
    Starlette's TestClient asks the same."""
    instrument(StarletteInstrumentor)
    app = make_fastapi()
    with pytest.raises(TypeError):
        app()
    assert inspect.iscoroutinefunction(Starlette.__call__)
    assert inspect.iscoroutinefunction(app.__call__)
    assert asyncio.iscoroutinefunction(app.__call__)


# -- the order matrix, in fresh interpreters --------------------------------------------------

ORDER = {
    "before import": """
        StarletteInstrumentor().instrument()
        from fastapi import FastAPI
        app = make_app(FastAPI)
    """,
    "after import": """
        from fastapi import FastAPI
        StarletteInstrumentor().instrument()
        app = make_app(FastAPI)
    """,
    "after the app was made": """
        from fastapi import FastAPI
        app = make_app(FastAPI)
        StarletteInstrumentor().instrument()
    """,
    "instrument, uninstrument, instrument": """
        from fastapi import FastAPI
        app = make_app(FastAPI)
        instrumentor = StarletteInstrumentor()
        instrumentor.instrument()
        instrumentor.uninstrument()
        assert call(app) == {"id": 1}
        assert spanhelp.spans() == [], "traced while uninstrumented"
        instrumentor.instrument()
        instrumentor.instrument()
    """,
}

MATRIX_PRELUDE = """
    import asyncio, inspect, spanhelp
    from lazypatch.instrumentation.starlette import StarletteInstrumentor

    def make_app(FastAPI):
        # Uninstrumented, a FastAPI with telemetry of its own would trace: not what is tested.
        native = "telemetry" in inspect.signature(FastAPI).parameters
        app = FastAPI(**({"telemetry": {"tracing": False}} if native else {}))
        app.get("/items/{item_id}")(items)
        return app

    async def items(item_id: int):
        return {"id": item_id}

    def call(app):
        import httpx
        async def get():
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://app") as client:
                return (await client.get("/items/1")).json()
        return asyncio.run(get())
"""


@pytest.mark.parametrize("order", ORDER)
def test_order_matrix(pyrun, order):
    code = script(
        MATRIX_PRELUDE,
        ORDER[order],
        """
        assert call(app) == {"id": 1}
        spanhelp.dump()
        """,
    )
    spans = spans_of(pyrun(code, files={"spanhelp.py": SPANHELP}))
    assert [(s["name"], s["kind"]) for s in spans] == [("GET /items/{item_id}", "SERVER")]
