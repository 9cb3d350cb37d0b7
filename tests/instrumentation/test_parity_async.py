"""Parity with OpenTelemetry's own instrumentations of httpx and Starlette, as test_parity.py
checks it for requests, Flask, urllib and sqlite3: the same app (parity_async_app.py) under
each, in fresh interpreters, in each ``OTEL_SEMCONV_STABILITY_OPT_IN`` mode.

OpenTelemetry's ASGI middleware also makes an INTERNAL span per ASGI message sent ("http send");
lazypatch makes none, so SERVER and CLIENT spans are compared.
"""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from test_parity import assert_covers, by_library

APP = Path(__file__).with_name("parity_async_app.py")
HISTOGRAMS = {"http.client.request.duration", "http.server.request.duration"}


def run(tool, opt_in):
    env = dict(os.environ)
    env.pop("OTEL_METRICS_EXPORTER", None)
    env.pop("OTEL_SEMCONV_STABILITY_OPT_IN", None)
    if opt_in is not None:
        env["OTEL_SEMCONV_STABILITY_OPT_IN"] = opt_in
    proc = subprocess.run(
        [sys.executable, str(APP), tool], env=env, capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


# http/dup holds lazypatch to both sets of names at once; unset, lazypatch's default is the
# stable names, which OpenTelemetry emits only with http.
@pytest.mark.parametrize(
    ("opt_in", "their_opt_in"),
    [
        pytest.param("http", "http", marks=pytest.mark.main_interpreter),
        ("http/dup", "http/dup"),
        pytest.param(None, "http", marks=pytest.mark.main_interpreter),
    ],
)
def test_parity_in_opt_in_mode(opt_in, their_opt_in):
    pytest.importorskip("opentelemetry.instrumentation.httpx")
    pytest.importorskip("opentelemetry.instrumentation.starlette")
    theirs, ours = run("opentelemetry", their_opt_in), run("lazypatch", opt_in)
    if opt_in is None:
        emitted = {key for span in ours["spans"] for key in span["attributes"]}
        assert not emitted & {"http.method", "http.url", "http.status_code", "http.target"}
    kinds = ("SERVER", "CLIENT")
    mine = by_library([s for s in ours["spans"] if s["kind"] in kinds], "kind")
    others = by_library([s for s in theirs["spans"] if s["kind"] in kinds], "kind")
    assert set(others) == {("starlette", "SERVER"), ("httpx", "CLIENT")}
    assert set(mine) == set(others)
    for key, their_spans in others.items():
        my_spans = mine[key]
        assert len(my_spans) == len(their_spans), key
        # Server spans end in the server's thread: compare them in the order of their paths.
        order = (lambda s: s["attributes"].get("url.path", "")) if key[1] == "SERVER" else None
        pairs = (
            zip(sorted(my_spans, key=order), sorted(their_spans, key=order))
            if order
            else zip(my_spans, their_spans)
        )
        for my_span, their_span in pairs:
            assert my_span["name"] == their_span["name"]
            assert_covers(my_span["attributes"], their_span["attributes"], f"{key} span")
    their_points = [p for p in theirs["points"] if p["name"] in HISTOGRAMS]
    my_points = [p for p in ours["points"] if p["name"] in HISTOGRAMS]
    assert len(my_points) == len(their_points) == 8
    for their_point in their_points:
        same = [
            p
            for p in my_points
            if (p["library"], p["name"]) == (their_point["library"], their_point["name"])
            and p["attributes"] == their_point["attributes"]
        ]
        assert same, f"no lazypatch point for {their_point}"
