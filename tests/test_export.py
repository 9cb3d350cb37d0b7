"""TreeExporter on real SDK spans: trees, completeness, layout limits, colour, and selection."""

import io
import logging
import re
import threading
import unicodedata

import pytest
from fresh import run_python
from opentelemetry import trace
from opentelemetry.propagate import extract, inject
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import (
    BatchSpanProcessor,
    SimpleSpanProcessor,
    SpanExportResult,
)
from opentelemetry.sdk.trace.id_generator import IdGenerator
from opentelemetry.trace import SpanKind, Status, StatusCode

from lazypatch.export import TreeExporter

MS = 1_000_000
T0 = 1_700_000_000_000_000_000
ANSI = re.compile("\x1b\\[")
TRACEPARENT = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"


class CountingIds(IdGenerator):
    """Trace ids 0x…a1, 0x…a2, …; span ids 1, 2, 3…: output that can be compared whole."""

    def __init__(self):
        self.traces = 0xA0
        self.spans = 0

    def generate_trace_id(self):
        self.traces += 1
        return self.traces

    def generate_span_id(self):
        self.spans += 1
        return self.spans


class Tty(io.StringIO):
    def isatty(self):
        return True


def tracer_for(exporter, service="shop", ids=None):
    provider = TracerProvider(
        resource=Resource.create({"service.name": service}), id_generator=ids or CountingIds()
    )
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    return provider.get_tracer("test"), provider


def child_of(span):
    return trace.set_span_in_context(span)


def shop_trace(tracer, at=T0):
    """A server span with a query and an outbound call, at fixed times (no clock involved)."""
    root = tracer.start_span(
        "GET /orders/<int:id>",
        kind=SpanKind.SERVER,
        start_time=at,
        attributes={
            "http.request.method": "GET",
            "http.route": "/orders/<int:id>",
            "url.full": "http://127.0.0.1:5000/orders/7",
            "http.response.status_code": 200,
        },
    )
    query = tracer.start_span(
        "SELECT",
        context=child_of(root),
        kind=SpanKind.CLIENT,
        start_time=at + 1 * MS,
        attributes={
            "db.system.name": "sqlite",
            "db.operation.name": "SELECT",
            "db.query.text": "SELECT id,\n  total FROM orders WHERE id = ?",
        },
    )
    query.end(end_time=at + 2 * MS)
    call = tracer.start_span(
        "GET",
        context=child_of(root),
        kind=SpanKind.CLIENT,
        start_time=at + 5 * MS,
        attributes={
            "http.request.method": "GET",
            "url.full": "http://127.0.0.1:5001/stock/7",
            "http.response.status_code": 200,
        },
    )
    render = tracer.start_span(
        "render", context=child_of(call), start_time=at + 6 * MS, attributes={"x": 1}
    )
    render.end(end_time=at + 7 * MS)
    call.end(end_time=at + 10 * MS)
    return root


def test_nested_spans_print_as_a_tree_with_durations_bars_and_key_attributes():
    out = io.StringIO()
    tracer, _ = tracer_for(TreeExporter(out=out))
    root = shop_trace(tracer)
    assert out.getvalue() == ""
    root.end(end_time=T0 + 20 * MS)
    assert out.getvalue() == (
        "trace 000000000000000000000000000000a1  4 spans  20.0 ms\n"
        "GET /orders/<int:id> server shop                    20.0 ms ████████████████████\n"
        "│  url=http://127.0.0.1:5000/orders/7  status=200\n"
        "├─ SELECT client                                    1.00 ms  █\n"
        "│     db=sqlite  op=SELECT  query=SELECT id, total FROM orders WHERE id = ?\n"
        "└─ GET client                                       5.00 ms      █████\n"
        "   │  url=http://127.0.0.1:5001/stock/7  status=200\n"
        "   └─ render internal                               1.00 ms       █\n"
        "\n"
    )


def test_children_are_ordered_by_start_time_not_by_end_time():
    out = io.StringIO()
    tracer, _ = tracer_for(TreeExporter(out=out))
    root = tracer.start_span("root", start_time=T0)
    late = tracer.start_span("started-second", context=child_of(root), start_time=T0 + 2 * MS)
    early = tracer.start_span("started-first", context=child_of(root), start_time=T0 + 1 * MS)
    late.end(end_time=T0 + 3 * MS)
    early.end(end_time=T0 + 4 * MS)
    root.end(end_time=T0 + 5 * MS)
    text = out.getvalue()
    assert "├─ started-first" in text and "└─ started-second" in text
    assert text.index("started-first") < text.index("started-second")


