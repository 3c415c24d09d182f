import asyncio
import gc
import json
import os
import re
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

import pytest
from fastapi import FastAPI
from httpx2 import AsyncClient

from app.core.config import Settings
from app.deps import resources_of
from app.main import create_app
from tests.harness import (
    PRODUCTION,
    assert_problem,
    client_for,
    free_port,
    log_lines,
    make_settings,
    running,
)

pytestmark = pytest.mark.anyio

ROOT = Path(__file__).resolve().parents[1]


def run_python(code: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(  # noqa: S603 - fixed arguments
        [sys.executable, "-c", code],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_importing_the_app_has_no_side_effects() -> None:
    result = run_python(
        "import logging, app.main, app.api, app.core.config as c;"
        "assert c.get_settings.cache_info().currsize == 0, 'settings read at import';"
        "assert not logging.getLogger().handlers, 'logging configured at import';"
        "print('clean')"
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "clean"


def test_module_app_attribute_builds_the_app_for_fastapi_cli() -> None:
    result = run_python(
        "import app.main as m; a = m.app; print(type(a).__name__, a.title)\n"
        "try:\n    m.nothing\nexcept AttributeError as e:\n    print(e)"
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().splitlines()[-2:] == [
        "FastAPI Production FastAPI Backend",
        "module 'app.main' has no attribute 'nothing'",
    ]


def test_module_app_attribute_is_built_once() -> None:
    result = run_python("import app.main as m; print(m.app is m.app)")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().splitlines()[-1] == "True"


@pytest.mark.parametrize("command", ["run", "dev"])
def test_the_fastapi_cli_serves_the_app(command: str, tmp_path: Path) -> None:
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DATABASE_", "LOG_"))}
    env.update(DATABASE_URL=f"sqlite+aiosqlite:///{tmp_path}/app.db", LOG_FORMAT="json")
    args = [str(ROOT / ".venv" / "bin" / "fastapi"), command, "--port", str(port)]
    server = subprocess.Popen(  # noqa: S603 - fixed arguments
        [*args, "--no-proxy-headers", "--no-reload"]
        if command == "dev"
        else [*args, "--no-proxy-headers"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        body = get_when_up(f"http://127.0.0.1:{port}/health")
    finally:
        server.terminate()
        server.wait(timeout=20)
    assert json.loads(body) == {"status": "ok"}


def get_when_up(url: str) -> bytes:
    deadline = time.monotonic() + 30
    while True:
        try:
            with urllib.request.urlopen(url, timeout=2) as response:  # noqa: S310 - loopback
                body: bytes = response.read()
                return body
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)


def test_fastapi_cli_finds_the_entrypoint() -> None:
    pyproject = (ROOT / "pyproject.toml").read_text()
    assert '[tool.fastapi]\nentrypoint = "app.main:app"' in pyproject


def test_tracing_is_off_unless_an_otlp_endpoint_is_set() -> None:
    quiet = create_app(make_settings())
    traced = create_app(
        make_settings(OTEL_EXPORTER_OTLP_ENDPOINT="http://127.0.0.1:9", OTEL_TRACES_EXPORTER="none")
    )
    # FastAPI's own telemetry stays off either way: the tracing middleware makes the span.
    for app in (quiet, traced):
        assert not any(
            app._telemetry[key] for key in ("tracing", "metrics", "logs", "operation_spans")
        )
    assert resources_of(quiet).tracer_provider is None
    assert resources_of(traced).tracer_provider is not None
    assert [layer.cls.__name__ for layer in traced.user_middleware][:2] == [  # type: ignore[attr-defined]
        "TracingMiddleware",
        "RequestIdMiddleware",
    ]
    assert "TracingMiddleware" not in [
        layer.cls.__name__  # type: ignore[attr-defined]
        for layer in quiet.user_middleware
    ]


async def test_lifespan_opens_and_closes_clients(settings: Settings) -> None:
    app = create_app(settings)
    async with running(app):
        engine = resources_of(app).engine
        assert resources_of(app).redis is None
        async with engine.connect() as connection:
            await connection.execution_options(isolation_level="AUTOCOMMIT")
            assert (await connection.exec_driver_sql("SELECT 1")).scalar() == 1
    pool: Any = engine.pool  # a QueuePool: it counts checked-out connections
    assert pool.checkedout() == 0


async def test_docs_are_served_from_local_assets(client: AsyncClient) -> None:
    for page in ("/docs", "/redoc"):
        response = await client.get(page)
        assert response.status_code == 200
        html = response.text
        assert "http://" not in html
        assert "https://" not in html, f"{page} must not load anything from the internet"
        assets = [
            src
            for src in ("/static/docs/swagger-ui-bundle.js", "/static/docs/redoc.standalone.js")
            if src in html
        ]
        assert assets
    for asset in (
        "swagger-ui-bundle.js",
        "swagger-init.js",
        "swagger-ui.css",
        "redoc.standalone.js",
        "favicon.png",
    ):
        response = await client.get(f"/static/docs/{asset}")
        assert response.status_code == 200
        assert len(response.content) > 500


async def test_swagger_ui_reads_its_config_from_inert_json(client: AsyncClient) -> None:
    html = (await client.get("/docs")).text
    config = re.search(
        r'<script type="application/json" id="swagger-config">(.*?)</script>', html, re.S
    )
    assert config is not None
    assert json.loads(config.group(1))["url"] == "/openapi.json"
    assert '<script src="/static/docs/swagger-init.js"></script>' in html


async def test_docs_are_off_in_production_unless_enabled(database_url: str) -> None:
    production = {**PRODUCTION, "DATABASE_URL": database_url}
    async with running(create_app(make_settings(**production))) as app, client_for(app) as client:
        for path in ("/docs", "/redoc", "/openapi.json", "/static/docs/swagger-ui.css"):
            assert (await client.get(path)).status_code == 404
    enabled = make_settings(**production, DOCS_ENABLED=True)
    async with running(create_app(enabled)) as app, client_for(app) as client:
        assert (await client.get("/docs")).status_code == 200


async def test_openapi_documents_problems(client: AsyncClient) -> None:
    schema = (await client.get("/openapi.json")).json()
    components = schema["components"]["schemas"]
    assert {"Problem", "ValidationProblem", "ValidationIssue"} <= set(components)
    assert "HTTPValidationError" not in components
    ready = schema["paths"]["/api/v1/health/ready"]["get"]["responses"]
    assert ready["500"]["content"]["application/problem+json"]["schema"] == {
        "$ref": "#/components/schemas/Problem"
    }
    refs = str(schema)
    assert "HTTPValidationError" not in refs


async def test_openapi_validation_responses_use_the_problem_schema(
    app: FastAPI, client: AsyncClient
) -> None:
    @app.get("/needs-param")
    async def needs_param(limit: int) -> dict[str, int]:
        return {"limit": limit}

    app.openapi_schema = None
    schema = (await client.get("/openapi.json")).json()
    response_422 = schema["paths"]["/needs-param"]["get"]["responses"]["422"]
    assert response_422["content"] == {
        "application/problem+json": {"schema": {"$ref": "#/components/schemas/ValidationProblem"}}
    }


async def test_cors_allows_configured_origins_and_exposes_the_request_id(database_url: str) -> None:
    settings = make_settings(
        DATABASE_URL=database_url, CORS_ALLOW_ORIGINS="https://app.example.com"
    )
    async with running(create_app(settings)) as app, client_for(app) as client:
        allowed = await client.get("/health", headers={"Origin": "https://app.example.com"})
        other = await client.get("/health", headers={"Origin": "https://evil.example.com"})
    assert allowed.headers["access-control-allow-origin"] == "https://app.example.com"
    assert "x-request-id" in allowed.headers["access-control-expose-headers"].lower()
    assert "access-control-allow-origin" not in other.headers


@pytest.mark.parametrize(
    ("preflight", "status"),
    [
        ({"Origin": "https://app.example.com", "Access-Control-Request-Method": "GET"}, 200),
        ({"Origin": "https://evil.example.com", "Access-Control-Request-Method": "GET"}, 400),
        ({"Origin": "https://app.example.com", "Access-Control-Request-Method": "TRACE"}, 400),
        (
            {
                "Origin": "https://app.example.com",
                "Access-Control-Request-Method": "GET",
                "Access-Control-Request-Headers": "x-evil",
            },
            400,
        ),
    ],
    ids=["allowed", "origin", "method", "header"],
)
async def test_cors_preflights_are_hardened_and_refused_as_problems(
    database_url: str, preflight: dict[str, str], status: int
) -> None:
    settings = make_settings(
        DATABASE_URL=database_url, CORS_ALLOW_ORIGINS="https://app.example.com"
    )
    async with running(create_app(settings)) as app, client_for(app) as client:
        response = await client.options("/api/v1/users/me", headers=preflight)
    assert response.status_code == status
    assert response.headers["x-content-type-options"] == "nosniff"
    assert response.headers["cache-control"] == "no-store"
    assert "Origin" in response.headers["vary"]
    if status != 200:
        body = assert_problem(response, 400, "cors_refused")
        assert body["request_id"] == response.headers["x-request-id"]
        assert "access-control-allow-methods" not in response.headers


async def test_cors_headers_are_on_the_answers_of_every_layer(database_url: str) -> None:
    """500s, and the 503s of the deadline and of load shedding, are readable by the browser."""
    origin = {"Origin": "https://app.example.com"}
    settings = make_settings(
        DATABASE_URL=database_url,
        CORS_ALLOW_ORIGINS="https://app.example.com",
        REQUEST_TIMEOUT_SECONDS=0.3,
        MAX_CONCURRENT_REQUESTS=1,
        REQUEST_QUEUE_SIZE=0,
    )
    app = create_app(settings)

    @app.get("/boom")
    async def boom() -> None:
        raise RuntimeError("a bug")

    @app.get("/slow")
    async def slow() -> None:
        await asyncio.sleep(1)

    async with running(app), client_for(app) as client:
        failed = await client.get("/boom", headers=origin)
        pending = asyncio.create_task(client.get("/slow", headers=origin))
        await asyncio.sleep(0.1)  # the one slot is taken
        shed = await client.get("/api/v1/meta", headers=origin)
        stopped = await pending
    codes = [(r.status_code, r.json()["code"]) for r in (failed, shed, stopped)]
    assert codes == [(500, "internal_error"), (503, "overloaded"), (503, "deadline_exceeded")]
    for response in (failed, shed, stopped):
        assert response.headers["access-control-allow-origin"] == "https://app.example.com"
        assert "retry-after" in response.headers["access-control-expose-headers"].lower()


async def test_allowed_hosts_apply_to_the_app(database_url: str) -> None:
    settings = make_settings(DATABASE_URL=database_url, ALLOWED_HOSTS="api.example.com")
    async with running(create_app(settings)) as app, client_for(app) as client:
        refused = await client.get("/api/v1/meta")
        accepted = await client.get("/api/v1/meta", headers={"Host": "api.example.com"})
        # Probes come by the pod's address (a kubelet, a container health check).
        probes = [
            await client.get(path, headers={"Host": "10.1.2.3:8000"})
            for path in ("/health", "/api/v1/health/live", "/api/v1/health/ready")
        ]
    assert refused.status_code == 400
    assert refused.json()["code"] == "invalid_host"
    assert refused.headers["x-request-id"]
    assert accepted.status_code == 200
    assert [probe.status_code for probe in probes] == [200, 200, 200]


async def test_proxy_headers_resolve_the_client_only_when_trusted(database_url: str) -> None:
    forwarded = {"X-Forwarded-For": "203.0.113.7", "X-Forwarded-Proto": "https"}
    for trust, expected in ((True, "203.0.113.7"), (False, "127.0.0.1")):
        app = create_app(make_settings(DATABASE_URL=database_url, TRUST_PROXY_HEADERS=trust))
        with log_lines() as logs:  # after create_app, which configures logging itself
            async with running(app), client_for(app) as client:
                await client.get("/health", headers=forwarded)
        [access] = logs.events("request")
        assert access["client"] == expected


async def test_startup_objects_are_frozen_out_of_the_collectors_reach(database_url: str) -> None:
    app = create_app(make_settings(DATABASE_URL=database_url, GC_FREEZE_AFTER_STARTUP=True))
    async with running(app):
        assert gc.get_freeze_count() > 0
    assert gc.get_freeze_count() == 0


async def test_cors_preflight_offers_the_configured_methods_and_headers(database_url: str) -> None:
    settings = make_settings(
        DATABASE_URL=database_url,
        CORS_ALLOW_ORIGINS="https://app.example.com",
        CORS_ALLOW_METHODS="GET,POST",
        CORS_ALLOW_HEADERS="Authorization,X-Custom",
    )
    preflight = {"Origin": "https://app.example.com", "Access-Control-Request-Method": "GET"}
    async with running(create_app(settings)) as app, client_for(app) as client:
        allowed = await client.options(
            "/api/v1/meta",
            headers={**preflight, "Access-Control-Request-Headers": "x-custom"},
        )
        other_method = await client.options(
            "/api/v1/meta", headers={**preflight, "Access-Control-Request-Method": "DELETE"}
        )
        other_header = await client.options(
            "/api/v1/meta", headers={**preflight, "Access-Control-Request-Headers": "if-match"}
        )
    assert allowed.status_code == 200
    methods = {m.strip() for m in allowed.headers["access-control-allow-methods"].split(",")}
    assert methods == {"GET", "POST"}
    assert "x-custom" in allowed.headers["access-control-allow-headers"].lower()
    assert other_method.status_code == 400
    assert other_header.status_code == 400
