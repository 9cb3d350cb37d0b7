"""Post-import hooks (API.md section 1), each behaviour in a fresh interpreter."""

import sys

import pytest

TARGET = {"target.py": "EVENTS = []\nVALUE = 42\n"}
PKG = {
    "pkg/__init__.py": "NAME = 'pkg'\n",
    "pkg/sub.py": "NAME = 'pkg.sub'\n",
}


def test_registered_before_import_fires_once_after_the_body(pyrun):
    out = pyrun(
        """
        import sys, lazypatch
        seen = []
        hook = lazypatch.register_hook("target", lambda m: seen.append((m.VALUE, m is sys.modules["target"])))
        assert seen == [] and hook.state == "pending" and hook.calls == 0
        import target
        import target
        print(seen, hook.state, hook.calls)
        """,
        files=TARGET,
    ).stdout
    assert out.split() == ["[(42,", "True)]", "fired", "1"]


def test_registered_after_import_fires_immediately_once(pyrun):
    out = pyrun(
        """
        import lazypatch, target
        seen = []
        hook = lazypatch.register_hook("target", seen.append)
        print(len(seen), seen[0] is target, hook.state, hook.calls)
        import target
        print(len(seen))
        """,
        files=TARGET,
    ).stdout
    assert out.split() == ["1", "True", "fired", "1", "1"]


def test_before_and_after_each_fire_once_in_registration_order(pyrun):
    out = pyrun(
        """
        import lazypatch
        order = []
        lazypatch.register_hook("target", lambda m: order.append("a"))
        lazypatch.register_hook("target", lambda m: order.append("b"))
        import target
        lazypatch.register_hook("target", lambda m: order.append("c"))
        print("".join(order))
        """,
        files=TARGET,
    ).stdout
    assert out.strip() == "abc"


def test_when_imported_returns_the_function_unchanged(pyrun):
    out = pyrun(
        """
        import lazypatch

        def hook(module):
            module.EVENTS.append("hooked")

        decorated = lazypatch.when_imported("target")(hook)
        assert decorated is hook
        import target
        print(target.EVENTS)
        """,
        files=TARGET,
    ).stdout
    assert out.strip() == "['hooked']"


def test_exact_names_only(pyrun):
    out = pyrun(
        """
        import lazypatch
        fired = []
        lazypatch.register_hook("pkg.sub", lambda m: fired.append(m.NAME))
        lazypatch.register_hook("pk", lambda m: fired.append("pk"))
        lazypatch.register_hook("pkg.su", lambda m: fired.append("pkg.su"))
        import pkg
        print(fired)
        import pkg.sub, json, target
        print(fired)
        lazypatch.register_hook("pkg", lambda m: fired.append(m.NAME))
        print(fired)
        """,
        files={**PKG, **TARGET},
    ).stdout
    assert out.splitlines() == ["[]", "['pkg.sub']", "['pkg.sub', 'pkg']"]


def test_string_hook_is_imported_only_when_its_target_loads(pyrun):
    out = pyrun(
        """
        import sys, lazypatch
        hook = lazypatch.register_hook("target", "hookmod:Holder.patch")
        print("hookmod" in sys.modules)
        import target
        print("hookmod" in sys.modules, target.PATCHED, hook.target, hook.state)
        """,
        files={
            **TARGET,
            "hookmod.py": """
                class Holder:
                    @staticmethod
                    def patch(module):
                        module.PATCHED = True
            """,
        },
    ).stdout
    assert out.split() == ["False", "True", "True", "hookmod:Holder.patch", "fired"]


@pytest.mark.parametrize("bad", ["nocolon", "mod:", ":attr", "mod:a..b", 42])
def test_malformed_hooks_are_rejected_at_registration(bad):
    import lazypatch

    with pytest.raises((TypeError, ValueError)):
        lazypatch.register_hook("never_imported_module_xyz", bad)


def test_reload_and_reimport_fire_again(pyrun):
    out = pyrun(
        """
        import importlib, sys, lazypatch
        seen = []
        hook = lazypatch.register_hook("target", lambda m: seen.append(id(m)))
        import target
        importlib.reload(target)
        del sys.modules["target"]
        import target as again
        print(len(seen), hook.calls, seen[0] == seen[1], seen[2] == id(again))
        """,
        files=TARGET,
    ).stdout
    assert out.split() == ["3", "3", "True", "True"]


