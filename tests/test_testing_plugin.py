"""The pytest plugin of ``lazypatch.testing``, through pytest itself (``pytester``): the fixture,
``each_order``, what loading the plugin imports, and the report of a test that fails in one order.
"""

import pytest

from lazypatch.testing import ORDERS, each_order, run_scenario

# A library, and an instrumentation that replaces its class in the module's namespace (as
# OpenTelemetry's FastAPI instrumentor replaces ``fastapi.FastAPI``): an application made before
# ``instrument()`` keeps the old class, so only the order "after_setup" loses its spans.
WIDGETS = """
    class App:
        def handle(self, path):
            return path.upper()
"""
WIDGETS_INSTRUMENTATION = """
    from lazypatch import Instrumentor


    class WidgetsInstrumentor(Instrumentor):
        targets = ("widgets",)

        def _instrument(self, **kwargs):
            import widgets
            from opentelemetry import trace

            tracer = trace.get_tracer(__name__)

            class TracedApp(widgets.App):
                def handle(self, path):
                    with tracer.start_as_current_span("GET " + path, kind=trace.SpanKind.SERVER):
                        return super().handle(path)

            self.replace("widgets", "App", TracedApp)
"""
TEST_WIDGETS = """
    import os

    from lazypatch.testing import each_order


    @each_order
    def test_one_server_span(lazypatch_scenario, order):
        scenario = lazypatch_scenario(
            instrument=\"\"\"
                from widgets_instrumentation import WidgetsInstrumentor
                WidgetsInstrumentor().instrument()
            \"\"\",
            imports="import widgets",
            setup="app = widgets.App()",
            exercise=\"\"\"
                with open(RUNS, "a") as runs:
                    runs.write("run\\\\n")
                result = app.handle("/cart")
            \"\"\".replace("RUNS", repr(os.environ["RUNS"])),
            order=order,
        )
        assert scenario.result == "/CART"
        assert [(s.name, s.kind) for s in scenario.spans] == [("GET /cart", "SERVER")]
"""


@pytest.fixture
def widgets(pytester, tmp_path, monkeypatch):
    """The order-sensitive library, its instrumentation and its test, in pytester's directory."""
    pytester.makepyfile(widgets=WIDGETS, widgets_instrumentation=WIDGETS_INSTRUMENTATION)
    pytester.makepyfile(test_widgets=TEST_WIDGETS)
    runs = tmp_path / "runs.txt"
    monkeypatch.setenv("RUNS", str(runs))
    return runs


def test_an_order_sensitive_instrumentation_fails_only_after_setup_showing_each_order(
    pytester, widgets
):
    result = pytester.runpytest("-v")
    result.assert_outcomes(passed=2, failed=1)
    result.stdout.fnmatch_lines(
        [
            "*test_one_server_span?before_import? PASSED*",
            "*test_one_server_span?after_import? PASSED*",
            "*test_one_server_span?after_setup? FAILED*",
            "*lazypatch: spans of this scenario in each order*",
            "before_import    | after_import     | after_setup (this test)",
            "-----------------+------------------+------------------------",
            "GET /cart SERVER | GET /cart SERVER | (no spans)",
        ]
    )
    # One run per order, and the two other orders once more for the failing test's report only.
    assert widgets.read_text().splitlines() == ["run"] * 5


def test_a_scenario_error_shows_in_its_column(pytester):
    pytester.makepyfile(
        """
        from lazypatch.testing import each_order

        @each_order
        def test_breaks_in_one_order(lazypatch_scenario, order):
            lazypatch_scenario(
                instrument="seen = ('trace' in globals(), 'app' in globals())",
                imports="from opentelemetry import trace",
                setup="app = object()",
                exercise='''
                    trace.get_tracer("t").start_span("ok").end()
                    assert seen != (True, False), "broken in this order"
                ''',
                order=order,
            )
        """
    )
    result = pytester.runpytest("-k", "after_import")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(
        [
            "E *ScenarioError: scenario failed in order 'after_import', section 'exercise': "
            "AssertionError: broken in this order",
            'E *assert seen != (True, False), "broken in this order"',
            "before_import | after_import (this test)  | after_setup",
            "*",
            "ok INTERNAL   | ScenarioError in exercise | ok INTERNAL",
            "              | ok INTERNAL               |",
        ]
    )


def test_each_order_is_a_parametrize_marker_over_the_orders(pytester):
    assert each_order.name == "parametrize"
    assert each_order.args == ("order", ORDERS)
    pytester.makepyfile(
        """
        from lazypatch.testing import each_order

        @each_order
        def test_order(order):
            pass
        """
    )
    result = pytester.runpytest("--collect-only", "-q")
    result.stdout.fnmatch_lines([f"*test_order[[]{order}[]]" for order in ORDERS])


