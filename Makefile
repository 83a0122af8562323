# gan_lab — `make train` runs the default job, `make test` the test suite; both set up .venv first.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
TORCH_VERSION ?= 2.13.0
STAMP := $(VENV)/.installed

.PHONY: install train test test-all lint format bench gpu-check data clean

install: $(STAMP)

# torch goes in first and pinned, so nothing later pulls a different (multi-GB CUDA) build.
$(STAMP): pyproject.toml constraints.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet torch==$(TORCH_VERSION)
	$(PY) -m pip install --quiet -c constraints.txt -e '.[dev]'
	touch $@

train: $(STAMP)
	$(PY) -m gan_lab $(ARGS)

# one pytest worker per core, each on a core of its own (tests/conftest.py), a test file's tests on one worker
TEST_WORKERS ?= auto
test: $(STAMP)
	$(PY) -m pytest -m "not slow" -n $(TEST_WORKERS) --dist loadfile $(PYTEST_ARGS)

# the lab's training step against a plain PyTorch loop (DCGAN-32 batch 64, MLP ring), then the measurements behind
# the CPU thread budget (model sizes at 1 thread vs all cores, a 2-job sweep); run on an idle machine
bench: $(STAMP)
	$(PY) -m benchmarks.bench $(ARGS)
	$(PY) -m benchmarks.threads

# the one prepared check of the GPU path (gpu tests, GPU bench rows, the default job's wall time), JSON + markdown
# in outputs/gpu-check/; without a GPU its GPU steps are recorded as skipped
gpu-check: $(STAMP)
	$(PY) -m benchmarks.gpu_check $(ARGS)

# Fashion-MNIST offline: Debian's package puts its four IDX files where dataset=fashion_mnist finds them with no setting
FASHION_MNIST_DIR := /usr/share/datasets/fashion-mnist
data:
	@if [ -f $(FASHION_MNIST_DIR)/train-images-idx3-ubyte.gz ]; then \
		echo "Fashion-MNIST is installed in $(FASHION_MNIST_DIR)/ (dataset=fashion_mnist reads it)"; \
	elif command -v apt-get >/dev/null 2>&1; then \
		SUDO=$$([ "$$(id -u)" -eq 0 ] || echo sudo); \
		$$SUDO apt-get install -y dataset-fashion-mnist || { echo "apt-get could not install dataset-fashion-mnist" \
			"(try: $$SUDO apt-get update first), or run with dataset.download=true where a network exists"; exit 1; }; \
	else \
		echo "no apt-get here: run with dataset.download=true where a network exists, or put train-images-idx3-ubyte.gz" \
			"and the other three IDX files in <paths.data_dir>/FashionMNIST/raw/"; exit 1; \
	fi

test-all: $(STAMP)
	$(PY) -m pytest -n $(TEST_WORKERS) --dist loadfile $(PYTEST_ARGS)

# ruff's lint rules (pyproject.toml); the code keeps its own compact layout, so no `ruff format`
lint: $(STAMP)
	$(PY) -m ruff check gan_lab tests benchmarks

format: $(STAMP)
	$(PY) -m ruff check --fix gan_lab tests benchmarks

clean:
	rm -rf $(VENV) build dist *.egg-info .pytest_cache
