"""Fixtures of the instrumentation tests: an SDK collecting spans in memory, instrumentors
switched on for one test, a loopback echo server."""

import pytest
from instr_support import echo_app, serve
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

import lazypatch.instrumentation


@pytest.fixture
def exporter():
    return InMemorySpanExporter()


@pytest.fixture
def provider(exporter):
    tracer_provider = TracerProvider()
    tracer_provider.add_span_processor(SimpleSpanProcessor(exporter))
    return tracer_provider


@pytest.fixture(autouse=True)
def _report_again(monkeypatch):
    """Each test sees the first failure report of each instrumentation."""
    monkeypatch.setattr(lazypatch.instrumentation, "_reported", set())


@pytest.fixture
def instrument(provider):
    """``instrument(SomeInstrumentor, **kwargs)``: switched on for this test, off after it."""
    used = []

    def switch_on(cls, **kwargs):
        instrumentor = cls()
        kwargs.setdefault("tracer_provider", provider)
        instrumentor.instrument(**kwargs)
        assert instrumentor.state == "active", instrumentor.reason
        used.append(instrumentor)
        return instrumentor

    yield switch_on
    for instrumentor in reversed(used):
        instrumentor.uninstrument()


@pytest.fixture
def echo_url():
    with serve(echo_app) as url:
        yield url
