"""requests: a CLIENT span per request, traceparent injected.

``Session.send`` is wrapped in place: every request goes through it, so ``requests.get`` taken
by ``from requests import get`` before instrumentation, sessions created before it and
subclasses of ``Session`` are traced alike. Redirects followed inside one ``send`` belong to its
span.
"""

from operator import attrgetter

from .. import Instrumentor


def _prepare(args, kwargs):
    request = args[0] if args else kwargs["request"]
    return request.method, request.url, request.headers, args, kwargs


class RequestsInstrumentor(Instrumentor):
    """Traces every HTTP request sent by ``requests``."""

    targets = ("requests",)
    requirements = ("requests >= 2.20",)

    def _instrument(self, **kwargs):
        from opentelemetry import trace

        from . import _http

        tracer = trace.get_tracer(__name__, tracer_provider=kwargs.get("tracer_provider"))
        wrapper = _http.client_wrapper("requests", tracer, _prepare, attrgetter("status_code"))
        self.wrap("requests.sessions", "Session.send", wrapper)
