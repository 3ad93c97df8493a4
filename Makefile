# Everything a fresh machine needs, then the demo, the tests or the benchmarks.
#   make run    set up (once), then full data against InfoBatch on Fashion-MNIST, ending in the comparison
#   make test   set up (once), then the test suite (CPU, offline, a few minutes)
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
# PyTorch is installed first, pinned, so that resolving the package never swaps in another build.
TORCH  ?= torch==2.14.1 torchvision==0.29.1
FASHION_MNIST := /usr/share/datasets/fashion-mnist

.PHONY: setup run test bench clean

setup: $(VENV)/.installed $(FASHION_MNIST)

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet $(TORCH)
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $@

# Debian's dataset-fashion-mnist: the real data offline. Without apt, runs need dataset.download=true.
$(FASHION_MNIST):
	@if command -v apt-get >/dev/null 2>&1; then \
	  sudo=$$([ "$$(id -u)" -eq 0 ] || echo sudo); \
	  $$sudo apt-get install -y -q dataset-fashion-mnist >/dev/null 2>&1 \
	  || { $$sudo apt-get update -q >/dev/null && $$sudo apt-get install -y -q dataset-fashion-mnist >/dev/null; } \
	  || echo "warning: could not install dataset-fashion-mnist; add dataset.download=true to fetch Fashion-MNIST"; \
	else \
	  echo "warning: no apt-get here; add dataset.download=true to fetch Fashion-MNIST"; \
	fi

run: setup
	$(BIN)/infobatch-run -m experiment=fashion_mnist_quick prune=full,infobatch

test: setup
	$(BIN)/python -m pytest

# Benchmarks (not tests): one JSON each under bench/results/, then the tables the README shows.
bench: setup
	$(BIN)/python -m bench.strategy_overhead
	$(BIN)/python -m bench.loop_efficiency
	$(BIN)/python -m bench.savings
	$(BIN)/python -m bench.loader_speed
	$(BIN)/python -m bench.table

clean:
	rm -rf build dist *.egg-info .pytest_cache
