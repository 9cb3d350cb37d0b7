"""``wrap`` / ``replace`` / ``Patch``: patches of attributes by dotted path, applied by hooks.

A patch is an internal hook on its module: each time the module executes (first import, reload,
re-import), the hook resolves the path and puts a *layer* in the attribute, unless one of this
patch's layers is already in its wrapper chain. Each application is remembered as a ``_Layer``,
which ``remove()`` undoes: it restores the attribute if the layer is outermost, re-points the
lazypatch layer (or wrapt proxy) stacked just above it, or else turns itself into a pass-through.

On the call path a layer is a plain closure (bound like the function it replaces) that calls
``wrapper(wrapped, instance, args, kwargs)`` as wrapt would; its cells are re-pointed in place.
Only what is neither a function, a method, a classmethod nor a staticmethod falls back to
``wrapt.FunctionWrapper``, and only then is wrapt imported.

Path resolution and the layer chain are our own few lines, not wrapt's ``resolve_path``: importing
wrapt pulls in asyncio, inspect, importlib.metadata and about 150 modules (some 45 ms), which every
program that imports ``logging`` under ``lazypatch.auto`` would pay for one lookup. The measured
goal wins over reuse; ``tests/test_patches_wrapt.py`` holds the two to the same results.
"""

import sys
from time import perf_counter

from . import _boundary, _hooks
from ._log import logger
from ._state import state

TYPE_CHECKING = False
if TYPE_CHECKING:
    from types import CellType, FunctionType, ModuleType
    from typing import Any, Callable, Dict, List, Optional, Tuple, Union

    if sys.version_info >= (3, 10):
        from typing import TypeGuard

        from wrapt import BaseObjectProxy
    else:  # wrapt's stubs declare nothing below 3.10
        from typing import Generic, TypeVar

        from typing_extensions import TypeGuard

        T = TypeVar("T")

        class BaseObjectProxy(Generic[T]):
            __wrapped__: Any

    from ._inplace import Layer as InPlaceLayer

    Wrapper = Callable[[Any, Any, Tuple[Any, ...], Dict[str, Any]], Any]
    # A layer's call path: a closure over the cells its _Layer re-points.
    LayerFunction = Callable[..., Any]

_MAX_CHAIN = 64
_NO_ARGUMENT = object()


