"""lazypatch.wrap / replace / Patch: each behaviour checked with real imports in a fresh interpreter."""

import textwrap

import pytest
from preludes import TAGGING

TARGET = {
    "target.py": '''
        """A module to patch."""
        import math
        from math import sqrt

        CALLS = []


        def function(a, b=2, *, c=3):
            """function doc"""
            return ("function", a, b, c)


        class Base:
            def method(self, a, b=2):
                """method doc"""
                return ("method", type(self).__name__, a, b)

            @classmethod
            def klass(cls, a):
                """klass doc"""
                return ("klass", cls.__name__, a)

            @staticmethod
            def static(a):
                """static doc"""
                return ("static", a)


        class Child(Base):
            pass


        class Outer:
            class Inner:
                def method(self, a):
                    return ("inner", a)


        class Mapping(dict):
            pass


        Builtin = dict
    ''',
}

# A wrapper that records what it was given and tags the result, so that layers can be counted.
PRELUDE = (
    """
import importlib, inspect, sys
import lazypatch
"""
    + TAGGING
)


def run(pyrun, code, files=TARGET, **kwargs):
    return pyrun(PRELUDE + textwrap.dedent(code), files=files, **kwargs)


@pytest.mark.parametrize("before", [True, False], ids=["before-import", "after-import"])
def test_wrap_before_or_after_import_gives_one_layer(pyrun, before):
    run(
        pyrun,
        f"""
        if not {before}:
            import target
        patch = lazypatch.wrap("target", "function", tagger("w"))
        assert patch.state == ("pending" if {before} else "applied"), patch.state
        assert ("target" in sys.modules) is (not {before})
        import target
        assert patch.state == "applied"
        assert patch.original is target.function.__wrapped__
        assert patch.original.__code__.co_name == "function"
        assert target.function(1) == ("w", ("function", 1, 2, 3))
        assert patch.module == "target" and patch.path == "function" and patch.error is None
        """,
    )


def test_kinds_follow_wrapts_convention(pyrun):
    """Same (instance, args, kwargs) and results as wrapt.wrap_function_wrapper, kind by kind."""
    run(
        pyrun,
        """
        import target, wrapt

        def clone():
            module = type(sys)("clone")
            exec(open(target.__file__).read(), module.__dict__)
            return module

        paths = ["function", "Base.method", "Base.klass", "Base.static", "Child.method",
                 "Outer.Inner.method", "sqrt"]
        ours, theirs = target, clone()
        for path in paths:
            lazypatch.wrap(ours, path, tagger("w"))
            wrapt.wrap_function_wrapper(theirs, path, tagger("w"))

        def calls(m):
            obj, child = m.Base(), m.Child()
            return [
                lambda: m.function(1, c=4),
                lambda: obj.method(1),
                lambda: m.Base.method(obj, 1, b=5),
                lambda: m.Base.klass(1),
                lambda: obj.klass(1),
                lambda: m.Child.klass(1),
                lambda: m.Base.static(1),
                lambda: obj.static(1),
                lambda: child.method(1),
                lambda: m.Outer.Inner().method(7),
                lambda: m.sqrt(4.0),
            ]

        def norm(value, m):
            if isinstance(value, (m.Base, m.Outer.Inner)):
                return ("instance", type(value).__name__)
            if isinstance(value, type):
                return ("class", value.__name__)
            if isinstance(value, (tuple, list)):
                return tuple(norm(v, m) for v in value)
            if isinstance(value, dict):
                return {k: norm(v, m) for k, v in value.items()}
            return value

        for index, (a, b) in enumerate(zip(calls(ours), calls(theirs))):
            del seen[:]
            ra = norm((a(), list(seen)), ours)
            del seen[:]
            rb = norm((b(), list(seen)), theirs)
            assert ra == rb, (index, ra, rb)

        assert "method" not in vars(target.Base) or vars(target.Base)["method"] is not vars(target.Child)["method"]
        assert isinstance(vars(target.Base)["klass"], classmethod)
        assert isinstance(vars(target.Base)["static"], staticmethod)
        """,
    )


