"""Racing a revocation against a credential being issued, on a database with real commits.

The shared harness runs every session on one connection, which cannot show what two
transactions do to each other; these helpers run the app as in production (its own pool,
real commits) on `live_database_url`, and can hold one request's transaction open at a
chosen service call while another request runs.
"""

import asyncio
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import pytest
from asgi_lifespan import LifespanManager
from fastapi import FastAPI
from httpx2 import AsyncClient, Response
from sqlalchemy import text

from app.api_keys import service as api_keys_service
from app.auth import action_tokens
from app.auth import service as auth_service
from app.deps import resources_of
from app.main import create_app
from tests.harness import client_for, make_settings
from tests.identity import DEFAULT_PASSWORD, bearer, login, make_superuser, register

ME = "/api/v1/users/me"
REFRESH = "/api/v1/auth/refresh"
KEYS = "/api/v1/api-keys"
NEW_PASSWORD = "a brand new passphrase"
HOLD_SECONDS = 10
# How long a request may take to reach its lock; on SQLite, how long it is given to.
WAIT_SECONDS = 5
SQLITE_PAUSE_SECONDS = 0.3


@asynccontextmanager
async def live_app(database_url: str) -> AsyncIterator[tuple[FastAPI, AsyncClient]]:
    """The app on a migrated database whose commits are real, and a client for it."""
    app = create_app(make_settings(DATABASE_URL=database_url))
    async with LifespanManager(app), client_for(app) as client:
        yield app, client


class Gate:
    """Hold the next call of a service function, once it returned, until opened.

    The request that made the call keeps its transaction open meanwhile: what it wrote
    (a new token, a revocation) is neither committed nor rolled back.
    """

    def __init__(self) -> None:
        self.reached = asyncio.Event()
        self.opened = asyncio.Event()
        self.armed = False

    def install(self, monkeypatch: pytest.MonkeyPatch, owner: object, name: str) -> None:
        function: Callable[..., Awaitable[Any]] = getattr(owner, name)

        async def held(*args: Any, **kwargs: Any) -> Any:
            result = await function(*args, **kwargs)
            if self.armed:
                self.armed = False
                self.reached.set()
                await asyncio.wait_for(self.opened.wait(), HOLD_SECONDS)
            return result

        monkeypatch.setattr(owner, name, held)


async def blocked_or_done(app: FastAPI, task: asyncio.Task[Any]) -> None:
    """Return once `task` ended or waits for a lock of the held transaction.

    PostgreSQL shows a waiting backend in `pg_stat_activity`. A SQLite writer waits for the
    write lock in its busy handler, unseen: it is given a moment.
    """
    engine = resources_of(app).engine
    if engine.dialect.name == "sqlite":
        await asyncio.wait({task}, timeout=SQLITE_PAUSE_SECONDS)
        return
    waiting = text(
        "SELECT count(*) FROM pg_stat_activity"
        " WHERE datname = current_database() AND wait_event_type = 'Lock'"
    )
    async with asyncio.timeout(WAIT_SECONDS):
        while not task.done():
            async with engine.connect() as connection:
                if await connection.scalar(waiting):
                    return
            await asyncio.sleep(0.01)


@dataclass
class Scene:
    """An owner's account, what an intruder holds of it, and what revoking it takes."""

    app: FastAPI
    client: AsyncClient
    email: str
    user_id: str
    owner: dict[str, str]
    admin: dict[str, str] = field(default_factory=dict)
    reset_token: str = ""
    retired: str = ""  # a refresh token of the intruder's session, already exchanged
    refresh_token: str = ""  # the intruder's newest refresh token
    access_token: str = ""
    intruder: dict[str, str] = field(default_factory=dict)  # a session, or the parent key
    parent_id: str = ""


async def new_scene(app: FastAPI, client: AsyncClient) -> Scene:
    """An account with a session of its owner's."""
    email = f"race-{uuid.uuid4().hex[:12]}@example.com"
    user = await register(client, email)
    owner = bearer(await login(client, email))
    return Scene(app, client, email, user["id"], owner)


async def intruder_session(scene: Scene) -> None:
    """A stolen session, exchanged once: its first token is retired, the second is live."""
    first = await login(scene.client, scene.email)
    second = await scene.client.post(REFRESH, json={"refresh_token": first["refresh_token"]})
    assert second.status_code == 200, second.text
    scene.retired = first["refresh_token"]
    scene.refresh_token = second.json()["refresh_token"]
    scene.access_token = second.json()["access_token"]
    scene.intruder = bearer(second.json())


async def intruder_key(scene: Scene) -> None:
    """A leaked key that may create keys, already used this minute (its use writes nothing)."""
    created = await scene.client.post(
        KEYS, json={"name": "parent", "current_password": DEFAULT_PASSWORD}, headers=scene.owner
    )
    assert created.status_code == 201, created.text
    scene.intruder = {"X-API-Key": created.json()["key"]}
    scene.parent_id = created.json()["id"]
    assert (await scene.client.get(ME, headers=scene.intruder)).status_code == 200


