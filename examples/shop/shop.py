"""The shop: product pages and orders, backed by sqlite3, the stock and the reviews services.

A plain Flask application with no tracing code. The demo starts it under
``lazypatch run``, so lazypatch is active before this module imports Flask.
"""

import os
import sqlite3

import requests
from flask import Flask, abort, jsonify, request
from werkzeug.serving import make_server

app = Flask("shop")
DATABASE = os.environ.get("SHOP_DB", "shop.sqlite3")
STOCK_URL = os.environ.get("STOCK_URL", "http://127.0.0.1:5001")
# The reviews service (async, called with httpx); without it, product pages have no reviews.
REVIEWS_URL = os.environ.get("REVIEWS_URL")


def db():
    return sqlite3.connect(DATABASE)


def find_product(connection, product_id):
    row = connection.execute(
        "SELECT name, price_cents FROM products WHERE id = ?", (product_id,)
    ).fetchone()
    if row is None:
        abort(404)
    return row


@app.get("/products/<int:product_id>")
def product(product_id):
    with db() as connection:
        name, price = find_product(connection, product_id)
    stock = requests.get(f"{STOCK_URL}/stock/{product_id}", timeout=5).json()
    return jsonify(
        id=product_id,
        name=name,
        price_cents=price,
        available=stock["available"],
        reviews=count_reviews(product_id),
    )


def count_reviews(product_id):
    if not REVIEWS_URL:
        return None
    import httpx  # only where a reviews service is configured

    reply = httpx.get(f"{REVIEWS_URL}/reviews/{product_id}", timeout=5)
    return len(reply.json()["reviews"])


@app.post("/orders")
def order():
    wanted = request.get_json()
    product_id, quantity = int(wanted["product_id"]), int(wanted["quantity"])
    with db() as connection:
        _, price = find_product(connection, product_id)
        reply = requests.post(
            f"{STOCK_URL}/reservations",
            json={"product_id": product_id, "quantity": quantity},
            timeout=5,
        )
        if reply.status_code == 409:
            return jsonify(error="out of stock"), 409
        reply.raise_for_status()
        order_id = connection.execute(
            "INSERT INTO orders (product_id, quantity, total_cents) VALUES (?, ?, ?)",
            (product_id, quantity, price * quantity),
        ).lastrowid
    return jsonify(order=order_id, total_cents=price * quantity), 201


def main() -> None:
    """Serve on a free loopback port; print the address (the demo driver reads it)."""
    server = make_server("127.0.0.1", int(os.environ.get("PORT", "0")), app)
    print(f"listening on http://127.0.0.1:{server.server_port}", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