def test_inherited_method_is_patched_on_the_named_class_only(pyrun):
    run(
        pyrun,
        """
        import target
        base_method = vars(target.Base)["method"]
        patch = lazypatch.wrap("target", "Child.method", tagger("w"))
        assert vars(target.Base)["method"] is base_method
        assert layers(target.Child().method(1)) == 1
        assert layers(target.Base().method(1)) == 0
        patch.remove()
        assert "method" not in vars(target.Child)
        assert target.Child.method is base_method
        """,
    )


def test_metadata_and_signature_are_preserved(pyrun):
    run(
        pyrun,
        """
        import target
        originals = {
            "function": target.function,
            "Base.method": target.Base.method,
            "Base.klass": target.Base.klass,
            "Base.static": target.Base.static,
        }
        signatures = {path: inspect.signature(obj) for path, obj in originals.items()}
        for path in originals:
            lazypatch.wrap("target", path, tagger("w"))
        for path, before in originals.items():
            after = eval("target." + path)
            assert inspect.signature(after) == signatures[path], (path, inspect.signature(after))
            for name in ("__name__", "__qualname__", "__doc__", "__module__"):
                assert getattr(after, name) == getattr(before, name), (path, name)
        assert target.function.__wrapped__ is originals["function"]
        assert target.Base.method.__wrapped__ is originals["Base.method"]
        assert str(inspect.signature(target.Base().method)) == "(a, b=2)"
        assert str(inspect.signature(target.Base.klass)) == "(a)"
        """,
    )


def test_coroutine_functions_stay_coroutine_functions(pyrun):
    """ASGI servers and FastAPI ask ``inspect`` whether a callable is async before calling it."""
    run(
        pyrun,
        """
        import asyncio
        import target

        class Service:
            async def method(self, a):
                return ("method", a)

            @classmethod
            async def klass(cls, a):
                return ("klass", cls.__name__, a)

            @staticmethod
            async def static(a):
                return ("static", a)

        async def function(a):
            return ("function", a)

        target.Service, target.afunction = Service, function

        async def traced(wrapped, instance, args, kwargs):
            return ("traced", await wrapped(*args, **kwargs))

        def plain(wrapped, instance, args, kwargs):
            return wrapped(*args, **kwargs)  # a sync wrapper handing back the coroutine

        patches = [lazypatch.wrap("target", "afunction", traced)]
        for path in ("Service.method", "Service.klass", "Service.static"):
            patches.append(lazypatch.wrap("target", path, plain))
            patches.append(lazypatch.wrap("target", path, traced))
        service = target.Service()
        for obj in (target.afunction, service.method, Service.klass, Service.static):
            assert inspect.iscoroutinefunction(obj), obj
        assert inspect.iscoroutinefunction(type(service).__dict__["method"])
        async def calls():
            return await asyncio.gather(
                target.afunction(1), service.method(2), Service.klass(3), Service.static(4),
                Service.method(service, 5),
            )

        got = asyncio.run(calls())
        assert got == [
            ("traced", ("function", 1)),
            ("traced", ("method", 2)),
            ("traced", ("klass", "Service", 3)),
            ("traced", ("static", 4)),
            ("traced", ("method", 5)),
        ], got
        for patch in patches:
            patch.remove()
        assert asyncio.run(service.method(6)) == ("method", 6)
        """,
    )


def test_builtin_functions_and_c_methods(pyrun):
    run(
        pyrun,
        """
        import target
        sqrt = lazypatch.wrap("target", "sqrt", tagger("w"))
        get = lazypatch.wrap("target", "Mapping.get", tagger("w"))
        item = lazypatch.wrap("target", "Mapping.__getitem__", tagger("w"))
        assert target.sqrt(4.0) == ("w", 2.0)
        m = target.Mapping(a=1)
        assert m.get("a") == ("w", 1)
        assert m["a"] == ("w", 1)
        assert seen[-1][1] is m and seen[-1][2] == ("a",)
        assert inspect.signature(target.sqrt) == inspect.signature(target.math.sqrt)
        for patch in (sqrt, get, item):
            patch.remove()
        assert target.sqrt is target.math.sqrt
        assert m.get("a") == 1 and m["a"] == 1 and "get" not in vars(target.Mapping)
        """,
    )


