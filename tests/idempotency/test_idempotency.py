"""Idempotency-Key over the real app and both databases, through a test-only idempotent route."""

import asyncio
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import timedelta
from typing import Any

import pytest
from fastapi import FastAPI
from httpx2 import AsyncClient, Response
from redis.asyncio import Redis
from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.core.config import Settings
from app.db.base import utcnow
from app.deps import attach_resources, resources_of
from app.idempotency import service
from app.idempotency.locks import lock_name
from app.idempotency.models import IdempotencyKey
from app.main import create_app
from app.users.models import User
from tests.harness import assert_problem as problem
from tests.harness import client_for, log_lines, make_settings, running
from tests.idempotency.scratch import (
    Control,
    Failure,
    IdempotencyScratchBase,
    Thing,
    build_misconfigured_router,
    build_router,
)
from tests.identity import signed_up

pytestmark = pytest.mark.anyio

KEY = "3f1d7c0e-idempotency-key"
WAIT_SECONDS = 5
FAILURE_STATUS: dict[Failure, int] = {"conflict": 409, "boom": 500, "server_error": 503}


@pytest.fixture
def control() -> Control:
    return Control()


@asynccontextmanager
async def started_app(settings: Settings, control: Control) -> AsyncIterator[FastAPI]:
    app = create_app(settings)
    app.include_router(build_router(control))
    app.include_router(build_misconfigured_router())
    async with running(app) as started:
        connection = resources_of(started).session_factory.kw["bind"]
        await connection.run_sync(IdempotencyScratchBase.metadata.create_all)
        yield started


@pytest.fixture
async def app(settings: Settings, control: Control) -> AsyncIterator[FastAPI]:
    async with started_app(settings, control) as started:
        yield started


@pytest.fixture
async def auth(client: AsyncClient) -> dict[str, str]:
    return await signed_up(client, "idem@example.com")


@pytest.fixture
def sessions(app: FastAPI) -> async_sessionmaker[AsyncSession]:
    factory: async_sessionmaker[AsyncSession] = resources_of(app).session_factory
    return factory


async def create(
    client: AsyncClient,
    auth: dict[str, str],
    key: str | None = KEY,
    *,
    name: str = "first",
    group: str = "a",
) -> Response:
    headers = dict(auth) if key is None else {**auth, "Idempotency-Key": key}
    return await client.post(f"/things/{group}", json={"name": name}, headers=headers)


async def count(sessions: async_sessionmaker[AsyncSession], model: type[Any]) -> int:
    async with sessions() as session:
        return await session.scalar(select(func.count()).select_from(model)) or 0


async def records(sessions: async_sessionmaker[AsyncSession]) -> list[IdempotencyKey]:
    async with sessions() as session:
        return list(await session.scalars(select(IdempotencyKey)))


async def test_without_a_key_the_route_runs_every_time(
    client: AsyncClient, auth: dict[str, str], sessions: async_sessionmaker[AsyncSession]
) -> None:
    first, second = await create(client, auth, None), await create(client, auth, None)
    assert first.status_code == second.status_code == 201
    assert first.json()["id"] != second.json()["id"]
    assert "idempotent-replayed" not in first.headers
    assert "idempotent-replayed" not in second.headers
    assert await count(sessions, Thing) == 2
    assert await count(sessions, IdempotencyKey) == 0


async def test_first_request_stores_its_response(
    client: AsyncClient, auth: dict[str, str], sessions: async_sessionmaker[AsyncSession]
) -> None:
    response = await create(client, auth)
    assert response.status_code == 201
    assert "idempotent-replayed" not in response.headers
    [record] = await records(sessions)
    assert record.key == KEY
    assert (record.method, record.path) == ("POST", "/things/a")
    assert record.completed_at is not None
    assert record.response_status == 201
    assert record.response_body == response.content
    assert record.response_headers == {
        "content-type": "application/json",
        "location": response.headers["location"],
    }
    assert record.expires_at - record.created_at == timedelta(seconds=86400)


