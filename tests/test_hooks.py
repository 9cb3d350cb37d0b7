"""Post-import hooks (API.md section 1), each behaviour in a fresh interpreter."""

import sys

import pytest
from fresh import facts
from preludes import with_report

TARGET = {"target.py": "EVENTS = []\nVALUE = 42\n"}
PKG = {
    "pkg/__init__.py": "NAME = 'pkg'\n",
    "pkg/sub.py": "NAME = 'pkg.sub'\n",
}


def test_registered_before_import_fires_once_after_the_body(pyfacts):
    facts = pyfacts(
        """
        import sys, lazypatch
        seen = []
        hook = lazypatch.register_hook("target", lambda m: seen.append((m.VALUE, m is sys.modules["target"])))
        assert seen == [] and hook.state == "pending" and hook.calls == 0
        import target
        import target
        report(seen=seen, state=hook.state, calls=hook.calls)
        """,
        files=TARGET,
    )
    assert facts == {"seen": [[42, True]], "state": "fired", "calls": 1}


def test_registered_after_import_fires_immediately_once(pyfacts):
    facts = pyfacts(
        """
        import lazypatch, target
        seen = []
        hook = lazypatch.register_hook("target", seen.append)
        at_registration = dict(fired=len(seen), on=seen[0] is target, state=hook.state)
        import target
        report(at_registration=at_registration, calls=hook.calls, fired=len(seen))
        """,
        files=TARGET,
    )
    assert facts == {
        "at_registration": {"fired": 1, "on": True, "state": "fired"},
        "calls": 1,
        "fired": 1,
    }


def test_before_and_after_each_fire_once_in_registration_order(pyfacts):
    facts = pyfacts(
        """
        import lazypatch
        order = []
        lazypatch.register_hook("target", lambda m: order.append("a"))
        lazypatch.register_hook("target", lambda m: order.append("b"))
        import target
        lazypatch.register_hook("target", lambda m: order.append("c"))
        report(order=order)
        """,
        files=TARGET,
    )
    assert facts == {"order": ["a", "b", "c"]}


def test_when_imported_returns_the_function_unchanged(pyrun):
    pyrun(
        """
        import lazypatch

        def hook(module):
            module.EVENTS.append("hooked")

        decorated = lazypatch.when_imported("target")(hook)
        assert decorated is hook
        import target
        assert target.EVENTS == ["hooked"], target.EVENTS
        """,
        files=TARGET,
    )


def test_exact_names_only(pyfacts):
    facts = pyfacts(
        """
        import lazypatch
        fired = []
        lazypatch.register_hook("pkg.sub", lambda m: fired.append(m.NAME))
        lazypatch.register_hook("pk", lambda m: fired.append("pk"))
        lazypatch.register_hook("pkg.su", lambda m: fired.append("pkg.su"))
        import pkg
        after_pkg = list(fired)
        import pkg.sub, json, target
        after_sub = list(fired)
        lazypatch.register_hook("pkg", lambda m: fired.append(m.NAME))
        report(after_pkg=after_pkg, after_sub=after_sub, after_pkg_hook=fired)
        """,
        files={**PKG, **TARGET},
    )
    assert facts == {
        "after_pkg": [],
        "after_sub": ["pkg.sub"],
        "after_pkg_hook": ["pkg.sub", "pkg"],
    }