def test_immutable_c_type_fails_cleanly(pyrun):
    proc = run(
        pyrun,
        """
        patch = lazypatch.wrap("target", "Builtin.get", tagger("w"))
        import target
        assert patch.state == "failed", patch.state
        assert isinstance(patch.error, TypeError)
        assert "target:Builtin.get" in str(patch.error), patch.error
        assert {}.get("a", 1) == 1
        print("imported")
        """,
    )
    assert "imported" in proc.stdout
    logged = [line for line in proc.stderr.splitlines() if line.endswith("; the import goes on")]
    assert len(logged) == 1 and "target:Builtin.get" in logged[0], proc.stderr
    assert "'dict'" in logged[0] and "Traceback" in proc.stderr, proc.stderr


def test_two_patches_stack_later_outermost_remove_either(pyrun):
    for first_removed in ("inner", "outer"):
        run(
            pyrun,
            f"""
            import target
            original = target.Base.method
            inner = lazypatch.wrap("target", "Base.method", tagger("inner"))
            outer = lazypatch.wrap("target", "Base.method", tagger("outer"))
            obj = target.Base()
            assert obj.method(1) == ("outer", ("inner", ("method", "Base", 1, 2)))
            removed, kept = (inner, outer) if "{first_removed}" == "inner" else (outer, inner)
            removed.remove()
            tag = "outer" if kept is outer else "inner"
            assert obj.method(1) == (tag, ("method", "Base", 1, 2)), obj.method(1)
            assert seen[-1][1] is obj
            kept.remove()
            assert vars(target.Base)["method"] is original
            assert obj.method(1) == ("method", "Base", 1, 2)
            """,
        )


def test_removing_under_a_foreign_decorator_leaves_it_working(pyrun):
    run(
        pyrun,
        """
        import functools, target
        patch = lazypatch.wrap("target", "function", tagger("ours"))
        klass = lazypatch.wrap("target", "Base.klass", tagger("ours"))
        foreign_calls = []

        def foreign(func):
            @functools.wraps(func)
            def wrapper(*args, **kwargs):
                foreign_calls.append(args)
                return func(*args, **kwargs)
            return wrapper

        target.function = foreign(target.function)
        target.Base.klass = classmethod(foreign(target.Base.klass.__func__))
        patch.remove()
        klass.remove()
        patch.remove()
        assert target.function(1) == ("function", 1, 2, 3)
        assert target.Base.klass(2) == ("klass", "Base", 2)
        assert len(foreign_calls) == 2
        assert [s for s in seen if s[0] == "ours"] == []
        """,
    )


def test_removing_under_a_wrapt_wrapper_splices_it_out(pyrun):
    run(
        pyrun,
        """
        import target, wrapt
        original = vars(target.Base)["method"]
        patch = lazypatch.wrap("target", "Base.method", tagger("ours"))
        wrapt.wrap_function_wrapper(target, "Base.method", tagger("wrapt"))
        patch.remove()
        assert target.Base().method(1) == ("wrapt", ("method", "Base", 1, 2))
        assert vars(target.Base)["method"].__wrapped__ is original
        """,
    )


def test_remove_restores_identity_and_is_idempotent(pyrun):
    run(
        pyrun,
        """
        import target
        names = ["function", "Base.method", "Base.klass", "Base.static", "Outer.Inner.method"]
        def slot(path):
            *owners, name = path.split(".")
            owner = target
            for part in owners:
                owner = getattr(owner, part)
            return owner, name, owner.__dict__[name]
        before = [slot(path)[2] for path in names]
        patches = [lazypatch.wrap("target", path, tagger("w")) for path in names]
        captured = target.function
        for patch in patches:
            patch.remove()
            patch.remove()
            assert patch.state == "removed"
        assert [slot(path)[2] for path in names] == before
        assert all(a is b for a, b in zip([slot(path)[2] for path in names], before))
        assert captured(1) == ("function", 1, 2, 3)  # a reference taken while applied: pass-through
        """,
    )