async def with_reset_token(scene: Scene) -> None:
    async with resources_of(scene.app).session_factory() as session:
        started = await action_tokens.start_password_reset(
            session=session, email=scene.email, ttl_seconds=3600
        )
        await session.commit()
    assert started is not None
    scene.reset_token = started[1]


async def with_admin(scene: Scene) -> None:
    email = f"admin-{uuid.uuid4().hex[:12]}@example.com"
    await register(scene.client, email)
    await make_superuser(scene.app, email)
    scene.admin = bearer(await login(scene.client, email))


async def reactivate(scene: Scene) -> None:
    """Bring a deactivated account back: what it had must stay revoked."""
    path = f"/api/v1/users/{scene.user_id}"
    back = await scene.client.patch(path, json={"is_active": True}, headers=scene.admin)
    assert back.status_code == 200, back.text


async def pair_works(client: AsyncClient, pair: dict[str, Any]) -> list[str]:
    """Which of a token pair's tokens still work (the refresh token is spent if it does)."""
    working = []
    if (await client.get(ME, headers=bearer(pair))).status_code == 200:
        working.append("access token")
    if (
        await client.post(REFRESH, json={"refresh_token": pair["refresh_token"]})
    ).status_code == 200:
        working.append("refresh token")
    return working


async def still_working(scene: Scene, issued: Response) -> list[str]:
    """Which of the intruder's credentials still work: what it held, and what it was issued."""
    client = scene.client
    working = []
    if scene.intruder and (await client.get(ME, headers=scene.intruder)).status_code == 200:
        working.append("held")
    if issued.status_code == 200:
        working += [f"issued {name}" for name in await pair_works(client, issued.json())]
    if issued.status_code == 201:
        key = {"X-API-Key": issued.json()["key"]}
        if (await client.get(ME, headers=key)).status_code == 200:
            working.append("issued key")
    return working


Step = Callable[[Scene], Awaitable[None]]
Send = Callable[[Scene], Coroutine[Any, Any, Response]]


async def nothing(_: Scene) -> None:
    return None


@dataclass(frozen=True)
class Revocation:
    """A request that revokes what the intruder holds, and the call to hold it at."""

    name: str
    send: Send
    status: int
    held_at: tuple[object, str] | None
    prepare: Step = nothing
    after: Step = nothing


LOGOUT = Revocation(
    "logout",
    lambda s: s.client.post("/api/v1/auth/logout", json={"refresh_token": s.refresh_token}),
    204,
    (auth_service, "logout"),
)
LOGOUT_ALL = Revocation(
    "logout-all",
    lambda s: s.client.post("/api/v1/auth/logout-all", headers=s.owner),
    204,
    (auth_service, "logout_all"),
)
PASSWORD_CHANGE = Revocation(
    "password-change",
    lambda s: s.client.post(
        "/api/v1/users/me/password",
        json={"current_password": DEFAULT_PASSWORD, "new_password": NEW_PASSWORD},
        headers=s.owner,
    ),
    204,
    (auth_service, "logout_all"),
)
PASSWORD_RESET = Revocation(
    "password-reset",
    lambda s: s.client.post(
        "/api/v1/auth/password-reset/confirm",
        json={"token": s.reset_token, "new_password": NEW_PASSWORD},
    ),
    204,
    (api_keys_service, "revoke_all"),  # the last revocation of the reset
    prepare=with_reset_token,
)
DEACTIVATION = Revocation(
    "deactivation",
    lambda s: s.client.patch(
        f"/api/v1/users/{s.user_id}", json={"is_active": False}, headers=s.admin
    ),
    200,
    (auth_service, "logout_all"),
    prepare=with_admin,
    after=reactivate,  # what was revoked stays revoked; not merely refused while inactive
)
KEY_REVOCATION = Revocation(
    "key-revocation",
    lambda s: s.client.delete(f"{KEYS}/{s.parent_id}", headers=s.owner),
    204,
    (api_keys_service, "revoke"),
)


async def run_held(
    monkeypatch: pytest.MonkeyPatch,
    scene: Scene,
    held: tuple[object, str],
    first: Send,
    second: Send,
) -> tuple[Response, Response]:
    """Send `first` and hold it at `held`; send `second` and let it run until it waits or
    answers; then release `first`. Return both answers."""
    gate = Gate()
    gate.install(monkeypatch, *held)
    gate.armed = True
    async with asyncio.timeout(HOLD_SECONDS + WAIT_SECONDS):
        sent_first = asyncio.create_task(first(scene))
        await gate.reached.wait()
        sent_second = asyncio.create_task(second(scene))
        await blocked_or_done(scene.app, sent_second)
        gate.opened.set()
        return await sent_first, await sent_second
