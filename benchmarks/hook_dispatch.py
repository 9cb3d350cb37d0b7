"""Added cost of importing a module that has a trivial post-import hook, lazypatch against wrapt.

Each run is a fresh interpreter that imports 100 small generated modules (warm bytecode caches),
timing only the import loop. Variants: no post-import finder ("bare"); lazypatch and wrapt each
installed with one hook on a module that is never imported ("unhooked": the finder is in the
path of every import but watches none of these); lazypatch and wrapt with a hook doing nothing on
each of the 100 modules ("hooked"). Every variant imports wrapt and lazypatch before the loop, so
the interpreters differ only in their finders and hooks. The added cost per import is the median
over rounds of (variant - bare of the same round) / 100.

Run: ``python benchmarks/hook_dispatch.py [--quick | --rounds N] [--output FILE] [--json FILE]``.
"""

import shutil
import tempfile
from pathlib import Path

import _common

NAME = "hook_dispatch"

CHILD = (
    _common.PRELUDE
    + """
import sys
from time import perf_counter, process_time
library, hooked, path, count, *imported = sys.argv[1:]
sys.path.insert(0, path)
names = [f"lpbench_hooked{i:03d}" for i in range(int(count))]
def hook(module):
    pass
register = {
    "lazypatch": lambda name: lazypatch.register_hook(name, hook),
    "wrapt": lambda name: wrapt.register_post_import_hook(hook, name),
}.get(library)
if register is not None:
    for name in names if hooked == "hooked" else ["lpbench_never"]:
        register(name)
names = names[: int(imported[0])] if imported else names  # hooks on all, imports of these
start, start_cpu = perf_counter(), process_time()
for name in names:
    __import__(name)
elapsed, cpu = perf_counter() - start, process_time() - start_cpu
assert all(name in sys.modules for name in names)
print(elapsed, cpu)
"""
)

MODULE = '''"""Generated module {index} of the hook dispatch benchmark."""

VALUE = {index}


def function():
    return VALUE
'''

VARIANTS = {
    "bare": ("none", "unhooked"),
    "lazypatch, unhooked": ("lazypatch", "unhooked"),
    "lazypatch, hooked": ("lazypatch", "hooked"),
    "wrapt, unhooked": ("wrapt", "unhooked"),
    "wrapt, hooked": ("wrapt", "hooked"),
}


def main() -> None:
    args = _common.parse_args(NAME, __doc__, rounds=40)
    env = _common.environment()
    count, rounds = (10, 1) if args.quick else (100, args.rounds)

    tmp = Path(tempfile.mkdtemp(prefix="lazypatch-bench-"))
    try:
        for i in range(count):
            (tmp / f"lpbench_hooked{i:03d}.py").write_text(MODULE.format(index=i))
        prefix = f"pycache_prefix={tmp / 'pycache'}"

        def run(library, hooked):
            out = _common.run_child(CHILD, (library, hooked, tmp, count), [prefix])
            wall, cpu = out.split()
            return float(wall), float(cpu)

        run("none", "unhooked")  # fills the bytecode and page caches; not measured
        results = _common.interleave(
            {name: lambda spec=spec: run(*spec) for name, spec in VARIANTS.items()}, rounds
        )
    finally:
        shutil.rmtree(tmp, ignore_errors=True)

    intro = __doc__.split("\n\n", 1)[1].rsplit("\n\nRun:", 1)[0]
    body = summarize(results, count)
    title = "Cost of a hooked import"
    _common.report(title, intro, env, body, args.output)
    _common.write_json(args.json, title, json_groups(results, count))


def json_groups(results: dict, count: int) -> list:
    """Wall time per imported module (µs): the unhooked variants, then the hooked ones."""

    def per_import(variant):
        return [wall / count * 1e6 for wall, _ in results[variant]]

    return [
        _common.group(
            f"{hooked} modules",
            "µs per import",
            {
                "bare": per_import("bare"),
                "lazypatch": per_import(f"lazypatch, {hooked}"),
                "wrapt": per_import(f"wrapt, {hooked}"),
            },
            peers=["wrapt"],
        )
        for hooked in ("unhooked", "hooked")
    ]


def summarize(results: dict, count: int) -> str:
    """The table and the goal check, as Markdown."""
    header = [
        "variant",
        "runs",
        "median loop (ms)",
        "IQR (ms)",
        "min – max (ms)",
        "per import (µs)",
        "added per import vs bare (µs)",
        "added IQR (µs)",
        "added CPU time (µs)",
    ]
    bare_wall = [wall for wall, _ in results["bare"]]
    bare_cpu = [cpu for _, cpu in results["bare"]]
    rows = []
    added = {}
    for variant, samples in results.items():
        wall = [w for w, _ in samples]
        cpu = [c for _, c in samples]
        ms = [w * 1e3 for w in wall]
        extra = _common.paired(wall, bare_wall, count / 1e6)
        added[variant] = _common.median(extra)
        baseline = variant == "bare"
        rows.append(
            [
                variant,
                len(wall),
                f"{_common.median(ms):.2f}",
                _common.fmt_range(*_common.iqr(ms), 2),
                _common.fmt_range(min(ms), max(ms), 2),
                f"{_common.median(wall) / count * 1e6:.1f}",
                "—" if baseline else f"{added[variant]:+.2f}",
                "—" if baseline else _common.fmt_range(*_common.iqr(extra), 2),
                "—"
                if baseline
                else f"{_common.median(_common.paired(cpu, bare_cpu, count / 1e6)):+.2f}",
            ]
        )
    lazypatch = added["lazypatch, hooked"]
    verdict = "met" if lazypatch <= 5 else "NOT met"
    return "\n".join(
        [
            f"{count} modules per run; µs are per imported module.",
            "",
            _common.markdown_table(header, rows),
            "",
            f"- lazypatch: a hooked import costs {lazypatch:+.2f} µs against bare; "
            f"goal <= 5 µs {verdict}.",
            f"- wrapt: a hooked import costs {added['wrapt, hooked']:+.2f} µs against bare.",
        ]
    )


if __name__ == "__main__":
    main()
