# The two set-up commands from the README: `make demo` and `make test`.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python

.PHONY: demo test venv install install-dev

$(PY):
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip

install: $(PY)
	$(PY) -m pip install --quiet -e .

install-dev: $(PY)
	$(PY) -m pip install --quiet -e ".[dev]"

# Main job on bundled data: train the sentiment model on SST-2, export it, query the export.
demo: install
	$(PY) -m apps.sentiment train --run-dir runs/demo
	$(PY) -m apps.sentiment export --run-dir runs/demo --out exports/sentiment
	$(PY) -m apps.sentiment predict --export exports/sentiment "a gripping , beautifully acted film" "a dull , lifeless mess"

# Test suite; pytest's exit code 5 (no tests collected) is not a failure of the set-up.
test: install-dev
	$(PY) -m pytest -q tests; rc=$$?; if [ $$rc -eq 5 ]; then echo "no tests collected"; exit 0; fi; exit $$rc
