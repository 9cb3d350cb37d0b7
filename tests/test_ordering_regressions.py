"""Examples found by the property-based test of test_ordering.py, kept as regular tests.

Each is the example hypothesis minimised, replayed through the same state machine and model, and
next to it the smallest standalone program showing the same failure.
"""

import textwrap

from test_ordering import replay

TARGET = {
    "target.py": """
        def f():
            return "f"
    """
}

MARK = """
import importlib, sys
import lazypatch

def mark(wrapped, instance, args, kwargs):
    return wrapped(*args, **kwargs) + "+patched"
"""


def program(body):
    return MARK + textwrap.dedent(body)


def test_hook_fired_while_another_missed_the_import():
    replay(
        [
            ("register_hook", {"mod": 0}),
            ("finder", {"out": True}),
            ("import_module", {"mod": 0}),
            ("instrumentor", {"on": True}),
            ("finder", {"out": False}),
        ],
    )


def test_patch_armed_while_uninstalled_then_another_registration(pyrun):
    pyrun(
        program(
            """
        patch = lazypatch.wrap("target", "f", mark)
        lazypatch.uninstall()
        import target                                      # uninstalled: nothing fires
        lazypatch.register_hook("target", lambda m: None)  # loaded: fires now
        lazypatch.install()                                # must catch the patch up too
        assert (target.f(), patch.state) == ("f+patched", "applied"), (target.f(), patch.state)
        """
        ),
        files=TARGET,
    )


def test_hook_missed_import_while_uninstalled(pyrun):
    pyrun(
        program(
            """
        seen = []
        lazypatch.register_hook("target", seen.append)
        lazypatch.uninstall()
        import target
        lazypatch.register_hook("target", lambda m: None)
        lazypatch.install()
        assert len(seen) == 1 and seen[0] is target, seen  # fired by install(), on the module
        """
        ),
        files=TARGET,
    )


def test_reload_while_uninstalled():
    replay(
        [
            ("wrap", {"mod": 0, "path": "func", "by_object": False}),
            ("import_module", {"mod": 0}),
            ("finder", {"out": True}),
            ("reload", {"pick": 0}),
            ("finder", {"out": False}),
        ],
    )


def test_patch_lost_by_reload_while_uninstalled(pyrun):
    pyrun(
        program(
            """
        patch = lazypatch.wrap("target", "f", mark)
        import target
        assert target.f() == "f+patched", target.f()
        lazypatch.uninstall()
        importlib.reload(target)   # a new f, unpatched while the finder is out
        lazypatch.install()        # wanted and loaded again: must be applied again
        assert target.f() == "f+patched", target.f()
        """
        ),
        files=TARGET,
    )


# Found by the thread stress test (test_threads.py), not by the state machine: its steps are
# atomic, and this window lies inside one import. A proxied first import reports its end from
# exec_module; importlib clears ``spec._initializing`` only afterwards, in _load_unlocked. A hook
# registered in between took the module for one still executing without our proxy, watched its
# spec, and the spec's end fired every earlier hook a second time for that one execution. A
# tracer stops the importing thread exactly there, so no thread timing is involved.
def test_registration_between_proxy_end_and_importlib_end(pyrun):
    pyrun(
        """
        import sys
        import lazypatch
        from lazypatch import _finder

        fired = []
        lazypatch.register_hook("target", lambda m: fired.append("early"))
        late = []

        def tracer(frame, event, arg):
            if frame.f_code is not _finder._LoaderWatch.exec_module.__code__:
                return None

            def local(frame, event, arg):
                if event == "return" and not late:
                    late.append(lazypatch.register_hook("target", lambda m: fired.append("late")))
                return local

            return local

        sys.settrace(tracer)
        import target
        sys.settrace(None)
        assert late, "the tracer never saw the proxy's exec_module return"
        assert fired == ["early", "late"], fired
        assert late[0].calls == 1 and late[0].state == "fired", late[0]
        """,
        files=TARGET,
    )


# install() fires the hooks that missed an execution while the finder was out, module by module.
# A hook it fires may register another (here the instrumentor's patches), and a registration looks
# at its own module for executions unknown to the finder: module 2, not reached yet by install(),
# looked unknown, and its hook, fired at its registration on that very module, fired again.
def test_registration_during_install_does_not_refire_a_hook_of_a_later_module():
    replay(
        [
            ("instrumentor", {"on": True}),
            ("finder", {"out": True}),
            ("import_all", {}),
            ("register_hook", {"mod": 2}),
            ("finder", {"out": False}),
        ],
    )


def test_registration_during_install_standalone(pyrun):
    out = pyrun(
        program(
            """
            calls = []
            lazypatch.register_hook("first", lambda m: lazypatch.register_hook("second", print))
            lazypatch.uninstall()
            import first, second
            lazypatch.register_hook("second", calls.append)
            lazypatch.install()
            print(len(calls))
            """
        ),
        files={"first.py": "", "second.py": ""},
    )
    assert out.stdout.split()[-1] == "1"