def test_string_hook_is_imported_only_when_its_target_loads(pyfacts):
    facts = pyfacts(
        """
        import sys, lazypatch
        hook = lazypatch.register_hook("target", "hookmod:Holder.patch")
        imported_early = "hookmod" in sys.modules
        import target
        report(
            imported_early=imported_early,
            imported="hookmod" in sys.modules,
            patched=getattr(target, "PATCHED", None),
            target=hook.target,
            state=hook.state,
        )
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
    )
    assert facts == {
        "imported_early": False,
        "imported": True,
        "patched": True,
        "target": "hookmod:Holder.patch",
        "state": "fired",
    }


@pytest.mark.parametrize("bad", ["nocolon", "mod:", ":attr", "mod:a..b", 42])
def test_malformed_hooks_are_rejected_at_registration(bad):
    import lazypatch

    with pytest.raises((TypeError, ValueError)):
        lazypatch.register_hook("never_imported_module_xyz", bad)


def test_reload_and_reimport_fire_again(pyfacts):
    facts = pyfacts(
        """
        import importlib, sys, lazypatch
        seen = []
        hook = lazypatch.register_hook("target", lambda m: seen.append(id(m)))
        import target
        importlib.reload(target)
        del sys.modules["target"]
        import target as again
        report(
            fired=len(seen),
            calls=hook.calls,
            reload_same_module=seen[0] == seen[1],
            reimport_new_module=seen[2] == id(again),
        )
        """,
        files=TARGET,
    )
    assert facts == {
        "fired": 3,
        "calls": 3,
        "reload_same_module": True,
        "reimport_new_module": True,
    }


def test_failing_import_fires_nothing_then_a_later_success_fires(pyfacts, tmp_path):
    facts = pyfacts(
        """
        import lazypatch, pathlib
        seen = []
        hook = lazypatch.register_hook("flaky", seen.append)
        try:
            import flaky
        except RuntimeError:
            after_failure = dict(fired=len(seen), state=hook.state)
        pathlib.Path("flaky.py").write_text("OK = True\\n")
        import importlib; importlib.invalidate_caches()
        import sys; sys.dont_write_bytecode = True
        import flaky
        report(after_failure=after_failure, fired=len(seen), ok=seen[0].OK, state=hook.state)
        """,
        files={"flaky.py": "raise RuntimeError('first attempt fails')\n"},
        env={"PYTHONDONTWRITEBYTECODE": "1"},
    )
    assert facts == {
        "after_failure": {"fired": 0, "state": "pending"},
        "fired": 1,
        "ok": True,
        "state": "fired",
    }


def test_a_failed_reload_fires_nothing_then_a_later_success_fires(pyfacts):
    # A failed reload leaves the module in sys.modules with a new __spec__: that must not pass
    # for an execution the finder missed, at the next registration, status() or import.
    facts = pyfacts(
        """
        import importlib, pathlib, sys, lazypatch
        sys.dont_write_bytecode = True
        seen = []
        hook = lazypatch.register_hook("flaky", lambda m: seen.append(m.VERSION))
        import flaky
        pathlib.Path("flaky.py").write_text("VERSION = 2\\nraise RuntimeError('reload fails')\\n")
        importlib.invalidate_caches()
        try:
            importlib.reload(flaky)
        except RuntimeError:
            pass
        later = lazypatch.register_hook("flaky", lambda m: None)
        lazypatch.status()
        import json, decimal
        after_failure = dict(seen=list(seen), calls=hook.calls, state=hook.state)
        pathlib.Path("flaky.py").write_text("VERSION = 3\\n")
        importlib.invalidate_caches()
        importlib.reload(flaky)
        report(after_failure=after_failure, seen=seen, calls=hook.calls, later=later.calls)
        """,
        files={"flaky.py": "VERSION = 1\n"},
    )
    assert facts == {
        "after_failure": {"seen": [1], "calls": 1, "state": "fired"},
        "seen": [1, 3],
        "calls": 2,
        "later": 2,
    }


def test_a_raising_hook_is_isolated_logged_once_and_recorded(pyrun):
    proc = pyrun(
        with_report(
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
        report(
            order=order,
            states=[good.state, broken.state, after.state],
            error=type(broken.error).__name__,
        )
        """
        ),
        files=TARGET,
        env={"LAZYPATCH_STRICT": None},
    )
    assert facts(proc) == {
        "order": ["good", "bad", "after"],
        "states": ["fired", "failed", "fired"],
        "error": "ValueError",
    }
    assert proc.stderr.count("ValueError: hook exploded") == 1
    assert proc.stderr.count("Traceback") == 1
    assert "target" in proc.stderr


