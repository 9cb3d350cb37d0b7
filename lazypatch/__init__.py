"""lazypatch: patch and instrument Python libraries the moment they are imported."""

from ._hooks import Hook, install, register_hook, uninstall, unregister_hook, when_imported
from ._status import Record, status

__all__ = [
    "Hook",
    "Record",
    "install",
    "register_hook",
    "status",
    "uninstall",
    "unregister_hook",
    "when_imported",
]
