"""Order never matters (ARCHITECTURE.md rule 3), property-based.

A hypothesis state machine interleaves, over three generated modules: register a hook, remove it
(``Hook.remove`` or ``unregister_hook``), ``lazypatch.wrap`` (ordinary or ``in_place``),
``Patch.remove``, an Instrumentor's ``instrument`` / ``uninstrument``, import,
``importlib.reload``, deletion from ``sys.modules``, ``lazypatch.uninstall`` and
``lazypatch.install``, and references taken at random moments (``func = module.func``, a bound
method). Each step runs in a child interpreter; after every step the child reports what it
observes and it is compared with a model of the API:

- each patch is applied exactly once iff it is wanted (not removed; for an instrumentor's patch,
  the instrumentor is active) and its module is loaded: calling the patched function returns each
  wrapper's marker exactly once;
- each hook has fired exactly once per execution of its module since it was registered, always on
  the finished module that ``sys.modules`` holds (modules count their executions);
- with nothing applied, the module's attributes are its originals, by identity, and so is their
  code once no in-place patch is left on them;
- every reference ever taken calls the in-place layers now on the function it reached, beneath
  (inside) the ordinary layers that were on the attribute when it was taken and are not removed
  since; the functions of earlier executions keep their in-place layers until ``remove()``.
  Markers are compared as sets within each group: the order in which patches of one module
  apply is the hooks' business, checked by their own tests.

Lifecycle model (README "Lifecycle", API.md section 4): while the finder is uninstalled, executions
fire nothing; ``install()`` fires, once, every live hook that missed the latest execution of a
module still loaded. A hook registered while its module is loaded fires at once, installed or not.

One child interpreter runs a batch of examples, each with its own uniquely named modules and its
own Instrumentor class; a child is replaced after a batch or after any failure.
"""

import json
import os
import subprocess
import sys
import tempfile

import pytest
from fresh import SECONDARY_INTERPRETER
from hypothesis import HealthCheck, event, settings
from hypothesis import strategies as st
from hypothesis.control import currently_in_test_context
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

pytestmark = pytest.mark.slow

MODULES = 3
PATHS = ("func", "K.method")
TARGETS = (0, 1)  # the instrumentor waits for modules 0 and 1...
# ...and patches 0 and 2, and 1 in place
INSTRUMENTOR_PATCHES = ((0, "func", False), (2, "K.method", False), (1, "func", True))
EXAMPLES_PER_CHILD = 25