def test_failing_import_fires_nothing_then_a_later_success_fires(pyrun, tmp_path):
    out = pyrun(
        """
        import lazypatch, pathlib
        seen = []
        hook = lazypatch.register_hook("flaky", seen.append)
        try:
            import flaky
        except RuntimeError:
            print("failed", seen, hook.state)
        pathlib.Path("flaky.py").write_text("OK = True\\n")
        import importlib; importlib.invalidate_caches()
        import sys; sys.dont_write_bytecode = True
        import flaky
        print(len(seen), seen[0].OK, hook.state)
        """,
        files={"flaky.py": "raise RuntimeError('first attempt fails')\n"},
        env={"PYTHONDONTWRITEBYTECODE": "1"},
    ).stdout
    assert out.splitlines() == ["failed [] pending", "1 True fired"]


def test_a_raising_hook_is_isolated_logged_once_and_recorded(pyrun):
    proc = pyrun(
        """
        import lazypatch
        order = []
        def bad(module):
            order.append("bad")
            raise ValueError("hook exploded")
        good = lazypatch.register_hook("target", lambda m: order.append("good"))
        broken = lazypatch.register_hook("target", bad)
        after = lazypatch.register_hook("target", lambda m: order.append("after"))
        import target
        print(order, broken.state, type(broken.error).__name__, good.state, after.state)
        """,
        files=TARGET,
        env={"LAZYPATCH_STRICT": None},
    )
    assert proc.stdout.strip() == "['good', 'bad', 'after'] failed ValueError fired fired"
    assert proc.stderr.count("ValueError: hook exploded") == 1
    assert proc.stderr.count("Traceback") == 1
    assert "target" in proc.stderr


def test_strict_mode_propagates_hook_errors(pyrun):
    out = pyrun(
        """
        import sys, lazypatch
        lazypatch.register_hook("target", lambda m: 1 / 0)
        try:
            import target
        except ZeroDivisionError:
            print("propagated", "target" in sys.modules)
        """,
        files=TARGET,
        env={"LAZYPATCH_STRICT": "1"},
    ).stdout
    assert out.strip() == "propagated False"


@pytest.mark.parametrize("exc", ["KeyboardInterrupt", "SystemExit"])
def test_base_exceptions_always_propagate(pyrun, exc):
    out = pyrun(
        f"""
        import lazypatch
        def hook(module):
            raise {exc}("stop")
        h = lazypatch.register_hook("target", hook)
        try:
            import target
        except {exc}:
            print("propagated", h.state)
        """,
        files=TARGET,
        env={"LAZYPATCH_STRICT": None},
    ).stdout
    assert out.strip() == "propagated failed"


def test_hook_registered_from_the_modules_own_body_runs_once_after_it(pyrun):
    out = pyrun(
        """
        import selfhook
        print(selfhook.SEEN)
        """,
        files={
            "selfhook.py": """
                import lazypatch
                SEEN = []
                lazypatch.register_hook(__name__, lambda m: SEEN.append(m.LAST))
                LAST = "defined after registration"
            """
        },
    ).stdout
    assert out.strip() == "['defined after registration']"


def test_hook_registered_from_a_circular_import_waits_for_the_module(pyrun):
    out = pyrun(
        """
        import a
        print(a.SEEN)
        """,
        files={
            "a.py": """
                SEEN = []
                import b
                LATE = "complete"
            """,
            "b.py": """
                import lazypatch, a
                lazypatch.register_hook("a", lambda m: m.SEEN.append(m.LATE))
            """,
        },
    ).stdout
    assert out.strip() == "['complete']"


def test_hook_registered_from_another_thread_mid_import(pyrun):
    out = pyrun(
        """
        import threading, lazypatch
        import slow
        print(slow.SEEN)
        """,
        files={
            "slow.py": """
                import threading, lazypatch
                SEEN = []
                def register():
                    lazypatch.register_hook("slow", lambda m: SEEN.append(m.DONE))
                t = threading.Thread(target=register)
                t.start()
                t.join()
                DONE = "body finished"
            """
        },
    ).stdout
    assert out.strip() == "['body finished']"


