"""The spans of every order, side by side: what a failing test that ran a scenario shows."""

from __future__ import annotations

from ._runner import run_again
from ._scenario import ORDERS, Scenario, ScenarioError, SpanRecord

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, Union

    Outcome = Union[Scenario, ScenarioError]

_WIDTH = 60  # at most, per column


def compare_orders(call: dict[str, Any], outcome: Outcome) -> str:
    """Run the scenario of ``call`` in the orders it did not run in; render all side by side."""
    outcomes: dict[str, Outcome] = {}
    for order in ORDERS:
        if order == call["order"]:
            outcomes[order] = outcome
            continue
        try:
            outcomes[order] = run_again(call, order)
        except ScenarioError as error:
            outcomes[order] = error
    return side_by_side(outcomes, call["order"], bool(call["uninstrument"]))


def side_by_side(outcomes: dict[str, Outcome], this_order: str, uninstrument: bool) -> str:
    """A text table: one column per order, a line per span (indented under its parent)."""
    columns = []
    for order, outcome in outcomes.items():
        title = f"{order} (this test)" if order == this_order else order
        if isinstance(outcome, ScenarioError):
            first = [f"ScenarioError in {outcome.section}", *_lines(outcome.spans)]
            after = []
        else:
            first, after = _lines(outcome.spans), _lines(outcome.after_uninstrument)
        columns.append((title, first, after))
    height = max(len(first) for _, first, _ in columns)
    rows = []
    for title, first, after in columns:
        cells = [title, *first, *[""] * (height - len(first))]
        if uninstrument:
            cells += ["after uninstrument:", *(after or ["(no spans)"])]
        rows.append([_cut(cell) for cell in cells])
    widths = [max(len(cell) for cell in cells) for cells in rows]
    depth = max(len(cells) for cells in rows)
    lines = []
    for index in range(depth):
        cells = [cells[index] if index < len(cells) else "" for cells in rows]
        lines.append(" | ".join(cell.ljust(width) for cell, width in zip(cells, widths)).rstrip())
        if index == 0:
            lines.append("-+-".join("-" * width for width in widths))
    return "\n".join(lines)


def _lines(spans: list[SpanRecord]) -> list[str]:
    """A tree: each span under its parent, siblings in the order they ended."""
    if not spans:
        return ["(no spans)"]
    ids = {span.span_id for span in spans}
    children: dict[int | None, list[SpanRecord]] = {}
    for span in spans:
        parent = span.parent_id if span.parent_id in ids else None
        children.setdefault(parent, []).append(span)
    lines: list[str] = []

    def walk(parent: int | None, depth: int) -> None:
        for span in children.get(parent, ()):
            error = " ERROR" if span.status == "ERROR" else ""
            lines.append(f"{'  ' * depth}{span.name} {span.kind}{error}")
            walk(span.span_id, depth + 1)

    walk(None, 0)
    return lines


def _cut(cell: str) -> str:
    return cell if len(cell) <= _WIDTH else cell[: _WIDTH - 3] + "..."
