# Two commands matter: `make run` and `make test`. Everything else is for contributors.
SHELL := /bin/bash
.DEFAULT_GOAL := help

HOST ?= 127.0.0.1
PORT ?= 8000
msg ?=

# uv: the one on PATH, else a private copy in .tools/ that scripts/bootstrap_uv.sh installs
# from PyPI with the system Python (works where pip refuses to touch it: PEP 668).
TOOLS_UV := $(CURDIR)/.tools/bin/uv
UV := $(or $(shell command -v uv 2>/dev/null),$(TOOLS_UV))
# Targets install what they need first (runtime, or runtime plus dev tools); running never syncs.
RUN := $(UV) run --no-sync
# The docs tools live in their own group, added (never removing anything) when a docs target runs.
DOCS_RUN := $(UV) run --locked --group docs

.PHONY: help install install-runtime run dev browser test coverage fuzz test-only check lint format format-check typecheck migrate makemigration openapi clean bench
.PHONY: up down docs docs-pages docs-serve audit security sbom migrations-lint

help: ## List the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-16s %s\n", $$1, $$2}'

$(TOOLS_UV):
	sh scripts/bootstrap_uv.sh .tools

# What running needs (no dev tools), added to the environment without removing anything.
.venv/.runtime: pyproject.toml uv.lock | $(UV)
	$(UV) sync --locked --no-dev --inexact
	@touch $@

.venv/.installed: pyproject.toml uv.lock | $(UV)
	$(UV) sync --locked
	@touch $@ .venv/.runtime

install-runtime: .venv/.runtime ## Install what running needs into .venv (bootstraps uv)

install: .venv/.installed ## Install the locked dependencies and dev tools into .venv

run: migrate ## Install, migrate ./app.db and serve on http://$(HOST):$(PORT)
	$(RUN) app serve --host $(HOST) --port $(PORT)

dev: install migrate ## Serve with auto-reload (fastapi dev --no-proxy-headers)
	$(RUN) fastapi dev --host $(HOST) --port $(PORT) --no-proxy-headers

migrate: install-runtime ## Apply every migration to DATABASE_URL
	$(RUN) app migrate

makemigration: install ## Generate a migration from the models: make makemigration msg="add items"
	@test -n "$(msg)" || { echo 'usage: make makemigration msg="what changed"'; exit 2; }
	$(RUN) app makemigration "$(msg)"

openapi: install-runtime ## Write openapi.json, the committed API document (default settings)
	$(RUN) app openapi --defaults --output openapi.json

# The browser test drives Debian's chromium: installed here when missing and apt-get can (root).
browser:
	@command -v chromium >/dev/null 2>&1 || { [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1 \
	  && apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; } \
	  || echo "chromium is missing: tests/browser will fail (apt-get install chromium)"

# One pytest-xdist worker per core (at most 8), each on a database and Redis db of its own
# (tests/services.py); the longest tests are stolen by idle workers. TEST_WORKERS=0: one process.
TEST_WORKERS ?= auto
PYTEST = pytest -n $(TEST_WORKERS) --maxprocesses=8 --dist worksteal --durations=15
test: install browser ## Run the whole suite (SQLite, plus PostgreSQL and Redis when they answer locally)
	@eval "$$($(RUN) python scripts/test_services.py)"; $(RUN) $(PYTEST) $(PYTEST_ARGS)

# Coverage's tracer (with greenlet support, without which lines run after an `await` read as
# missed) doubles the time of an in-process test: the suite with it does not fit CI's 30
# minutes on a slow host, so it is a target of its own. The gate (90%) judges full runs only.
coverage: install browser ## The whole suite with coverage (gate: 90%, on full runs)
	@eval "$$($(RUN) python scripts/test_services.py)"; \
	$(RUN) $(PYTEST) --cov --cov-report=term-missing:skip-covered \
		$(if $(strip $(PYTEST_ARGS)),--cov-fail-under=0) $(PYTEST_ARGS)

fuzz: install ## The contract tests at 1000 examples per operation (make test: 50)
	@eval "$$($(RUN) python scripts/test_services.py)"; \
	CONTRACT_MAX_EXAMPLES=$${CONTRACT_MAX_EXAMPLES:-1000} $(RUN) pytest tests/contract $(PYTEST_ARGS)

lint: install ## Lint with ruff
	$(RUN) ruff check src tests migrations scripts bench

format: install ## Format with ruff (rewrites files)
	$(RUN) ruff format src tests migrations scripts bench
	$(RUN) ruff check --fix src tests migrations scripts bench

format-check: install ## Check formatting without changing files
	$(RUN) ruff format --check src tests migrations scripts bench

typecheck: install ## Type-check with mypy --strict
	$(RUN) mypy

check: format-check lint typecheck security audit migrations-lint docs test ## Everything CI runs: format, lint, types, supply chain, migration lint, docs, tests

up: ## Build the image and start the stack in containers (compose.yaml): http://127.0.0.1:8000
	docker compose up --detach --build --wait api worker scheduler

down: ## Stop the containers (the named volumes, and so the data, stay)
	docker compose down

docs-pages: install ## Rewrite the docs pages generated from the code (configuration, OpenAPI)
	$(RUN) python scripts/docs_pages.py

docs: install ## Build the docs site into site/ (strict: any warning fails)
	$(RUN) python scripts/docs_pages.py --check
	$(DOCS_RUN) zensical build --strict --clean

docs-serve: install ## Serve the docs site with reload on http://127.0.0.1:8000
	$(RUN) python scripts/docs_pages.py
	$(DOCS_RUN) zensical serve

audit: install ## pip-audit every locked dependency (AUDIT_UNREACHABLE=warn: pass when offline)
	@mkdir -p .cache
	$(UV) export --locked --all-groups --no-hashes --no-emit-project --quiet \
		--format requirements.txt --output-file .cache/requirements-audit.txt
	$(RUN) python scripts/audit_dependencies.py .cache/requirements-audit.txt

security: install ## bandit over src (findings fixed, or justified inline with `# nosec`)
	$(RUN) bandit -r src -q

sbom: install ## Write a CycloneDX SBOM of the runtime dependencies to sbom.cdx.json
	$(UV) export --locked --no-dev --format cyclonedx1.5 --output-file sbom.cdx.json --quiet
	@echo "wrote sbom.cdx.json"

migrations-lint: install ## Lint every migration's PostgreSQL SQL for locking hazards (squawk)
	$(RUN) python scripts/lint_migrations.py

clean: ## Remove caches and coverage data (keeps .venv, .tools and app.db)
	rm -rf .mypy_cache .ruff_cache .pytest_cache .coverage .coverage.* htmlcov site .cache

bench: install ## Benchmarks: full stack vs bare FastAPI baselines in one run (PostgreSQL, wrk)
	@command -v wrk >/dev/null || { [ "$$(id -u)" = 0 ] && apt-get install -y -q wrk; } || { echo "wrk is missing: sudo apt-get install wrk"; exit 1; }
	$(RUN) python bench/run.py $(BENCH_ARGS)
