"""Process state: every registry and lock lazypatch keeps, in one object, and the after-fork step.

Everything here describes what is live. A removed hook or patch is dropped from its registry at
once, so memory does not grow with register/remove or instrument/uninstrument cycles. The locks
are re-created in a forked child (``os.register_at_fork``): a lock that another thread of the
parent held at the moment of the fork would otherwise stay held in the child forever. Objects
with locks of their own (a ``TreeExporter``) have them re-created by the same step
(:meth:`ProcessState.renew_after_fork`).

Each lock guards only its own registries' bookkeeping; foreign code (a hook, a wrapper, an
``_instrument``) never runs under ``hooks_lock``. Nested order, where two are held: instrumentors
before patches before hooks.
"""

import os
from _thread import RLock, allocate_lock

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, Callable, Dict, List, Optional, Tuple

    from opentelemetry.sdk.resources import Resource

    from ._hooks import Hook
    from ._inplace import _Chain
    from ._instrumentor import Instrumentor
    from ._patches import Patch, _Layer


class ProcessState:
    """The registries and locks of this process (one instance: :data:`state`)."""

    __slots__ = (
        "hooks_lock",
        "watched",
        "public_hooks",
        "depth",
        "gens",
        "seen",
        "registrations",
        "offline",
        "auto_installed",
        "patches_lock",
        "patches",
        "layers",
        "chains",
        "instrumentors_lock",
        "instrumentors",
        "tracing_lock",
        "tracing_done",
        "tracing_running",
        "metrics_done",
        "resource",
        "span_triggers",
        "measure_triggers",
        "process_triggers",
        "lock_owners",
        "entries",
        "otel_hooks_lock",
        "otel_hooks",
        "otel_eager",
    )

    def __init__(self) -> None:
        # Hooks (guarded by hooks_lock).
        self.hooks_lock = RLock()
        self.watched: Dict[str, List[Hook]] = {}  # module -> live hooks; the finder's watch list
        self.public_hooks: Dict[Hook, None] = {}  # live public hooks, in registration order
        self.depth: Dict[str, int] = {}  # module -> executions in progress
        self.gens: Dict[str, int] = {}  # module -> executions begun
        self.seen: Dict[str, Tuple[object, object]] = {}  # watched module -> (module, spec) its
        # hooks last saw executed: tells a module resolved by a finder in front (run late), and
        # one whose end has been reported while importlib finishes its import (not twice)
        self.registrations = 0  # hooks ever registered: an executing module's end asks whether
        # one came while its hooks ran
        self.offline = False  # uninstalled: hooks remember what they saw, for install()
        self.auto_installed = False  # the finder was installed (or uninstalled) once already
        # Patches (patches_lock).
        self.patches_lock = RLock()
        self.patches: Dict[Patch, None] = {}  # live patches, in creation order
        self.layers: Dict[int, _Layer] = {}  # id(descriptor or function of a wrap layer) -> layer
        self.chains: Dict[int, _Chain] = {}  # id(function) -> in-place chain, while it has a layer
        # Instrumentors (instrumentors_lock): one per class, in creation order.
        self.instrumentors_lock = RLock()
        self.instrumentors: List[Instrumentor] = []
        # Tracing and metrics set-up (tracing_lock).
        self.tracing_lock = RLock()
        self.tracing_done = False
        self.tracing_running = False
        self.metrics_done = False
        self.resource: Optional[Resource] = None  # the SDK resource, made once
        # The patches that set the SDK up at the first span or measurement, and make a
        # multiprocessing child flush (``_triggers``); each list is filled once.
        self.span_triggers: List[Patch] = []
        self.measure_triggers: List[Patch] = []
        self.process_triggers: List[Patch] = []
        # Objects with locks of their own (TreeExporter) -> what re-creates them after a fork:
        # weak keys, the mapping made by the first of them (tracing_lock).
        self.lock_owners: Any = None
        # Discovery: the entries armed by lazypatch.auto (None until then), and the
        # opentelemetry_pre/post_instrument entry points not run yet (otel_hooks_lock).
        self.entries: Optional[List[Any]] = None
        self.otel_hooks_lock = allocate_lock()
        self.otel_hooks: Dict[str, List[str]] = {}
        self.otel_eager = False  # OpenTelemetry's own loader (opentelemetry-instrument) runs here

    def after_fork_in_child(self) -> None:
        """Re-create every lock: in the child, only the thread that forked is left."""
        self.hooks_lock = RLock()
        self.patches_lock = RLock()
        self.instrumentors_lock = RLock()
        self.tracing_lock = RLock()
        self.otel_hooks_lock = allocate_lock()
        for owner, renew in list((self.lock_owners or {}).items()):
            renew(owner)

    def renew_after_fork(self, owner: "Any", renew: "Callable[[Any], None]") -> None:
        """Have the after-fork step call ``renew(owner)`` too, to re-create the locks ``owner``
        keeps, for as long as ``owner`` lives."""
        with self.tracing_lock:
            if self.lock_owners is None:
                from weakref import WeakKeyDictionary

                self.lock_owners = WeakKeyDictionary()
            self.lock_owners[owner] = renew


state = ProcessState()

if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=state.after_fork_in_child)
