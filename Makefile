# fraud-ray: `make run` for the main job, `make test` for the whole suite. Both start from nothing.
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
UV_VERSION := 0.13.9

.PHONY: install lock run serve demo test lint format services bench clean

$(BIN)/uv:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet uv==$(UV_VERSION)

# The lock pins every package, direct or not, so a fresh machine gets the environment tested here.
# Bytecode is compiled once here: uv does not by default, and where PYTHONDONTWRITEBYTECODE is set
# (this machine, many container images) every Ray worker, replica and trial would otherwise compile
# Ray, pandas and scikit-learn from source as it starts (docs/benchmarks.md, "Start-up").
$(VENV)/.installed: pyproject.toml requirements.lock | $(BIN)/uv
	$(BIN)/uv pip install --quiet --compile-bytecode --python $(BIN)/python -r requirements.lock
	$(BIN)/uv pip install --quiet --python $(BIN)/python --no-deps -e .
	touch $@

install: $(VENV)/.installed

lock: | $(BIN)/uv
	$(BIN)/uv pip compile pyproject.toml --extra dev --python-version 3.11 --no-header -o requirements.lock

# Serve's own flags for every Serve process, the same as fraud_ray/serving/flags.py gives the
# KubeRay pods (tests/unit/test_kuberay.py keeps the two equal; that file says what they do and
# bench/serve.py measures them). The tests run with them.
SERVE_FLAGS := RAY_SERVE_ENABLE_HA_PROXY=1 RAY_SERVE_THROUGHPUT_OPTIMIZED=1
SERVE_ENV := RAY_AUTH_MODE=disabled $(SERVE_FLAGS)

run: install
	$(BIN)/fraud-ray simulate
	$(BIN)/fraud-ray features
	$(BIN)/fraud-ray champion --train-if-missing
	$(MAKE) --no-print-directory serve

serve: install
	@echo "Serving on http://127.0.0.1:8000 (API docs: http://127.0.0.1:8000/docs). From another terminal:"
	@echo "  curl -s -X POST http://127.0.0.1:8000/api/v1/predict/single -H 'content-type: application/json' -d @docs/example-transaction.json"
	$(SERVE_ENV) $(BIN)/serve run serve_app:graph

# The end-to-end show in data/demo: simulate, tune, serve, Kafka + ingestion pool, a replay with a
# drift on its last day, labels; then it prints what the dashboard shows and serves it until Ctrl-C.
demo: install services
	$(SERVE_ENV) $(BIN)/fraud-ray demo

# Services the tests start themselves (Redis, PostgreSQL, Kafka) need their programs and jars
# installed; as root we install them.
services:
	@scripts/install-services.sh

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

test: install services lint
	$(SERVE_ENV) $(BIN)/pytest

format: install
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

bench: install services
	$(BIN)/python bench/data_pipeline.py
	$(BIN)/python bench/train_compare.py
	$(BIN)/python bench/serve.py
	$(BIN)/python bench/quality.py
	$(BIN)/python bench/decision_log.py
	$(BIN)/python bench/stream.py
	$(BIN)/python bench/faults.py

clean:
	rm -rf data mlruns mlartifacts .pytest_cache .ruff_cache
