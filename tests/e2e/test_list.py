"""``lazypatch list``: every discovered instrumentation, its source, requirement, version, state."""

import json

import pytest
from e2e_support import discovered

COLUMNS = ["NAME", "TRIGGER", "SOURCE", "REQUIREMENT", "INSTALLED", "STATE", "TIME", "REASON"]


def rows(proc):
    return {(r["source"], r["name"]): r for r in map(json.loads, proc.stdout.splitlines())}


def test_table_lists_both_sources_with_versions(cli):
    proc = cli("list")
    header, *lines = proc.stdout.splitlines()
    assert header.split() == COLUMNS
    urllib3 = [line.split() for line in lines if line.startswith("urllib3 ")]
    assert urllib3 and urllib3[0][:3] == ["urllib3", "urllib3", "opentelemetry"]
    assert urllib3[0][4] == "urllib3" and urllib3[0][6] == "armed"


def test_ours_is_armed_and_opentelemetry_flask_is_shadowed(cli):
    if not discovered("lazypatch", "flask"):
        pytest.skip("lazypatch's flask instrumentation is not installed yet")
    listed = rows(cli("list", "--json"))
    assert listed["lazypatch", "flask"]["state"] == "armed"
    assert listed["opentelemetry", "flask"]["state"] == "shadowed"
    chosen = rows(
        cli("list", "--json", env={"LAZYPATCH_DISABLED_INSTRUMENTATIONS": "lazypatch:flask"})
    )
    assert chosen["lazypatch", "flask"]["state"] == "disabled"
    assert chosen["opentelemetry", "flask"]["state"] == "armed"


def test_import_fires_triggers_and_shows_time(cli):
    listed = rows(cli("list", "--json", "--import"))
    urllib3 = listed["opentelemetry", "urllib3"]
    assert urllib3["state"] == "active"
    assert urllib3["seconds"] > 0
    assert urllib3["installed"].startswith("urllib3 ")
    assert all(
        r["seconds"] is None for r in listed.values() if r["state"] in ("shadowed", "disabled")
    )


def test_import_shows_what_each_instrumentation_became_once_its_library_is_loaded(cli):
    """An instrumentation whose targets lie beyond its trigger (starlette's is
    ``starlette.applications``) is imported up to them: armed becomes active, not pending."""
    listed = rows(cli("list", "--json", "--import"))
    ours = {name: r["state"] for (source, name), r in listed.items() if source == "lazypatch"}
    assert ours and all(state == "active" for state in ours.values()), ours


def test_configuration_shows_as_disabled(cli):
    listed = rows(cli("list", "--json", env={"LAZYPATCH_OTEL_INSTRUMENTORS": "0"}))
    otel = [r for (source, _), r in listed.items() if source == "opentelemetry"]
    assert otel and all(r["state"] == "disabled" for r in otel)
    assert all("LAZYPATCH_OTEL_INSTRUMENTORS" in r["reason"] for r in otel)
