"""requests: one CLIENT span per request at ``Session.send``, whenever things were imported."""

import pytest
import requests
from instr_support import (
    BrokenTracerProvider,
    context_value,
    lazypatch_errors,
)
from opentelemetry import context, trace
from opentelemetry.trace import SpanKind, StatusCode

from lazypatch.instrumentation.requests import RequestsInstrumentor
from lazypatch.testing import each_order


def ids_of(traceparent):
    """(trace id, parent span id) of a W3C traceparent header."""
    return tuple(int(part, 16) for part in traceparent.split("-")[1:3])


def test_span_attributes_and_propagation(instrument, exporter, echo_url):
    instrument(RequestsInstrumentor)
    response = requests.get(f"{echo_url}/path?q=1")
    (span,) = exporter.get_finished_spans()
    assert span.name == "GET"
    assert span.kind is SpanKind.CLIENT
    port = int(echo_url.rsplit(":", 1)[1])
    assert dict(span.attributes) == {
        "http.request.method": "GET",
        "url.full": f"{echo_url}/path?q=1",
        "server.address": "127.0.0.1",
        "server.port": port,
        "network.peer.address": "127.0.0.1",
        "network.peer.port": port,
        "user_agent.original": requests.utils.default_user_agent(),
        "network.protocol.version": "1.1",
        "http.response.status_code": 200,
    }
    assert span.status.status_code is StatusCode.UNSET
    assert ids_of(response.json()["traceparent"]) == (span.context.trace_id, span.context.span_id)


def test_child_of_current_span(instrument, provider, exporter, echo_url):
    instrument(RequestsInstrumentor)
    with provider.get_tracer("t").start_as_current_span("parent") as parent:
        requests.post(echo_url, data=b"x")
    client = next(s for s in exporter.get_finished_spans() if s.name == "POST")
    assert client.parent.span_id == parent.get_span_context().span_id


@pytest.mark.parametrize("status", [404, 503])
def test_error_status(instrument, exporter, echo_url, status):
    instrument(RequestsInstrumentor)
    assert requests.get(f"{echo_url}/?status={status}").status_code == status
    (span,) = exporter.get_finished_spans()
    assert span.attributes["http.response.status_code"] == status
    assert span.attributes["error.type"] == str(status)
    assert span.status.status_code is StatusCode.ERROR


def test_exception_recorded_and_reraised_unchanged(instrument, exporter):
    instrument(RequestsInstrumentor)
    with pytest.raises(requests.ConnectionError) as info:
        requests.get("http://127.0.0.1:9/", timeout=5)
    (span,) = exporter.get_finished_spans()
    assert span.status.status_code is StatusCode.ERROR
    assert span.attributes["error.type"] == "requests.exceptions.ConnectionError"
    (event,) = span.events
    assert event.name == "exception"
    assert event.attributes["exception.message"] == str(info.value)


def test_duration_points_per_outcome(instrument):
    """One duration point per outcome on one URL: status and ``error.type`` as the outcome gives
    them, an exception's ``error.type`` not carried into the next success, nor a 404's into a
    200's."""
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import InMemoryMetricReader
    from requests.adapters import BaseAdapter

    class Scripted(BaseAdapter):
        outcomes = iter(["refused", 200, 404, 200, "refused"])

        def send(self, request, **kwargs):
            outcome = next(self.outcomes)
            if outcome == "refused":
                raise requests.ConnectionError("refused")
            response = requests.Response()
            response.status_code = outcome
            response.request = request
            return response

        def close(self):
            pass

    reader = InMemoryMetricReader()
    instrument(RequestsInstrumentor, meter_provider=MeterProvider(metric_readers=[reader]))
    session = requests.Session()
    session.mount("http://", Scripted())
    for _ in range(5):
        try:
            session.get("http://service.internal/items/1")
        except requests.ConnectionError:
            pass
    (metric,) = reader.get_metrics_data().resource_metrics[0].scope_metrics[0].metrics
    assert metric.name == "http.client.request.duration"
    points = {frozenset(point.attributes.items()): point.count for point in metric.data.data_points}
    base = {"http.request.method": "GET", "server.address": "service.internal", "server.port": 80}
    assert points == {
        frozenset({**base, "error.type": "requests.exceptions.ConnectionError"}.items()): 2,
        frozenset({**base, "http.response.status_code": 200}.items()): 2,
        frozenset({**base, "http.response.status_code": 404, "error.type": "404"}.items()): 1,
    }


