"""lazypatch.Instrumentor: lifecycle, requirements, tracking; real imports in fresh interpreters."""

import textwrap

import pytest
from preludes import LOG_RECORDS, TAGGING

FILES = {
    "alpha.py": """
        LOADED = True

        def call(x):
            return ("alpha", x)
    """,
    "beta.py": """
        import sys

        # _instrument must never see this module half-built.
        DONE = False

        def call(x):
            return ("beta", x)

        DONE = True
    """,
    "dists/okdist-1.5.dist-info/METADATA": "Metadata-Version: 2.1\nName: okdist\nVersion: 1.5\n",
    "dists/pre-2.0rc1.dist-info/METADATA": "Metadata-Version: 2.1\nName: pre\nVersion: 2.0rc1\n",
    "dists/preok-2.1rc1.dist-info/METADATA": "Metadata-Version: 2.1\nName: preok\nVersion: 2.1rc1\n",
}

PRELUDE = (
    """
import importlib, logging, sys
sys.path.append("dists")
import lazypatch
"""
    + TAGGING
    + LOG_RECORDS
    + """
tag = tagger("w")

class Demo(lazypatch.Instrumentor):
    targets = ("alpha", "beta")
    runs = []
    undone = []

    def _instrument(self, **kwargs):
        beta = sys.modules["beta"]
        assert beta.DONE, "beta seen half-built"
        self.runs.append(kwargs)
        self.wrap("alpha", "call", tag)
        self.wrap("beta", "call", tag)

    def _uninstrument(self, **kwargs):
        self.undone.append(kwargs)
"""
)


def run(pyrun, code, **kwargs):
    return pyrun(PRELUDE + textwrap.dedent(code), files=FILES, **kwargs)


@pytest.mark.parametrize("when", ["before", "between", "after"])
def test_instrument_before_or_after_import_gives_one_layer(pyrun, when):
    run(
        pyrun,
        f"""
        when = "{when}"
        if when == "after":
            import alpha, beta
        if when == "between":
            import alpha
        Demo().instrument(option=1)
        assert Demo().state == ("active" if when == "after" else "pending"), Demo().state
        import alpha
        assert Demo.runs == ([] if when != "after" else [{{"option": 1}}])
        import beta
        assert Demo.runs == [{{"option": 1}}], Demo.runs
        assert Demo().state == "active" and Demo().reason is None
        assert layers(alpha.call(1)) == 1 and layers(beta.call(1)) == 1
        """,
    )


def test_instrument_imports_nothing(pyrun):
    run(
        pyrun,
        """
        class Needs(Demo):
            requirements = ("okdist >= 1.0",)

        before = set(sys.modules)
        Demo().instrument()
        Needs().instrument()
        new = set(sys.modules) - before
        assert not new, sorted(new)
        assert "alpha" not in sys.modules and "importlib.metadata" not in sys.modules
        assert Needs().state == "pending"
        import alpha, beta
        assert Needs().state == "active", Needs().reason
        """,
    )


def test_idempotent_and_repeatable_with_one_layer_each_time(pyrun):
    run(
        pyrun,
        """
        import alpha, beta
        original = alpha.call
        demo = Demo()
        for cycle in range(3):
            demo.instrument(cycle=cycle)
            demo.instrument(cycle=-1)
            assert demo.state == "active"
            assert layers(alpha.call(1)) == 1 and layers(beta.call(1)) == 1
            demo.uninstrument(cycle=cycle)
            demo.uninstrument()
            assert demo.state == "off"
            assert alpha.call is original and layers(beta.call(1)) == 0
        assert Demo.runs == [{"cycle": 0}, {"cycle": 1}, {"cycle": 2}], Demo.runs
        assert Demo.undone == [{"cycle": 0}, {"cycle": 1}, {"cycle": 2}], Demo.undone
        """,
    )


