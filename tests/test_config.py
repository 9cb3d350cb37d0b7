"""Environment -> settings: parsing, defaults, and one clear warning per invalid value."""

import logging

import pytest
from preludes import LOG_RECORDS

from lazypatch import _config


def load(**environ):
    return _config.load(environ)


def test_defaults():
    settings = load()
    assert settings.disabled == frozenset()
    assert settings.enabled is None
    assert settings.otel_instrumentors is True
    assert settings.log_level is None
    assert settings.traces_exporters is None
    assert settings.metrics_exporters is None
    assert settings.otlp_protocol == "http/protobuf"
    assert settings.metrics_otlp_protocol == "http/protobuf"
    assert settings.sdk_disabled is False
    assert settings.semconv == {"http": "default", "database": "default"}


def test_settings_are_frozen():
    with pytest.raises(AttributeError):
        load().enabled = frozenset({"flask"})


def test_disabled_lists_of_both_variables_are_merged():
    settings = load(
        LAZYPATCH_DISABLED_INSTRUMENTATIONS=" flask , lazypatch:requests",
        OTEL_PYTHON_DISABLED_INSTRUMENTATIONS="urllib3",
    )
    assert settings.disabled == {"flask", "lazypatch:requests", "urllib3"}
    assert settings.exclusion("opentelemetry", "flask")
    assert settings.exclusion("lazypatch", "flask")
    assert settings.exclusion("lazypatch", "requests")
    assert settings.exclusion("opentelemetry", "requests") is None
    assert settings.exclusion("opentelemetry", "urllib3")
    assert settings.exclusion("lazypatch", "sqlite3") is None


def test_star_disables_everything():
    settings = load(OTEL_PYTHON_DISABLED_INSTRUMENTATIONS="*")
    assert settings.exclusion("lazypatch", "flask")
    assert settings.exclusion("opentelemetry", "anything")


@pytest.mark.parametrize(
    "variable", ["LAZYPATCH_DISABLED_INSTRUMENTATIONS", "LAZYPATCH_ENABLED_INSTRUMENTATIONS"]
)
def test_star_means_every_name_alone_or_of_one_source(variable):
    """``*`` is every instrumentation and ``opentelemetry:*`` every one of that source, in both
    lists (the parser accepted them in the enabled list and after a source, and they matched
    nothing: ``LAZYPATCH_ENABLED_INSTRUMENTATIONS=*`` disabled everything, silently)."""
    excluded = variable == "LAZYPATCH_DISABLED_INSTRUMENTATIONS"
    every = load(**{variable: "*"})
    assert all(
        bool(every.exclusion(source, name)) is excluded
        for source in ("lazypatch", "opentelemetry")
        for name in ("flask", "anything")
    )
    theirs = load(**{variable: "opentelemetry:*"})
    assert bool(theirs.exclusion("opentelemetry", "flask")) is excluded
    assert bool(theirs.exclusion("lazypatch", "flask")) is not excluded


def test_enabled_restricts_to_the_names_given():
    settings = load(LAZYPATCH_ENABLED_INSTRUMENTATIONS="requests,opentelemetry:flask")
    assert settings.exclusion("lazypatch", "requests") is None
    assert settings.exclusion("opentelemetry", "requests") is None
    assert settings.exclusion("opentelemetry", "flask") is None
    assert "LAZYPATCH_ENABLED_INSTRUMENTATIONS" in settings.exclusion("lazypatch", "flask")
    assert settings.exclusion("lazypatch", "sqlite3")


def test_disabled_wins_over_enabled():
    settings = load(
        LAZYPATCH_ENABLED_INSTRUMENTATIONS="flask", LAZYPATCH_DISABLED_INSTRUMENTATIONS="flask"
    )
    assert settings.exclusion("lazypatch", "flask")


@pytest.mark.parametrize("value", ["0", "false", "No", " off "])
def test_otel_instrumentors_can_be_turned_off(value):
    settings = load(LAZYPATCH_OTEL_INSTRUMENTORS=value)
    assert settings.otel_instrumentors is False
    assert settings.exclusion("opentelemetry", "flask") == "LAZYPATCH_OTEL_INSTRUMENTORS=0"
    assert settings.exclusion("lazypatch", "flask") is None


@pytest.mark.parametrize(
    ("value", "level"), [("debug", 10), ("INFO", 20), (" warning ", 30), ("5", 5)]
)
def test_log_level(value, level):
    assert load(LAZYPATCH_LOG_LEVEL=value).log_level == level


def test_exporters_and_protocol():
    settings = load(OTEL_TRACES_EXPORTER="Console, otlp", OTEL_EXPORTER_OTLP_PROTOCOL="grpc")
    assert settings.traces_exporters == ("console", "otlp")
    assert settings.otlp_protocol == "grpc"
    assert load(OTEL_EXPORTER_OTLP_TRACES_PROTOCOL="grpc").otlp_protocol == "grpc"


def test_metrics_exporters_and_protocol():
    settings = load(OTEL_METRICS_EXPORTER="none", OTEL_EXPORTER_OTLP_METRICS_PROTOCOL="grpc")
    assert settings.metrics_exporters == ("none",)
    assert settings.metrics_otlp_protocol == "grpc"
    assert settings.otlp_protocol == "http/protobuf"
    assert load(OTEL_EXPORTER_OTLP_PROTOCOL="grpc").metrics_otlp_protocol == "grpc"


