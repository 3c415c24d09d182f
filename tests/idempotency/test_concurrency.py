"""Concurrent requests with one key, against a real database: separate connections, real commits.

The shared test harness runs every session on one connection in a rolled-back transaction,
which cannot show what several connections do. These tests run the app as in production on a
migrated database, and delete what they created afterwards.
"""

import asyncio
import uuid

import pytest
from httpx2 import AsyncClient, Response
from redis.asyncio import Redis

from app.idempotency.locks import LOCK_PREFIX
from tests.harness import client_for
from tests.idempotency.scratch import EMAIL_PREFIX, Control, counts, live_app
from tests.identity import signed_up

pytestmark = pytest.mark.anyio

CONCURRENT_REQUESTS = 50
WAIT_SECONDS = 30


async def storm(client: AsyncClient, auth: dict[str, str], key: str) -> list[Response]:
    """Send the same request with the same key many times at once."""
    headers = {**auth, "Idempotency-Key": key}

    async def one() -> Response:
        return await client.post("/things/a", json={"name": "once"}, headers=headers)

    async with asyncio.timeout(WAIT_SECONDS):
        return await asyncio.gather(*(one() for _ in range(CONCURRENT_REQUESTS)))


def assert_one_thing_or_in_progress(responses: list[Response]) -> None:
    """Every answer is the one created thing (first or replayed) or 409 in progress."""
    created = [r for r in responses if r.status_code == 201]
    busy = [r for r in responses if r.status_code == 409]
    assert len(created) + len(busy) == len(responses), [r.text for r in responses]
    assert created, "at least the first request creates the thing"
    assert len({r.json()["id"] for r in created}) == 1
    assert len({r.headers["location"] for r in created}) == 1
    assert sum("idempotent-replayed" not in r.headers for r in created) == 1
    assert all(r.json()["code"] == "idempotency_key_in_progress" for r in busy)


async def test_concurrent_requests_with_one_key_create_one_thing(
    live_database_url: str,
) -> None:
    async with live_app(live_database_url, Control()) as app, client_for(app) as client:
        auth = await signed_up(client, f"{EMAIL_PREFIX}{uuid.uuid4().hex}@example.com")
        responses = await storm(client, auth, "storm")
        assert_one_thing_or_in_progress(responses)
        assert await counts(app) == (1, 1)
        again = await client.post(
            "/things/a", json={"name": "once"}, headers={**auth, "Idempotency-Key": "storm"}
        )
        assert again.headers["idempotent-replayed"] == "true"


@pytest.mark.redis
async def test_concurrent_requests_with_redis_locks_create_one_thing(
    live_database_url: str, redis_url_or_skip: str
) -> None:
    redis = Redis.from_url(redis_url_or_skip)
    control = Control()
    try:
        async with (
            live_app(live_database_url, control, REDIS_URL=redis_url_or_skip) as app,
            client_for(app) as client,
        ):
            auth = await signed_up(client, f"{EMAIL_PREFIX}{uuid.uuid4().hex}@example.com")
            assert_one_thing_or_in_progress(await storm(client, auth, "storm"))
            assert await counts(app) == (1, 1)
        assert await redis.keys(f"{LOCK_PREFIX}*") == []
    finally:
        await redis.aclose()


async def test_a_held_first_request_makes_repeats_409_without_deadlock(
    live_database_url: str,
) -> None:
    # On SQLite the claim commits on its own connection while the first request still runs:
    # the request's session must not hold the write lock meanwhile.
    control = Control(hold=True)
    async with live_app(live_database_url, control) as app, client_for(app) as client:
        auth = await signed_up(client, f"{EMAIL_PREFIX}{uuid.uuid4().hex}@example.com")
        headers = {**auth, "Idempotency-Key": "held"}
        first = asyncio.create_task(client.post("/things/a", json={"name": "x"}, headers=headers))
        try:
            async with asyncio.timeout(WAIT_SECONDS):
                await control.started.wait()
                busy = await client.post("/things/a", json={"name": "x"}, headers=headers)
        finally:
            control.release.set()
        assert busy.status_code == 409, busy.text
        async with asyncio.timeout(WAIT_SECONDS):
            assert (await first).status_code == 201
        assert await counts(app) == (1, 1)


async def test_a_failed_request_releases_its_key_on_a_real_database(
    live_database_url: str,
) -> None:
    # The release runs after the request's session rolled back: on SQLite it must not wait
    # for that session's write lock (it would give up after 5 s and leave the key claimed).
    control = Control(fail_next="conflict")
    async with live_app(live_database_url, control) as app, client_for(app) as client:
        auth = await signed_up(client, f"{EMAIL_PREFIX}{uuid.uuid4().hex}@example.com")
        headers = {**auth, "Idempotency-Key": "fails"}
        async with asyncio.timeout(WAIT_SECONDS):
            failed = await client.post("/things/a", json={"name": "x"}, headers=headers)
            assert failed.json()["code"] == "conflict"
            assert await counts(app) == (0, 0)
            retry = await client.post("/things/a", json={"name": "x"}, headers=headers)
        assert retry.status_code == 201
        assert "idempotent-replayed" not in retry.headers
        assert await counts(app) == (1, 1)
