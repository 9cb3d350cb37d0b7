"""``Instrumentor``: a set of patches with a lifecycle, armed before its target libraries load.

``instrument()`` puts an internal hook on each target and imports nothing. When the last target
has finished executing, the requirements are checked against installed distributions and
``_instrument`` runs, once; the patches it makes re-apply themselves on reloads. Everything made
through ``self.wrap``/``self.replace``/``self.register_hook`` is tracked, so ``uninstrument()``
can take it all back.
"""

from time import perf_counter

from . import _boundary, _hooks, _patches
from ._log import logger
from ._state import state

TYPE_CHECKING = False
if TYPE_CHECKING:
    from types import ModuleType
    from typing import Any, Callable, Collection, Dict, List, Optional, Set, Tuple, TypeVar, Union

    H = TypeVar("H", _hooks.Hook, _patches.Patch)


class Instrumentor:
    """Base class of an instrumentation: name the modules it needs, patch them in ``_instrument``.

    One instance per exact class (``MyInstrumentor() is MyInstrumentor()``); a subclass has its own.
    States: ``"off"``, ``"pending"`` (armed, targets not all imported), ``"active"``, ``"skipped"``
    (requirements unmet), ``"failed"`` (``_instrument`` raised).
    """

    name: str = ""
    targets: "Tuple[str, ...]" = ()
    requirements: "Tuple[str, ...]" = ()
    state: str
    reason: "Optional[str]"
    _calls: int
    _seconds: float
    _kwargs: "Dict[str, Any]"
    _armed: "List[_hooks.Hook]"
    _loaded: "Set[str]"
    _made: "List[Union[_hooks.Hook, _patches.Patch]]"
    _ran: bool

    def __init_subclass__(cls, **kwargs: "Any") -> None:
        super().__init_subclass__(**kwargs)
        if "name" not in cls.__dict__:
            cls.name = cls.__name__.lower().replace("instrumentor", "")
        # A lone string (``targets = "json"``) means one module, not one per character.
        for field in ("targets", "requirements"):
            if isinstance(cls.__dict__.get(field), str):
                setattr(cls, field, (cls.__dict__[field],))

    def __new__(cls, *args: "Any", **kwargs: "Any") -> "Instrumentor":
        with state.instrumentors_lock:
            self: Optional[Instrumentor] = cls.__dict__.get("_instance")
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
                state.instrumentors.append(self)
        return self

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name!r}: {self.state}>"

    def instrumentation_dependencies(self) -> "Collection[str]":
        """The requirements (OpenTelemetry's name for them)."""
        return self.requirements

    def _instrument(self, **kwargs: "Any") -> None:
        """Apply the patches; runs once all targets are imported. Override in a subclass."""

    def _uninstrument(self, **kwargs: "Any") -> None:
        """Undo what tracked patches do not cover. Optional: tracked patches are removed anyway."""

    def wrap(
        self,
        module: "Union[str, ModuleType]",
        path: str,
        wrapper: "_patches.Wrapper",
        *,
        in_place: bool = False,
    ) -> "_patches.Patch":
        """Like :func:`lazypatch.wrap`, removed by :meth:`uninstrument`."""
        return self._track(_patches.wrap_for(self, module, path, wrapper, in_place))

    def replace(
        self, module: "Union[str, ModuleType]", path: str, value: object
    ) -> "_patches.Patch":
        """Like :func:`lazypatch.replace`, removed by :meth:`uninstrument`."""
        return self._track(_patches.replace_for(self, module, path, value))

    def register_hook(self, module: str, hook: "_hooks.HookTarget") -> "_hooks.Hook":
        """Like :func:`lazypatch.register_hook`, removed by :meth:`uninstrument`."""
        return self._track(_hooks.register_hook(module, hook))

    def instrument(self, **kwargs: "Any") -> None:
        """Arm: ``_instrument(**kwargs)`` runs once every target is imported (now, if they are).

        Imports nothing. Idempotent: does nothing unless the state is ``"off"``.
        """
        with state.instrumentors_lock:
            if self.state != "off":
                return
            self.state = "pending"
            self.reason = None
            self._kwargs = kwargs
            self._loaded = set()
        if not self.targets:
            self._run()
        for target in self.targets:
            hook = _hooks.add_internal(target, self._on_load(target))
            with state.instrumentors_lock:
                if self.state == "pending" and not self._ran:
                    self._armed.append(hook)
                    continue
            hook.remove()

    def uninstrument(self, **kwargs: "Any") -> None:
        """Remove every tracked patch and hook (also those made while ``"off"``), cancel a
        pending ``instrument()``, then run ``_uninstrument(**kwargs)`` if ``_instrument`` had
        run. Idempotent."""
        with state.instrumentors_lock:
            if self.state != "off":  # off: a failed _uninstrument's reason stays
                self.state = "off"
                self.reason = None
            ran, self._ran = self._ran, False
        self._disarm()
        self._remove_made()
        if ran:
            _boundary.run(self._call_uninstrument, kwargs, self._uninstrument_failed)

    # -- internals ------------------------------------------------------------------

    def _call_uninstrument(self, kwargs: "Dict[str, Any]") -> None:
        self._uninstrument(**kwargs)

    def _uninstrument_failed(self, exc: BaseException) -> str:
        # Its patches and hooks are removed all the same: the state stays "off".
        self.reason = f"_uninstrument failed: {_boundary.reason(exc)}"
        return f"uninstrumenting {self.name} failed"

    def _track(self, handle: "H") -> "H":
        with state.instrumentors_lock:
            if handle not in self._made:  # a live patch handed back by wrap_for
                self._made.append(handle)
        return handle

    def _remove_made(self) -> None:
        with state.instrumentors_lock:
            made, self._made = self._made, []
        for handle in reversed(made):
            handle.remove()

    def _on_load(self, target: str) -> "Callable[[object], None]":
        def loaded(module: object) -> None:
            with state.instrumentors_lock:
                if self.state != "pending":
                    return
                self._loaded.add(target)
                if len(self._loaded) < len(set(self.targets)):
                    return
            self._run()

        return loaded

    def _run(self) -> None:
        with state.instrumentors_lock:
            if self.state != "pending" or self._ran:
                return
            self._ran = True
        start = perf_counter()
        try:
            if _boundary.run(self._check_and_instrument, self._kwargs, self._failed) is True:
                with state.instrumentors_lock:
                    if self.state == "pending":
                        self.state = "active"
        finally:
            self._seconds += perf_counter() - start
            self._disarm()

    def _check_and_instrument(self, kwargs: "Dict[str, Any]") -> bool:
        """Run ``_instrument`` if the requirements are met; False if they are not."""
        reason = unmet(self.requirements)
        if reason is not None:
            self._stop("skipped", reason)
            logger().info("instrumentor %s skipped: %s", self.name, reason)
            return False
        self._calls += 1
        self._instrument(**kwargs)
        return True

    def _failed(self, exc: BaseException) -> str:
        self._remove_made()
        self._stop("failed", f"{_boundary.reason(exc)}")
        return f"instrumentor {self.name} failed, the import goes on"

    def _stop(self, new_state: str, reason: str) -> None:
        with state.instrumentors_lock:
            self._ran = False
            self.state = new_state
            self.reason = reason

    def _disarm(self) -> None:
        with state.instrumentors_lock:
            armed, self._armed = self._armed, []
        for hook in armed:
            hook.remove()


