"""Outages answer 503 with Retry-After, on the drivers' real errors; bugs stay 500.

Each test runs the app without the rolled-back harness (its one shared connection is what
some of these tests break) against a real PostgreSQL, or a port where none answers.
"""

import asyncio
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import pytest
import redis.exceptions
from asgi_lifespan import LifespanManager
from fastapi import FastAPI
from httpx2 import AsyncClient
from redis import Redis
from sqlalchemy import make_url, text

from app.core.errors import is_database_unavailable, is_redis_unavailable
from app.db.session import create_engine
from app.deps import RedisDep, SessionDep, resources_of
from app.main import create_app
from tests.frozen_proxy import FrozenProxy
from tests.harness import assert_problem, client_for, log_lines, make_settings
from tests.processes import RedisServer
from tests.services import postgres_url

pytestmark = pytest.mark.anyio


def add_routes(app: FastAPI) -> None:
    # POST runs in a transaction (GET and HEAD requests have none, see app.deps.get_session).
    @app.api_route("/sql/{statement}", methods=["GET", "POST"])
    async def run(statement: str, session: SessionDep) -> dict[str, str]:
        statements = {
            "one": "SELECT 1",
            "sleep": "SELECT pg_sleep(5)",
            "die": "SELECT pg_terminate_backend(pg_backend_pid())",
            "locked": "SET LOCAL lock_timeout = '100ms'; LOCK TABLE outage_lock IN SHARE MODE",
            "typo": "SELEC 1",
            # What a standby (or a database set read-only) answers to a write: SQLSTATE 25006.
            "read_only": "SET TRANSACTION READ ONLY; CREATE TABLE outage_read_only (id int)",
        }
        for part in statements[statement].split("; "):
            await session.execute(text(part))
        return {"ran": statement}

    @app.post("/counter")
    async def increment(redis: RedisDep) -> dict[str, int]:
        return {"value": int(await redis.incr("test:outage-counter"))}


@asynccontextmanager
async def live(database_url: str, **settings: Any) -> AsyncIterator[tuple[FastAPI, AsyncClient]]:
    app = create_app(make_settings(DATABASE_URL=database_url, **settings))
    add_routes(app)
    async with LifespanManager(app), client_for(app) as client:
        yield app, client


@pytest.fixture
def pg_url() -> str:
    return postgres_url()


def assert_database_unavailable(response: Any) -> None:
    assert_problem(response, 503, "database_unavailable")
    assert response.headers["retry-after"] == "1"


async def test_a_refused_connection_is_a_503(closed_port: int) -> None:
    async with live(f"postgresql+asyncpg://app@127.0.0.1:{closed_port}/app") as (_, client):
        response = await client.get("/sql/one")
    assert_database_unavailable(response)


async def test_a_connect_timeout_is_a_503(silent_port: int) -> None:
    url = f"postgresql+asyncpg://app@127.0.0.1:{silent_port}/app"
    async with live(url, DATABASE_CONNECT_TIMEOUT=0.2) as (_, client):
        response = await client.get("/sql/one")
    assert_database_unavailable(response)


async def test_a_statement_timeout_is_a_503(pg_url: str) -> None:
    async with live(pg_url, DATABASE_STATEMENT_TIMEOUT_MS=100) as (_, client):
        response = await client.get("/sql/sleep")
    assert_database_unavailable(response)


async def test_a_lock_timeout_is_a_503(pg_url: str) -> None:
    async with live(pg_url) as (app, client):
        engine = resources_of(app).engine
        async with engine.begin() as holder:
            await holder.execute(text("CREATE TABLE IF NOT EXISTS outage_lock (id int)"))
        try:
            async with engine.connect() as holder:
                await holder.execute(text("LOCK TABLE outage_lock IN ACCESS EXCLUSIVE MODE"))
                response = await client.post("/sql/locked")  # LOCK needs a transaction
                await holder.rollback()
        finally:
            async with engine.begin() as cleanup:
                await cleanup.execute(text("DROP TABLE outage_lock"))
    assert_database_unavailable(response)


async def test_a_connection_the_server_ended_is_a_503_and_the_next_request_works(
    pg_url: str,
) -> None:
    async with live(pg_url) as (_, client):
        ended = await client.get("/sql/die")
        after = await client.get("/sql/one")
    assert_database_unavailable(ended)
    assert after.json() == {"ran": "one"}


async def test_a_write_a_read_only_server_refuses_is_a_503(pg_url: str) -> None:
    async with live(pg_url) as (_, client):
        response = await client.post("/sql/read_only")
        after = await client.post("/sql/one")
    assert_database_unavailable(response)
    assert after.json() == {"ran": "one"}


