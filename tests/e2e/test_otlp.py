"""OTLP for real: spans of an instrumented request reach a loopback OTLP/HTTP receiver."""

import http.server
import threading

import pytest
from e2e_support import SERVER
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest


@pytest.fixture
def receiver():
    """A loopback OTLP/HTTP receiver: ``(endpoint, [(path, request)])``, the requests of
    ``/v1/traces`` decoded from protobuf."""
    received = []

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_POST(self):
            body = self.rfile.read(int(self.headers["Content-Length"]))
            request = None
            if self.path == "/v1/traces":  # metrics are taken too, not decoded
                request = ExportTraceServiceRequest()
                request.ParseFromString(body)
            received.append((self.path, request))
            self.send_response(200)
            self.send_header("Content-Type", "application/x-protobuf")
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}", received
    server.shutdown()
    server.server_close()


def test_spans_arrive_over_otlp_http_and_the_export_itself_is_not_traced(pyrun, receiver):
    endpoint, received = receiver
    pyrun(
        SERVER
        + """
import lazypatch.auto
import urllib3
urllib3.PoolManager().request("GET", URL)
import requests
requests.get(URL)
""",
        env={
            "OTEL_TRACES_EXPORTER": None,
            "OTEL_EXPORTER_OTLP_ENDPOINT": endpoint,
            "OTEL_SERVICE_NAME": "otlp-test",
            "OTEL_BSP_SCHEDULE_DELAY": "50",
        },
    )
    assert received, "no export request arrived"
    assert {path for path, _ in received} <= {"/v1/traces", "/v1/metrics"}, received
    spans, services = [], set()
    for _, request in [r for r in received if r[0] == "/v1/traces"]:
        for resource_spans in request.resource_spans:
            for attribute in resource_spans.resource.attributes:
                if attribute.key == "service.name":
                    services.add(attribute.value.string_value)
            for scope_spans in resource_spans.scope_spans:
                spans.extend(scope_spans.spans)
    assert services == {"otlp-test"}
    urls = [
        attribute.value.string_value
        for span in spans
        for attribute in span.attributes
        if attribute.key in ("url.full", "http.url")
    ]
    assert len(spans) == 2, spans
    assert all(url.endswith("/hello") for url in urls), urls
    assert not any("/v1/traces" in str(span) for span in spans)
