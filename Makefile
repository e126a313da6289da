# The two set-up commands from the README: `make demo` and `make test`.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python

.PHONY: demo test venv install install-dev quiet-check

$(PY):
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip

# PYTHONWARNINGS reaches pip's build subprocess: setuptools' editable-install notice (a box of
# asterisks on stderr at every `make demo`) is about its own build, not about this project.
install: $(PY)
	PYTHONWARNINGS=ignore $(PY) -m pip install --quiet -e .

install-dev: $(PY)
	PYTHONWARNINGS=ignore $(PY) -m pip install --quiet -e ".[dev]"

# Main job on bundled data: train the sentiment model on SST-2, export it, query the export.
demo: install
	$(PY) -m apps.sentiment train --run-dir runs/demo
	$(PY) -m apps.sentiment export --run-dir runs/demo --out exports/sentiment
	$(PY) -m apps.sentiment predict --export exports/sentiment "a gripping , beautifully acted film" "a dull , lifeless mess"

# Test suite; pytest's exit code 5 (no tests collected) is not a failure of the set-up.
test: install-dev
	$(PY) -m pytest -q tests; rc=$$?; if [ $$rc -eq 5 ]; then echo "no tests collected"; exit 0; fi; exit $$rc

# TensorFlow starts without its start-up lines (README, "Quiet output"): a fresh environment,
# as a user's shell has it, must leave stderr empty; SEQAPPS_VERBOSE=1 shows them.
quiet-check: $(PY)
	@err=$$(env -i PATH="$$PATH" HOME="$$HOME" $(PY) -c 'from seqapps.cli import start_tensorflow; start_tensorflow()' 2>&1 >/dev/null); \
	if [ -n "$$err" ]; then echo "TensorFlow start-up is not quiet:"; echo "$$err"; exit 1; fi; echo "start-up is quiet"
