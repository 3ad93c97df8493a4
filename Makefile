# Everything a fresh machine needs, then the demo, the tests or the benchmarks.
#   make run        set up (once), then full data, InfoBatch and full data for 5 of 8 epochs on Fashion-MNIST, ending in the comparison
#   make test       set up (once), then the test suite (CPU, offline, ~11 minutes on 2 cores; TEST_WORKERS=2)
#   make docs       the documentation site into site/ (MkDocs, --strict: a broken link fails it)
#   make bench      the benchmarks (BENCH_ARGS="--device cuda --repeats 2" is passed to each)
#   make leaderboard  two regimes (8 epochs on all 60k, 16 on 10k): every dynamic strategy and short_schedule at 30/50/70% saved, 4 and 6 seeds (102 minutes on 2 cores, measured)
#   make gpu-check  every CUDA path in ~8 minutes, a PASS/FAIL table and the figures (GPU_CHECK_ARGS="--device cpu": dry run)
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
# The interpreter of bench and gpu-check: the venv's once there is one, else $(PYTHON).
PY      = $(shell [ -x $(BIN)/python ] && echo $(BIN)/python || echo $(PYTHON))
# PyTorch is installed first, pinned, so that resolving the package never swaps in another build.
TORCH  ?= torch==2.14.1 torchvision==0.29.1
FASHION_MNIST := /usr/share/datasets/fashion-mnist

.PHONY: setup ready run test docs bench leaderboard gpu-check clean

setup: $(VENV)/.installed $(FASHION_MNIST)

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet $(TORCH)
	$(BIN)/pip install --quiet -e '.[dev,docs]'
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
	$(BIN)/infobatch-run -m experiment=fashion_mnist_quick prune=full,infobatch,short_schedule

# The suite in TEST_WORKERS processes (pytest-xdist), a test file per process at a time: the tests
# are mostly single-threaded, so two workers take about 11 minutes on 2 cores where one took 15.
TEST_WORKERS ?= 2
test: setup
	$(BIN)/python -m pytest -n $(TEST_WORKERS) --dist loadfile

# The documentation site (mkdocs.yml, docs/): pages, the configuration and method cards generated from
# the code (docs/hooks.py), the API reference from the docstrings; open site/index.html.
docs: setup
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict --site-dir site

# Strategies at equal savings on the real Fashion-MNIST (infobatch_runner/leaderboard.py); the table
# ends the sweep's report.md. STRATEGIES (any registered one, another package's too), SAVINGS and
# SEEDS, comma-separated, change what it compares (full data and short_schedule always run), e.g.
# make leaderboard STRATEGIES=infobatch,loss_proportional SEEDS=0,1. LEADERBOARD_ARGS adds overrides
# (W&B is off unless you drop logger=none).
LEADERBOARD_ARGS ?= logger=none
leaderboard: setup
	$(BIN)/python -m infobatch_runner.leaderboard $(if $(STRATEGIES),--strategies $(STRATEGIES)) \
		$(if $(SAVINGS),--savings $(SAVINGS)) $(if $(SEEDS),--seeds $(SEEDS)) $(LEADERBOARD_ARGS)

# bench and gpu-check set up only where torch, hydra and the package are not importable yet: a GPU box
# with them staged on PYTHONPATH (no venv, no network) runs them as it is.
ready:
	@$(PY) -c 'import torch, hydra, infobatch_runner.conf' >/dev/null 2>&1 || $(MAKE) --no-print-directory setup

# Benchmarks (not tests): one JSON each under bench/results/ (or $BENCH_RESULTS), then the tables docs/speed.md shows.
bench: ready
	$(PY) -m bench.strategy_overhead $(BENCH_ARGS)
	$(PY) -m bench.loop_efficiency $(BENCH_ARGS)
	$(PY) -m bench.savings $(BENCH_ARGS)
	$(PY) -m bench.loader_speed $(BENCH_ARGS)
	$(PY) -m bench.optimizer_speed $(BENCH_ARGS)
	$(PY) -m bench.startup $(BENCH_ARGS)
	$(PY) -m bench.table

# The GPU smoke test (bench/gpu_check.py): logs and results under $OUT, else outputs/gpu_check/.
gpu-check: ready
	$(PY) -m bench.gpu_check $(GPU_CHECK_ARGS)

clean:
	rm -rf build dist *.egg-info .pytest_cache