def test_strict_mode_propagates_hook_errors(pyrun):
    pyrun(
        """
        import sys, lazypatch
        lazypatch.register_hook("target", lambda m: 1 / 0)
        try:
            import target
        except ZeroDivisionError:
            assert "target" not in sys.modules, "a module whose hook raised stays imported"
        else:
            raise AssertionError("the hook's error did not propagate")
        """,
        files=TARGET,
        env={"LAZYPATCH_STRICT": "1"},
    )


@pytest.mark.parametrize("exc", ["KeyboardInterrupt", "SystemExit"])
def test_base_exceptions_always_propagate(pyrun, exc):
    pyrun(
        f"""
        import lazypatch
        def hook(module):
            raise {exc}("stop")
        h = lazypatch.register_hook("target", hook)
        try:
            import target
        except {exc}:
            assert h.state == "failed", h.state
        else:
            raise AssertionError("{exc} did not propagate")
        """,
        files=TARGET,
        env={"LAZYPATCH_STRICT": None},
    )


def test_hook_registered_from_the_modules_own_body_runs_once_after_it(pyrun):
    pyrun(
        """
        import selfhook
        assert selfhook.SEEN == ["defined after registration"], selfhook.SEEN
        """,
        files={
            "selfhook.py": """
                import lazypatch
                SEEN = []
                lazypatch.register_hook(__name__, lambda m: SEEN.append(m.LAST))
                LAST = "defined after registration"
            """
        },
    )


def test_hook_registered_from_a_circular_import_waits_for_the_module(pyrun):
    pyrun(
        """
        import a
        assert a.SEEN == ["complete"], a.SEEN
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
    )


def test_hook_registered_from_another_thread_mid_import(pyrun):
    pyrun(
        """
        import threading, lazypatch
        import slow
        assert slow.SEEN == ["body finished"], slow.SEEN
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
    )


def test_hook_registered_mid_import_of_a_watched_module(pyfacts):
    facts = pyfacts(
        """
        import lazypatch
        first = lazypatch.register_hook("selfhook", lambda m: m.SEEN.append("first"))
        import selfhook
        report(seen=selfhook.SEEN, first_calls=first.calls)
        """,
        files={
            "selfhook.py": """
                import lazypatch
                SEEN = []
                lazypatch.register_hook(__name__, lambda m: SEEN.append(m.LAST))
                LAST = "second"
            """
        },
    )
    assert facts == {"seen": ["first", "second"], "first_calls": 1}


def test_module_replacing_itself_in_sys_modules(pyfacts):
    facts = pyfacts(
        """
        import lazypatch
        got = []
        lazypatch.register_hook("replacer", got.append)
        import replacer
        report(given=[type(m).__name__ for m in got], same=got[0] is replacer)
        """,
        files={
            "replacer.py": """
                import sys
                class Replacement:
                    pass
                sys.modules[__name__] = Replacement()
            """
        },
    )
    assert facts == {"given": ["Replacement"], "same": True}


def test_a_hook_may_import_other_watched_modules_and_its_own_target(pyfacts):
    facts = pyfacts(
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
        report(order=order)
        """,
        files={**TARGET, **PKG},
    )
    assert facts == {"order": [["pkg.sub", True], ["target", True]]}


def test_uninstall_and_install(pyfacts):
    facts = pyfacts(
        """
        import sys, lazypatch
        from lazypatch._hooks import _registry
        seen = []
        hook = lazypatch.register_hook("target", seen.append)
        lazypatch.uninstall()
        lazypatch.uninstall()
        uninstalled = dict(finder=_registry.finder in sys.meta_path)
        import target
        uninstalled.update(fired=len(seen), state=hook.state)
        lazypatch.install()
        lazypatch.install()
        installed = dict(finders=sys.meta_path.count(_registry.finder), fired=len(seen))
        del sys.modules["target"]
        import target
        report(uninstalled=uninstalled, installed=installed, reimported=len(seen))
        """,
        files=TARGET,
    )
    assert facts == {
        "uninstalled": {"finder": False, "fired": 0, "state": "pending"},
        "installed": {"finders": 1, "fired": 1},  # on install: the module imported meanwhile
        "reimported": 2,
    }


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
        by_string = lazypatch.register_hook("target", "os:getcwd")
        assert lazypatch.unregister_hook("target", "".join(["os:", "getcwd"])) is True  # equal
        assert by_string.state == "removed" and other.state == "removed", other.state
        other.remove(); other.remove()
        assert other.state == "removed", other.state
        assert "target" not in state.watched, "the finder still watches a module with no hook"
        import target
        assert seen == [], seen
        """,
        files=TARGET,
    )


