"""The ``sys.meta_path`` finder and its loader watch: the only code touching import machinery.

The finder watches a set of module names (a dict owned by the hook registry). For any other
name ``find_spec`` is a dict lookup and ``return None``. For a watched name it asks the other
finders itself and watches the loader of the spec it gets: a file loader made for that one spec
has its class switched for the span of the import, any other loader is wrapped in a proxy. Either
reports to a listener when the module's execution begins and ends, and leaves the module with its
original loader.

A module that is already executing when it becomes watched (a hook registered from its own
body, from a circular import, from another thread) cannot be proxied any more. Its end is
reported by importlib's own last step, ``spec._initializing = False`` in ``_load_unlocked``: the
spec's class is switched to a subclass whose ``_initializing`` is a property for exactly that
span, then switched back.

The finder is inserted once and never moved: a finder put in front of it later may resolve a
watched module itself. Such a module is noticed at the finder's next call, from the names added
to ``sys.modules`` since the last look (newest first, so the cost is the number of new names),
and reported through ``Listener.late``.

CPython's private names come from ``_cpython``, which also says what to do without them.
"""

from __future__ import annotations

import sys
from _thread import get_ident

from . import _boundary, _cpython

TYPE_CHECKING = False
if TYPE_CHECKING:
    from importlib.machinery import ModuleSpec
    from types import ModuleType
    from typing import Any, Dict, Mapping, Optional, Sequence

_LEGACY_FIND_MODULE = sys.version_info < (3, 12)


FAILED = object()


class Listener:
    """What the finder reports to: the hook registry implements it."""

    def begin(self, name: str) -> None:
        """An execution of module ``name`` starts."""

    def end(self, name: str, module: object, spec: object = None) -> None:
        """It ended with ``module`` (or ``FAILED``); if ``spec`` is given, ``unwatch(spec)``
        once reporting is over, under the listener's lock."""

    def late(self, name: str) -> None:
        """Module ``name`` was added to ``sys.modules`` without this finder (a finder in front
        of it resolved it): fire what its hooks missed."""

    def failed(self, name: str, exc: BaseException) -> str:
        """The finder failed on module ``name``: record it; return the sentence to log."""
        return f"lazypatch's finder failed on module {name!r}"


_listener = Listener()


def set_listener(listener: Listener) -> None:
    global _listener
    _listener = listener


def _finished(name: str, module: object, spec: object = None) -> None:
    if module is FAILED or "." not in name:
        _listener.end(name, module, spec)
        return
    try:
        _bind_to_parent(name, module)
    except BaseException:  # strict: the failure propagates, this execution ends as failed
        _listener.end(name, FAILED, spec)
        raise
    try:
        _listener.end(name, module, spec)
    except BaseException:
        _bind_to_parent(name, module, unbind=True)
        raise


def _bind_to_parent(name: str, module: object, unbind: bool = False) -> None:
    """Set a submodule on its package before its hooks run, as importlib does right after.

    A hook for ``a.b`` may then use ``import a.b; a.b.x``.
    """
    parent_name, _, child = name.rpartition(".")
    parent = sys.modules.get(parent_name)
    if parent is None:
        return
    try:
        if not unbind:
            setattr(parent, child, module)
        elif getattr(parent, child, None) is module:
            delattr(parent, child)
    except Exception as exc:
        _boundary.report(exc, lambda exc: f"cannot set {name!r} on its package {parent_name!r}")


class _SpecWatch:
    """Mixin put on an in-flight spec: importlib's final ``_initializing = False`` reports."""

    name: str

    @property
    def _initializing(self) -> bool:
        return bool(self.__dict__.get("_initializing", False))

    @_initializing.setter
    def _initializing(self, value: bool) -> None:
        if value:
            self.__dict__["_initializing"] = True
            _listener.begin(self.name)
            return
        name = self.name
        module = sys.modules.get(name, FAILED)
        try:
            _finished(name, module, self)
        except BaseException:
            # A hook error that propagates fails the import: leave no module behind, as
            # importlib does when a module body raises.
            if sys.modules.get(name) is module:
                del sys.modules[name]
            raise


_watch_classes: Dict[type, type] = {}


def _swap(spec: Any) -> bool:
    cls = type(spec)
    watch_cls = _watch_classes.get(cls)
    if watch_cls is None:
        watch_cls = type(cls.__name__, (_SpecWatch, cls), {"__module__": cls.__module__})
        _watch_classes[cls] = watch_cls
    try:
        spec.__class__ = watch_cls
    except TypeError:
        return False
    return True


