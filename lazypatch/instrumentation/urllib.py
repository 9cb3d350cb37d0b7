"""urllib: a CLIENT span and an ``http.client.request.duration`` measurement per ``http``/``https``
request made through ``urllib.request``.

``OpenerDirector.open`` is wrapped in place, so ``urlopen`` (also when imported by name before
instrumentation), openers built with ``build_opener`` before it and their subclasses are
traced. A URL given as a string is turned into the ``Request`` that ``open`` would build, so the
``traceparent`` header can be added to it.
"""

from .. import Instrumentor
from . import deferred

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, Callable, Dict, Optional, Tuple, Type
    from urllib.request import Request

    from .._patches import Wrapper
    from ._http import Prepared, Status


def _preparer(
    Request: "Type[Request]",
) -> "Callable[[Tuple[Any, ...], Dict[str, Any]], Optional[Prepared]]":
    def prepare(args: "Tuple[Any, ...]", kwargs: "Dict[str, Any]") -> "Optional[Prepared]":
        if args:
            fullurl = args[0]
        else:
            fullurl = kwargs.get("fullurl")
        if isinstance(fullurl, str):
            try:
                request = Request(fullurl)
            except ValueError:
                return None
        elif isinstance(fullurl, Request):
            request = fullurl
        else:
            return None
        if request.type not in ("http", "https"):
            return None
        data = args[1] if len(args) > 1 else kwargs.get("data")
        if data is not None:
            request.data = data
        if args:
            args = (request, *args[1:])
        else:
            kwargs = {**kwargs, "fullurl": request}
        agent = request.get_header("User-agent")
        return request.get_method(), request.full_url, request, agent, args, kwargs

    return prepare


def _response(response: "Any") -> "Status":
    return response.status, getattr(response, "version", None)


class UrllibInstrumentor(Instrumentor):
    """Traces every HTTP request sent by ``urllib.request``."""

    targets = ("urllib.request",)

    def _instrument(self, **kwargs: "Any") -> None:
        tracer_provider = kwargs.get("tracer_provider")
        meter_provider = kwargs.get("meter_provider")

        def build() -> "Wrapper":
            # By name, not as ``urllib.request``: _instrument runs as soon as the submodule has
            # executed, before the import system binds it as an attribute of the package.
            from urllib.error import HTTPError
            from urllib.request import Request

            from opentelemetry.propagators.textmap import Setter

            from . import _http, _semconv

            class RequestSetter(Setter[Request]):
                """Propagation setter for ``urllib.request.Request``."""

                def set(self, carrier: Request, key: str, value: str) -> None:
                    carrier.add_header(key, value)

            def status_of_error(exc: BaseException) -> "Optional[Status]":
                if not isinstance(exc, HTTPError):
                    return None
                return exc.code, getattr(exc.fp, "version", None)

            tracer, histogram = _semconv.signals(
                __name__, _semconv.HTTP_CLIENT_REQUEST_DURATION, tracer_provider, meter_provider
            )
            return _http.client_wrapper(
                "urllib",
                tracer,
                _preparer(Request),
                _response,
                status_of_error,
                RequestSetter(),
                histogram,
            )

        self.wrap("urllib.request", "OpenerDirector.open", deferred("urllib", build))
