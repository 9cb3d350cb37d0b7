"""In-place patches (``wrap(..., in_place=True)``): a function's code swapped for a trampoline.

An ordinary patch replaces an attribute, so a reference taken earlier keeps the original. Here the
function object itself changes: its ``__code__`` becomes a *trampoline*, a code object with the
same parameters, the same nature (plain, generator, coroutine, async generator) and the same
number of free variables, generated from Python source and compiled once per function and mode:
no bytecode is assembled by hand, so it works alike on every CPython. The trampoline calls
``wrapper(twin, instance, args, kwargs)``; the *twin* is a new function running the code beneath
(the original, or the trampoline of the layer below) with the function's globals, closure,
defaults and names. The objects a trampoline needs are constants of its code (``co_consts``):
nothing is looked up on the call path and nothing is added to the module's globals.

Each function patched in place has one ``_Chain``: its original code and its layers, innermost
first. Applying or removing a layer never changes a trampoline or a twin that a running call may
be using: the chain is rebuilt from the original code up and ``__code__`` is set once, so a call
finishes with the code it started with. After the last removal ``__code__`` is the original code
object again.

The trampoline binds the arguments with the function's current defaults and passes every
parameter on, so reassigned ``__defaults__`` / ``__kwdefaults__`` apply to every call. The twin
shares the ``__kwdefaults__`` dict and gets ``__defaults__`` as they are when the chain is built:
they only matter to a wrapper that calls ``wrapped`` with fewer arguments than it was given
(checking them on every call would cost more than all the rest of the trampoline).

Callers hold the patches lock.
"""

import builtins
import sys
from types import FunctionType, MethodType

from ._log import logger
from ._state import state

TYPE_CHECKING = False
if TYPE_CHECKING:
    import ast
    from types import CodeType
    from typing import Any, Dict, List, Optional, Tuple

    from ._patches import Patch, Wrapper

# co_flags bits (CPython's, the same in every version; spelled here to keep ``inspect`` out).
_VARARGS = 0x04
_VARKEYWORDS = 0x08
_GENERATOR = 0x20
_COROUTINE = 0x80
_ITERABLE_COROUTINE = 0x100
_ASYNC_GENERATOR = 0x200
_NATURE = _GENERATOR | _COROUTINE | _ITERABLE_COROUTINE | _ASYNC_GENERATOR
_ONLY_AST = 0x400  # compile() flag: return the syntax tree

# The trampoline loads each object it needs from a placeholder string constant, which the object
# then replaces in ``co_consts``. A placeholder starts with a NUL, which no parameter name (the
# only other string constants of the generated source) can contain.
_NEEDS = (
    "wrapper",
    "twin",
    "bind",
    "StopAsyncIteration",
    "GeneratorExit",
    "BaseException",
)


class Layer:
    """One application of an in-place patch to one function (an entry of ``Patch._applied``)."""

    __slots__ = ("owner", "chain", "wrapper", "method")

    def __init__(self, owner: "Patch", chain: "_Chain", wrapper: "Wrapper", method: bool) -> None:
        self.owner = owner
        self.chain = chain
        self.wrapper = wrapper
        self.method = method

    def undo(self) -> None:
        """Take this layer out of its function; the other layers keep working. Idempotent."""
        chain = self.chain
        if self in chain.layers:
            chain.layers.remove(self)
            chain.install()


class _Chain:
    """A function patched in place: its original code and its layers, innermost first."""

    __slots__ = ("function", "code", "layers", "top", "templates")

    def __init__(self, function: FunctionType) -> None:
        self.function = function
        self.code = function.__code__
        self.layers: List[Layer] = []
        self.top = self.code
        self.templates: Dict[bool, CodeType] = {}  # method mode -> trampoline template

    def install(self) -> None:
        """Build the trampolines of the current layers and set ``__code__`` once."""
        function = self.function
        if function.__code__ is not self.top:
            # Someone else replaced the code (a hot reloader, another tool): theirs becomes the
            # code beneath the layers, and the code restored when the last layer goes.
            logger().warning(
                "the code of %s.%s was replaced by other code; lazypatch puts its in-place "
                "layers over the new code",
                function.__module__,
                function.__qualname__,
            )
            self.code = function.__code__
            self.templates = {}
        code = self.code
        for layer in self.layers:
            code = self._trampoline(code, layer)
        function.__code__ = code
        self.top = code
        if not self.layers:
            del state.chains[id(function)]

    def _trampoline(self, beneath: "CodeType", layer: Layer) -> "CodeType":
        function = self.function
        template = self.templates.get(layer.method)
        if template is None:
            template = self.templates[layer.method] = _template(self.code, layer.method)
        twin = _twin(function, beneath)
        objects: Dict[str, object] = {
            "wrapper": layer.wrapper,
            "twin": twin,
            "bind": twin.__get__,
        }
        consts = tuple(
            (objects[const[1:]] if const[1:] in objects else getattr(builtins, const[1:]))
            if const.__class__ is str and const[:1] == "\0"
            else const
            for const in template.co_consts
        )
        return template.replace(co_consts=consts)


