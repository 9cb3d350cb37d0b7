"""``Instrumentor``: a set of patches with a lifecycle, armed before its target libraries load.

``instrument()`` puts an internal hook on each target and imports nothing. When the last target
has finished executing, the requirements are checked against installed distributions and
``_instrument`` runs, once; the patches it makes re-apply themselves on reloads. Everything made
through ``self.wrap``/``self.replace``/``self.register_hook`` is tracked, so ``uninstrument()``
can take it all back.
"""

from _thread import RLock
from time import perf_counter

from . import _config, _hooks, _patches
from ._hooks import _registry
from ._log import logger

_lock = RLock()
_all = []  # one instance per Instrumentor class, in creation order, for status()


class Instrumentor:
    """Base class of an instrumentation: name the modules it needs, patch them in ``_instrument``.

    One instance per exact class (``MyInstrumentor() is MyInstrumentor()``); a subclass has its own.
    States: ``"off"``, ``"pending"`` (armed, targets not all imported), ``"active"``, ``"skipped"``
    (requirements unmet), ``"failed"`` (``_instrument`` raised).
    """

    name: str = ""
    targets: "tuple[str, ...]" = ()
    requirements: "tuple[str, ...]" = ()

    def __init_subclass__(cls, **kwargs) -> None:
        super().__init_subclass__(**kwargs)
        if "name" not in cls.__dict__:
            cls.name = cls.__name__.lower().replace("instrumentor", "")

    def __new__(cls, *args, **kwargs):
        with _lock:
            self = cls.__dict__.get("_instance")
            if self is None:
                self = super().__new__(cls)
                self.state = "off"
                self.reason = None
                self._calls = 0
                self._seconds = 0.0
                self._kwargs = {}
                self._armed = []
                self._loaded = set()
                self._made = []
                self._ran = False
                cls._instance = self
                _all.append(self)
        return self

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name!r}: {self.state}>"

    def instrumentation_dependencies(self) -> "Collection[str]":  # noqa: F821
        """The requirements (OpenTelemetry's name for them)."""
        return self.requirements

    def _instrument(self, **kwargs) -> None:
        """Apply the patches; runs once all targets are imported. Override in a subclass."""

    def _uninstrument(self, **kwargs) -> None:
        """Undo what tracked patches do not cover. Optional: tracked patches are removed anyway."""

    def wrap(
        self,
        module: "str | ModuleType",  # noqa: F821
        path: str,
        wrapper,
        *,
        in_place: bool = False,
    ) -> "_patches.Patch":
        """Like :func:`lazypatch.wrap`, removed by :meth:`uninstrument`."""
        return self._track(_patches.wrap(module, path, wrapper, in_place=in_place))

    def replace(self, module: "str | ModuleType", path: str, value: object) -> "_patches.Patch":  # noqa: F821
        """Like :func:`lazypatch.replace`, removed by :meth:`uninstrument`."""
        return self._track(_patches.replace(module, path, value))

    def register_hook(self, module: str, hook) -> "_hooks.Hook":
        """Like :func:`lazypatch.register_hook`, removed by :meth:`uninstrument`."""
        return self._track(_hooks.register_hook(module, hook))

    def instrument(self, **kwargs) -> None:
        """Arm: ``_instrument(**kwargs)`` runs once every target is imported (now, if they are).

        Imports nothing. Idempotent: does nothing unless the state is ``"off"``.
        """
        with _lock:
            if self.state != "off":
                return
            self.state = "pending"
            self.reason = None
            self._kwargs = kwargs
            self._loaded = set()
        if not self.targets:
            self._run()
        for target in self.targets:
            hook = _registry.add(target, self._on_load(target), internal=True)
            with _lock:
                if self.state == "pending" and not self._ran:
                    self._armed.append(hook)
                    continue
            hook.remove()

    def uninstrument(self, **kwargs) -> None:
        """Remove every tracked patch and hook, cancel a pending ``instrument()``, then run
        ``_uninstrument(**kwargs)`` if ``_instrument`` had run. Idempotent."""
        with _lock:
            if self.state == "off":
                return
            self.state = "off"
            self.reason = None
            ran, self._ran = self._ran, False
        self._disarm()
        self._remove_made()
        if ran:
            try:
                self._uninstrument(**kwargs)
            except Exception:
                if _config.strict():
                    raise
                logger().error("uninstrumenting %s failed", self.name, exc_info=True)

    # -- internals ------------------------------------------------------------------

    def _track(self, handle):
        with _lock:
            self._made.append(handle)
        return handle

    def _remove_made(self) -> None:
        with _lock:
            made, self._made = self._made, []
        for handle in reversed(made):
            handle.remove()

    def _on_load(self, target: str):
        def loaded(module) -> None:
            with _lock:
                if self.state != "pending":
                    return
                self._loaded.add(target)
                if len(self._loaded) < len(set(self.targets)):
                    return
            self._run()

        return loaded

    def _run(self) -> None:
        with _lock:
            if self.state != "pending" or self._ran:
                return
            self._ran = True
        start = perf_counter()
        try:
            reason = unmet(self.requirements)
            if reason is not None:
                self._stop("skipped", reason)
                logger().info("instrumentor %s skipped: %s", self.name, reason)
                return
            self._calls += 1
            self._instrument(**self._kwargs)
        except Exception as exc:
            from ._status import reason_of

            self._remove_made()
            self._stop("failed", reason_of(exc))
            if _config.strict():
                raise
            logger().error("instrumentor %s failed, the import goes on", self.name, exc_info=True)
        else:
            with _lock:
                if self.state == "pending":
                    self.state = "active"
        finally:
            self._seconds += perf_counter() - start
            self._disarm()

    def _stop(self, state: str, reason: str) -> None:
        with _lock:
            self._ran = False
            self.state = state
            self.reason = reason

    def _disarm(self) -> None:
        with _lock:
            armed, self._armed = self._armed, []
        for hook in armed:
            hook.remove()


def unmet(requirements) -> "str | None":
    """Why the first unmet requirement is unmet, or None when all are met.

    The installed version comes from lazypatch's scan of installed distributions (the one reader
    of metadata); ``packaging`` is imported only here, when a requirement is checked. A
    pre-release satisfies a specifier when it lies inside its range: an installed version is
    checked as it is, as ``pip check`` does (packaging's default excludes pre-releases only when
    choosing what to install).
    """
    if not requirements:
        return None
    from packaging.requirements import Requirement

    from . import _metadata

    for text in requirements:
        requirement = Requirement(text)
        if requirement.marker is not None and not requirement.marker.evaluate():
            continue
        found = _metadata.version(requirement.name)
        if found is None:
            return f"requirement {text!r} not met: {requirement.name} is not installed"
        if not requirement.specifier.contains(found, prereleases=True):
            return f"requirement {text!r} not met: {requirement.name} {found} is installed"
    return None


def all_instrumentors() -> list:
    """Every Instrumentor instance, in creation order."""
    with _lock:
        return list(_all)
