"""Post-import hooks: ``Hook`` handles, pending/fired state, ordering, lazy ``"pkg:func"`` targets.

Each watched module has a generation counter, bumped when an execution of it begins. A hook
remembers the generation it last fired for; when an execution ends, every hook of that module
with an older generation fires once, in registration order, including hooks registered while the
module was executing. ``hooks_lock`` (process state) guards only these state changes, never a
hook's run; a hook runs inside the error boundary.
"""

import sys
from time import perf_counter

from . import _boundary, _finder
from ._state import state

TYPE_CHECKING = False
if TYPE_CHECKING:
    from types import ModuleType
    from typing import Any, Callable, List, Optional, Tuple, TypeVar, Union

    HookTarget = Union[Callable[[ModuleType], object], str]
    F = TypeVar("F", bound=Callable[[ModuleType], object])

_MISSING = object()
_ModuleType = type(sys)


class Hook:
    """Handle on one registered post-import hook.

    ``state``: ``"pending"``, ``"fired"``, ``"failed"`` (its last run raised) or ``"removed"``.
    ``error``: the exception its last run raised; None if that run succeeded or none has run.
    """

    __slots__ = (
        "module",
        "target",
        "state",
        "calls",
        "error",
        "_seconds",
        "_gen",
        "_internal",
        "_offline",
    )

    def __init__(self, module: str, target: "HookTarget", internal: bool = False) -> None:
        self.module = module
        self.target = target
        self.state = "pending"
        self.calls = 0
        self.error: Optional[BaseException] = None
        self._seconds = 0.0
        self._gen = 0
        self._internal = internal
        self._offline: Optional[Tuple[object, object]] = None  # uninstalled: (module, spec) seen

    def __repr__(self) -> str:
        return f"<Hook {describe(self.target)} for {self.module!r}: {self.state}>"

    def remove(self) -> None:
        """Stop this hook from firing again; idempotent. What it already did stays done."""
        _registry.remove(self)

    def _run(self, module: object) -> None:
        # The error boundary's run() inlined: no bound methods made per run.
        start = perf_counter()
        try:
            target = self.target
            function = resolve(target) if isinstance(target, str) else target
            function(module)  # type: ignore[operator]
        except BaseException as exc:
            _boundary.report(exc, self._failed)
        else:
            self.error = None
            if self.state != "removed":
                self.state = "fired"
        finally:
            self.calls += 1
            self._seconds += perf_counter() - start

    def _failed(self, exc: BaseException) -> str:
        self.error = exc
        if self.state != "removed":
            self.state = "failed"
        target = describe(self.target)
        return f"post-import hook {target} for module {self.module!r} failed; the import goes on"


def describe(target: object) -> str:
    """A readable name for a hook target: a ``"pkg.mod:func"`` string, or module.qualname."""
    if isinstance(target, str):
        return target
    name = getattr(target, "__qualname__", None) or getattr(target, "__name__", None)
    if name is None:
        return repr(target)
    module = getattr(target, "__module__", None)
    return f"{module}.{name}" if module else name


def resolve(target: str) -> object:
    """Import ``"pkg.mod:attr.path"`` and return the attribute."""
    module_name, _, path = target.partition(":")
    __import__(module_name)
    obj: object = sys.modules[module_name]
    for part in path.split("."):
        obj = getattr(obj, part)
    return obj


def _check_target(target: object) -> None:
    if isinstance(target, str):
        module_name, sep, path = target.partition(":")
        if not (sep and module_name and path) or "" in path.split("."):
            raise ValueError(f"hook string must look like 'pkg.mod:attr.path', got {target!r}")
    elif not callable(target):
        raise TypeError(f"hook must be a callable or a 'pkg.mod:attr' string, got {target!r}")


def _spec_of(obj: object) -> object:
    """``obj.__spec__`` without running the module's ``__getattr__`` or a lazy module's load."""
    try:
        return object.__getattribute__(obj, "__dict__").get("__spec__")
    except Exception:
        return None