def watch_spec(spec: Any) -> bool:
    """Have importlib's final ``spec._initializing = False`` report the end of this execution.

    True if this call armed it while importlib is still executing; False if the spec is
    already watched, cannot be, or importlib finished before the switch took effect.
    """
    if not _cpython.spec_initializing or isinstance(spec, _SpecWatch) or not _swap(spec):
        return False
    if spec.__dict__.get("_initializing"):
        return True
    spec.__class__ = type(spec).__mro__[2]
    return False


def is_watched(spec: object) -> bool:
    """True if the end of the execution of ``spec`` will be reported by the spec itself."""
    return isinstance(spec, _SpecWatch)


def unwatch(spec: Any) -> None:
    spec.__dict__["_initializing"] = False
    if isinstance(spec, _SpecWatch):
        spec.__class__ = type(spec).__mro__[2]


def is_initializing(spec: object) -> bool:
    """True while importlib is executing the module of ``spec`` for a first import (always
    False if this CPython no longer flags it: then a half-built module counts as imported)."""
    if not _cpython.spec_initializing:
        return False
    try:
        return bool(getattr(spec, "_initializing", False))
    except Exception:
        return False


def import_in_flight(name: str) -> bool:
    """True while some thread holds (or waits for) the import lock of module ``name``."""
    locks = _cpython.module_locks
    return locks is not None and name in locks


def import_held_here(name: str) -> bool:
    """True if this thread holds the import lock of module ``name`` (waiting for it would wait
    for ourselves).

    Never call it under a lock that ``find_spec`` takes: the lock object it looks at may die in
    this thread, and its weakref callback takes importlib's global lock, which ``find_spec`` is
    called under.
    """
    locks = _cpython.module_locks
    ref = locks.get(name) if locks is not None else None
    lock = ref() if ref is not None else None
    return lock is not None and getattr(lock, "owner", None) == get_ident()


def wait_for_import(name: str) -> None:
    """Wait until the import or reload of ``name`` in another thread has finished.

    That import may have passed ``find_spec`` before ``name`` was watched, so only its end tells
    whether the module loaded. importlib's own deadlock detection applies.
    """
    if _cpython.lock_unlock_module is not None:
        _cpython.lock_unlock_module(name)


def is_proxied(spec: object) -> bool:
    """True if the module of ``spec`` has not been executed by its proxy yet."""
    try:
        return isinstance(getattr(spec, "loader", None), (_LoaderProxy, _LoaderWatch))
    except Exception:
        return False


class _LoaderWatch:
    """Mixin put on a file loader made for one spec: its ``exec_module`` reports the execution.

    The common case, shaped by callgrind counts: a ``FileFinder`` makes a loader per spec, bound
    to that one module name, so its class can be switched for the span between ``find_spec`` and
    execution, instead of standing a proxy in its place (one object less per import, no
    ``__getattr__`` on importlib's attribute lookups, no loader to give back to the module). The
    loader gets its own class back before the module body runs. (No ``__slots__``: with them the
    subclass's layout is not the loader's to CPython, and the class cannot be switched.)
    """

    if TYPE_CHECKING:
        _original: type
        name: str

    def exec_module(self, module: Any) -> None:
        original = self._original
        self.__class__ = original
        name = self.name
        _listener.begin(name)
        try:
            original.exec_module(self, module)  # type: ignore[attr-defined]
        except BaseException:
            _listener.end(name, FAILED)
            raise
        result = sys.modules.get(name, FAILED)
        if result is FAILED and not is_initializing(getattr(module, "__spec__", None)):
            result = module  # executed outside an import (a reload, LazyLoader): report it
        if "." in name:
            _finished(name, result)
        else:
            _listener.end(name, result)


# CPython drops importlib's frames from the traceback of a failing import
# (remove_importlib_frames in import.c). Compiled under importlib's name, exec_module is dropped
# with them, so a target's traceback shows no lazypatch frame.
_LoaderWatch.exec_module.__code__ = _LoaderWatch.exec_module.__code__.replace(
    co_filename=_cpython.IMPORTLIB_FILENAME
)

#: The watching subclass of each per-spec loader class.
_watch_loaders = {
    cls: type(
        cls.__name__,
        (_LoaderWatch, cls),
        {"__module__": cls.__module__, "_original": cls},
    )
    for cls in _cpython.file_loaders
}


