"""Every code block of the README and of docs/ runs here, so the documentation cannot rot.

Blocks are read from the Markdown, in order. An HTML comment on the line just before a fence
says what to do with the block (the convention is documented in docs/writing-instrumentations.md,
"Documentation conventions"):

- ``<!-- file: PATH -->``: the block is the content of PATH, written into the document's working
  directory before the blocks that follow it run;
- ``<!-- excerpt: PATH -->``: the block is quoted from PATH in this repository: its lines must
  appear there, in this order;
- ``<!-- no-run -->``: not run (it installs something or needs a cluster); a Python one is still
  compiled.

Otherwise: ``python`` blocks run, each in a fresh interpreter, from the document's working
directory (a temporary directory, on ``sys.path``); ``console`` blocks run their ``$ `` lines
(lines that follow a ``$ `` line are its output, not checked) and ``sh`` blocks run whole, with
this environment's ``python`` and ``lazypatch`` first on PATH, and must exit 0; ``toml`` blocks
must parse and their ``lazypatch.instrumentors`` entry points must load an ``Instrumentor``;
``yaml`` blocks holding a Kubernetes ``env:`` list must activate lazypatch by environment alone;
``text`` and ``mermaid`` blocks are pictures. Any other language fails the test.

References to tests (``tests/FILE.py::test_name``) anywhere in these documents must name a test
that exists.
"""

import ast
import http.server
import os
import re
import subprocess
import sys
import textwrap
import threading
from pathlib import Path

import pytest
from fresh import ROOT

DOCUMENTS = sorted([ROOT / "README.md", *(ROOT / "docs").glob("*.md")])
BIN = Path(sys.executable).parent
FENCE = re.compile(r"^```([\w-]*)\s*$")
DIRECTIVE = re.compile(r"^<!--\s*(no-run|file:\s*(\S+)|excerpt:\s*(\S+))\s*-->\s*$")
TEST_REFERENCE = re.compile(r"(tests/[a-z0-9_/]+\.py)::(\w+)")
PICTURES = ("text", "mermaid")


class Block:
    def __init__(self, doc: Path, line: int, lang: str, code: str, directive) -> None:
        self.doc = doc
        self.line = line
        self.lang = lang
        self.code = code
        self.directive = directive  # None, "no-run", ("file", path) or ("excerpt", path)

    @property
    def where(self) -> str:
        return f"{self.doc.relative_to(ROOT)}:{self.line}"


def blocks_of(doc: Path) -> list:
    lines = doc.read_text(encoding="utf-8").splitlines()
    found = []
    index = 0
    while index < len(lines):
        match = FENCE.match(lines[index])
        if not match:
            index += 1
            continue
        start = index
        body = []
        index += 1
        while index < len(lines) and lines[index].rstrip() != "```":
            body.append(lines[index])
            index += 1
        assert index < len(lines), f"{doc}:{start + 1}: unterminated code block"
        directive = None
        if start > 0:
            found_directive = DIRECTIVE.match(lines[start - 1].strip())
            if found_directive:
                word, file_path, excerpt_path = found_directive.groups()
                if file_path:
                    directive = ("file", file_path)
                elif excerpt_path:
                    directive = ("excerpt", excerpt_path)
                else:
                    directive = word
        found.append(Block(doc, start + 1, match[1], "\n".join(body) + "\n", directive))
        index += 1
    return found


class _Collector(http.server.BaseHTTPRequestHandler):
    """Takes every OTLP/HTTP export and keeps nothing."""

    def do_POST(self):
        self.rfile.read(int(self.headers.get("Content-Length", 0)))
        self.send_response(200)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args):
        pass


_collector = None


def collector_endpoint() -> str:
    """A loopback OTLP/HTTP endpoint for the blocks, started once. Without a collector to take
    them, the SDK's default exporters retry each export for seconds before a process exits."""
    global _collector
    if _collector is None:
        _collector = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Collector)
        threading.Thread(target=_collector.serve_forever, daemon=True).start()
    return f"http://127.0.0.1:{_collector.server_port}"


def clean_environment() -> dict:
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("OTEL_", "LAZYPATCH_", "PYTHON"))
    }
    env["OTEL_EXPORTER_OTLP_ENDPOINT"] = collector_endpoint()
    env["PATH"] = os.pathsep.join([str(BIN), env.get("PATH", "")])
    return env


def run(command, cwd: Path, env=None, timeout=120) -> subprocess.CompletedProcess:
    full = clean_environment()
    full["PYTHONPATH"] = str(cwd)
    full.update(env or {})
    return subprocess.run(
        command, cwd=cwd, env=full, capture_output=True, text=True, timeout=timeout
    )


def check(proc: subprocess.CompletedProcess, block: Block) -> None:
    assert proc.returncode == 0, (
        f"{block.where}: exit {proc.returncode}\n--- block\n{block.code}"
        f"--- stdout\n{proc.stdout}\n--- stderr\n{proc.stderr}"
    )


def console_commands(code: str) -> list:
    commands = []
    lines = code.splitlines()
    index = 0
    while index < len(lines):
        line = lines[index]
        index += 1
        if not line.startswith("$ "):
            continue
        command = line[2:]
        while command.endswith("\\") and index < len(lines):
            command = command[:-1] + "\n" + lines[index]
            index += 1
        commands.append(command)
    return commands