def test_interleaved_traces_are_printed_apart_each_when_its_root_ends():
    out = io.StringIO()
    tracer, _ = tracer_for(TreeExporter(out=out))
    first = tracer.start_span("first-root", start_time=T0)
    second = tracer.start_span("second-root", start_time=T0 + 1 * MS)
    for n in range(2):
        tracer.start_span(f"first-child-{n}", context=child_of(first)).end()
        tracer.start_span(f"second-child-{n}", context=child_of(second)).end()
    second.end()
    assert "first" not in out.getvalue()
    first.end()
    blocks = out.getvalue().split("\n\n")
    assert blocks[-1] == ""
    second_tree, first_tree = blocks[:-1]
    assert second_tree.startswith("trace 000000000000000000000000000000a2  3 spans")
    assert first_tree.startswith("trace 000000000000000000000000000000a1  3 spans")
    assert "first" not in second_tree
    assert "second" not in first_tree
    assert "└─ first-child-1" in first_tree


def test_an_error_span_is_marked_with_its_reason():
    out = io.StringIO()
    tracer, _ = tracer_for(TreeExporter(out=out))
    with tracer.start_as_current_span("checkout"):
        with pytest.raises(ValueError):
            with tracer.start_as_current_span("charge", kind=SpanKind.CLIENT):
                raise ValueError("card declined")
        failed = tracer.start_span("refund")
        failed.set_status(Status(StatusCode.ERROR))
        failed.set_attribute("error.type", "TimeoutError")
        failed.end()
    lines = out.getvalue().splitlines()
    charge = next(i for i, line in enumerate(lines) if "charge" in line)
    assert lines[charge].startswith("├─ charge client ERROR ")
    assert lines[charge + 1].strip("│ ") == "error=ValueError: card declined"
    refund = next(i for i, line in enumerate(lines) if "refund" in line)
    assert lines[refund].startswith("└─ refund internal ERROR ")
    assert lines[refund + 1].strip() == "error=TimeoutError"
    checkout = next(line for line in lines if "checkout" in line)
    assert "ERROR" not in checkout


def test_a_trace_continued_from_a_remote_parent_is_printed_when_its_local_root_ends():
    out = io.StringIO()
    tracer, _ = tracer_for(TreeExporter(out=out))
    context = extract({"traceparent": TRACEPARENT})
    server = tracer.start_span("GET /stock", context=context, kind=SpanKind.SERVER)
    tracer.start_span("lookup", context=child_of(server)).end()
    server.end()
    lines = out.getvalue().splitlines()
    assert lines[0].startswith("trace 4bf92f3577b34da6a3ce929d0e0e4736  2 spans ")
    assert lines[1].startswith("GET /stock server shop ")
    assert lines[2] == "│  remote_parent=00f067aa0ba902b7"
    assert lines[3].startswith("└─ lookup internal ")
    assert "incomplete" not in lines[0]


def test_a_remote_root_inside_an_open_local_trace_waits_and_nests_under_its_caller():
    """Both services in one process: the callee's server span must not be printed alone."""
    out = io.StringIO()
    tracer, _ = tracer_for(TreeExporter(out=out))
    front = tracer.start_span("GET /checkout", kind=SpanKind.SERVER)
    tracer.start_span("SELECT", context=child_of(front), kind=SpanKind.CLIENT).end()
    call = tracer.start_span("GET", context=child_of(front), kind=SpanKind.CLIENT)
    headers = {}
    inject(headers, context=child_of(call))
    tracer.start_span("GET /stock", context=extract(headers), kind=SpanKind.SERVER).end()
    assert out.getvalue() == ""
    call.end()
    front.end()
    lines = out.getvalue().splitlines()
    assert lines[0].startswith("trace 000000000000000000000000000000a1  4 spans ")
    assert lines[1].startswith("GET /checkout server shop ")
    assert lines[2].startswith("├─ SELECT client ")
    assert lines[3].startswith("└─ GET client ")
    assert lines[4].startswith("   └─ GET /stock server ")
    assert "remote_parent" not in out.getvalue()


def test_spans_whose_root_never_ends_are_printed_as_orphans_at_force_flush_and_shutdown():
    out = io.StringIO()
    exporter = TreeExporter(out=out)
    tracer, provider = tracer_for(exporter)
    never_ends = tracer.start_span("request")
    tracer.start_span("orphan", context=child_of(never_ends)).end()
    assert out.getvalue() == ""
    assert exporter.force_flush() is True
    lines = out.getvalue().splitlines()
    assert lines[0].endswith("incomplete")
    assert lines[1].startswith("orphan internal shop ")
    assert lines[2] == f"   missing_parent={never_ends.get_span_context().span_id:016x}"
    assert exporter.force_flush() is True
    assert len(out.getvalue().splitlines()) == 4

    tracer.start_span("second orphan", context=child_of(never_ends)).end()
    provider.shutdown()
    assert "second orphan internal shop" in out.getvalue()