class Patch:
    """Handle on one ``wrap`` or ``replace``: where, in what state, and the object it patched.

    ``state``: ``"pending"``, ``"applied"``, ``"failed"`` (its last application raised) or
    ``"removed"``. ``error``: the exception its last application raised; None if that one
    succeeded or none has run.
    """

    __slots__ = (
        "module",
        "path",
        "state",
        "original",
        "error",
        "in_place",
        "calls",
        "_seconds",
        "_make",
        "_hook",
        "_applied",
        "_key",
    )

    def __init__(
        self, module: str, path: str, make: "Callable[..., Any]", in_place: bool = False
    ) -> None:
        self.module = module
        self.path = path
        self.state = "pending"
        self.original: object = None
        self.error: Optional[BaseException] = None
        self.in_place = in_place
        self.calls = 0
        self._seconds = 0.0
        self._make = make  # makes a layer; for an in-place patch, the wrapper
        self._hook: Optional[_hooks.Hook] = None
        self._applied: List[Union[_Layer, InPlaceLayer]] = []
        self._key: Optional[Tuple[object, str, object]] = None  # (owner, kind, wrapper or value)

    def __repr__(self) -> str:
        return f"<Patch {self.module}:{self.path}: {self.state}>"

    def remove(self) -> None:
        """Undo this patch wherever applied; it never applies again. Idempotent, never raises."""
        with state.patches_lock:
            if self.state == "removed":
                return
            self.state = "removed"
            state.patches.pop(self, None)
            hook, self._hook = self._hook, None
            applied, self._applied = self._applied, []
        if hook is not None:
            hook.remove()
        with state.patches_lock:
            for layer in reversed(applied):
                if isinstance(layer, _Layer):
                    _undo(layer)
                else:
                    layer.undo()

    def _apply(self, module: object) -> None:
        start = perf_counter()
        with state.patches_lock:
            if self.state == "removed":
                return
            try:
                if _boundary.run(self._apply_to, module, self._failed) is not _boundary.FAILED:
                    self.state = "applied"
                    self.error = None
                    self.calls += 1
            finally:
                self._seconds += perf_counter() - start

    def _failed(self, exc: BaseException) -> str:
        self.state = "failed"
        self.error = exc
        return f"{exc}; the import goes on"

    def _apply_to(self, module: object) -> None:
        try:
            parent, attribute, current = resolve_path(module, self.path)
        except AttributeError as exc:
            raise AttributeError(
                f"cannot patch {self.module}:{self.path}: no such attribute"
            ) from exc
        except Exception as exc:  # a hostile __getattr__ / __getattribute__ on the way
            raise RuntimeError(
                f"cannot patch {self.module}:{self.path}: looking it up raised "
                f"{type(exc).__name__}: {exc}"
            ) from exc
        if self.in_place:
            self.original = self._apply_in_place(parent, _beneath(current, parent, attribute))
            return
        for applied in self._applied:
            if (
                isinstance(applied, _Layer)
                and applied.parent is parent
                and applied.attribute == attribute
            ):
                if _above(applied, _slot(parent, attribute)) is not _NOT_FOUND:
                    self.original = applied.target
                    return
        layer: _Layer = self._make(parent, attribute, current)
        try:
            setattr(parent, attribute, layer.descriptor)
        except (AttributeError, TypeError) as exc:
            _forget(layer)
            raise TypeError(f"cannot patch {self.module}:{self.path}: {exc}") from exc
        self._applied.append(layer)
        self.original = current

    def _apply_in_place(self, parent: object, found: object) -> "FunctionType":
        from . import _inplace

        where = f"cannot patch {self.module}:{self.path} in place"
        try:
            function, method = _inplace.target_of(found, isinstance(parent, type))
        except TypeError as exc:
            raise TypeError(f"{where}: {exc}") from None
        try:
            layer = _inplace.apply(self, function, self._make, method)
        except Exception as exc:
            raise TypeError(f"{where}: {type(exc).__name__}: {exc}") from exc
        if layer is not None:
            self._applied.append(layer)
        return function


def wrap(
    module: "Union[str, ModuleType]", path: str, wrapper: "Wrapper", *, in_place: bool = False
) -> Patch:
    """Wrap ``module``'s attribute at ``path`` with ``wrapper(wrapped, instance, args, kwargs)``.

    Applied now if the module is imported, else the moment it loads, and again at each reload
    (one layer, never two). Nothing is imported until then. With ``in_place``, the function
    itself is changed, so that references taken before the patch call the wrapper too.
    The same call again while that patch is live (a hook calling ``wrap`` each time its module
    executes) returns that patch rather than stacking a second layer.
    """
    return wrap_for(None, module, path, wrapper, in_place)


def wrap_for(
    owner: object,
    module: "Union[str, ModuleType]",
    path: str,
    wrapper: "Wrapper",
    in_place: bool = False,
) -> Patch:
    """:func:`wrap` on behalf of ``owner`` (an instrumentor; None: the caller): only a live patch
    of the same owner is reused."""
    if not callable(wrapper):
        raise TypeError(f"wrapper must be callable, got {wrapper!r}")
    if in_place:
        return _create(module, path, wrapper, (owner, "in place", wrapper), in_place=True)
    return _create(
        module,
        path,
        lambda parent, attribute, current: _wrap_layer(parent, attribute, current, wrapper),
        (owner, "wrap", wrapper),
    )


def replace(module: "Union[str, ModuleType]", path: str, value: object) -> Patch:
    """Set the attribute at ``path`` in ``module`` to ``value``, now or when the module loads.

    The same call again while that patch is live returns that patch, as :func:`wrap` does.
    """
    return replace_for(None, module, path, value)


