"""Fixtures shared by every test module."""

import os

import pytest
from fresh import SECONDARY_INTERPRETER, facts, run_python, write_modules
from preludes import with_report

pytest_plugins = ["pytester"]  # tests/test_testing_plugin.py runs pytest on test files it writes


def pytest_collection_modifyitems(config, items):
    if not SECONDARY_INTERPRETER:
        return
    skip = pytest.mark.skip(reason="run on the main interpreter only (LAZYPATCH_TESTS_SECONDARY)")
    for item in items:
        if item.get_closest_marker("main_interpreter"):
            item.add_marker(skip)


@pytest.fixture
def pyrun(tmp_path):
    """``pyrun(code, files={...}, env={...})``: fresh interpreter with ``tmp_path`` on sys.path."""

    def run(code, files=None, env=None, **kwargs):
        write_modules(tmp_path, files or {})
        extra = {
            "PYTHONPATH": os.pathsep.join(
                filter(None, [str(tmp_path), os.environ.get("PYTHONPATH")])
            )
        }
        extra.update(env or {})
        return run_python(code, env=extra, cwd=tmp_path, **kwargs)

    return run


@pytest.fixture
def pyfacts(pyrun):
    """``pyfacts(code, ...)``: run as ``pyrun`` does, with ``report(**facts)`` defined in the
    child; return what it reported (a dict)."""

    def run(code, **kwargs):
        return facts(pyrun(with_report(code), **kwargs))

    return run