# The contract of run_scenario once more, through the fixture in a pytest run of its own.
TEST_CONTRACT = """
    import os, sys

    import pytest
    from lazypatch.testing import ORDERS, ScenarioError, SpanRecord, each_order, run_scenario

    SEQUENCES = {
        "before_import": ["instrument", "imports", "setup", "exercise"],
        "after_import": ["imports", "instrument", "setup", "exercise"],
        "after_setup": ["imports", "setup", "instrument", "exercise"],
    }
    MARK = "trail = globals().get('trail', []); trail.append({!r})"


    def test_the_fixture_is_run_scenario(lazypatch_scenario):
        assert lazypatch_scenario is run_scenario


    @each_order
    def test_orders_namespace_uninstrument_and_result(lazypatch_scenario, order):
        scenario = lazypatch_scenario(
            instrument=MARK.format("instrument"),
            imports=MARK.format("imports"),
            setup=MARK.format("setup"),
            exercise='''
                trail.append("exercise")
                import sys
                from opentelemetry import trace
                trace.get_tracer("t").start_span(f"exercise {len(trail)}").end()
                result = (list(trail), sys.executable)
            ''',
            uninstrument="trail.append('uninstrument')",
            order=order,
        )
        assert scenario.result == [SEQUENCES[order], sys.executable]
        assert [s.name for s in scenario.spans] == ["exercise 4"]
        assert [s.name for s in scenario.after_uninstrument] == ["exercise 6"]


    def test_records_output_and_env(lazypatch_scenario):
        scenario = lazypatch_scenario(
            instrument="",
            imports="import os, sys\\nfrom opentelemetry import trace",
            exercise='''
                with trace.get_tracer("t").start_as_current_span("outer", kind=trace.SpanKind.SERVER):
                    trace.get_tracer("t").start_span("inner", attributes={"a": (1, 2)}).end()
                print("out"); print("err", file=sys.stderr)
                result = os.environ["SCENARIO"]
            ''',
            env={"SCENARIO": "yes"},
        )
        inner, outer = scenario.spans
        assert isinstance(inner, SpanRecord) and inner.parent_id == outer.span_id
        assert (inner.kind, outer.kind, inner.attributes, outer.status) == (
            "INTERNAL", "SERVER", {"a": [1, 2]}, "UNSET")
        assert (scenario.stdout, scenario.stderr, scenario.result) == ("out\\n", "err\\n", "yes")


    @pytest.mark.parametrize("setup, problem", [
        ("raise KeyError('k')", "KeyError"),
        ("import os; os._exit(4)", "exited with code 4"),
        ("import time; time.sleep(30)", "timeout of 1 s"),
    ])
    def test_failures(lazypatch_scenario, setup, problem):
        with pytest.raises(ScenarioError, match=problem) as info:
            lazypatch_scenario(instrument="", imports="", setup=setup, exercise="",
                               order="after_setup", timeout=1)
        assert isinstance(info.value, AssertionError)
        assert (info.value.order, info.value.section) == ("after_setup", "setup")
        assert "order 'after_setup', section 'setup'" in str(info.value)


    def test_an_unknown_order(lazypatch_scenario):
        with pytest.raises(ValueError):
            lazypatch_scenario(instrument="", imports="", exercise="", order="sideways")
"""


def test_the_contract_through_the_fixture(pytester):
    pytester.makepyfile(test_contract=TEST_CONTRACT)
    pytester.runpytest().assert_outcomes(passed=9)


def test_loading_the_plugin_imports_neither_opentelemetry_nor_auto(pytester):
    """In a pytest process of its own: the plugin is loaded through its entry point, a scenario
    runs, and the process still holds no OpenTelemetry module and no ``lazypatch.auto``."""
    pytester.makepyfile(
        """
        import sys

        def foreign():
            return [m for m in sys.modules
                    if m == "lazypatch.auto" or m.split(".")[0] == "opentelemetry"]

        def test_nothing_loaded(request, lazypatch_scenario):
            assert request.config.pluginmanager.has_plugin("lazypatch")
            assert "lazypatch.testing._plugin" in sys.modules
            assert foreign() == []
            scenario = lazypatch_scenario(
                instrument="",
                imports="from opentelemetry import trace",
                exercise="trace.get_tracer('t').start_span('s').end()",
            )
            assert [s.name for s in scenario.spans] == ["s"]
            assert foreign() == []
        """
    )
    pytester.runpytest_subprocess("-p", "no:cacheprovider").assert_outcomes(passed=1)


def test_the_plugin_is_named_lazypatch(pytester):
    pytester.makepyfile("def test_fixture(lazypatch_scenario):\n    pass\n")
    result = pytester.runpytest("-p", "no:lazypatch")
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(["*fixture 'lazypatch_scenario' not found*"])


def test_run_scenario_is_what_the_plugin_hands_out():
    assert run_scenario.__module__ == "lazypatch.testing._runner"