def replace_for(owner: object, module: "Union[str, ModuleType]", path: str, value: object) -> Patch:
    """:func:`replace` on behalf of ``owner``, as :func:`wrap_for`."""
    return _create(
        module,
        path,
        lambda parent, attribute, current: _Layer(parent, attribute, current, value),
        (owner, "replace", value),
    )


def status_rows() -> "List[Tuple[str, str, str, Optional[str], int, float]]":
    """``(path, module, state, reason, calls, seconds)`` of each live patch, in creation order."""
    with state.patches_lock:
        patches = list(state.patches)
    return [
        (
            patch.path,
            patch.module,
            patch.state,
            _boundary.reason(patch.error) if patch.state == "failed" else None,
            patch.calls,
            patch._seconds,
        )
        for patch in patches
    ]


def _create(
    module: "Union[str, ModuleType]",
    path: str,
    make: "Callable[..., Any]",
    key: "Optional[Tuple[object, str, object]]",
    in_place: bool = False,
) -> Patch:
    if path.__class__ is not str or "" in path.split("."):
        raise ValueError(f"path must be a dotted attribute path, got {path!r}")
    name: object
    if type(module) is str:
        name, target = module, None
    else:
        name = getattr(module, "__name__", None)
        if type(name) is not str:
            raise TypeError(f"module must be a module name or a module, got {module!r}")
        target = None if sys.modules.get(name) is module else module
        if target is not None:
            key = None  # a module object outside sys.modules: each call patches it anew
    with state.patches_lock:
        found = None if key is None else _live(name, path, key)
        if found is not None:
            return found
        patch = Patch(name, path, make, in_place)
        patch._key = key
        state.patches[patch] = None
    if target is None:
        patch._hook = _hooks.add_internal(name, patch._apply)
    else:
        patch._apply(target)
    return patch


def _live(name: str, path: str, key: "Tuple[object, str, object]") -> "Optional[Patch]":
    """The live patch of ``name``'s ``path`` made by the same call as ``key`` says (owner, kind,
    wrapper or value), or None. Compared by identity: a replacement value's ``__eq__`` is foreign
    code."""
    owner, kind, what = key
    for patch in state.patches:
        same = patch._key
        if (
            same is not None
            and same[0] is owner
            and same[1] == kind
            and same[2] is what
            and patch.module == name
            and patch.path == path
        ):
            return patch
    return None


def resolve_path(target: object, path: str) -> "Tuple[object, str, object]":
    """``(parent, attribute, value)`` for the dotted ``path`` from ``target``, as wrapt resolves it.

    On a class the attribute is read from the ``__dict__`` of the first class of its MRO that
    defines it, so that a method comes back unbound (a function, a ``classmethod``...); anywhere
    else, and for what no class of the MRO defines, with ``getattr``. Raises AttributeError.
    """
    names = path.split(".")
    parent = target
    value = _lookup(target, names[0])
    for attribute in names[1:]:
        parent = value
        value = _lookup(parent, attribute)
    return parent, names[-1], value


def _lookup(parent: object, attribute: str) -> object:
    if isinstance(parent, type):
        for klass in parent.__mro__:
            namespace = klass.__dict__
            if attribute in namespace:
                return namespace[attribute]
    return getattr(parent, attribute)


# -- layers -------------------------------------------------------------------------


class _Layer:
    """One application: ``descriptor`` put in ``parent.attribute`` instead of ``target``."""

    __slots__ = ("parent", "attribute", "owned", "target", "descriptor", "function", "cells")
    cells: "Dict[str, CellType]"  # a closure's, by free variable name (not for a replacement)

    def __init__(self, parent: object, attribute: str, target: object, descriptor: object) -> None:
        self.parent = parent
        self.attribute = attribute
        self.owned = _owns(parent, attribute)
        self.target = target
        self.descriptor = descriptor
        self.function: Optional[LayerFunction] = None

    def point(self, target: object) -> bool:
        """Make this layer call ``target`` instead (a replacement: restore it when removed)."""
        self.target = target
        return True

    def bypass(self) -> None:
        """Keep this layer in place but make it call straight through."""


