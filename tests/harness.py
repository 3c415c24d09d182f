"""Building blocks for tests: settings, a running app with isolated data, an in-process client."""

import io
import json
import socket
import sys
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager
from typing import Any

from asgi_lifespan import LifespanManager
from fastapi import FastAPI
from httpx2 import ASGITransport, AsyncClient, Response
from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from app.core.config import Settings, build_settings
from app.core.logging import configure_logging
from app.deps import attach_resources, resources_of
from app.main import create_app
from app.tasks import bind as bind_jobs


def free_port() -> int:
    """A loopback port nothing listens on (yet)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


# A random secret (fixed, so runs compare) for settings outside development.
STRONG_SECRET = "7f3a9c1e5b8d2f6a0c4e9b7d1f3a5c8e2b6d0f4a9c7e1b3d5f8a2c6e0b4d9f71"
# What production refuses to start without, besides its environment.
PRODUCTION: dict[str, Any] = {
    "ENVIRONMENT": "production",
    "JWT_SECRET": STRONG_SECRET,
    "ALLOWED_HOSTS": "testserver",
}


def make_settings(**overrides: Any) -> Settings:
    """Settings for tests: the `test` environment, JSON logs, and no `.env` file."""
    # Cheap Argon2 parameters: the suite hashes hundreds of passwords (bench/ uses the defaults).
    values: dict[str, Any] = {
        "ENVIRONMENT": "test",
        "LOG_FORMAT": "json",
        "PASSWORD_HASH_TIME_COST": 1,
        "PASSWORD_HASH_MEMORY_KIB": 1024,
        "PASSWORD_HASH_PARALLELISM": 1,
        # Tests send many requests from one address; rate-limit tests turn it back on.
        "RATE_LIMIT_ENABLED": False,
        # A full collection per app start costs ~0.1 s on the suite's large heap.
        "GC_FREEZE_AFTER_STARTUP": False,
        # Each job runs inline once its request answered, inside the test's transaction.
        "JOBS_EAGER": True,
        # A busy test host can stall a worker for longer than the 0.25 s production default:
        # a test that is not about Redis timeouts must not turn that stall into a 503. Tests of
        # timeouts set their own.
        "REDIS_SOCKET_TIMEOUT": 5,
        "REDIS_POOL_TIMEOUT": 5,
    }
    values.update(overrides)
    return build_settings(env_file=None, **values)


@asynccontextmanager
async def rolled_back(engine: AsyncEngine) -> AsyncIterator[async_sessionmaker[AsyncSession]]:
    """Yield a session factory whose commits are savepoints inside one rolled-back transaction."""
    async with engine.connect() as connection:
        transaction = await connection.begin()
        try:
            yield async_sessionmaker(
                bind=connection, expire_on_commit=False, join_transaction_mode="create_savepoint"
            )
        finally:
            await transaction.rollback()


@asynccontextmanager
async def running(app: FastAPI) -> AsyncIterator[FastAPI]:
    """Run the app's lifespan and isolate its database work in a rolled-back transaction."""
    resources = resources_of(app)
    async with LifespanManager(app), rolled_back(resources.engine) as session_factory:
        isolated = resources.replace(
            session_factory=session_factory, read_session_factory=session_factory
        )
        attach_resources(app, isolated)
        bind_jobs(isolated)  # jobs run with the isolated session factory too
        yield app


@asynccontextmanager
async def client_for(app: FastAPI) -> AsyncIterator[AsyncClient]:
    """An HTTP client that talks to `app` in-process over ASGI."""
    async with AsyncClient(transport=ASGITransport(app=app), base_url="http://testserver") as c:
        yield c


@asynccontextmanager
async def started(
    settings: Settings, prepare: Callable[[FastAPI], None] | None = None, **overrides: Any
) -> AsyncIterator[tuple[FastAPI, AsyncClient]]:
    """Run an app on the database of `settings`, changed by `overrides`, and a client for it.

    `prepare`, if given, changes the app before it starts (e.g. mounts routes only tests use).
    """
    app = create_app(make_settings(DATABASE_URL=settings.database.url, **overrides))
    if prepare is not None:
        prepare(app)
    async with running(app), client_for(app) as client:
        yield app, client


def factory(app: FastAPI) -> async_sessionmaker[AsyncSession]:
    """The session factory of a running app (inside `running`: the rolled-back one)."""
    session_factory: async_sessionmaker[AsyncSession] = resources_of(app).session_factory
    return session_factory


class FakeClock:
    """A clock the test moves by hand: call it for the time, `advance` it."""

    def __init__(self) -> None:
        self.now = 1_000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


class LogLines:
    """The JSON log lines the app wrote since `log_lines()` started."""

    def __init__(self) -> None:
        self.stream = io.StringIO()

    def all(self) -> list[dict[str, Any]]:
        return [json.loads(line) for line in self.stream.getvalue().splitlines() if line]

    def events(self, event: str) -> list[dict[str, Any]]:
        return [line for line in self.all() if line.get("event") == event]


@contextmanager
def log_lines(**settings: Any) -> Iterator[LogLines]:
    """Send every log line (structlog and stdlib) as JSON to a buffer the test can read."""
    captured = LogLines()
    chosen = make_settings(**settings)
    configure_logging(chosen.logging, sql_echo=chosen.database.echo, stream=captured.stream)
    try:
        yield captured
    finally:
        configure_logging(make_settings().logging, stream=sys.stdout)


PROBLEM = "application/problem+json"


def assert_problem(response: Response, status: int, code: str | None = None) -> dict[str, Any]:
    """Assert that `response` is a problem with this status (and code); return its body."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == PROBLEM
    body: dict[str, Any] = response.json()
    assert body["status"] == status
    if code is not None:
        assert body["code"] == code
    return body


def pointers(body: dict[str, Any]) -> set[str]:
    """The JSON pointers of a validation problem's errors."""
    return {error["pointer"] for error in body.get("errors", []) if "pointer" in error}


_TRANSACTION_CONTROL = ("BEGIN", "COMMIT", "ROLLBACK", "SAVEPOINT", "RELEASE")


@contextmanager
def counted_statements(app: FastAPI, *, queries_only: bool = False) -> Iterator[list[str]]:
    """Collect the SQL statements the app's engine sends while the block runs.

    With `queries_only`, transaction control (BEGIN, COMMIT, SAVEPOINT...) is left out.
    """
    statements: list[str] = []
    engine = resources_of(app).engine.sync_engine

    def record(_conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        if not (queries_only and statement.lstrip().upper().startswith(_TRANSACTION_CONTROL)):
            statements.append(statement)

    event.listen(engine, "before_cursor_execute", record)
    try:
        yield statements
    finally:
        event.remove(engine, "before_cursor_execute", record)
