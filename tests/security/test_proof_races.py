"""Attack: a sensitive change in flight while the account is recovered, or its admin demoted.

An intruder with a stolen session who knows the password starts a change that needs a fresh
proof (a new password, a new email, deleting the account) just before the owner's password
reset commits; a superuser starts promoting an account just before another demotes them. The
proof was good when it was checked; the change must still not survive what committed first.
And the other way round: a proof by password commits before the change, so what the change
decides from is read after it (a deactivation is not lost to a reactivation meanwhile), and a
login that merely re-hashed the same password meanwhile is no password change.
On a database with real commits (on SQLite writers run one at a time: the tests pass there too).
"""

import asyncio
import uuid
from collections.abc import Coroutine
from dataclasses import dataclass
from typing import Any

import bcrypt
import pytest
from fastapi import FastAPI
from httpx2 import Response
from sqlalchemy import func, select, update

from app.auth.action_tokens import EMAIL_CHANGE
from app.auth.models import ActionToken
from app.deps import resources_of
from app.users import service as users_service
from app.users.models import User
from tests.identity import DEFAULT_PASSWORD, bearer, login, login_status, make_superuser, register
from tests.security.races import (
    ME,
    NEW_PASSWORD,
    PASSWORD_RESET,
    WAIT_SECONDS,
    Gate,
    Scene,
    intruder_session,
    live_app,
    new_scene,
    run_held,
    with_admin,
)

pytestmark = pytest.mark.anyio

INTRUDERS_PASSWORD = "the intruder's own passphrase"
INTRUDERS_EMAIL = "intruder@example.net"


async def live_email_changes(scene: Scene) -> int:
    """Unspent email-change tokens of the account: one would move it to the intruder."""
    statement = select(func.count()).where(
        ActionToken.user_id == uuid.UUID(scene.user_id),
        ActionToken.purpose == EMAIL_CHANGE,
        ActionToken.used_at.is_(None),
    )
    async with resources_of(scene.app).session_factory() as session:
        return await session.scalar(statement) or 0


async def owner_recovered(scene: Scene) -> list[str]:
    """What is wrong once the reset committed: the owner's new password must be the one."""
    wrong = []
    if await login_status(scene.client, scene.email, INTRUDERS_PASSWORD) == 200:
        wrong.append("the intruder's password opens the account")
    if await login_status(scene.client, scene.email, NEW_PASSWORD) != 200:
        wrong.append("the owner's new password does not")
    if await live_email_changes(scene):
        wrong.append("an email change the intruder asked for is pending")
    return wrong


@dataclass(frozen=True)
class Change:
    """A sensitive change an intruder sends with the stolen session and the known password."""

    name: str
    method: str
    path: str
    body: dict[str, str]

    def send(self, scene: Scene) -> Coroutine[Any, Any, Response]:
        body = {"current_password": DEFAULT_PASSWORD, **self.body}
        return scene.client.request(self.method, self.path, json=body, headers=scene.intruder)


CHANGES = [
    Change("password-change", "POST", f"{ME}/password", {"new_password": INTRUDERS_PASSWORD}),
    Change("email-change", "POST", f"{ME}/email", {"email": INTRUDERS_EMAIL}),
    Change("account-deletion", "DELETE", ME, {}),
]


@pytest.mark.parametrize("change", CHANGES, ids=[change.name for change in CHANGES])
async def test_a_change_proven_before_a_recovery_commits_does_not_outlive_it(
    live_database_url: str, monkeypatch: pytest.MonkeyPatch, change: Change
) -> None:
    async with live_app(live_database_url) as (app, client):
        scene = await new_scene(app, client)
        await intruder_session(scene)
        await PASSWORD_RESET.prepare(scene)
        assert PASSWORD_RESET.held_at is not None

        reset, changed = await run_held(
            monkeypatch, scene, PASSWORD_RESET.held_at, PASSWORD_RESET.send, change.send
        )

        assert reset.status_code == 204, reset.text
        assert changed.status_code == 401, changed.text
        assert await owner_recovered(scene) == []


