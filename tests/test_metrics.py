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
print(type(provider).__module__, flush=True)
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
        FIRST_MEASUREMENT,
        env={"OTEL_METRICS_EXPORTER": "console", "OTEL_SERVICE_NAME": "shop"},
    )
    assert proc.stdout.splitlines()[0] == "opentelemetry.sdk.metrics._internal"
    (point,) = metric_points(proc.stdout)["work.duration"]
    assert point["attributes"] == {"job": "a"}
    assert point["count"] == 1
    assert point["resource"]["service.name"] == "shop"
    assert point["resource"]["telemetry.distro.name"] == "lazypatch"
    assert point["resource"]["telemetry.distro.version"]


def test_metrics_exporter_none_sets_nothing_up(pyrun):
    proc = pyrun(
        FIRST_MEASUREMENT
        + "print(sorted(m for m in sys.modules if m.startswith('opentelemetry.sdk.metrics')))",
        env={"OTEL_METRICS_EXPORTER": "none"},
    )
    assert proc.stdout.splitlines() == ["opentelemetry.metrics._internal", "[]"]


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
        print(metrics.get_meter_provider() is mine, names)
        """,
        env={"OTEL_METRICS_EXPORTER": "console"},
    )
    assert proc.stdout.splitlines() == ["True ['early', 'late']"]
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
    proc = pyrun(
        """
        import sys
        import lazypatch.auto
        import sqlite3
        sqlite3.connect(":memory:").execute("SELECT 1")
        from lazypatch.instrumentation import sqlite3 as instrumentation
        print(instrumentation._tracing.histogram, "opentelemetry.sdk.metrics" in sys.modules)
        """,
        env={"OTEL_METRICS_EXPORTER": "none", "OTEL_TRACES_EXPORTER": "none"},
    )
    assert proc.stdout.split() == ["None", "False"]


def test_instrumenting_imports_no_metrics_api_until_the_first_measurement(pyrun):
    proc = pyrun(
        """
        import sys
        import lazypatch.auto
        import sqlite3
        connection = sqlite3.connect(":memory:")
        before = "opentelemetry.metrics" in sys.modules
        connection.execute("SELECT 1")
        print(before, "opentelemetry.metrics" in sys.modules)
        """,
        env={"OTEL_METRICS_EXPORTER": "console", "OTEL_TRACES_EXPORTER": "none"},
    )
    assert proc.stdout.split()[:2] == ["False", "True"]


def test_span_resource_carries_the_distro_unless_overridden(pyrun):
    code = """
        import lazypatch.auto
        from opentelemetry import trace
        with trace.get_tracer("t").start_as_current_span("s") as span:
            print(dict(span.resource.attributes))
    """
    plain = pyrun(code, env={"OTEL_TRACES_EXPORTER": "none"}).stdout
    assert "'telemetry.distro.name': 'lazypatch'" in plain
    assert "'telemetry.distro.version': '" in plain
    assert "'telemetry.sdk.name': 'opentelemetry'" in plain
    overridden = pyrun(
        code,
        env={
            "OTEL_TRACES_EXPORTER": "none",
            "OTEL_RESOURCE_ATTRIBUTES": "telemetry.distro.name=acme",
        },
    ).stdout
    assert "'telemetry.distro.name': 'acme'" in overridden
