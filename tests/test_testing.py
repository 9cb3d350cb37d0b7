"""``lazypatch.testing.run_scenario`` itself: every promise of its contract, each checked by
running real scenarios in real child interpreters."""

import os
import sys

import pytest

from lazypatch.testing import ORDERS, Scenario, ScenarioError, SpanRecord, run_scenario

# Each section leaves its name in one list of the shared namespace; exercise returns it.
TRAIL = {
    "instrument": "trail = globals().get('trail', []); trail.append('instrument')",
    "imports": "trail = globals().get('trail', []); trail.append('imports')",
    "setup": "trail.append('setup')",
    "exercise": "trail.append('exercise'); result = list(trail)",
    "uninstrument": "trail.append('uninstrument')",
}

# A library, and a patch on it that makes a span per call: the smallest real instrumentation.
GREETER = "def greet(name):\n    return 'hello ' + name\n"
INSTRUMENT = """
    import lazypatch
    from opentelemetry import trace

    def traced(wrapped, instance, args, kwargs):
        with trace.get_tracer("greeter").start_as_current_span("greet") as span:
            span.set_attribute("greeter.name", args[0])
            return wrapped(*args, **kwargs)

    patch = lazypatch.wrap("greeter", "greet", traced)
"""


@pytest.fixture
def greeter(tmp_path, monkeypatch):
    """``greeter`` importable from the caller's sys.path (so from the child's)."""
    (tmp_path / "greeter.py").write_text(GREETER)
    monkeypatch.syspath_prepend(str(tmp_path))


def test_the_three_orders():
    assert ORDERS == ("before_import", "after_import", "after_setup")


@pytest.mark.parametrize(
    ("order", "expected"),
    [
        ("before_import", ["instrument", "imports", "setup", "exercise"]),
        ("after_import", ["imports", "instrument", "setup", "exercise"]),
        ("after_setup", ["imports", "setup", "instrument", "exercise"]),
    ],
)
def test_each_order_runs_the_sections_in_its_order_in_one_namespace(order, expected):
    indented = {name: "\n        " + code + "\n    " for name, code in TRAIL.items()}
    scenario = run_scenario(**indented, order=order)
    assert scenario.result == expected
    assert isinstance(scenario, Scenario)


def test_the_default_order_is_before_import():
    scenario = run_scenario(**{name: TRAIL[name] for name in ("instrument", "imports", "exercise")})
    assert scenario.result == ["instrument", "imports", "exercise"]


def test_uninstrument_then_exercise_again(greeter):
    scenario = run_scenario(
        instrument=INSTRUMENT,
        imports="import greeter",
        exercise="""
            runs = globals().get("runs", 0) + 1
            print("run", runs, "patch", patch.state)
            with trace.get_tracer("test").start_as_current_span(f"run {runs}"):
                result = [runs, greeter.greet("ann")]
        """,
        uninstrument="patch.remove()",
        order="after_import",
    )
    assert scenario.stdout == "run 1 patch applied\nrun 2 patch removed\n"
    assert scenario.result == [1, "hello ann"]  # the value after the first run
    greet, run = scenario.spans
    assert (greet.name, greet.attributes, run.name) == ("greet", {"greeter.name": "ann"}, "run 1")
    assert [s.name for s in scenario.after_uninstrument] == ["run 2"]


def test_without_uninstrument_nothing_runs_after_exercise(greeter):
    scenario = run_scenario(
        instrument=INSTRUMENT, imports="import greeter", exercise="greeter.greet('bo')"
    )
    assert [s.name for s in scenario.spans] == ["greet"]
    assert scenario.after_uninstrument == [] and scenario.result is None


def test_the_child_is_this_interpreter_with_this_sys_path(greeter):
    scenario = run_scenario(
        instrument="",
        imports="import sys, greeter",
        exercise="result = [sys.executable, sys.path, greeter.__file__]",
    )
    executable, path, greeter_file = scenario.result
    assert executable == sys.executable
    assert path == sys.path
    assert os.path.dirname(greeter_file) == sys.path[0]


def test_the_global_provider_is_the_sdks_and_exports_synchronously():
    scenario = run_scenario(
        instrument="""
            from opentelemetry import trace
            provider = trace.get_tracer_provider()
        """,
        imports="",
        exercise="""
            trace.get_tracer("t").start_span("ended in exercise").end()
            result = [type(provider).__module__, type(provider).__name__,
                      trace.get_tracer_provider() is provider]
        """,
        order="before_import",
    )
    assert scenario.result == ["opentelemetry.sdk.trace", "TracerProvider", True]
    assert [s.name for s in scenario.spans] == ["ended in exercise"]


