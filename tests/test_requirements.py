"""Requirements decided without packaging give packaging's answers, and only they are decided.

``lazypatch._requirements`` compares plain releases itself; everything else must be left to
``packaging`` (``parse`` returns None). Checked on hand-picked cases and generated ones.
"""

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from packaging.requirements import Requirement
from packaging.version import Version

from lazypatch import _requirements


def packaging_says(text: str, installed: str) -> bool:
    return Requirement(text).specifier.contains(Version(installed), prereleases=True)


def ours(text: str, installed: str):
    """True / False when decided here, None when left to packaging."""
    parsed = _requirements.parse(text)
    release = _requirements.release(installed)
    if parsed is None or release is None:
        return None
    return _requirements.satisfied(parsed[1], release)


CASES = [
    ("flask >= 2.3", "2.3"),
    ("flask >= 2.3", "2.3.0"),
    ("flask >= 2.3", "2.2.9"),
    ("flask >= 2.3", "10.0"),
    ("flask>=2.3,<4", "4"),
    ("flask>=2.3,<4", "3.99.99"),
    ("requests >= 2.20", "2.3"),
    ("requests >= 2.20", "2.20.0"),
    ("x == 1.0", "1"),
    ("x == 1.0", "1.0.0.0"),
    ("x == 1.0", "1.0.1"),
    ("x != 1.0", "1.0.0"),
    ("x != 1.0", "1.1"),
    ("x > 1.0", "1.0.0"),
    ("x > 1.0", "1.0.0.1"),
    ("x < 1.0", "0.9"),
    ("x < 1.0", "1"),
    ("x <= 1.0", "1.0"),
    ("x >= 01.02", "1.2"),
    ("x >= 0", "0"),
    ("x < 0.0.1", "0"),
    ("x", "7"),
]


@pytest.mark.parametrize("text, installed", CASES)
def test_plain_comparisons_agree_with_packaging(text, installed):
    assert ours(text, installed) == packaging_says(text, installed)


@pytest.mark.parametrize(
    "text",
    [
        "x ~= 1.2",
        "x == 1.*",
        "x === 1.0",
        "x >= 1.0rc1",
        "x >= 1.0.post1",
        "x >= 1!2.0",
        "x >= 1.0+local",
        "x >= v1.0",
        "x[extra] >= 1",
        "x >= 1; python_version >= '3'",
        "x (>= 1)",
        "x >= 1,",
        "x >=",
        "x <> 1",
        "-x >= 1",
        "x- >= 1",
        "x @ https://example.invalid/x.whl",
        "x >= 1.²",
    ],
)
def test_everything_else_is_left_to_packaging(text):
    assert _requirements.parse(text) is None


@pytest.mark.parametrize("installed", ["2.0rc1", "2.0.post1", "2.0.dev3", "2.0+local", "1!2.0"])
def test_installed_versions_other_than_plain_releases_are_left_to_packaging(installed):
    assert _requirements.release(installed) is None


releases = st.lists(st.integers(0, 12), min_size=1, max_size=4).map(
    lambda parts: ".".join(map(str, parts))
)
clauses = st.lists(
    st.tuples(st.sampled_from([">=", "<=", ">", "<", "==", "!="]), releases),
    min_size=0,
    max_size=3,
)


@settings(max_examples=500, deadline=None)
@given(clauses=clauses, installed=releases, spaces=st.booleans())
def test_generated_plain_requirements_agree_with_packaging(clauses, installed, spaces):
    gap = " " if spaces else ""
    text = "dist" + gap + f",{gap}".join(f"{op}{gap}{version}" for op, version in clauses)
    assert ours(text, installed) == packaging_says(text, installed), text
