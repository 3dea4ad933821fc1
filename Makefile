# stockcast: one command per habit. `make help` lists them.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
UV := $(BIN)/uv
UV_VERSION := 0.13.9

.DEFAULT_GOAL := help
.PHONY: help install install-dev run test test-image test-airflow airflow-env airflow-lock image soak lint format serve dashboard screenshots bench bench-full evaluate replay lock clean

help: ## List the commands
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk 'BEGIN {FS = ":.*## "}; {printf "  make %-12s %s\n", $$1, $$2}'

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check uv==$(UV_VERSION)

# Bytecode is compiled once here: with PYTHONDONTWRITEBYTECODE set (common in CI and
# containers) every process would otherwise compile MLflow, Feast and pandas again (~5 s).
COMPILE := $(BIN)/python -m compileall -q -j 0 $(VENV)/lib src > /dev/null 2>&1 || true

$(VENV)/.installed: requirements.lock pyproject.toml | $(BIN)/python
	$(UV) pip install --python $(BIN)/python --quiet -r requirements.lock
	$(UV) pip install --python $(BIN)/python --quiet --no-deps -e .
	@$(COMPILE)
	@touch $@

$(VENV)/.installed-dev: requirements-dev.lock pyproject.toml | $(BIN)/python
	$(UV) pip install --python $(BIN)/python --quiet -r requirements-dev.lock
	$(UV) pip install --python $(BIN)/python --quiet --no-deps -e .
	@$(COMPILE)
	@touch $(VENV)/.installed $@

install: $(VENV)/.installed ## Create .venv with the runtime dependencies
install-dev: $(VENV)/.installed-dev ## Create .venv with runtime and development dependencies

run: install ## Run one daily cycle on the embedded defaults and print the forecasts
	$(BIN)/stockcast run

test: install-dev ## Run the whole test suite
	bash scripts/test-services.sh postgresql redis-server prometheus prometheus-pushgateway prometheus-alertmanager chromium clickhouse-server
	$(BIN)/python -m pytest -p no:cacheprovider --cov --cov-report=term --cov-fail-under=85 $(PYTEST_ARGS)

# The image test is outside `make test` (2 cores): ~5.5 min from nothing (the base made and every
# dependency downloaded: a 4 min build), ~2 min with the build cache (a change to src/ rebuilds
# in seconds; the daily cycle in the container takes 1-1.5 min).
test-image: install-dev ## Build the image and check a container of it: stockcast run, /live, /ready, /predict, docker stop
	@docker info >/dev/null 2>&1 || command -v dockerd >/dev/null || bash scripts/test-services.sh docker.io
	STOCKCAST_IMAGE_TEST=1 $(BIN)/python -m pytest -p no:cacheprovider -v --durations=5 tests/e2e/test_image.py

# Airflow lives in its own environment (its pins do not co-install with Prefect and FastAPI);
# its DAGs (deploy/airflow/dags) drive the stockcast command line of .venv.
AIRFLOW_VENV := .venv-airflow
$(AIRFLOW_VENV)/.installed: deploy/airflow/requirements.lock | $(BIN)/python
	$(UV) venv --quiet --allow-existing --python $(BIN)/python $(AIRFLOW_VENV)
	$(UV) pip install --python $(AIRFLOW_VENV)/bin/python --quiet --compile-bytecode -r deploy/airflow/requirements.lock
	@touch $@

airflow-env: $(AIRFLOW_VENV)/.installed ## Create .venv-airflow with Apache Airflow 3 (pinned by deploy/airflow/requirements.lock)

airflow-lock: ## Re-resolve Airflow's own pins
	$(UV) pip compile deploy/airflow/requirements.in --python-version 3.11 --no-header --no-annotate -o deploy/airflow/requirements.lock

# Outside `make test`: installing Airflow takes a minute, its checks another few.
test-airflow: install-dev airflow-env ## The DAGs with Airflow itself: import errors, `airflow dags test` on the sample, retries
	STOCKCAST_AIRFLOW_TEST=1 $(BIN)/python -m pytest -p no:cacheprovider -v --durations=5 tests/e2e/test_airflow.py

image: ## Build the Docker image stockcast:latest (its base made from Debian packages where none can be pulled)
	bash scripts/image.sh