def test_attributes_per_request_on_one_url(instrument, exporter, echo_url):
    """A client span's starting attributes are built once per (method, URL, User-Agent) and
    reused: each span still gets its own request's, and nothing of an earlier response."""
    instrument(RequestsInstrumentor)
    session = requests.Session()
    session.get(echo_url, headers={"User-Agent": "a/1"})
    session.get(echo_url, headers={"User-Agent": "b/2"})
    session.get(echo_url, headers={"User-Agent": None})  # None: requests sends none
    session.post(echo_url)
    session.get(f"{echo_url}/?status=404", headers={"User-Agent": "a/1"})
    session.get(echo_url, headers={"User-Agent": "a/1"})
    spans = exporter.get_finished_spans()
    default = requests.utils.default_user_agent()
    assert [span.attributes.get("user_agent.original") for span in spans] == [
        "a/1",
        "b/2",
        None,
        default,
        "a/1",
        "a/1",
    ]
    assert [span.name for span in spans] == ["GET", "GET", "GET", "POST", "GET", "GET"]
    assert [span.attributes.get("error.type") for span in spans] == [None] * 4 + ["404", None]
    assert [span.attributes["http.response.status_code"] for span in spans][-2:] == [404, 200]


def test_captured_references_existing_sessions_and_subclasses(instrument, exporter, echo_url):
    from requests import get

    class MySession(requests.Session):
        pass

    session = requests.Session()
    instrument(RequestsInstrumentor)
    get(echo_url)
    session.get(echo_url)
    MySession().get(echo_url)
    assert len(exporter.get_finished_spans()) == 3


def test_no_secrets(instrument, exporter, echo_url):
    instrument(RequestsInstrumentor)
    url = echo_url.replace("http://", "http://alice:s3cret@")
    requests.get(f"{url}/x?sig=abc&token=t0k&keep=1", headers={"Authorization": "Bearer zzz"})
    (span,) = exporter.get_finished_spans()
    redacted = echo_url.replace("http://", "http://REDACTED:REDACTED@")
    assert span.attributes["url.full"] == f"{redacted}/x?sig=REDACTED&token=REDACTED&keep=1"
    values = " ".join(str(v) for v in span.attributes.values())
    for secret in ("alice", "s3cret", "abc", "t0k", "zzz"):
        assert secret not in values
    assert not [k for k in span.attributes if k.startswith("http.request.header")]


def test_no_secrets_in_a_failed_call(instrument, exporter):
    """requests' connection errors quote the URL's path and query: the exception event and the
    status description of the span redact it as url.full is redacted."""
    instrument(RequestsInstrumentor)
    with pytest.raises(requests.ConnectionError) as info:
        requests.get("http://alice:pw@127.0.0.1:9/o?X-Amz-Signature=s1gn&keep=1", timeout=5)
    assert "s1gn" in str(info.value), "the application's exception is its own, unredacted"
    (span,) = exporter.get_finished_spans()
    (event,) = span.events
    recorded = [span.status.description, *event.attributes.values()]
    assert not [text for text in recorded if "s1gn" in str(text)]
    assert "X-Amz-Signature=REDACTED&keep=1" in event.attributes["exception.message"]


def test_suppressed(instrument, exporter, echo_url):
    instrument(RequestsInstrumentor)
    with context_value(context._SUPPRESS_INSTRUMENTATION_KEY):
        requests.get(echo_url)
    with context_value(context._SUPPRESS_HTTP_INSTRUMENTATION_KEY):
        requests.get(echo_url)
    assert exporter.get_finished_spans() == ()