class _Closure(_Layer):
    """A layer whose call path is a closure with re-pointable cells."""

    __slots__ = ()
    function: "LayerFunction"

    def __init__(
        self,
        parent: object,
        attribute: str,
        target: object,
        function: "LayerFunction",
        kind: "Optional[Callable[[LayerFunction], object]]" = None,
    ) -> None:
        self.function = function
        self.cells = _cells(function)
        self.point(target)
        self.parent = parent
        self.attribute = attribute
        self.owned = _owns(parent, attribute)
        self.descriptor = function if kind is None else kind(function)
        state.layers[id(function)] = state.layers[id(self.descriptor)] = self

    def point(self, target: object) -> bool:
        import functools

        self.target = target
        func = _callable_of(target)
        if "target" in self.cells:
            self.cells["target"].cell_contents = func
        if "bind" in self.cells:
            self.cells["bind"].cell_contents = _binder(func)
        if "instance" in self.cells:
            self.cells["instance"].cell_contents = _self_of(func)
        functools.update_wrapper(self.function, func)  # type: ignore[arg-type]  # any object
        return True

    def bypass(self) -> None:
        self.cells["wrapper"].cell_contents = _passthrough


class _Proxy(_Layer):
    """Fallback for what is neither a function nor a method (a class, a callable object)."""

    __slots__ = ()
    descriptor: "BaseObjectProxy[Any]"

    def __init__(self, parent: object, attribute: str, target: object, wrapper: "Wrapper") -> None:
        import wrapt

        function = _dispatch(wrapper)
        # Any object; wrapt's stubs declare nothing below Python 3.10.
        proxy = wrapt.FunctionWrapper(target, function)  # type: ignore[arg-type,attr-defined,unused-ignore]
        super().__init__(parent, attribute, target, proxy)
        self.function = function
        self.cells = _cells(function)
        state.layers[id(function)] = state.layers[id(self.descriptor)] = self

    def point(self, target: object) -> bool:
        self.target = target
        self.descriptor.__wrapped__ = target
        return True

    def bypass(self) -> None:
        self.cells["wrapper"].cell_contents = _passthrough


def _wrap_layer(parent: object, attribute: str, current: object, wrapper: "Wrapper") -> _Layer:
    # A coroutine function gets a coroutine function: callers that ask (``inspect``, ASGI servers
    # telling ASGI 3 from 2, FastAPI choosing between await and a thread) see what they saw.
    layers = _ASYNC_LAYERS if _is_coroutine_function(_callable_of(current)) else _LAYERS
    if isinstance(parent, type):
        if isinstance(current, classmethod):
            return _Closure(parent, attribute, current, layers[0](wrapper), classmethod)
        if isinstance(current, staticmethod):
            return _Closure(parent, attribute, current, layers[1](wrapper), staticmethod)
        if _is_method(current):
            return _Closure(parent, attribute, current, layers[2](wrapper))
    elif callable(current) and not isinstance(current, type):
        return _Closure(parent, attribute, current, layers[1](wrapper))
    return _Proxy(parent, attribute, current, wrapper)


_CO_COROUTINE = 0x80  # inspect.CO_COROUTINE, without importing inspect


def _cells(function: "LayerFunction") -> "Dict[str, CellType]":
    """The closure cells of a layer's function, by free variable name."""
    return dict(zip(function.__code__.co_freevars, function.__closure__ or ()))


def _is_coroutine_function(func: object) -> bool:
    code = getattr(func, "__code__", None)
    flags = getattr(code, "co_flags", 0)
    return flags.__class__ is int and bool(flags & _CO_COROUTINE)


# The call paths. Each closure's cells are set by _Closure.point (target, bind, instance) and
# bypass (wrapper); the arguments here only create the cells. The closures are typed in comments:
# update_wrapper gives a layer the annotations of what it wraps, and where that has none (a
# builtin), annotations of the layer's own would show instead of none.


