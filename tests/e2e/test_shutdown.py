"""SIGTERM mid-load: readiness says "going away" at once, the server drains, then finishes.

The test plays the load balancer: it polls readiness every 100 ms and stops sending new
requests to the server as soon as it answers 503. No request that reached the server may go
unanswered, and the process must exit 0.
"""

import asyncio
import signal
import time
from pathlib import Path

import httpx2
import pytest

from tests.e2e.conftest import items_of
from tests.e2e.load import Load, assert_consistent
from tests.e2e.postgres import PostgresServer
from tests.e2e.server import Server, serving, user_headers

pytestmark = pytest.mark.anyio

DRAIN_SECONDS = 2.0


async def balancer(server: Server, load: Load, seen: dict[str, object]) -> None:
    """Stop routing to the server once its readiness fails, as a load balancer does."""
    async with httpx2.AsyncClient(base_url=server.url, trust_env=False, timeout=5) as client:
        while load.routing:
            response = await client.get("/api/v1/health/ready")
            if response.status_code == 503:
                seen["at"], seen["body"] = time.monotonic(), response.json()
                load.routing = False
                return
            await asyncio.sleep(0.1)


async def test_sigterm_drains_then_finishes_requests_in_flight(
    postgres: PostgresServer, database: str, tmp_path: Path
) -> None:
    email, headers = await user_headers(postgres.url(database))
    settings = {
        "SHUTDOWN_DRAIN_SECONDS": str(DRAIN_SECONDS),
        "SHUTDOWN_GRACE_SECONDS": "15",
        "REQUEST_TIMEOUT_SECONDS": "15",
        "DATABASE_STATEMENT_TIMEOUT_MS": "0",
    }
    with serving(tmp_path, DATABASE_URL=postgres.url(database), **settings) as server:
        load = Load(server.url, headers, concurrency=8)
        seen: dict[str, object] = {}
        runner = asyncio.create_task(load.run())
        await asyncio.sleep(1.0)
        # Creates wait on this lock, so some are in flight when the server must stop.
        holder = await postgres.connect(database)
        transaction = holder.transaction()
        await transaction.start()
        await holder.execute("LOCK TABLE items IN SHARE MODE")
        await asyncio.sleep(0.3)
        lb = asyncio.create_task(balancer(server, load, seen))
        signalled = time.monotonic()
        server.process.send_signal(signal.SIGTERM)
        await asyncio.sleep(1.0)
        # Mid-drain, on a new connection: still served, and told to close it.
        async with httpx2.AsyncClient(base_url=server.url, trust_env=False) as client:
            during_drain = await client.get("/api/v1/items", headers=headers)
        await asyncio.sleep(DRAIN_SECONDS)  # the drain is over: uvicorn stops accepting
        await transaction.rollback()  # the requests in flight can finish now
        released = time.monotonic()
        await holder.close()
        exit_code = await asyncio.to_thread(server.process.wait, 30)
        exited = time.monotonic()
        await lb
        load.stop()
        await runner
        draining = server.events("shutdown_draining")
    assert exit_code == 0
    assert seen["body"] == {"status": "draining", "checks": {}}
    assert float(str(seen["at"])) - signalled < 1.0  # at once, not after the drain
    assert (during_drain.status_code, during_drain.headers["connection"]) == (200, "close")
    assert exited - signalled >= DRAIN_SECONDS  # it kept serving for the drain
    assert len(draining) == 2  # both workers drained
    # Sent before SIGTERM, answered only after the drain, while uvicorn was stopping.
    in_flight = [
        a for a in load.attempts if a.started < signalled < released < a.started + a.seconds
    ]
    assert in_flight, "some creates were waiting on the lock when the server had to stop"
    assert {a.status for a in load.attempts} == {201}  # nothing reset, nothing refused
    assert_consistent(load, await items_of(postgres, database, email))
