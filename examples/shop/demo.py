"""The lazypatch demo: three services, sync and async, traced with no tracing code in them.

Run with ``make demo`` (or ``python examples/shop/demo.py`` with lazypatch, Flask, requests,
FastAPI, uvicorn and httpx installed). It

1. seeds three sqlite3 databases in a temporary directory;
2. starts the *stock* service (Flask) with ``python late.py stock``: Flask is imported and the
   app built before ``import lazypatch.auto``;
3. starts the *reviews* service (async FastAPI under uvicorn) with lazypatch's bootstrap
   directory on ``PYTHONPATH`` (``lazypatch path``), as a container manifest would;
4. starts the *shop* (Flask) under ``lazypatch run``: lazypatch is active before the app imports
   Flask;
5. sends the shop a few requests, and prints the traces each service prints
   (``OTEL_TRACES_EXPORTER=lazypatch_tree``): the shop's server span, its sqlite3 queries, its
   ``requests`` call to the stock service and its ``httpx`` call to the reviews service, and, in
   those two, the other parts of the same trace;
6. runs ``lazypatch list``, stops the services (``SIGINT``, so that they exit normally and
   their console metric exporter prints the duration histograms), prints a table of each
   service's metrics, and exits 0 (1 if a trace did not come).

The driver itself is not instrumented: it talks to the shop with ``urllib``.
"""

import json
import os
import queue
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import catalog  # noqa: E402
import metrics_table  # noqa: E402

WAIT = 15.0  # seconds to wait for a service to start or for a trace to be printed

# (method, path, JSON body, services whose trace to wait for)
REQUESTS = (
    ("GET", "/products/1", None, ("shop", "stock", "reviews")),
    ("POST", "/orders", {"product_id": 1, "quantity": 2}, ("shop", "stock")),
    ("POST", "/orders", {"product_id": 2, "quantity": 50}, ("shop", "stock")),
    ("GET", "/products/9", None, ("shop",)),
)


