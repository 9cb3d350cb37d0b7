"""The stock service: how many of each product are left, and reservations.

A plain Flask application with no tracing code. The demo starts it through ``late.py``, which
imports this module (Flask, sqlite3, the application object: all built) and only then
``lazypatch.auto``.
"""

import os
import sqlite3

from flask import Flask, jsonify, request
from werkzeug.serving import make_server

app = Flask("stock")
DATABASE = os.environ.get("STOCK_DB", "stock.sqlite3")


def db():
    return sqlite3.connect(DATABASE)


@app.get("/stock/<int:product_id>")
def available(product_id):
    with db() as connection:
        row = connection.execute(
            "SELECT available FROM stock WHERE product_id = ?", (product_id,)
        ).fetchone()
    return jsonify(product_id=product_id, available=row[0] if row else 0)


@app.post("/reservations")
def reserve():
    wanted = request.get_json()
    product_id, quantity = int(wanted["product_id"]), int(wanted["quantity"])
    with db() as connection:
        taken = connection.execute(
            "UPDATE stock SET available = available - ? WHERE product_id = ? AND available >= ?",
            (quantity, product_id, quantity),
        ).rowcount
    if not taken:
        return jsonify(error="not enough stock"), 409
    return jsonify(product_id=product_id, reserved=quantity)


def main() -> None:
    """Serve on a free loopback port; print the address (the demo driver reads it)."""
    server = make_server("127.0.0.1", int(os.environ.get("PORT", "0")), app)
    print(f"listening on http://127.0.0.1:{server.server_port}", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
