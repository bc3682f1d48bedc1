# One entry point. Every target creates .venv on first use; `run` installs only what a search
# needs, `test` and the benchmarks add pytest and the PyTorch reference (torch, ~750 MB).
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
PY := $(VENV)/bin/python
WORKDIR ?= runs/quick

.PHONY: run test test-all bench bench-torch clean

$(VENV)/.installed-run: pyproject.toml constraints.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -c constraints.txt -e .
	touch $@

$(VENV)/.installed: $(VENV)/.installed-run
	$(PY) -m pip install -q -c constraints.txt -e '.[test,bench]'
	touch $@

## the main job on the embedded offline default: a quick PR-DARTS search on digits
run: $(VENV)/.installed-run
	$(PY) -m prdarts_jax.search --config configs/quick.py --workdir $(WORKDIR)

## the test suite (what CI runs)
test: $(VENV)/.installed
	$(PY) -m pytest -q tests

## the test suite with the tests marked slow (multi-process jobs: about 4 min more on 2 cores)
test-all: $(VENV)/.installed
	$(PY) -m pytest -q tests --slow

bench: $(VENV)/.installed
	$(PY) benchmarks/ops.py

## JAX vs. the PyTorch reference at paper scale (slow on a CPU: see README, Benchmarks)
bench-torch: $(VENV)/.installed
	$(PY) benchmarks/search_step.py
	$(PY) benchmarks/train_step.py

clean:
	rm -rf $(VENV) runs .pytest_cache
