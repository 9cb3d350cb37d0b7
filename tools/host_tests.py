"""CPython's own regression tests for what lazypatch touches, bare and under lazypatch.

Runs ``python -m test`` on the modules below three times (``make test-host``):

- ``bare``: the interpreter as it is;
- ``run``: under ``lazypatch run`` (auto-instrumentation in the test process and every child);
- ``watch-all``: under ``lazypatch run`` with a ``sitecustomize`` that also registers a no-op
  post-import hook on every standard-library module.

Outcomes are compared test by test (regrtest's JUnit XML). A test that passes bare and fails,
errors or vanishes (its file crashed) under a variant is rerun, bare and under that variant, to
rule out flakiness; if it still passes bare and breaks under lazypatch, it is broken. Broken tests
fail the run, except the known differences listed below (each explained in docs/guarantees.md).
An interpreter without its ``test`` package is reported as not checked, loudly.

Usage: ``python tools/host_tests.py [--python PY] [--variants bare,run,watch-all] [-j 2]
[MODULE ...]``. The interpreter must have lazypatch installed (the venv ``make`` builds).
"""

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import xml.etree.ElementTree as ET
from pathlib import Path

MODULES = (
    "test_logging",
    "test_sqlite3",
    "test_urllib",
    "test_urllib2",
    "test_urllib2_localnet",
    "test_urllib_response",
    "test_importlib",
    "test_import",
    "test_pkgutil",
    "test_zipimport",
    "test_runpy",
    "test_json",
)

VARIANTS = ("bare", "run", "watch-all")
BROKEN = ("fail", "error", "missing")
SHOWN = 50  # broken tests listed one per line; a crashed interpreter breaks thousands

# Tests that break under lazypatch by design: test id (a trailing "*" matches a prefix) -> why.
# docs/guarantees.md, "Checked against CPython's own tests", says the same.
KNOWN_DIFFERENCES = {
    "test.test_sqlite3.test_dbapi.OpenTests.test_database_keyword": (
        "type(sqlite3.connect(...)) is the traced subclass of sqlite3.Connection: the C type "
        "is immutable, and tracing conn.execute needs a method of our own"
    ),
}

WATCH_ALL = """\
import sys

import lazypatch.auto
import lazypatch


def _names():
    names = getattr(sys, "stdlib_module_names", None)
    if names is None:  # Python 3.9
        import pkgutil
        import sysconfig

        names = set(sys.builtin_module_names)
        names.update(m.name for m in pkgutil.iter_modules([sysconfig.get_paths()["stdlib"]]))
    return sorted(names)


def _noop(module):
    pass


for _name in _names():
    lazypatch.register_hook(_name, _noop)
"""


def outcomes(junit: Path) -> dict:
    """Test id -> "pass" | "fail" | "error" | "skip", from regrtest's JUnit XML."""
    found = {}
    if not junit.exists():
        return found
    for case in ET.parse(junit).getroot().iter("testcase"):
        tags = {child.tag for child in case}
        if "error" in tags:
            outcome = "error"
        elif "failure" in tags:
            outcome = "fail"
        elif "skipped" in tags or case.get("status") == "skipped":
            outcome = "skip"
        else:
            outcome = "pass"
        found[case.get("name")] = outcome
    return found


def command(python: str, variant: str, args: list) -> list:
    if variant == "bare":
        return [python, "-m", "test", *args]
    return [python, "-m", "lazypatch", "run", "--", python, "-m", "test", *args]


def environment(variant: str, site_dir: str) -> dict:
    env = dict(os.environ)
    for name in list(env):
        if name.startswith(("LAZYPATCH_", "OTEL_")) or name == "PYTHONPATH":
            del env[name]
    # Spans and measurements are made and dropped: no collector, no network.
    env.update(OTEL_TRACES_EXPORTER="none", OTEL_METRICS_EXPORTER="none", OTEL_LOGS_EXPORTER="none")
    if variant == "watch-all":
        env["PYTHONPATH"] = site_dir
    return env


def run_tests(python, variant, modules, jobs, workdir, site_dir, match=()) -> tuple:
    """Run regrtest once; return (outcomes, seconds, output tail)."""
    junit = Path(tempfile.mkstemp(suffix=".xml", dir=workdir)[1])
    junit.unlink()
    args = [f"-j{jobs}", "--junit-xml", str(junit)]
    for pattern in match:
        args += ["-m", pattern]
    start = time.monotonic()
    proc = subprocess.run(
        command(python, variant, [*args, *modules]),
        cwd=workdir,
        env=environment(variant, site_dir),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        errors="replace",
    )
    seconds = time.monotonic() - start
    return outcomes(junit), seconds, proc.stdout[-3000:]


def known(test_id: str):
    for pattern, reason in KNOWN_DIFFERENCES.items():
        if test_id == pattern or (pattern.endswith("*") and test_id.startswith(pattern[:-1])):
            return reason
    return None