def test_nothing_is_imported_before_a_section_needs_it():
    """The provider is set as ``opentelemetry.trace`` loads: "before_import" is true even for
    the modules OpenTelemetry imports itself, such as logging."""
    scenario = run_scenario(
        instrument="""
            import sys
            early = [m for m in ("logging", "json", "opentelemetry.trace") if m in sys.modules]
        """,
        imports="import logging",
        exercise="""
            from opentelemetry import trace
            trace.get_tracer("t").start_span("s").end()
            result = early
        """,
    )
    assert scenario.result == []
    assert [s.name for s in scenario.spans] == ["s"]


def test_env_is_added_and_the_callers_otel_and_lazypatch_variables_are_not(monkeypatch):
    monkeypatch.setenv("OTEL_SDK_DISABLED", "true")
    monkeypatch.setenv("OTEL_TRACES_SAMPLER", "always_off")
    monkeypatch.setenv("LAZYPATCH_STRICT", "1")
    monkeypatch.setenv("SCENARIO_INHERITED", "yes")
    scenario = run_scenario(
        instrument="",
        imports="import os",
        exercise="""
            from opentelemetry import trace
            trace.get_tracer("t").start_span("s").end()
            names = ("OTEL_SDK_DISABLED", "OTEL_TRACES_SAMPLER", "LAZYPATCH_STRICT",
                     "SCENARIO_INHERITED", "OTEL_SERVICE_NAME")
            result = {name: os.environ.get(name) for name in names}
        """,
        env={"OTEL_SERVICE_NAME": "shop"},
    )
    assert scenario.result == {
        "OTEL_SDK_DISABLED": None,
        "OTEL_TRACES_SAMPLER": None,
        "LAZYPATCH_STRICT": None,
        "SCENARIO_INHERITED": "yes",
        "OTEL_SERVICE_NAME": "shop",
    }
    assert [s.name for s in scenario.spans] == ["s"]


@pytest.mark.parametrize(
    ("code", "expected"),
    [
        ("result = {'pair': (1, 2), 3: None, 'f': 1.5}", {"pair": [1, 2], "3": None, "f": 1.5}),
        ("x = 1", None),
    ],
)
def test_result_comes_back_through_json(code, expected):
    assert run_scenario(instrument="", imports="", exercise=code).result == expected


def test_a_result_that_json_cannot_carry_is_an_error():
    with pytest.raises(ScenarioError, match="`result` cannot go through JSON") as info:
        run_scenario(instrument="", imports="", exercise="result = object()")
    assert info.value.section == "exercise"


def test_spans_are_plain_records_in_the_order_they_ended():
    scenario = run_scenario(
        instrument="",
        imports="from opentelemetry import trace\nfrom opentelemetry.trace import SpanKind, Status, StatusCode",
        exercise="""
            tracer = trace.get_tracer("t")
            with tracer.start_as_current_span("outer", kind=SpanKind.SERVER) as outer:
                with tracer.start_as_current_span("inner", kind=SpanKind.CLIENT,
                                                  attributes={"n": 1, "tags": ("a", "b")}):
                    pass
                outer.set_status(Status(StatusCode.ERROR, "bad"))
            with tracer.start_as_current_span("producer", kind=SpanKind.PRODUCER) as span:
                span.set_status(Status(StatusCode.OK))
            tracer.start_span("consumer", kind=SpanKind.CONSUMER).end()
            tracer.start_span("internal").end()
        """,
    )
    inner, outer, producer, consumer, internal = scenario.spans
    assert all(isinstance(span, SpanRecord) for span in scenario.spans)
    assert [s.kind for s in scenario.spans] == [
        "CLIENT",
        "SERVER",
        "PRODUCER",
        "CONSUMER",
        "INTERNAL",
    ]
    assert [s.status for s in scenario.spans] == ["UNSET", "ERROR", "OK", "UNSET", "UNSET"]
    assert inner.attributes == {"n": 1, "tags": ["a", "b"]} and outer.attributes == {}
    assert inner.parent_id == outer.span_id and inner.trace_id == outer.trace_id
    assert outer.parent_id is None and producer.trace_id != outer.trace_id
    assert all(isinstance(s.trace_id, int) and isinstance(s.span_id, int) for s in scenario.spans)