CHILD = r'''
import faulthandler, importlib, json, os, sys, traceback
import lazypatch

ROOT = sys.argv[1]
sys.path.insert(0, ROOT)
PATHS = ("func", "K.method")
INSTRUMENTOR_PATCHES = ((0, "func", False), (2, "K.method", False), (1, "func", True))

SOURCE = """
import ordering_counter
ordering_counter.EXECS[__name__] = ordering_counter.EXECS.get(__name__, 0) + 1
DONE = False


def func():
    return []


class K:
    def method(self):
        return []


ORIG_FUNC = func
ORIG_METHOD = K.__dict__["method"]
ORIG_CODES = (func.__code__, ORIG_METHOD.__code__)
DONE = True
"""
with open(os.path.join(ROOT, "ordering_counter.py"), "w") as f:
    f.write("EXECS = {}\n")
import ordering_counter


def marker_wrapper(marker):
    def wrapper(wrapped, instance, args, kwargs):
        return wrapped(*args, **kwargs) + [marker]

    return wrapper


class Example:
    def __init__(self, number, modules, targets):
        self.names = [f"ordering{number}_m{i}" for i in range(modules)]
        for name in self.names:
            with open(os.path.join(ROOT, name + ".py"), "w") as f:
                f.write(SOURCE)
        importlib.invalidate_caches()
        self.hooks = {}
        self.hook_targets = {}
        self.calls = {}
        self.patches = {}
        self.refs = {}
        self.errors = []
        example = self

        class Instr(lazypatch.Instrumentor):
            name = f"ordering{number}"

            def _instrument(self, **kwargs):
                example.cycles += 1
                for j, (mod, path, in_place) in enumerate(INSTRUMENTOR_PATCHES):
                    marker = f"i{example.cycles}_{j}"
                    example.patches[marker] = self.wrap(
                        example.names[mod], path, marker_wrapper(marker), in_place=in_place
                    )

        Instr.targets = tuple(self.names[t] for t in targets)
        self.cycles = 0
        self.instrumentor = Instr()

    def make_hook(self, key, name):
        self.calls[key] = 0

        def hook(module):
            self.calls[key] += 1
            if module is not sys.modules.get(name):
                self.errors.append(f"hook {key} got a module that is not sys.modules[{name!r}]")
            if not module.__dict__.get("DONE"):
                self.errors.append(f"hook {key} ran on a half-built {name}")

        return hook

    def do(self, cmd):
        op = cmd["op"]
        if op == "hook":
            name = self.names[cmd["mod"]]
            fn = self.make_hook(cmd["key"], name)
            self.hook_targets[cmd["key"]] = (name, fn)
            self.hooks[cmd["key"]] = lazypatch.register_hook(name, fn)
        elif op == "unhook":
            if cmd["how"] == "remove":
                return self.hooks[cmd["key"]].remove()
            name, fn = self.hook_targets[cmd["key"]]
            return lazypatch.unregister_hook(name, fn)
        elif op == "wrap":
            name = self.names[cmd["mod"]]
            target = sys.modules.get(name, name) if cmd["by_object"] else name
            wrapper = marker_wrapper(cmd["key"])
            patch = lazypatch.wrap(target, cmd["path"], wrapper, in_place=cmd["in_place"])
            self.patches[cmd["key"]] = patch
        elif op == "ref":
            m = sys.modules[self.names[cmd["mod"]]]
            self.refs[cmd["key"]] = m.func if cmd["path"] == "func" else m.K().method
        elif op == "unwrap":
            return self.patches[cmd["key"]].remove()
        elif op == "instrument":
            return self.instrumentor.instrument()
        elif op == "uninstrument":
            return self.instrumentor.uninstrument()
        elif op == "import":
            importlib.import_module(self.names[cmd["mod"]])
        elif op == "reload":
            importlib.reload(sys.modules[self.names[cmd["mod"]]])
        elif op == "delete":
            del sys.modules[self.names[cmd["mod"]]]
        elif op == "uninstall":
            lazypatch.uninstall()
        elif op == "install":
            lazypatch.install()
        else:
            raise ValueError(op)

    def observe(self):
        modules = []
        for name in self.names:
            m = sys.modules.get(name)
            if m is None:
                modules.append(None)
                continue
            modules.append(
                {
                    "func": m.func(),
                    "K.method": m.K().method(),
                    "func_original": m.func is m.ORIG_FUNC,
                    "K.method_original": m.K.__dict__["method"] is m.ORIG_METHOD,
                    "func_code": m.ORIG_FUNC.__code__ is m.ORIG_CODES[0],
                    "K.method_code": m.ORIG_METHOD.__code__ is m.ORIG_CODES[1],
                }
            )
        return {
            "execs": [ordering_counter.EXECS.get(name, 0) for name in self.names],
            "calls": self.calls,
            "hook_states": {key: hook.state for key, hook in self.hooks.items()},
            "patch_states": {key: patch.state for key, patch in self.patches.items()},
            "instrumentor": self.instrumentor.state,
            "installed": any(type(f).__module__ == "lazypatch._finder" for f in sys.meta_path),
            "modules": modules,
            "refs": {key: ref() for key, ref in self.refs.items()},
            "errors": self.errors,
        }


# The finder installs itself on the first registration: have that happen now, so that every
# example starts from the same state.
lazypatch.register_hook("ordering_never_imported", print).remove()
example = None
for line in sys.stdin:
    faulthandler.dump_traceback_later(60, exit=True)
    cmd = json.loads(line)
    reply = {}
    try:
        if cmd["op"] == "new":
            lazypatch.install()
            example = Example(cmd["number"], cmd["modules"], cmd["targets"])
        else:
            reply["result"] = example.do(cmd)
    except BaseException:
        reply["raised"] = traceback.format_exc()
    try:
        reply["observed"] = example.observe()
    except BaseException:
        reply["raised"] = reply.get("raised", "") + traceback.format_exc()
    faulthandler.cancel_dump_traceback_later()
    sys.stdout.write(json.dumps(reply) + "\n")
    sys.stdout.flush()
'''


