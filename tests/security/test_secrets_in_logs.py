"""Attack: read secrets from the logs. No password, key, token or bound parameter is written."""

import secrets
from typing import Any

import pytest
import structlog
from fastapi import FastAPI
from httpx2 import AsyncClient
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError

from app.core.config import Settings
from app.db.session import create_engine, safe_url
from app.main import create_app
from tests.harness import client_for, log_lines, make_settings, running
from tests.identity import DEFAULT_PASSWORD, bearer, login, register
from tests.security.helpers import create_key

pytestmark = pytest.mark.anyio

# Fixed, not random: pytest-xdist workers must collect the same test ids.
API_KEY_SHAPE = "pfb_0123abcd_" + "Zk3pQ9vX2mL7tR4yB8nC1wE6sH0jU5aF9gD2kV7xM3q"
LOCAL_PASSWORD = "hunter2-in-a-local-variable"


def add_failing_route(app: FastAPI) -> None:
    @app.get("/leaky")
    async def leaky() -> None:
        password = LOCAL_PASSWORD  # a local the traceback must not print
        api_key = API_KEY_SHAPE
        raise RuntimeError(f"could not reach redis://:{password}@cache:6379 with {api_key[:3]}")


@pytest.mark.parametrize("log_format", ["console", "json"])
async def test_a_500_logs_no_local_variable_and_no_secret_in_any_format(
    settings: Settings, log_format: str
) -> None:
    app = create_app(settings)
    add_failing_route(app)
    with log_lines(LOG_FORMAT=log_format) as logs:
        async with running(app), client_for(app) as client:
            response = await client.get("/leaky")
    assert response.status_code == 500
    written = logs.stream.getvalue()
    assert "RuntimeError" in written  # the trace is there...
    assert LOCAL_PASSWORD not in written  # ...without the locals or the URL's password
    assert API_KEY_SHAPE not in written
    assert "[REDACTED]" in written


async def test_credentials_in_requests_never_reach_the_log(client: AsyncClient) -> None:
    with log_lines() as logs:
        await register(client, "logs@example.com")
        tokens = await login(client, "logs@example.com")
        created = await create_key(client, bearer(tokens), current_password=DEFAULT_PASSWORD)
        await client.get("/api/v1/users/me", headers={"X-API-Key": created.json()["key"]})
        await client.post(
            "/api/v1/auth/login", data={"username": "logs@example.com", "password": "wrong"}
        )
    written = logs.stream.getvalue()
    for secret in (
        DEFAULT_PASSWORD,
        tokens["access_token"],
        tokens["refresh_token"],
        created.json()["key"],
    ):
        assert secret not in written


async def test_database_errors_never_carry_bound_parameters(settings: Settings) -> None:
    # The engine the app builds, with DATABASE_ECHO on: every statement is logged.
    engine = create_engine(settings.database, application_name="tests")
    secret_value = "$argon2id$v=19$m=65536,t=3,p=4$secret-looking-hash"
    try:
        with log_lines(DATABASE_ECHO=True) as logs:
            async with engine.connect() as connection:
                await connection.execute(text("SELECT :value"), {"value": secret_value})
                with pytest.raises(DBAPIError) as caught:
                    await connection.execute(
                        text("SELECT * FROM no_such_table WHERE x = :value"),
                        {"value": secret_value},
                    )
    finally:
        await engine.dispose()
    assert secret_value not in str(caught.value)
    assert secret_value not in logs.stream.getvalue()
    # The statements themselves are logged, their parameters are not.
    events = [line["event"] for line in logs.all()]
    assert any(event.startswith(("SELECT ?", "SELECT $1")) for event in events), events
    assert any("parameters hidden" in event for event in events)


@pytest.mark.parametrize(
    ("fields", "secret"),
    [
        ({"url": "postgresql://app:s3cr3t-db-pass@db/app"}, "s3cr3t-db-pass"),
        # A password holding `@`: every part of it, as urllib and redis-py read it.
        ({"url": "redis://:S3cret@Tail9x@cache:6379/0"}, "Tail9x"),
        ({"error": "amqp://user:S3cret@Tail9x@broker/ refused"}, "Tail9x"),
        ({"database": safe_url("postgresql+asyncpg://app:S3cret@Tail9x@db:5432/app")}, "Tail9x"),
        ({"headers": {"Authorization": "Bearer abcdefghijklmnopqrstu"}}, "abcdefghijklmnopqrstu"),
        ({"nested": [{"client_secret": "shh-very-secret"}]}, "shh-very-secret"),
        ({"detail": "sent " + API_KEY_SHAPE}, API_KEY_SHAPE),
        (
            {"note": "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJ4In0.c2lnbmF0dXJlLWhlcmU"},
            "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJ4In0.c2lnbmF0dXJlLWhlcmU",
        ),
    ],
)
@pytest.mark.parametrize("log_format", ["console", "json"])
def test_secret_shapes_are_scrubbed_wherever_they_appear(
    fields: dict[str, Any], secret: str, log_format: str
) -> None:
    with log_lines(LOG_FORMAT=log_format) as logs:
        structlog.get_logger("test").warning("something_happened", **fields)
    assert secret not in logs.stream.getvalue()


def test_debug_is_refused_outside_development() -> None:
    with pytest.raises(ValueError, match="DEBUG"):
        make_settings(ENVIRONMENT="staging", DEBUG=True, JWT_SECRET=secrets.token_hex(32))
