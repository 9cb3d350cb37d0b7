"""Nanoseconds added per call by a pass-through wrapper, for a function and for a method.

Compares the bare call, a plain closure decorator (the floor for any wrapper), lazypatch.wrap,
lazypatch.wrap with ``in_place=True`` (the function's code swapped for a trampoline; its goal: at
most 100 ns above the ordinary patch), wrapt's C FunctionWrapper / wrap_function_wrapper, and
lazypatch layers after remove(): with nothing on top (the original is restored) and under a
foreign decorator (a pass-through layer).

    python benchmarks/call_overhead.py [--calls N] [--repeat R] [--output FILE] [--json FILE]

Prints a Markdown table and writes it to benchmarks/results/call_overhead.md (or ``--output``).
"""

import argparse
import functools
import platform
import sys
import types
from pathlib import Path
from time import perf_counter

import _common
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


def fresh_module(number):
    """A new module object holding a new ``function`` and ``Class``, as if just imported.

    Each setup gets a name of its own: a patch by name stays armed on its module's name, and
    lazypatch applies it to any module later found in ``sys.modules`` under that name.
    """
    module = types.ModuleType(f"bench_target_{number}")
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
    """(row name, short name, setup(module) -> None) for each way of wrapping the two callables.

    The short names label the JSON output's variants (the report's tables and chart).
    """

    def bare(module):
        pass

    def plain_closure(module):
        module.function = closure(module.function)
        module.Class.method = closure(module.Class.method)

    def lazypatch_wrap(module):
        lazypatch.wrap(module.__name__, "function", passthrough)
        lazypatch.wrap(module.__name__, "Class.method", passthrough)

    def lazypatch_in_place(module):
        lazypatch.wrap(module.__name__, "function", passthrough, in_place=True)
        lazypatch.wrap(module.__name__, "Class.method", passthrough, in_place=True)

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
        ("bare", "bare", bare),
        ("plain closure decorator (floor)", "closure decorator (floor)", plain_closure),
        ("lazypatch.wrap, pass-through wrapper", "lazypatch.wrap", lazypatch_wrap),
        (
            "lazypatch.wrap(in_place=True), pass-through wrapper",
            "lazypatch.wrap in place",
            lazypatch_in_place,
        ),
        ("wrapt.wrap_function_wrapper (C FunctionWrapper)", "wrapt", wrapt_wrapper),
        ("lazypatch.wrap, then remove() (nothing on top)", "lazypatch, removed", removed_alone),
        (
            "closure over lazypatch.wrap, then remove() (pass-through layer)",
            "closure over removed lazypatch",
            removed_under_closure,
        ),
    ]


def measure(calls, repeat):
    """``repeat`` rounds; each round times every row, so that load affects all alike.

    Returns (name, short name, function ns per round, method ns per round) per row.
    """
    rows = []
    for number, (name, short, setup) in enumerate(setups()):
        module = fresh_module(number)
        setup(module)
        rows.append((name, short, module.function, module.Class().method, [], []))
    for _ in range(repeat):
        for _name, _short, function, method, function_ns, method_ns in rows:
            function_ns.append(time_call(function, calls))
            method_ns.append(time_call(method, calls))
    return [(name, short, f_ns, m_ns) for name, short, _, _, f_ns, m_ns in rows]


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
    by_name = {}
    for name, function_ns, method_ns in rows:
        by_name[name] = (function_ns, method_ns)
        if name.startswith("closure over"):
            added = (function_ns - floor_function, method_ns - floor_method)
        else:
            added = (function_ns - bare_function, method_ns - bare_method)
        lines.append(
            f"| {name} | {function_ns:.0f} | {added[0]:+.0f} | {method_ns:.0f} | {added[1]:+.0f} |"
        )
    ordinary = by_name["lazypatch.wrap, pass-through wrapper"]
    in_place = by_name["lazypatch.wrap(in_place=True), pass-through wrapper"]
    lines += [
        "",
        f"In place minus ordinary patch (goal: at most +100 ns): function "
        f"{in_place[0] - ordinary[0]:+.0f} ns, method {in_place[1] - ordinary[1]:+.0f} ns.",
    ]
    return "\n".join(lines) + "\n"


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=200_000)
    parser.add_argument("--repeat", type=int, default=9)
    parser.add_argument("--output", type=Path, default=_common.RESULTS / "call_overhead.md")
    _common.add_json_option(parser)
    options = parser.parse_args()
    samples = measure(options.calls, options.repeat)
    text = table([(name, min(f_ns), min(m_ns)) for name, _, f_ns, m_ns in samples])
    print(text)
    options.output.parent.mkdir(parents=True, exist_ok=True)
    options.output.write_text(text)
    by_kind = {"function": {}, "method": {}}
    for _, short, function_ns, method_ns in samples:
        by_kind["function"][short] = function_ns
        by_kind["method"][short] = method_ns
    groups = [
        _common.group(f"{kind} call", "ns per call", values, peers=["wrapt"])
        for kind, values in by_kind.items()
    ]
    _common.write_json(options.json, "Overhead of a pass-through wrapper per call", groups)


if __name__ == "__main__":
    main()
