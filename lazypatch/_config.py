"""Environment -> settings: every environment variable lazypatch reads is read here."""

import os


def strict() -> bool:
    """``LAZYPATCH_STRICT=1``: hook and patch errors propagate instead of being logged (for tests).

    Read at each failure rather than once, so that a test may set it around one import.
    """
    return os.environ.get("LAZYPATCH_STRICT", "").strip().lower() in ("1", "true", "yes", "on")
