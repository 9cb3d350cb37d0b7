"""lazypatch's own path resolution and layer chain, held to wrapt's ``resolve_path`` and
``wrapper_chain`` on the same objects (the two are re-implemented to keep wrapt off the apply path).
"""

import types

import pytest
import wrapt

import lazypatch
from lazypatch._patches import resolve_path

SOURCE = """
class Meta(type):
    meta_attribute = "from the metaclass"


class Base(metaclass=Meta):
    def method(self):
        return "method"

    @classmethod
    def klass(cls):
        return "klass"

    @staticmethod
    def static():
        return "static"

    @property
    def prop(self):
        return "prop"

    value = 1


class Child(Base):
    def own(self):
        return "own"


class Outer:
    class Inner:
        def method(self):
            return "inner"


def function():
    return "function"


instance = Child()
builtin_type = dict


def __getattr__(name):
    if name == "dynamic":
        return function
    raise AttributeError(name)
"""

PATHS = [
    "function",
    "Base.method",
    "Base.klass",
    "Base.static",
    "Base.prop",
    "Base.value",
    "Child.method",
    "Child.klass",
    "Child.own",
    "Child.meta_attribute",
    "Outer.Inner.method",
    "instance.method",
    "instance.klass",
    "instance.value",
    "builtin_type.get",
    "builtin_type.fromkeys",
    "dynamic",
]


def make_module(name="resolved"):
    module = types.ModuleType(name)
    exec(SOURCE, module.__dict__)
    return module


@pytest.mark.parametrize("path", PATHS)
def test_resolution_matches_wrapt(path):
    module = make_module()
    ours = resolve_path(module, path)
    theirs = wrapt.resolve_path(module, path)
    assert ours[0] is theirs[0]
    assert ours[1] == theirs[1]
    # Looked up twice, a bound method is a new object each time; anything else is the same one.
    if isinstance(theirs[2], types.MethodType):
        assert type(ours[2]) is types.MethodType
        assert ours[2].__func__ is theirs[2].__func__ and ours[2].__self__ is theirs[2].__self__
    else:
        assert ours[2] is theirs[2]


@pytest.mark.parametrize("path", ["missing", "Base.missing", "Outer.Missing.method", "Base.x.y"])
def test_missing_attributes_raise_attribute_error_like_wrapt(path):
    module = make_module()
    with pytest.raises(AttributeError):
        wrapt.resolve_path(module, path)
    with pytest.raises(AttributeError):
        resolve_path(module, path)


def tagger(tag):
    def wrapper(wrapped, instance, args, kwargs):
        return (tag, wrapped(*args, **kwargs))

    return wrapper


def chain(module, path):
    return list(wrapt.wrapper_chain(resolve_path(module, path)[2]))


@pytest.mark.parametrize("removal", [(0, 1), (1, 0)], ids=["first-then-last", "last-then-first"])
@pytest.mark.parametrize("path", ["function", "Base.method"])
def test_layers_mixed_with_wrapt_wrappers_keep_one_chain(path, removal):
    """Ours, wrapt's, ours stacked: wrapt sees one chain ending at the original, and removing
    ours in either order takes exactly their links out around wrapt's."""
    module = make_module()
    original = resolve_path(module, path)[2]
    call = (lambda: module.function()) if path == "function" else (lambda: module.Base().method())
    expected = call()
    first = lazypatch.wrap(module, path, tagger("a"))
    wrapt.wrap_function_wrapper(module, path, tagger("b"))
    last = lazypatch.wrap(module, path, tagger("c"))
    assert call() == ("c", ("b", ("a", expected)))
    assert len(chain(module, path)) == 4
    assert wrapt.unwrapped(resolve_path(module, path)[2]) is original

    for patch in removal:
        (first, last)[patch].remove()
    assert call() == ("b", expected)
    links = chain(module, path)
    assert len(links) == 2 and links[-1] is original
