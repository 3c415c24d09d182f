"""Database faults under load, against two workers on a private PostgreSQL.

In each: no 500, every 201 is in the database, no row without its 201, and the service
recovers without a restart.
"""

import asyncio
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path

import httpx2
import pytest

from tests.e2e.conftest import check_database
from tests.e2e.load import Load, assert_no_errors
from tests.e2e.postgres import PostgresServer
from tests.e2e.server import Server, serving, user_headers

pytestmark = pytest.mark.anyio

READY = "/api/v1/health/ready"


async def readiness(server: Server) -> int:
    async with httpx2.AsyncClient(base_url=server.url, trust_env=False, timeout=10) as client:
        return (await client.get(READY)).status_code


async def wait_ready(server: Server, seconds: float = 20) -> float:
    """Seconds until readiness answers 200 (fails the test past `seconds`)."""
    started = time.monotonic()
    while await readiness(server) != 200:
        assert time.monotonic() - started < seconds, "readiness never came back"
        await asyncio.sleep(0.1)
    return time.monotonic() - started


@pytest.fixture(scope="module")
def server(
    postgres: PostgresServer, module_database: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Server]:
    """One server for the faults that need no fresh start (its deadline shorter than a lock)."""
    settings = {"REQUEST_TIMEOUT_SECONDS": "1.5", "DATABASE_STATEMENT_TIMEOUT_MS": "0"}
    url = postgres.url(module_database)
    with serving(tmp_path_factory.mktemp("server"), DATABASE_URL=url, **settings) as running:
        yield running


async def under_load(load: Load, fault: Callable[[], Awaitable[None]], recover: float) -> float:
    """Run `fault` while `load` runs, then keep the load `recover` seconds; return fault end."""
    runner = asyncio.create_task(load.run())
    try:
        await asyncio.sleep(1.0)
        await fault()
        fault_over = time.monotonic()
        await asyncio.sleep(recover)
    finally:
        load.stop()
        await runner
    return fault_over


async def test_database_refused_at_start(
    postgres: PostgresServer, database: str, tmp_path: Path
) -> None:
    url = postgres.url(database)
    email, headers = await user_headers(url)
    await asyncio.to_thread(postgres.stop)
    try:
        admin = {"FIRST_SUPERUSER_EMAIL": "root@example.com", "FIRST_SUPERUSER_PASSWORD": "x" * 12}
        with serving(tmp_path, DATABASE_URL=url, **admin) as server:
            load = Load(server.url, headers, concurrency=4)

            async def database_comes_up() -> None:
                assert await readiness(server) == 503
                await asyncio.to_thread(postgres.start)
                await wait_ready(server)

            fault_over = await under_load(load, database_comes_up, recover=2.0)
            await check_database(load, postgres, database, email)
            alive = server.process.poll() is None
            waiting = server.events("startup_waiting_for_database")
            completed = server.events("startup_completed")
            server.assert_clean_log()
    finally:
        await asyncio.to_thread(postgres.start_if_stopped)
    assert alive
    assert len(waiting) >= 2  # both workers started, and waited for the database
    assert len(completed) == 2
    assert_no_errors(load)
    assert {a.code for a in load.attempts if a.status == 503} == {"database_unavailable"}
    assert load.created_between(fault_over, time.monotonic()) > 0
    superusers = await postgres.fetch_value(
        "SELECT count(*) FROM users WHERE is_superuser", database
    )
    assert superusers == 1  # bootstrapped once, by one of the two workers


async def test_backends_terminated_under_load(
    postgres: PostgresServer, module_database: str, server: Server
) -> None:
    email, headers = await user_headers(postgres.url(module_database))
    load = Load(server.url, headers, concurrency=8)
    ended: list[int] = []

    async def terminate_repeatedly() -> None:
        for _ in range(4):
            ended.append(await postgres.terminate_backends(module_database))
            await asyncio.sleep(0.7)

    fault_over = await under_load(load, terminate_repeatedly, recover=2.0)
    await check_database(load, postgres, module_database, email)
    server.assert_clean_log()
    assert sum(ended) > 0
    assert_no_errors(load)
    assert load.created_between(fault_over, time.monotonic()) > 0


async def test_database_stopped_and_restarted_under_load(
    postgres: PostgresServer, module_database: str, server: Server
) -> None:
    email, headers = await user_headers(postgres.url(module_database))
    load = Load(server.url, headers, concurrency=8)

    async def restart() -> None:
        await asyncio.to_thread(postgres.stop)
        try:
            await asyncio.sleep(2.0)
        finally:
            await asyncio.to_thread(postgres.start)

    fault_over = await under_load(load, restart, recover=3.0)
    await check_database(load, postgres, module_database, email)
    server.assert_clean_log()
    assert_no_errors(load)
    assert load.statuses()[503] > 0  # the outage was seen, and answered 503
    assert load.created_between(fault_over + 1.0, time.monotonic()) > 0


