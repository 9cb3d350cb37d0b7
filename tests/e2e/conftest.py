"""Helpers for end-to-end tests: a local HTTP server snippet, console-span parsing, the CLI."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

BIN = Path(sys.executable).parent

# Source for a child process: a loopback HTTP server in a daemon thread; ``URL`` points at it.
SERVER = """
import http.server, threading
class _Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        self.send_response(200)
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"ok")
    def log_message(self, *args):
        pass
_server = http.server.HTTPServer(("127.0.0.1", 0), _Handler)
threading.Thread(target=_server.serve_forever, daemon=True).start()
URL = f"http://127.0.0.1:{_server.server_port}/hello"
"""


def console_spans(stdout: str) -> list:
    """The spans printed by the console exporter (one JSON object each) in ``stdout``."""
    decoder, spans = json.JSONDecoder(), []
    start = stdout.find("{")
    while start != -1:
        obj, end = decoder.raw_decode(stdout, start)
        spans.append(obj)
        start = stdout.find("{", end)
    return spans


@pytest.fixture
def cli(tmp_path):
    """``cli("run", "--", "python", ...)``: run a console script of this environment."""

    def run(*args, script="lazypatch", env=None, cwd=None, check=True, timeout=120):
        full = dict(os.environ)
        full["PATH"] = os.pathsep.join([str(BIN), full.get("PATH", "")])
        for key, value in (env or {}).items():
            if value is None:
                full.pop(key, None)
            else:
                full[key] = value
        proc = subprocess.run(
            [str(BIN / script), *args],
            env=full,
            cwd=cwd or tmp_path,
            capture_output=True,
            text=True,
            timeout=timeout,
        )
        if check:
            assert proc.returncode == 0, f"{proc.returncode}\n{proc.stdout}\n{proc.stderr}"
        return proc

    return run


def discovered(source: str, name: str) -> bool:
    """Whether this environment has an instrumentation ``name`` from ``source``."""
    from lazypatch import _config, _discovery

    entries = _discovery.discover(_config.load({}))
    return any(e.source == source and e.name == name for e in entries)