class _Registry(_finder.Listener):
    """The hook logic over the process state's hook registries; the finder reports to it."""

    def __init__(self) -> None:
        self.finder = _finder.Finder(state.watched)

    # -- registration ---------------------------------------------------------------

    def add(self, module: str, target: "HookTarget", internal: bool = False) -> Hook:
        if module.__class__ is not str or not module:
            raise TypeError(f"module must be a non-empty dotted name, got {module!r}")
        _check_target(target)
        if not state.auto_installed:
            state.auto_installed = True
            self.install()
        else:
            self.catch_up(module)
        hook = Hook(module, target, internal)
        with state.hooks_lock:
            state.watched.setdefault(module, []).append(hook)
            state.registrations += 1
            if not internal:
                state.public_hooks[hook] = None
            loaded, gen = self._arm(hook)
            busy = not state.depth.get(module) and _finder.import_in_flight(module)
        while busy and not _finder.import_held_here(module):
            # Another thread is importing or reloading it, perhaps without our proxy: its end
            # decides. Then check again: a reload waiting for that lock may have taken it, and its
            # module is not ours to run on until it has finished executing.
            _finder.wait_for_import(module)
            with state.hooks_lock:
                if hook._gen != gen:  # an execution's end has fired it meanwhile
                    loaded = _MISSING
                    break
                loaded, gen = self._arm(hook)
                busy = not state.depth.get(module) and _finder.import_in_flight(module)
        if loaded is not _MISSING:
            if state.offline:
                hook._offline = (loaded, _spec_of(loaded))
            hook._run(loaded)
        return hook

    def _arm(self, hook: Hook) -> "Tuple[object, int]":
        """Under the lock: the module to fire ``hook`` on now (or _MISSING), and its generation."""
        loaded = self._loaded(hook.module)
        gen = state.gens.get(hook.module, 0)
        hook._gen = gen - 1 if state.depth.get(hook.module) else gen
        if loaded is not _MISSING and not state.offline:
            # In the same step: a later execution's end must not be overwritten by this one.
            state.seen[hook.module] = (loaded, _spec_of(loaded))
        return loaded, hook._gen

    def _loaded(self, name: str) -> object:
        """The module if fully imported; else _MISSING (absent, or executing: it will report)."""
        if state.depth.get(name):
            return _MISSING
        obj = sys.modules.get(name)
        if obj is None:
            return _MISSING
        spec = _spec_of(obj)
        if spec is None:
            return obj
        if _finder.is_proxied(spec):
            return _MISSING  # its proxy has yet to execute it, and will report
        if _finder.is_initializing(spec):
            seen = state.seen.get(name)
            if seen is not None and seen[0] is obj:
                # Our proxy has reported the end of this execution; importlib has yet to clear
                # its spec's flag in its last step. Watching the spec now would report it twice.
                return obj
            # Mid-import without our proxy (registered from its own body, a circular import or
            # another thread): the spec reports the end of that execution.
            if _finder.is_watched(spec):
                return _MISSING
            if _finder.watch_spec(spec):
                self.begin(name)
                return _MISSING
            if _finder.is_initializing(spec):
                return _MISSING  # a spec class that cannot be switched: wait for a next execution
        return obj

    def remove(self, hook: Hook) -> bool:
        with state.hooks_lock:
            if hook.state == "removed":
                return False
            hook.state = "removed"
            state.public_hooks.pop(hook, None)
            hooks = state.watched.get(hook.module)
            if hooks is not None and hook in hooks:
                hooks.remove(hook)
                if not hooks:
                    del state.watched[hook.module]
                    state.seen.pop(hook.module, None)
            return True

    def remove_target(self, module: str, target: object) -> bool:
        with state.hooks_lock:
            matches = [
                h
                for h in state.watched.get(module, ())
                if h is target or (not h._internal and _same(h.target, target))
            ]
            for hook in matches:
                self.remove(hook)
        return bool(matches)

    # -- reports from the finder ----------------------------------------------------

    # begin() and end() run in every watched import: the lock is taken with acquire() / release()
    # rather than ``with``, which costs about twice as much per round trip.

    def begin(self, name: str) -> None:
        lock = state.hooks_lock
        lock.acquire()
        try:
            state.depth[name] = state.depth.get(name, 0) + 1
            state.gens[name] = state.gens.get(name, 0) + 1
        finally:
            lock.release()

    def end(self, name: str, module: object, spec: object = None) -> None:
        # Shaped for the common case, measured with callgrind: one locked pass collects the due
        # hooks and, if there are none, ends the execution there. After running them, a second
        # full pass is needed only if a registration (from one of them, or another thread) came
        # meanwhile: comparing the registration count is enough, since nothing else makes a hook
        # of an executing module due. A plain module's spec is read without a _spec_of frame.
        lock = state.hooks_lock
        try:
            while True:
                lock.acquire()
                try:
                    due = None
                    if module is _finder.FAILED:
                        hooks = None
                        self._failed_execution(name)
                    else:
                        hooks = state.watched.get(name)
                    if hooks is not None:
                        executed: Tuple[object, object]
                        if type(module) is _ModuleType:
                            executed = (module, module.__dict__.get("__spec__"))
                        else:
                            executed = (module, _spec_of(module))
                        state.seen[name] = executed
                        seen = executed if state.offline else None
                        gen = state.gens.get(name, 0)
                        for hook in hooks:
                            if hook._gen < gen:
                                hook._gen = gen
                                hook._offline = seen
                                if due is None:
                                    due = [hook]
                                else:
                                    due.append(hook)
                    if due is None:
                        self._leave(name, spec)
                        return
                    registrations = state.registrations
                finally:
                    lock.release()
                for hook in due:
                    if hook.state != "removed":
                        hook._run(module)
                lock.acquire()
                try:
                    if state.registrations == registrations:
                        self._leave(name, spec)
                        return
                finally:
                    lock.release()
        except BaseException:
            with state.hooks_lock:
                self._leave(name, spec)
            raise

    def _failed_execution(self, name: str) -> None:
        """Under the lock: a failed reload leaves its module in ``sys.modules`` with a new
        ``__spec__``; seen as it is, it does not pass for an execution the finder missed."""
        if name in state.watched:
            module = sys.modules.get(name)
            if module is not None:
                state.seen[name] = (module, _spec_of(module))

    def late(self, name: str) -> None:
        """Fire the hooks of ``name`` if the module in ``sys.modules`` was executed without the
        finder's knowledge (resolved by a finder in front of it): once per execution."""
        if state.offline:
            return
        with state.hooks_lock:
            if name not in state.watched or _finder.import_in_flight(name):
                return  # an import or reload in progress: its end, or the next chance, decides
            module = self._loaded(name)
            if module is _MISSING:
                return
            spec = _spec_of(module)
            seen = state.seen.get(name)
            # A legacy load_module loader's module gets its __spec__ only after the execution.
            if seen is not None and seen[0] is module and (seen[1] is None or seen[1] is spec):
                return
            state.seen[name] = (module, spec)
            gen = state.gens[name] = state.gens.get(name, 0) + 1
            due = []
            for hook in state.watched[name]:
                if hook._gen < gen:
                    hook._gen = gen
                    due.append(hook)
        for hook in due:
            if hook.state != "removed":
                hook._run(module)

    def catch_up(self, name: "Optional[str]" = None) -> None:
        """Fire what executions unknown to the finder left pending: those of the names added to
        ``sys.modules`` since the finder's last look, and of ``name`` (every watched name if
        None: a reload by a finder in front adds no name)."""
        if state.offline:
            return
        self.finder.catch_up()
        for watched in list(state.watched) if name is None else (name,):
            self.late(watched)

    def _leave(self, name: str, spec: object) -> None:
        """Under the lock, in the same step that found no hook left: the execution is over."""
        depth = state.depth.get(name, 0) - 1
        if depth > 0:
            state.depth[name] = depth
        else:
            state.depth.pop(name, None)
        if spec is not None:
            _finder.unwatch(spec)

    def failed(self, name: str, exc: BaseException) -> str:
        with state.hooks_lock:
            for hook in state.watched.get(name, ()):
                hook.error = exc
                hook.state = "failed"
        return f"lazypatch's finder failed on module {name!r}: its hooks miss this execution"

    # -- lifecycle ------------------------------------------------------------------

    def install(self) -> None:
        with state.hooks_lock:
            self.finder.install()
            offline, state.offline = state.offline, False
        if offline:
            self._catch_up()
        self.catch_up()

    def uninstall(self) -> None:
        with state.hooks_lock:
            state.auto_installed = True  # an explicit uninstall() is not undone by a registration
            self.finder.uninstall()
            if state.offline:
                return
            state.offline = True
            for name, hooks in state.watched.items():
                module = self._loaded(name)
                seen = None if module is _MISSING else (module, _spec_of(module))
                for hook in hooks:
                    hook._offline = seen

    def _catch_up(self) -> None:
        """Fire each hook that missed the execution of its module while uninstalled.

        A module object or a ``__spec__`` (renewed by a reload) other than the one the hook saw
        last means its module was executed meanwhile. Every loaded module is recorded as seen
        before any hook runs: a hook that registers another one (an instrumentor's patches) makes
        that registration look at its module, which must not fire the hooks of a module this
        loop has yet to reach.
        """
        with state.hooks_lock:
            for name in state.watched:
                module = self._loaded(name)
                if module is not _MISSING:
                    state.seen[name] = (module, _spec_of(module))
        for name in list(state.watched):
            with state.hooks_lock:
                module = self._loaded(name)
                spec = None if module is _MISSING else _spec_of(module)
                due = []
                for hook in state.watched.get(name, ()):
                    seen, hook._offline = hook._offline, None
                    if module is not _MISSING and (
                        seen is None or seen[0] is not module or seen[1] is not spec
                    ):
                        hook._gen = state.gens.get(name, 0)
                        due.append(hook)
                if module is not _MISSING and name in state.watched:
                    state.seen[name] = (module, spec)
            for hook in due:
                if hook.state != "removed":
                    hook._run(module)


