"""logging: trace ids on every LogRecord, whatever logger or record factory made it."""

import logging

import pytest
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider

from lazypatch.instrumentation.logging import LoggingInstrumentor
from lazypatch.testing import each_order

FIELDS = ("otelTraceID", "otelSpanID", "otelTraceSampled", "otelServiceName")


@pytest.fixture
def provider(exporter):
    return TracerProvider(resource=Resource.create({"service.name": "shop"}))


class Keep(logging.Handler):
    def __init__(self):
        super().__init__()
        self.records = []

    def emit(self, record):
        self.records.append(record)


@pytest.fixture
def kept():
    handler = Keep()
    logger = logging.getLogger("tests.made.before")
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    yield logger, handler.records
    logger.removeHandler(handler)


def test_records_inside_and_outside_spans(instrument, provider, kept):
    logger, records = kept
    instrument(LoggingInstrumentor)
    with provider.get_tracer("t").start_as_current_span("work") as span:
        logger.info("inside")
    logger.info("outside")
    inside, outside = records
    ctx = span.get_span_context()
    assert (inside.otelTraceID, inside.otelSpanID) == (
        f"{ctx.trace_id:032x}",
        f"{ctx.span_id:016x}",
    )
    assert inside.otelTraceSampled is True
    assert inside.otelServiceName == "shop"
    assert (outside.otelTraceID, outside.otelSpanID, outside.otelTraceSampled) == ("0", "0", False)
    formatted = logging.Formatter("%(otelTraceID)s %(otelSpanID)s %(message)s").format(inside)
    assert formatted == f"{ctx.trace_id:032x} {ctx.span_id:016x} inside"


def test_custom_record_factory_installed_before(instrument, provider, kept):
    logger, records = kept
    default = logging.getLogRecordFactory()

    class MyRecord(logging.LogRecord):
        pass

    logging.setLogRecordFactory(MyRecord)
    try:
        instrument(LoggingInstrumentor)
        with provider.get_tracer("t").start_as_current_span("work"):
            logger.warning("x")
    finally:
        logging.setLogRecordFactory(default)
    (record,) = records
    assert type(record) is MyRecord and record.otelSpanID != "0"


def test_uninstrument_restores_exactly(instrument, provider, kept):
    logger, records = kept
    original = logging.LogRecord.__dict__["__init__"]
    factory = logging.getLogRecordFactory()
    instrument(LoggingInstrumentor).uninstrument()
    assert logging.LogRecord.__dict__["__init__"] is original
    assert logging.getLogRecordFactory() is factory
    with provider.get_tracer("t").start_as_current_span("work"):
        logger.info("x")
    assert not set(FIELDS) & set(vars(records[0]))


@each_order
def test_order_matrix(lazypatch_scenario, order):
    """A logger and handler made before: records get the span's ids in every order, then not;
    importing the instrumentation imports no ``logging``."""
    scenario = lazypatch_scenario(
        instrument="""
            import sys
            before = "logging" in sys.modules
            from lazypatch.instrumentation.logging import LoggingInstrumentor
            LoggingInstrumentor().instrument()
            imported_logging, instrumented = not before and "logging" in sys.modules, True
        """,
        imports="import logging",
        setup="""
            records = []
            handler = logging.Handler()
            handler.emit = records.append
            logging.getLogger("app").addHandler(handler)
        """,
        exercise="""
            from opentelemetry import trace
            with trace.get_tracer("t").start_as_current_span("work"):
                logging.getLogger("app").warning("hello")
            record = records.pop()
            assert hasattr(record, "otelSpanID") is instrumented
            if instrumented:
                line = logging.Formatter("%(otelTraceID)s-%(otelSpanID)s-%(message)s").format(record)
                result = [imported_logging, line]
        """,
        uninstrument="LoggingInstrumentor().uninstrument()\ninstrumented = False",
        order=order,
    )
    (work,) = scenario.spans
    assert scenario.result == [False, f"{work.trace_id:032x}-{work.span_id:016x}-hello"]
    assert [s.name for s in scenario.after_uninstrument] == ["work"]