def apply(
    owner: "Patch", function: FunctionType, wrapper: "Wrapper", method: bool
) -> "Optional[Layer]":
    """Put ``owner``'s layer on ``function``, outermost; None if ``owner`` has one there already."""
    chain = state.chains.get(id(function))
    if chain is None:
        chain = state.chains[id(function)] = _Chain(function)
    elif any(layer.owner is owner for layer in chain.layers):
        return None
    layer = Layer(owner, chain, wrapper, method)
    chain.layers.append(layer)
    try:
        chain.install()
    except BaseException:
        chain.layers.remove(layer)
        if not chain.layers:
            del state.chains[id(function)]
        raise
    return layer


def target_of(found: object, in_class: bool) -> "Tuple[FunctionType, bool]":
    """(function, method mode) for what a path holds, or TypeError saying what it is instead.

    In a class, a function is a method (its first argument is the instance) and so is a
    ``classmethod``'s function (the class); a ``staticmethod``'s is a plain function.
    """
    if in_class and isinstance(found, (classmethod, staticmethod)):
        inner = found.__func__
        if inner.__class__ is FunctionType:  # __class__: a proxy of one counts
            return inner, isinstance(found, classmethod)  # type: ignore[return-value,unused-ignore]
        raise TypeError(f"it is a {_kind(found)} of a {_kind(inner)}, not a pure-Python function")
    if found.__class__ is FunctionType:
        return found, in_class  # type: ignore[return-value,unused-ignore]
    hint = ""
    if isinstance(found, MethodType) and found.__func__.__class__ is FunctionType:
        hint = f" (patch {type(found.__self__).__qualname__}.{found.__name__} in place instead)"
    raise TypeError(f"it is a {_kind(found)}, not a pure-Python function{hint}")


def _kind(obj: object) -> str:
    kind = type(obj)
    if kind.__module__ == "builtins":
        return kind.__qualname__
    return f"{kind.__module__}.{kind.__qualname__}"


def _twin(function: FunctionType, code: "CodeType") -> FunctionType:
    """A new function running ``code`` with ``function``'s globals, closure, defaults and names."""
    twin = FunctionType(
        code, function.__globals__, function.__name__, function.__defaults__, function.__closure__
    )
    twin.__kwdefaults__ = function.__kwdefaults__
    twin.__qualname__ = function.__qualname__
    twin.__module__ = function.__module__
    twin.__doc__ = function.__doc__
    twin.__annotations__ = function.__annotations__
    twin.__dict__ = function.__dict__
    if sys.version_info >= (3, 12):
        twin.__type_params__ = function.__type_params__
    return twin


# -- the trampoline ----------------------------------------------------------------------------


def _template(code: "CodeType", method: bool) -> "CodeType":
    """The trampoline of ``code``, with placeholder constants, compiled from generated source.

    Every instruction gets the line of the original ``def`` and a span over the whole line, and
    the code takes the original's file, first line and names: a traceback shows the ``def`` line
    and ``inspect.getsource`` the function's source.
    """
    source, free = _source(code, method)
    tree: ast.Module = compile(source, code.co_filename, "exec", _ONLY_AST, dont_inherit=True)
    _flatten(tree)
    module = compile(tree, code.co_filename, "exec", dont_inherit=True)
    outer: CodeType
    inner: CodeType
    (outer,) = [const for const in module.co_consts if const.__class__ is code.__class__]
    (inner,) = [const for const in outer.co_consts if const.__class__ is code.__class__]
    if len(inner.co_freevars) != len(free) or (inner.co_flags ^ code.co_flags) & (
        _NATURE & ~_ITERABLE_COROUTINE
    ):
        raise TypeError("its trampoline could not be built")  # a bug: caught as a failed patch
    template = inner.replace(
        co_flags=(inner.co_flags & ~_NATURE) | (code.co_flags & _NATURE),
        co_freevars=code.co_freevars,
        co_filename=code.co_filename,
        co_firstlineno=code.co_firstlineno,
        co_name=code.co_name,
    )
    if sys.version_info >= (3, 11):
        template = template.replace(co_qualname=code.co_qualname)
    return template


