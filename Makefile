# OpenPool Manager. A newcomer needs two commands: `make demo` and `make test`.
# Both build everything they need from this repository's own files: the virtualenv with
# pinned packages (requirements.txt + constraints.txt) and anvil from npm, project-local.

SHELL := /bin/bash
PYTHON ?= $(shell for p in python3.11 python3.12 python3.13 python3; do \
            $$p -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null \
            && { command -v $$p; break; }; done)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
ANVIL_VERSION := 1.7.1
ANVIL := .tools/bin/anvil
PYTEST_ARGS ?=

export OPENPOOL_ANVIL_BIN := $(CURDIR)/$(ANVIL)

.PHONY: all setup browser celery-services test test-fast lint demo up down bench chaos mutants lock clean

all: test

setup: $(STAMP) $(ANVIL)

$(STAMP): requirements.txt constraints.txt pyproject.toml
	@test -n "$(PYTHON)" || { echo "Python 3.11+ is required (none found on PATH)"; exit 1; }
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --disable-pip-version-check -r requirements.txt -c constraints.txt
	$(BIN)/python -m pip install -q --disable-pip-version-check --no-deps --no-build-isolation -e .
	@touch $@

$(ANVIL):
	@command -v npm >/dev/null || { echo "npm is required to install anvil"; exit 1; }
	npm install --silent --no-audit --no-fund --prefix .tools/npm @foundry-rs/anvil@$(ANVIL_VERSION)
	@mkdir -p .tools/bin
	@bin=$$(find .tools/npm/node_modules/@foundry-rs -path '*/anvil-*/bin/anvil' -type f | head -n 1); \
	  test -n "$$bin" || { echo "anvil binary not found in the npm package"; exit 1; }; \
	  chmod +x "$$bin"; ln -sf "$(CURDIR)/$$bin" $@
	@$@ --version | head -n 1

# ruff, the layer contracts of pyproject.toml ([tool.importlinter]) and mypy over the library.
lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/lint-imports --no-cache
	$(BIN)/mypy

test: setup browser celery-services lint
	$(BIN)/python -m pytest $(PYTEST_ARGS)

# The edit loop, under a minute: only the tests that need no moto, anvil or Airflow and are
# not slow (markers derived in tests/conftest.py); no lint, no browser. `make test` runs all.
test-fast: $(STAMP)
	$(BIN)/python -m pytest -m "not s3 and not chain and not airflow and not slow" $(PYTEST_ARGS)

# The dashboard's browser test drives Debian's chromium through chromedriver: installed
# from Debian's packages when missing (sudo only when not root).
browser:
	@if [ ! -x /usr/bin/chromium ] || [ ! -x /usr/bin/chromedriver ]; then \
	  command -v apt-get >/dev/null || { echo "make test needs chromium and chromedriver \
	  at /usr/bin (Debian packages chromium, chromium-driver)"; exit 1; }; \
	  SUDO=""; [ "$$(id -u)" -eq 0 ] || SUDO="sudo"; \
	  $$SUDO apt-get update -q && \
	  DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -q chromium chromium-driver; \
	fi

# The CeleryExecutor stack (make up EXECUTOR=celery, tests/test_celery.py) runs Debian's
# PostgreSQL and Redis servers: installed from Debian's packages when missing (sudo only
# when not root). The devstack starts them itself, on loopback, per stack.
celery-services:
	@if ! ls /usr/lib/postgresql/*/bin/postgres >/dev/null 2>&1 || ! command -v redis-server >/dev/null; then \
	  command -v apt-get >/dev/null || { echo "the Celery stack needs PostgreSQL and Redis \
	  servers (Debian packages postgresql, redis-server)"; exit 1; }; \
	  SUDO=""; [ "$$(id -u)" -eq 0 ] || SUDO="sudo"; \
	  $$SUDO apt-get update -q && \
	  DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -q --no-install-recommends \
	    postgresql redis-server; \
	fi

demo: setup
	$(BIN)/python -m openpool.devstack.demo

# Airflow 3 (api-server, scheduler, dag-processor, triggerer), a moto S3 server with events
# and anvil with a funded hot wallet, in the background on 127.0.0.1 (state in var/up/).
# Prints the URL, user and password. `make down` stops what `make up` started.
# EXECUTOR=celery: CeleryExecutor on PostgreSQL + Redis with two workers instead.
EXECUTOR ?= local
up: setup $(if $(filter celery,$(EXECUTOR)),celery-services)
	$(BIN)/python -m openpool.devstack up --executor $(EXECUTOR)

down:
	@if test -x $(BIN)/python; then $(BIN)/python -m openpool.devstack down; \
	  else echo "nothing to stop"; fi

# Speed and memory figures (table on stdout, reports/bench.json). The ingest part pins one
# CPU; BENCH_ARGS=--quick runs everything small, e.g. `make bench BENCH_ARGS=--quick`.
BENCH_ARGS ?=
bench: setup
	$(BIN)/python -m tests.bench.run $(BENCH_ARGS)

# The fault, bad-input and security campaign (issue 7): SIGKILLed ingests and payouts, S3
# faults and moto restarts, a bad-input corpus and 100,000 fuzzed files, races, secrets.
# Table on stdout, reports/chaos.json; CHAOS_ARGS="--size quick" is what `make test` runs.
CHAOS_ARGS ?=
chaos: setup
	$(BIN)/python -m tests.chaos $(CHAOS_ARGS)

# The mutation smoke: each core mechanism disabled in a copy of the library, its Guarantees
# tests must then fail (tests/mutants/; table on stdout, reports/mutants.json).
MUTANTS_ARGS ?=
mutants: setup
	$(BIN)/python -m tests.mutants $(MUTANTS_ARGS)

# Re-resolve and re-pin every transitive dependency from requirements.txt.
lock:
	rm -rf .venv-lock && $(PYTHON) -m venv .venv-lock
	.venv-lock/bin/pip install -q -r requirements.txt
	.venv-lock/bin/pip freeze --all --exclude-editable | grep -v "^pip==" > constraints.txt
	rm -rf .venv-lock

clean:
	rm -rf $(VENV) .tools .pytest_cache .ruff_cache var reports
