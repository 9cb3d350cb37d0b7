"""httpx: one CLIENT span per request of every sync and async client and transport."""

import asyncio

import httpx
import pytest
from instr_support import (
    SPANHELP,
    BrokenTracerProvider,
    context_value,
    lazypatch_errors,
    script,
    spans_of,
)
from opentelemetry.context import _SUPPRESS_HTTP_INSTRUMENTATION_KEY, _SUPPRESS_INSTRUMENTATION_KEY
from opentelemetry.trace import SpanKind, StatusCode

from lazypatch.instrumentation.httpx import HttpxInstrumentor


def run(coroutine):
    return asyncio.run(coroutine)


def only_span(exporter):
    (span,) = exporter.get_finished_spans()
    assert span.kind is SpanKind.CLIENT
    return span


def traceparent_of(span):
    return f"00-{span.context.trace_id:032x}-{span.context.span_id:016x}-"


def test_sync_client_attributes_and_propagation(instrument, exporter, echo_url):
    client = httpx.Client()  # created before instrumentation
    instrument(HttpxInstrumentor)
    port = int(echo_url.rsplit(":", 1)[1])
    url = echo_url.replace("http://", "http://user:secret@") + "/items/7?token=abc&page=2"
    response = client.get(url, headers={"User-Agent": "ua/1"})
    span = only_span(exporter)
    assert response.json()["traceparent"].startswith(traceparent_of(span))
    assert span.name == "GET"
    assert dict(span.attributes) == {
        "http.request.method": "GET",
        "url.full": f"http://REDACTED:REDACTED@127.0.0.1:{port}/items/7?token=REDACTED&page=2",
        "server.address": "127.0.0.1",
        "server.port": port,
        "network.peer.address": "127.0.0.1",
        "network.peer.port": port,
        "user_agent.original": "ua/1",
        "network.protocol.version": "1.1",
        "http.response.status_code": 200,
    }
    assert span.status.status_code is StatusCode.UNSET


def test_async_client(instrument, exporter, echo_url):
    async def call():
        async with httpx.AsyncClient() as client:
            return await client.post(f"{echo_url}/?status=503", content=b"x")

    instrument(HttpxInstrumentor)
    response = run(call())
    span = only_span(exporter)
    assert response.status_code == 503
    assert response.json()["traceparent"].startswith(traceparent_of(span))
    assert span.name == "POST"
    assert span.attributes["http.response.status_code"] == 503
    assert span.attributes["error.type"] == "503"
    assert span.status.status_code is StatusCode.ERROR


@pytest.mark.parametrize("kind", ["sync", "async"])
def test_transport_error(instrument, exporter, kind):
    instrument(HttpxInstrumentor)
    with pytest.raises(httpx.ConnectError):
        if kind == "sync":
            httpx.get("http://127.0.0.1:9/")
        else:

            async def call():
                async with httpx.AsyncClient() as client:
                    await client.get("http://127.0.0.1:9/")

            run(call())
    span = only_span(exporter)
    assert span.attributes["error.type"] == "httpx.ConnectError"
    assert "http.response.status_code" not in span.attributes
    assert span.status.status_code is StatusCode.ERROR
    (event,) = span.events
    assert event.name == "exception"


def test_transports_called_directly_and_under_a_client(instrument, exporter, echo_url):
    transport = httpx.HTTPTransport()
    instrument(HttpxInstrumentor)
    request = httpx.Request("GET", echo_url)
    response = transport.handle_request(request)
    response.read()
    response.close()
    (span,) = exporter.get_finished_spans()
    assert request.headers["traceparent"].startswith(traceparent_of(span))
    exporter.clear()
    with httpx.Client(transport=transport) as client:
        client.get(echo_url)
    assert len(exporter.get_finished_spans()) == 1  # the client's; the transport adds none

    async def call():
        transport = httpx.AsyncHTTPTransport()
        response = await transport.handle_async_request(httpx.Request("GET", echo_url))
        await response.aread()
        await response.aclose()
        async with httpx.AsyncClient(transport=transport) as client:
            await client.get(echo_url)

    exporter.clear()
    run(call())
    assert len(exporter.get_finished_spans()) == 2


def test_any_transport_a_client_is_given(instrument, exporter):
    seen = []

    def handler(request):
        seen.append(request.headers.get("traceparent"))
        return httpx.Response(404, text="no")

    instrument(HttpxInstrumentor)
    client = httpx.Client(transport=httpx.MockTransport(handler), base_url="http://svc")
    assert client.get("/missing").status_code == 404
    span = only_span(exporter)
    assert seen[0].startswith(traceparent_of(span))
    assert span.attributes["url.full"] == "http://svc/missing"
    assert span.attributes["error.type"] == "404"


def test_redirects_give_a_span_per_hop(instrument, exporter, echo_url):
    def handler(request):
        if request.url.path == "/old":
            return httpx.Response(301, headers={"Location": "/new"})
        return httpx.Response(200, text="here")

    instrument(HttpxInstrumentor)
    client = httpx.Client(transport=httpx.MockTransport(handler), follow_redirects=True)
    assert client.get("http://svc/old").text == "here"
    assert [s.attributes["http.response.status_code"] for s in exporter.get_finished_spans()] == [
        301,
        200,
    ]


