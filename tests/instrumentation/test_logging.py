"""logging: trace ids on every LogRecord, whatever logger or record factory made it."""

import logging

import pytest
from instr_support import SPANHELP, script
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider

from lazypatch.instrumentation.logging import LoggingInstrumentor

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


def test_before_import_in_a_fresh_interpreter(pyrun):
    code = script(
        """
        import sys
        from lazypatch.instrumentation.logging import LoggingInstrumentor
        assert "logging" not in sys.modules, "logging imported too early"
        LoggingInstrumentor().instrument()
        import logging
        import spanhelp
        logging.basicConfig(format="%(otelTraceID)s-%(otelSpanID)s-%(message)s")
        with spanhelp.provider.get_tracer("t").start_as_current_span("s") as span:
            logging.getLogger("app").warning("hello")
        ctx = span.get_span_context()
        print(f"EXPECTED {ctx.trace_id:032x}-{ctx.span_id:016x}-hello")
        """
    )
    proc = pyrun(code, files={"spanhelp.py": SPANHELP})
    expected = proc.stdout.split("EXPECTED ")[1].strip()
    assert proc.stderr.strip() == expected