def _function_layer(
    wrapper: "Wrapper", target: "Any" = None, instance: "Any" = None
) -> "LayerFunction":
    def layer(*args, **kwargs):
        # type: (*Any, **Any) -> Any
        return wrapper(target, instance, args, kwargs)

    return layer


def _method_layer(wrapper: "Wrapper", target: "Any" = None, bind: "Any" = None) -> "LayerFunction":
    def layer(instance=_NO_ARGUMENT, /, *args, **kwargs):
        # type: (object, *Any, **Any) -> Any
        if instance is _NO_ARGUMENT:
            return wrapper(target, None, args, kwargs)
        return wrapper(bind(instance), instance, args, kwargs)

    return layer


def _classmethod_layer(wrapper: "Wrapper", bind: "Any" = None) -> "LayerFunction":
    def layer(cls, /, *args, **kwargs):
        # type: (type, *Any, **Any) -> Any
        return wrapper(bind(cls), cls, args, kwargs)

    return layer


def _async_function_layer(
    wrapper: "Wrapper", target: "Any" = None, instance: "Any" = None
) -> "LayerFunction":
    async def layer(*args, **kwargs):
        # type: (*Any, **Any) -> Any
        return await wrapper(target, instance, args, kwargs)

    return layer


def _async_method_layer(
    wrapper: "Wrapper", target: "Any" = None, bind: "Any" = None
) -> "LayerFunction":
    async def layer(instance=_NO_ARGUMENT, /, *args, **kwargs):
        # type: (object, *Any, **Any) -> Any
        if instance is _NO_ARGUMENT:
            return await wrapper(target, None, args, kwargs)
        return await wrapper(bind(instance), instance, args, kwargs)

    return layer


def _async_classmethod_layer(wrapper: "Wrapper", bind: "Any" = None) -> "LayerFunction":
    async def layer(cls, /, *args, **kwargs):
        # type: (type, *Any, **Any) -> Any
        return await wrapper(bind(cls), cls, args, kwargs)

    return layer


# (classmethod, function or staticmethod, method) layer factories.
_LAYERS = (_classmethod_layer, _function_layer, _method_layer)
_ASYNC_LAYERS = (_async_classmethod_layer, _async_function_layer, _async_method_layer)


def _dispatch(wrapper: "Wrapper") -> "Wrapper":
    def layer(
        wrapped: "Any", instance: "Any", args: "Tuple[Any, ...]", kwargs: "Dict[str, Any]"
    ) -> "Any":
        return wrapper(wrapped, instance, args, kwargs)

    return layer


def _passthrough(
    wrapped: "Callable[..., Any]",
    instance: object,
    args: "Tuple[Any, ...]",
    kwargs: "Dict[str, Any]",
) -> "Any":
    return wrapped(*args, **kwargs)


def _callable_of(target: object) -> object:
    if isinstance(target, (classmethod, staticmethod)):
        return target.__func__
    return target


def _self_of(func: object) -> object:
    """The instance wrapt reports for a bound Python method stored as a plain attribute."""
    from types import MethodType

    return func.__self__ if isinstance(func, MethodType) else None


def _binder(func: object) -> "Callable[[object], Any]":
    """``func`` bound to an instance (or a class), as a one-argument callable made once."""
    from types import FunctionType, MethodDescriptorType, WrapperDescriptorType

    if isinstance(func, (FunctionType, MethodDescriptorType, WrapperDescriptorType)):
        return func.__get__
    return lambda instance: func.__get__(instance, type(instance))  # type: ignore[attr-defined]


def _is_method(obj: object) -> bool:
    """A callable that binds like a function when looked up on an instance."""
    kind = type(obj)
    return (
        callable(obj)
        and not isinstance(obj, type)
        and hasattr(kind, "__get__")
        and not hasattr(kind, "__set__")
    )


# -- undoing ------------------------------------------------------------------------

_NOT_FOUND = object()