def test_remove_of_a_pending_patch_never_applies(pyrun):
    run(
        pyrun,
        """
        patch = lazypatch.wrap("target", "function", tagger("w"))
        patch.remove()
        patch.remove()
        import target
        assert patch.state == "removed" and patch.original is None
        assert target.function(1) == ("function", 1, 2, 3)
        importlib.reload(target)
        assert target.function(1) == ("function", 1, 2, 3)
        """,
    )


def test_reload_repatches_new_objects_once(pyrun):
    run(
        pyrun,
        """
        import target
        patches = [lazypatch.wrap("target", p, tagger("w")) for p in ("function", "Base.method", "Base.klass")]
        old_base = target.Base
        importlib.reload(target)
        importlib.reload(target)
        assert target.Base is not old_base
        assert layers(target.function(1)) == 1
        assert layers(target.Base().method(1)) == 1
        assert layers(target.Base.klass(1)) == 1
        new = target.function.__wrapped__, vars(target.Base)["method"].__wrapped__
        assert patches[0].original is new[0]
        for patch in patches:
            assert patch.state == "applied" and patch.calls == 3, (patch.state, patch.calls)
            patch.remove()
        assert target.function is new[0] and vars(target.Base)["method"] is new[1]
        assert layers(target.function(1)) == 0 and layers(old_base().method(1)) == 0
        """,
    )


@pytest.mark.parametrize("kind", ["wrap", "in place", "replace"])
def test_a_hook_that_patches_at_each_execution_keeps_one_layer(pyrun, kind):
    """API.md section 1: hooks must be idempotent, and lazypatch.wrap patches are."""
    run(
        pyrun,
        f"""
        w = tagger("w")
        made = []

        def tagged(*args, **kwargs):
            return ("w", ("function",) + args)

        @lazypatch.when_imported("target")
        def hook(module):
            if "{kind}" == "replace":
                made.append(lazypatch.replace(module, "function", tagged))
            else:
                made.append(lazypatch.wrap(module, "function", w, in_place="{kind}" == "in place"))

        import target
        importlib.reload(target)
        del sys.modules["target"]
        import target
        assert len(made) == 3 and made[0] is made[1] is made[2], made
        assert layers(target.function(1)) == 1, target.function(1)
        assert made[0].calls == 3 and made[0].state == "applied", (made[0].calls, made[0].state)
        made[0].remove()
        assert layers(target.function(1)) == 0
        again = lazypatch.wrap("target", "function", w)
        assert again is not made[0] and layers(target.function(1)) == 1
        """,
    )


def test_only_the_same_owner_gets_a_live_patch_back(pyrun):
    run(
        pyrun,
        """
        import target
        w = tagger("w")

        class Mine(lazypatch.Instrumentor):
            targets = ("target",)

            def _instrument(self, **kwargs):
                self.wrap("target", "function", w)

        plain = lazypatch.wrap("target", "function", w)
        Mine().instrument()
        assert layers(target.function(1)) == 2, target.function(1)
        Mine().uninstrument()
        assert plain.state == "applied" and layers(target.function(1)) == 1
        assert lazypatch.wrap("target", "function", tagger("w")) is not plain
        assert layers(target.function(1)) == 2
        """,
    )


def test_reload_that_reimports_a_patched_class_keeps_one_layer(pyrun):
    files = dict(TARGET)
    files["facade.py"] = "from target import Base\n"
    run(
        pyrun,
        """
        import facade
        patch = lazypatch.wrap("facade", "Base.method", tagger("w"))
        importlib.reload(facade)
        importlib.reload(facade)
        assert layers(facade.Base().method(1)) == 1
        patch.remove()
        assert layers(facade.Base().method(1)) == 0
        """,
        files=files,
    )


def test_missing_path_fails_and_the_import_goes_on(pyrun):
    proc = run(
        pyrun,
        """
        patch = lazypatch.wrap("target", "Base.nope", tagger("w"))
        import target
        assert patch.state == "failed"
        assert "target" in str(patch.error) and "Base.nope" in str(patch.error), patch.error
        assert target.function(1) == ("function", 1, 2, 3)
        """,
    )
    logged = [line for line in proc.stderr.splitlines() if line.endswith("; the import goes on")]
    assert len(logged) == 1 and "target:Base.nope" in logged[0], proc.stderr
    assert "Traceback" in proc.stderr, proc.stderr


