"""The semantic-convention names lazypatch writes out are the semantic-conventions package's own.

``lazypatch.instrumentation._semconv`` spells the names instead of importing them (the package's
modules are costly to import at the first span); each must equal the constant of the same name
in ``opentelemetry-semantic-conventions``: stable names in its stable modules, ``OLD_*`` names
under their own name in the incubating ones.
"""

import importlib

import pytest

from lazypatch.instrumentation import _semconv

STABLE_MODULES = [
    f"opentelemetry.semconv.attributes.{name}_attributes"
    for name in (
        "client",
        "db",
        "error",
        "http",
        "network",
        "server",
        "service",
        "url",
        "user_agent",
    )
] + ["opentelemetry.semconv.metrics.http_metrics", "opentelemetry.semconv.metrics.db_metrics"]
INCUBATING_MODULES = [
    f"opentelemetry.semconv._incubating.attributes.{name}_attributes"
    for name in ("db", "http", "net", "telemetry")
]


def modules(names):
    found = []
    for name in names:
        try:
            found.append(importlib.import_module(name))
        except ImportError:  # a name that is stable only in newer releases
            continue
    return found


STABLE = modules(STABLE_MODULES)
INCUBATING = modules(INCUBATING_MODULES)
NAMES = sorted(
    name
    for name, value in vars(_semconv).items()
    if name.isupper() and not name.startswith("_") and isinstance(value, str)
)


def defined(name: str, where) -> list:
    return [getattr(module, name) for module in where if hasattr(module, name)]


@pytest.mark.parametrize("name", NAMES)
def test_each_name_is_the_packages_own(name):
    value = getattr(_semconv, name)
    if name == "SQLITE":
        from opentelemetry.semconv._incubating.attributes.db_attributes import DbSystemNameValues

        assert value == DbSystemNameValues.SQLITE.value
        return
    if name.startswith("OLD_"):
        found = defined(name[4:], INCUBATING)
    else:
        found = defined(name, STABLE) or defined(name, INCUBATING)
    assert found, f"{name} is not in the semantic-conventions package"
    assert set(found) == {value}
