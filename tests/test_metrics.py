"""Metrics: the SDK's meter provider is set up at the first measurement, from the environment,
never over the application's; the instrumentations' duration histograms; the distro resource."""

import json

FIRST_MEASUREMENT = """
import sys
import lazypatch.auto
from opentelemetry import metrics
histogram = metrics.get_meter("test").create_histogram("work.duration", unit="s")
assert "opentelemetry.sdk.metrics" not in sys.modules, "SDK imported before the first measurement"
histogram.record(0.25, {"job": "a"})
provider = metrics.get_meter_provider()
"""
SDK_PROVIDER = """
assert type(provider).__module__ == "opentelemetry.sdk.metrics._internal", type(provider)
"""


def metric_points(stdout):
    """``{metric name: [data point, ...]}`` from the console exporter's JSON documents."""
    decoder, points, text = json.JSONDecoder(), {}, stdout
    start = text.find("{")
    while start != -1:
        document, end = decoder.raw_decode(text, start)
        for resource in document.get("resource_metrics", ()):
            for scope in resource["scope_metrics"]:
                for metric in scope["metrics"]:
                    for point in metric["data"]["data_points"]:
                        point["resource"] = resource["resource"]["attributes"]
                        point["unit"] = metric["unit"]
                        points.setdefault(metric["name"], []).append(point)
        start = text.find("{", end)
    return points


def test_meter_provider_is_set_up_at_the_first_measurement(pyrun):
    proc = pyrun(
        FIRST_MEASUREMENT + SDK_PROVIDER,
        env={"OTEL_METRICS_EXPORTER": "console", "OTEL_SERVICE_NAME": "shop"},
    )
    (point,) = metric_points(proc.stdout)["work.duration"]
    assert point["attributes"] == {"job": "a"}
    assert point["count"] == 1
    assert point["resource"]["service.name"] == "shop"
    assert point["resource"]["telemetry.distro.name"] == "lazypatch"
    assert point["resource"]["telemetry.distro.version"]


def test_metrics_exporter_none_sets_nothing_up(pyrun):
    pyrun(
        FIRST_MEASUREMENT
        + """
assert type(provider).__module__ == "opentelemetry.metrics._internal", type(provider)
sdk = sorted(m for m in sys.modules if m.startswith("opentelemetry.sdk.metrics"))
assert sdk == [], sdk
""",
        env={"OTEL_METRICS_EXPORTER": "none"},
    )


def test_a_meter_provider_set_by_the_application_wins(pyrun):
    proc = pyrun(
        """
        import lazypatch.auto
        from opentelemetry import metrics
        early = metrics.get_meter("early").create_histogram("early")
        from opentelemetry.sdk.metrics import MeterProvider
        from opentelemetry.sdk.metrics.export import InMemoryMetricReader
        reader = InMemoryMetricReader()
        mine = MeterProvider(metric_readers=[reader])
        metrics.set_meter_provider(mine)
        early.record(1.0)
        metrics.get_meter("late").create_histogram("late").record(2.0)
        names = sorted(
            m.name
            for r in reader.get_metrics_data().resource_metrics
            for s in r.scope_metrics
            for m in s.metrics
        )
        assert metrics.get_meter_provider() is mine, metrics.get_meter_provider()
        assert names == ["early", "late"], names
        """,
        env={"OTEL_METRICS_EXPORTER": "console"},
    )
    assert proc.stdout == ""  # nothing of lazypatch's console exporter
    assert "Overriding" not in proc.stderr


def test_unknown_metrics_exporter_warns_and_others_still_export(pyrun):
    proc = pyrun(FIRST_MEASUREMENT, env={"OTEL_METRICS_EXPORTER": "nosuch,console"})
    assert "OTEL_METRICS_EXPORTER" in proc.stderr and "nosuch" in proc.stderr
    assert "work.duration" in metric_points(proc.stdout)


def test_instrumentations_record_their_duration_histograms(pyrun):
    proc = pyrun(
        """
        import lazypatch.auto
        import sqlite3
        db = sqlite3.connect(":memory:")
        db.execute("CREATE TABLE t (x)")
        db.execute("SELECT x FROM t").fetchall()
        """,
        env={"OTEL_METRICS_EXPORTER": "console", "OTEL_TRACES_EXPORTER": "none"},
    )
    points = metric_points(proc.stdout)["db.client.operation.duration"]
    assert sorted(p["attributes"]["db.operation.name"] for p in points) == ["CREATE", "SELECT"]
    assert all(p["unit"] == "s" and p["count"] == 1 for p in points)
    assert points[0]["explicit_bounds"] == [0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1.0, 5.0, 10.0]


def test_instrumentations_measure_nothing_with_metrics_off(pyrun):
    pyrun(
        """
        import sys
        import lazypatch.auto
        import sqlite3
        sqlite3.connect(":memory:").execute("SELECT 1")
        from lazypatch.instrumentation import sqlite3 as instrumentation
        assert instrumentation._tracing.histogram is None, instrumentation._tracing.histogram
        assert "opentelemetry.sdk.metrics" not in sys.modules
        """,
        env={"OTEL_METRICS_EXPORTER": "none", "OTEL_TRACES_EXPORTER": "none"},
    )


def test_instrumenting_imports_no_metrics_api_until_the_first_measurement(pyrun):
    proc = pyrun(
        """
        import sys
        import lazypatch.auto
        import sqlite3
        connection = sqlite3.connect(":memory:")
        before = "opentelemetry.metrics" in sys.modules
        assert not before, "the metrics API was imported before the first statement"
        connection.execute("SELECT 1")
        assert "opentelemetry.metrics" in sys.modules, "the first statement measured nothing"
        """,
        env={"OTEL_METRICS_EXPORTER": "console", "OTEL_TRACES_EXPORTER": "none"},
    )
    assert "db.client.operation.duration" in metric_points(proc.stdout)


def test_span_resource_carries_the_distro_unless_overridden(pyfacts):
    code = """
        import lazypatch.auto
        from opentelemetry import trace
        with trace.get_tracer("t").start_as_current_span("s") as span:
            report(**span.resource.attributes)
    """
    plain = pyfacts(code, env={"OTEL_TRACES_EXPORTER": "none"})
    assert plain.get("telemetry.distro.name") == "lazypatch", plain
    assert plain.get("telemetry.distro.version"), plain
    assert plain.get("telemetry.sdk.name") == "opentelemetry", plain
    overridden = pyfacts(
        code,
        env={
            "OTEL_TRACES_EXPORTER": "none",
            "OTEL_RESOURCE_ATTRIBUTES": "telemetry.distro.name=acme",
        },
    )
    assert overridden.get("telemetry.distro.name") == "acme", overridden
