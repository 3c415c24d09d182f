# Two commands matter: `make run` and `make test`. Everything else is for contributors.
SHELL := /bin/bash
.DEFAULT_GOAL := help

HOST ?= 127.0.0.1
PORT ?= 8000
msg ?=

# uv is bootstrapped with pip when the machine does not have it.
UV := $(shell command -v uv 2>/dev/null || echo "python3 -m uv")
RUN := $(UV) run --locked

.PHONY: help install run dev test test-only check lint format format-check typecheck migrate makemigration clean
.PHONY: up down docs docs-pages docs-serve audit security sbom migrations-lint

help: ## List the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-14s %s\n", $$1, $$2}'

.venv/.installed: pyproject.toml uv.lock
	@command -v uv >/dev/null 2>&1 || python3 -m uv --version >/dev/null 2>&1 || python3 -m pip install --quiet --user uv
	$(UV) sync --locked
	@touch $@

install: .venv/.installed ## Install the locked dependencies into .venv (bootstraps uv)

run: install migrate ## Install, migrate ./app.db and serve on http://$(HOST):$(PORT)
	$(RUN) uvicorn --factory app.main:create_app --host $(HOST) --port $(PORT) --no-access-log --no-proxy-headers

dev: install migrate ## Serve with auto-reload (fastapi dev --no-proxy-headers)
	$(RUN) fastapi dev --host $(HOST) --port $(PORT) --no-proxy-headers

migrate: install ## Apply every migration to DATABASE_URL
	$(RUN) alembic upgrade head

makemigration: install ## Generate a migration from the models: make makemigration msg="add items"
	@test -n "$(msg)" || { echo 'usage: make makemigration msg="what changed"'; exit 2; }
	$(RUN) alembic revision --autogenerate -m "$(msg)"

test: install ## Run the whole suite (SQLite, plus PostgreSQL and Redis when they answer locally)
	@eval "$$($(RUN) python scripts/test_services.py)"; \
	$(RUN) coverage run -m pytest $(PYTEST_ARGS) && $(RUN) coverage combine -q && $(RUN) coverage report

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
	$(RUN) --group docs zensical build --strict --clean

docs-serve: install ## Serve the docs site with reload on http://127.0.0.1:8000
	$(RUN) python scripts/docs_pages.py
	$(RUN) --group docs zensical serve

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

clean: ## Remove caches and coverage data (keeps .venv and app.db)
	rm -rf .mypy_cache .ruff_cache .pytest_cache .coverage .coverage.* htmlcov site .cache