def test_hook_registered_mid_import_of_a_watched_module(pyrun):
    out = pyrun(
        """
        import lazypatch
        first = lazypatch.register_hook("selfhook", lambda m: m.SEEN.append("first"))
        import selfhook
        print(selfhook.SEEN, first.calls)
        """,
        files={
            "selfhook.py": """
                import lazypatch
                SEEN = []
                lazypatch.register_hook(__name__, lambda m: SEEN.append(m.LAST))
                LAST = "second"
            """
        },
    ).stdout
    assert out.strip() == "['first', 'second'] 1"


def test_module_replacing_itself_in_sys_modules(pyrun):
    out = pyrun(
        """
        import lazypatch
        got = []
        lazypatch.register_hook("replacer", got.append)
        import replacer
        print(type(got[0]).__name__, got[0] is replacer)
        """,
        files={
            "replacer.py": """
                import sys
                class Replacement:
                    pass
                sys.modules[__name__] = Replacement()
            """
        },
    ).stdout
    assert out.split() == ["Replacement", "True"]


def test_a_hook_may_import_other_watched_modules_and_its_own_target(pyrun):
    out = pyrun(
        """
        import lazypatch
        order = []
        def on_target(module):
            import target as same
            import pkg.sub
            order.append(("target", same is module))
        lazypatch.register_hook("target", on_target)
        lazypatch.register_hook("pkg.sub", lambda m: order.append(("pkg.sub", True)))
        import target
        print(order)
        """,
        files={**TARGET, **PKG},
    ).stdout
    assert out.strip() == "[('pkg.sub', True), ('target', True)]"


def test_uninstall_and_install(pyrun):
    out = pyrun(
        """
        import sys, lazypatch
        from lazypatch._hooks import _registry
        seen = []
        hook = lazypatch.register_hook("target", seen.append)
        lazypatch.uninstall()
        lazypatch.uninstall()
        print(_registry.finder in sys.meta_path)
        import target
        print(len(seen), hook.state)
        lazypatch.install()
        lazypatch.install()
        print(_registry.finder in sys.meta_path, sys.meta_path.count(_registry.finder), len(seen))
        del sys.modules["target"]
        import target
        print(len(seen))
        """,
        files=TARGET,
    ).stdout
    assert out.split() == ["False", "0", "pending", "True", "1", "1", "2"]


def test_unregister_and_remove_are_idempotent(pyrun):
    pyrun(
        """
        import sys, lazypatch
        from lazypatch._state import state
        seen = []
        def hook(module):
            seen.append(module)
        h = lazypatch.register_hook("target", hook)
        other = lazypatch.register_hook("target", "os:getcwd")
        assert lazypatch.unregister_hook("target", hook) is True
        assert lazypatch.unregister_hook("target", hook) is False
        assert lazypatch.unregister_hook("nothing.here", hook) is False
        assert h.state == "removed", h.state
        other.remove(); other.remove()
        assert other.state == "removed", other.state
        assert "target" not in state.watched, "the finder still watches a module with no hook"
        import target
        assert seen == [], seen
        """,
        files=TARGET,
    )


def test_hook_removed_while_its_module_executes_does_not_fire(pyrun):
    out = pyrun(
        """
        import lazypatch
        seen = []
        h = lazypatch.register_hook("remover", seen.append)
        import builtins
        builtins.HOOK = h
        import remover
        print(seen, h.state)
        """,
        files={"remover.py": "import builtins\nbuiltins.HOOK.remove()\n"},
    ).stdout
    assert out.strip() == "[] removed"


def test_a_finder_inserted_in_front_keeps_its_place_and_its_modules_hooks_run_late(pyrun):
    """A finder inserted in front after install (pytest's rewriter, typeguard) stays in front.
    A watched module it does not resolve goes through lazypatch's finder as usual; one it
    resolves itself keeps its loader, and its hooks run at the next import reaching lazypatch."""
    pyrun(
        """
        import sys, importlib.util, lazypatch
        from lazypatch._hooks import _registry
        seen = []
        lazypatch.register_hook("target", seen.append)
        lazypatch.register_hook("foreign", seen.append)

        class Foreign:
            '''Returns its own spec for "foreign", like an assertion rewriter would.'''
            def find_spec(self, name, path=None, target=None):
                if name != "foreign":
                    return None
                return importlib.util.spec_from_loader(name, self)
            def create_module(self, spec):
                return None
            def exec_module(self, module):
                module.FROM = "foreign loader"

        sys.meta_path.insert(0, Foreign())
        assert type(sys.meta_path[0]) is Foreign and sys.meta_path[1] is _registry.finder
        import target, foreign
        assert [m.__name__ for m in seen] == ["target"], seen
        import colorsys
        assert [getattr(m, "FROM", m.__name__) for m in seen] == ["target", "foreign loader"]
        assert type(foreign.__loader__) is Foreign and foreign.__spec__.loader is foreign.__loader__
        """,
        files=TARGET,
    )


