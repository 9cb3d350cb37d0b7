"""Fork and servers: after ``import lazypatch.auto``, forked children, ``multiprocessing``
workers (every start method) and gunicorn workers export their spans, and hooks registered in
the parent fire in a forked child.

Spans are collected by a loopback OTLP/HTTP receiver; each carries the ``process.pid`` of the
process that made it (the SDK's process resource detector), so the tests can tell who exported.
"""

import http.server
import json
import multiprocessing
import os
import re
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from fresh import write_modules
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

BIN = Path(sys.executable).parent


class Receiver:
    """A loopback OTLP/HTTP receiver; ``spans()`` lists the spans that arrived as plain data."""

    def __init__(self):
        self._received = []
        received = self._received

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers["Content-Length"]))
                # Metrics are taken too (and not kept): a refused export would be retried for
                # seconds by each process, with backoff, before it exits.
                if self.path == "/v1/traces":
                    request = ExportTraceServiceRequest()
                    request.ParseFromString(body)
                    received.append(request)
                self.send_response(200)
                self.send_header("Content-Type", "application/x-protobuf")
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args):
                pass

        self._server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()
        self.endpoint = f"http://127.0.0.1:{self._server.server_port}"

    def spans(self):
        found = []
        for request in list(self._received):
            for resource_spans in request.resource_spans:
                resource = {a.key: a.value for a in resource_spans.resource.attributes}
                pid = resource["process.pid"].int_value if "process.pid" in resource else None
                for scope_spans in resource_spans.scope_spans:
                    for span in scope_spans.spans:
                        attributes = {a.key: a.value for a in span.attributes}
                        found.append((pid, span.name, attributes))
        return found

    def close(self):
        self._server.shutdown()
        self._server.server_close()
        self._thread.join()


@pytest.fixture
def receiver():
    receiver = Receiver()
    yield receiver
    receiver.close()


def otel_env(receiver):
    """Environment of a process that exports to ``receiver`` (through lazypatch's defaults)."""
    env = dict(os.environ)
    env.pop("PYTHONSTARTUP", None)
    env.pop("OTEL_TRACES_EXPORTER", None)
    env.update(
        OTEL_EXPORTER_OTLP_ENDPOINT=receiver.endpoint,
        OTEL_EXPERIMENTAL_RESOURCE_DETECTORS="process",
        OTEL_SERVICE_NAME="fork-test",
        # A schedule delay far beyond the test: spans leave a child only if it flushes at exit.
        OTEL_BSP_SCHEDULE_DELAY="600000",
    )
    return env