def test_buffered_spans_beyond_the_limit_are_printed_oldest_trace_first():
    out = io.StringIO()
    tracer, _ = tracer_for(TreeExporter(out=out, max_buffered_spans=3))
    open_root = tracer.start_span("stuck")
    for n in range(3):
        tracer.start_span(f"child-{n}", context=child_of(open_root)).end()
    assert out.getvalue() == ""
    tracer.start_span("unrelated", context=child_of(tracer.start_span("other"))).end()
    text = out.getvalue()
    assert text.startswith("trace 000000000000000000000000000000a1  3 spans ")
    assert "unrelated" not in text


def display_width(line):
    return sum(2 if unicodedata.east_asian_width(c) in "WF" else 1 for c in line)


@pytest.mark.parametrize("width", [None, 60, 40])
def test_long_names_and_attributes_are_cut_to_the_width(width):
    out = io.StringIO()
    tracer, _ = tracer_for(TreeExporter(out=out, width=width), service="s" * 90)
    limit = width or 80
    parent = root = tracer.start_span(
        "GET /" + "very-long-path-segment/" * 10,
        attributes={
            "url.full": "http://example.com/" + "q" * 200,
            "db.query.text": "SELECT " + ", ".join(f"column_{n}" for n in range(60)),
            "http.response.status_code": 200,
        },
    )
    nested = []
    for depth in range(12):
        parent = tracer.start_span(f"level-{depth}-" + "名前" * 30, context=child_of(parent))
        nested.append(parent)
    for span in reversed(nested):
        span.end()
    root.end()
    lines = out.getvalue().splitlines()
    assert len(lines) > 14
    assert all(display_width(line) <= limit for line in lines), [
        (display_width(line), line) for line in lines if display_width(line) > limit
    ]
    assert sum("…" in line for line in lines) >= 13
    assert any(line.endswith("status=200") for line in lines)
    assert any("query=SELECT column_0" in line for line in lines)


def test_a_very_deep_trace_does_not_hit_the_recursion_limit():
    out = io.StringIO()
    tracer, _ = tracer_for(TreeExporter(out=out))
    spans = [tracer.start_span("root")]
    for _ in range(1500):
        spans.append(
            tracer.start_span(
                "deeper", context=child_of(spans[-1]), attributes={"db.system.name": "sqlite"}
            )
        )
    for span in reversed(spans):
        span.end()
    assert out.getvalue().startswith("trace 000000000000000000000000000000a1  1501 spans ")
    assert all(len(line) <= 80 for line in out.getvalue().splitlines())


def one_trace(exporter):
    tracer, _ = tracer_for(exporter)
    with tracer.start_as_current_span("outer"):
        with tracer.start_as_current_span("inner"):
            pass


def test_no_colour_when_the_stream_is_not_a_terminal():
    out = io.StringIO()
    one_trace(TreeExporter(out=out))
    assert "outer" in out.getvalue()
    assert not ANSI.search(out.getvalue())


def test_colour_on_a_terminal_or_when_forced(monkeypatch):
    monkeypatch.delenv("NO_COLOR", raising=False)
    tty, forced = Tty(), io.StringIO()
    one_trace(TreeExporter(out=tty))
    one_trace(TreeExporter(out=forced, color=True))
    for out in (tty, forced):
        assert ANSI.search(out.getvalue())
        assert "\x1b[36mshop\x1b[0m" in out.getvalue()
        plain = re.sub("\x1b\\[[0-9;]*m", "", out.getvalue())
        assert all(len(line) <= 80 for line in plain.splitlines())


def test_no_colour_when_NO_COLOR_is_set_or_colour_is_turned_off(monkeypatch):
    off = Tty()
    one_trace(TreeExporter(out=off, color=False))
    monkeypatch.setenv("NO_COLOR", "1")
    by_convention = Tty()
    one_trace(TreeExporter(out=by_convention))
    for out in (off, by_convention):
        assert "outer" in out.getvalue()
        assert not ANSI.search(out.getvalue())


