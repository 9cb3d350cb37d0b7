# The two commands of the README: `make demo` and `make test`. Everything else is a helper.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: demo test lint bench clean

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip setuptools wheel
	$(PY) -m pip install -q -e '.[test]'
	touch $(STAMP)

# Two Flask services traced with no tracing code in them; trees in the terminal, then exits.
demo: $(STAMP)
	$(PY) examples/shop/demo.py

test: $(STAMP)
	$(PY) -m pytest -n 2 -q $(PYTEST_ARGS)

lint: $(STAMP)
	$(PY) -m ruff check lazypatch tests benchmarks examples
	$(PY) -m ruff format --check lazypatch tests benchmarks examples

clean:
	rm -rf $(VENV) build dist *.egg-info .pytest_cache
