# One entry point. Both targets create .venv on first use.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
PY := $(VENV)/bin/python
WORKDIR ?= runs/quick

.PHONY: run test bench bench-torch clean

$(VENV)/.installed: pyproject.toml constraints.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -c constraints.txt -e '.[test,bench]'
	touch $@

## the main job on the embedded offline default: a quick PR-DARTS search on digits
run: $(VENV)/.installed
	$(PY) -m prdarts_jax.search --config configs/quick.py --workdir $(WORKDIR)

## the whole test suite
test: $(VENV)/.installed
	$(PY) -m pytest -q tests

bench: $(VENV)/.installed
	$(PY) benchmarks/ops.py

## JAX vs. the PyTorch reference at paper scale (slow on a CPU: see README, Benchmarks)
bench-torch: $(VENV)/.installed
	$(PY) benchmarks/search_step.py
	$(PY) benchmarks/train_step.py

clean:
	rm -rf $(VENV) runs .pytest_cache
