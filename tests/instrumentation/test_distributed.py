"""A real distributed trace: requests client in one process, Flask + sqlite3 server in another."""

import os
import subprocess
import sys

from instr_support import SPANHELP, script, spans_of

SERVER = """
import os, sqlite3
import spanhelp
from lazypatch.instrumentation.flask import FlaskInstrumentor
from lazypatch.instrumentation.sqlite3 import SQLite3Instrumentor
FlaskInstrumentor().instrument()
SQLite3Instrumentor().instrument()
from flask import Flask
from werkzeug.serving import make_server

app = Flask("shop")

@app.route("/items/<int:item_id>")
def item(item_id):
    conn = sqlite3.connect(os.environ["SHOP_DB"])
    conn.execute("CREATE TABLE IF NOT EXISTS items (id, name)")
    conn.execute("INSERT INTO items VALUES (?, ?)", (item_id, "thing"))
    name = conn.execute("SELECT name FROM items WHERE id = ?", (item_id,)).fetchone()[0]
    conn.close()
    return {"name": name}

server = make_server("127.0.0.1", 0, app)
print(server.server_port, flush=True)
server.handle_request()
spanhelp.dump(4)
"""

CLIENT = """
import os
import spanhelp
from lazypatch.instrumentation.requests import RequestsInstrumentor
RequestsInstrumentor().instrument()
import requests
assert requests.get(os.environ["SHOP_URL"]).json() == {"name": "thing"}
spanhelp.dump(1)
"""


def test_client_server_and_queries_share_one_trace(tmp_path, pyrun):
    (tmp_path / "spanhelp.py").write_text(SPANHELP)
    env = {**os.environ, "PYTHONPATH": str(tmp_path), "SHOP_DB": str(tmp_path / "shop.db")}
    server = subprocess.Popen(
        [sys.executable, "-c", script(SERVER)],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        port = int(server.stdout.readline() or 0)
        client = pyrun(CLIENT, env={"SHOP_URL": f"http://127.0.0.1:{port}/items/5"})
    finally:
        out, err = server.communicate(timeout=60)
    assert server.returncode == 0, err
    (client_span,) = spans_of(client)
    server_spans = spans_of(subprocess.CompletedProcess((), 0, out, err))
    by_kind = {}
    for span in server_spans:
        by_kind.setdefault(span["kind"], []).append(span)
    (server_span,) = by_kind["SERVER"]
    queries = by_kind["CLIENT"]

    assert client_span["name"] == "GET" and client_span["kind"] == "CLIENT"
    assert client_span["parent_id"] is None
    assert server_span["name"] == "GET /items/<int:item_id>"
    assert server_span["attributes"]["http.response.status_code"] == 200
    assert [q["attributes"]["db.operation.name"] for q in queries] == ["CREATE", "INSERT", "SELECT"]
    trace_ids = {s["trace_id"] for s in [client_span, *server_spans]}
    assert trace_ids == {client_span["trace_id"]}
    assert server_span["parent_id"] == client_span["span_id"]
    assert {q["parent_id"] for q in queries} == {server_span["span_id"]}