def _same(registered: object, target: object) -> bool:
    try:
        return bool(registered == target)
    except Exception:
        return False


_registry = _Registry()
_finder.set_listener(_registry)


def register_hook(module: str, hook: "HookTarget") -> Hook:
    """Run ``hook(module_object)`` each time ``module`` finishes executing (now, if imported).

    ``hook`` is a callable or a ``"pkg.mod:attr.path"`` string imported only when it fires.
    """
    return _registry.add(module, hook)


def when_imported(module: str) -> "Callable[[F], F]":
    """Decorator form of :func:`register_hook`; returns the function unchanged."""

    def decorate(func: "F") -> "F":
        _registry.add(module, func)
        return func

    return decorate


def unregister_hook(module: str, hook: "HookTarget") -> bool:
    """Remove the hooks for ``module`` whose target is ``hook``; True if something was removed."""
    return _registry.remove_target(module, hook)


def install() -> None:
    """Put the finder first in ``sys.meta_path`` (automatic on first registration); idempotent.

    Also fires the hooks that missed an execution of their module meanwhile."""
    _registry.install()


def uninstall() -> None:
    """Take the finder out of ``sys.meta_path``; pending hooks wait for :func:`install`."""
    _registry.uninstall()


def catch_up() -> None:
    """Fire the hooks of modules executed by a finder in front of lazypatch's (for ``status()``)."""
    _registry.catch_up()


def add_internal(module: str, target: "Callable[[Any], object]") -> Hook:
    """A hook for lazypatch's own use (a patch, an instrumentor's target, an entry point): not
    listed by ``status()``, not matched by ``unregister_hook``."""
    return _registry.add(module, target, internal=True)


def status_rows() -> "List[Tuple[str, str, str, Optional[str], int, float]]":
    """``(name, module, state, reason, calls, seconds)`` of each live public hook, in
    registration order."""
    with state.hooks_lock:
        hooks = list(state.public_hooks)
    return [
        (
            describe(hook.target),
            hook.module,
            hook.state,
            _boundary.reason(hook.error) if hook.state == "failed" else None,
            hook.calls,
            hook._seconds,
        )
        for hook in hooks
    ]