class Service:
    """A child process whose stdout is read by a thread: trace blocks into a queue."""

    def __init__(self, name: str, command: list, env: dict, workdir: Path, how: str) -> None:
        self.name = name
        self.how = how
        self.stderr_path = workdir / f"{name}.stderr"
        self.notes = queue.Queue()  # lines that are not part of a trace
        self.traces = queue.Queue()  # one printed trace (a list of lines) per item
        self.metrics = {}  # the last JSON document the console metric exporter printed
        with open(self.stderr_path, "w") as stderr:
            self.process = subprocess.Popen(
                command,
                cwd=workdir,  # where the databases are
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=stderr,
                text=True,
                encoding="utf-8",
                bufsize=1,
            )
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self) -> None:
        block = document = None
        for line in self.process.stdout:
            line = line.rstrip("\n")
            if document is not None:
                document.append(line)
                if line == "}":
                    self.metrics = json.loads("\n".join(document))
                    document = None
            elif block is None and line == "{":
                document = [line]
            elif block is None and line.startswith("trace "):
                block = [line]
            elif block is not None:
                if line:
                    block.append(line)
                else:
                    self.traces.put(block)
                    block = None
            elif line:
                self.notes.put(line)
        if block:
            self.traces.put(block)

    def note(self, prefix: str) -> str:
        """The next line starting with ``prefix`` that the service printed outside a trace."""
        deadline = time.monotonic() + WAIT
        while True:
            try:
                line = self.notes.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                raise DemoError(f"{self.name} printed no {prefix!r} line") from None
            if line.startswith(prefix):
                return line
            print(f"  {self.name}: {line}")

    def trace(self) -> list:
        """The next trace the service prints."""
        try:
            return self.traces.get(timeout=WAIT)
        except queue.Empty:
            raise DemoError(f"{self.name} printed no trace within {WAIT:.0f} s") from None

    def stop(self) -> None:
        """Interrupt the service (it exits normally: its exporters flush), else kill it."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
            try:
                self.process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.reader.join(timeout=5)

    def stderr(self) -> str:
        return self.stderr_path.read_text(encoding="utf-8", errors="replace")


class DemoError(Exception):
    pass


def service_env(**extra) -> dict:
    env = dict(os.environ)
    env.update(
        OTEL_TRACES_EXPORTER="lazypatch_tree",
        # The duration histograms, printed as JSON when the service exits (and not before).
        OTEL_METRICS_EXPORTER="console",
        OTEL_METRIC_EXPORT_INTERVAL="3600000",
        # lazypatch run sets up a BatchSpanProcessor: export every 50 ms rather than every 5 s.
        OTEL_BSP_SCHEDULE_DELAY="50",
        PYTHONUNBUFFERED="1",
    )
    env.update(extra)
    return env


def call(base: str, method: str, path: str, body) -> int:
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(base + path, data=data, method=method)
    if data is not None:
        req.add_header("Content-Type", "application/json")
    # Read every body to its end: a client that closes a socket with unread data resets the
    # connection, and a WSGI server may then skip the response's close(), where a streamed
    # response's span ends.
    try:
        with urllib.request.urlopen(req, timeout=WAIT) as response:
            response.read()
            return response.status
    except urllib.error.HTTPError as error:
        with error:
            error.read()
        return error.code


def banner(text: str) -> None:
    print(f"\n{'=' * 3} {text} {'=' * max(3, 76 - len(text))}")


def run(workdir: Path) -> None:
    catalog.seed(str(workdir / "shop.sqlite3"), catalog.SHOP_SCHEMA)
    catalog.seed(str(workdir / "stock.sqlite3"), catalog.STOCK_SCHEMA)
    catalog.seed(str(workdir / "reviews.sqlite3"), catalog.REVIEWS_SCHEMA)
    python = sys.executable
    services = {}
    try:
        banner("starting three services on loopback")
        stock = services["stock"] = Service(
            "stock",
            [python, str(HERE / "late.py"), "stock"],
            service_env(OTEL_SERVICE_NAME="stock"),
            workdir,
            "python late.py stock   (Flask imported, app built, then `import lazypatch.auto`)",
        )
        print(f"$ {stock.how}")
        print(f"  {stock.note('stock:')}")
        stock_url = stock.note("listening on").split()[-1]
        print(f"  stock listening on {stock_url}")

        bootstrap = subprocess.run(
            [python, "-m", "lazypatch", "path"], capture_output=True, text=True, check=True
        ).stdout.strip()
        reviews = services["reviews"] = Service(
            "reviews",
            [python, str(HERE / "reviews.py")],
            service_env(OTEL_SERVICE_NAME="reviews", PYTHONPATH=bootstrap),
            workdir,
            'PYTHONPATH="$(lazypatch path)" python reviews.py   (FastAPI on uvicorn, async)',
        )
        print(f"$ {reviews.how}")
        reviews_url = reviews.note("listening on").split()[-1]
        print(f"  reviews listening on {reviews_url}")

        shop = services["shop"] = Service(
            "shop",
            [python, "-m", "lazypatch", "run", "--service-name", "shop", "--"]
            + [python, str(HERE / "shop.py")],
            service_env(STOCK_URL=stock_url, REVIEWS_URL=reviews_url),
            workdir,
            "lazypatch run --service-name shop -- python shop.py   (lazypatch first, then Flask)",
        )
        print(f"$ {shop.how}")
        shop_url = shop.note("listening on").split()[-1]
        print(f"  shop listening on {shop_url}")

        for method, path, body, traced in REQUESTS:
            shown = "" if body is None else " " + json.dumps(body)
            status = call(shop_url, method, path, body)
            banner(f"{method} {path}{shown} -> {status}")
            trace_ids = set()
            for name in traced:
                lines = services[name].trace()
                trace_ids.add(lines[0].split()[1])
                print(f"[{name}]")
                print("\n".join(lines))
            if len(trace_ids) != 1:
                raise DemoError(f"one request, several traces: {sorted(trace_ids)}")

        banner("lazypatch list")
        listing = subprocess.run(
            [python, "-m", "lazypatch", "list"], capture_output=True, text=True, timeout=60
        )
        print(listing.stdout, end="")
        if listing.returncode != 0:
            raise DemoError(f"lazypatch list exited {listing.returncode}: {listing.stderr}")
    except BaseException:
        for service in services.values():
            service.stop()
            print(f"--- {service.name} stderr\n{service.stderr()}", file=sys.stderr)
        raise
    finally:
        for service in services.values():
            service.stop()
    banner("metrics: duration histograms")
    for name, service in services.items():
        print(f"[{name}]")
        print(metrics_table.table(service.metrics))
    print("\nAll services stopped. [shop], [stock] and [reviews] printed the same trace ids: each")
    print("request is one distributed trace, through sync and async code, with no tracing code")
    print("in any application.")


def main() -> int:
    with tempfile.TemporaryDirectory(prefix="lazypatch-shop-") as workdir:
        try:
            run(Path(workdir))
        except DemoError as error:
            print(f"demo failed: {error}", file=sys.stderr)
            return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
