# PocketGAN developer targets. `make test` and `make demo` each install first, so either works on a fresh clone.
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.pocketgan-installed
# Extra pip flags for torch, e.g. TORCH_PIP_FLAGS="--index-url https://download.pytorch.org/whl/cpu"
TORCH_PIP_FLAGS ?=
export PYTHONHASHSEED := 0
# OpenMP threads that sleep instead of spinning: on a busy 2-core machine a patch-resnet training step took
# 4.8 s with spinning threads and 0.44 s with passive ones (2 threads, 128 px, batch 8); same results.
OMP_WAIT_POLICY ?= PASSIVE
export OMP_WAIT_POLICY

.PHONY: install demo test test-all bench lint fmt clean student data

# The training photos of the embedded set (pocketgan/data/photos.toml): seven Debian packages of photographs.
WALLPAPER_PACKAGES := plasma-workspace-wallpapers lomiri-wallpapers-20.04 lomiri-wallpapers-16.04 \
	lxqt-themes tuxpaint-data palapeli-data gcompris-qt-data

install: $(STAMP)

$(STAMP): pyproject.toml constraints.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q $(TORCH_PIP_FLAGS) torch==2.13.0
	$(BIN)/python -m pip install -q -c constraints.txt -e ".[full,executorch,dev]"
	# vintagify only carries the default teacher's weights; its declared deps (torchvision) break CPU torch.
	$(BIN)/python -m pip install -q --no-deps vintagify==0.1.2
	touch $(STAMP)

demo: install
	$(BIN)/pocketgan demo --out build/demo

test: install
	$(BIN)/python -m pytest -m "not slow" -q

test-all: install
	$(BIN)/python -m pytest -q

bench: install
	$(BIN)/pocketgan bench $(wildcard dist/*.onnx dist/*.tflite dist/*.pte) --threads 2

# Install the training photos with apt where we can, say what to do where we cannot, then check them.
data: install
	@if $(BIN)/python -m pocketgan.data.photos >/dev/null 2>&1; then echo "training photos already present"; \
	elif ! command -v apt-get >/dev/null; then \
		echo "no apt-get here: install the Debian/Ubuntu packages $(WALLPAPER_PACKAGES) on a Debian-like system"; \
		echo "and copy /usr/share/wallpapers and /usr/share/backgrounds, or train with --data DIR"; \
	elif [ "$$(id -u)" = 0 ]; then apt-get install -y --no-install-recommends $(WALLPAPER_PACKAGES); \
	elif command -v sudo >/dev/null; then sudo apt-get install -y --no-install-recommends $(WALLPAPER_PACKAGES); \
	else echo "run as root: apt-get install $(WALLPAPER_PACKAGES)"; fi
	$(BIN)/python -m pocketgan.data.photos

# --resume only where a run was interrupted: distill refuses --resume on a folder without one (fresh clone).
student: install
	$(BIN)/python -m pocketgan.data.photos
	$(BIN)/pocketgan distill --config recipes/vintage.toml --out runs/vintage-student \
		$(if $(wildcard runs/vintage-student/last.pt),--resume,)
	$(BIN)/python -m pocketgan.distill.ship runs/vintage-student pocketgan/zoo/vintage-mobile
	$(BIN)/pocketgan export pocketgan/zoo/vintage-mobile/student.pt --format onnx --precision fp32 --grain none \
		--out build/grain-fit
	$(BIN)/python -m pocketgan.distill.grain --resolution 1280 --artifact build/grain-fit/student.fp32.onnx \
		--out pocketgan/zoo/vintage-mobile/grain.json

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

fmt: install
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

clean:
	rm -rf build dist runs .pytest_cache .ruff_cache
	find . -name __pycache__ -type d -prune -exec rm -rf {} +
