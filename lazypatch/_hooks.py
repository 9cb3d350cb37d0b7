"""Registry of post-import hooks: pending/fired state, ordering, locking, error isolation.

Each watched module has a generation counter, bumped when an execution of it begins. A hook
remembers the generation it last fired for; when an execution ends, every hook of that module
with an older generation fires once, in registration order, including hooks registered while the
module was executing. The registry lock guards only these state changes, never a hook's run.
"""

import os
import sys
from _thread import RLock
from time import perf_counter

from . import _config, _finder
from ._log import logger

_MISSING = object()


class Hook:
    """Handle on one registered post-import hook."""

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

    def __init__(self, module: str, target, internal: bool = False) -> None:
        self.module = module
        self.target = target
        self.state = "pending"
        self.calls = 0
        self.error = None
        self._seconds = 0.0
        self._gen = 0
        self._internal = internal
        self._offline = None  # while uninstalled: the (module, spec) this hook last saw

    def __repr__(self) -> str:
        return f"<Hook {describe(self.target)} for {self.module!r}: {self.state}>"

    def remove(self) -> None:
        """Stop this hook from firing again; idempotent. What it already did stays done."""
        _registry.remove(self)

    def _run(self, module) -> None:
        start = perf_counter()
        try:
            target = self.target
            if target.__class__ is str:
                target = resolve(target)
            target(module)
        except BaseException as exc:
            self.error = exc
            if self.state != "removed":
                self.state = "failed"
            if not isinstance(exc, Exception) or _config.strict():
                raise
            logger().error(
                "post-import hook %s for module %r failed; the import goes on",
                describe(self.target),
                self.module,
                exc_info=True,
            )
        else:
            if self.state != "removed":
                self.state = "fired"
        finally:
            self.calls += 1
            self._seconds += perf_counter() - start


def describe(target) -> str:
    """A readable name for a hook target: a ``"pkg.mod:func"`` string, or module.qualname."""
    if target.__class__ is str:
        return target
    name = getattr(target, "__qualname__", None) or getattr(target, "__name__", None)
    if name is None:
        return repr(target)
    module = getattr(target, "__module__", None)
    return f"{module}.{name}" if module else name


def resolve(target: str):
    """Import ``"pkg.mod:attr.path"`` and return the attribute."""
    module_name, _, path = target.partition(":")
    __import__(module_name)
    obj = sys.modules[module_name]
    for part in path.split("."):
        obj = getattr(obj, part)
    return obj


def _check_target(target) -> None:
    if target.__class__ is str:
        module_name, sep, path = target.partition(":")
        if not (sep and module_name and path) or "" in path.split("."):
            raise ValueError(f"hook string must look like 'pkg.mod:attr.path', got {target!r}")
    elif not callable(target):
        raise TypeError(f"hook must be a callable or a 'pkg.mod:attr' string, got {target!r}")


def _spec_of(obj):
    """``obj.__spec__`` without running the module's ``__getattr__`` or a lazy module's load."""
    try:
        return object.__getattribute__(obj, "__dict__").get("__spec__")
    except Exception:
        return None