def test_escape_sequences_in_span_data_never_reach_the_terminal():
    out = io.StringIO()
    tracer, _ = tracer_for(TreeExporter(out=out))
    tracer.start_span("evil\x1b[2J\nname", attributes={"url.full": "http://x/\x1b]0;t\x07"}).end()
    assert "\x1b" not in out.getvalue() and "\x07" not in out.getvalue()
    assert "evil [2J name internal" in out.getvalue()


def test_a_stream_that_cannot_encode_box_drawing_gets_ascii():
    raw = io.BytesIO()
    out = io.TextIOWrapper(raw, encoding="ascii")
    one_trace(TreeExporter(out=out))
    text = raw.getvalue().decode("ascii")
    assert "`- inner internal" in text
    assert "#" in text


def test_default_stream_is_sys_stdout_looked_up_at_print_time(monkeypatch):
    exporter = TreeExporter()
    replaced = io.StringIO()
    monkeypatch.setattr("sys.stdout", replaced)
    one_trace(exporter)
    assert "└─ inner internal" in replaced.getvalue()


def test_a_broken_stream_is_logged_once_and_never_raises_into_the_sdk(caplog):
    class Broken(io.StringIO):
        def write(self, text):
            raise OSError("disk full")

    exporter = TreeExporter(out=Broken())
    tracer, provider = tracer_for(exporter)
    with caplog.at_level(logging.WARNING, logger="lazypatch"):
        for _ in range(3):
            tracer.start_span("lost").end()
        span = tracer.start_span("lost too")
        span.end()
        assert exporter.export([span]) is SpanExportResult.SUCCESS
        assert exporter.force_flush() is True
        provider.shutdown()
    records = [r for r in caplog.records if r.name == "lazypatch"]
    assert len(records) == 1
    assert "disk full" in records[0].exc_text


def test_batch_processor_from_many_threads_prints_every_trace_once():
    out = io.StringIO()
    provider = TracerProvider(resource=Resource.create({"service.name": "shop"}))
    provider.add_span_processor(BatchSpanProcessor(TreeExporter(out=out), max_export_batch_size=7))
    tracer = provider.get_tracer("test")

    def work(worker):
        for n in range(10):
            with tracer.start_as_current_span(f"w{worker}-t{n}"):
                with tracer.start_as_current_span("step"):
                    with tracer.start_as_current_span("leaf"):
                        pass

    threads = [threading.Thread(target=work, args=(w,)) for w in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    provider.shutdown()
    headers = [line for line in out.getvalue().splitlines() if line.startswith("trace ")]
    assert len(headers) == 40
    assert all(" 3 spans " in header and "incomplete" not in header for header in headers)
    roots = sorted(line.split(" ")[0] for line in out.getvalue().splitlines() if "-t" in line)
    assert roots == sorted(f"w{w}-t{n}" for w in range(4) for n in range(10))


SELECTED_BY_SDK = """
import os
from opentelemetry import trace
from opentelemetry.sdk._configuration import _OTelSDKConfigurator, _import_exporters
from lazypatch.export import TreeExporter

exporters, _, _ = _import_exporters(["lazypatch_tree"], [], [])
assert exporters == {"lazypatch_tree": TreeExporter}, exporters
_OTelSDKConfigurator().configure()
tracer = trace.get_tracer("demo")
with tracer.start_as_current_span("parent"):
    with tracer.start_as_current_span("child"):
        pass
"""


def test_OTEL_TRACES_EXPORTER_selects_it_through_the_sdk_entry_points():
    proc = run_python(
        SELECTED_BY_SDK,
        env={
            "OTEL_TRACES_EXPORTER": "lazypatch_tree",
            "OTEL_METRICS_EXPORTER": "none",
            "OTEL_LOGS_EXPORTER": "none",
            "OTEL_SERVICE_NAME": "picked",
            "NO_COLOR": None,
        },
    )
    lines = proc.stdout.splitlines()
    assert lines[0].startswith("trace ") and " 2 spans " in lines[0]
    assert lines[1].startswith("parent internal picked ")
    assert lines[2].startswith("└─ child internal ")
    assert not ANSI.search(proc.stdout)


def test_lazypatch_auto_with_OTEL_TRACES_EXPORTER_prints_the_tree_at_exit():
    proc = run_python(
        """
        import lazypatch.auto
        from opentelemetry import trace
        with trace.get_tracer("demo").start_as_current_span("job"):
            pass
        """,
        env={"OTEL_TRACES_EXPORTER": "lazypatch_tree", "OTEL_SERVICE_NAME": "auto"},
    )
    assert proc.stdout.splitlines()[1].startswith("job internal auto ")
