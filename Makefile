# Two entry points for a fresh machine: `make demo` (the main job) and `make test`.
# torch is pinned to 2.13.0: here that is a local CPU wheel; an unpinned torch would pull CUDA.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
export AERIALSEG_DATA ?= $(abspath ../shared/datasets/dubai-aerial)

.PHONY: install test test-all lint demo bench
install: $(VENV)/.installed
$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q torch==2.13.0 -e '.[dev,baselines]'
	touch $@

test: install
	$(PY) -m pytest -q

test-all: install  # includes the slow tests (real-data training)
	$(PY) -m pytest -q -m ""

lint: install
	$(PY) -m ruff check src tests benchmarks
	$(PY) -m ruff format --check src tests benchmarks

demo: install
	$(VENV)/bin/aerialseg train --out runs/demo --minutes 3 --patches-per-epoch 320
	$(VENV)/bin/aerialseg evaluate --model runs/demo/best.safetensors --split val \
		--confusion runs/demo/confusion.png

bench: install
	$(PY) benchmarks/train_throughput.py
