# ledgerd developer commands. `make` (or `make help`) lists them.
#
# Bootstrap needs only python3 (>= 3.11) and make: a pinned uv is installed into .tools/,
# and uv installs the locked dependencies into .venv/ using that same python3.

.DEFAULT_GOAL := help
SHELL := bash
.SHELLFLAGS := -euo pipefail -c
.DELETE_ON_ERROR:
MAKEFLAGS += --no-builtin-rules

PYTHON ?= python3
UV_VERSION := 0.13.8
TOOLS := .tools
VENV := .venv
UV := $(TOOLS)/bin/uv
BIN := $(VENV)/bin
UV_STAMP := $(TOOLS)/.uv-$(UV_VERSION)
# Two stamps, because `make run` needs only the runtime dependencies (a third of the venv) and
# the developer targets need the `dev` dependency group too. A runtime-only venv must not pass
# for a development one: `make test` after `make run` still installs the dev group.
RUNTIME_STAMP := $(VENV)/.runtime-stamp
DEV_STAMP := $(VENV)/.dev-stamp

# uv: use the machine's python3, never download an interpreter, install into .venv.
export UV_PYTHON := $(PYTHON)
export UV_PYTHON_DOWNLOADS := never
export UV_PROJECT_ENVIRONMENT := $(VENV)
export UV_NO_PROGRESS := 1

PYTEST_ARGS ?=
# Test processes (pytest-xdist): most tests wait (for a server to start, a broker, a timeout),
# so one process keeps two cores about half busy; three ran the suite in 9 minutes, not 22.
# One process: make test TEST_WORKERS=0.
TEST_WORKERS ?= 3

.PHONY: help install install-runtime lock generate run test lint format bench clean distclean lambda-zip image

help: ## List the targets with a one-line description each
	@echo "usage: make <target>"
	@awk 'BEGIN { FS = ":.*## " } /^[a-zA-Z0-9_-]+:.*## / { printf "  %-16s %s\n", $$1, $$2 }' $(MAKEFILE_LIST)

$(UV_STAMP):
	@echo ">> installing uv $(UV_VERSION) into $(TOOLS)/"
	@$(PYTHON) -m venv $(TOOLS)
	@$(TOOLS)/bin/python -m pip install --quiet --disable-pip-version-check "uv==$(UV_VERSION)"
	@touch $@

# Bytecode is compiled up front: with PYTHONDONTWRITEBYTECODE set (as on our machines) every
# ledgerd command would otherwise compile its imports from source each time it starts.
#
# --inexact: a venv that already holds the dev group keeps it (a plain `uv sync --no-dev` would
# uninstall the test tools, and the next `make test` would reinstall them).
$(RUNTIME_STAMP): pyproject.toml uv.lock $(UV_STAMP)
	@echo ">> syncing $(VENV)/ with uv.lock (runtime dependencies)"
	@$(UV) sync --frozen --quiet --compile-bytecode --no-dev --inexact
	@touch $@

# The dev group holds the runtime dependencies too, so it brings the runtime stamp up to date.
$(DEV_STAMP): pyproject.toml uv.lock $(UV_STAMP)
	@echo ">> syncing $(VENV)/ with uv.lock (runtime and dev dependencies)"
	@$(UV) sync --frozen --quiet --compile-bytecode
	@touch $@ $(RUNTIME_STAMP)

install: $(DEV_STAMP) ## Create .venv with the locked dependencies, dev tools included (re-runs only when pyproject.toml/uv.lock change)

install-runtime: $(RUNTIME_STAMP) ## Create .venv with the runtime dependencies only (what `make run` needs)

lock: $(UV_STAMP) ## Re-resolve dependencies into uv.lock after editing pyproject.toml
	$(UV) lock

generate: install ## Regenerate what derives from proto/: modules, stubs, descriptor set, docs/openapi.yaml
	$(BIN)/python tools/generate.py