def unmet(requirements: "Collection[str]") -> "Optional[str]":
    """Why the first unmet requirement is unmet, or None when all are met.

    The installed version comes from lazypatch's scan of installed distributions (the one reader
    of metadata). Plain comparisons with final releases are decided by
    :mod:`lazypatch._requirements`; ``packaging`` is imported only for the others. A
    pre-release satisfies a specifier when it lies inside its range: an installed version is
    checked as it is, as ``pip check`` does (packaging's default excludes pre-releases only when
    choosing what to install).
    """
    if not requirements:
        return None
    from . import _metadata, _requirements

    for text in requirements:
        simple = _requirements.parse(text)
        if simple is not None:
            name, clauses = simple
            found = _metadata.version(name)
            if found is None:
                return f"requirement unmet: {text!r} ({name} is not installed)"
            installed = _requirements.release(found)
            if installed is not None:
                if not _requirements.satisfied(clauses, installed):
                    return f"requirement unmet: {text!r} ({name} {found} is installed)"
                continue
        from packaging.requirements import Requirement

        requirement = Requirement(text)
        if requirement.marker is not None and not requirement.marker.evaluate():
            continue
        found = _metadata.version(requirement.name)
        if found is None:
            return f"requirement unmet: {text!r} ({requirement.name} is not installed)"
        if not requirement.specifier.contains(found, prereleases=True):
            return f"requirement unmet: {text!r} ({requirement.name} {found} is installed)"
    return None


def status_rows() -> "List[Tuple[str, str, str, Optional[str], int, float]]":
    """``(name, targets joined by ",", state, reason, calls, seconds)`` of each Instrumentor
    instance, in creation order."""
    with state.instrumentors_lock:
        instrumentors = list(state.instrumentors)
    return [
        (
            instrumentor.name,
            ",".join(instrumentor.targets),
            instrumentor.state,
            instrumentor.reason,
            instrumentor._calls,
            instrumentor._seconds,
        )
        for instrumentor in instrumentors
    ]
