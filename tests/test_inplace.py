"""``wrap(..., in_place=True)``: one test per sentence of API.md section 2, "In place".

Each runs in a fresh interpreter with real imports; the wrappers tag results and record what they
were given, so that layers, arguments and ``instance`` can be checked exactly.
"""

import textwrap

import pytest
from preludes import TAGGING

TARGET = {
    "target.py": '''
        """A module to patch in place."""
        import types
        from math import sqrt

        BODY = []


        def function(a, b=2, *, c=3):
            """function doc"""
            BODY.append("function")
            return ("function", a, b, c)


        def kinds(p, /, q, r=1, *rest, k, m=2, **options):
            return (p, q, r, rest, k, m, options)


        def fact(n):
            return 1 if n <= 1 else n * fact(n - 1)


        def make_counter():
            count = 0

            def counter(step=1):
                nonlocal count
                count += step
                return count

            return counter


        counter = make_counter()
        square = lambda x: x * x  # noqa: E731


        class Base:
            def method(self, a, b=2):
                """method doc"""
                BODY.append("method")
                return ("method", type(self).__name__, a, b)

            @classmethod
            def klass(cls, a):
                return ("klass", cls.__name__, a)

            @staticmethod
            def static(a):
                return ("static", a)

            def star(*args):
                return args


        class Child(Base):
            def method(self, a, b=2):
                return ("child",) + super().method(a, b)


        class Mapping(dict):
            pass


        class Callable:
            def __call__(self):
                return "called"


        callable_object = Callable()
        bound = Base().method


        def gen(n):
            got = yield "first"
            while n:
                n -= 1
                got = yield ("got", got)
            return "done"


        async def coro(x):
            return ("coro", x)


        async def agen(n):
            for i in range(n):
                try:
                    got = yield i
                except ValueError as exc:
                    got = ("caught", str(exc))
                if got is not None:
                    yield got


        @types.coroutine
        def legacy():
            yield
            return "legacy"
    ''',
}

PRELUDE = (
    """
import asyncio, gc, importlib, inspect, sys, threading
import lazypatch
"""
    + TAGGING
    + """

def passthrough(tag):
    def wrapper(wrapped, instance, args, kwargs):
        seen.append((tag, instance, args, kwargs))
        return wrapped(*args, **kwargs)
    return wrapper

def tags(result):
    found = []
    while isinstance(result, tuple) and len(result) == 2 and isinstance(result[0], str) \\
            and result[0].startswith("w"):
        found.append(result[0])
        result = result[1]
    return found
"""
)


def run(pyrun, code, files=TARGET, **kwargs):
    return pyrun(PRELUDE + textwrap.dedent(code), files=files, **kwargs)


def test_references_taken_before_and_after_go_through_the_wrapper(pyrun):
    run(
        pyrun,
        """
        from target import function                      # a name imported first
        import target
        handler = target.Base().method                    # a bound method
        registry = {"on_event": target.function}          # a callback in a registry

        def decorator(func):
            def decorated(*args):
                return func(*args)
            return decorated

        decorated = decorator(target.function)            # a decorator that closed over it
        patch = lazypatch.wrap("target", "function", tagger("w"), in_place=True)
        lazypatch.wrap("target", "Base.method", tagger("w"), in_place=True)
        after = target.function                           # and one taken after
        for call in (function, registry["on_event"], decorated, after, target.function):
            assert call(1) == ("w", ("function", 1, 2, 3)), call
        assert handler(1) == ("w", ("method", "Base", 1, 2))
        assert patch.in_place is True and patch.state == "applied"
        assert lazypatch.wrap("target", "Base.static", tagger("w")).in_place is False
        """,
    )


def test_the_attribute_and_earlier_references_stay_the_same_objects(pyrun):
    run(
        pyrun,
        """
        import target
        before = {p: vars(target.Base)[p] for p in ("method", "klass", "static")}
        function, counter = target.function, target.counter
        for path in ("function", "counter", "Base.method", "Base.klass", "Base.static"):
            assert lazypatch.wrap("target", path, tagger("w"), in_place=True).state == "applied"
        assert target.function is function and target.counter is counter
        for name, obj in before.items():
            assert vars(target.Base)[name] is obj, name
        """,
    )


