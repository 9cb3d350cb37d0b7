"""Exception text without credentials: what an HTTP client's exception says about its URL.

requests' (urllib3's) connection errors quote the path and query of the URL they failed on, so a
signed URL's signature would reach the span's exception event and status description. They are
redacted as ``url.full`` is. Loaded at the first failed call: the error path only.
"""

import re
from traceback import format_exception

from ._http import REDACTED, SENSITIVE_QUERY_PARAMS

TYPE_CHECKING = False
if TYPE_CHECKING:
    from opentelemetry.trace import Span

_QUERY = re.compile(
    "([?&](?:" + "|".join(sorted(map(re.escape, SENSITIVE_QUERY_PARAMS))) + ")=)[^&#\\s'\"]+",
    re.IGNORECASE,
)
_USERINFO = re.compile("(?<=://)[^/?#@\\s'\"]+@")


def redact_text(text: str) -> str:
    """``text`` with the userinfo and sensitive query values of the URLs it quotes redacted."""
    text = _QUERY.sub("\\g<1>" + REDACTED, text)
    return _USERINFO.sub(f"{REDACTED}:{REDACTED}@", text)


def record_exception(span: "Span", exc: BaseException) -> str:
    """The SDK's exception event for ``exc`` on ``span``, message and stack trace redacted;
    returns the redacted message."""
    message = str(exc)
    redacted = redact_text(message)
    if redacted == message:
        span.record_exception(exc)
        return message
    stacktrace = "".join(format_exception(type(exc), exc, exc.__traceback__))
    span.record_exception(
        exc,
        attributes={"exception.message": redacted, "exception.stacktrace": redact_text(stacktrace)},
    )
    return redacted
