"""Requirements of the form ``name >= 2.3, < 4``, checked without ``packaging``.

Importing ``packaging.requirements`` costs more than the rest of an instrumentation's loading
(about 20 ms in a Flask service), and the requirements lazypatch's instrumentations declare, like
most, only compare a distribution's version with plain releases. Those are decided here, by the
rules of PEP 440 for final releases, which need no more than integer tuples: ``2.3`` equals
``2.3.0``, and ``>`` / ``<`` / ``!=`` mean what they say since neither side can be a pre-, post-,
dev- or local release. Anything else (``~=``, wildcards, markers, extras, or an installed version
that is not a plain release) returns None, and the caller asks ``packaging``. The tests hold this
to ``packaging``'s answers.
"""

from ._metadata import requirement_name

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import List, Optional, Tuple

    Release = Tuple[int, ...]

_OPERATORS = (">=", "<=", "==", "!=", ">", "<")


def release(version: str) -> "Optional[Release]":
    """``(2, 3)`` for ``"2.3"`` or ``"2.3.0"``; None unless ``version`` is a plain release."""
    parts = version.split(".")
    if not all(part.isdecimal() and part.isascii() for part in parts):
        return None
    numbers = [int(part) for part in parts]
    while len(numbers) > 1 and numbers[-1] == 0:
        numbers.pop()
    return tuple(numbers)


def parse(text: str) -> "Optional[Tuple[str, List[Tuple[str, Release]]]]":
    """``(name, [(operator, release), ...])`` of a requirement this module can decide, or None."""
    text = text.strip()
    name = requirement_name(text)
    if not (name and name.isascii() and name[0].isalnum() and name[-1].isalnum()):
        return None
    rest = text[len(name) :].strip()
    clauses = []
    for clause in rest.split(",") if rest else ():
        clause = clause.strip()
        operator = next((op for op in _OPERATORS if clause.startswith(op)), None)
        if operator is None:
            return None
        bound = release(clause[len(operator) :].strip())
        if bound is None:
            return None
        clauses.append((operator, bound))
    return name, clauses


def satisfied(clauses: "List[Tuple[str, Release]]", installed: "Release") -> bool:
    """Whether the installed release meets every ``(operator, release)`` clause."""
    for operator, bound in clauses:
        if operator == ">=":
            ok = installed >= bound
        elif operator == "<=":
            ok = installed <= bound
        elif operator == ">":
            ok = installed > bound
        elif operator == "<":
            ok = installed < bound
        elif operator == "==":
            ok = installed == bound
        else:
            ok = installed != bound
        if not ok:
            return False
    return True
