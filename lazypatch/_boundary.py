"""The error boundary: the one place where foreign code's failures are isolated and reported.

Foreign code is everything lazypatch runs but did not write: hooks, wrappers at apply time,
``_instrument`` / ``_uninstrument``, entry points, OpenTelemetry's instrumentors, exporters. A
failure of lazypatch's own import machinery is reported here too. In every case the exception is
recorded on its handle (by the caller's ``record``), logged once with its traceback (logger
``lazypatch``) and swallowed, so the application's import or call goes on; under
``LAZYPATCH_STRICT=1``, or for a ``BaseException`` that is not an ``Exception``, it is re-raised
instead of logged.
"""

from . import _config
from ._log import logger

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Callable, TypeVar, Union

    T = TypeVar("T")
    R = TypeVar("R")


class Failed:
    """The type of :data:`FAILED`: what :func:`run` returns when the foreign code raised."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "<failed>"


FAILED = Failed()


def reason(error: "BaseException | None") -> "str | None":
    """``"ValueError: boom"`` for an exception, None for none: the ``reason`` of status records."""
    if error is None:
        return None
    return f"{type(error).__name__}: {error}"


def run(
    func: "Callable[[T], R]", arg: "T", record: "Callable[[BaseException], str]"
) -> "Union[R, Failed]":
    """``func(arg)``, or :data:`FAILED` if it raised an ``Exception`` (see :func:`report`)."""
    try:
        return func(arg)
    except BaseException as exc:
        report(exc, record)
        return FAILED


def report(exc: BaseException, record: "Callable[[BaseException], str]") -> None:
    """Handle ``exc``, caught by the caller: ``record(exc)`` stores it on its handle and returns
    the sentence to log; then it is logged with its traceback, or re-raised when strict.

    Call it from the ``except`` clause that caught ``exc``.
    """
    message = record(exc)
    if not isinstance(exc, Exception) or _config.strict():
        raise exc
    logger().error("%s", message, exc_info=exc)