def test_anything_but_a_python_function_fails_cleanly(pyrun):
    out = run(
        pyrun,
        """
        import functools, logging
        import target
        target.partial = functools.partial(target.function, 1)
        expected = {
            "sqrt": "builtin_function_or_method",
            "Mapping.keys": "method_descriptor",
            "Base": "type",
            "callable_object": "target.Callable",
            "partial": "functools.partial",
            "bound": "method",
        }
        for path, kind in expected.items():
            patch = lazypatch.wrap("target", path, tagger("w"), in_place=True)
            assert patch.state == "failed", (path, patch.state)
            message = str(patch.error)
            assert isinstance(patch.error, TypeError), patch.error
            assert f"target:{path}" in message and f"it is a {kind}," in message, message
            assert patch.original is None
        assert "Base.method in place instead" in str(patch.error)
        assert target.sqrt(4.0) == 2.0 and target.callable_object() == "called"

        # Before the import: the patch fails when the module loads, and the import goes on.
        del sys.modules["target"]
        patch = lazypatch.wrap("target", "sqrt", tagger("w"), in_place=True)
        import target
        assert patch.state == "failed" and "builtin_function_or_method" in str(patch.error)
        """,
    )
    assert "cannot patch target:sqrt in place" in out.stderr


def test_instance_is_the_object_or_the_class_also_through_the_class(pyrun):
    run(
        pyrun,
        """
        import target
        for path in ("function", "Base.method", "Base.klass", "Base.static", "Base.star"):
            lazypatch.wrap("target", path, tagger("w"), in_place=True)
        obj, child = target.Base(), target.Child()
        cases = [
            (lambda: target.function(1, c=4), None, (1, 2), {"c": 4}),
            (lambda: obj.method(1), obj, (1, 2), {}),
            (lambda: target.Base.method(obj, 1, b=5), obj, (1, 5), {}),
            (lambda: child.method(1)[1:], child, (1, 2), {}),    # through super()
            (lambda: target.Base.klass(1), target.Base, (1,), {}),
            (lambda: obj.klass(1), target.Base, (1,), {}),
            (lambda: target.Child.klass(1), target.Child, (1,), {}),
            (lambda: target.Base.static(1), None, (1,), {}),
            (lambda: obj.static(1), None, (1,), {}),
            (lambda: obj.star(1, 2), obj, (1, 2), {}),
            (lambda: target.Base.star(), None, (), {}),
        ]
        for index, (call, instance, args, kwargs) in enumerate(cases):
            del seen[:]
            result = call()
            assert tags(result) == ["w"], (index, result)
            [(tag, got_instance, got_args, got_kwargs)] = seen
            assert got_instance is instance, (index, got_instance)
            assert (got_args, got_kwargs) == (args, kwargs), (index, got_args, got_kwargs)
        del target.BODY[:]
        assert obj.method(1) == ("w", ("method", "Base", 1, 2))
        assert target.BODY == ["method"]  # wrapped(*args, **kwargs) ran the body once
        """,
    )


def test_what_callers_inspect_is_unchanged(pyrun):
    run(
        pyrun,
        """
        import target
        paths = ("function", "kinds", "counter", "gen", "coro", "agen", "legacy",
                 "Base.method", "Base.klass", "Base.static")
        objects = {path: eval("target." + path) for path in paths}
        def facts(obj):
            return (
                inspect.signature(obj), obj.__name__, obj.__qualname__, obj.__doc__,
                obj.__module__, obj.__defaults__, obj.__kwdefaults__,
                inspect.iscoroutinefunction(obj), inspect.isgeneratorfunction(obj),
                inspect.isasyncgenfunction(obj), inspect.getsource(obj),
                inspect.getclosurevars(obj).nonlocals,
            )
        before = {path: facts(obj) for path, obj in objects.items()}
        for path in paths:
            lazypatch.wrap("target", path, tagger("w"), in_place=True)
        for path, obj in objects.items():
            assert facts(obj) == before[path], (path, facts(obj), before[path])
        assert inspect.iscoroutinefunction(target.coro)
        assert inspect.isasyncgenfunction(target.agen)
        assert inspect.isgeneratorfunction(target.gen)
        assert target.legacy.__code__.co_flags & inspect.CO_ITERABLE_COROUTINE
        """,
    )


def test_later_changes_to_defaults_apply(pyrun):
    run(
        pyrun,
        """
        import target
        from target import function
        lazypatch.wrap("target", "function", tagger("w"), in_place=True)
        function.__defaults__ = (20,)
        function.__kwdefaults__ = {"c": 30}
        assert function(1) == ("w", ("function", 1, 20, 30))
        function.__kwdefaults__["c"] = 31
        assert function(1) == ("w", ("function", 1, 20, 31))
        assert seen[-1][2:] == ((1, 20), {"c": 31})
        assert function.__defaults__ == (20,) and function.__kwdefaults__ == {"c": 31}
        """,
    )


