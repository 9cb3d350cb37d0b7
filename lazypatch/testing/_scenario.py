"""What a scenario gives back: its spans as plain records, the outcome, and the error it raises."""

from __future__ import annotations

from dataclasses import dataclass

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

ORDERS = ("before_import", "after_import", "after_setup")

# The sections each order runs, in its order; ``uninstrument`` and a second ``exercise`` follow.
SEQUENCES = {
    "before_import": ("instrument", "imports", "setup", "exercise"),
    "after_import": ("imports", "instrument", "setup", "exercise"),
    "after_setup": ("imports", "setup", "instrument", "exercise"),
}


@dataclass(frozen=True)
class SpanRecord:
    """A finished span of the child interpreter, as plain data."""

    name: str
    kind: str
    attributes: dict[str, Any]
    status: str
    trace_id: int
    span_id: int
    parent_id: int | None


@dataclass(frozen=True)
class Scenario:
    """The outcome of one scenario: spans in the order they ended, ``result``, output."""

    spans: list[SpanRecord]
    after_uninstrument: list[SpanRecord]
    result: Any
    stdout: str
    stderr: str


class ScenarioError(AssertionError):
    """A scenario failed in its child interpreter: a section raised, the child died or hung.

    ``order`` and ``section`` say where; ``traceback``, ``stdout`` and ``stderr`` are the child's;
    ``spans`` are the spans that had ended by then.
    """

    __module__ = "lazypatch.testing"  # as it is imported and shown in reports

    def __init__(
        self,
        problem: str,
        *,
        order: str,
        section: str,
        traceback: str = "",
        stdout: str = "",
        stderr: str = "",
        spans: list[SpanRecord] | None = None,
    ) -> None:
        self.order = order
        self.section = section
        self.traceback = traceback
        self.stdout = stdout
        self.stderr = stderr
        self.spans = list(spans or ())
        parts = [f"scenario failed in order {order!r}, section {section!r}: {problem}"]
        if traceback:
            parts.append(f"--- traceback of the child\n{traceback.rstrip()}")
        if stderr:
            parts.append(f"--- stderr of the child\n{stderr.rstrip()}")
        if stdout:
            parts.append(f"--- stdout of the child\n{stdout.rstrip()}")
        super().__init__("\n".join(parts))