def test_hook_removed_while_its_module_executes_does_not_fire(pyfacts):
    facts = pyfacts(
        """
        import lazypatch
        seen = []
        h = lazypatch.register_hook("remover", seen.append)
        import builtins
        builtins.HOOK = h
        import remover
        report(fired=len(seen), state=h.state)
        """,
        files={"remover.py": "import builtins\nbuiltins.HOOK.remove()\n"},
    )
    assert facts == {"fired": 0, "state": "removed"}


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
def test_legacy_find_module_loader(pyfacts):
    facts = pyfacts(
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
        report(fired=len(seen), ok=seen[0].OK, loader=type(legacy.__loader__).__name__)
        """,
    )
    assert facts == {"fired": 1, "ok": True, "loader": "Legacy"}


def test_status_lists_every_public_hook(pyfacts):
    facts = pyfacts(
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
        report(records=[
            dict(
                kind=r.kind,
                name=r.name,
                module=r.module,
                state=r.state,
                reason=r.reason,
                calls=r.calls,
                timed=r.seconds > 0 if r.calls else r.seconds == 0.0,
            )
            for r in lazypatch.status()
        ])
        """,
        files=TARGET,
    )
    common = {"kind": "hook", "timed": True}
    assert facts["records"] == [
        {
            **common,
            "name": "__main__.ok",
            "module": "target",
            "state": "fired",
            "reason": None,
            "calls": 1,
        },
        {
            **common,
            "name": "__main__.bad",
            "module": "target",
            "state": "failed",
            "reason": "KeyError: 'nope'",
            "calls": 1,
        },
        {
            **common,
            "name": "os:getcwd",
            "module": "never.imported",
            "state": "pending",
            "reason": None,
            "calls": 0,
        },
    ]


def test_import_lazypatch_and_registering_import_nothing_new(pyfacts):
    facts = pyfacts(
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
        report(new=sorted(m for m in new if not m.startswith("lazypatch") and m != "threading"))
        """
    )
    assert facts == {"new": []}


def test_blocked_and_non_module_entries_in_sys_modules(pyfacts):
    facts = pyfacts(
        """
        import sys, lazypatch
        sys.modules["blocked"] = None
        fired = []
        lazypatch.register_hook("blocked", fired.append)
        try:
            import blocked
        except ImportError:
            blocked = dict(raised=True, fired=list(fired))

        class Weird:
            def __getattribute__(self, name):
                raise RuntimeError("no attributes here")
        sys.modules["weird"] = weird = Weird()
        lazypatch.register_hook("weird", lambda m: fired.append(m is weird))
        report(blocked=blocked, fired=fired)
        """
    )
    assert facts == {"blocked": {"raised": True, "fired": []}, "fired": [True]}


def test_a_submodule_is_bound_on_its_package_when_its_hook_runs(pyrun):
    pyrun(
        """
        import lazypatch
        seen = []
        def hook(module):
            import pkg.sub
            seen.append(pkg.sub is module)
        lazypatch.register_hook("pkg.sub", hook)
        import pkg.sub
        assert seen == [True], seen
        """,
        files=PKG,
    )
