"""``status()``: a read-only view over the registries of hooks, patches and instrumentors."""

import sys

from . import _hooks, _instrumentor, _patches


class Record:
    """One line of :func:`status`: a hook, a patch or an instrumentor, and how it fared."""

    __slots__ = ("kind", "name", "module", "state", "reason", "calls", "seconds", "source")

    def __init__(
        self, kind, name, module, state, reason=None, calls=0, seconds=0.0, source="lazypatch"
    ):
        self.kind = kind
        self.name = name
        self.module = module
        self.state = state
        self.reason = reason
        self.calls = calls
        self.seconds = seconds
        self.source = source

    def _fields(self):
        return tuple(getattr(self, name) for name in self.__slots__)

    def __eq__(self, other):
        return isinstance(other, Record) and self._fields() == other._fields()

    def __hash__(self):
        return hash(self._fields())

    def __repr__(self):
        fields = ", ".join(f"{name}={getattr(self, name)!r}" for name in self.__slots__)
        return f"Record({fields})"


def reason_of(error) -> "str | None":
    """``"ValueError: boom"`` for an exception, None for none."""
    if error is None:
        return None
    return f"{type(error).__name__}: {error}"


def _hook_records():
    for hook in _hooks.public_hooks():
        yield Record(
            "hook",
            _hooks.describe(hook.target),
            hook.module,
            hook.state,
            reason_of(hook.error) if hook.state == "failed" else None,
            hook.calls,
            hook._seconds,
        )


def _patch_records():
    for patch in _patches.all_patches():
        yield Record(
            "patch",
            patch.path,
            patch.module,
            patch.state,
            reason_of(patch.error) if patch.state == "failed" else None,
            patch.calls,
            patch._seconds,
        )


def _instrumentor_records():
    for instrumentor in _instrumentor.all_instrumentors():
        yield Record(
            "instrumentor",
            instrumentor.name,
            ",".join(instrumentor.targets),
            instrumentor.state,
            instrumentor.reason,
            instrumentor._calls,
            instrumentor._seconds,
        )


def _adapted_records():
    """OpenTelemetry's instrumentors armed by ``lazypatch.auto`` (none if it was not imported)."""
    discovery = sys.modules.get("lazypatch._discovery")
    return discovery.records(Record) if discovery is not None else ()


def status() -> list:
    """One :class:`Record` per hook, patch and instrumentor: hooks first, then patches, then
    instrumentors (ours in the order they were created, then OpenTelemetry's that
    ``lazypatch.auto`` armed, ``source="opentelemetry"``).

    A patch's ``calls`` counts its applications; an instrumentor's ``module`` is its targets
    joined by ``","`` (the trigger module for OpenTelemetry's) and its ``calls`` counts the runs
    of ``_instrument``. Hooks that a finder in front of lazypatch's made late fire first.
    """
    _hooks.catch_up()
    return [*_hook_records(), *_patch_records(), *_instrumentor_records(), *_adapted_records()]