def test_closures_and_every_parameter_kind(pyrun):
    run(
        pyrun,
        """
        import target
        from target import kinds, counter
        expected = (1, 2, 3, (4, 5), 6, 7, {"x": 8})
        assert kinds(1, 2, 3, 4, 5, k=6, m=7, x=8) == expected
        errors = []
        for call in (lambda: kinds(p=1, q=2, k=3), lambda: kinds(1, 2), lambda: kinds()):
            try:
                call()
            except TypeError as exc:
                errors.append(str(exc))
        lazypatch.wrap("target", "kinds", tagger("w"), in_place=True)
        lazypatch.wrap("target", "counter", tagger("w"), in_place=True)
        lazypatch.wrap("target", "square", tagger("w"), in_place=True)
        lazypatch.wrap("target", "Child.method", tagger("w"), in_place=True)  # super(): __class__
        assert target.square(3) == ("w", 9) and target.square.__name__ == "<lambda>"
        assert target.Child().method(1) == ("w", ("child", "method", "Child", 1, 2))
        assert kinds(1, 2, 3, 4, 5, k=6, m=7, x=8) == ("w", expected)
        assert seen[-1][2:] == ((1, 2, 3, 4, 5), {"k": 6, "m": 7, "x": 8})
        assert kinds(1, q=2, k=3) == ("w", (1, 2, 1, (), 3, 2, {}))
        for call, error in zip(
            (lambda: kinds(p=1, q=2, k=3), lambda: kinds(1, 2), lambda: kinds()), errors
        ):
            try:
                call()
            except TypeError as exc:
                assert str(exc) == error, (str(exc), error)  # raised before the wrapper runs
            else:
                raise AssertionError("no TypeError")
        assert counter() == ("w", 1) and counter(2) == ("w", 3)  # the cell is shared
        assert counter.__closure__[0].cell_contents == 3
        """,
    )


def test_recursive_calls_go_through_the_wrapper(pyrun):
    run(
        pyrun,
        """
        import target
        lazypatch.wrap("target", "fact", passthrough("w"), in_place=True)
        assert target.fact(4) == 24
        assert [args for _, _, args, _ in seen] == [(4,), (3,), (2,), (1,)]
        """,
    )


def test_generators_coroutines_and_async_generators_pass_everything_through(pyrun):
    run(
        pyrun,
        """
        import target
        for path in ("gen", "coro", "agen", "legacy"):
            lazypatch.wrap("target", path, passthrough("w"), in_place=True)

        g = target.gen(2)
        assert next(g) == "first" and g.send("a") == ("got", "a") and g.send("b") == ("got", "b")
        try:
            g.send("c")
        except StopIteration as stop:
            assert stop.value == "done"
        g = target.gen(5)
        next(g)
        try:
            g.throw(KeyError("x"))
        except KeyError:
            pass
        assert inspect.getgeneratorstate(g) == "GEN_CLOSED"

        assert asyncio.run(target.coro(3)) == ("coro", 3)

        async def legacy():
            return await target.legacy()
        assert asyncio.run(legacy()) == "legacy"

        async def drive():
            out = []
            ag = target.agen(3)
            out.append(await ag.asend(None))            # 0
            out.append(await ag.asend("sent"))          # echoed
            out.append(await ag.asend(None))            # 1
            out.append(await ag.athrow(ValueError("v")))  # caught inside, echoed
            out.append(await ag.asend(None))            # 2
            await ag.aclose()
            out.append([x async for x in target.agen(2)])
            return out
        assert asyncio.run(drive()) == [0, "sent", 1, ("caught", "v"), 2, [0, 1]]
        assert [tag for tag, *_ in seen] == ["w"] * 6, seen
        """,
    )


def test_an_async_generator_closed_early_closes_the_original(pyrun):
    run(
        pyrun,
        """
        import target
        closed = []

        async def resource():
            try:
                yield 1
                yield 2
            finally:
                closed.append(True)

        target.resource = resource
        lazypatch.wrap("target", "resource", passthrough("w"), in_place=True)

        async def drive():
            ag = target.resource()
            assert await ag.asend(None) == 1
            await ag.aclose()
        asyncio.run(drive())
        assert closed == [True]
        """,
    )


def test_beneath_ordinary_patches_and_original_is_the_function(pyrun):
    run(
        pyrun,
        """
        import target
        function = target.function
        first = lazypatch.wrap("target", "function", tagger("w-ordinary1"))
        inplace = lazypatch.wrap("target", "function", tagger("w-inplace"), in_place=True)
        second = lazypatch.wrap("target", "function", tagger("w-ordinary2"))
        assert inplace.original is function
        assert tags(target.function(1)) == ["w-ordinary2", "w-ordinary1", "w-inplace"]
        assert tags(function(1)) == ["w-inplace"]
        for patch in (first, second):
            patch.remove()
        assert target.function is function and tags(function(1)) == ["w-inplace"]
        """,
    )