async def test_a_programming_error_stays_a_500(pg_url: str) -> None:
    async with live(pg_url) as (_, client):
        response = await client.get("/sql/typo")
    assert_problem(response, 500, "internal_error")


async def test_a_deadline_stops_the_query_and_frees_its_connection(pg_url: str) -> None:
    settings = {"REQUEST_TIMEOUT_SECONDS": 0.5, "DATABASE_STATEMENT_TIMEOUT_MS": 0}
    async with live(pg_url, **settings) as (app, client):
        started = time.monotonic()
        response = await client.get("/sql/sleep")
        elapsed = time.monotonic() - started
        engine = resources_of(app).engine
        checked_out = engine.pool.checkedout()  # type: ignore[attr-defined]
        # The server notices the dropped connection after a moment (longer on a busy machine);
        # a query left running would still be there until its own end, 5 s after it started.
        sleeping = -1
        while sleeping != 0 and time.monotonic() - started < 4:
            await asyncio.sleep(0.1)
            async with engine.connect() as connection:
                sleeping = await connection.scalar(
                    text("SELECT count(*) FROM pg_stat_activity WHERE query = 'SELECT pg_sleep(5)'")
                )
    assert_problem(response, 503, "deadline_exceeded")
    assert elapsed < 5  # stopped, not waited out
    assert (checked_out, sleeping) == (0, 0)


@pytest.mark.parametrize("first", ["pool_timeout", "deadline"])
async def test_a_request_waiting_for_a_full_pool_is_a_503_with_retry_after(
    pg_url: str, first: str
) -> None:
    """The one connection is held (by slow work elsewhere): a request waits for it until the
    pool timeout or its deadline, whichever comes first, and is answered then."""
    pool_timeout, deadline = (0.5, 3) if first == "pool_timeout" else (10, 0.8)
    settings = {
        "DATABASE_POOL_SIZE": 1,
        "DATABASE_MAX_OVERFLOW": 0,
        "DATABASE_POOL_TIMEOUT": pool_timeout,
        "DATABASE_STATEMENT_TIMEOUT_MS": 0,
        "REQUEST_TIMEOUT_SECONDS": deadline,
    }
    async with live(pg_url, **settings) as (app, client):
        async with resources_of(app).engine.connect() as held:
            await held.execute(text("SELECT 1"))
            started = time.monotonic()
            waiting = await client.post("/sql/one")
            elapsed = time.monotonic() - started
        after = await client.post("/sql/one")
    code = "database_unavailable" if first == "pool_timeout" else "deadline_exceeded"
    assert_problem(waiting, 503, code)
    assert waiting.headers["retry-after"] == "1"
    assert elapsed < min(pool_timeout, deadline) + 1.0
    assert after.json() == {"ran": "one"}


async def test_redis_failing_where_it_is_required_is_a_503(pg_url: str, closed_port: int) -> None:
    redis_url = f"redis://127.0.0.1:{closed_port}/0"
    async with live(pg_url, REDIS_URL=redis_url) as (_, client):
        response = await client.post("/counter")
    assert_problem(response, 503, "service_unavailable")
    assert response.headers["retry-after"] == "1"


@pytest.mark.parametrize("refusal", ["out_of_memory", "read_only"])
async def test_redis_refusing_writes_where_it_is_required_is_a_503(
    pg_url: str, redis_server: RedisServer, closed_port: int, refusal: str
) -> None:
    """A Redis that answers but refuses every write (full under `noeviction`, or a replica
    after a failover) is down for this route, not a bug in it."""
    async with live(pg_url, REDIS_URL=redis_server.url) as (_, client):
        assert (await client.post("/counter")).status_code == 200
        admin = Redis.from_url(redis_server.url)
        try:
            if refusal == "out_of_memory":
                admin.config_set("maxmemory-policy", "noeviction")
                admin.config_set("maxmemory", "1")  # below what Redis already uses
            else:
                admin.replicaof("127.0.0.1", str(closed_port))  # a replica never takes writes
            response = await client.post("/counter")
        finally:
            admin.close()
    assert_problem(response, 503, "service_unavailable")
    assert response.headers["retry-after"] == "1"


@pytest.mark.parametrize(
    ("error", "outage"),
    [
        (redis.exceptions.OutOfMemoryError("command not allowed"), True),
        (redis.exceptions.ReadOnlyError("You can't write against a read only replica."), True),
        (redis.exceptions.MasterDownError("Link with MASTER is down"), True),
        (redis.exceptions.ResponseError("MISCONF Redis is configured to save RDB..."), True),
        (redis.exceptions.ResponseError("BUSY Redis is busy running a script."), True),
        (redis.exceptions.ResponseError("WRONGTYPE Operation against a key..."), False),
        (redis.exceptions.DataError("Invalid input of type: 'dict'."), False),
    ],
    ids=["oom", "readonly", "masterdown", "misconf", "busy", "wrongtype", "bad-argument"],
)
def test_redis_refusals_for_its_state_are_outages_and_the_rest_are_bugs(
    error: Exception, outage: bool
) -> None:
    assert is_redis_unavailable(error) is outage