async def test_the_key_lives_idempotency_ttl_seconds(settings: Settings, control: Control) -> None:
    overridden = make_settings(DATABASE_URL=settings.database.url, IDEMPOTENCY_TTL_SECONDS=120)
    async with started_app(overridden, control) as app, client_for(app) as client:
        auth = await signed_up(client, "short-ttl@example.com")
        assert (await create(client, auth)).status_code == 201
        [record] = await records(resources_of(app).session_factory)
    assert record.expires_at - record.created_at == timedelta(seconds=120)


async def test_repeat_replays_the_stored_response(
    client: AsyncClient, auth: dict[str, str], sessions: async_sessionmaker[AsyncSession]
) -> None:
    first = await create(client, auth)
    again = await create(client, auth)
    assert again.status_code == 201
    assert again.headers["idempotent-replayed"] == "true"
    assert again.content == first.content
    assert again.headers["location"] == first.headers["location"]
    assert again.headers["content-type"] == "application/json"
    assert await count(sessions, Thing) == 1


async def test_quoted_key_is_the_same_key(client: AsyncClient, auth: dict[str, str]) -> None:
    first = await create(client, auth, "abc")
    again = await create(client, auth, '"abc"')
    assert again.headers["idempotent-replayed"] == "true"
    assert again.json() == first.json()


async def test_same_key_with_another_body_is_422(
    client: AsyncClient, auth: dict[str, str], sessions: async_sessionmaker[AsyncSession]
) -> None:
    await create(client, auth, name="first")
    problem(await create(client, auth, name="second"), 422, "idempotency_key_reused")
    assert await count(sessions, Thing) == 1


async def test_same_key_on_another_path_is_422(
    client: AsyncClient, auth: dict[str, str], sessions: async_sessionmaker[AsyncSession]
) -> None:
    await create(client, auth, group="a")
    problem(await create(client, auth, group="b"), 422, "idempotency_key_reused")
    assert await count(sessions, Thing) == 1


@pytest.mark.parametrize("key", ["k" * 256, "", '""'])
async def test_keys_that_are_empty_or_too_long_are_400(
    client: AsyncClient, auth: dict[str, str], sessions: async_sessionmaker[AsyncSession], key: str
) -> None:
    problem(await create(client, auth, key), 400, "idempotency_key_invalid")
    assert await count(sessions, Thing) == 0


async def test_a_key_of_255_characters_is_accepted(
    client: AsyncClient, auth: dict[str, str]
) -> None:
    assert (await create(client, auth, "k" * 255)).status_code == 201
    assert (await create(client, auth, "k" * 255)).headers["idempotent-replayed"] == "true"


async def test_keys_belong_to_their_caller(
    client: AsyncClient, auth: dict[str, str], sessions: async_sessionmaker[AsyncSession]
) -> None:
    other = await signed_up(client, "other@example.com")
    mine, theirs = await create(client, auth), await create(client, other)
    assert theirs.status_code == 201
    assert "idempotent-replayed" not in theirs.headers
    assert theirs.json()["id"] != mine.json()["id"]
    assert await count(sessions, Thing) == 2


async def test_the_mechanism_requires_authentication(
    client: AsyncClient, sessions: async_sessionmaker[AsyncSession]
) -> None:
    problem(await create(client, {}), 401, "not_authenticated")
    assert await count(sessions, IdempotencyKey) == 0