class Child:
    """A child interpreter executing steps; replaced after a batch of examples or a failure."""

    def __init__(self):
        self.dir = tempfile.TemporaryDirectory(prefix="lazypatch-ordering-")
        self.stderr = open(os.path.join(self.dir.name, "stderr.txt"), "w+")  # noqa: SIM115
        env = dict(os.environ)
        env.pop("LAZYPATCH_STRICT", None)
        self.proc = subprocess.Popen(
            [sys.executable, "-c", CHILD, self.dir.name],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self.stderr,
            env=env,
            text=True,
            bufsize=1,
        )
        self.examples = 0

    def send(self, cmd):
        self.proc.stdin.write(json.dumps(cmd) + "\n")
        self.proc.stdin.flush()
        line = self.proc.stdout.readline()
        if not line:
            self.proc.wait()
            self.stderr.seek(0)
            raise AssertionError(
                f"child died (exit {self.proc.returncode}) at {cmd}:\n{self.stderr.read()}"
            )
        return json.loads(line)

    def close(self):
        try:
            self.proc.stdin.close()
            self.proc.wait(timeout=30)
        except Exception:
            self.proc.kill()
            self.proc.wait()
        self.stderr.close()
        self.dir.cleanup()


_child = None
_numbers = iter(range(10**9))


def child_for_new_example():
    global _child
    if _child is not None and _child.examples >= EXAMPLES_PER_CHILD:
        discard_child()
    if _child is None:
        _child = Child()
    _child.examples += 1
    return _child


def discard_child():
    global _child
    if _child is not None:
        _child.close()
        _child = None


# -- the model ------------------------------------------------------------------------------


class Listener:
    """Anything the model fires on a module's execution: a hook, a patch, an instrumentor target."""

    __slots__ = ("kind", "mod", "key", "live", "missed")

    def __init__(self, kind, mod, key):
        self.kind = kind
        self.mod = mod
        self.key = key
        self.live = True
        self.missed = False  # the finder was out when the current module object executed