def run_script(tmp_path, source, receiver, args=(), files=None, timeout=120):
    write_modules(tmp_path, {"main.py": source, **(files or {})})
    env = otel_env(receiver)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(tmp_path), env.get("PYTHONPATH")]))
    proc = subprocess.run(
        [sys.executable, str(tmp_path / "main.py"), *args],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    assert proc.returncode == 0, f"{proc.returncode}\n{proc.stdout}\n{proc.stderr}"
    return proc


def lines(proc, prefix):
    return [line.split()[1:] for line in proc.stdout.splitlines() if line.startswith(prefix)]


# A module nobody imports before the child does: the parent's hook on it must fire there.
WATCHED = {"watched.py": "VALUE = 1\n"}

OS_FORK = """
import os, sys
import lazypatch.auto
import lazypatch, sqlite3

lazypatch.register_hook("watched", lambda module: os.write(1, f"HOOK {os.getpid()}\\n".encode()))

def work(tag):
    sqlite3.connect(":memory:").execute(f"SELECT '{tag}'")

print("PARENT", os.getpid(), flush=True)
if sys.argv[1] == "span in parent first":
    work("parent before fork")
children = []
for index in range(2):
    pid = os.fork()
    if pid == 0:
        import watched
        work(f"child {index}")
        sys.exit(0)  # a forked child that ends as a program does: exit handlers run
    children.append(pid)
for pid in children:
    assert os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1]) == 0
    print("CHILD", pid, flush=True)
work("parent after fork")
"""


@pytest.mark.parametrize("first", ["span in parent first", "first span in a child"])
def test_forked_children_export_their_spans_and_run_the_parents_hooks(tmp_path, receiver, first):
    proc = run_script(tmp_path, OS_FORK, receiver, args=[first], files=WATCHED)
    (parent,) = (int(pid) for (pid,) in lines(proc, "PARENT"))
    children = {int(pid) for (pid,) in lines(proc, "CHILD")}
    assert len(children) == 2
    assert {int(pid) for (pid,) in lines(proc, "HOOK")} == children  # once in each child
    # Each query names the process that ran it; only that process can have exported its span.
    # (Which process.pid the resource reports in a forked child is the SDK's business: it
    # re-detects it after fork, so it is not what this test checks.)
    queries = sorted(
        attributes["db.query.text"].string_value for _, _, attributes in receiver.spans()
    )
    expected = ["SELECT 'child 0'", "SELECT 'child 1'", "SELECT 'parent after fork'"]
    if first == "span in parent first":
        expected.append("SELECT 'parent before fork'")
    assert queries == sorted(expected), queries  # every span once: none lost, none sent twice
    assert parent not in children


MULTIPROCESSING = """
import os, sys, multiprocessing
import lazypatch.auto
import lazypatch, sqlite3

def work(tag):
    import watched
    sqlite3.connect(":memory:").execute(f"SELECT '{tag}'")
    return os.getpid()

def in_process(tag):
    os.write(1, f"WORKER {work(tag)} {tag}\\n".encode())

if __name__ == "__main__":
    lazypatch.register_hook("watched", lambda module: os.write(1, f"HOOK {os.getpid()}\\n".encode()))
    ctx = multiprocessing.get_context(sys.argv[1])
    processes = [ctx.Process(target=in_process, args=(f"process {i}",)) for i in range(2)]
    for process in processes:
        process.start()
    for process in processes:
        process.join(60)
        assert process.exitcode == 0, process.exitcode
    pool = ctx.Pool(2)
    tags = [f"task {i}" for i in range(4)]
    for pid, tag in zip(pool.map(work, tags, chunksize=1), tags):
        print("WORKER", pid, tag, flush=True)
    pool.close()
    pool.join()
"""


@pytest.mark.slow
@pytest.mark.parametrize("method", ["fork", "spawn", "forkserver"])
def test_multiprocessing_workers_export_their_spans(tmp_path, receiver, method):
    if method not in multiprocessing.get_all_start_methods():
        pytest.skip(f"no {method} start method here")
    proc = run_script(tmp_path, MULTIPROCESSING, receiver, args=[method], files=WATCHED)
    ran = sorted((int(pid), " ".join(tag)) for pid, *tag in lines(proc, "WORKER"))
    assert len(ran) == 6, proc.stdout
    exported = sorted(
        (pid, attributes["db.query.text"].string_value[len("SELECT '") : -1])
        for pid, _, attributes in receiver.spans()
    )
    assert exported == ran
    if method == "fork":
        # The parent's hook is inherited; the first import of ``watched`` in each worker fires it.
        hooked = [int(pid) for (pid,) in lines(proc, "HOOK")]
        assert sorted(hooked) == sorted({pid for pid, _ in ran})


APP = """
import os, pathlib, time
import lazypatch, flask
if os.environ.get("IMPORT_AUTO"):
    import lazypatch.auto

HOOKED = []
lazypatch.register_hook("watched", lambda module: HOOKED.append(os.getpid()))
ARRIVED = pathlib.Path(os.environ["ARRIVED_DIR"])
app = flask.Flask(__name__)

@app.route("/hold")
def hold():
    # Keeps this sync worker busy until the other worker has a request too (bounded), so the
    # two requests are served by the two workers.
    import watched
    (ARRIVED / str(os.getpid())).touch()
    deadline = time.monotonic() + 20
    while len(list(ARRIVED.iterdir())) < 2 and time.monotonic() < deadline:
        time.sleep(0.01)
    return {"pid": os.getpid(), "hooked": HOOKED}
"""


def wait_for_log(log, proc, pattern, count=1, timeout=60):
    """The matches of ``pattern`` in gunicorn's log once there are ``count`` (bounded)."""
    deadline = time.monotonic() + timeout
    while True:
        text = log.read_text() if log.exists() else ""
        found = re.findall(pattern, text)
        if len(found) >= count:
            return found
        assert proc.poll() is None, f"gunicorn exited {proc.returncode}\n{text}"
        assert time.monotonic() < deadline, f"no {pattern!r} in gunicorn's log\n{text}"
        time.sleep(0.05)


def get_json(url):
    with urllib.request.urlopen(url, timeout=60) as response:
        return json.load(response)


@pytest.mark.slow
@pytest.mark.parametrize("activation", ["import lazypatch.auto", "lazypatch run"])
def test_gunicorn_preload_workers_export_their_spans(tmp_path, receiver, activation):
    from gunicorn import config

    write_modules(tmp_path, {"app.py": APP, **WATCHED})
    arrived = tmp_path / "arrived"
    arrived.mkdir()
    log = tmp_path / "gunicorn.log"
    env = otel_env(receiver)
    env["ARRIVED_DIR"] = str(arrived)
    command = [str(BIN / "gunicorn"), "--preload", "-w", "2", "-b", "127.0.0.1:0"]
    command += ["--chdir", str(tmp_path), "--log-file", str(log), "app:app"]
    if any(s.name == "control_socket_disable" for s in config.KNOWN_SETTINGS):
        command.insert(1, "--no-control-socket")
    if activation == "lazypatch run":
        command = [str(BIN / "lazypatch"), "run", "--", *command]
    else:
        env["IMPORT_AUTO"] = "1"
    proc = subprocess.Popen(command, env=env, cwd=tmp_path)
    try:
        (port,) = wait_for_log(log, proc, r"Listening at: http://127\.0\.0\.1:(\d+)")
        workers = {
            int(pid) for pid in wait_for_log(log, proc, r"Booting worker with pid: (\d+)", 2)
        }
        with ThreadPoolExecutor(2) as pool:
            answers = list(pool.map(get_json, [f"http://127.0.0.1:{port}/hold"] * 2))
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(60) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    served = {answer["pid"] for answer in answers}
    assert served == workers, answers  # one request per worker
    for answer in answers:
        assert answer["hooked"] == [answer["pid"]]  # the master's hook, fired in the worker
    spans = [(pid, name) for pid, name, _ in receiver.spans()]
    assert sorted(spans) == sorted((pid, "GET /hold") for pid in workers)
