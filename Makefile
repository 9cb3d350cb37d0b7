# The two commands of the README: `make demo` and `make test`. Everything else is a helper.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: demo test test-fast test-host lint bench clean

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip setuptools wheel
	$(PY) -m pip install -q -e '.[test]'
	touch $(STAMP)

# Two Flask services and an async FastAPI one, traced with no tracing code in them; trees in the
# terminal, then exits.
demo: $(STAMP)
	$(PY) examples/shop/demo.py

test: $(STAMP)
	$(PY) -m pytest -n 2 -q $(PYTEST_ARGS)

# The quick loop: no state machine, thread stress, benchmark smoke runs, end-to-end tests or
# instrumentation order matrices.
test-fast: $(STAMP)
	$(PY) -m pytest -n 2 -q -m "not slow" --ignore=tests/e2e --ignore=tests/instrumentation $(PYTEST_ARGS)

# CPython's own regression tests for what lazypatch touches (logging, sqlite3, urllib, importlib...),
# bare, under `lazypatch run`, and with a no-op hook on every stdlib module; fails on any test that
# lazypatch breaks and docs/guarantees.md does not list. Minutes, not seconds: see tools/host_tests.py.
test-host: $(STAMP)
	$(PY) tools/host_tests.py --python $(PY) $(HOST_ARGS)

lint: $(STAMP)
	$(PY) -m ruff check lazypatch tests benchmarks examples tools
	$(PY) -m ruff format --check lazypatch tests benchmarks examples tools
	$(PY) -m mypy

# The benchmarks' peers (ddtrace, OpenTelemetry's distro and instrumentations) live in a venv of
# their own: installed in $(VENV), ddtrace's pytest plugin and the extra instrumentors would change
# what the tests see.
BENCH_VENV ?= .venv-bench
BENCH_PY := $(BENCH_VENV)/bin/python
BENCH_STAMP := $(BENCH_VENV)/.installed

# lazypatch itself is installed as a wheel, not editable: an editable install puts a finder of its
# own in every interpreter's start-up, which would weigh on the bare baseline and every peer alike.
$(BENCH_STAMP): pyproject.toml
	test -x $(BENCH_PY) || $(PYTHON) -m venv $(BENCH_VENV)
	$(BENCH_PY) -m pip install -q --upgrade pip setuptools wheel
	$(BENCH_PY) -m pip install -q '.[bench]'
	touch $(BENCH_STAMP)

bench: $(BENCH_STAMP)
	$(BENCH_PY) -m pip install -q --no-deps --force-reinstall .
	$(BENCH_PY) benchmarks/run_all.py $(BENCH_ARGS)

clean:
	rm -rf $(VENV) build dist *.egg-info .pytest_cache
