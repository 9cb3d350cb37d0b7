"""tools/host_tests.py (``make test-host``): its reading of regrtest's results, and its refusal to
pass silently. The full runs are CI's (``.ci/run``), minutes each."""

import importlib.util
import os
import stat
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
_spec = importlib.util.spec_from_file_location("host_tests", ROOT / "tools" / "host_tests.py")
host_tests = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(host_tests)

JUNIT = """<?xml version="1.0"?>
<testsuites>
  <testsuite tests="4">
    <testcase name="test.test_a.T.test_pass" status="run" result="completed"/>
    <testcase name="test.test_a.T.test_fail" status="run"><failure message="x"/></testcase>
    <testcase name="test.test_a.T.test_error" status="run"><error message="x"/></testcase>
    <testcase name="test.test_a.T.test_skip" status="run"><skipped message="x"/></testcase>
  </testsuite>
</testsuites>
"""


def test_outcomes_are_read_test_by_test(tmp_path):
    junit = tmp_path / "j.xml"
    junit.write_text(JUNIT)
    assert host_tests.outcomes(junit) == {
        "test.test_a.T.test_pass": "pass",
        "test.test_a.T.test_fail": "fail",
        "test.test_a.T.test_error": "error",
        "test.test_a.T.test_skip": "skip",
    }
    assert host_tests.outcomes(tmp_path / "absent.xml") == {}


def test_known_differences_match_exact_ids_only():
    (known,) = host_tests.KNOWN_DIFFERENCES
    assert host_tests.known(known)
    assert host_tests.known(known + "_other") is None


def test_an_interpreter_without_its_test_package_is_reported_not_passed(tmp_path, capsys):
    fake = tmp_path / "python"
    fake.write_text(f"#!/bin/sh\nexec {sys.executable} -c 'raise SystemExit(1)'\n")
    fake.chmod(fake.stat().st_mode | stat.S_IXUSR)
    assert host_tests.main(["--python", os.fspath(fake), "test_json"]) == 0
    assert "NOT RUN" in capsys.readouterr().out