class Model:
    def __init__(self):
        self.installed = True
        self.loaded = [False] * MODULES
        self.execs = [0] * MODULES
        self.layers = [{path: [] for path in PATHS} for _ in range(MODULES)]
        self.in_place = {}  # (mod, execution, path) -> keys of the in-place layers, innermost first
        self.refs = {}  # key -> (mod, path, execution, ordinary layers on the attribute then)
        self.listeners = []
        self.executing = set()
        self.calls = {}
        self.hooks = {}  # key -> Listener
        self.patches = {}  # key -> {"mod", "path", "state", "listener"}
        self.instrumentor = "off"
        self.instr_loaded = set()
        self.instr_targets = []
        self.instr_made = []
        self.cycles = 0

    # registrations and firing

    def _register(self, kind, mod, key):
        listener = Listener(kind, mod, key)
        self.listeners.append(listener)
        if self.loaded[mod] and mod not in self.executing:
            self._fire(listener)
        return listener

    def _fire(self, listener):
        listener.missed = False
        if listener.kind == "hook":
            self.calls[listener.key] += 1
        elif listener.kind == "patch":
            patch = self.patches[listener.key]
            layers = self.layers[listener.mod][patch["path"]]
            if listener.key not in layers:
                layers.append(listener.key)
            if patch["in_place"]:
                where = (listener.mod, self.execs[listener.mod], patch["path"])
                on_function = self.in_place.setdefault(where, [])
                if listener.key not in on_function:
                    on_function.append(listener.key)
            patch["state"] = "applied"
        else:
            self._target_loaded(listener.key)

    def _round(self, mod, only_missed):
        """One execution's end (or a catch-up): due listeners fire in registration order,
        including those registered meanwhile."""
        self.executing.add(mod)
        start = len(self.listeners)
        fired = set()
        while True:
            due = None
            for index, listener in enumerate(self.listeners):
                if listener.live and listener.mod == mod and id(listener) not in fired:
                    if not only_missed or listener.missed or index >= start:
                        due = listener
                        break
            if due is None:
                break
            fired.add(id(due))
            self._fire(due)
        self.executing.discard(mod)

    def _live(self, mod):
        return [lst for lst in self.listeners if lst.live and lst.mod == mod]

    # steps

    def register_hook(self, mod, key):
        self.calls[key] = 0
        self.hooks[key] = self._register("hook", mod, key)

    def remove_hook(self, key):
        listener = self.hooks[key]
        was_live, listener.live = listener.live, False
        return was_live

    def hook_state(self, key):
        if not self.hooks[key].live:
            return "removed"
        return "fired" if self.calls[key] else "pending"

    def wrap(self, mod, path, key, in_place=False):
        self.patches[key] = {
            "mod": mod,
            "path": path,
            "state": "pending",
            "listener": None,
            "in_place": in_place,
        }
        self.patches[key]["listener"] = self._register("patch", mod, key)

    def remove_patch(self, key):
        patch = self.patches[key]
        if patch["state"] == "removed":
            return
        patch["state"] = "removed"
        patch["listener"].live = False
        layers = self.layers[patch["mod"]][patch["path"]]
        if key in layers:
            layers.remove(key)
        for on_function in self.in_place.values():
            if key in on_function:
                on_function.remove(key)

    def take_reference(self, mod, path, key):
        ordinary = [k for k in self.layers[mod][path] if not self.patches[k]["in_place"]]
        self.refs[key] = (mod, path, self.execs[mod], ordinary)

    def reference_markers(self, key):
        """What calling reference ``key`` returns: in-place layers, then ordinary ones."""
        mod, path, execution, ordinary = self.refs[key]
        in_place = self.in_place.get((mod, execution, path), [])
        return list(in_place), [k for k in ordinary if self.patches[k]["state"] != "removed"]

    def instrument(self):
        if self.instrumentor != "off":
            return
        self.instrumentor = "pending"
        self.instr_loaded = set()
        for target in TARGETS:
            listener = self._register("target", target, target)
            if self.instrumentor == "pending":
                self.instr_targets.append(listener)
            else:
                listener.live = False

    def _target_loaded(self, target):
        if self.instrumentor != "pending":
            return
        self.instr_loaded.add(target)
        if len(self.instr_loaded) < len(TARGETS):
            return
        self.cycles += 1
        for j, (mod, path, in_place) in enumerate(INSTRUMENTOR_PATCHES):
            key = f"i{self.cycles}_{j}"
            self.instr_made.append(key)
            self.wrap(mod, path, key, in_place)
        self.instrumentor = "active"
        self._disarm()

    def _disarm(self):
        for listener in self.instr_targets:
            listener.live = False
        self.instr_targets = []

    def uninstrument(self):
        if self.instrumentor == "off":
            return
        self.instrumentor = "off"
        self._disarm()
        made, self.instr_made = self.instr_made, []
        for key in reversed(made):
            self.remove_patch(key)

    def execute(self, mod):
        self.execs[mod] += 1
        self.loaded[mod] = True
        self.layers[mod] = {path: [] for path in PATHS}
        if self.installed:
            self._round(mod, only_missed=False)
        else:
            for listener in self._live(mod):
                listener.missed = True

    def delete(self, mod):
        self.loaded[mod] = False
        for listener in self.listeners:
            if listener.mod == mod:
                listener.missed = False

    def uninstall(self):
        self.installed = False

    def install(self):
        if self.installed:
            return
        self.installed = True
        for mod in range(MODULES):
            if self.loaded[mod] and any(lst.missed for lst in self._live(mod)):
                self._round(mod, only_missed=True)

    def wanted(self, mod, path):
        return {
            key
            for key, patch in self.patches.items()
            if patch["mod"] == mod and patch["path"] == path and patch["state"] != "removed"
        }


# -- the state machine ----------------------------------------------------------------------


def note_event(text):
    """Hypothesis statistics (``--hypothesis-show-statistics``): how often what happens."""
    if currently_in_test_context():
        event(text)