@pytest.mark.parametrize("how", ["read", "close"])
def test_streamed_response_ends_its_span_when_read_or_closed(instrument, exporter, echo_url, how):
    instrument(HttpxInstrumentor)
    with httpx.Client() as client:
        with client.stream("GET", echo_url) as response:
            assert exporter.get_finished_spans() == ()
            if how == "read":
                response.read()
                assert len(exporter.get_finished_spans()) == 1
        only_span(exporter)


def test_async_streamed_response_ends_its_span_when_read(instrument, exporter, echo_url):
    finished = []

    async def call():
        async with httpx.AsyncClient() as client:
            async with client.stream("GET", echo_url) as response:
                finished.append(len(exporter.get_finished_spans()))
                async for _ in response.aiter_bytes():
                    pass
                finished.append(len(exporter.get_finished_spans()))

    instrument(HttpxInstrumentor)
    run(call())
    assert finished == [0, 1]


def test_error_while_reading_the_body_is_recorded(instrument, exporter):
    class Broken(httpx.SyncByteStream):
        def __iter__(self):
            yield b"part"
            raise httpx.ReadError("connection lost")

    instrument(HttpxInstrumentor)
    client = httpx.Client(
        transport=httpx.MockTransport(lambda r: httpx.Response(200, stream=Broken()))
    )
    with pytest.raises(httpx.ReadError):
        client.get("http://svc/")
    span = only_span(exporter)
    assert span.attributes["http.response.status_code"] == 200
    assert span.attributes["error.type"] == "httpx.ReadError"
    assert span.status.status_code is StatusCode.ERROR


@pytest.mark.parametrize(
    "key", [_SUPPRESS_INSTRUMENTATION_KEY, _SUPPRESS_HTTP_INSTRUMENTATION_KEY], ids=["all", "http"]
)
def test_suppression_keys_are_honoured(instrument, exporter, echo_url, key):
    instrument(HttpxInstrumentor)
    with context_value(key):
        assert httpx.get(echo_url).json() == {"traceparent": None}
    assert exporter.get_finished_spans() == ()


def test_other_http_instrumentations_underneath_add_no_span(instrument, exporter, echo_url):
    """Under the client's span, what httpx calls sees the HTTP suppression key."""
    from opentelemetry import context

    seen = []

    def handler(request):
        seen.append(context.get_value(_SUPPRESS_HTTP_INSTRUMENTATION_KEY))
        return httpx.Response(200)

    instrument(HttpxInstrumentor)
    httpx.Client(transport=httpx.MockTransport(handler)).get("http://svc/")
    assert seen == [True]


def test_uninstrument_and_instrument_again(instrument, provider, exporter, echo_url):
    client = httpx.Client()
    instrumentor = instrument(HttpxInstrumentor)
    instrumentor.uninstrument()
    client.get(echo_url)
    assert exporter.get_finished_spans() == ()
    instrumentor.instrument(tracer_provider=provider)
    HttpxInstrumentor().instrument(tracer_provider=provider)
    client.get(echo_url)
    only_span(exporter)


def test_broken_tracer_never_breaks_requests(instrument, echo_url, caplog):
    instrument(HttpxInstrumentor, tracer_provider=BrokenTracerProvider())
    assert httpx.get(echo_url).json() == {"traceparent": None}
    assert httpx.get(f"{echo_url}/?status=500").status_code == 500
    with pytest.raises(httpx.ConnectError):
        httpx.get("http://127.0.0.1:9/")
    assert len(lazypatch_errors(caplog)) == 1


# -- the order matrix, in fresh interpreters --------------------------------------------------

ORDER = {
    "before import": """
        HttpxInstrumentor().instrument()
        import httpx
        client, aclient = httpx.Client(), httpx.AsyncClient()
    """,
    "after import": """
        import httpx
        HttpxInstrumentor().instrument()
        client, aclient = httpx.Client(), httpx.AsyncClient()
    """,
    "after the clients were made": """
        from httpx import Client, AsyncClient
        client, aclient = Client(), AsyncClient()
        HttpxInstrumentor().instrument()
    """,
    "instrument, uninstrument, instrument": """
        import httpx
        client, aclient = httpx.Client(), httpx.AsyncClient()
        instrumentor = HttpxInstrumentor()
        instrumentor.instrument()
        instrumentor.uninstrument()
        client.get(url)
        assert spanhelp.spans() == [], "traced while uninstrumented"
        instrumentor.instrument()
        instrumentor.instrument()
    """,
}


@pytest.mark.parametrize("order", ORDER)
def test_order_matrix(pyrun, order):
    code = script(
        """
        import asyncio, json, spanhelp
        from lazypatch.instrumentation.httpx import HttpxInstrumentor
        url = spanhelp.serve(spanhelp.echo_app)
        """,
        ORDER[order],
        """
        sent = [client.get(url + "/sync").json()["traceparent"]]
        sent.append(asyncio.run(aclient.get(url + "/async")).json()["traceparent"])
        spans = spanhelp.spans()
        assert [s["span_id"] for s in spans] == [int(t.split("-")[2], 16) for t in sent], sent
        spanhelp.dump()
        """,
    )
    spans = spans_of(pyrun(code, files={"spanhelp.py": SPANHELP}))
    assert [(s["name"], s["kind"], s["attributes"]["url.full"].rsplit("/")[-1]) for s in spans] == [
        ("GET", "CLIENT", "sync"),
        ("GET", "CLIENT", "async"),
    ]
