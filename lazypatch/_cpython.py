"""The fence around CPython's private import names: each is looked up here, once, and nowhere else.

lazypatch relies on a few names of ``importlib._bootstrap`` / ``_bootstrap_external`` and
``_thread`` that no release promises to keep. Each is checked when this module is imported. If
one is missing, the feature built on it falls back to a reduced mode (``docs/guarantees.md``,
"Reduced mode"), a single warning on the ``lazypatch`` logger names what is lost, and
everything else keeps working. Nothing here raises.
"""

import _frozen_importlib as _bootstrap
import _frozen_importlib_external as _bootstrap_external
import _thread
import sys

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

# What each private name gives, and what is lost without it.
LOST = {
    "importlib._bootstrap._module_locks": (
        "a hook registered while another thread imports its module (past the finder already) "
        "runs at lazypatch's next chance instead of before that import returns"
    ),
    "importlib._bootstrap._lock_unlock_module": (
        "a hook registered while another thread imports its module (past the finder already) "
        "runs at lazypatch's next chance instead of before that import returns"
    ),
    "importlib._bootstrap._ModuleLock.owner": (
        "a hook registered while another thread imports its module (past the finder already) "
        "runs at lazypatch's next chance instead of before that import returns"
    ),
    "importlib._bootstrap._load_unlocked sets spec._initializing": (
        "a hook registered while its module is half-way through its import (from its own body, "
        "a circular import or another thread) runs at once, on the half-built module"
    ),
    "importlib._bootstrap_external._LoaderBasics": "nothing (loaders are always asked to create)",
    "_thread._local": "nothing (threading.local is used instead)",
    "sys._getframe": (
        "warnings issued by instrumented C functions point at lazypatch's frame, not the caller's"
    ),
}


def _load_unlocked_sets_initializing() -> bool:
    load = getattr(_bootstrap, "_load_unlocked", None)
    code = getattr(load, "__code__", None)
    return code is not None and "_initializing" in code.co_names


def _module_lock_has_owner() -> bool:
    init = getattr(getattr(_bootstrap, "_ModuleLock", None), "__init__", None)
    code = getattr(init, "__code__", None)
    return code is not None and "owner" in code.co_names


_locks = getattr(_bootstrap, "_module_locks", None)
_lock_unlock = getattr(_bootstrap, "_lock_unlock_module", None)
_has_locks = isinstance(_locks, dict)
_has_lock_unlock = callable(_lock_unlock)
# Without the owner of a module lock, a thread could wait for its own import: no waiting at all.
_has_owner = _module_lock_has_owner()

#: Import locks by module name (each with its owning thread), and the wait for one: both, or
#: neither (None).
module_locks = _locks if _has_locks and _has_lock_unlock and _has_owner else None
lock_unlock_module = _lock_unlock if module_locks is not None else None

#: importlib's own last step of a first import, ``spec._initializing = False``, can be watched.
spec_initializing = _load_unlocked_sets_initializing()

#: ``create_module`` of loaders that leave module creation to importlib (None if unknown).
default_create_module = getattr(
    getattr(_bootstrap_external, "_LoaderBasics", None), "create_module", None
)

#: The loader classes a ``FileFinder`` makes one instance of per spec, bound to that one module
#: name (public in ``importlib.machinery``; taken from here so that it is not imported at start-up).
file_loaders = tuple(
    loader
    for loader in (
        getattr(_bootstrap_external, name, None)
        for name in ("SourceFileLoader", "SourcelessFileLoader", "ExtensionFileLoader")
    )
    if isinstance(loader, type)
)

thread_local: "Any" = getattr(_thread, "_local", None)

#: The frame of a caller, to make a call from its line (``instrumentation/_callsite.py``).
getframe = getattr(sys, "_getframe", None)

#: Code compiled under this file name is dropped from the traceback of a failing import
#: (``remove_importlib_frames`` in CPython's ``import.c``).
IMPORTLIB_FILENAME = "<frozen importlib._bootstrap_external>"


def _missing() -> "tuple[str, ...]":
    found = {
        "importlib._bootstrap._module_locks": _has_locks,
        "importlib._bootstrap._lock_unlock_module": _has_lock_unlock,
        "importlib._bootstrap._ModuleLock.owner": _has_owner,
        "importlib._bootstrap._load_unlocked sets spec._initializing": spec_initializing,
        "importlib._bootstrap_external._LoaderBasics": default_create_module is not None,
        "_thread._local": thread_local is not None,
        "sys._getframe": getframe is not None,
    }
    return tuple(name for name, ok in found.items() if not ok)


#: The private names this interpreter lacks; empty on every CPython lazypatch is tested on.
MISSING = _missing()

if thread_local is None:
    from threading import local as thread_local  # noqa: F811

if MISSING:
    from ._log import logger

    logger().warning(
        "lazypatch runs in reduced mode on Python %s: CPython internals changed. %s",
        sys.version.split()[0],
        " ".join(f"Missing {name}: {LOST[name]}." for name in MISSING),
    )