def test_stdout_stderr_and_the_report_are_kept_apart():
    lines = 'print("section exercise")\nprint("done {}")\n'
    scenario = run_scenario(
        instrument="",
        imports="import os, sys",
        exercise=lines
        + """
            os.write(1, b"fd one\\n")
            print("to stderr", file=sys.stderr)
            from opentelemetry import trace
            trace.get_tracer("t").start_span("s").end()
            result = "ok"
        """.replace("\n            ", "\n"),
    )
    assert scenario.stdout.splitlines() == ["section exercise", "done {}", "fd one"]
    assert scenario.stderr == "to stderr\n"
    assert [s.name for s in scenario.spans] == ["s"] and scenario.result == "ok"


@pytest.mark.parametrize(
    ("section", "order"),
    [("instrument", "after_setup"), ("setup", "before_import"), ("uninstrument", "after_import")],
)
def test_a_raising_section_is_a_scenario_error_naming_order_and_section(section, order):
    sections = {name: "" for name in TRAIL}
    sections["imports"] = "import sys"
    sections["exercise"] = "x = 1"
    sections[section] = """
        print("said on stderr", file=sys.stderr)
        def deep():
            raise LookupError("boom in the section")
        deep()
    """
    with pytest.raises(ScenarioError) as info:
        run_scenario(**sections, order=order)
    error = info.value
    assert isinstance(error, AssertionError)
    assert (error.order, error.section) == (order, section)
    message = str(error)
    assert f"order {order!r}, section {section!r}" in message
    assert 'raise LookupError("boom in the section")' in error.traceback
    assert error.traceback.rstrip().endswith("LookupError: boom in the section")
    assert error.stderr == "said on stderr\n"
    assert error.traceback in message and error.stderr.strip() in message


def test_a_failure_in_the_run_after_uninstrument_says_so():
    with pytest.raises(ScenarioError, match="its run after uninstrument") as info:
        run_scenario(
            instrument="",
            imports="",
            exercise="assert not globals().get('off'), 'second run'",
            uninstrument="off = True",
        )
    assert info.value.section == "exercise"


def test_a_syntax_error_names_its_section():
    with pytest.raises(ScenarioError) as info:
        run_scenario(instrument="", imports="import (", exercise="")
    assert info.value.section == "imports" and "SyntaxError" in info.value.traceback


@pytest.mark.parametrize(
    ("code", "problem"),
    [
        ("os._exit(3)", "exited with code 3"),
        ("sys.exit(0)", "SystemExit"),
    ],
)
def test_a_child_that_exits_is_a_scenario_error(code, problem):
    with pytest.raises(ScenarioError, match=problem) as info:
        run_scenario(
            instrument="",
            imports="import os, sys",
            setup=f"print('before', file=sys.stderr)\n{code}",
            exercise="",
        )
    assert (info.value.order, info.value.section) == ("before_import", "setup")
    assert info.value.stderr == "before\n"


def test_a_child_past_its_timeout_is_a_scenario_error_with_its_traceback():
    with pytest.raises(ScenarioError, match="timeout of 2 s") as info:
        run_scenario(
            instrument="",
            imports="import sys, threading",
            exercise="print('waiting', file=sys.stderr)\nthreading.Event().wait()",
            order="after_import",
            timeout=2,
        )
    assert (info.value.order, info.value.section) == ("after_import", "exercise")
    assert '"<exercise>", line 2' in info.value.traceback
    assert info.value.stderr == "waiting\n" and "waiting" in str(info.value)


def test_an_unknown_order_is_a_value_error():
    with pytest.raises(ValueError, match="before_import, after_import, after_setup"):
        run_scenario(instrument="", imports="", exercise="", order="after_exercise")


def test_the_caller_imports_no_opentelemetry(pyrun):
    proc = pyrun(
        """
        import sys
        from lazypatch.testing import run_scenario
        scenario = run_scenario(
            instrument="",
            imports="from opentelemetry import trace",
            exercise="trace.get_tracer('t').start_span('s').end()",
        )
        assert [s.name for s in scenario.spans] == ["s"]
        loaded = [m for m in sys.modules if m.split(".")[0] in ("opentelemetry", "lazypatch.auto")]
        assert not loaded and "lazypatch.auto" not in sys.modules, loaded
        """
    )
    assert proc.returncode == 0
