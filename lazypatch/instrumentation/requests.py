"""requests: a CLIENT span and an ``http.client.request.duration`` measurement per request,
traceparent injected.

``Session.send`` is wrapped in place: every request goes through it, so ``requests.get`` taken
by ``from requests import get`` before instrumentation, sessions created before it and
subclasses of ``Session`` are traced alike. Redirects followed inside one ``send`` belong to its
span.
"""

from .. import Instrumentor
from . import deferred

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, Dict, Tuple

    from .._patches import Wrapper
    from ._http import Prepared, Status


# requests ships no type information: its requests and responses are Any here.
def _prepare(args: "Tuple[Any, ...]", kwargs: "Dict[str, Any]") -> "Prepared":
    request = args[0] if args else kwargs["request"]
    headers = request.headers
    try:  # not headers.get: a CaseInsensitiveDict's get is one more Python call per request
        agent = headers["User-Agent"]
    except KeyError:
        agent = None
    return request.method, request.url, headers, agent, args, kwargs


def _response(response: "Any") -> "Status":
    raw = response.raw
    return response.status_code, getattr(raw, "version", None)


class RequestsInstrumentor(Instrumentor):
    """Traces every HTTP request sent by ``requests``."""

    targets = ("requests",)
    requirements = ("requests >= 2.20",)

    def _instrument(self, **kwargs: "Any") -> None:
        tracer_provider = kwargs.get("tracer_provider")
        meter_provider = kwargs.get("meter_provider")

        def build() -> "Wrapper":
            from . import _http, _semconv

            tracer, histogram = _semconv.signals(
                __name__, _semconv.HTTP_CLIENT_REQUEST_DURATION, tracer_provider, meter_provider
            )
            return _http.client_wrapper(
                "requests", tracer, _prepare, _response, histogram=histogram
            )

        self.wrap("requests.sessions", "Session.send", deferred("requests", build))