async def test_repeat_while_the_first_runs_is_409(
    client: AsyncClient,
    auth: dict[str, str],
    control: Control,
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    control.hold = True
    first = asyncio.create_task(create(client, auth))
    try:
        async with asyncio.timeout(WAIT_SECONDS):
            await control.started.wait()
        busy = await create(client, auth)
    finally:
        control.release.set()
    body = problem(busy, 409, "idempotency_key_in_progress")
    assert body["title"] == "Idempotency Key In Progress"
    assert busy.headers["retry-after"] == "1"
    async with asyncio.timeout(WAIT_SECONDS):
        assert (await first).status_code == 201
    assert (await create(client, auth)).headers["idempotent-replayed"] == "true"
    assert await count(sessions, Thing) == 1


@pytest.mark.parametrize(("failure"), ["conflict", "boom", "server_error"])
async def test_a_failed_first_request_releases_the_key(
    client: AsyncClient,
    auth: dict[str, str],
    control: Control,
    sessions: async_sessionmaker[AsyncSession],
    failure: Failure,
) -> None:
    control.fail_next = failure
    assert (await create(client, auth)).status_code == FAILURE_STATUS[failure]
    assert await count(sessions, IdempotencyKey) == 0
    retry = await create(client, auth)
    assert retry.status_code == 201
    assert "idempotent-replayed" not in retry.headers
    assert (await create(client, auth)).headers["idempotent-replayed"] == "true"


async def test_a_raised_error_rolls_back_the_work_and_is_not_stored(
    client: AsyncClient,
    auth: dict[str, str],
    control: Control,
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    control.fail_next = "conflict"
    problem(await create(client, auth), 409, "conflict")
    assert await count(sessions, Thing) == 0


async def test_an_expired_key_is_treated_as_new(
    client: AsyncClient, auth: dict[str, str], sessions: async_sessionmaker[AsyncSession]
) -> None:
    first = await create(client, auth, name="first")
    async with sessions() as session:
        past = utcnow() - timedelta(seconds=1)
        await session.execute(update(IdempotencyKey).values(expires_at=past, created_at=past))
        await session.commit()
    # Another body: an expired key is free again, not a reuse.
    second = await create(client, auth, name="second")
    assert second.status_code == 201
    assert "idempotent-replayed" not in second.headers
    assert second.json()["id"] != first.json()["id"]
    [record] = await records(sessions)
    assert record.response_body == second.content
    assert record.expires_at > utcnow()


async def test_an_abandoned_claim_is_taken_over_after_its_lease(
    client: AsyncClient, auth: dict[str, str], sessions: async_sessionmaker[AsyncSession]
) -> None:
    async with sessions() as session:
        user = await session.scalar(select(User).where(User.email == "idem@example.com"))
        assert user is not None
        fingerprint = service.Fingerprint.of(method="POST", path="/things/a", body=b"{}")
        long_ago = utcnow() - service.CLAIM_LEASE - timedelta(seconds=1)
        record, claimed = await service.claim(
            session=session,
            user_id=user.id,
            key=KEY,
            fingerprint=fingerprint,
            now=long_ago,
            ttl=timedelta(days=1),
        )
        await session.commit()
    assert claimed
    assert record.completed_at is None
    response = await create(client, auth)
    assert response.status_code == 201
    assert "idempotent-replayed" not in response.headers
    [stored] = await records(sessions)
    assert stored.id != record.id
    assert stored.response_status == 201


async def test_a_claim_taken_over_meanwhile_rolls_the_request_back(
    client: AsyncClient,
    auth: dict[str, str],
    control: Control,
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    control.hold = True
    first = asyncio.create_task(create(client, auth))
    try:
        async with asyncio.timeout(WAIT_SECONDS):
            await control.started.wait()
        # What a takeover does after the lease: the first request's claim row is replaced.
        async with sessions() as session:
            [record] = list(await session.scalars(select(IdempotencyKey)))
            await service.release(session=session, claim_id=record.id)
            await session.commit()
    finally:
        control.release.set()
    async with asyncio.timeout(WAIT_SECONDS):
        problem(await first, 409, "idempotency_key_in_progress")
    assert await count(sessions, Thing) == 0


async def test_a_route_can_read_the_key(client: AsyncClient, auth: dict[str, str]) -> None:
    response = await client.post("/keys", headers={**auth, "Idempotency-Key": "read-me"})
    assert response.json() == {"key": "read-me"}
    assert (await client.post("/keys", headers=auth)).json() == {"key": None}


async def test_other_routes_of_the_router_run_unchanged(client: AsyncClient) -> None:
    response = await client.get("/plain", headers={"Idempotency-Key": KEY})
    assert response.json() == {"route": "plain"}


async def test_a_route_without_the_route_class_fails_loudly(
    client: AsyncClient, auth: dict[str, str]
) -> None:
    with log_lines() as logs:
        keyed = await client.post("/misconfigured", headers={**auth, "Idempotency-Key": KEY})
        unkeyed = await client.post("/misconfigured", headers=auth)
    problem(keyed, 500, "internal_error")
    problem(unkeyed, 500, "internal_error")
    [error, _] = logs.events("unhandled_exception")
    assert "route_class=IdempotentRoute" in error["exception"]


async def test_openapi_documents_the_header_and_the_errors(app: FastAPI) -> None:
    operation = app.openapi()["paths"]["/things/{group}"]["post"]
    headers = {p["name"] for p in operation["parameters"] if p["in"] == "header"}
    assert "Idempotency-Key" in headers
    assert {"400", "409", "422"} <= set(operation["responses"])
    plain = app.openapi()["paths"]["/plain"]["get"]
    assert "409" not in plain["responses"]


async def test_purge_expired_deletes_only_expired_keys(
    client: AsyncClient, auth: dict[str, str], sessions: async_sessionmaker[AsyncSession]
) -> None:
    await create(client, auth, "old")
    await create(client, auth, "new")
    async with sessions() as session:
        past = utcnow() - timedelta(seconds=1)
        await session.execute(
            update(IdempotencyKey).where(IdempotencyKey.key == "old").values(expires_at=past)
        )
        assert await service.purge_expired(session=session, now=utcnow()) == 1
        await session.commit()
    assert [record.key for record in await records(sessions)] == ["new"]


@pytest.fixture
def redis_settings(database_url: str, redis_url_or_skip: str) -> Settings:
    return make_settings(DATABASE_URL=database_url, REDIS_URL=redis_url_or_skip)


@pytest.fixture
async def redis_client(redis_settings: Settings) -> AsyncIterator[AsyncClient]:
    async with started_app(redis_settings, Control()) as started, client_for(started) as c:
        yield c


async def user_id_of(client: AsyncClient, auth: dict[str, str]) -> str:
    response = await client.get("/api/v1/users/me", headers=auth)
    user_id: str = response.json()["id"]
    return user_id


@pytest.mark.redis
async def test_a_lock_held_by_another_worker_answers_from_the_database(
    redis_client: AsyncClient, redis_settings: Settings
) -> None:
    auth = await signed_up(redis_client, "locked@example.com")
    name = lock_name(uuid.UUID(await user_id_of(redis_client, auth)), KEY)
    assert redis_settings.redis.url is not None
    redis = Redis.from_url(redis_settings.redis.url.get_secret_value())
    try:
        await redis.set(name, "another-worker", px=5000)
        problem(await create(redis_client, auth), 409, "idempotency_key_in_progress")
        await redis.delete(name)
        first = await create(redis_client, auth)
        assert first.status_code == 201
        assert await redis.exists(name) == 0
        await redis.set(name, "another-worker", px=5000)
        again = await create(redis_client, auth)
        assert again.headers["idempotent-replayed"] == "true"
        problem(await create(redis_client, auth, name="other"), 422, "idempotency_key_reused")
    finally:
        await redis.delete(name)
        await redis.aclose()


async def test_an_unreachable_redis_fails_open(
    app: FastAPI, client: AsyncClient, auth: dict[str, str]
) -> None:
    # Set after signing up: the login throttle needs a working Redis when one is configured.
    resources = resources_of(app)
    unreachable = Redis.from_url("redis://127.0.0.1:1/0", socket_connect_timeout=1)
    attach_resources(app, resources.replace(redis=unreachable))
    try:
        assert (await create(client, auth)).status_code == 201
        assert (await create(client, auth)).headers["idempotent-replayed"] == "true"
    finally:
        await unreachable.aclose()
        attach_resources(app, resources)
