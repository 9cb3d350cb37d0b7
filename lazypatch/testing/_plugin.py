"""pytest plugin of ``lazypatch.testing`` (entry point ``pytest11``, name ``lazypatch``).

The fixture ``lazypatch_scenario`` is :func:`run_scenario`. When a test that ran scenarios
fails, its report gains a section showing the spans of the last one in every order side by
side (the other orders are run again for it, on failure only). Loading the plugin imports
neither OpenTelemetry nor ``lazypatch.auto``.
"""

from __future__ import annotations

import pytest

from . import _runner

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, Callable, Generator

    from ._scenario import Scenario

_CALLS = pytest.StashKey["list[tuple[dict[str, Any], Any]]"]()
_TITLE = "lazypatch: spans of this scenario in each order"


@pytest.fixture
def lazypatch_scenario() -> Callable[..., Scenario]:
    """``run_scenario``: run instrument, imports, setup and exercise in a fresh interpreter."""
    return _runner.run_scenario


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_call(item: pytest.Item) -> Generator[None, None, None]:
    with _runner.recording() as calls:
        item.stash[_CALLS] = calls
        yield


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, Any, None]:
    outcome = yield
    report = outcome.get_result()
    calls = item.stash.get(_CALLS, None)
    if report.when != "call" or not report.failed or not calls:
        return
    from ._compare import compare_orders

    try:
        text = compare_orders(*calls[-1])
    except Exception as exc:  # the report of the test's own failure must survive this one
        text = f"could not run the other orders: {type(exc).__name__}: {exc}"
    addsection = getattr(report.longrepr, "addsection", None)
    if addsection is not None:
        addsection(_TITLE, text)
    else:
        report.sections.append((_TITLE, text))
