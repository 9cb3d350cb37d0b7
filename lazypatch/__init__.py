"""lazypatch: patch and instrument Python libraries the moment they are imported."""

from ._hooks import Hook, install, register_hook, uninstall, unregister_hook, when_imported

TYPE_CHECKING = False
if TYPE_CHECKING:
    # What type checkers see; at run time these come from ``__getattr__`` on first use.
    from ._instrumentor import Instrumentor as Instrumentor
    from ._patches import Patch as Patch
    from ._patches import replace as replace
    from ._patches import wrap as wrap
    from ._status import Record as Record
    from ._status import status as status

# Loaded on first use: ``import lazypatch.auto`` and registering hooks need none of them, and every
# module spared is start-up time spared in every process lazypatch is active in.
_LAZY = {
    "Instrumentor": "_instrumentor",
    "Patch": "_patches",
    "replace": "_patches",
    "wrap": "_patches",
    "Record": "_status",
    "status": "_status",
}

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


def __getattr__(name: str) -> object:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'lazypatch' has no attribute {name!r}")
    full_name = f"{__name__}.{module}"
    __import__(full_name)
    value = getattr(__import__("sys").modules[full_name], name)
    globals()[name] = value
    return value


def __dir__() -> "list[str]":
    return sorted(set(globals()) | set(__all__))
