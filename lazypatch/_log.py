"""The ``lazypatch`` logger, on first use: ``logging`` is not imported until something is said."""


def logger():
    """Return the ``lazypatch`` logger (imports ``logging`` the first time)."""
    import logging

    return logging.getLogger("lazypatch")
