"""Nanoseconds added per call by a pass-through wrapper, for a function and for a method.

Compares the bare call, a plain closure decorator (the floor for any wrapper), lazypatch.wrap,
wrapt's C FunctionWrapper / wrap_function_wrapper, and lazypatch layers after remove(): with
nothing on top (the original is restored) and under a foreign decorator (a pass-through layer).

    python benchmarks/call_overhead.py [--calls N] [--repeat R]

Prints a Markdown table and writes it to benchmarks/results/call_overhead.md.
"""

import argparse
import functools
import platform
import sys
import types
from pathlib import Path
from time import perf_counter

import wrapt

import lazypatch

SOURCE = """
def function(a, b=2):
    return a

class Class:
    def method(self, a, b=2):
        return a
"""


def passthrough(wrapped, instance, args, kwargs):
    return wrapped(*args, **kwargs)


def closure(func):
    @functools.wraps(func)
    def wrapper(*args, **kwargs):
        return func(*args, **kwargs)

    return wrapper


def fresh_module():
    """A new module object holding a new ``function`` and ``Class``, as if just imported."""
    module = types.ModuleType("bench_target")
    exec(SOURCE, module.__dict__)
    sys.modules[module.__name__] = module
    return module


def time_call(call, calls):
    """ns per call over one run of ``calls`` calls, loop overhead included."""
    start = perf_counter()
    for _ in range(calls):
        call(1)
    return (perf_counter() - start) / calls * 1e9


def setups():
    """(row name, setup(module) -> None) for each way of wrapping ``function`` and ``method``."""

    def bare(module):
        pass

    def plain_closure(module):
        module.function = closure(module.function)
        module.Class.method = closure(module.Class.method)

    def lazypatch_wrap(module):
        lazypatch.wrap(module.__name__, "function", passthrough)
        lazypatch.wrap(module.__name__, "Class.method", passthrough)

    def wrapt_wrapper(module):
        wrapt.wrap_function_wrapper(module, "function", passthrough)
        wrapt.wrap_function_wrapper(module, "Class.method", passthrough)

    def removed_alone(module):
        for path in ("function", "Class.method"):
            lazypatch.wrap(module.__name__, path, passthrough).remove()

    def removed_under_closure(module):
        patches = [
            lazypatch.wrap(module.__name__, p, passthrough) for p in ("function", "Class.method")
        ]
        plain_closure(module)
        for patch in patches:
            patch.remove()

    return [
        ("bare", bare),
        ("plain closure decorator (floor)", plain_closure),
        ("lazypatch.wrap, pass-through wrapper", lazypatch_wrap),
        ("wrapt.wrap_function_wrapper (C FunctionWrapper)", wrapt_wrapper),
        ("lazypatch.wrap, then remove() (nothing on top)", removed_alone),
        ("closure over lazypatch.wrap, then remove() (pass-through layer)", removed_under_closure),
    ]


def measure(calls, repeat):
    """Best of ``repeat`` rounds; each round times every row, so that load affects all alike."""
    rows = []
    for name, setup in setups():
        module = fresh_module()
        setup(module)
        rows.append([name, module.function, module.Class().method, float("inf"), float("inf")])
    for _ in range(repeat):
        for row in rows:
            row[3] = min(row[3], time_call(row[1], calls))
            row[4] = min(row[4], time_call(row[2], calls))
    return [(name, function_ns, method_ns) for name, _, _, function_ns, method_ns in rows]


def table(rows):
    bare_function, bare_method = rows[0][1], rows[0][2]
    floor_function, floor_method = rows[1][1], rows[1][2]
    lines = [
        f"Python {platform.python_version()}, wrapt {wrapt.__version__}; ns per call "
        "(best of runs, loop included); + = added over bare; the last row's floor is the closure.",
        "",
        "| setup | function ns | function + | method ns | method + |",
        "|---|---:|---:|---:|---:|",
    ]
    for name, function_ns, method_ns in rows:
        if name.startswith("closure over"):
            added = (function_ns - floor_function, method_ns - floor_method)
        else:
            added = (function_ns - bare_function, method_ns - bare_method)
        lines.append(
            f"| {name} | {function_ns:.0f} | {added[0]:+.0f} | {method_ns:.0f} | {added[1]:+.0f} |"
        )
    return "\n".join(lines) + "\n"


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=200_000)
    parser.add_argument("--repeat", type=int, default=9)
    options = parser.parse_args()
    text = table(measure(options.calls, options.repeat))
    print(text)
    out = Path(__file__).resolve().parent / "results" / "call_overhead.md"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(text)


if __name__ == "__main__":
    main()