class _LoaderProxy:
    """Stands in for a loader between ``find_spec`` and execution; forwards everything else.

    Made by ``find_spec`` with ``object.__new__`` and its two slots set there: no ``__init__``
    frame per import.
    """

    __slots__ = ("_loader", "_spec")

    if TYPE_CHECKING:
        _loader: Any
        _spec: Any  # a ModuleSpec, or a finder's look-alike

    def __getattr__(self, name: str) -> Any:
        return getattr(self._loader, name)

    @property  # type: ignore[misc]  # what isinstance() and type checks see
    def __class__(self) -> type:
        loader = self._loader
        return type(self) if isinstance(loader, type) else type(loader)

    def __repr__(self) -> str:
        return repr(self._loader)

    def _restore(self, module: Any) -> None:
        """Give the spec, and the module if any, their own loader back."""
        loader = self._loader
        spec = self._spec
        if spec.loader is self:
            spec.loader = loader
        if module is None:
            return
        try:
            namespace = module.__dict__
            if namespace.get("__loader__") is self:
                module.__loader__ = loader
            own = namespace.get("__spec__")
            if own is not None and own is not spec and own.loader is self:
                own.loader = loader
        except Exception as exc:
            _boundary.report(exc, lambda exc: f"cannot restore the loader of {spec.name!r}")


class _ExecProxy(_LoaderProxy):
    """For a loader that leaves module creation to importlib (every file loader).

    Its ``create_module`` is that default itself, so importlib calls no code of ours for it.
    """

    __slots__ = ()

    create_module = _cpython.default_create_module

    def exec_module(self, module: Any) -> None:
        # One frame for the whole execution: begin, the loader given back, the real execution,
        # end. _restore and _finished are inlined for top-level modules, the common case.
        spec = self._spec
        loader = self._loader
        name = spec.name
        _listener.begin(name)
        try:
            if spec.loader is self:
                spec.loader = loader
            try:
                namespace = module.__dict__
                if namespace.get("__loader__") is self:
                    module.__loader__ = loader
                own = namespace.get("__spec__")
                if own is not None and own is not spec and own.loader is self:
                    own.loader = loader
            except Exception as exc:
                _boundary.report(exc, lambda exc: f"cannot restore the loader of {name!r}")
            loader.exec_module(module)
        except BaseException:
            _listener.end(name, FAILED)
            raise
        result = sys.modules.get(name, FAILED)
        if result is FAILED and not is_initializing(spec):
            result = module  # executed outside an import (a reload, LazyLoader): report it
        if "." in name:
            _finished(name, result)
        else:
            _listener.end(name, result)


class _CreatingExecProxy(_ExecProxy):
    """For a loader with a ``create_module`` of its own (extension modules, built-ins...)."""

    __slots__ = ()

    def create_module(self, spec: Any) -> Any:
        # Looked up on the loader itself: BuiltinImporter and FrozenImporter are used as classes.
        loader = self._loader
        create = getattr(loader, "create_module", None)
        if create is None:
            return None
        spec.loader = loader
        try:
            return create(spec)
        finally:
            spec.loader = self


if _cpython.default_create_module is None:  # reduced mode: every loader is asked to create
    _ExecProxy.create_module = _CreatingExecProxy.create_module

# CPython drops importlib's frames from the traceback of a failing import
# (remove_importlib_frames in import.c). Compiled under importlib's name, exec_module is dropped
# with them, so a target's traceback shows no lazypatch frame.
_ExecProxy.exec_module.__code__ = _ExecProxy.exec_module.__code__.replace(
    co_filename=_cpython.IMPORTLIB_FILENAME
)


class _LegacyProxy(_LoaderProxy):
    """For loaders that only have ``load_module`` (importlib then warns, as it would without us)."""

    __slots__ = ()

    def load_module(self, fullname: str) -> Any:
        _listener.begin(fullname)
        self._restore(None)
        try:
            module = self._loader.load_module(fullname)
            self._restore(module)
        except BaseException:
            _listener.end(fullname, FAILED)
            raise
        _finished(fullname, sys.modules.get(fullname, module))
        return module


_new = object.__new__


