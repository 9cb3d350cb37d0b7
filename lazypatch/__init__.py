"""lazypatch: patch and instrument Python libraries the moment they are imported."""

from ._hooks import Hook, install, register_hook, uninstall, unregister_hook, when_imported
from ._instrumentor import Instrumentor
from ._patches import Patch, replace, wrap
from ._status import Record, status

__all__ = [
    "Hook",
    "Instrumentor",
    "Patch",
    "Record",
    "install",
    "register_hook",
    "replace",
    "status",
    "uninstall",
    "unregister_hook",
    "when_imported",
    "wrap",
]