def test_driver_signals_decide_what_is_an_outage() -> None:
    assert not is_database_unavailable(ValueError("not a database error"))
    assert not is_database_unavailable(ConnectionRefusedError())  # the engine wraps these


@pytest.mark.parametrize("method", ["GET", "POST"])  # without a transaction, and in one
async def test_a_database_that_stops_answering_is_a_503_at_the_command_timeout(
    pg_url: str, method: str
) -> None:
    target = make_url(pg_url)
    async with FrozenProxy(target.host or "127.0.0.1", target.port or 5432) as proxy:
        url = target.set(host="127.0.0.1", port=proxy.port).render_as_string(hide_password=False)
        settings = {"DATABASE_COMMAND_TIMEOUT": 0.3, "DATABASE_STATEMENT_TIMEOUT_MS": 0}
        with log_lines() as logs:
            async with live(url, **settings) as (app, client):
                assert (await client.request(method, "/sql/one")).status_code == 200
                proxy.freeze()
                started = time.monotonic()
                response = await client.request(method, "/sql/one")
                elapsed = time.monotonic() - started
                proxy.thaw()
                after = await client.request(method, "/sql/one")
                checked_out = resources_of(app).engine.pool.checkedout()  # type: ignore[attr-defined]
    assert_database_unavailable(response)
    assert elapsed < 1.5  # the command timeout (0.3 s), not the request deadline (30 s)
    assert after.json() == {"ran": "one"}  # a fresh connection, without a restart
    assert checked_out == 0
    assert "Traceback" not in logs.stream.getvalue()


async def test_a_connection_closed_while_the_database_is_silent_logs_a_warning(
    pg_url: str,
) -> None:
    target = make_url(pg_url)
    async with FrozenProxy(target.host or "127.0.0.1", target.port or 5432) as proxy:
        url = target.set(host="127.0.0.1", port=proxy.port).render_as_string(hide_password=False)
        settings = {"DATABASE_POOL_SIZE": 1, "DATABASE_MAX_OVERFLOW": 1}
        database = make_settings(DATABASE_URL=url, DATABASE_COMMAND_TIMEOUT=0.3, **settings)
        engine = create_engine(database.database, application_name="outage-test")
        try:
            with log_lines() as logs:
                kept, overflow = await engine.connect(), await engine.connect()
                for connection in (kept, overflow):
                    await connection.execute(text("SELECT 1"))
                    await connection.commit()
                await kept.close()  # the pool of one is full again
                proxy.freeze()
                started = time.monotonic()
                await overflow.close()  # so this one is closed: a goodbye nobody answers
                elapsed = time.monotonic() - started
        finally:
            proxy.thaw()
            await engine.dispose()
    [closing] = [line for line in logs.all() if "closing connection" in line["event"]]
    assert (closing["level"], closing["event"][-14:]) == ("warning", ": TimeoutError")
    assert "Traceback" not in logs.stream.getvalue()
    assert elapsed < 1.5  # bounded by the command timeout


async def test_a_deadlock_the_server_broke_is_an_outage_not_a_bug(pg_url: str) -> None:
    """Two transactions lock two rows in opposite orders: PostgreSQL rolls one back (40P01),
    which succeeds when tried again: a 503 with Retry-After, not a 500."""
    engine = create_engine(make_settings(DATABASE_URL=pg_url).database, application_name="t")
    try:
        async with engine.begin() as setup:
            await setup.execute(text("CREATE TABLE IF NOT EXISTS outage_deadlock (id int)"))
            await setup.execute(text("INSERT INTO outage_deadlock VALUES (1), (2)"))
        first, second = await engine.connect(), await engine.connect()
        lock = "UPDATE outage_deadlock SET id = id WHERE id = {}"
        await first.execute(text(lock.format(1)))
        await second.execute(text(lock.format(2)))
        outcomes = await asyncio.gather(
            first.execute(text(lock.format(2))),
            second.execute(text(lock.format(1))),
            return_exceptions=True,
        )
        await first.rollback()
        await second.rollback()
        await first.close()
        await second.close()
    finally:
        async with engine.begin() as cleanup:
            await cleanup.execute(text("DROP TABLE IF EXISTS outage_deadlock"))
        await engine.dispose()
    [error] = [outcome for outcome in outcomes if isinstance(outcome, BaseException)]
    assert getattr(getattr(error, "orig", None), "sqlstate", None) == "40P01"
    assert is_database_unavailable(error)
