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
	$(PY) -m pip install -q torch==2.13.0 -e '.[dev,baselines,geo,onnx,distributed,lite]'
	touch $@

test: install
	$(PY) -m pytest -q

test-all: install  # includes the slow tests (real-data training)
	$(PY) -m pytest -q -m ""

.PHONY: test-slow
test-slow: install  # only the slow tests: end-to-end drills, real QGIS on real photos, real data
	$(PY) -m pytest -q -m slow

lint: install
	$(PY) -m ruff check src tests benchmarks
	$(PY) -m ruff format --check src tests benchmarks

demo: install  # segment the dataset's images with the bundled model, then score it
	@if [ ! -d "$$AERIALSEG_DATA/Tile 1/images" ]; then \
	  echo "No dataset at $$AERIALSEG_DATA. Get the Kaggle dataset with"; \
	  echo "  $(VENV)/bin/aerialseg download            (needs internet and kagglehub), or"; \
	  echo "  $(VENV)/bin/aerialseg download --from semantic-segmentation-of-aerial-imagery.zip"; \
	  echo "then: make demo AERIALSEG_DATA=data/dubai-aerial"; exit 1; fi
	$(VENV)/bin/aerialseg segment "$$AERIALSEG_DATA" --out runs/demo --overwrite
	$(VENV)/bin/aerialseg evaluate --data "$$AERIALSEG_DATA" --split val \
		--confusion runs/demo/confusion.png
	@echo "Outputs are in runs/demo/ (per image: *_figure.png, *_overlay.jpg, *_mask.png, ...)"

bench: install  # every README figure (about an hour of CPU; run on an otherwise idle machine)
	$(PY) benchmarks/cli_startup.py
	$(PY) benchmarks/train_throughput.py
	$(PY) benchmarks/segment_speed.py
	$(PY) benchmarks/onnx_speed.py
	$(PY) benchmarks/ddp_overhead.py
	$(PY) benchmarks/segment_batch.py
	$(PY) benchmarks/seams.py
	$(PY) benchmarks/segment_memory.py
	$(PY) benchmarks/georaster.py
	$(PY) benchmarks/gui_latency.py --rounds 10
	$(PY) benchmarks/baselines.py --unet src/aerialseg/weights/default.safetensors
	$(PY) benchmarks/robustness.py
