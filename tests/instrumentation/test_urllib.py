"""urllib: one CLIENT span per http(s) request at ``OpenerDirector.open``."""

import json
import urllib.error
import urllib.request

import pytest
from instr_support import (
    BrokenTracerProvider,
    context_value,
    lazypatch_errors,
)
from opentelemetry import context
from opentelemetry.trace import SpanKind, StatusCode

from lazypatch.instrumentation.urllib import UrllibInstrumentor
from lazypatch.testing import each_order


def body(response):
    with response:
        return json.loads(response.read())


def test_urlopen_string(instrument, exporter, echo_url):
    instrument(UrllibInstrumentor)
    sent = body(urllib.request.urlopen(f"{echo_url}/a?b=1"))
    (span,) = exporter.get_finished_spans()
    assert span.name == "GET"
    assert span.kind is SpanKind.CLIENT
    assert span.attributes["url.full"] == f"{echo_url}/a?b=1"
    assert span.attributes["server.address"] == "127.0.0.1"
    assert span.attributes["http.response.status_code"] == 200
    trace_id, parent_id = (int(p, 16) for p in sent["traceparent"].split("-")[1:3])
    assert (trace_id, parent_id) == (span.context.trace_id, span.context.span_id)


def test_request_object_with_data_and_prebuilt_opener(instrument, exporter, echo_url):
    opener = urllib.request.build_opener()
    instrument(UrllibInstrumentor)
    body(opener.open(urllib.request.Request(echo_url, method="PUT"), data=b"x"))
    body(opener.open(echo_url, b"payload"))
    assert [s.name for s in exporter.get_finished_spans()] == ["PUT", "POST"]


def test_http_error_recorded_and_reraised(instrument, exporter, echo_url):
    instrument(UrllibInstrumentor)
    with pytest.raises(urllib.error.HTTPError) as info:
        urllib.request.urlopen(f"{echo_url}/?status=404")
    info.value.close()
    (span,) = exporter.get_finished_spans()
    assert span.attributes["http.response.status_code"] == 404
    assert span.attributes["error.type"] == "404"
    assert span.status.status_code is StatusCode.ERROR
    assert [e.name for e in span.events] == ["exception"]


def test_connection_error(instrument, exporter):
    instrument(UrllibInstrumentor)
    with pytest.raises(urllib.error.URLError):
        urllib.request.urlopen("http://127.0.0.1:9/", timeout=5)
    (span,) = exporter.get_finished_spans()
    assert span.attributes["error.type"] == "urllib.error.URLError"


def test_non_http_and_invalid_urls_pass_through(instrument, exporter, tmp_path):
    instrument(UrllibInstrumentor)
    (tmp_path / "f.txt").write_text("hi")
    with urllib.request.urlopen((tmp_path / "f.txt").as_uri()) as response:
        assert response.read() == b"hi"
    with pytest.raises(ValueError):
        urllib.request.urlopen("not a url")
    assert exporter.get_finished_spans() == ()


def test_no_secrets_and_suppression(instrument, exporter, echo_url):
    instrument(UrllibInstrumentor)
    with context_value(context._SUPPRESS_HTTP_INSTRUMENTATION_KEY):
        body(urllib.request.urlopen(echo_url))
    with context_value(context._SUPPRESS_INSTRUMENTATION_KEY):
        body(urllib.request.urlopen(echo_url))
    assert exporter.get_finished_spans() == ()
    body(urllib.request.urlopen(f"{echo_url}/?X-Amz-Signature=s1g&a=1"))
    (span,) = exporter.get_finished_spans()
    assert span.attributes["url.full"] == f"{echo_url}/?X-Amz-Signature=REDACTED&a=1"


def test_uninstrument_restores_identity(instrument, exporter, echo_url):
    original = urllib.request.OpenerDirector.__dict__["open"]
    instrument(UrllibInstrumentor).uninstrument()
    assert urllib.request.OpenerDirector.__dict__["open"] is original
    body(urllib.request.urlopen(echo_url))
    assert exporter.get_finished_spans() == ()


def test_broken_tracer_never_breaks_the_call(instrument, echo_url, caplog):
    instrument(UrllibInstrumentor, tracer_provider=BrokenTracerProvider())
    assert body(urllib.request.urlopen(echo_url))["traceparent"] is None
    with pytest.raises(urllib.error.HTTPError):
        urllib.request.urlopen(f"{echo_url}/?status=500")
    assert len(lazypatch_errors(caplog)) == 1


@each_order
def test_order_matrix(lazypatch_scenario, order, echo_url):
    """Captured ``urlopen``, an opener built before: traced in every order, then not."""
    scenario = lazypatch_scenario(
        instrument="""
            from lazypatch.instrumentation.urllib import UrllibInstrumentor
            UrllibInstrumentor().instrument()
        """,
        imports="from urllib.request import build_opener, urlopen",
        setup="opener = build_opener()",
        exercise=f"""
            with urlopen({echo_url!r}) as first, opener.open({echo_url!r}) as second:
                result = [first.status, second.status]
        """,
        uninstrument="UrllibInstrumentor().uninstrument()",
        order=order,
    )
    assert scenario.result == [200, 200]
    assert [(s.name, s.kind) for s in scenario.spans] == [("GET", "CLIENT")] * 2
    assert scenario.after_uninstrument == []
