# Two entry points for a fresh machine: `make demo` (the main job) and `make test`.
# torch is pinned to 2.13.0, which resolves to a CPU wheel on the project's machines (elsewhere add
# --index-url https://download.pytorch.org/whl/cpu, or pip pulls the CUDA build).
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
export AERIALSEG_DATA ?= $(abspath ../shared/datasets/dubai-aerial)

.PHONY: install test test-all test-slow lint demo bench docs
install: $(VENV)/.installed
$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q torch==2.13.0 -e '.[dev,baselines,geo,onnx,distributed,lite]'
	touch $@

test: install
	$(PY) -m pytest -q

test-all: install  # includes the slow tests (real-data training)
	$(PY) -m pytest -q -m ""

docs: $(VENV)/.docs-installed  # the site, into site/ (open site/index.html); warnings fail
	$(VENV)/bin/mkdocs build --strict --site-dir site
$(VENV)/.docs-installed: $(VENV)/.installed
	$(PY) -m pip install -q -e '.[docs]'
	touch $@

test-slow: install  # only the slow tests: end-to-end drills, real QGIS on real photos, real data
	$(PY) -m pytest -q -m slow

lint: install
	$(PY) -m ruff check src tests benchmarks docs/hooks
	$(PY) -m ruff format --check src tests benchmarks docs/hooks

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

bench: install  # the figures docs/results.md quotes (hours of CPU; run on an otherwise idle machine)
	$(PY) benchmarks/cli_startup.py
	$(PY) benchmarks/image_speed.py --threads 2 --rounds 5 --no-before
	$(PY) benchmarks/int8_speed.py --rounds 5 --accuracy
	$(PY) benchmarks/onnx_speed.py --rounds 5
	$(PY) benchmarks/keras_anchor.py --threads 1  # says so and skips without tensorflow-cpu
	$(PY) benchmarks/paper_speed.py --threads 2 --rounds 3 --precisions auto,int8  # likewise
	$(PY) benchmarks/ddp_overhead.py --rounds 5
	$(PY) benchmarks/segment_batch.py --rasters 12 --size 1024 --rounds 2
	$(PY) benchmarks/stream_throughput.py --threads 1 --rounds 3
	$(PY) benchmarks/seams.py
	$(PY) benchmarks/segment_memory.py --size 10000 --format png geotiff --baseline
	$(PY) benchmarks/georaster.py --sides 10000 --compare 0
	$(PY) benchmarks/gui_latency.py --rounds 5
	$(PY) benchmarks/app_finetune.py --rounds 3
	$(PY) benchmarks/baselines.py --unet src/aerialseg/weights/default.safetensors
	$(PY) benchmarks/robustness.py
	$(PY) benchmarks/warning.py
	$(PY) benchmarks/resolution.py
	$(PY) benchmarks/new_place.py --seeds 0,1 --fractions 0.005,0.02,0.05 --polygons
	$(PY) benchmarks/new_place.py --home --no-strokes