def _slot(parent: object, attribute: str) -> object:
    """What lookups of ``parent.attribute`` start from (unbound, for a class)."""
    if isinstance(parent, type):
        for klass in parent.__mro__:
            if attribute in klass.__dict__:
                return klass.__dict__[attribute]
    return getattr(parent, attribute, _NOT_FOUND)


def _owns(parent: object, attribute: str) -> bool:
    try:
        return attribute in vars(parent)
    except TypeError:
        return True


def _next(entry: object, parent: object, attribute: str) -> object:
    from types import MethodType

    layer = state.layers.get(id(entry))
    if layer is not None and (entry is layer.descriptor or entry is layer.function):
        return layer.target
    replacement = _replacement(entry, parent, attribute)
    if replacement is not None:
        return replacement.target
    if isinstance(entry, (classmethod, staticmethod, MethodType)):
        return entry.__func__
    try:
        return entry.__wrapped__  # type: ignore[attr-defined]
    except Exception:
        return _NOT_FOUND


def _above(layer: _Layer, top: object) -> object:
    """What is just above ``layer`` in the chain from ``top``: None if it is top, or _NOT_FOUND."""
    above = None
    entry = top
    for _ in range(_MAX_CHAIN):
        if entry is _NOT_FOUND:
            break
        if entry is layer.descriptor or (layer.function is not None and entry is layer.function):
            return above
        above = entry
        entry = _next(entry, layer.parent, layer.attribute)
    return _NOT_FOUND


def _replacement(value: object, parent: object, attribute: str) -> "Optional[_Layer]":
    """The live ``replace`` layer that put ``value`` in ``parent.attribute``, if any.

    Replacements are not in ``state.layers``: their values (None, a small int, a shared object)
    are not unique to one attribute. Only removals and applications look, so a scan will do;
    newest first, since a reload leaves the layers of earlier executions on the same module.
    """
    for patch in reversed(state.patches):
        for applied in reversed(patch._applied):
            if (
                type(applied) is _Layer
                and applied.descriptor is value
                and applied.parent is parent
                and applied.attribute == attribute
            ):
                return applied
    return None


def _beneath(entry: object, parent: object, attribute: str) -> object:
    """What ``entry`` holds beneath lazypatch's own wrap and replace layers of
    ``parent.attribute``: the module's original object."""
    for _ in range(_MAX_CHAIN):
        layer = state.layers.get(id(entry))
        if layer is None or (entry is not layer.descriptor and entry is not layer.function):
            layer = _replacement(entry, parent, attribute)
            if layer is None:
                break
        entry = layer.target
    return entry


def _undo(layer: _Layer) -> None:
    try:
        spliced = _splice(layer)
    except Exception:
        spliced = False
        logger().debug("could not splice out %r", layer, exc_info=True)
    layer.bypass()  # for references taken while it was in place
    if spliced:
        _forget(layer)


def _splice(layer: _Layer) -> bool:
    """Take ``layer`` out of the chain of its attribute; False if something foreign holds it."""
    parent, attribute = layer.parent, layer.attribute
    above = _above(layer, _slot(parent, attribute))
    if above is None:
        if layer.owned:
            setattr(parent, attribute, layer.target)
        else:
            delattr(parent, attribute)
        return True
    upper = state.layers.get(id(above)) or _replacement(above, parent, attribute)
    if upper is not None and upper.target is layer.descriptor and upper.point(layer.target):
        upper.owned = layer.owned
        return True
    if _is_proxy(above) and above.__wrapped__ is layer.descriptor:
        above.__wrapped__ = layer.target
        return True
    return False


def _is_proxy(obj: object) -> "TypeGuard[BaseObjectProxy[Any]]":
    wrapt = sys.modules.get("wrapt")
    return wrapt is not None and isinstance(obj, wrapt.BaseObjectProxy)


def _forget(layer: _Layer) -> None:
    for obj in (layer.descriptor, layer.function):
        if state.layers.get(id(obj)) is layer:
            del state.layers[id(obj)]