run: install-runtime ## Migrate the embedded database, seed the demo ledger and serve the API
	$(BIN)/ledgerd migrate
	$(BIN)/ledgerd serve --demo

test: install ## Run the test suite in TEST_WORKERS processes (extra pytest options: make test PYTEST_ARGS="-k name -x")
	$(BIN)/pytest --numprocesses=$(TEST_WORKERS) --dist=worksteal $(PYTEST_ARGS)

lint: install ## Lint, check formatting, type-check, check the import contracts and the CI pipelines
	$(BIN)/ruff check
	$(BIN)/ruff format --check
	$(BIN)/mypy src tests tools bench
	$(BIN)/lint-imports
	$(BIN)/python tools/generate.py --check
	$(BIN)/actionlint
	$(BIN)/check-jsonschema --builtin-schema vendor.gitlab-ci .gitlab-ci.yml

format: install ## Apply ruff's safe fixes and format the code
	$(BIN)/ruff check --fix
	$(BIN)/ruff format

BENCH_ARGS ?=

bench: install ## Micro-benchmarks, load benchmarks with pgbench beside (BENCH_ARGS="--duration 20s"), authenticated vs not, then the outbox relay to each broker
	$(BIN)/python -m pytest bench/micro -p no:cacheprovider --benchmark-only \
		--benchmark-json=bench/results/micro.json --benchmark-columns=min,median,mean,ops
	$(BIN)/python bench/run.py $(BENCH_ARGS)
	$(BIN)/python bench/auth.py
	$(BIN)/python bench/relay.py

image: install ## Build the container image offline (mmdebstrap + buildah; docs/deploy.md) and print its sizes
	$(BIN)/python tools/build_image.py

# The AWS Lambda package (docs/deploy.md, "AWS Lambda"): the locked runtime dependencies and the
# `lambda` extra, as wheels for Lambda's platform (whatever this machine is), not built here. The
# runtime client is left out: Lambda's managed Python runtime has its own.
LAMBDA_BUILD := build/lambda
LAMBDA_PYTHON ?= 3.11
LAMBDA_PLATFORM ?= x86_64-manylinux_2_28

lambda-zip: $(UV_STAMP) ## Build build/lambda/ledgerd-lambda.zip for deploy/lambda/template.yaml (LAMBDA_PLATFORM=aarch64-manylinux_2_28 for arm64)
	rm -rf $(LAMBDA_BUILD)
	mkdir -p $(LAMBDA_BUILD)/package
	$(UV) export --frozen --quiet --no-dev --extra lambda --no-emit-project \
		--no-emit-package awslambdaric --output-file $(LAMBDA_BUILD)/requirements.txt
	$(UV) pip install --quiet --no-deps --only-binary :all: --compile-bytecode \
		--python-version $(LAMBDA_PYTHON) --python-platform $(LAMBDA_PLATFORM) \
		--target $(LAMBDA_BUILD)/package --requirement $(LAMBDA_BUILD)/requirements.txt
	$(UV) build --quiet --wheel --out-dir $(LAMBDA_BUILD)/dist
	$(UV) pip install --quiet --no-deps --compile-bytecode \
		--python-version $(LAMBDA_PYTHON) --python-platform $(LAMBDA_PLATFORM) \
		--target $(LAMBDA_BUILD)/package $(LAMBDA_BUILD)/dist/ledgerd-*.whl
	$(PYTHON) tools/lambda_zip.py $(LAMBDA_BUILD)/package $(LAMBDA_BUILD)/ledgerd-lambda.zip

clean: ## Remove caches and build output (keeps .venv and .tools)
	rm -rf .pytest_cache .mypy_cache .ruff_cache .hypothesis .import_linter_cache build dist
	find . -path ./.venv -prune -o -path ./.tools -prune -o -type d -name __pycache__ -print0 \
		| xargs -0 rm -rf

distclean: clean ## Remove everything made here, .venv and .tools included
	rm -rf $(VENV) $(TOOLS)