def _flatten(tree: "ast.AST") -> None:
    """Put every node of ``tree`` on line 1, spanning the whole line."""
    todo: List[Any] = [tree]  # nodes, walked through their _fields
    while todo:
        node = todo.pop()
        if hasattr(node, "lineno"):
            node.lineno = node.end_lineno = 1
            node.col_offset = 0
            node.end_col_offset = 0xFFFF
        for field in node._fields:
            value = getattr(node, field, None)
            if type(value) is list:
                todo.extend(item for item in value if hasattr(item, "_fields"))
            elif hasattr(value, "_fields"):
                todo.append(value)


def _source(code: "CodeType", method: bool) -> "Tuple[str, List[str]]":
    """(source, free variable names): ``def outer(<free>): def trampoline(<parameters>): ...``."""
    names = code.co_varnames
    count, keyword_only = code.co_argcount, code.co_kwonlyargcount
    positional = list(names[:count])
    keywords = list(names[count : count + keyword_only])
    index = count + keyword_only
    star: Optional[str] = None
    dstar: Optional[str] = None
    if code.co_flags & _VARARGS:
        star = names[index]
        index += 1
    if code.co_flags & _VARKEYWORDS:
        dstar = names[index]

    taken = set(names) | set(code.co_freevars) | set(code.co_cellvars)

    def fresh(stem: str) -> str:
        name = "_lp_" + stem
        while name in taken:
            name += "_"
        taken.add(name)
        return name

    free = [fresh(f"free{i}") for i in range(len(code.co_freevars))]
    n = {need: fresh(need) for need in _NEEDS}

    parameters = positional[: code.co_posonlyargcount]
    if code.co_posonlyargcount:
        parameters.append("/")
    parameters += positional[code.co_posonlyargcount :]
    if star:
        parameters.append("*" + star)
    elif keywords:
        parameters.append("*")
    parameters += keywords
    if dstar:
        parameters.append("**" + dstar)

    kwargs = dstar or "{}"
    if keywords:
        items = [f"{name!r}: {name}" for name in keywords] + ([f"**{dstar}"] if dstar else [])
        kwargs = "{" + ", ".join(items) + "}"

    def packed(items: "List[str]", rest: "Optional[str]") -> str:
        if items:
            return f"({', '.join(items)},{f' *{rest}' if rest else ''})"
        return rest or "()"

    wrapper, bind, twin = n["wrapper"], n["bind"], n["twin"]
    if method and positional:
        this = positional[0]
        call = f"{wrapper}({bind}({this}), {this}, {packed(positional[1:], star)}, {kwargs})"
    elif method and star:
        # def method(*args): the instance, if any, is the first argument
        call = (
            f"({wrapper}({bind}({star}[0]), {star}[0], {star}[1:], {kwargs}) if {star} "
            f"else {wrapper}({twin}, None, (), {kwargs}))"
        )
    else:
        call = f"{wrapper}({twin}, None, {packed(positional, star)}, {kwargs})"

    body = []
    if free:  # never runs: makes the closure's cells free variables of the trampoline
        body += ["if 0:", f"    {', '.join(free)}"]
    flags = code.co_flags
    if flags & _ASYNC_GENERATOR:
        stop, exit_, base = n["StopAsyncIteration"], n["GeneratorExit"], n["BaseException"]
        it, value, sent, error = fresh("it"), fresh("value"), fresh("sent"), fresh("error")
        body += [
            f"{it} = {call}",
            "try:",
            f"    {value} = await {it}.asend(None)",
            f"except {stop}:",
            "    return",
            "while True:",
            "    try:",
            f"        {sent} = yield {value}",
            f"    except {exit_}:",
            f"        await {it}.aclose()",
            "        raise",
            f"    except {base} as {error}:",
            "        try:",
            f"            {value} = await {it}.athrow({error})",
            f"        except {stop}:",
            "            return",
            "    else:",
            "        try:",
            f"            {value} = await {it}.asend({sent})",
            f"        except {stop}:",
            "            return",
        ]
    elif flags & _COROUTINE:
        body.append(f"return await {call}")
    elif flags & _GENERATOR:
        body.append(f"return (yield from {call})")
    else:
        body.append(f"return {call}")
    text = "\n".join(body)
    body[:0] = [f"{n[need]} = {chr(0) + need!r}" for need in _NEEDS if n[need] in text]
    prefix = "async " if flags & (_COROUTINE | _ASYNC_GENERATOR) else ""
    lines = [
        f"def {fresh('outer')}({', '.join(free)}):",
        f"    {prefix}def {fresh('trampoline')}({', '.join(parameters)}):",
        *("        " + line for line in body),
    ]
    return "\n".join(lines) + "\n", free
