# A fresh machine needs only python3 and make: every target builds .venv on first use.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
export PREFECT_SERVER_ANALYTICS_ENABLED ?= false
export DO_NOT_TRACK ?= 1

.PHONY: demo test drills bench bench-quick lint serve clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip

$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/pip install -q -e .
	touch $@

$(VENV)/.installed-dev: pyproject.toml | $(BIN)/python
	$(BIN)/pip install -q -e '.[dev]'
	touch $@ $(VENV)/.installed

demo: $(VENV)/.installed  ## Render the example prompts with the built-in local provider
	$(BIN)/sceneflow batch deployments/examples/prompts.csv --provider local --user demo \
		--output outputs/demo

test: $(VENV)/.installed-dev  ## Run the test suite (PostgreSQL variants need SCENEFLOW_TEST_POSTGRES_URL)
	$(BIN)/pytest -q

drills: $(VENV)/.installed-dev  ## Fault, crash and concurrency drills at full size (minutes)
	SCENEFLOW_DRILLS=full $(BIN)/pytest -q tests/drills

bench: $(VENV)/.installed-dev  ## Speed benchmarks, as ratios against in-run baselines; writes bench/RESULTS.md (about 90 minutes; bench_scale needs PostgreSQL, see bench/README.md)
	$(BIN)/python -m bench

bench-quick: $(VENV)/.installed-dev  ## The same, with the batch benchmark at N=1,000 only and bench_scale at 200 rows (about 25 minutes)
	$(BIN)/python -m bench --quick

serve: $(VENV)/.installed  ## Local Prefect server + UI + deployments + a worker (Ctrl-C stops)
	bash deployments/serve.sh

lint: $(VENV)/.installed-dev
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy sceneflow adapters

clean:
	rm -rf $(VENV) outputs .sceneflow