def test_missing_path_propagates_in_strict_mode(pyrun):
    run(
        pyrun,
        """
        lazypatch.wrap("target", "nope", tagger("w"))
        try:
            import target
        except AttributeError as exc:
            assert "target:nope" in str(exc)
        else:
            raise AssertionError("import succeeded")
        """,
        env={"LAZYPATCH_STRICT": "1"},
    )


def test_replace_and_restore(pyrun):
    run(
        pyrun,
        """
        class Fake:
            pass
        patch = lazypatch.replace("target", "Base", Fake)
        assert patch.state == "pending"
        import target
        assert target.Base is Fake and patch.state == "applied"
        original = patch.original
        assert original.__name__ == "Base"
        importlib.reload(target)
        assert target.Base is Fake
        patch.remove()
        assert target.Base is not Fake and target.Base.__name__ == "Base"
        """,
    )


@pytest.mark.parametrize(
    "lower, path",
    [
        ("wrap", "function"),
        ("wrap", "Base.method"),
        ("replace", "Base.method"),
        ("replace", "CALLS"),
    ],
)
def test_a_replace_stacked_over_another_patch_removes_in_either_order(pyrun, lower, path):
    run(
        pyrun,
        f"""
        import target

        def slot():
            parent, _, name = ("target." + "{path}").rpartition(".")
            return vars(eval(parent))[name]

        original = slot()
        value = object()
        for lower_first in (True, False):
            if "{lower}" == "wrap":
                lower = lazypatch.wrap("target", "{path}", tagger("w"))
            else:
                lower = lazypatch.replace("target", "{path}", object())
            upper = lazypatch.replace("target", "{path}", value)
            assert slot() is value
            first, second = (lower, upper) if lower_first else (upper, lower)
            first.remove()
            assert (slot() is value) is lower_first
            second.remove()
            assert slot() is original, (lower_first, slot())
        """,
    )


def test_wrap_accepts_a_module_object(pyrun):
    run(
        pyrun,
        """
        import target
        patch = lazypatch.wrap(target, "function", tagger("w"))
        assert patch.state == "applied" and patch.module == "target"
        assert layers(target.function(1)) == 1
        importlib.reload(target)
        assert layers(target.function(1)) == 1
        """,
    )


def test_status_lists_patches(pyrun):
    run(
        pyrun,
        """
        ok = lazypatch.wrap("target", "function", tagger("w"))
        bad = lazypatch.wrap("target", "missing", tagger("w"))
        pending = lazypatch.wrap("not_imported_yet", "x", tagger("w"))
        hook = lazypatch.register_hook("target", lambda m: None)
        import target
        records = lazypatch.status()
        assert [r.kind for r in records] == ["hook", "patch", "patch", "patch"], records
        by_name = {r.name: r for r in records if r.kind == "patch"}
        assert by_name["function"].state == "applied" and by_name["function"].calls == 1
        assert by_name["function"].module == "target" and by_name["function"].seconds > 0
        assert by_name["missing"].state == "failed" and "missing" in by_name["missing"].reason
        assert by_name["x"].state == "pending" and by_name["x"].module == "not_imported_yet"
        ok.remove()
        assert ok.state == "removed"
        assert [r.name for r in lazypatch.status() if r.kind == "patch"] == ["missing", "x"]
        """,
    )


def test_pending_patch_imports_nothing(pyrun):
    run(
        pyrun,
        """
        before = set(sys.modules)
        patch = lazypatch.wrap("target", "function", tagger("w"))
        lazypatch.replace("target", "Base", object)
        new = sorted(m for m in set(sys.modules) - before if not m.startswith("lazypatch."))
        assert new == [], new
        import target
        assert "wrapt" not in sys.modules and patch.state == "applied"
        """,
    )


def test_import_lazypatch_is_light(pyrun):
    pyrun(
        """
        import sys
        before = set(sys.modules)
        import lazypatch
        new = sorted(set(sys.modules) - before)
        assert all(name.startswith("lazypatch") for name in new), new
        for name in ("wrapt", "importlib.metadata", "packaging", "typing", "inspect", "logging"):
            assert name in before or name not in sys.modules, name
        """
    )