class Ordering(RuleBasedStateMachine):
    def __init__(self):
        super().__init__()
        self.model = Model()
        self.child = None
        self.observed = None
        self.steps = []
        self.counter = 0

    @initialize(
        hooks=st.lists(st.integers(0, MODULES - 1), max_size=3),
        patches=st.lists(
            st.tuples(st.integers(0, MODULES - 1), st.sampled_from(PATHS)), max_size=4
        ),
        instrument=st.booleans(),
    )
    def new_example(self, hooks=(), patches=(), instrument=False):
        """A fresh set of modules; some hooks, patches and the instrumentor armed beforehand."""
        self.child = child_for_new_example()
        self.send({"op": "new", "number": next(_numbers), "modules": MODULES, "targets": TARGETS})
        for mod in hooks:
            self.register_hook(mod)
        for mod, path in patches:
            self.wrap(mod, path, by_object=False, in_place=False)
        if instrument:
            self.instrumentor(on=True)

    def send(self, cmd):
        self.steps.append(cmd)
        try:
            reply = self.child.send(cmd)
        except BaseException:
            discard_child()
            raise
        if "raised" in reply:
            discard_child()
            raise AssertionError(f"step {cmd} raised in the child:\n{reply['raised']}")
        self.observed = reply["observed"]
        return reply.get("result")

    def step(self, change, cmd):
        """Apply ``change`` to the model and ``cmd`` in the child; return (model's, child's)."""
        expected = change(self.model)
        if any(any(layers.values()) for layers in self.model.layers):
            note_event("a patch is applied")
        if any(self.model.in_place.values()):
            note_event("an in-place layer is applied")
        if self.model.refs:
            note_event("references are held")
        if self.model.instrumentor == "active":
            note_event("instrumentor active")
        if not self.model.installed:
            note_event("uninstalled")
        return expected, self.send(cmd)

    def teardown(self):
        note_event(f"steps >= {len(self.steps) // 10 * 10}")

    def key(self, prefix):
        self.counter += 1
        return f"{prefix}{self.counter}"

    @rule(mod=st.integers(0, MODULES - 1))
    def register_hook(self, mod):
        key = self.key("h")
        self.step(lambda m: m.register_hook(mod, key), {"op": "hook", "mod": mod, "key": key})

    @precondition(lambda self: self.model.hooks)
    @rule(pick=st.integers(0, 50), how=st.sampled_from(["remove", "unregister"]))
    def remove_hook(self, pick, how):
        keys = sorted(self.model.hooks)
        key = keys[pick % len(keys)]
        cmd = {"op": "unhook", "key": key, "how": how}
        expected, result = self.step(lambda m: m.remove_hook(key), cmd)
        if how == "unregister":
            assert result is expected, f"unregister_hook returned {result}, expected {expected}"

    @rule(
        mod=st.integers(0, MODULES - 1),
        path=st.sampled_from(PATHS),
        by_object=st.booleans(),
        in_place=st.booleans(),
    )
    def wrap(self, mod, path, by_object, in_place=False):
        key = self.key("p")
        cmd = {"op": "wrap", "mod": mod, "path": path, "key": key, "by_object": by_object}
        cmd["in_place"] = in_place
        self.step(lambda m: m.wrap(mod, path, key, in_place), cmd)

    @precondition(lambda self: self.model.patches)
    @rule(pick=st.integers(0, 50))
    def remove_patch(self, pick):
        keys = sorted(self.model.patches)
        key = keys[pick % len(keys)]
        self.step(lambda m: m.remove_patch(key), {"op": "unwrap", "key": key})

    @rule(on=st.booleans())
    def instrumentor(self, on):
        if on:
            self.step(Model.instrument, {"op": "instrument"})
        else:
            self.step(Model.uninstrument, {"op": "uninstrument"})

    @rule(mod=st.integers(0, MODULES - 1))
    def import_module(self, mod):
        def change(model):
            if not model.loaded[mod]:
                model.execute(mod)

        self.step(change, {"op": "import", "mod": mod})

    @rule()
    def import_all(self):
        for mod in range(MODULES):
            self.import_module(mod)

    def loaded(self, pick):
        loaded = [mod for mod in range(MODULES) if self.model.loaded[mod]]
        return loaded[pick % len(loaded)]

    @precondition(lambda self: any(self.model.loaded))
    @rule(pick=st.integers(0, MODULES - 1))
    def reload(self, pick):
        mod = self.loaded(pick)
        self.step(lambda m: m.execute(mod), {"op": "reload", "mod": mod})

    @precondition(lambda self: any(self.model.loaded))
    @rule(pick=st.integers(0, MODULES - 1))
    def delete(self, pick):
        mod = self.loaded(pick)
        self.step(lambda m: m.delete(mod), {"op": "delete", "mod": mod})

    @precondition(lambda self: any(self.model.loaded))
    @rule(pick=st.integers(0, MODULES - 1), path=st.sampled_from(PATHS))
    def take_reference(self, pick, path):
        mod = self.loaded(pick)
        key = self.key("r")
        cmd = {"op": "ref", "mod": mod, "path": path, "key": key}
        self.step(lambda m: m.take_reference(mod, path, key), cmd)

    @rule(out=st.booleans())
    def finder(self, out):
        if out:
            self.step(Model.uninstall, {"op": "uninstall"})
        else:
            self.step(Model.install, {"op": "install"})

    @invariant()
    def matches_the_model(self):
        if self.observed is None:
            return
        model, seen = self.model, self.observed
        assert seen["errors"] == [], seen["errors"]
        assert seen["installed"] == model.installed
        assert seen["execs"] == model.execs, "executions of the modules"
        assert seen["calls"] == model.calls, "hook calls (one per execution since registered)"
        states = {key: model.hook_state(key) for key in model.hooks}
        assert seen["hook_states"] == states, "Hook.state"
        states = {key: patch["state"] for key, patch in model.patches.items()}
        assert seen["patch_states"] == states, "Patch.state"
        assert seen["instrumentor"] == model.instrumentor, "Instrumentor.state"
        for mod in range(MODULES):
            observed = seen["modules"][mod]
            assert (observed is not None) == model.loaded[mod], f"module {mod} in sys.modules"
            if observed is None:
                continue
            for path in PATHS:
                layers = model.layers[mod][path]
                if model.installed:
                    # The model's own promise: applied iff wanted, while the finder is in.
                    assert set(layers) == model.wanted(mod, path), "model: applied iff wanted"
                markers = observed[path]
                assert sorted(markers) == sorted(layers), (
                    f"module {mod} {path}: markers {markers}, expected each of {layers} once"
                )
                in_place = model.in_place.get((mod, model.execs[mod], path), [])
                assert sorted(markers[: len(in_place)]) == sorted(in_place), (
                    f"module {mod} {path}: markers {markers}, in-place layers {in_place} first"
                )
                if not layers:
                    assert observed[path + "_original"], f"module {mod} {path}: original restored"
                if not in_place:
                    assert observed[path + "_code"], f"module {mod} {path}: original code"
        for key, markers in seen["refs"].items():
            in_place, ordinary = model.reference_markers(key)
            assert sorted(markers[: len(in_place)]) == sorted(in_place) and sorted(
                markers[len(in_place) :]
            ) == sorted(ordinary), (
                f"reference {key} to {model.refs[key][:3]}: markers {markers}, expected "
                f"in-place {in_place} then ordinary {ordinary}"
            )