class _Registry(_finder.Listener):
    def __init__(self) -> None:
        self.lock = RLock()
        self.hooks = {}  # module name -> live hooks in registration order; the finder's watch list
        self.all = []  # public hooks ever registered, for status()
        self.depth = {}  # module name -> executions in progress
        self.gens = {}  # module name -> executions begun
        self.seen = {}  # watched name -> (module, spec) of the last execution its hooks saw
        self.offline = False  # uninstalled: hooks remember what they saw, for install()
        self.finder = _finder.Finder(self.hooks)
        self.auto_installed = False

    # -- registration ---------------------------------------------------------------

    def add(self, module: str, target, internal: bool = False) -> Hook:
        if module.__class__ is not str or not module:
            raise TypeError(f"module must be a non-empty dotted name, got {module!r}")
        _check_target(target)
        if not self.auto_installed:
            self.auto_installed = True
            self.install()
        else:
            self.catch_up(module)
        hook = Hook(module, target, internal)
        with self.lock:
            self.hooks.setdefault(module, []).append(hook)
            if not internal:
                self.all.append(hook)
            loaded, gen = self._arm(hook)
            busy = not self.depth.get(module) and _finder.import_in_flight(module)
        if busy:
            # Another thread is importing or reloading it without our proxy: its end decides.
            _finder.wait_for_import(module)
            with self.lock:
                loaded = self._arm(hook)[0] if hook._gen == gen else _MISSING
        if loaded is not _MISSING:
            seen = (loaded, _spec_of(loaded))
            if self.offline:
                hook._offline = seen
            else:
                with self.lock:
                    if module in self.hooks:
                        self.seen[module] = seen
            hook._run(loaded)
        return hook

    def _arm(self, hook: Hook):
        """Under the lock: the module to fire ``hook`` on now (or _MISSING), and its generation."""
        loaded = self._loaded(hook.module)
        gen = self.gens.get(hook.module, 0)
        hook._gen = gen - 1 if self.depth.get(hook.module) else gen
        return loaded, hook._gen

    def _loaded(self, name: str):
        """The module if fully imported; else _MISSING (absent, or executing: it will report)."""
        if self.depth.get(name):
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
        with self.lock:
            if hook.state == "removed":
                return False
            hook.state = "removed"
            hooks = self.hooks.get(hook.module)
            if hooks is not None and hook in hooks:
                hooks.remove(hook)
                if not hooks:
                    del self.hooks[hook.module]
                    self.seen.pop(hook.module, None)
            return True

    def remove_target(self, module: str, target) -> bool:
        with self.lock:
            matches = [
                h
                for h in self.hooks.get(module, ())
                if h is target or (not h._internal and _same(h.target, target))
            ]
            for hook in matches:
                self.remove(hook)
        return bool(matches)

    # -- reports from the finder ----------------------------------------------------

    # begin() and end() run in every watched import: the lock is taken with acquire() / release()
    # rather than ``with``, which costs about twice as much per round trip.

    def begin(self, name: str) -> None:
        lock = self.lock
        lock.acquire()
        try:
            self.depth[name] = self.depth.get(name, 0) + 1
            self.gens[name] = self.gens.get(name, 0) + 1
        finally:
            lock.release()

    def end(self, name: str, module, spec=None) -> None:
        failed = module is _finder.FAILED
        lock = self.lock
        try:
            while True:
                lock.acquire()
                try:
                    gen = self.gens.get(name, 0)
                    due = []
                    if not failed:
                        seen = (module, _spec_of(module))
                        if name in self.hooks:
                            self.seen[name] = seen
                        if not self.offline:
                            seen = None
                        for hook in self.hooks.get(name, ()):
                            if hook._gen < gen:
                                hook._gen = gen
                                hook._offline = seen
                                due.append(hook)
                    if not due:
                        self._leave(name, spec)
                        return
                finally:
                    lock.release()
                for hook in due:
                    if hook.state != "removed":
                        hook._run(module)
        except BaseException:
            with lock:
                self._leave(name, spec)
            raise

    def late(self, name: str) -> None:
        """Fire the hooks of ``name`` if the module in ``sys.modules`` was executed without the
        finder's knowledge (resolved by a finder in front of it): once per execution."""
        if self.offline:
            return
        with self.lock:
            module = self._loaded(name)
            if module is _MISSING or name not in self.hooks:
                return
            spec = _spec_of(module)
            seen = self.seen.get(name)
            # A legacy load_module loader's module gets its __spec__ only after the execution.
            if seen is not None and seen[0] is module and (seen[1] is None or seen[1] is spec):
                return
            self.seen[name] = (module, spec)
            gen = self.gens[name] = self.gens.get(name, 0) + 1
            due = []
            for hook in self.hooks[name]:
                if hook._gen < gen:
                    hook._gen = gen
                    due.append(hook)
        for hook in due:
            if hook.state != "removed":
                hook._run(module)

    def catch_up(self, name=None) -> None:
        """Fire what executions unknown to the finder left pending: those of the names added to
        ``sys.modules`` since the finder's last look, and of ``name`` (every watched name if
        None: a reload by a finder in front adds no name)."""
        if self.offline:
            return
        self.finder.catch_up()
        for watched in list(self.hooks) if name is None else (name,):
            self.late(watched)

    def _leave(self, name: str, spec) -> None:
        """Under the lock, in the same step that found no hook left: the execution is over."""
        depth = self.depth.get(name, 0) - 1
        if depth > 0:
            self.depth[name] = depth
        else:
            self.depth.pop(name, None)
        if spec is not None:
            _finder.unwatch(spec)

    # -- lifecycle ------------------------------------------------------------------

    def install(self) -> None:
        with self.lock:
            self.finder.install()
            offline, self.offline = self.offline, False
        if offline:
            self._catch_up()
        self.catch_up()

    def uninstall(self) -> None:
        with self.lock:
            self.auto_installed = True  # an explicit uninstall() is not undone by a registration
            self.finder.uninstall()
            if self.offline:
                return
            self.offline = True
            for name, hooks in self.hooks.items():
                module = self._loaded(name)
                seen = None if module is _MISSING else (module, _spec_of(module))
                for hook in hooks:
                    hook._offline = seen

    def _catch_up(self) -> None:
        """Fire each hook that missed the execution of its module while uninstalled.

        A module object or a ``__spec__`` (renewed by a reload) other than the one the hook saw
        last means its module was executed meanwhile.
        """
        for name in list(self.hooks):
            with self.lock:
                module = self._loaded(name)
                spec = None if module is _MISSING else _spec_of(module)
                due = []
                for hook in self.hooks.get(name, ()):
                    seen, hook._offline = hook._offline, None
                    if module is not _MISSING and (
                        seen is None or seen[0] is not module or seen[1] is not spec
                    ):
                        hook._gen = self.gens.get(name, 0)
                        due.append(hook)
                if module is not _MISSING and name in self.hooks:
                    self.seen[name] = (module, spec)
            for hook in due:
                if hook.state != "removed":
                    hook._run(module)

    def after_fork_in_child(self) -> None:
        self.lock = RLock()


def _same(registered, target) -> bool:
    try:
        return bool(registered == target)
    except Exception:
        return False


_registry = _Registry()
_finder.set_listener(_registry)
if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_registry.after_fork_in_child)


def register_hook(module: str, hook) -> Hook:
    """Run ``hook(module_object)`` each time ``module`` finishes executing (now, if imported).

    ``hook`` is a callable or a ``"pkg.mod:attr.path"`` string imported only when it fires.
    """
    return _registry.add(module, hook)


def when_imported(module: str):
    """Decorator form of :func:`register_hook`; returns the function unchanged."""

    def decorate(func):
        _registry.add(module, func)
        return func

    return decorate


def unregister_hook(module: str, hook) -> bool:
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


def public_hooks() -> list:
    """Every hook registered through the public API, removed ones included."""
    with _registry.lock:
        return list(_registry.all)
