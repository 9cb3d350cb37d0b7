"""Parity with OpenTelemetry's own instrumentations of requests, Flask, urllib and sqlite3.

The same tiny app (parity_app.py) runs in fresh interpreters under OpenTelemetry's packages and
under lazypatch's, in each ``OTEL_SEMCONV_STABILITY_OPT_IN`` mode. For each pair of
corresponding spans and metric points, lazypatch's attribute keys include OpenTelemetry's, and
the values that identify a call (method, status, route, URL, operation, statement, user agent)
are equal. lazypatch's default is the stable names, which OpenTelemetry emits only when asked
(``http,database``): in the default mode lazypatch is held to that, and to emitting none of the
old names OpenTelemetry's default has.
"""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

APP = Path(__file__).with_name("parity_app.py")

# Values compared for equality, under both conventions' names. Ports are written as "{port}" by
# the app. Not compared: addresses (OpenTelemetry's Flask puts the Host header, port included,
# in server.address), client ports, error.type (OpenTelemetry's urllib gives the exception's
# class name where its requests gives the status code; lazypatch gives the status code for
# both) and network.protocol.version (OpenTelemetry's urllib reports the request's version).
COMPARED = {
    "http.request.method",
    "http.method",
    "http.response.status_code",
    "http.status_code",
    "http.route",
    "url.full",
    "http.url",
    "url.path",
    "url.query",
    "url.scheme",
    "http.scheme",
    "http.target",
    "db.operation.name",
    "db.operation",
    "db.system.name",
    "db.system",
    "db.query.text",
    "db.statement",
    "user_agent.original",
    "http.user_agent",
}
HISTOGRAMS = {
    "http.client.request.duration",
    "http.server.request.duration",
    "db.client.operation.duration",
}
# Releases of opentelemetry-instrumentation-sqlite3 before the database opt-in (0.62b1, the last
# for Python 3.9, among them) emit the old names in every mode: in a stable mode, their spans are
# compared under the stable names of the same facts.
OLD_DATABASE_NAMES = {
    "db.system": "db.system.name",
    "db.name": "db.namespace",
    "db.statement": "db.query.text",
    "db.operation": "db.operation.name",
}
HTTP_BUCKETS = [0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1, 2.5, 5, 7.5, 10]
LIBRARIES = ("flask", "requests", "urllib", "sqlite3")


def start(tool, opt_in):
    env = dict(os.environ)
    env.pop("OTEL_SEMCONV_STABILITY_OPT_IN", None)
    env.pop("OTEL_METRICS_EXPORTER", None)
    if opt_in is not None:
        env["OTEL_SEMCONV_STABILITY_OPT_IN"] = opt_in
    return subprocess.Popen(
        [sys.executable, str(APP), tool],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def finish(proc):
    stdout, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 0, stderr
    return json.loads(stdout)


def run_all(*runs):
    """Run ``(tool, opt_in)`` pairs in parallel; their outputs, in order."""
    procs = [start(tool, opt_in) for tool, opt_in in runs]
    return [finish(proc) for proc in procs]


def by_library(items, kind_key):
    grouped = {}
    for item in items:
        grouped.setdefault((item["library"], item[kind_key]), []).append(item)
    return grouped


def assert_covers(ours, theirs, what):
    missing = set(theirs) - set(ours)
    assert not missing, f"{what}: lazypatch lacks {sorted(missing)}\nours: {ours}\ntheirs: {theirs}"
    differ = {
        key: (ours[key], theirs[key]) for key in COMPARED & set(theirs) if ours[key] != theirs[key]
    }
    assert not differ, f"{what}: values differ (ours, theirs): {differ}"


def without_old_database_names(spans):
    """``spans`` with the old database names renamed, if none of them has a stable one."""
    if any("db.system.name" in span["attributes"] for span in spans):
        return spans
    return [
        {
            **span,
            "attributes": {OLD_DATABASE_NAMES.get(k, k): v for k, v in span["attributes"].items()},
        }
        for span in spans
    ]


def assert_span_parity(ours, theirs, stable_database=False):
    their_spans = theirs["spans"]
    if stable_database:
        their_spans = without_old_database_names(their_spans)
    mine, others = by_library(ours["spans"], "kind"), by_library(their_spans, "kind")
    assert {library for library, _ in others} == set(LIBRARIES)
    for key, their_spans in others.items():
        my_spans = mine.get(key, [])
        assert len(my_spans) == len(their_spans), f"{key}: {len(my_spans)} != {len(their_spans)}"
        for my_span, their_span in zip(my_spans, their_spans):
            assert_covers(my_span["attributes"], their_span["attributes"], f"{key} span")


def assert_metric_parity(ours, theirs):
    their_points = [p for p in theirs["points"] if p["name"] in HISTOGRAMS]
    my_points = [p for p in ours["points"] if p["name"] in HISTOGRAMS]
    for point in my_points:
        assert point["unit"] == "s"
        if point["name"].startswith("http."):
            assert point["bounds"] == HTTP_BUCKETS
    for their_point in their_points:
        candidates = [
            p
            for p in my_points
            if (p["library"], p["name"]) == (their_point["library"], their_point["name"])
            and ("error.type" in p["attributes"]) == ("error.type" in their_point["attributes"])
            and all(
                p["attributes"].get(key) == value
                for key, value in their_point["attributes"].items()
                if key in COMPARED
            )
        ]
        assert candidates, f"no lazypatch point for {their_point}"
        assert_covers(candidates[0]["attributes"], their_point["attributes"], "metric point")
    assert {(p["library"], p["name"]) for p in my_points} >= {
        ("flask", "http.server.request.duration"),
        ("requests", "http.client.request.duration"),
        ("urllib", "http.client.request.duration"),
        ("sqlite3", "db.client.operation.duration"),
    }


# The stable names alone are also lazypatch's default (checked below on every interpreter).
@pytest.mark.parametrize(
    "opt_in",
    [pytest.param("http,database", marks=pytest.mark.main_interpreter), "http/dup,database/dup"],
)
def test_parity_in_opt_in_mode(opt_in):
    ours, theirs = run_all(("lazypatch", opt_in), ("opentelemetry", opt_in))
    assert_span_parity(ours, theirs, stable_database="database/dup" not in opt_in)
    assert_metric_parity(ours, theirs)


def test_parity_by_default_is_the_stable_names():
    ours, stable, old = run_all(
        ("lazypatch", None), ("opentelemetry", "http,database"), ("opentelemetry", None)
    )
    assert_span_parity(ours, stable, stable_database=True)
    assert_metric_parity(ours, stable)
    stable_spans = without_old_database_names(stable["spans"])
    stable_keys = {key for span in stable_spans for key in span["attributes"]}
    old_only = {key for span in old["spans"] for key in span["attributes"]} - stable_keys
    assert {"http.method", "http.status_code", "http.url", "db.statement"} <= old_only
    emitted = {key for span in ours["spans"] for key in span["attributes"]}
    assert not emitted & old_only
