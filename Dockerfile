# syntax=docker/dockerfile:1.7
# Production image: `docker build -t production-fastapi-backend .`
# Development image (reload, dev tools, source mounted by compose): `--target dev`.
# The Python of the build and runtime stages must be the same (the virtual environment
# links to the interpreter it was made with), and the one the tests run on (.python-version).
ARG PYTHON_IMAGE=python:3.11-slim-trixie

# --- build: resolve and install the locked dependencies, then the project -----------------
FROM ${PYTHON_IMAGE} AS build
COPY --from=ghcr.io/astral-sh/uv:0.13.9 /uv /usr/local/bin/uv
ENV UV_COMPILE_BYTECODE=1 \
    UV_LINK_MODE=copy \
    UV_PYTHON_DOWNLOADS=never \
    UV_PROJECT_ENVIRONMENT=/app/.venv
WORKDIR /app
# Dependencies first, from the lock file alone: this layer is rebuilt only when
# pyproject.toml or uv.lock change, not on every code change.
RUN --mount=type=cache,target=/root/.cache/uv \
    --mount=type=bind,source=uv.lock,target=uv.lock \
    --mount=type=bind,source=pyproject.toml,target=pyproject.toml \
    uv sync --locked --no-dev --no-install-project
# Then the project itself, installed into the environment (not editable: the runtime stage
# copies the environment without the source tree).
COPY pyproject.toml uv.lock README.md ./
COPY src ./src
RUN --mount=type=cache,target=/root/.cache/uv \
    uv sync --locked --no-dev --no-editable

# --- dev: the whole toolchain, the project editable, served with reload -------------------
FROM build AS dev
RUN --mount=type=cache,target=/root/.cache/uv \
    uv sync --locked
COPY alembic.ini ./
COPY migrations ./migrations
ENV PATH=/app/.venv/bin:$PATH \
    PYTHONUNBUFFERED=1
USER 10001:10001
EXPOSE 8000
CMD ["fastapi", "dev", "--host", "0.0.0.0", "--port", "8000", "--no-proxy-headers"]

# --- runtime: the environment and the migrations; no uv, no compiler, no root -------------
FROM ${PYTHON_IMAGE} AS runtime
ARG APP_UID=10001
RUN groupadd --system --gid ${APP_UID} app \
    && useradd --system --uid ${APP_UID} --gid app --home-dir /app --no-create-home app \
    && install -d -o app -g app -m 0700 /run/prometheus /data/job-results
WORKDIR /app
COPY --from=build /app/.venv /app/.venv
COPY alembic.ini ./
COPY migrations ./migrations
# PROMETHEUS_MULTIPROC_DIR: the workers share their metrics through files there (stale files
# of a previous run are cleared at start-up); prometheus-client reads it when imported, so it
# is set here, in the process environment. WEB_CONCURRENCY: uvicorn's worker processes.
# JOBS_RESULTS_DIR: export files, written by workers and served by the web processes; mount
# one volume there for all of them (created here owned by the app, so a new volume is too).
ENV PATH=/app/.venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    PROMETHEUS_MULTIPROC_DIR=/run/prometheus \
    JOBS_RESULTS_DIR=/data/job-results \
    WEB_CONCURRENCY=2
# A numeric user: Kubernetes can then verify runAsNonRoot without a name lookup.
USER 10001:10001
EXPOSE 8000
# SIGTERM starts the graceful drain (SHUTDOWN_DRAIN_SECONDS, then SHUTDOWN_GRACE_SECONDS).
STOPSIGNAL SIGTERM
# Python's standard library, not curl: the image carries no extra tools. urlopen raises on
# any status >= 400, and a refused connection or timeout raises too: all exit non-zero.
HEALTHCHECK --interval=15s --timeout=5s --start-period=30s --retries=3 \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/api/v1/health/live', timeout=4)"]
# exec: the server becomes PID 1 and receives SIGTERM itself.
CMD ["sh", "-c", "exec app serve --host 0.0.0.0 --port 8000 --workers \"${WEB_CONCURRENCY}\""]
