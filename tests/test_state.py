"""Process state: fork-safe locks, and what is removed is forgotten.

Fork: a parent thread is held inside a public call that runs user code (a hook running, a
wrapper's apply, an ``_instrument``, a ``status()`` call) at the moment of ``os.fork()``. The
child then registers, patches, instruments, imports and calls ``status()`` as usual, under a
watchdog (faulthandler ends it, with every thread's stack, if it hangs).
"""

import json
import os

import pytest

pytestmark = pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")

FORK = """
import faulthandler, json, os, sys, threading, traceback
import lazypatch

entered, release = threading.Event(), threading.Event()
PARENT = os.getpid()

def block(*args):
    if os.getpid() == PARENT:  # only the parent's thread is held
        entered.set()
        release.wait(60)

class Blocking:
    # What a public call runs without knowing: an attribute lookup, a name for status().
    __name__ = "blocking"

    def __call__(self, module):
        pass

    def __getattr__(self, name):
        block()
        raise AttributeError(name)

class Held(lazypatch.Instrumentor):
    def _instrument(self, **kwargs):
        block()

HELD = {
    "hook": lambda: (lazypatch.register_hook("held_module", block), __import__("held_module")),
    "apply": lambda: lazypatch.wrap(Blocking(), "attribute", lambda *a: None),
    "instrument": lambda: Held().instrument(),
    "status": lambda: (lazypatch.register_hook("never_imported", Blocking()), lazypatch.status()),
}

thread = threading.Thread(target=HELD[HELD_IN], daemon=True)
thread.start()
assert entered.wait(60), "the held call never reached user code"
pid = os.fork()
if pid == 0:
    faulthandler.dump_traceback_later(30, exit=True)
    try:
        seen = []
        hook = lazypatch.register_hook("child_module", seen.append)

        def tag(wrapped, instance, args, kwargs):
            return wrapped(*args, **kwargs) + "+wrapped"

        patch = lazypatch.wrap("child_module", "f", tag)

        class InChild(lazypatch.Instrumentor):
            targets = ("child_module",)

            def _instrument(self, **kwargs):
                self.wrap("child_module", "g", tag)

        InChild().instrument()
        import child_module
        facts = {
            "hook": hook.state,
            "patch": patch.state,
            "instrumentor": InChild().state,
            "f": child_module.f(),
            "g": child_module.g(),
            "status": sorted(r.kind + ":" + r.state for r in lazypatch.status()),
        }
        os.write(1, json.dumps(facts).encode() + b"\\n")
        os._exit(0)
    except BaseException:
        traceback.print_exc()
        os._exit(1)
release.set()
_, status = os.waitpid(pid, 0)
assert os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0, f"child: wait status {status}"
"""

CHILD_FILES = {
    "held_module.py": "X = 1\n",
    "child_module.py": "def f():\n    return 'f'\n\ndef g():\n    return 'g'\n",
}


@pytest.mark.parametrize("held", ["hook", "apply", "instrument", "status"])
def test_a_forked_child_works_whatever_a_parent_thread_was_doing(pyrun, held):
    proc = pyrun(f"HELD_IN = {held!r}\n" + FORK, files=CHILD_FILES, timeout=120, check=False)
    assert proc.returncode == 0, proc.stderr
    facts = json.loads(proc.stdout)
    assert facts["hook"] == "fired" and facts["patch"] == "applied", facts
    assert facts["instrumentor"] == "active", facts
    assert facts["f"] == "f+wrapped" and facts["g"] == "g+wrapped", facts
    assert "instrumentor:active" in facts["status"], facts


