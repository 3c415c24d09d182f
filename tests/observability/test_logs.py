"""Log lines as an operator reads them: one JSON object per request, who, which trace, what was
slow, and nothing secret at any depth or in a traceback."""

import logging
import re
from datetime import UTC, datetime

import pytest
import structlog
from fastapi import Depends, FastAPI
from sqlalchemy import text
from sqlalchemy.engine import make_url

from app.core.config import Settings
from app.core.log_redact import REDACTED
from app.core.logging import bind_user
from app.main import create_app
from tests.harness import client_for, factory, log_lines, make_settings, running
from tests.identity import signed_up

pytestmark = pytest.mark.anyio

RFC_3339_UTC = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z")
SECRET = "hunter2-very-secret"


async def test_one_line_per_request_with_the_response_request_id(settings: Settings) -> None:
    def add_route(app: FastAPI) -> None:
        async def caller() -> None:
            bind_user("user-42")  # what authentication does once it knows the caller

        @app.get("/test-signed-in", dependencies=[Depends(caller)])
        async def signed_in() -> dict[str, bool]:
            return {"ok": True}

    app = create_app(make_settings(DATABASE_URL=settings.database.url))
    add_route(app)
    with log_lines() as logs:
        async with running(app), client_for(app) as client:
            responses = [await client.get(path) for path in ("/api/v1/meta", "/nope")]
            responses.append(await client.get("/test-signed-in", headers={"X-Request-ID": "r-1"}))
    lines = logs.events("request")
    assert len(lines) == 3
    assert [line["request_id"] for line in lines] == [r.headers["x-request-id"] for r in responses]
    assert lines[2]["request_id"] == "r-1"
    for line in lines:
        assert RFC_3339_UTC.fullmatch(line["timestamp"])
        moment = datetime.fromisoformat(line["timestamp"])
        assert moment.tzinfo is not None
        assert moment.utcoffset() == UTC.utcoffset(None)
        assert (line["level"], line["logger"]) in {("info", "app.access")}
    assert "user_id" not in lines[0]
    assert lines[2]["user_id"] == "user-42"
    assert [line["status"] for line in lines] == [200, 404, 200]


async def test_an_authenticated_request_logs_its_user(settings: Settings) -> None:
    app = create_app(make_settings(DATABASE_URL=settings.database.url))
    with log_lines() as logs:
        async with running(app), client_for(app) as client:
            headers = await signed_up(client, "logged@example.com")
            me = (await client.get("/api/v1/users/me", headers=headers)).json()
            await client.get("/api/v1/users/me", headers={"Authorization": "Bearer forged"})
    *_, signed_in, refused = logs.events("request")
    assert (signed_in["path"], signed_in["user_id"]) == ("/api/v1/users/me", me["id"])
    assert refused["status"] == 401
    assert "user_id" not in refused


def test_secrets_are_masked_at_any_depth() -> None:
    with log_lines() as logs:
        structlog.get_logger("app.test").info(
            "nested",
            payload={
                "user": {"email": "a@example.com", "password": SECRET},
                "sessions": [{"refresh_token": SECRET, "id": 1}, {"cookies": {"sid": SECRET}}],
                "headers": [["authorization", f"Bearer {SECRET}-abcdefgh"]],
                "dsn": f"postgresql://app:{SECRET}@db:5432/app",
            },
        )
    [line] = logs.events("nested")
    assert SECRET not in str(line)
    payload = line["payload"]
    assert payload["user"] == {"email": "a@example.com", "password": REDACTED}
    assert payload["sessions"] == [{"refresh_token": REDACTED, "id": 1}, {"cookies": REDACTED}]
    assert payload["headers"] == [["authorization", f"Bearer {REDACTED}"]]
    assert payload["dsn"] == f"postgresql://{REDACTED}@db:5432/app"


def test_exception_output_is_scrubbed_but_kept() -> None:
    with log_lines() as logs:
        try:
            raise ConnectionError(f"could not reach postgresql://app:{SECRET}@db/app")
        except ConnectionError:
            structlog.get_logger("app.test").exception("failed", token=SECRET)
        try:
            raise ValueError(f"Authorization: Bearer {SECRET}-abcdefgh")
        except ValueError:
            logging.getLogger("somelib").exception("library failed")
    failed, library = logs.events("failed")[0], logs.events("library failed")[0]
    assert SECRET not in str(logs.all())
    assert failed["token"] == REDACTED
    assert "Traceback (most recent call last)" in failed["exception"]
    assert "ConnectionError: could not reach postgresql://[REDACTED]@db/app" in failed["exception"]
    assert "ValueError: Authorization: Bearer [REDACTED]" in library["exception"]


def slow_statement(url: str) -> str:
    if make_url(url).get_backend_name() == "postgresql":
        return "SELECT pg_sleep(0.15), :secret"
    # ~0.4 s on a fast core: far past the 100 ms threshold however fast the machine.
    return (
        "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 2000000) "
        "SELECT count(*), :secret FROM c"
    )


async def test_slow_statements_are_logged_without_their_values(settings: Settings) -> None:
    app = create_app(make_settings(DATABASE_URL=settings.database.url, DB_SLOW_QUERY_MS=100))
    statement = slow_statement(settings.database.url)
    with log_lines() as logs:
        # The harness's connection holds SQLite's write lock: statements go through it.
        async with running(app), factory(app)() as session:
            await session.execute(text("SELECT 1"))
            await session.execute(text(statement), {"secret": SECRET})
    [line] = logs.events("db.slow_statement")
    assert line["level"] == "warning"
    assert line["duration_ms"] >= 100
    assert line["failed"] is False
    assert line["statement"].startswith(statement.split(":secret")[0])
    assert SECRET not in str(logs.all())


async def test_a_threshold_of_zero_logs_no_statement(settings: Settings) -> None:
    app = create_app(make_settings(DATABASE_URL=settings.database.url, DB_SLOW_QUERY_MS=0))
    with log_lines() as logs:
        async with running(app), factory(app)() as session:
            await session.execute(text(slow_statement(settings.database.url)), {"secret": "1"})
    assert logs.events("db.slow_statement") == []


def test_console_lines_escape_the_control_characters_a_terminal_obeys() -> None:
    with log_lines(LOG_FORMAT="console") as logs:
        log = structlog.get_logger("test")
        log.warning("title \x1b]0;owned\x07 clear \x9b2J", path="/\x1b[31mred")
        try:
            raise ValueError("bad \x1b[2J value")
        except ValueError:
            log.exception("failed\r\n2026-01-01T00:00:00Z [info     ] forged")
        logging.getLogger("uvicorn.error").warning("stdlib %s", "\x1b[0m")
    text = logs.stream.getvalue()
    assert not set(text) & {"\x1b", "\x07", "\x9b", "\r"}
    assert "title \\x1b]0;owned\\x07 clear \\x9b2J" in text
    assert "failed\\x0d\\x0a2026-01-01T00:00:00Z [info     ] forged" in text  # no forged line
    assert "ValueError: bad \\x1b[2J value" in text
    assert "Traceback (most recent call last):\n" in text  # a traceback keeps its lines