soak: install-dev ## Long runs: fuzzing with 500 requests per route and key mode, 60 s of load
	FUZZ_EXAMPLES=500 LOAD_SECONDS=60 $(BIN)/python -m pytest -p no:cacheprovider -q tests/integration/test_fuzz.py tests/integration/test_load.py

lint: install-dev ## Lint, check formatting and type-check
	$(BIN)/ruff check src tests benchmarks deploy/airflow/dags
	$(BIN)/ruff format --check src tests benchmarks deploy/airflow/dags
	$(BIN)/mypy
	$(BIN)/bandit -q -r src -ll
	$(BIN)/python scripts/audit.py

format: install-dev ## Format and fix what ruff can
	$(BIN)/ruff format src tests benchmarks
	$(BIN)/ruff check --fix src tests benchmarks

serve: install ## Start the API on 127.0.0.1:8000
	$(BIN)/stockcast serve

dashboard: install ## Start the dashboard on 127.0.0.1:8501
	$(BIN)/stockcast dashboard

screenshots: install-dev ## Refresh the README's dashboard screenshots (the browser test takes them)
	bash scripts/test-services.sh chromium
	DASHBOARD_SCREENSHOTS_DIR=docs/screenshots $(BIN)/python -m pytest -p no:cacheprovider -q tests/e2e/test_dashboard_browser.py

bench: install-dev ## Run the benchmarks (~23 min on 2 cores); write benchmarks/results.md and the README's table (installs wrk)
	bash scripts/test-services.sh wrk
	$(BIN)/python benchmarks/run_all.py

bench-full: install-dev ## The heavy rows: the daily cycle in the default configuration at 50 and 500 tickers (~2 h on 2 cores); same pages
	$(BIN)/python benchmarks/run_all.py --full

replay: install ## Replay 250 sessions of 2008 on the bundled sample (~15 min); write the README's replay section
	STOCKCAST_SOURCE=sample $(BIN)/stockcast replay --start 2008-03-03 --days 250 --readme README.md

EVALUATION_TICKERS := AAPL,MSFT,AMZN,JPM,XOM,JNJ,PG,KO,PFE,WMT,INTC,CSCO,ORCL,IBM,GE,BA,CAT,MRK,PEP,^GSPC
EVALUATION_FILE := ../shared/data/sp500_2003_2023.parquet
EVALUATION_MODELS := naive,drift,ridge,random_forest,lightgbm,arima,xgboost
evaluate: install ## Backtest the candidates on 20 tickers of ../shared/data, audit the gate on those and on all 210 (~40 min), update the README
	@test -f $(EVALUATION_FILE) || { echo "make evaluate needs $(EVALUATION_FILE) (the workplace's shared data)"; exit 1; }
	STOCKCAST_MODELS=$(EVALUATION_MODELS) $(BIN)/stockcast evaluate --source file:$(EVALUATION_FILE) \
		--tickers '$(EVALUATION_TICKERS)' --output docs/forecast-quality.md \
		--per-ticker docs/forecast-quality-per-ticker.csv --readme README.md
	$(BIN)/stockcast evaluate --gate-audit --source file:$(EVALUATION_FILE) \
		--tickers '$(EVALUATION_TICKERS)' --output docs/gate-audit-20.md \
		--per-ticker docs/gate-audit-20-per-ticker.csv --readme README.md --section gate-audit-20
	$(BIN)/stockcast evaluate --gate-audit --source file:$(EVALUATION_FILE) \
		--tickers "$$($(BIN)/python scripts/file_tickers.py $(EVALUATION_FILE))" --output docs/gate-audit-all.md \
		--per-ticker docs/gate-audit-all-per-ticker.csv --readme README.md --section gate-audit-all

lock: ## Re-resolve the pinned requirements (needs uv)
	$(UV) pip compile pyproject.toml --python-version 3.11 --no-header --no-annotate -o requirements.lock
	$(UV) pip compile pyproject.toml --extra dev --python-version 3.11 -c requirements.lock --no-header --no-annotate -o requirements-dev.lock

clean: ## Remove the virtual environment and caches (keeps ./data)
	rm -rf $(VENV) $(AIRFLOW_VENV) .pytest_cache .ruff_cache .mypy_cache .coverage
