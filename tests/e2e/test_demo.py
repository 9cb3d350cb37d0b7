"""``make demo``: the shop demo runs end to end and shows what the README promises."""

import re
import subprocess
import sys

import pytest
from fresh import ROOT

pytestmark = pytest.mark.slow

DEMO = ROOT / "examples" / "shop" / "demo.py"


@pytest.fixture(scope="module")
def demo():
    proc = subprocess.run([sys.executable, str(DEMO)], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, f"{proc.stdout}\n--- stderr\n{proc.stderr}"
    sections = {}
    for chunk in proc.stdout.split("\n=== ")[1:]:
        title, _, body = chunk.partition("\n")
        sections[title.rstrip("= ").strip()] = body
    return proc.stdout, sections


def traces(body):
    """{service: (trace id, lines of its tree)} of one request's section."""
    found = {}
    for part in re.split(r"^\[(\w+)\]$", body, flags=re.M)[1:]:
        if part in ("shop", "stock", "reviews"):
            service = part
            continue
        lines = part.strip("\n").splitlines()
        header = re.match(r"trace ([0-9a-f]{32})  (\d+) spans?  ", lines[0])
        assert header, lines[0]
        assert len(lines) > 1
        found[service] = (header.group(1), lines)
    return found


def test_the_three_variants_start_and_flask_really_came_first_in_one(demo):
    stdout, sections = demo
    start = sections["starting three services on loopback"]
    assert "stock: flask and sqlite3 imported, app built; lazypatch not imported yet" in start
    assert '$ PYTHONPATH="$(lazypatch path)" python reviews.py' in start
    assert "$ lazypatch run --service-name shop -- python shop.py" in start


def test_product_page_is_one_trace_across_three_services_sync_and_async(demo):
    _, sections = demo
    found = traces(sections["GET /products/1 -> 200"])
    assert set(found) == {"shop", "stock", "reviews"}
    (shop_id, shop), (stock_id, stock) = found["shop"], found["stock"]
    (reviews_id, reviews) = found["reviews"]
    assert shop_id == stock_id == reviews_id
    assert shop[1].startswith("GET /products/<int:product_id> server shop ")
    assert "█" in shop[1]
    assert any(line.startswith("├─ SELECT shop.sqlite3 client ") for line in shop)
    assert any(line.startswith("└─ GET client ") for line in shop)
    assert any("url=http://127.0.0.1:" in line and "/stock/1  status=200" in line for line in shop)
    assert stock[1].startswith("GET /stock/<int:product_id> server stock ")
    assert "remote_parent=" in stock[2]
    assert any("SELECT stock.sqlite3 client" in line for line in stock)
    # The shop's httpx call (sync) is the parent of the async FastAPI service's server span.
    assert any(
        "url=http://127.0.0.1:" in line and "/reviews/1  status=200" in line for line in shop
    )
    assert reviews[0].split()[2] == "2", reviews[0]  # one server span (lazypatch's), one query
    assert reviews[1].startswith("GET /reviews/{product_id} server reviews ")
    assert "remote_parent=" in reviews[2]
    assert any("SELECT reviews.sqlite3 client" in line for line in reviews)


def test_order_and_refused_order(demo):
    _, sections = demo
    placed = traces(sections['POST /orders {"product_id": 1, "quantity": 2} -> 201'])
    shop = placed["shop"][1]
    assert shop[0].split()[2] == "4"  # server, SELECT, POST, INSERT
    assert [line.split()[1] for line in shop if line.startswith(("├─", "└─"))] == [
        "SELECT",
        "POST",
        "INSERT",
    ]
    assert placed["stock"][1][1].startswith("POST /reservations server stock ")
    refused = traces(sections['POST /orders {"product_id": 2, "quantity": 50} -> 409'])
    assert any(line.startswith("└─ POST client ERROR ") for line in refused["shop"][1])
    assert any("status=409" in line for line in refused["stock"][1])


def test_not_found_stops_before_the_stock_service(demo):
    _, sections = demo
    found = traces(sections["GET /products/9 -> 404"])
    assert list(found) == ["shop"]
    assert "status=404" in found["shop"][1][2]


def test_ends_with_lazypatch_list_and_stops(demo):
    stdout, sections = demo
    listing = sections["lazypatch list"].splitlines()
    assert listing[0].split()[:3] == ["NAME", "TRIGGER", "SOURCE"]
    rows = {tuple(line.split()[:3]) for line in listing[1:] if line.strip()}
    for name in ("flask", "requests", "sqlite3", "httpx"):
        assert (name, name, "lazypatch") in rows
    assert ("starlette", "starlette", "lazypatch") in rows
    assert "All services stopped." in stdout


def test_ends_with_a_metrics_table_per_service(demo):
    _, sections = demo
    text = sections["metrics: duration histograms"].split("\nAll services stopped.")[0]
    tables = {}
    for part in re.split(r"^\[(\w+)\]$", text, flags=re.M)[1:]:
        if part in ("shop", "stock", "reviews"):
            service = part
            continue
        rows = [line.split() for line in part.strip("\n").splitlines()]
        assert rows[0] == ["histogram", "count", "p50", "p99"]
        tables[service] = {" ".join(row[:-5]): int(row[-5]) for row in rows[1:] if row}
    assert tables["shop"]["http.server.request.duration GET /products/<int:product_id> 200"] == 1
    assert tables["shop"]["http.server.request.duration POST /orders 409"] == 1
    assert tables["shop"]["http.client.request.duration POST 127.0.0.1 200"] == 1
    assert tables["shop"]["db.client.operation.duration SELECT"] == 4
    assert tables["stock"]["http.server.request.duration POST /reservations 409"] == 1
    assert tables["stock"]["db.client.operation.duration UPDATE"] == 2