def test_uninstrument_of_a_pending_instrumentor_cancels_it(pyrun):
    run(
        pyrun,
        """
        Demo().instrument()
        import alpha
        Demo().uninstrument()
        import beta
        assert Demo().state == "off" and Demo.runs == [] and Demo.undone == []
        assert layers(alpha.call(1)) == 0 and layers(beta.call(1)) == 0
        """,
    )


def test_tracked_patches_and_hooks_are_removed_without_uninstrument_code(pyrun):
    run(
        pyrun,
        """
        fired = []

        class Tracked(lazypatch.Instrumentor):
            targets = ("alpha",)

            def _instrument(self):
                self.wrap("alpha", "call", tag)
                self.replace("alpha", "LOADED", "replaced")
                self.register_hook("beta", fired.append)

        import alpha
        original = alpha.call
        Tracked().instrument()
        assert layers(alpha.call(1)) == 1 and alpha.LOADED == "replaced"
        Tracked().uninstrument()
        assert alpha.call is original and alpha.LOADED is True
        import beta
        assert fired == []
        assert Tracked().name == "tracked"
        """,
    )


def test_uninstrument_removes_what_was_tracked_outside_instrument(pyrun):
    run(
        pyrun,
        """
        class Manual(lazypatch.Instrumentor):
            targets = ("alpha",)

            def _uninstrument(self):
                raise AssertionError("must not run: _instrument never ran")

        import alpha
        patch = Manual().wrap("alpha", "call", tag)  # never instrumented: the state is "off"
        hook = Manual().register_hook("beta", lambda module: None)
        assert layers(alpha.call(1)) == 1
        Manual().uninstrument()
        assert (patch.state, hook.state, Manual().state) == ("removed", "removed", "off")
        assert layers(alpha.call(1)) == 0
        """,
    )


def test_one_instance_per_exact_class(pyrun):
    run(
        pyrun,
        """
        class HTTPInstrumentor(lazypatch.Instrumentor):
            targets = ("alpha",)

        class SubInstrumentor(HTTPInstrumentor):
            pass

        class Named(lazypatch.Instrumentor):
            name = "custom"

        assert HTTPInstrumentor() is HTTPInstrumentor()
        assert SubInstrumentor() is SubInstrumentor()
        assert SubInstrumentor() is not HTTPInstrumentor()
        HTTPInstrumentor().instrument()
        assert HTTPInstrumentor().state == "pending" and SubInstrumentor().state == "off"
        assert (HTTPInstrumentor.name, SubInstrumentor.name, Named().name) == ("http", "sub", "custom")
        assert list(HTTPInstrumentor().instrumentation_dependencies()) == []
        """,
    )


@pytest.mark.parametrize(
    "requirement, found",
    [
        ("missingdist >= 1", "not installed"),
        ("okdist >= 2", "okdist 1.5"),
        ("okdist < 1.5", "okdist 1.5"),
        ("pre >= 2.0", "pre 2.0rc1"),
    ],
)
def test_unmet_requirement_skips(pyrun, requirement, found):
    run(
        pyrun,
        f"""
        logging.getLogger("lazypatch").setLevel(logging.INFO)

        class Needs(Demo):
            requirements = ("okdist >= 1", "{requirement}")

        Needs().instrument()
        assert Needs().state == "pending"
        assert list(Needs().instrumentation_dependencies()) == ["okdist >= 1", "{requirement}"]
        import alpha, beta
        assert Needs().state == "skipped", Needs().state
        assert "{requirement}" in Needs().reason and "{found}" in Needs().reason, Needs().reason
        assert Demo.runs == [] and layers(alpha.call(1)) == 0
        importlib.reload(beta)
        assert Demo.runs == [] and Needs().state == "skipped"
        said = [(r.levelname, r.getMessage()) for r in logged.records]
        assert len(said) == 1 and said[0][0] == "INFO" and "{requirement}" in said[0][1], said
        """,
    )


