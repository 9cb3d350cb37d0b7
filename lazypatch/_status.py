"""``status()``: a read-only view over the live hooks, patches and instrumentors."""

import sys

from . import _hooks, _instrumentor, _patches

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Iterable, List, Optional, Tuple


class Record:
    """One line of :func:`status`: a hook, a patch or an instrumentor, and how it fared."""

    __slots__ = ("kind", "name", "module", "state", "reason", "calls", "seconds", "source")

    def __init__(
        self,
        kind: str,
        name: str,
        module: str,
        state: str,
        reason: "Optional[str]" = None,
        calls: int = 0,
        seconds: float = 0.0,
        source: str = "lazypatch",
    ) -> None:
        self.kind = kind
        self.name = name
        self.module = module
        self.state = state
        self.reason = reason
        self.calls = calls
        self.seconds = seconds
        self.source = source

    def _fields(self) -> "Tuple[object, ...]":
        return tuple(getattr(self, name) for name in self.__slots__)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Record) and self._fields() == other._fields()

    def __hash__(self) -> int:
        return hash(self._fields())

    def __repr__(self) -> str:
        fields = ", ".join(f"{name}={getattr(self, name)!r}" for name in self.__slots__)
        return f"Record({fields})"


def _adapted_records() -> "Iterable[Record]":
    """The instrumentations armed by ``lazypatch.auto`` that no live Instrumentor stands for
    (none if it was not imported)."""
    discovery = sys.modules.get("lazypatch._discovery")
    return discovery.records(Record) if discovery is not None else ()


def status() -> "List[Record]":
    """One :class:`Record` per live hook, patch and instrumentor: hooks first, then patches, then
    instrumentors (ours in the order they were created; then the instrumentations that
    ``lazypatch.auto`` armed and that are not such an instrumentor: ours not loaded yet or that
    failed to load, OpenTelemetry's with ``source="opentelemetry"``). Removed hooks and patches
    are not listed.

    A patch's ``calls`` counts its applications; an instrumentor's ``module`` is its targets
    joined by ``","`` (the trigger module for OpenTelemetry's) and its ``calls`` counts the runs
    of ``_instrument``. Hooks that a finder in front of lazypatch's made late fire first.
    """
    _hooks.catch_up()
    return [
        *(Record("hook", *row) for row in _hooks.status_rows()),
        *(Record("patch", *row) for row in _patches.status_rows()),
        *(Record("instrumentor", *row) for row in _instrumentor.status_rows()),
        *_adapted_records(),
    ]