def run_block(block: Block, workdir: Path) -> None:
    if block.directive == "no-run":
        if block.lang == "python":
            compile(block.code, block.where, "exec")
        return
    if isinstance(block.directive, tuple):
        kind, path = block.directive
        if kind == "file":
            target = workdir / path
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(block.code, encoding="utf-8")
        else:
            check_excerpt(block, ROOT / path)
        return
    if block.lang == "python":
        script = workdir / f"_block_{block.line}.py"
        script.write_text(block.code, encoding="utf-8")
        check(run([sys.executable, script.name], workdir), block)
    elif block.lang == "console":
        commands = console_commands(block.code)
        assert commands, f"{block.where}: a console block without a '$ ' line"
        for command in commands:
            check(run(["bash", "-euo", "pipefail", "-c", command], workdir), block)
    elif block.lang == "sh":
        check(run(["bash", "-euo", "pipefail", "-c", block.code], workdir), block)
    elif block.lang == "toml":
        check_toml(block, workdir)
    elif block.lang == "yaml":
        check_kubernetes_env(block, workdir)
    elif block.lang not in PICTURES:
        pytest.fail(f"{block.where}: no rule to run a {block.lang or 'plain'!r} block")


def check_excerpt(block: Block, source: Path) -> None:
    """Every non-blank line of the block is in ``source``, in order (indentation aside)."""
    wanted = [line.strip() for line in block.code.splitlines() if line.strip()]
    have = [line.strip() for line in source.read_text(encoding="utf-8").splitlines()]
    position = 0
    for line in wanted:
        if line in ("...", "# ..."):
            continue
        try:
            position = have.index(line, position) + 1
        except ValueError:
            pytest.fail(f"{block.where}: {line!r} is not in {source.relative_to(ROOT)} (in order)")


def check_toml(block: Block, workdir: Path) -> None:
    tomllib = pytest.importorskip("tomllib")
    data = tomllib.loads(block.code)
    entry_points = data.get("project", {}).get("entry-points", {})
    for name, value in entry_points.get("lazypatch.instrumentors", {}).items():
        module, _, attr = value.partition(":")
        code = f"""
            import importlib, functools
            import lazypatch
            obj = functools.reduce(getattr, {attr!r}.split("."), importlib.import_module({module!r}))
            assert issubclass(obj, lazypatch.Instrumentor), obj
            assert {name!r} == obj.targets[0].partition(".")[0], (obj.targets, {name!r})
            """
        check(run([sys.executable, "-c", textwrap.dedent(code)], workdir), block)


def check_kubernetes_env(block: Block, workdir: Path) -> None:
    """The ``env:`` list activates lazypatch in a Python process, with nothing else set."""
    _, found, listing = block.code.partition("env:\n")
    assert found, f"{block.where}: no env: list"
    pairs = re.findall(r"^\s*- name:\s*(\S+)\s*\n\s*value:\s*(.+?)\s*$", listing, re.M)
    assert pairs, f"{block.where}: an env: list without name/value pairs"
    env = {name: value.strip('"') for name, value in pairs}
    assert "PYTHONPATH" in env, f"{block.where}: activation needs PYTHONPATH"
    bootstrap = subprocess.run(
        [str(BIN / "lazypatch"), "path"], capture_output=True, text=True, check=True
    ).stdout.strip()
    assert env["PYTHONPATH"].endswith("/lazypatch/_bootstrap"), env["PYTHONPATH"]
    env["PYTHONPATH"] = bootstrap  # the image's site-packages is this environment's
    code = "import sys; assert 'lazypatch.auto' in sys.modules, sys.modules.keys()"
    check(run([sys.executable, "-c", code], workdir, env=env), block)


@pytest.mark.parametrize("doc", DOCUMENTS, ids=lambda doc: str(doc.relative_to(ROOT)))
def test_every_code_block_runs(doc, tmp_path):
    for block in blocks_of(doc):
        run_block(block, tmp_path)


@pytest.mark.parametrize("doc", DOCUMENTS, ids=lambda doc: str(doc.relative_to(ROOT)))
def test_every_test_named_exists(doc):
    for path, name in TEST_REFERENCE.findall(doc.read_text(encoding="utf-8")):
        source = ROOT / path
        assert source.is_file(), f"{doc.name}: {path} does not exist"
        tree = ast.parse(source.read_text(encoding="utf-8"))
        defined = {
            node.name
            for node in ast.walk(tree)
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef))
        }
        assert name in defined, f"{doc.name}: {path}::{name} is not a test"


def test_the_docs_are_linked_from_the_readme():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    for doc in (ROOT / "docs").glob("*.md"):
        assert f"docs/{doc.name}" in readme, f"README.md does not link docs/{doc.name}"


def test_the_configuration_table_names_every_variable_lazypatch_reads():
    """Every variable read in lazypatch/_config.py is a row of the table in docs/using.md."""
    config = (ROOT / "lazypatch" / "_config.py").read_text(encoding="utf-8")
    read = set(re.findall(r'"((?:LAZYPATCH|OTEL)_[A-Z_]+)"', config))
    using = (ROOT / "docs" / "using.md").read_text(encoding="utf-8")
    rows = set(re.findall(r"^\| `([A-Z_]+)`", using, re.M))
    assert read, "no variable found in _config.py"
    assert read <= rows, f"not in the table of docs/using.md: {sorted(read - rows)}"


def test_the_convention_comments_are_the_ones_this_test_knows():
    for doc in DOCUMENTS:
        for number, line in enumerate(doc.read_text(encoding="utf-8").splitlines(), 1):
            stripped = line.strip()
            if stripped.startswith("<!--") and any(
                word in stripped for word in ("no-run", "file:", "excerpt:")
            ):
                assert DIRECTIVE.match(stripped), f"{doc.name}:{number}: malformed {stripped!r}"