@pytest.mark.parametrize("replace_first", [True, False])
def test_beneath_a_replace_too(pyrun, replace_first):
    run(
        pyrun,
        f"""
        import target
        from target import function
        code = function.__code__
        def stand_in(*args, **kwargs):
            return "stand-in"
        replaced = lazypatch.replace("target", "function", stand_in)
        inplace = lazypatch.wrap("target", "function", tagger("w"), in_place=True)
        assert inplace.state == "applied" and inplace.original is function, inplace.original
        assert stand_in.__code__.co_name == "stand_in" and target.function is stand_in
        assert target.function(1) == "stand-in" and tags(function(1)) == ["w"]
        importlib.reload(target)
        new = replaced.original
        assert new is not function and inplace.original is new, (new, inplace.original)
        assert target.function is stand_in and tags(new(1)) == ["w"] and tags(function(1)) == ["w"]
        first, second = (replaced, inplace) if {replace_first} else (inplace, replaced)
        first.remove()
        second.remove()
        assert target.function is new and function.__code__ is code and new(1)[0] == "function"
        """,
    )


@pytest.mark.parametrize(
    "order", [(0, 1, 2), (0, 2, 1), (1, 0, 2), (1, 2, 0), (2, 0, 1), (2, 1, 0)]
)
def test_stacked_and_mixed_patches_remove_in_any_order(pyrun, order):
    run(
        pyrun,
        f"""
        import target
        from target import function
        code = function.__code__
        patches = [
            lazypatch.wrap("target", "function", tagger("w0"), in_place=True),
            lazypatch.wrap("target", "function", tagger("w1")),
            lazypatch.wrap("target", "function", tagger("w2"), in_place=True),
        ]
        assert tags(target.function(1)) == ["w1", "w2", "w0"]
        assert tags(function(1)) == ["w2", "w0"]
        live = ["w1", "w2", "w0"]
        for index in {order!r}:
            patches[index].remove()
            patches[index].remove()  # idempotent
            live.remove(f"w{{index}}")
            assert tags(target.function(1)) == live, (index, live)
            assert tags(function(1)) == [tag for tag in live if tag != "w1"]
        assert function.__code__ is code and target.function is function
        assert function(1) == ("function", 1, 2, 3)
        """,
    )


def test_reload_applies_one_layer_and_old_functions_keep_theirs(pyrun):
    run(
        pyrun,
        """
        import target
        old_function, old_method = target.function, target.Base.method
        old_code = old_function.__code__
        patch = lazypatch.wrap("target", "function", tagger("w"), in_place=True)
        method = lazypatch.wrap("target", "Base.method", tagger("w"), in_place=True)
        importlib.reload(target)
        assert target.function is not old_function
        assert patch.original is target.function and patch.calls == 2
        assert tags(target.function(1)) == ["w"] and tags(old_function(1)) == ["w"]
        importlib.reload(target)
        assert tags(target.function(1)) == ["w"] and tags(target.Base().method(1)) == ["w"]
        del sys.modules["target"]
        import target
        assert tags(target.function(1)) == ["w"] and patch.calls == 4
        new_function = target.function
        new_code = new_function.__code__
        patch.remove()
        method.remove()
        assert old_function.__code__ is old_code and old_function(1) == ("function", 1, 2, 3)
        assert tags(old_method(target.Base(), 1)) == []
        assert target.function(1) == ("function", 1, 2, 3)
        assert target.function.__code__ is not new_code  # new_code was the trampoline
        assert target.function.__code__.co_name == "function"
        """,
    )


def test_a_function_shared_by_two_modules_gets_one_layer_per_patch(pyrun):
    files = dict(TARGET)
    files["alias.py"] = "from target import function\n"
    run(
        pyrun,
        """
        import alias, target
        lazypatch.wrap("alias", "function", tagger("w"), in_place=True)
        assert tags(target.function(1)) == ["w"]  # the same function object
        importlib.reload(alias)                    # same function again: still one layer
        assert tags(alias.function(1)) == ["w"]
        """,
        files=files,
    )


