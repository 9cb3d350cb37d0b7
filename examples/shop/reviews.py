"""The reviews service: what customers said about each product.

An async FastAPI application served by uvicorn, with no tracing code. The demo starts it with
lazypatch's bootstrap directory on ``PYTHONPATH`` (``lazypatch path``), the way a container
manifest would: lazypatch is active before this module imports FastAPI. The shop calls it with
httpx, so a product page is one trace through sync Flask code and this async service.
"""

import os
import socket
import sqlite3

import uvicorn
from fastapi import FastAPI

app = FastAPI(title="reviews")
DATABASE = os.environ.get("REVIEWS_DB", "reviews.sqlite3")


@app.get("/reviews/{product_id}")
async def reviews(product_id: int):
    with sqlite3.connect(DATABASE) as connection:
        rows = connection.execute(
            "SELECT stars, text FROM reviews WHERE product_id = ?", (product_id,)
        ).fetchall()
    return {"product_id": product_id, "reviews": [{"stars": s, "text": t} for s, t in rows]}


def main() -> None:
    """Serve on a free loopback port; print the address (the demo driver reads it)."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", int(os.environ.get("PORT", "0"))))
    sock.listen(128)
    print(f"listening on http://127.0.0.1:{sock.getsockname()[1]}", flush=True)
    uvicorn.Server(uvicorn.Config(app, log_level="warning")).run(sockets=[sock])


if __name__ == "__main__":
    main()