@pytest.mark.skipif(sys.version_info >= (3, 12), reason="importlib ignores find_module since 3.12")
def test_legacy_find_module_loader(pyrun):
    out = pyrun(
        """
        import sys, types, warnings, lazypatch
        warnings.simplefilter("ignore")
        seen = []
        lazypatch.register_hook("legacy", seen.append)

        class Legacy:
            def find_module(self, name, path=None):
                return self if name == "legacy" else None
            def load_module(self, name):
                module = sys.modules[name] = types.ModuleType(name)
                module.__loader__ = self
                module.OK = True
                return module

        sys.meta_path.append(Legacy())
        import legacy
        print(len(seen), seen[0].OK, type(legacy.__loader__).__name__)
        """,
    ).stdout
    assert out.split() == ["1", "True", "Legacy"]


def test_status_lists_every_public_hook(pyrun):
    out = pyrun(
        """
        import lazypatch
        def ok(module):
            pass
        def bad(module):
            raise KeyError("nope")
        lazypatch.register_hook("target", ok)
        lazypatch.register_hook("target", bad)
        lazypatch.register_hook("never.imported", "os:getcwd")
        import target
        for r in lazypatch.status():
            assert r.kind == "hook" and r.seconds >= 0.0
            print(r.name, r.module, r.state, r.reason, r.calls, r.seconds > 0 or r.calls == 0)
        """,
        files=TARGET,
    ).stdout
    assert out.splitlines() == [
        "__main__.ok target fired None 1 True",
        "__main__.bad target failed KeyError: 'nope' 1 True",
        "os:getcwd never.imported pending None 0 True",
    ]


def test_import_lazypatch_and_registering_import_nothing_new(pyrun):
    out = pyrun(
        """
        import json, subprocess, sys
        bare = subprocess.run([sys.executable, "-c", "import sys; print(list(sys.modules))"],
                              capture_output=True, text=True, check=True).stdout
        code = (
            "import sys, lazypatch\\n"
            "lazypatch.register_hook('json', print)\\n"
            "lazypatch.register_hook('pkg', 'x.y:z')\\n"
            "lazypatch.status()\\n"
            "print(list(sys.modules))"
        )
        after = subprocess.run([sys.executable, "-c", code],
                               capture_output=True, text=True, check=True).stdout
        new = set(eval(after)) - set(eval(bare))
        print(sorted(m for m in new if not m.startswith("lazypatch") and m != "threading"))
        """
    ).stdout
    assert out.strip() == "[]"


def test_blocked_and_non_module_entries_in_sys_modules(pyrun):
    out = pyrun(
        """
        import sys, lazypatch
        sys.modules["blocked"] = None
        fired = []
        lazypatch.register_hook("blocked", fired.append)
        try:
            import blocked
        except ImportError:
            print("blocked", fired)

        class Weird:
            def __getattribute__(self, name):
                raise RuntimeError("no attributes here")
        sys.modules["weird"] = weird = Weird()
        lazypatch.register_hook("weird", lambda m: fired.append(m is weird))
        print(fired)
        """
    ).stdout
    assert out.splitlines() == ["blocked []", "[True]"]


def test_a_submodule_is_bound_on_its_package_when_its_hook_runs(pyrun):
    out = pyrun(
        """
        import lazypatch
        seen = []
        def hook(module):
            import pkg.sub
            seen.append(pkg.sub is module)
        lazypatch.register_hook("pkg.sub", hook)
        import pkg.sub
        print(seen)
        """,
        files=PKG,
    ).stdout
    assert out.strip() == "[True]"
