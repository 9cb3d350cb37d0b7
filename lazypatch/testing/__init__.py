"""Prove that an instrumentation gives the same spans in every order of import, set-up and
``instrument()``, each order in a fresh interpreter.

Names are loaded on first use: the child interpreter of a scenario imports
``lazypatch.testing._child`` and must not pay for the runner (nor import ``json``, ``inspect``
and the rest before the sections run), and ``each_order`` needs pytest.
"""

TYPE_CHECKING = False
if TYPE_CHECKING:
    from ._runner import run_scenario
    from ._scenario import ORDERS, Scenario, ScenarioError, SpanRecord

__all__ = ["ORDERS", "Scenario", "ScenarioError", "SpanRecord", "each_order", "run_scenario"]

_LAZY = {
    "ORDERS": "_scenario",
    "Scenario": "_scenario",
    "ScenarioError": "_scenario",
    "SpanRecord": "_scenario",
    "run_scenario": "_runner",
}


def __getattr__(name: str) -> object:
    if name == "each_order":
        import pytest

        from ._scenario import ORDERS

        value = pytest.mark.parametrize("order", ORDERS)
    elif name in _LAZY:
        from importlib import import_module

        value = getattr(import_module(f"{__name__}.{_LAZY[name]}"), name)
    else:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