Ordering.TestCase.settings = settings(
    max_examples=100 if SECONDARY_INTERPRETER else 300,
    stateful_step_count=30,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)


class TestOrdering(Ordering.TestCase):
    def tearDown(self):
        discard_child()


def replay(steps):
    """Run ``[(rule name, kwargs), ...]`` through the state machine, checking after each step."""
    machine = Ordering()
    try:
        machine.new_example()
        machine.matches_the_model()
        for name, kwargs in steps:
            getattr(machine, name)(**kwargs)
            machine.matches_the_model()
    finally:
        discard_child()


def test_replay_smoke():
    """The machinery itself: a plain sequence with every kind of step."""
    replay(
        [
            ("register_hook", {"mod": 0}),
            ("wrap", {"mod": 0, "path": "func", "by_object": False}),
            ("instrumentor", {"on": True}),
            ("import_module", {"mod": 0}),
            ("import_module", {"mod": 1}),
            ("import_module", {"mod": 2}),
            ("reload", {"pick": 0}),
            ("remove_patch", {"pick": 0}),
            ("instrumentor", {"on": False}),
            ("delete", {"pick": 1}),
            ("remove_hook", {"pick": 0, "how": "unregister"}),
        ]
    )


def test_replay_in_place_smoke():
    """In-place patches and references: taken before, across a reload, kept after a deletion."""
    replay(
        [
            ("import_module", {"mod": 0}),
            ("take_reference", {"pick": 0, "path": "func"}),
            ("take_reference", {"pick": 0, "path": "K.method"}),
            ("wrap", {"mod": 0, "path": "func", "by_object": False, "in_place": True}),
            ("wrap", {"mod": 0, "path": "func", "by_object": True, "in_place": False}),
            ("take_reference", {"pick": 0, "path": "func"}),
            ("wrap", {"mod": 0, "path": "K.method", "by_object": False, "in_place": True}),
            ("wrap", {"mod": 0, "path": "func", "by_object": False, "in_place": True}),
            ("reload", {"pick": 0}),
            ("take_reference", {"pick": 0, "path": "func"}),
            ("remove_patch", {"pick": 0}),
            ("instrumentor", {"on": True}),
            ("import_all", {}),
            ("take_reference", {"pick": 1, "path": "func"}),
            ("delete", {"pick": 0}),
            ("import_module", {"mod": 0}),
            ("instrumentor", {"on": False}),
            ("remove_patch", {"pick": 2}),
            ("remove_patch", {"pick": 1}),
            ("remove_patch", {"pick": 3}),
        ]
    )