def test_running_calls_finish_with_the_code_they_started_with(pyrun):
    run(
        pyrun,
        """
        import target
        entered, release = threading.Event(), threading.Event()
        results = []

        def blocking(x):
            entered.set()
            release.wait(10)
            return ("body", x)

        target.blocking = blocking

        def call():
            results.append(target.blocking(1))

        def step(change):
            entered.clear(), release.clear()
            thread = threading.Thread(target=call)
            thread.start()
            assert entered.wait(10)
            change()
            release.set()
            thread.join()
            return results.pop()

        # applied while a call is inside the original body: that call is not wrapped
        holder = {}
        apply = lambda: holder.update(p=lazypatch.wrap("target", "blocking", tagger("w0"), in_place=True))
        assert step(apply) == ("body", 1)
        assert target.blocking(1) == ("w0", ("body", 1))
        # a second layer stacked while a call is inside: the call finishes with one layer
        apply_second = lambda: holder.update(q=lazypatch.wrap("target", "blocking", tagger("w1"), in_place=True))
        assert step(apply_second) == ("w0", ("body", 1))
        # the inner layer removed while a call runs inside both: it still finishes with both
        assert step(lambda: holder["p"].remove()) == ("w1", ("w0", ("body", 1)))
        assert target.blocking(1) == ("w1", ("body", 1))
        # the last layer removed while a call runs inside it: it finishes wrapped
        assert step(lambda: holder["q"].remove()) == ("w1", ("body", 1))
        assert target.blocking(1) == ("body", 1)
        """,
    )


def test_no_call_runs_half_patched_while_layers_come_and_go(pyrun):
    run(
        pyrun,
        """
        import target
        stop = threading.Event()
        bad = []

        def caller():
            while not stop.is_set():
                result = target.function(1)
                found = tags(result)
                if len(found) > 2 or len(set(found)) != len(found):
                    bad.append(result)
                base = result
                while tags(base):
                    base = base[1]
                if base != ("function", 1, 2, 3):
                    bad.append(result)

        threads = [threading.Thread(target=caller) for _ in range(4)]
        for thread in threads:
            thread.start()
        for _ in range(300):
            a = lazypatch.wrap("target", "function", tagger("wa"), in_place=True)
            b = lazypatch.wrap("target", "function", tagger("wb"), in_place=True)
            a.remove()
            b.remove()
        stop.set()
        for thread in threads:
            thread.join()
        assert bad == [], bad[:5]
        assert target.function(1) == ("function", 1, 2, 3)
        """,
    )


def test_instrumentor_tracks_in_place_patches(pyrun):
    run(
        pyrun,
        """
        from target import function

        class Instr(lazypatch.Instrumentor):
            targets = ("target",)

            def _instrument(self, **kwargs):
                self.patch = self.wrap("target", "function", tagger("w"), in_place=True)

        code = function.__code__
        instr = Instr()
        for _ in range(2):
            instr.instrument()
            assert instr.state == "active" and instr.patch.in_place
            assert tags(function(1)) == ["w"]
            instr.uninstrument()
            assert function.__code__ is code and function(1) == ("function", 1, 2, 3)
        """,
    )


def test_code_replaced_by_someone_else_is_kept(pyrun):
    out = run(
        pyrun,
        """
        import target
        from target import function

        def other(a, b=2, *, c=3):
            return ("other", a)

        patch = lazypatch.wrap("target", "function", tagger("w"), in_place=True)
        function.__code__ = other.__code__       # a hot reloader, say
        assert function(1) == ("other", 1)
        second = lazypatch.wrap("target", "function", tagger("w2"), in_place=True)
        assert tags(function(1)) == ["w2", "w"]
        patch.remove(), second.remove()
        assert function.__code__ is other.__code__
        """,
    )
    assert "was replaced by other code" in out.stderr


def test_the_code_keeps_its_names_and_the_twin_its_type_parameters(pyrun):
    """Profilers and tracebacks read the code's names (``co_qualname`` from 3.11); a wrapper may
    read the type parameters (3.12) of the function it is handed."""
    run(
        pyrun,
        """
        import typing
        import target
        from target import Base, function

        if sys.version_info >= (3, 12):
            function.__type_params__ = (typing.TypeVar("T"),)
        handed = []

        def keep(wrapped, instance, args, kwargs):
            handed.append(wrapped)
            return wrapped(*args, **kwargs)

        lazypatch.wrap("target", "function", keep, in_place=True)
        lazypatch.wrap("target", "Base.method", tagger("w"), in_place=True)
        for func, qualname in ((function, "function"), (Base.method, "Base.method")):
            assert func.__code__.co_name == func.__name__, func.__code__.co_name
            if sys.version_info >= (3, 11):
                assert func.__code__.co_qualname == qualname, func.__code__.co_qualname
        assert function(1) == ("function", 1, 2, 3)
        if sys.version_info >= (3, 12):
            assert handed[0].__type_params__ == function.__type_params__ != ()
        """,
    )
