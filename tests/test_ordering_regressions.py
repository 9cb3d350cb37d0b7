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
    out = pyrun(
        program(
            """
        patch = lazypatch.wrap("target", "f", mark)
        lazypatch.uninstall()
        import target                                      # uninstalled: nothing fires
        lazypatch.register_hook("target", lambda m: None)  # loaded: fires now
        lazypatch.install()                                # must catch the patch up too
        print(target.f(), patch.state)
        """
        ),
        files=TARGET,
    ).stdout
    assert out.split() == ["f+patched", "applied"]


def test_hook_missed_import_while_uninstalled(pyrun):
    out = pyrun(
        program(
            """
        seen = []
        lazypatch.register_hook("target", seen.append)
        lazypatch.uninstall()
        import target
        lazypatch.register_hook("target", lambda m: None)
        lazypatch.install()
        print(len(seen), seen[0] is target if seen else None)
        """
        ),
        files=TARGET,
    ).stdout
    assert out.split() == ["1", "True"]


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
    out = pyrun(
        program(
            """
        patch = lazypatch.wrap("target", "f", mark)
        import target
        print(target.f())
        lazypatch.uninstall()
        importlib.reload(target)   # a new f, unpatched while the finder is out
        lazypatch.install()        # wanted and loaded again: must be applied again
        print(target.f())
        """
        ),
        files=TARGET,
    ).stdout
    assert out.split() == ["f+patched", "f+patched"]