async def test_a_superuser_demoted_meanwhile_promotes_nobody(
    live_database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with live_app(live_database_url) as (app, client):
        scene = await new_scene(app, client)
        await make_superuser(app, scene.email)  # the superuser about to lose it
        await with_admin(scene)  # the one who demotes them
        accomplice = await register(client, f"accomplice-{scene.user_id[:8]}@example.com")
        demoted = bearer(await login(client, scene.email))

        demotion, promotion = await run_held(
            monkeypatch,
            scene,
            (users_service, "update"),
            lambda s: client.patch(
                f"/api/v1/users/{s.user_id}", json={"is_superuser": False}, headers=s.admin
            ),
            lambda s: client.patch(
                f"/api/v1/users/{accomplice['id']}", json={"is_superuser": True}, headers=demoted
            ),
        )

        assert demotion.status_code == 200, demotion.text
        assert promotion.status_code == 403, promotion.text
        assert promotion.json()["code"] == "superuser_required"
        read = await client.get(f"/api/v1/users/{accomplice['id']}", headers=scene.admin)
        assert read.json()["is_superuser"] is False


def hold_the_next_password_check(app: FastAPI, monkeypatch: pytest.MonkeyPatch) -> Gate:
    """Hold the next password check, once made, until the gate opens: the proof's, which
    committed its throttle count before it (its transaction holds no lock meanwhile)."""
    gate = Gate()
    gate.install(monkeypatch, resources_of(app).password_hasher, "verify")
    gate.armed = True
    return gate


async def test_a_change_proven_beside_a_login_that_rehashes_the_password_goes_ahead(
    live_database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The password proven is still the account's when a login re-hashed it meanwhile (a
    bcrypt hash upgraded to Argon2id): a new string, the same password."""
    async with live_app(live_database_url) as (app, client):
        scene = await new_scene(app, client)
        legacy = bcrypt.hashpw(DEFAULT_PASSWORD.encode(), bcrypt.gensalt(rounds=4)).decode()
        async with resources_of(app).session_factory() as session:
            await session.execute(
                update(User).where(User.email == scene.email).values(hashed_password=legacy)
            )
            await session.commit()
        gate = hold_the_next_password_check(app, monkeypatch)
        body = {"email": INTRUDERS_EMAIL, "current_password": DEFAULT_PASSWORD}
        change = asyncio.create_task(client.post(f"{ME}/email", json=body, headers=scene.owner))
        await asyncio.wait_for(gate.reached.wait(), WAIT_SECONDS)
        # Re-hashes the password to Argon2id, and commits, while the change is proven.
        assert await login_status(client, scene.email) == 200
        gate.opened.set()

        changed = await change
        assert changed.status_code == 202, changed.text
        assert await live_email_changes(scene) == 1


async def test_a_deactivation_proven_by_password_is_not_lost_to_a_reactivation_meanwhile(
    live_database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The proof commits (its throttle count) before the change: what the change relies on (is
    the account active?) is read again after it, under the account's lock. Another superuser
    reactivates the account and its owner signs in meanwhile: the deactivation still ends it."""
    async with live_app(live_database_url) as (app, client):
        scene = await new_scene(app, client)
        await with_admin(scene)  # deactivates with a password
        other = f"other-admin-{scene.user_id[:8]}@example.com"
        await register(client, other)
        await make_superuser(app, other)
        reactivator = bearer(await login(client, other))
        path = f"/api/v1/users/{scene.user_id}"
        off = await client.patch(path, json={"is_active": False}, headers=reactivator)
        assert off.status_code == 200, off.text
        gate = hold_the_next_password_check(app, monkeypatch)
        body = {"is_active": False, "current_password": DEFAULT_PASSWORD}
        deactivation = asyncio.create_task(client.patch(path, json=body, headers=scene.admin))
        await asyncio.wait_for(gate.reached.wait(), WAIT_SECONDS)
        on = await client.patch(path, json={"is_active": True}, headers=reactivator)
        assert on.status_code == 200, on.text
        owner = bearer(await login(client, scene.email))  # a session of the active account
        gate.opened.set()

        answered = await deactivation
        assert answered.status_code == 200, answered.text
        assert answered.json()["is_active"] is False
        assert (await client.get(ME, headers=owner)).status_code == 401
        assert (await client.get(path, headers=reactivator)).json()["is_active"] is False