async def test_a_table_lock_longer_than_the_deadline(
    postgres: PostgresServer, module_database: str, server: Server
) -> None:
    database = module_database
    email, headers = await user_headers(postgres.url(database))
    load = Load(server.url, headers, concurrency=8)
    probes: list[tuple[int, float]] = []
    lock_window: list[float] = []

    async def hold_lock_and_probe() -> None:
        holder = await postgres.connect(database)
        try:
            transaction = holder.transaction()
            await transaction.start()
            await holder.execute("LOCK TABLE items IN ACCESS EXCLUSIVE MODE")
            lock_window.append(time.monotonic())
            async with httpx2.AsyncClient(base_url=server.url, trust_env=False) as client:
                while time.monotonic() - lock_window[0] < 4.0:  # longer than the deadline
                    started = time.monotonic()
                    status = (await client.get("/health")).status_code
                    probes.append((status, time.monotonic() - started))
                    await asyncio.sleep(0.1)
            await transaction.rollback()
            lock_window.append(time.monotonic())
        finally:
            await holder.close()

    await under_load(load, hold_lock_and_probe, recover=2.0)
    await check_database(load, postgres, database, email)
    stuck = await postgres.fetch_value(
        "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
        "AND state LIKE 'idle in transaction%'",
        database,
    )
    server.assert_clean_log()
    locked_from, locked_until = lock_window
    during = [a for a in load.attempts if locked_from + 0.2 < a.started < locked_until - 2.0]
    assert_no_errors(load)
    assert during, "requests were sent while the table was locked"
    assert {a.status for a in during} == {503}
    assert max(a.seconds for a in during) < 3.0  # stopped at the deadline, not after the lock
    assert all(status == 200 for status, _ in probes)
    assert max(seconds for _, seconds in probes) < 1.0  # the event loop stayed free
    assert stuck == 0  # the stopped requests gave their connections back clean
    assert load.created_between(locked_until + 0.5, time.monotonic()) > 0


async def test_jobs_asked_for_while_backends_are_terminated_all_run(
    postgres: PostgresServer, database: str, tmp_path: Path
) -> None:
    """Each password reset commits a job, run in the web process after the answer: claims and
    outcomes that meet a terminated connection are tried again, or left to the next dispatch
    or to the lease, so every job committed still runs, and the log holds no traceback."""
    url = postgres.url(database)
    settings = {
        "RATE_LIMIT_AUTH_PER_MINUTE": "1000000",
        "JOBS_REDISPATCH_SECONDS": "1",
        "JOBS_LEASE_SECONDS": "3",
    }
    with serving(tmp_path, DATABASE_URL=url, **settings) as server:
        email, _ = await user_headers(url)
        statuses: Counter[int] = Counter()
        stop = asyncio.Event()

        async def ask_for_resets() -> None:
            async with httpx2.AsyncClient(base_url=server.url, timeout=10, trust_env=False) as c:
                while not stop.is_set():
                    body = {"email": email}
                    statuses[
                        (await c.post("/api/v1/auth/password-reset", json=body)).status_code
                    ] += 1

        clients = [asyncio.create_task(ask_for_resets()) for _ in range(4)]
        await asyncio.sleep(1.0)
        ended = 0
        for _ in range(4):
            ended += await postgres.terminate_backends(database)
            await asyncio.sleep(0.7)
        await asyncio.sleep(1.0)
        stop.set()
        await asyncio.gather(*clients)

        unfinished = "SELECT count(*) FROM jobs WHERE status <> 'succeeded'"
        deadline = time.monotonic() + 30
        while await postgres.fetch_value(unfinished, database) != 0:
            assert time.monotonic() < deadline, "a committed job never ran"
            await asyncio.sleep(0.5)
        jobs = await postgres.fetch_value("SELECT count(*) FROM jobs", database)
        server.assert_clean_log()
    assert ended > 0
    assert set(statuses) <= {202, 503}, statuses
    assert statuses[202] > 0
    # A 503 may come after its job committed (the answer to COMMIT was lost), never before.
    assert isinstance(jobs, int)
    assert jobs >= statuses[202]


async def test_database_frozen_under_load(
    postgres: PostgresServer, module_database: str, server: Server
) -> None:
    """A hung host or a partition: connections stay open and nothing answers, not even an
    error. Requests are answered at their deadline (1.5 s) though the stopped queries' clean-up
    waits longer; health probes answer meanwhile; the service recovers when it thaws."""
    email, headers = await user_headers(postgres.url(module_database))
    load = Load(server.url, headers, concurrency=8)
    probes: list[tuple[int, float]] = []
    window: list[float] = []

    async def freeze_and_probe() -> None:
        await asyncio.to_thread(postgres.freeze)
        window.append(time.monotonic())
        try:
            async with httpx2.AsyncClient(base_url=server.url, trust_env=False) as client:
                while time.monotonic() - window[0] < 4.0:  # longer than the deadline
                    started = time.monotonic()
                    status = (await client.get("/health")).status_code
                    probes.append((status, time.monotonic() - started))
                    await asyncio.sleep(0.1)
        finally:
            await asyncio.to_thread(postgres.thaw)
            window.append(time.monotonic())

    await under_load(load, freeze_and_probe, recover=3.0)
    await check_database(load, postgres, module_database, email)
    server.assert_clean_log()
    frozen_from, frozen_until = window
    during = [a for a in load.attempts if frozen_from + 0.2 < a.started < frozen_until - 2.0]
    assert_no_errors(load)
    assert during, "requests were sent while the database was frozen"
    assert {a.status for a in during} == {503}
    assert max(a.seconds for a in during) < 2.5  # the deadline, not the thaw
    assert all(status == 200 for status, _ in probes)
    assert max(seconds for _, seconds in probes) < 1.0  # the event loop stayed free
    assert load.created_between(frozen_until + 0.5, time.monotonic()) > 0