MEMORY = """
import gc, json, tracemalloc
import lazypatch
import target

def tag(wrapped, instance, args, kwargs):
    return wrapped(*args, **kwargs)

class Cycling(lazypatch.Instrumentor):
    targets = ("target",)

    def _instrument(self, **kwargs):
        self.wrap("target", "f", tag)
        self.register_hook("target", lambda module: None)

def cycle():
    Cycling().instrument()
    Cycling().uninstrument()

for _ in range(1000):
    cycle()
gc.collect()
tracemalloc.start()
before = tracemalloc.get_traced_memory()[0]
for _ in range(10000):
    cycle()
gc.collect()
grown = tracemalloc.get_traced_memory()[0] - before
records = [(r.kind, r.name, r.state) for r in lazypatch.status()]
assert target.f is target.ORIGINAL, "a layer was left behind"
print(json.dumps({"grown": grown, "records": records}))
"""


@pytest.mark.slow
def test_memory_is_flat_over_ten_thousand_cycles(pyrun):
    proc = pyrun(MEMORY, files={"target.py": "def f():\n    return 1\n\nORIGINAL = f\n"})
    facts = json.loads(proc.stdout)
    assert facts["records"] == [["instrumentor", "cycling", "off"]], facts["records"]
    # Each cycle makes a patch and three hooks; kept, 10,000 cycles would hold megabytes.
    assert facts["grown"] < 64 * 1024, facts["grown"]


def test_status_lists_only_live_handles(pyrun):
    pyrun(
        """
        import lazypatch
        kept = lazypatch.register_hook("target", print)
        gone = lazypatch.register_hook("target", print)
        patch = lazypatch.wrap("target", "f", lambda w, i, a, k: w(*a, **k))
        gone_patch = lazypatch.wrap("target", "f", lambda w, i, a, k: w(*a, **k))
        gone.remove()
        gone_patch.remove()
        records = lazypatch.status()
        assert [(r.kind, r.state) for r in records] == [("hook", "pending"), ("patch", "pending")]
        assert gone.state == "removed" and gone_patch.state == "removed"
        """,
    )


EXPORTER_FORK = """
import faulthandler, io, json, os, threading, traceback
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from lazypatch.export import TreeExporter

entered, release = threading.Event(), threading.Event()
PARENT = os.getpid()

def block():
    if os.getpid() == PARENT:  # only the parent's thread is held
        entered.set()
        release.wait(60)

class Stream(io.StringIO):
    # Held in write: the parent's thread holds the exporter's write lock.
    def write(self, text):
        if HELD_IN == "write":
            block()
        return super().write(text)

class Span:
    # Held in its context: the parent's thread holds the exporter's buffer lock.
    @property
    def context(self):
        block()

out = Stream()
exporter = TreeExporter(out, width=80, color=False)
provider = TracerProvider()
provider.add_span_processor(SimpleSpanProcessor(exporter))
tracer = provider.get_tracer("fork")

def held():
    if HELD_IN == "write":
        with tracer.start_as_current_span("in parent"):
            pass
    else:
        exporter.export([Span()])

thread = threading.Thread(target=held, daemon=True)
thread.start()
assert entered.wait(60), "the held call never reached the stream or the span"
pid = os.fork()
if pid == 0:
    faulthandler.dump_traceback_later(30, exit=True)
    try:
        out.seek(0)
        out.truncate()
        with tracer.start_as_current_span("in child"):
            with tracer.start_as_current_span("nested"):
                pass
        exporter.force_flush()
        os.write(1, json.dumps({"printed": out.getvalue()}).encode())
        os._exit(0)
    except BaseException:
        traceback.print_exc()
        os._exit(1)
release.set()
_, status = os.waitpid(pid, 0)
assert os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0, f"child: wait status {status}"
"""


@pytest.mark.parametrize("held", ["write", "buffer"])
def test_a_forked_child_prints_trees_whatever_a_parent_thread_was_exporting(pyrun, held):
    proc = pyrun(f"HELD_IN = {held!r}\n" + EXPORTER_FORK, timeout=120, check=False)
    assert proc.returncode == 0, proc.stderr
    printed = json.loads(proc.stdout)["printed"]
    header, root, child = printed.splitlines()[:3]  # the tree of the child's trace, whole
    assert header.startswith("trace ") and "  2 spans  " in header, printed
    assert root.startswith("in child internal ") and child.startswith("└─ nested internal "), (
        printed
    )