def counts(found: dict) -> dict:
    total = {"pass": 0, "fail": 0, "error": 0, "skip": 0}
    for outcome in found.values():
        total[outcome] += 1
    return total


def module_of(test_id: str, modules) -> str:
    for name in modules:
        if test_id.startswith(f"test.{name}.") or test_id.startswith(f"{name}."):
            return name
    return test_id.split(".")[1] if test_id.startswith("test.") else test_id.split(".")[0]


def check(python, variants, modules, jobs) -> int:
    probe = subprocess.run(
        [python, "-c", "import test.libregrtest, test.support"], capture_output=True
    )
    if probe.returncode != 0:
        print(f"host tests NOT RUN for {python}: it has no `test` package (regrtest).")
        return 0
    version = subprocess.run(
        [python, "-c", "import sys; print(sys.version.split()[0])"], capture_output=True, text=True
    ).stdout.strip()
    print(f"== CPython {version} ({python}): {len(modules)} test modules, -j{jobs}")
    workdir = tempfile.mkdtemp(prefix="lazypatch-host-")
    site_dir = os.path.join(workdir, "site")
    os.mkdir(site_dir)
    Path(site_dir, "sitecustomize.py").write_text(WATCH_ALL)
    summary = {"python": version, "variants": {}}
    broken_total = 0
    try:
        results = {}
        for variant in variants:
            found, seconds, tail = run_tests(python, variant, modules, jobs, workdir, site_dir)
            results[variant] = found
            c = counts(found)
            print(
                f"{variant:>9}: {len(found)} tests, {c['pass']} pass, {c['fail']} fail, "
                f"{c['error']} error, {c['skip']} skipped ({seconds:.0f} s)"
            )
            if not found:
                print(f"{variant}: regrtest produced no results:\n{tail}")
                broken_total += 1
            summary["variants"][variant] = {**c, "seconds": round(seconds, 1)}
        bare = results.get("bare", {})
        for variant in variants:
            if variant == "bare":
                continue
            found = results[variant]
            suspects = sorted(
                test_id
                for test_id, outcome in bare.items()
                if outcome == "pass"
                and found.get(test_id, "missing") in ("fail", "error", "missing")
            )
            broken, flaky, differences = confirm(
                python, variant, suspects, found, modules, jobs, workdir, site_dir
            )
            summary["variants"][variant].update(
                broken=len(broken), flaky=len(flaky), known=sorted(differences)
            )
            for test_id, reason in sorted(differences.items()):
                print(f"{variant:>9}: known difference {test_id}: {reason}")
            for test_id in flaky:
                print(f"{variant:>9}: flaky, passed on rerun: {test_id}")
            for test_id, outcome in broken[:SHOWN]:
                print(f"{variant:>9}: BROKEN by lazypatch ({outcome}): {test_id}")
            if len(broken) > SHOWN:
                print(f"{variant:>9}: ... and {len(broken) - SHOWN} more broken tests")
            broken_total += len(broken)
            print(
                f"{variant:>9}: {len(broken)} broken, {len(differences)} known differences, "
                f"{len(flaky)} flaky"
            )
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    print("HOST-TESTS " + json.dumps(summary))
    return 1 if broken_total else 0


def confirm(python, variant, suspects, found, modules, jobs, workdir, site_dir) -> tuple:
    """Rerun the suspects bare and under ``variant``: (broken, flaky, known differences)."""
    if not suspects:
        return [], [], {}
    involved = sorted({module_of(test_id, modules) for test_id in suspects})
    vanished = [test_id for test_id in suspects if found.get(test_id, "missing") == "missing"]
    # A whole file that vanished (it crashed) is rerun whole; single tests by their id.
    patterns = () if vanished else tuple(suspects)
    again_bare = run_tests(python, "bare", involved, jobs, workdir, site_dir, patterns)[0]
    again = run_tests(python, variant, involved, jobs, workdir, site_dir, patterns)[0]
    broken, flaky, differences = [], [], {}
    for test_id in suspects:
        outcome = again.get(test_id, "missing")
        if again_bare.get(test_id) != "pass" or outcome == "pass":
            flaky.append(test_id)
            continue
        reason = known(test_id)
        if reason is not None:
            differences[test_id] = reason
        else:
            broken.append((test_id, outcome))
    return broken, flaky, differences


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("modules", nargs="*", default=list(MODULES))
    parser.add_argument("--python", default=sys.executable)
    parser.add_argument("--variants", default=",".join(VARIANTS))
    parser.add_argument("-j", "--jobs", type=int, default=2)
    options = parser.parse_args(argv)
    variants = [v for v in options.variants.split(",") if v]
    unknown = set(variants) - set(VARIANTS)
    if unknown or "bare" not in variants:
        parser.error(f"--variants: choose among {', '.join(VARIANTS)}, bare included")
    python = os.path.abspath(shutil.which(options.python) or options.python)
    return check(python, variants, options.modules, options.jobs)


if __name__ == "__main__":
    sys.exit(main())