class Finder:
    """The ``sys.meta_path`` entry; the keys of the ``watched`` dict are the names it watches."""

    __slots__ = ("_watched", "_threads", "_expect", "_newest", "_looked")

    def __init__(self, watched: Mapping[str, object]) -> None:
        self._watched = watched
        self._threads = _cpython.thread_local()
        self._expect = -1  # len(sys.modules) expected at the next call if nothing bypassed us
        self._newest: Optional[str] = None  # newest name of sys.modules at the last look
        self._looked = 0  # len(sys.modules) at the last look

    def __repr__(self) -> str:
        return "<lazypatch finder>"

    def install(self) -> None:
        """Put this finder first in ``sys.meta_path``, unless it is there already."""
        if self not in sys.meta_path:
            sys.meta_path.insert(0, self)
        self.mark()

    def uninstall(self) -> None:
        """Take this finder out of ``sys.meta_path``."""
        while self in sys.meta_path:
            sys.meta_path.remove(self)

    def find_spec(
        self,
        fullname: str,
        path: Optional[Sequence[str]] = None,
        target: Optional[ModuleType] = None,
    ) -> Optional[ModuleSpec]:
        # Every name imported through this finder adds one entry to sys.modules before the next
        # call; any other count means something else added names: look at them. One length
        # comparison is all an unwatched import pays besides the dict lookup.
        count = len(sys.modules)
        if count != self._expect:
            self.catch_up()
        self._expect = count + 1
        if fullname not in self._watched:
            return None
        # A watched name: the other finders are asked here, inline (one frame per import).
        threads = self._threads
        try:
            busy = threads.names
        except AttributeError:
            busy = threads.names = set()
        if fullname in busy:
            return None
        busy.add(fullname)
        spec: Optional[ModuleSpec]
        try:
            for finder in sys.meta_path:
                if finder is self:
                    continue
                find_spec = getattr(finder, "find_spec", None)
                if find_spec is not None:
                    spec = find_spec(fullname, path, target)
                elif _LEGACY_FIND_MODULE and hasattr(finder, "find_module"):
                    loader = finder.find_module(fullname, path)
                    spec = None if loader is None else _spec_from_loader(fullname, loader)
                else:
                    continue
                if spec is not None:
                    break
            else:
                return None
        finally:
            busy.discard(fullname)
        try:
            loader = spec.loader
            watch = _watch_loaders.get(type(loader))
            if watch is not None:
                loader.__class__ = watch
            elif loader is None:
                # A namespace package before 3.11: importlib supplies the loader itself, so the
                # spec reports instead, from its _initializing flag.
                if spec.submodule_search_locations is not None:
                    _swap(spec)
            elif not isinstance(loader, (_LoaderProxy, _LoaderWatch)):
                if hasattr(loader, "exec_module"):
                    create = getattr(loader, "create_module", None)
                    default = getattr(create, "__func__", None) is _cpython.default_create_module
                    kind = _ExecProxy if default and create is not None else _CreatingExecProxy
                    proxy: _LoaderProxy = _new(kind)
                elif hasattr(loader, "load_module"):
                    proxy = _new(_LegacyProxy)
                else:
                    return spec
                proxy._loader = loader
                proxy._spec = spec
                spec.loader = proxy  # type: ignore[assignment]  # a stand-in for the loader
        except Exception as exc:
            _boundary.report(exc, lambda exc: _listener.failed(fullname, exc))
        return spec

    def mark(self) -> None:
        """Take the current ``sys.modules`` as seen."""
        modules = sys.modules
        self._looked = len(modules)
        try:
            self._newest = next(reversed(modules), None) if modules else None
        except RuntimeError:  # another thread changed sys.modules: look at every name next time
            self._newest = None

    def catch_up(self) -> None:
        """Report the watched names added to ``sys.modules`` since the last look, oldest first.

        Walks the newest names back to the newest one of the last look, so the cost is the
        number of names added; everything, if that name is gone or has moved.
        """
        watched = self._watched
        newest = self._newest
        modules = sys.modules
        count = len(modules)
        at_least = count - self._looked  # names to pass before the old newest can be trusted
        found = []
        try:
            for walked, name in enumerate(reversed(modules)):
                if name is newest and walked >= at_least:
                    break
                if name in watched:
                    found.append(name)
        except RuntimeError:  # another thread changed sys.modules: look at a snapshot
            found = [name for name in tuple(modules) if name in watched]
            found.reverse()
        self.mark()
        for name in reversed(found):
            _listener.late(name)


def _spec_from_loader(fullname: str, loader: Any) -> Optional[ModuleSpec]:
    from importlib.util import spec_from_loader

    spec: Optional[ModuleSpec] = spec_from_loader(fullname, loader)
    return spec