def test_instrument_twice_one_span(instrument, provider, exporter, echo_url):
    instrument(RequestsInstrumentor)
    RequestsInstrumentor().instrument(tracer_provider=provider)
    requests.get(echo_url)
    assert len(exporter.get_finished_spans()) == 1


def test_one_span_with_opentelemetry_urllib3_instrumentation(
    instrument, provider, exporter, echo_url
):
    from opentelemetry.instrumentation.urllib3 import URLLib3Instrumentor

    URLLib3Instrumentor().instrument(tracer_provider=provider)
    try:
        requests.get(echo_url)  # urllib3's own span proves its instrumentation is on
        assert [s.name for s in exporter.get_finished_spans()] == ["GET"]
        exporter.clear()
        instrument(RequestsInstrumentor)
        requests.get(echo_url)
    finally:
        URLLib3Instrumentor().uninstrument()
    (span,) = exporter.get_finished_spans()
    assert span.instrumentation_scope.name == "lazypatch.instrumentation.requests"


def test_uninstrument_restores_identity(instrument, exporter, echo_url):
    original = requests.Session.__dict__["send"]
    instrumentor = instrument(RequestsInstrumentor)
    assert requests.Session.__dict__["send"] is not original
    instrumentor.uninstrument()
    assert requests.Session.__dict__["send"] is original
    requests.get(echo_url)
    assert exporter.get_finished_spans() == ()


def test_broken_tracer_never_breaks_the_call(instrument, echo_url, caplog):
    instrument(RequestsInstrumentor, tracer_provider=BrokenTracerProvider())
    assert requests.get(echo_url).status_code == 200
    assert requests.get(f"{echo_url}/?status=500").status_code == 500
    with pytest.raises(requests.ConnectionError):
        requests.get("http://127.0.0.1:9/", timeout=5)
    (record,) = lazypatch_errors(caplog)
    assert "broken tracer" in str(record.exc_info[1])
    assert trace.get_current_span() is trace.INVALID_SPAN


def test_broken_propagator_never_breaks_the_call(instrument, exporter, echo_url, caplog):
    from opentelemetry import propagate
    from opentelemetry.propagators.textmap import TextMapPropagator

    class Broken(TextMapPropagator):
        def inject(self, *args, **kwargs):
            raise ValueError("broken propagator")

        def extract(self, *args, **kwargs):
            raise ValueError("broken propagator")

        @property
        def fields(self):
            return set()

    instrument(RequestsInstrumentor)
    previous = propagate.get_global_textmap()
    propagate.set_global_textmap(Broken())
    try:
        assert requests.get(echo_url).json() == {"traceparent": None}
        assert requests.get(echo_url).status_code == 200
    finally:
        propagate.set_global_textmap(previous)
    assert len(lazypatch_errors(caplog)) == 1
    assert len(exporter.get_finished_spans()) == 2  # the abandoned spans are ended, not leaked
    assert context.get_current() == context.Context()


@each_order
def test_order_matrix(lazypatch_scenario, order, echo_url):
    """Captured ``get``, a session of a subclass made before: traced in every order, then not."""
    scenario = lazypatch_scenario(
        instrument="""
            from lazypatch.instrumentation.requests import RequestsInstrumentor
            RequestsInstrumentor().instrument()
        """,
        imports="import requests\nfrom requests import get",
        setup="""
            class MySession(requests.Session):
                pass
            session = MySession()
        """,
        exercise=f"result = [get({echo_url!r}).json(), session.get({echo_url!r}).json()]",
        uninstrument="RequestsInstrumentor().uninstrument()",
        order=order,
    )
    assert [(s.name, s.kind) for s in scenario.spans] == [("GET", "CLIENT")] * 2
    sent = [ids_of(body["traceparent"]) for body in scenario.result]
    assert sent == [(s.trace_id, s.span_id) for s in scenario.spans]
    assert scenario.after_uninstrument == []
