"""Tracing: the SDK is set up at the first span, from the environment, and never over the app's."""

import json
from importlib.metadata import version

from preludes import LOG_RECORDS

FIRST_SPAN = """
import sys, threading
import lazypatch.auto
from opentelemetry import trace
tracer = trace.get_tracer("test")
assert "opentelemetry.sdk" not in sys.modules, "SDK imported before the first span"
threads = threading.active_count()
with tracer.start_as_current_span("first") as span:
    span.set_attribute("n", 1)
found = {
    "sdk": "opentelemetry.sdk.trace" in sys.modules,
    "provider": type(trace.get_tracer_provider()).__module__,
}
"""
SDK_SET_UP = """
assert found == {"sdk": True, "provider": "opentelemetry.sdk.trace"}, found
"""


def spans_in(stdout):
    """Span names in console-exporter output (one JSON object per span)."""
    decoder, spans, text = json.JSONDecoder(), [], stdout
    start = text.find("{")
    while start != -1:
        obj, end = decoder.raw_decode(text, start)
        spans.append(obj)
        start = text.find("{", end)
    return spans


def test_sdk_is_set_up_at_the_first_span_and_flushed_at_exit(pyrun):
    proc = pyrun(
        FIRST_SPAN + SDK_SET_UP,
        env={
            "OTEL_TRACES_EXPORTER": "console",
            "OTEL_SERVICE_NAME": "shop",
            "OTEL_RESOURCE_ATTRIBUTES": "team=payments",
        },
    )
    (span,) = spans_in(proc.stdout)
    assert span["name"] == "first"
    assert span["resource"]["attributes"]["service.name"] == "shop"
    assert span["resource"]["attributes"]["team"] == "payments"
    assert span["resource"]["attributes"]["telemetry.distro.name"] == "lazypatch"
    assert span["resource"]["attributes"]["telemetry.distro.version"] == version("lazypatch")


def test_nothing_is_set_up_without_a_span(pyrun):
    proc = pyrun(
        """
        import sys, atexit
        import lazypatch.auto
        from opentelemetry import trace
        trace.get_tracer("test")
        def at_exit():
            sdk = sorted(m for m in sys.modules if m.startswith("opentelemetry.sdk"))
            assert sdk == [], sdk
            print("checked at exit")
        atexit.register(at_exit)
        """,
        env={"OTEL_TRACES_EXPORTER": "console"},
    )
    assert proc.stdout == "checked at exit\n", proc.stderr  # and no span printed


def test_a_provider_set_by_the_application_before_the_first_span_wins(pyrun):
    proc = pyrun(
        """
        import lazypatch.auto
        from opentelemetry import trace
        early = trace.get_tracer("early")
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import SimpleSpanProcessor
        from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
        exporter = InMemorySpanExporter()
        mine = TracerProvider()
        mine.add_span_processor(SimpleSpanProcessor(exporter))
        trace.set_tracer_provider(mine)
        with early.start_as_current_span("a"):
            pass
        with trace.get_tracer("late").start_as_current_span("b"):
            pass
        assert trace.get_tracer_provider() is mine, trace.get_tracer_provider()
        names = [s.name for s in exporter.get_finished_spans()]
        assert names == ["a", "b"], names
        """,
        env={"OTEL_TRACES_EXPORTER": "console"},
    )
    assert spans_in(proc.stdout) == []
    assert "Overriding" not in proc.stderr


def test_exporter_none_and_sampler_and_sdk_disabled(pyrun):
    none = pyrun(FIRST_SPAN + SDK_SET_UP, env={"OTEL_TRACES_EXPORTER": "none"})
    assert none.stdout == ""
    off = pyrun(
        FIRST_SPAN, env={"OTEL_TRACES_EXPORTER": "console", "OTEL_TRACES_SAMPLER": "always_off"}
    )
    assert spans_in(off.stdout) == []
    disabled = pyrun(
        FIRST_SPAN + 'assert found["provider"] == "opentelemetry.trace", found\n',
        env={"OTEL_TRACES_EXPORTER": "console", "OTEL_SDK_DISABLED": "true"},
    )
    assert spans_in(disabled.stdout) == []


def test_default_without_otlp_exporter_warns_once_that_spans_are_dropped(pyrun):
    proc = pyrun(
        """
        import lazypatch.auto, lazypatch._tracing as tracing
        tracing._exporter_class = lambda name, group=None: None
        from opentelemetry import trace
        for name in ("a", "b"):
            with trace.get_tracer("t").start_as_current_span(name):
                pass
        """,
        env={"OTEL_TRACES_EXPORTER": None},
    )
    warnings = [line for line in proc.stderr.splitlines() if "dropped" in line]
    assert len(warnings) == 1
    assert "lazypatch[otlp]" in warnings[0]


def test_unknown_exporter_warns_and_others_still_export(pyrun):
    proc = pyrun(FIRST_SPAN, env={"OTEL_TRACES_EXPORTER": "nosuch,console"})
    assert "nosuch" in proc.stderr
    assert [s["name"] for s in spans_in(proc.stdout)] == ["first"]


def test_a_set_up_refused_by_the_sdk_says_why_in_its_one_message(pyfacts):
    """The SDK refuses an invalid value of one of its own variables by raising: the one ERROR
    record names the variable and the value, and the application goes on without spans."""
    found = pyfacts(
        LOG_RECORDS
        + FIRST_SPAN
        + "report(found=found, errors=[r.getMessage() for r in logged.records"
        " if r.levelname == 'ERROR'])\n",
        env={"OTEL_ATTRIBUTE_VALUE_LENGTH_LIMIT": "x", "OTEL_TRACES_EXPORTER": "console"},
    )
    (message,) = found["errors"]
    assert "OTEL_ATTRIBUTE_VALUE_LENGTH_LIMIT" in message and "x" in message.split("LIMIT", 1)[1]
    assert found["found"]["provider"] == "opentelemetry.trace"
