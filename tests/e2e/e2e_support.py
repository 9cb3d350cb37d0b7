"""Helpers for end-to-end tests: a local HTTP server snippet, console-span parsing, discovery."""

import json
import sys
from pathlib import Path

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


def discovered(source: str, name: str) -> bool:
    """Whether this environment has an instrumentation ``name`` from ``source``."""
    from lazypatch import _config, _discovery

    entries = _discovery.discover(_config.load({}))
    return any(e.source == source and e.name == name for e in entries)