@pytest.mark.parametrize("requirement", ["okdist >= 1.0, < 2", "preok >= 2.0", "pre >= 2.0rc1"])
def test_met_requirement_activates(pyrun, requirement):
    run(
        pyrun,
        f"""
        class Needs(Demo):
            requirements = ("{requirement}",)

        Needs().instrument()
        import alpha, beta
        assert Needs().state == "active", Needs().reason
        """,
    )


def test_a_lone_string_is_one_target_and_one_requirement(pyrun):
    run(
        pyrun,
        """
        class Lone(lazypatch.Instrumentor):
            targets = "alpha"
            requirements = "okdist >= 2"

        assert Lone.targets == ("alpha",) and Lone.requirements == ("okdist >= 2",)
        Lone().instrument()
        import alpha
        assert Lone().state == "skipped", (Lone().state, Lone().reason)
        assert "okdist >= 2" in Lone().reason and "1.5" in Lone().reason, Lone().reason
        record = [r for r in lazypatch.status() if r.kind == "instrumentor" and r.name == "lone"]
        assert [r.module for r in record] == ["alpha"], record
        """,
    )


def test_exception_in_instrument_fails_and_undoes_its_patches(pyrun):
    run(
        pyrun,
        """
        class Broken(lazypatch.Instrumentor):
            targets = ("alpha",)

            def _instrument(self):
                self.wrap("alpha", "call", tag)
                raise RuntimeError("boom")

            def _uninstrument(self):
                raise AssertionError("must not run: _instrument did not complete")

        Broken().instrument()
        import alpha
        assert Broken().state == "failed"
        assert Broken().reason == "RuntimeError: boom", Broken().reason
        assert layers(alpha.call(1)) == 0
        Broken().uninstrument()
        assert Broken().state == "off"
        said = [(r.levelname, r.exc_info and repr(r.exc_info[1])) for r in logged.records]
        assert said == [("ERROR", "RuntimeError('boom')")], said  # once, with its traceback
        """,
    )


def test_exception_in_instrument_propagates_in_strict_mode(pyrun):
    run(
        pyrun,
        """
        class Broken(lazypatch.Instrumentor):
            targets = ("alpha",)

            def _instrument(self):
                raise RuntimeError("boom")

        Broken().instrument()
        try:
            import alpha
        except RuntimeError:
            pass
        else:
            raise AssertionError("no error")
        assert Broken().state == "failed"
        """,
        env={"LAZYPATCH_STRICT": "1"},
    )


def test_reload_of_a_target_while_active_keeps_one_layer(pyrun):
    run(
        pyrun,
        """
        Demo().instrument()
        import alpha, beta
        importlib.reload(alpha)
        importlib.reload(beta)
        assert len(Demo.runs) == 1
        assert layers(alpha.call(1)) == 1 and layers(beta.call(1)) == 1
        Demo().uninstrument()
        assert layers(alpha.call(1)) == 0 and layers(beta.call(1)) == 0
        """,
    )


def test_status_lists_instrumentors(pyrun):
    run(
        pyrun,
        """
        class Skipped(lazypatch.Instrumentor):
            targets = ("alpha",)
            requirements = ("missingdist",)

        Demo().instrument()
        Skipped().instrument()
        records = [r for r in lazypatch.status() if r.kind == "instrumentor"]
        assert [(r.name, r.module, r.state) for r in records] == [
            ("demo", "alpha,beta", "pending"),
            ("skipped", "alpha", "pending"),
        ], records
        import alpha, beta
        kinds = [r.kind for r in lazypatch.status()]
        assert kinds == ["patch", "patch", "instrumentor", "instrumentor"], kinds
        demo, skipped = [r for r in lazypatch.status() if r.kind == "instrumentor"]
        assert demo.state == "active" and demo.calls == 1 and demo.reason is None
        assert skipped.state == "skipped" and "missingdist" in skipped.reason
        assert skipped.calls == 0
        """,
    )
