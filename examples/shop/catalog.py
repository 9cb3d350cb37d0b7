"""The three databases of the demo shop: what each service stores, and the seed data.

Plain ``sqlite3``, no web framework: the demo driver seeds both files before starting the
services, so the traces it shows are the requests' and not the set-up's.
"""

import sqlite3

SHOP_SCHEMA = """
CREATE TABLE products (id INTEGER PRIMARY KEY, name TEXT NOT NULL, price_cents INTEGER NOT NULL);
CREATE TABLE orders (
    id INTEGER PRIMARY KEY,
    product_id INTEGER NOT NULL REFERENCES products(id),
    quantity INTEGER NOT NULL,
    total_cents INTEGER NOT NULL
);
INSERT INTO products VALUES (1, 'teapot', 2450), (2, 'kettle', 3900), (3, 'mug', 650);
"""

STOCK_SCHEMA = """
CREATE TABLE stock (product_id INTEGER PRIMARY KEY, available INTEGER NOT NULL);
INSERT INTO stock VALUES (1, 12), (2, 3), (3, 40);
"""

REVIEWS_SCHEMA = """
CREATE TABLE reviews (product_id INTEGER NOT NULL, stars INTEGER NOT NULL, text TEXT NOT NULL);
INSERT INTO reviews VALUES (1, 5, 'Pours without dripping.'), (1, 4, 'Lid rattles a little.'),
    (2, 3, 'Loud whistle.');
"""


def seed(path: str, schema: str) -> None:
    """Create the database file at ``path`` with ``schema`` (a fresh file each run)."""
    connection = sqlite3.connect(path)
    try:
        connection.executescript(schema)
        connection.commit()
    finally:
        connection.close()