@pytest.mark.parametrize(
    ("value", "http", "database"),
    [
        ("http", "http", "default"),
        ("database", "default", "database"),
        (" http/dup , database ", "http/dup", "database"),
        ("http,http/dup,database/dup", "http/dup", "database/dup"),
        ("HTTP/DUP", "http/dup", "default"),
        ("gen_ai_latest_experimental,database/dup", "default", "database/dup"),
        ("", "default", "default"),
    ],
)
def test_semconv_stability_opt_in(caplog, value, http, database):
    with caplog.at_level(logging.WARNING, logger="lazypatch"):
        settings = load(OTEL_SEMCONV_STABILITY_OPT_IN=value)
    assert settings.semconv == {"http": http, "database": database}
    assert not caplog.records


def test_sdk_disabled_follows_the_sdk():
    assert load(OTEL_SDK_DISABLED="TRUE").sdk_disabled is True
    assert load(OTEL_SDK_DISABLED="false").sdk_disabled is False


@pytest.mark.parametrize(
    ("variable", "value", "field", "default"),
    [
        ("LAZYPATCH_LOG_LEVEL", "loud", "log_level", None),
        ("LAZYPATCH_OTEL_INSTRUMENTORS", "maybe", "otel_instrumentors", True),
        ("LAZYPATCH_DISABLED_INSTRUMENTATIONS", "flask;requests", "disabled", frozenset()),
        ("LAZYPATCH_ENABLED_INSTRUMENTATIONS", "nosuch:flask", "enabled", None),
        ("OTEL_PYTHON_DISABLED_INSTRUMENTATIONS", "a b", "disabled", frozenset()),
        ("OTEL_TRACES_EXPORTER", "con sole", "traces_exporters", None),
        ("OTEL_METRICS_EXPORTER", "pro metheus", "metrics_exporters", None),
        (
            "OTEL_SEMCONV_STABILITY_OPT_IN",
            "http/duplicate,database",
            "semconv",
            {"http": "default", "database": "default"},
        ),
        ("OTEL_EXPORTER_OTLP_PROTOCOL", "carrier-pigeon", "otlp_protocol", "http/protobuf"),
        ("OTEL_SDK_DISABLED", "yes please", "sdk_disabled", False),
    ],
)
def test_invalid_value_warns_once_and_the_default_applies(caplog, variable, value, field, default):
    with caplog.at_level(logging.WARNING, logger="lazypatch"):
        settings = load(**{variable: value})
    assert getattr(settings, field) == default
    warnings = [r for r in caplog.records if r.name == "lazypatch"]
    assert len(warnings) == 1
    assert variable in warnings[0].getMessage()
    assert repr(value) in warnings[0].getMessage()


def test_invalid_values_at_startup_warn_without_traceback(pyrun):
    proc = pyrun(
        """
        import lazypatch.auto, sys
        print("started", "lazypatch.auto" in sys.modules)
        """,
        env={"LAZYPATCH_LOG_LEVEL": "loud", "LAZYPATCH_OTEL_INSTRUMENTORS": "perhaps"},
    )
    assert "started True" in proc.stdout
    assert "Traceback" not in proc.stderr
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 2, proc.stderr
    assert sum("LAZYPATCH_LOG_LEVEL='loud'" in line for line in lines) == 1
    assert sum("LAZYPATCH_OTEL_INSTRUMENTORS='perhaps'" in line for line in lines) == 1
    assert all(line.startswith("lazypatch: ") for line in lines)


PROPAGATING_APP = """
import os
import lazypatch.auto
from opentelemetry import baggage, context, propagate, trace
from opentelemetry.sdk.trace import TracerProvider

trace.set_tracer_provider(TracerProvider())
context.attach(baggage.set_baggage("k", "v"))
carrier = {}
with trace.get_tracer("t").start_as_current_span("s"):
    propagate.inject(carrier)
report(
    carrier=sorted(carrier),
    variable=os.environ.get("OTEL_PROPAGATORS"),
    records=[[r.levelname, r.getMessage(), r.exc_info is not None] for r in logged.records],
)
"""


@pytest.mark.parametrize(
    ("value", "carried"),
    [
        ("bogus", ["baggage", "traceparent"]),
        ("tracecontext,bogus", ["baggage", "traceparent"]),
        ("tracecontext,", ["baggage", "traceparent"]),
        ("tracecontext", ["traceparent"]),
        ("none", []),
    ],
)
def test_otel_propagators_naming_no_installed_propagator_warns_and_the_default_applies(
    pyfacts, value, carried
):
    """OpenTelemetry's API refuses to import then (every instrumentation that propagates failed,
    each with its traceback): one warning naming the variable and value, the default
    propagators, the variable left as the application set it."""
    found = pyfacts(LOG_RECORDS + PROPAGATING_APP, env={"OTEL_PROPAGATORS": value})
    assert found["carrier"] == carried
    assert found["variable"] == value
    if carried == ["baggage", "traceparent"]:
        (record,) = found["records"]
        assert record[0] == "WARNING" and not record[2]
        assert f"OTEL_PROPAGATORS={value!r}" in record[1]
    else:
        assert found["records"] == []


def test_child_environment_prepends_the_bootstrap_dir_once(monkeypatch):
    monkeypatch.setenv("PYTHONPATH", "/boot:/app/lib")
    env = _config.child_environment(
        service_name="shop", traces_exporter="console", bootstrap_dir="/boot"
    )
    assert env["PYTHONPATH"].split(":") == ["/boot", "/app/lib"]
    assert env["OTEL_SERVICE_NAME"] == "shop"
    assert env["OTEL_TRACES_EXPORTER"] == "console"
