"""Calls into C functions made from the application's own line.

A C function that warns (sqlite3's deprecations, for one) attributes the warning to the innermost
Python frame. Called from an instrumentation's wrapper, that frame is lazypatch's, so the warning
names lazypatch's file and module, and the default filters (which show ``DeprecationWarning``
only for ``__main__``) hide it. :func:`call` makes the C call from a one-line trampoline that
carries the application's file, line, function name and globals: the warning, its registry and
the filters see what they see without lazypatch. No warnings state is touched, so threads are safe.
"""

import os
import sys
from types import FunctionType

from .. import _cpython

TYPE_CHECKING = False
if TYPE_CHECKING:
    from types import CodeType, FrameType
    from typing import Any, Callable, Dict, Optional, Protocol, Tuple, TypeVar

    T = TypeVar("T")

    class _Trampoline(Protocol):
        """``f(*a, **k)``, compiled as if written on one application call site."""

        @property
        def __globals__(self) -> "Dict[str, Any]": ...

        def __call__(
            self, f: "Callable[..., T]", a: "Tuple[Any, ...]", k: "Dict[str, Any]"
        ) -> "T": ...


_PACKAGE = os.path.dirname(os.path.dirname(os.path.abspath(__file__))) + os.sep
# One line, so that every instruction is on the call site's line once moved there. A lambda, not
# compile(): the first compile() of a process builds the AST node types (about 3 ms).
_TEMPLATE: "CodeType" = (lambda f, a, k: f(*a, **k)).__code__
_MAX_SITES = 1024
# (id(code), offset of the call) of an application call site -> (code, its trampoline)
_sites: "Dict[Tuple[int, int], Tuple[CodeType, _Trampoline]]" = {}


def call(function: "Callable[..., T]", args: "Tuple[Any, ...]", kwargs: "Dict[str, Any]") -> "T":
    """``function(*args, **kwargs)``, as if called from the first frame outside lazypatch."""
    getframe = _cpython.getframe
    if getframe is None:
        return function(*args, **kwargs)
    frame: Optional[FrameType]
    frame = getframe(1)
    code = frame.f_code
    while code.co_filename.startswith(_PACKAGE):
        frame = frame.f_back
        if frame is None:
            return function(*args, **kwargs)
        code = frame.f_code
    # Keyed by the code's id and the offset of the call instruction, both cheap to read (a line
    # number is computed, and hashing a code object hashes its constants); the entry keeps the
    # code itself, so that a recycled id is recognised.
    key = (id(code), frame.f_lasti)
    entry = _sites.get(key)
    if entry is None or entry[0] is not code or entry[1].__globals__ is not frame.f_globals:
        line = frame.f_lineno
        if line is None:
            return function(*args, **kwargs)
        entry = (code, _site(frame, line))
        if len(_sites) >= _MAX_SITES:
            _sites.clear()
        _sites[key] = entry
    return entry[1](function, args, kwargs)


def _site(frame: "FrameType", line: int) -> "_Trampoline":
    code = frame.f_code
    names: Dict[str, Any] = {
        "co_filename": code.co_filename,
        "co_name": code.co_name,
        "co_firstlineno": line,
    }
    if sys.version_info >= (3, 11):
        names["co_qualname"] = code.co_qualname
    return FunctionType(_TEMPLATE.replace(**names), frame.f_globals)
