"""Whatever ends a request, its Idempotency-Key claim and lock are freed (or lapse on their lease).

Run on a real database with real commits (`live_app`), like the concurrency tests.
"""

import asyncio
import uuid

import pytest
from redis.asyncio import Redis

from app.idempotency import service
from app.idempotency.locks import LOCK_PREFIX
from tests.harness import assert_problem, client_for, log_lines
from tests.idempotency.scratch import EMAIL_PREFIX, Control, counts, live_app
from tests.identity import signed_up

pytestmark = pytest.mark.anyio

WAIT_SECONDS = 30


@pytest.mark.redis
@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
async def test_a_lost_database_connection_frees_the_claim_and_the_lock(
    live_database_url: str, redis_url_or_skip: str
) -> None:
    control = Control(fail_next="disconnect")
    redis = Redis.from_url(redis_url_or_skip)
    try:
        async with (
            live_app(live_database_url, control, REDIS_URL=redis_url_or_skip) as app,
            client_for(app) as client,
        ):
            auth = await signed_up(client, f"{EMAIL_PREFIX}{uuid.uuid4().hex}@example.com")
            headers = {**auth, "Idempotency-Key": "lost-connection"}
            async with asyncio.timeout(WAIT_SECONDS):
                failed = await client.post("/things/a", json={"name": "x"}, headers=headers)
                assert await counts(app) == (0, 0)  # nothing kept, the key released
                retry = await client.post("/things/a", json={"name": "x"}, headers=headers)
            assert await counts(app) == (1, 1)
        assert await redis.keys(f"{LOCK_PREFIX}*") == []
    finally:
        await redis.aclose()
    problem = assert_problem(failed, 503, "database_unavailable")
    assert failed.headers["retry-after"] == "1"
    assert problem["detail"]
    assert retry.status_code == 201
    assert "idempotent-replayed" not in retry.headers


async def test_a_release_failing_with_any_error_keeps_the_requests_own_answer(
    live_database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def refused(**_: object) -> None:
        raise ConnectionRefusedError(111, "Connect call failed")

    control = Control(fail_next="conflict")
    async with live_app(live_database_url, control) as app, client_for(app) as client:
        auth = await signed_up(client, f"{EMAIL_PREFIX}{uuid.uuid4().hex}@example.com")
        monkeypatch.setattr(service, "release", refused)
        with log_lines() as logs:
            failed = await client.post(
                "/things/a", json={"name": "x"}, headers={**auth, "Idempotency-Key": "stuck"}
            )
        held = await counts(app)
    assert_problem(failed, 409, "conflict")  # not a 500 from the failed release
    [warning] = logs.events("idempotency_release_failed")
    assert warning["error"] == "ConnectionRefusedError"
    assert held == (0, 1)  # the claim stays until its lease ends (service.CLAIM_LEASE)
