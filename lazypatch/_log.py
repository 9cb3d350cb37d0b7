"""The ``lazypatch`` logger, on first use: ``logging`` is not imported until something is said."""

TYPE_CHECKING = False
if TYPE_CHECKING:
    from logging import Logger


def logger() -> "Logger":
    """Return the ``lazypatch`` logger (imports ``logging`` the first time)."""
    import logging

    return logging.getLogger("lazypatch")
